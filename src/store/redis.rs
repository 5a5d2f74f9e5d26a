//! The fleet's store: one Redis Stream per queue, read through one consumer group, so a queue
//! outlives any one sidecar and each item is handed to one sidecar at a time.
//!
//! Keys, under the fleet's `key_prefix` (`P`) and a queue name `Q`:
//! - `P:q:{Q}` the stream. An item's id `N` (from `P:q:{Q}:seq`) is its entry id `0-N`, so ids
//!   and stream order are the same and an admin names items by `N`.
//! - `P:q:{Q}:owner` the sidecar that delivers this queue now, held for `lease` and renewed on
//!   every [`Store::head`]. Only the owner reads, which keeps one queue in order across a fleet.
//!   When the owner dies its lease runs out, another sidecar takes it and claims the dead one's
//!   unacknowledged entry (`XAUTOCLAIM`), attempts and all.
//! - `P:q:{Q}:seen:{key}` a key's first id, for `remember_for`; `P:q:{Q}:tries` attempts and
//!   last errors; `P:q:{Q}:dead` the dead letters (a stream of their own, same ids).
//! - `P:store:bytes` what every queue's items hold (meta and payload, dead letters included),
//!   kept by the scripts that add and remove items, for `store.max_bytes`. One key beside
//!   every queue's: a script touching it and a queue's keys needs one Redis, not a Cluster.
//!
//! What must be atomic (add with its dedupe, bury, revive) is one Lua script each. Every call has
//! the fleet's timeout; an error is a [`StoreError`], so the caller acknowledges nothing.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};

use super::{now_ms, Added, Depth, Full, Item, Leases, Limits, Store, StoreError};

const GROUP: &str = "sidecars";

/// KEYS: seq, stream, seen, bytes. ARGV: remember_ms, added_ms, meta, payload, max_bytes,
/// max_queued (`-1`: no bound). Returns {1, id} when added, {0, id} for a key seen before,
/// {2, waiting} past max_queued, {3, used} past max_bytes.
const ADD: &str = r"
local seen = redis.call('GET', KEYS[3])
if seen then return {0, tonumber(seen)} end
if ARGV[6] ~= '-1' then
  local waiting = redis.call('XLEN', KEYS[2])
  if waiting >= tonumber(ARGV[6]) then return {2, waiting} end
end
local size = #ARGV[3] + #ARGV[4]
if ARGV[5] ~= '-1' then
  local used = tonumber(redis.call('GET', KEYS[4]) or '0')
  if used + size > tonumber(ARGV[5]) then return {3, used} end
end
local id = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], '0-' .. id, 'added_ms', ARGV[2], 'meta', ARGV[3], 'payload', ARGV[4])
redis.call('SET', KEYS[3], id, 'PX', ARGV[1])
redis.call('INCRBY', KEYS[4], size)
return {1, id}
";

/// The bytes of an entry's fields (as XRANGE gives them): its meta and payload; and freeing
/// them from the count.
const SIZE_OF: &str = r"
local function size_of(f)
  local n = 0
  for i = 1, #f, 2 do
    if f[i] == 'meta' or f[i] == 'payload' then n = n + #f[i + 1] end
  end
  return n
end
-- Frees n bytes of the count; items stored before the count existed never made it negative.
local function free(key, n)
  if redis.call('DECRBY', key, n) < 0 then redis.call('SET', key, 0) end
end
";

/// KEYS: stream, tries, bytes. ARGV: id. Entry 0-id delivered: acknowledged, deleted, its
/// bytes freed.
const DONE: &str = r"
local e = redis.call('XRANGE', KEYS[1], '0-' .. ARGV[1], '0-' .. ARGV[1])
redis.call('XACK', KEYS[1], 'sidecars', '0-' .. ARGV[1])
redis.call('XDEL', KEYS[1], '0-' .. ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1] .. ':n', ARGV[1] .. ':e')
if #e > 0 then free(KEYS[3], size_of(e[1][2])) end
return 1
";

/// KEYS: dead, bytes. ARGV: id. Dead letter 0-id deleted, its bytes freed; 0 if none.
const FORGET: &str = r"
local e = redis.call('XRANGE', KEYS[1], '0-' .. ARGV[1], '0-' .. ARGV[1])
if #e == 0 then return 0 end
redis.call('XDEL', KEYS[1], '0-' .. ARGV[1])
free(KEYS[2], size_of(e[1][2]))
return 1
";

