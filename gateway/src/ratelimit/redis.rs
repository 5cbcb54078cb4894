//! Limit state shared by every gateway replica: Lua scripts that run the
//! same arithmetic as [`super::gcra`] atomically in Redis, on the server's
//! clock.
//!
//! Concurrency slots are members of a sorted set per tenant, scored by the
//! end of their lease: a replica that dies leaves slots that expire on
//! their own, and a replica renews the leases of its long requests.
//! Every key of a tenant carries the tenant id as its hash tag, so a
//! tenant's checks run on one node of a Redis Cluster.

use super::{Concurrency, LimitCheck, LimitState, Outcome, Verdict};
use std::time::Duration;

/// How long a slot is held without renewal.
pub const LEASE: Duration = Duration::from_secs(60);

/// One script decides a request: drop expired slots, refuse when the
/// concurrency set is full, run GCRA on every limit, and only if all fit
/// spend them and add the slot.
/// KEYS: [concurrency set, limit keys…]
/// ARGV: [period µs, concurrency limit (-1: none, KEYS[1] is then unused),
///        slot member, lease µs, (emission µs, cost)…]
/// Returns [verdict (1 allowed, 0 requests, 2 concurrency), retry µs, tat-now per limit…].
const ADMIT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local cc_limit = tonumber(ARGV[2])
local verdict = 1
if cc_limit >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= cc_limit then verdict = 2 end
end
local n = #KEYS - 1
local olds = {}
local news = {}
local retry = 0
for i = 1, n do
  local em = tonumber(ARGV[3 + 2*i])
  local cost = tonumber(ARGV[4 + 2*i])
  local tat = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + em * cost
  if cost > 0 and new_tat - now > period then
    verdict = 0
    local r = new_tat - period - now
    if r > retry then retry = r end
  end
  olds[i] = tat
  news[i] = new_tat
end
local out = {verdict, retry}
for i = 1, n do
  local cost = tonumber(ARGV[4 + 2*i])
  local tat = olds[i]
  if verdict == 1 and cost > 0 then
    tat = news[i]
    redis.call('SET', KEYS[i + 1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
  end
  out[#out + 1] = tat - now
end
if verdict == 1 and cc_limit >= 0 then
  local lease = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + 1000)
end
return out
"#;

/// Spends tokens if they fit; if not, gives back one unit of each request
/// limit of the refused request.
/// KEYS: [token key, request keys…]; ARGV: [period µs, emission µs, cost, request emissions µs…]
/// Returns [allowed, retry µs, tat-now of the token key].
const RESERVE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[2]) * tonumber(ARGV[3])
if new_tat - now <= period then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
  return {1, 0, new_tat - now}
end
for i = 2, #KEYS do
  local r = tonumber(redis.call('GET', KEYS[i]) or '0')
  if r > now then
    local back = r - tonumber(ARGV[2 + i])
    if back < now then back = now end
    redis.call('SET', KEYS[i], string.format('%.0f', back), 'PX', math.ceil((back - now) / 1000) + 1000)
  end
end
return {0, new_tat - period - now, tat - now}
"#;

/// Moves an arrival time by `sign × emission × units`: forward without a
/// check (charges), or back but never before now (refunds).
/// KEYS: [key]; ARGV: [emission µs, units, sign]
const MOVE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[3]) * tonumber(ARGV[1]) * tonumber(ARGV[2])
if new_tat < now then new_tat = now end
if new_tat == now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 1
"#;

/// Extends the leases of slots a replica still holds in one set.
/// KEYS: [concurrency set]; ARGV: [lease µs, members…]
const RENEW_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
return 0
"#;

pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    admit: redis::Script,
    reserve: redis::Script,
    move_tat: redis::Script,
    renew: redis::Script,
}

