//! Per-tenant and per-key rate limits with GCRA (the generic cell rate
//! algorithm), in process or shared through Redis.
//!
//! One pure function ([`gcra`]) decides; two stores keep the state: a map in
//! this process, or Redis (a Lua script that runs the same arithmetic
//! atomically on the server's clock, so every gateway replica shares one
//! budget). Several limits are checked together and all-or-nothing: a
//! request refused by its key's limit does not spend its tenant's budget.

use llmops_core::error::LimitHeaders;
use llmops_core::tenancy::{PlanLimits, Principal, TenantCtx};
use llmops_core::{ApiError, ApiResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window every limit is expressed in: OpenAI's per-minute limits.
pub const PERIOD_US: u64 = 60_000_000;

/// One limit to check: `limit` units per minute under `key`; `cost` units
/// now (0 only reads the state, for headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    pub key: String,
    pub limit: u32,
    pub cost: u32,
}

impl LimitCheck {
    fn emission_us(&self) -> u64 {
        (PERIOD_US / u64::from(self.limit.max(1))).max(1)
    }
}

/// The state of one limit after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Theoretical arrival time minus now, in µs (0: full budget).
    pub tat_ahead_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// When refused: how long until the whole request would fit.
    pub retry_after: Duration,
    pub states: Vec<LimitState>,
}

/// GCRA on one limit. `tat` is the stored theoretical arrival time (µs on
/// the store's clock); returns `(fits, new_tat, retry_after_us)`.
pub fn gcra(now: u64, tat: u64, emission_us: u64, cost: u32) -> (bool, u64, u64) {
    let tat = tat.max(now);
    let new_tat = tat.saturating_add(emission_us.saturating_mul(u64::from(cost)));
    if new_tat - now > PERIOD_US {
        (false, tat, new_tat - PERIOD_US - now)
    } else {
        (true, new_tat, 0)
    }
}

/// What a check means for the response headers.
pub fn headers_for(check: &LimitCheck, state: LimitState, dimension: &'static str) -> LimitHeaders {
    let used_us = state.tat_ahead_us.min(PERIOD_US);
    let remaining = (PERIOD_US - used_us) / check.emission_us();
    LimitHeaders {
        dimension,
        limit: u64::from(check.limit),
        remaining: remaining.min(u64::from(check.limit)),
        reset: Duration::from_micros(state.tat_ahead_us),
    }
}

// ---------------------------------------------------------------- stores

/// State kept in this process.
pub struct MemoryStore {
    epoch: Instant,
    tats: Mutex<HashMap<String, u64>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            tats: Mutex::new(HashMap::new()),
        }
    }
}

impl MemoryStore {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn check(&self, checks: &[LimitCheck]) -> Outcome {
        let now = self.now_us();
        let Ok(mut map) = self.tats.lock() else {
            // A poisoned lock means a panic elsewhere; fail open rather than
            // refusing every tenant.
            return Outcome {
                allowed: true,
                retry_after: Duration::ZERO,
                states: checks
                    .iter()
                    .map(|_| LimitState { tat_ahead_us: 0 })
                    .collect(),
            };
        };
        if map.len() > 50_000 {
            // Entries whose TAT is past are the same as absent ones.
            map.retain(|_, tat| *tat > now);
        }
        let mut allowed = true;
        let mut retry = 0;
        let mut next = Vec::with_capacity(checks.len());
        for c in checks {
            let tat = map.get(&c.key).copied().unwrap_or(0);
            let (fits, new_tat, r) = gcra(now, tat, c.emission_us(), c.cost);
            if c.cost > 0 && !fits {
                allowed = false;
                retry = retry.max(r);
            }
            next.push((tat.max(now), new_tat));
        }
        let states = checks
            .iter()
            .zip(next)
            .map(|(c, (old, new))| {
                let tat = if allowed && c.cost > 0 {
                    map.insert(c.key.clone(), new);
                    new
                } else {
                    old
                };
                LimitState {
                    tat_ahead_us: tat - now,
                }
            })
            .collect();
        Outcome {
            allowed,
            retry_after: Duration::from_micros(retry),
            states,
        }
    }
}

