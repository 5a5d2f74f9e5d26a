//! Shared quota decisions: one atomic Redis round trip (a Lua script) per call.
//!
//! The script is the local limiter's algorithm (`quota::window`) run on Redis: each limit of
//! each key is a hash of 60 + 1 time buckets; a call passes only if every limit of every key has
//! room, and only then is it counted in all of them. Time is Redis's own (`TIME`), so the clocks
//! of the pods do not matter. Error bound: as the local limiter, on the safe side only: in any
//! window of the limit's length at most the limit passes fleet-wide; a call may be refused up to
//! 1/60 of the window early.

use std::time::Duration;

use redis::Script;

use super::{FleetClient, FleetDown};
use crate::quota::{Ask, Refusal, RECIPIENT_LIMITS, ROBOT_LIMITS};

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb = tonumber(ARGV[1])
local wait = 0
local over = {}
local cur = {}
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[2 * i])
  local per = tonumber(ARGV[2 * i + 1])
  local width = per / nb
  local b = math.floor(now / width)
  cur[i] = b
  local fields = redis.call('HGETALL', key)
  local used = 0
  local old = {}
  local live = {}
  for j = 1, #fields, 2 do
    local fb = tonumber(fields[j])
    local c = tonumber(fields[j + 1])
    if fb <= b - (nb + 1) then
      table.insert(old, fields[j])
    else
      used = used + c
      table.insert(live, {fb, c})
    end
  end
  if #old > 0 then redis.call('HDEL', key, unpack(old)) end
  if used >= count then
    table.sort(live, function(x, y) return x[1] < y[1] end)
    local w = per
    for _, bc in ipairs(live) do
      used = used - bc[2]
      if used < count then
        w = math.max(1, math.ceil((bc[1] + nb + 1) * width - now))
        break
      end
    end
    if w > wait then wait = w end
    table.insert(over, i)
  end
end
if wait > 0 then
  local out = {wait}
  for _, i in ipairs(over) do table.insert(out, i) end
  return out
end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, cur[i], 1)
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 * i + 1]) * 2))
end
return {0}
"#;

/// Buckets per window, as the local limiter.
const BUCKETS: u32 = crate::quota::window::BUCKETS;

/// Takes one call from every shared quota the call falls under, or none.
pub async fn take(fleet: &FleetClient, ask: &Ask<'_>) -> Result<Result<(), Refusal>, FleetDown> {
    let p = &fleet.prefix;
    // (key, limit, member it is for)
    let mut entries: Vec<(String, crate::config::Rate, Option<&str>)> = Vec::new();
    if let Some(robot) = ask.robot {
        for r in ROBOT_LIMITS {
            entries.push((
                format!("{p}q:robot:{robot:x}:{}:{}", r.count, r.per.as_millis()),
                r,
                None,
            ));
        }
    } else {
        for r in ask.limits {
            entries.push((
                format!(
                    "{p}q:{}:{}:{}:{}",
                    ask.app,
                    ask.api,
                    r.count,
                    r.per.as_millis()
                ),
                *r,
                None,
            ));
        }
    }
    for user in ask.recipients {
        for r in RECIPIENT_LIMITS {
            entries.push((
                format!("{p}r:{}:{user}:{}:{}", ask.app, r.count, r.per.as_millis()),
                r,
                Some(user.as_str()),
            ));
        }
    }
    if entries.is_empty() {
        return Ok(Ok(()));
    }
    let script = Script::new(SCRIPT);
    let answer: Vec<i64> = fleet
        .run(|mut conn| {
            let (script, entries) = (&script, &entries);
            async move {
                let mut inv = script.prepare_invoke();
                inv.arg(BUCKETS);
                for (key, rate, _) in entries {
                    inv.key(key)
                        .arg(rate.count)
                        .arg(rate.per.as_millis() as u64);
                }
                inv.invoke_async(&mut conn).await
            }
        })
        .await?;
    let Some((&wait, over)) = answer.split_first() else {
        return Err(FleetDown);
    };
    if wait <= 0 {
        return Ok(Ok(()));
    }
    let wait = Duration::from_millis(wait as u64);
    let mut members: Vec<String> = over
        .iter()
        .filter_map(|&i| entries.get((i - 1) as usize).and_then(|e| e.2))
        .map(str::to_string)
        .collect();
    members.dedup();
    Ok(Err(if members.is_empty() {
        Refusal::Limit { wait }
    } else {
        Refusal::Recipients { members, wait }
    }))
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
