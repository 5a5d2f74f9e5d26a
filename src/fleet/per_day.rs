//! The fleet's member-send counts per app per China day (`recipients_per_day`): one Redis
//! counter per app and day, checked and raised in one atomic script, so the fleet together
//! stays under the cap. The day is taken from the sidecar's clock (`quota::day`); the key
//! expires a day after that day ends. The sliding-window quota script does not fit calendar
//! days, hence this one.

use redis::Script;

use super::{FleetClient, FleetDown};
use crate::config::AppName;
use crate::quota::day;

const SCRIPT: &str = r#"
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + n > limit then return 0 end
redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"#;

/// Counts `members` sends of `app` today if the fleet's count stays under `limit`:
/// `Ok(true)` counted, `Ok(false)` over the cap (nothing counted).
pub async fn take(
    fleet: &FleetClient,
    app: &AppName,
    members: u64,
    limit: u64,
    now_unix: u64,
) -> Result<bool, FleetDown> {
    let key = format!("{}d:{app}:{}", fleet.prefix, day::china_day(now_unix));
    let ttl = day::until_china_midnight(now_unix).as_secs() + 86_400;
    let script = Script::new(SCRIPT);
    let passed: i64 = fleet
        .run(|mut conn| {
            let (script, key) = (&script, &key);
            async move {
                script
                    .key(key)
                    .arg(members)
                    .arg(limit)
                    .arg(ttl)
                    .invoke_async(&mut conn)
                    .await
            }
        })
        .await?;
    Ok(passed == 1)
}

#[cfg(test)]
#[path = "per_day_tests.rs"]
mod tests;