/// KEYS: owner. ARGV: consumer, lease_ms. Takes or renews the lease; 0 when another holds it.
const OWN: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// KEYS: stream, dead, tries. ARGV: id, error. Moves entry 0-id to the dead stream.
const BURY: &str = r"
local e = redis.call('XRANGE', KEYS[1], '0-' .. ARGV[1], '0-' .. ARGV[1])
if #e == 0 then return 0 end
local f = e[1][2]
local attempts = redis.call('HGET', KEYS[3], ARGV[1] .. ':n') or '0'
redis.call('XADD', KEYS[2], '0-' .. ARGV[1], f[1], f[2], f[3], f[4], f[5], f[6],
  'attempts', attempts, 'last_error', ARGV[2])
redis.call('XACK', KEYS[1], 'sidecars', '0-' .. ARGV[1])
redis.call('XDEL', KEYS[1], '0-' .. ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1] .. ':n', ARGV[1] .. ':e')
return 1
";

/// KEYS: seq, stream, dead. ARGV: id, added_ms. A dead letter back at the tail with a new id.
const REVIVE: &str = r"
local e = redis.call('XRANGE', KEYS[3], '0-' .. ARGV[1], '0-' .. ARGV[1])
if #e == 0 then return 0 end
local f = e[1][2]
local meta, payload
for i = 1, #f, 2 do
  if f[i] == 'meta' then meta = f[i + 1] elseif f[i] == 'payload' then payload = f[i + 1] end
end
local id = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], '0-' .. id, 'added_ms', ARGV[2], 'meta', meta, 'payload', payload)
redis.call('XDEL', KEYS[3], '0-' .. ARGV[1])
return id
";

/// The Redis Streams store.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    /// This sidecar's consumer name in the group (unique per process).
    consumer: String,
    lease: Leases,
    remember: Duration,
    timeout: Duration,
    add: Script,
    own: Script,
    bury: Script,
    revive: Script,
    done: Script,
    forget: Script,
}