impl MemoryStore {
    /// Moves a limit's TAT back by `units` (never before now).
    pub fn refund(&self, key: &str, emission_us: u64, units: u32) {
        let now = self.now_us();
        if let Ok(mut map) = self.tats.lock()
            && let Some(tat) = map.get_mut(key)
        {
            *tat = tat
                .saturating_sub(emission_us.saturating_mul(u64::from(units)))
                .max(now);
        }
    }
}

/// Gives back units of a limit: its TAT moves back, never before now.
const REFUND_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat <= now then return 0 end
local new_tat = tat - tonumber(ARGV[1]) * tonumber(ARGV[2])
if new_tat < now then new_tat = now end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 1
"#;

/// The same arithmetic as [`gcra`], atomic in Redis on the server's clock.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local n = #KEYS
local olds = {}
local news = {}
local allowed = 1
local retry = 0
for i = 1, n do
  local em = tonumber(ARGV[2*i])
  local cost = tonumber(ARGV[2*i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + em * cost
  if cost > 0 and new_tat - now > period then
    allowed = 0
    local r = new_tat - period - now
    if r > retry then retry = r end
  end
  olds[i] = tat
  news[i] = new_tat
end
local out = {allowed, retry}
for i = 1, n do
  local cost = tonumber(ARGV[2*i + 1])
  local tat = olds[i]
  if allowed == 1 and cost > 0 then
    tat = news[i]
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
  end
  out[#out + 1] = tat - now
end
return out
"#;

pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    refund: redis::Script,
}

impl RedisStore {
    pub fn new(conn: redis::aio::ConnectionManager) -> Self {
        Self {
            conn,
            script: redis::Script::new(GCRA_LUA),
            refund: redis::Script::new(REFUND_LUA),
        }
    }

    pub async fn check(&self, checks: &[LimitCheck]) -> Result<Outcome, redis::RedisError> {
        let mut inv = self.script.prepare_invoke();
        inv.arg(PERIOD_US);
        for c in checks {
            inv.key(format!("llmops:rl:{}", c.key));
            inv.arg(c.emission_us()).arg(c.cost);
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = inv.invoke_async(&mut conn).await?;
        let get = |i: usize| u64::try_from(out.get(i).copied().unwrap_or(0).max(0)).unwrap_or(0);
        Ok(Outcome {
            allowed: get(0) == 1,
            retry_after: Duration::from_micros(get(1)),
            states: (0..checks.len())
                .map(|i| LimitState {
                    tat_ahead_us: get(2 + i),
                })
                .collect(),
        })
    }
}

impl RedisStore {
    pub async fn refund(
        &self,
        key: &str,
        emission_us: u64,
        units: u32,
    ) -> Result<(), redis::RedisError> {
        let mut inv = self.refund.prepare_invoke();
        inv.key(format!("llmops:rl:{key}"))
            .arg(emission_us)
            .arg(units);
        let mut conn = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- limiter

/// Admission result for one request: headers to send, and the concurrency
/// slot it holds until dropped.
pub struct Admission {
    pub headers: Vec<LimitHeaders>,
    pub slot: ConcurrencySlot,
}

pub struct ConcurrencySlot(Arc<AtomicU32>);

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct RateLimiter {
    memory: MemoryStore,
    redis: Option<RedisStore>,
    in_flight: Mutex<HashMap<String, Arc<AtomicU32>>>,
}

impl RateLimiter {
    pub fn new(redis: Option<RedisStore>) -> Self {
        Self {
            memory: MemoryStore::default(),
            redis,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Runs the checks on the shared store, or on this process's when there
    /// is none. If Redis fails the request is judged by this replica's own
    /// state (degraded, never unlimited) and the failure is logged; `/readyz`
    /// reports Redis as down meanwhile.
    pub async fn check(&self, checks: &[LimitCheck]) -> Outcome {
        if let Some(r) = &self.redis {
            match r.check(checks).await {
                Ok(o) => return o,
                Err(e) => {
                    metrics::counter!("ratelimit_store_errors_total").increment(1);
                    tracing::warn!(error = %e, "redis rate-limit store failed; using the local store");
                }
            }
        }
        self.memory.check(checks)
    }

    fn request_checks(ctx: &TenantCtx) -> Vec<LimitCheck> {
        let PlanLimits {
            requests_per_minute,
            tokens_per_minute,
            ..
        } = ctx.limits();
        let tenant = ctx.tenant_id();
        let mut checks = vec![
            LimitCheck {
                key: format!("req:{tenant}"),
                limit: requests_per_minute,
                cost: 1,
            },
            LimitCheck {
                key: format!("tok:{tenant}"),
                limit: tokens_per_minute,
                cost: 0,
            },
        ];
        if let Principal::ApiKey {
            id,
            requests_per_minute: Some(key_rpm),
        } = ctx.principal()
        {
            checks.push(LimitCheck {
                key: format!("req:{id}"),
                limit: key_rpm,
                cost: 1,
            });
        }
        checks
    }

    /// Admits one request of `ctx`: its tenant's and key's requests per
    /// minute, and its tenant's concurrent requests on this replica.
    pub async fn admit(&self, ctx: &TenantCtx) -> ApiResult<Admission> {
        let checks = Self::request_checks(ctx);
        let outcome = self.check(&checks).await;
        let headers = Self::headers(&checks, &outcome);
        if !outcome.allowed {
            return Err(ApiError::RateLimited {
                dimension: "requests",
                retry_after: outcome.retry_after,
                headers,
            });
        }
        let slot = self.acquire_slot(
            ctx.tenant_id().to_string(),
            ctx.limits().concurrent_requests,
        )?;
        Ok(Admission { headers, slot })
    }

    /// Headers: for requests, the tighter of the tenant's and the key's limits.
    fn headers(checks: &[LimitCheck], outcome: &Outcome) -> Vec<LimitHeaders> {
        let mut req: Option<LimitHeaders> = None;
        let mut tok = None;
        for (c, s) in checks.iter().zip(&outcome.states) {
            if c.key.starts_with("tok:") {
                tok = Some(headers_for(c, *s, "tokens"));
            } else {
                let h = headers_for(c, *s, "requests");
                if req.as_ref().is_none_or(|r| h.remaining < r.remaining) {
                    req = Some(h);
                }
            }
        }
        req.into_iter().chain(tok).collect()
    }

    /// One of `limit` concurrent slots under `key` on this replica.
    fn acquire_slot(&self, key: String, limit: u32) -> ApiResult<ConcurrencySlot> {
        let counter = {
            let mut map = self
                .in_flight
                .lock()
                .map_err(|_| ApiError::Internal("in-flight map poisoned".into()))?;
            if map.len() > 50_000 {
                map.retain(|_, c| c.load(Ordering::Acquire) > 0);
            }
            map.entry(key)
                .or_insert_with(|| Arc::new(AtomicU32::new(0)))
                .clone()
        };
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        let slot = ConcurrencySlot(counter);
        if prev >= limit {
            return Err(ApiError::ConcurrencyLimited { limit });
        }
        Ok(slot)
    }

    /// Spends `tokens` of the tenant's tokens-per-minute budget (serving
    /// calls this with a request's estimated tokens before it runs).
    pub async fn consume_tokens(&self, ctx: &TenantCtx, tokens: u32) -> ApiResult<LimitHeaders> {
        self.consume(
            format!("tok:{}", ctx.tenant_id()),
            ctx.limits().tokens_per_minute,
            tokens,
        )
        .await
    }

    async fn consume(&self, key: String, limit: u32, tokens: u32) -> ApiResult<LimitHeaders> {
        let check = LimitCheck {
            key,
            limit,
            cost: tokens,
        };
        if tokens > check.limit {
            return Err(ApiError::validation(
                "max_tokens",
                format!(
                    "this request needs {tokens} tokens, more than the plan's {} tokens per minute",
                    check.limit
                ),
            ));
        }
        let outcome = self.check(std::slice::from_ref(&check)).await;
        let state = outcome
            .states
            .first()
            .copied()
            .unwrap_or(LimitState { tat_ahead_us: 0 });
        let headers = headers_for(&check, state, "tokens");
        if !outcome.allowed {
            return Err(ApiError::RateLimited {
                dimension: "tokens",
                retry_after: outcome.retry_after,
                headers: vec![headers],
            });
        }
        Ok(headers)
    }

    /// Gives back tokens reserved but not used.
    pub async fn refund_tokens(&self, ctx: &TenantCtx, tokens: u32) {
        if tokens == 0 {
            return;
        }
        let check = LimitCheck {
            key: format!("tok:{}", ctx.tenant_id()),
            limit: ctx.limits().tokens_per_minute,
            cost: 0,
        };
        if let Some(r) = &self.redis {
            match r.refund(&check.key, check.emission_us(), tokens).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "redis refund failed; refunding locally"),
            }
        }
        self.memory.refund(&check.key, check.emission_us(), tokens);
    }

    /// A keyed limit outside tenancy (e.g. login attempts per email).
    pub async fn check_key(&self, key: String, per_minute: u32) -> ApiResult<()> {
        let check = LimitCheck {
            key,
            limit: per_minute,
            cost: 1,
        };
        let outcome = self.check(std::slice::from_ref(&check)).await;
        if outcome.allowed {
            Ok(())
        } else {
            Err(ApiError::RateLimited {
                dimension: "requests",
                retry_after: outcome.retry_after,
                headers: vec![],
            })
        }
    }
}

#[async_trait::async_trait]
impl llmops_core::limits::TokenBudget for RateLimiter {
    async fn reserve(&self, ctx: &TenantCtx, tokens: u32) -> ApiResult<LimitHeaders> {
        self.consume_tokens(ctx, tokens).await
    }

    async fn refund(&self, ctx: &TenantCtx, tokens: u32) {
        self.refund_tokens(ctx, tokens).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(limit: u32, cost: u32) -> LimitCheck {
        LimitCheck {
            key: "k".into(),
            limit,
            cost,
        }
    }

    #[test]
    fn a_full_minute_burst_then_refusal() {
        let em = check(60, 1).emission_us();
        let mut tat = 0;
        let now = 10_000_000;
        for _ in 0..60 {
            let (ok, t, _) = gcra(now, tat, em, 1);
            assert!(ok);
            tat = t;
        }
        let (ok, _, retry) = gcra(now, tat, em, 1);
        assert!(!ok);
        assert_eq!(
            retry, em,
            "one emission interval until the next request fits"
        );
        // After one interval exactly one more fits.
        let (ok, t, _) = gcra(now + em, tat, em, 1);
        assert!(ok);
        let (ok, _, _) = gcra(now + em, t, em, 1);
        assert!(!ok);
    }

    /// Property over random arrivals: in any window of length W the number
    /// admitted is at most the burst plus what the rate refills in W, and a
    /// request that finds a full budget is always admitted.
    #[test]
    fn gcra_never_admits_more_than_burst_plus_refill() {
        use rand::{Rng, SeedableRng};
        for seed in 0..50u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let limit: u32 = rng.random_range(1..=120);
            let em = check(limit, 1).emission_us();
            let mut now = 0u64;
            let mut tat = 0u64;
            let mut admitted = Vec::new();
            for _ in 0..2_000 {
                now += rng.random_range(0..3 * em);
                let full = tat <= now;
                let (ok, t, retry) = gcra(now, tat, em, 1);
                if full {
                    assert!(ok, "seed {seed}: a full budget refused");
                }
                if ok {
                    tat = t;
                    admitted.push(now);
                } else {
                    assert!(retry > 0 && retry <= em, "seed {seed}: retry {retry}");
                }
            }
            for (i, &start) in admitted.iter().enumerate() {
                for w in [PERIOD_US / 10, PERIOD_US, 3 * PERIOD_US] {
                    let n = admitted[i..]
                        .iter()
                        .take_while(|&&t| t <= start + w)
                        .count() as u64;
                    assert!(
                        n <= u64::from(limit) + w / em + 1,
                        "seed {seed}: {n} admitted in {w} µs with limit {limit}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_cost_larger_than_the_budget_never_fits() {
        let em = check(10, 11).emission_us();
        let (ok, _, _) = gcra(0, 0, em, 11);
        assert!(!ok);
    }

    #[test]
    fn memory_store_is_all_or_nothing() {
        let store = MemoryStore::default();
        let tenant = LimitCheck {
            key: "tenant".into(),
            limit: 100,
            cost: 1,
        };
        let key = LimitCheck {
            key: "key".into(),
            limit: 2,
            cost: 1,
        };
        let both = [tenant.clone(), key];
        assert!(store.check(&both).allowed);
        assert!(store.check(&both).allowed);
        let refused = store.check(&both);
        assert!(!refused.allowed);
        // The refused request did not spend the tenant's budget: 98 left.
        let peek = store.check(&[LimitCheck {
            cost: 0,
            ..tenant.clone()
        }]);
        assert_eq!(
            headers_for(&tenant, peek.states[0], "requests").remaining,
            98
        );
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(f),
            Err(e) => panic!("runtime: {e}"),
        }
    }

    #[test]
    fn tokens_are_spent_and_refused_with_token_headers() {
        let limiter = RateLimiter::new(None);
        block_on(async {
            let h = limiter.consume("tok:t".into(), 1000, 600).await;
            assert!(matches!(&h, Ok(h) if h.remaining == 400 && h.dimension == "tokens"));
            let refused = limiter.consume("tok:t".into(), 1000, 500).await;
            match refused {
                Err(ApiError::RateLimited {
                    dimension,
                    retry_after,
                    headers,
                }) => {
                    assert_eq!(dimension, "tokens");
                    // 100 tokens short at 1000/min: about 6 s.
                    assert!(
                        retry_after > Duration::from_secs(5)
                            && retry_after <= Duration::from_secs(6)
                    );
                    assert_eq!(headers[0].remaining, 400, "a refusal spends nothing");
                }
                other => panic!("expected a refusal, got {:?}", other.map(|h| h.remaining)),
            }
            assert!(limiter.consume("tok:t".into(), 1000, 400).await.is_ok());
            // More than a minute's budget can never fit: a 422, not a wait.
            assert!(matches!(
                limiter.consume("tok:u".into(), 1000, 1001).await,
                Err(ApiError::Validation { .. })
            ));
        });
    }

    #[test]
    fn concurrency_slots_are_released_on_drop() {
        let limiter = RateLimiter::new(None);
        let a = limiter.acquire_slot("t".into(), 2);
        let b = limiter.acquire_slot("t".into(), 2);
        assert!(a.is_ok() && b.is_ok());
        assert!(matches!(
            limiter.acquire_slot("t".into(), 2),
            Err(ApiError::ConcurrencyLimited { limit: 2 })
        ));
        // Another tenant has its own slots.
        assert!(limiter.acquire_slot("u".into(), 2).is_ok());
        drop(a);
        assert!(limiter.acquire_slot("t".into(), 2).is_ok());
    }

    #[test]
    fn headers_count_down() {
        let store = MemoryStore::default();
        let c = check(5, 1);
        let remaining: Vec<u64> = (0..5)
            .map(|_| {
                headers_for(
                    &c,
                    store.check(std::slice::from_ref(&c)).states[0],
                    "requests",
                )
                .remaining
            })
            .collect();
        assert_eq!(remaining, vec![4, 3, 2, 1, 0]);
        let refused = store.check(std::slice::from_ref(&c));
        assert!(!refused.allowed);
        let h = headers_for(&c, refused.states[0], "requests");
        assert_eq!(h.remaining, 0);
        assert!(h.reset > Duration::from_secs(59) && h.reset <= Duration::from_secs(60));
    }
}