/// The Redis key of a limit key (`{tenant}:…`, so the hash tag is the tenant).
fn redis_key(key: &str) -> String {
    format!("llmops:rl:{key}")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RedisStore {
    pub fn new(conn: redis::aio::ConnectionManager) -> Self {
        Self {
            conn,
            admit: redis::Script::new(ADMIT_LUA),
            reserve: redis::Script::new(RESERVE_LUA),
            move_tat: redis::Script::new(MOVE_LUA),
            renew: redis::Script::new(RENEW_LUA),
        }
    }

    pub async fn admit(
        &self,
        checks: &[LimitCheck],
        concurrency: Option<(&Concurrency, &str)>,
    ) -> Result<Outcome, redis::RedisError> {
        let mut inv = self.admit.prepare_invoke();
        inv.arg(super::PERIOD_US);
        match concurrency {
            Some((c, member)) => {
                inv.key(redis_key(&c.key))
                    .arg(c.limit)
                    .arg(member)
                    .arg(micros(LEASE));
            }
            None => {
                // A key of the same hash slot stands in (Redis Cluster
                // refuses keys of several slots in one script).
                let first = checks.first().map(|c| c.key.as_str()).unwrap_or("none");
                inv.key(redis_key(first)).arg(-1).arg("").arg(0);
            }
        }
        for c in checks {
            inv.key(redis_key(&c.key));
            inv.arg(c.emission_us()).arg(c.cost);
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = inv.invoke_async(&mut conn).await?;
        let get = |i: usize| u64::try_from(out.get(i).copied().unwrap_or(0).max(0)).unwrap_or(0);
        let verdict = match out.first().copied().unwrap_or(0) {
            1 => Verdict::Allowed,
            2 => Verdict::Concurrency,
            _ => Verdict::Requests {
                retry_after: Duration::from_micros(get(1)),
            },
        };
        Ok(Outcome {
            verdict,
            states: (0..checks.len())
                .map(|i| LimitState {
                    tat_ahead_us: get(2 + i),
                })
                .collect(),
        })
    }

    pub async fn reserve(
        &self,
        check: &LimitCheck,
        give_back: &[LimitCheck],
    ) -> Result<Outcome, redis::RedisError> {
        let mut inv = self.reserve.prepare_invoke();
        inv.key(redis_key(&check.key))
            .arg(super::PERIOD_US)
            .arg(check.emission_us())
            .arg(check.cost);
        for g in give_back {
            inv.key(redis_key(&g.key)).arg(g.emission_us());
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = inv.invoke_async(&mut conn).await?;
        let get = |i: usize| u64::try_from(out.get(i).copied().unwrap_or(0).max(0)).unwrap_or(0);
        Ok(Outcome {
            verdict: if get(0) == 1 {
                Verdict::Allowed
            } else {
                Verdict::Requests {
                    retry_after: Duration::from_micros(get(1)),
                }
            },
            states: vec![LimitState {
                tat_ahead_us: get(2),
            }],
        })
    }

    /// Charges (`forward`) or refunds `check.cost` units.
    pub async fn move_tat(
        &self,
        check: &LimitCheck,
        forward: bool,
    ) -> Result<(), redis::RedisError> {
        let mut inv = self.move_tat.prepare_invoke();
        inv.key(redis_key(&check.key))
            .arg(check.emission_us())
            .arg(check.cost)
            .arg(if forward { 1 } else { -1 });
        let mut conn = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Frees slots (`(set key, member)` pairs) in one round trip.
    pub async fn release(&self, slots: &[(String, String)]) -> Result<(), redis::RedisError> {
        if slots.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, member) in slots {
            pipe.zrem(redis_key(key), member).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Renews the leases of slots this replica holds, one set at a time.
    pub async fn renew(&self, key: &str, members: &[String]) -> Result<(), redis::RedisError> {
        let mut inv = self.renew.prepare_invoke();
        inv.key(redis_key(key)).arg(micros(LEASE));
        for m in members {
            inv.arg(m);
        }
        let mut conn = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }
}