impl RedisStore {
    /// A store on `conn` under `prefix`; `consumer` names this sidecar (unique in the fleet),
    /// `lease` is how long a queue stays with a sidecar that stopped renewing it, by kind.
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        consumer: &str,
        lease: Leases,
        remember: Duration,
        timeout: Duration,
    ) -> RedisStore {
        RedisStore {
            conn,
            prefix: prefix.to_owned(),
            consumer: consumer.to_owned(),
            lease,
            remember,
            timeout,
            add: Script::new(ADD),
            own: Script::new(OWN),
            bury: Script::new(BURY),
            revive: Script::new(REVIVE),
            done: Script::new(&format!("{SIZE_OF}{DONE}")),
            forget: Script::new(&format!("{SIZE_OF}{FORGET}")),
        }
    }

    /// `P:store:bytes`.
    fn bytes_key(&self) -> String {
        format!("{}:store:bytes", self.prefix)
    }

    fn key(&self, queue: &str, part: &str) -> String {
        if part.is_empty() {
            format!("{}:q:{{{queue}}}", self.prefix)
        } else {
            format!("{}:q:{{{queue}}}:{part}", self.prefix)
        }
    }

    async fn io<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Io(format!("Redis: {:?}", e.kind()))),
            Err(_) => Err(StoreError::Io(format!(
                "Redis did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Creates the group (from the stream's start) unless it exists.
    async fn ensure_group(&self, stream: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(StoreError::Io(format!("Redis: {:?}", e.kind()))),
        }
    }

    /// Takes or renews this sidecar's lease on `queue`; false when another sidecar holds it.
    async fn own(&self, queue: &str) -> Result<bool, StoreError> {
        let owner = self.key(queue, "owner");
        let lease = self.lease.of(queue).as_millis().max(1) as u64;
        let mut c = self.conn.clone();
        let got: i64 = self
            .io(self
                .own
                .key(owner)
                .arg(&self.consumer)
                .arg(lease)
                .invoke_async(&mut c))
            .await?;
        Ok(got == 1)
    }

    async fn tries(&self, queue: &str, id: u64) -> Result<(u32, Option<String>), StoreError> {
        let mut c = self.conn.clone();
        let (n, e): (Option<u32>, Option<String>) = self
            .io(c.hget(
                self.key(queue, "tries"),
                (format!("{id}:n"), format!("{id}:e")),
            ))
            .await?;
        Ok((n.unwrap_or(0), e))
    }
}

/// `0-N` to `N`.
fn id_of(entry: &str) -> Option<u64> {
    entry.strip_prefix("0-")?.parse().ok()
}

/// An entry's fields as (name, value) pairs.
type Fields = Vec<(String, Vec<u8>)>;

fn fields(v: &Value) -> Fields {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .chunks(2)
        .filter_map(|kv| match kv {
            [Value::BulkString(k), Value::BulkString(v)] => {
                Some((String::from_utf8_lossy(k).into_owned(), v.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The first `[id, fields]` entry of a list of entries.
fn first_entry(entries: &Value) -> Option<(u64, Fields)> {
    let Value::Array(list) = entries else {
        return None;
    };
    let Value::Array(entry) = list.first()? else {
        return None;
    };
    let [Value::BulkString(id), f] = entry.as_slice() else {
        return None;
    };
    Some((id_of(std::str::from_utf8(id).ok()?)?, fields(f)))
}

fn item_from(id: u64, f: Fields, attempts: u32, last: Option<String>) -> Item {
    let mut item = Item {
        id,
        added_ms: 0,
        attempts,
        last_error: last,
        meta: Vec::new(),
        payload: Vec::new(),
    };
    for (k, v) in f {
        match k.as_str() {
            "added_ms" => item.added_ms = String::from_utf8_lossy(&v).parse().unwrap_or(0),
            "meta" => item.meta = v,
            "payload" => item.payload = v,
            "attempts" => item.attempts = String::from_utf8_lossy(&v).parse().unwrap_or(0),
            "last_error" => item.last_error = Some(String::from_utf8_lossy(&v).into_owned()),
            _ => {}
        }
    }
    item
}

#[async_trait::async_trait]
impl Store for RedisStore {
    fn remember_for(&self) -> Duration {
        self.remember
    }

    async fn add_within(
        &self,
        queue: &str,
        key: [u8; 32],
        meta: &[u8],
        payload: &[u8],
        limits: Limits,
    ) -> Result<Result<Added, Full>, StoreError> {
        let stream = self.key(queue, "");
        self.ensure_group(&stream).await?;
        let bound = |v: u64| {
            if v == u64::MAX {
                -1
            } else {
                i64::try_from(v).unwrap_or(i64::MAX)
            }
        };
        let mut c = self.conn.clone();
        let (what, n): (i64, u64) = self
            .io(self
                .add
                .key(self.key(queue, "seq"))
                .key(&stream)
                .key(self.key(queue, &format!("seen:{}", hex::encode(key))))
                .key(self.bytes_key())
                .arg(self.remember.as_millis().max(1) as u64)
                .arg(now_ms())
                .arg(meta)
                .arg(payload)
                .arg(bound(limits.max_bytes))
                .arg(bound(limits.max_queued))
                .invoke_async(&mut c))
            .await?;
        Ok(match what {
            1 => Ok(Added::New(n)),
            0 => Ok(Added::Duplicate(n)),
            2 => Err(Full::Queued {
                queued: n,
                max: limits.max_queued,
            }),
            _ => Err(Full::Bytes {
                used: n,
                size: (meta.len() + payload.len()) as u64,
                max: limits.max_bytes,
            }),
        })
    }

    async fn used_bytes(&self) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        let used: Option<i64> = self.io(c.get(self.bytes_key())).await?;
        Ok(used.map_or(0, |u| u64::try_from(u).unwrap_or(0)))
    }

    async fn head(&self, queue: &str) -> Result<Option<Item>, StoreError> {
        Ok(self.head_held(queue).await?.map(|(item, _)| item))
    }

    async fn head_held(
        &self,
        queue: &str,
    ) -> Result<Option<(Item, Option<std::time::Instant>)>, StoreError> {
        // Counted from before the renewal is sent: Redis starts the lease later, never sooner.
        let held_until = std::time::Instant::now() + self.lease.of(queue);
        if !self.own(queue).await? {
            return Ok(None);
        }
        let stream = self.key(queue, "");
        self.ensure_group(&stream).await?;
        let mut c = self.conn.clone();
        // An entry handed out before (to this sidecar, or to one whose lease ran out) first.
        let claimed: Value = self
            .io(redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(0)
                .arg("0-0")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut c))
            .await?;
        let pending = match &claimed {
            Value::Array(parts) => parts.get(1).and_then(first_entry),
            _ => None,
        };
        let entry = match pending {
            Some(e) => Some(e),
            None => {
                let read: Value = self
                    .io(redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(GROUP)
                        .arg(&self.consumer)
                        .arg("COUNT")
                        .arg(1)
                        .arg("STREAMS")
                        .arg(&stream)
                        .arg(">")
                        .query_async(&mut c))
                    .await?;
                // [[stream, [[id, fields]]]] or nil.
                match &read {
                    Value::Array(streams) => match streams.first() {
                        Some(Value::Array(s)) => s.get(1).and_then(first_entry),
                        _ => None,
                    },
                    _ => None,
                }
            }
        };
        let Some((id, f)) = entry else {
            return Ok(None);
        };
        let (attempts, last) = self.tries(queue, id).await?;
        Ok(Some((item_from(id, f, attempts, last), Some(held_until))))
    }

    async fn done(&self, queue: &str, id: u64) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: i64 = self
            .io(self
                .done
                .key(self.key(queue, ""))
                .key(self.key(queue, "tries"))
                .key(self.bytes_key())
                .arg(id)
                .invoke_async(&mut c))
            .await?;
        Ok(())
    }

    async fn failed(&self, queue: &str, id: u64, error: &str) -> Result<u32, StoreError> {
        let tries = self.key(queue, "tries");
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hincr(&tries, format!("{id}:n"), 1)
            .hset(&tries, format!("{id}:e"), error)
            .ignore();
        let (n,): (u32,) = self.io(pipe.query_async(&mut c)).await?;
        Ok(n)
    }

    async fn bury(&self, queue: &str, id: u64, error: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: i64 = self
            .io(self
                .bury
                .key(self.key(queue, ""))
                .key(self.key(queue, "dead"))
                .key(self.key(queue, "tries"))
                .arg(id)
                .arg(error)
                .invoke_async(&mut c))
            .await?;
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<Depth, StoreError> {
        let mut c = self.conn.clone();
        let stream = self.key(queue, "");
        let mut pipe = redis::pipe();
        pipe.xlen(&stream)
            .cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .xlen(self.key(queue, "dead"));
        let (queued, first, dead): (u64, Value, u64) = self.io(pipe.query_async(&mut c)).await?;
        let oldest_ms = first_entry(&first).map(|(id, f)| item_from(id, f, 0, None).added_ms);
        Ok(Depth {
            queued,
            oldest_ms,
            dead,
        })
    }

    async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Item>, StoreError> {
        let mut c = self.conn.clone();
        let list: Value = self
            .io(redis::cmd("XRANGE")
                .arg(self.key(queue, "dead"))
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(limit.max(1))
                .query_async(&mut c))
            .await?;
        let Value::Array(entries) = list else {
            return Ok(Vec::new());
        };
        Ok(entries
            .iter()
            .filter_map(|e| first_entry(&Value::Array(vec![e.clone()])))
            .map(|(id, f)| item_from(id, f, 0, None))
            .collect())
    }

    async fn revive(&self, queue: &str, id: u64) -> Result<Option<u64>, StoreError> {
        let mut c = self.conn.clone();
        let new: u64 = self
            .io(self
                .revive
                .key(self.key(queue, "seq"))
                .key(self.key(queue, ""))
                .key(self.key(queue, "dead"))
                .arg(id)
                .arg(now_ms())
                .invoke_async(&mut c))
            .await?;
        Ok((new > 0).then_some(new))
    }

    async fn forget(&self, queue: &str, id: u64) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let n: i64 = self
            .io(self
                .forget
                .key(self.key(queue, "dead"))
                .key(self.bytes_key())
                .arg(id)
                .invoke_async(&mut c))
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
