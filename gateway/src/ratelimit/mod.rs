//! Per-tenant and per-key rate limits with GCRA (the generic cell rate
//! algorithm) and per-tenant concurrency, in process or shared through Redis.
//!
//! One pure function ([`gcra`]) decides; two stores keep the state: this
//! process's memory, or Redis (Lua scripts that run the same arithmetic
//! atomically on the server's clock, so every gateway replica shares one
//! budget and one set of concurrency slots). A request's checks are
//! all-or-nothing: its tenant's and key's requests per minute and its
//! tenant's concurrency slot are decided in one step, and a request refused
//! by one limit spends nothing of another. A token reservation refused
//! later (serving knows the tokens only once it has read the body) gives the
//! request's units back in the same step.

mod memory;
mod redis;

pub use memory::MemoryStore;
pub use redis::RedisStore;

use futures_util::future::BoxFuture;
use llmops_core::error::LimitHeaders;
use llmops_core::tenancy::{PlanLimits, Principal, TenantCtx};
use llmops_core::{ApiError, ApiResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// A concurrency limit: at most `limit` requests in flight under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    pub key: String,
    pub limit: u32,
}

/// The state of one limit after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Theoretical arrival time minus now, in µs (0: full budget).
    pub tat_ahead_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over a per-minute limit; the whole request fits after `retry_after`.
    Requests {
        retry_after: Duration,
    },
    /// Every concurrency slot is taken.
    Concurrency,
}

impl Verdict {
    /// A per-minute refusal wins over a concurrency one: its wait is known.
    fn refused_for_requests(self, retry: Duration) -> Verdict {
        match self {
            Verdict::Requests { retry_after } => Verdict::Requests {
                retry_after: retry_after.max(retry),
            },
            _ => Verdict::Requests { retry_after: retry },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// One per check, in order.
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

/// The key of one of a tenant's limits. The tenant id in braces is the
/// Redis Cluster hash tag: a tenant's keys live on one node.
fn tenant_key(tenant: impl std::fmt::Display, what: impl std::fmt::Display) -> String {
    format!("{{{tenant}}}:{what}")
}

// ---------------------------------------------------------------- limiter

/// Admission result for one request: headers to send, and the concurrency
/// slot it holds until the response is finished.
pub struct Admission {
    pub headers: Vec<LimitHeaders>,
    pub slot: ConcurrencySlot,
}

/// Cheap to clone; shared by every worker.
#[derive(Clone)]
pub struct RateLimiter(Arc<Inner>);

struct Inner {
    memory: MemoryStore,
    redis: Option<RedisStore>,
    /// Prefix of this replica's slot members in Redis.
    replica: String,
    next_slot: AtomicU64,
    /// Redis slots this replica holds (member → set key), for lease renewal.
    held: Mutex<HashMap<String, String>>,
    /// Redis slots to free that were dropped without an explicit release.
    orphans: Mutex<Vec<(String, String)>>,
    wake: tokio::sync::Notify,
}

impl RateLimiter {
    pub fn new(redis: Option<RedisStore>) -> Self {
        Self(Arc::new(Inner {
            memory: MemoryStore::default(),
            redis,
            replica: llmops_core::auth::random_alnum(12),
            next_slot: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            orphans: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        }))
    }

    pub fn is_shared(&self) -> bool {
        self.0.redis.is_some()
    }

    /// The checks of one request: its tenant's requests (cost 1) and tokens
    /// (read only, for headers), and its key's requests when the key has a
    /// limit of its own.
    fn request_checks(ctx: &TenantCtx) -> Vec<LimitCheck> {
        let PlanLimits {
            requests_per_minute,
            tokens_per_minute,
            ..
        } = ctx.limits();
        let tenant = ctx.tenant_id();
        let mut checks = vec![
            LimitCheck {
                key: tenant_key(tenant, "req"),
                limit: requests_per_minute,
                cost: 1,
            },
            LimitCheck {
                key: tenant_key(tenant, "tok"),
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
                key: tenant_key(tenant, id),
                limit: key_rpm,
                cost: 1,
            });
        }
        checks
    }

    /// Admits one request of `ctx`: its tenant's and key's requests per
    /// minute and one of its tenant's concurrent slots, all or nothing. If
    /// Redis fails the request is judged by this replica's own state
    /// (degraded, never unlimited) and the failure is logged; `/readyz`
    /// reports Redis as down meanwhile.
    pub async fn admit(&self, ctx: &TenantCtx) -> ApiResult<Admission> {
        let checks = Self::request_checks(ctx);
        let concurrency = Concurrency {
            key: tenant_key(ctx.tenant_id(), "cc"),
            limit: ctx.limits().concurrent_requests,
        };
        let mut member = None;
        let mut outcome = None;
        if let Some(r) = &self.0.redis {
            let m = format!(
                "{}:{}",
                self.0.replica,
                self.0.next_slot.fetch_add(1, Ordering::Relaxed)
            );
            match r.admit(&checks, Some((&concurrency, &m))).await {
                Ok(o) => {
                    outcome = Some(o);
                    member = Some(m);
                }
                Err(e) => store_failed(&e),
            }
        }
        let outcome = outcome.unwrap_or_else(|| self.0.memory.admit(&checks, Some(&concurrency)));
        let headers = Self::headers(&checks, &outcome);
        match outcome.verdict {
            Verdict::Allowed => {
                if let Some(m) = &member
                    && let Ok(mut held) = self.0.held.lock()
                {
                    held.insert(m.clone(), concurrency.key.clone());
                }
                Ok(Admission {
                    headers,
                    slot: ConcurrencySlot {
                        limiter: self.clone(),
                        key: concurrency.key,
                        member,
                        released: false,
                    },
                })
            }
            Verdict::Requests { retry_after } => {
                metrics::counter!("ratelimit_refusals_total", "limit" => "requests").increment(1);
                Err(ApiError::RateLimited {
                    dimension: "requests",
                    retry_after,
                    headers,
                })
            }
            Verdict::Concurrency => {
                metrics::counter!("ratelimit_refusals_total", "limit" => "concurrency")
                    .increment(1);
                Err(ApiError::ConcurrencyLimited {
                    limit: concurrency.limit,
                })
            }
        }
    }

    /// Headers: for requests, the tighter of the tenant's and the key's
    /// limits; for tokens, the tenant's.
    fn headers(checks: &[LimitCheck], outcome: &Outcome) -> Vec<LimitHeaders> {
        let mut req: Option<LimitHeaders> = None;
        let mut tok = None;
        for (c, s) in checks.iter().zip(&outcome.states) {
            if c.cost == 0 {
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

    fn token_check(ctx: &TenantCtx, tokens: u32) -> LimitCheck {
        LimitCheck {
            key: tenant_key(ctx.tenant_id(), "tok"),
            limit: ctx.limits().tokens_per_minute,
            cost: tokens,
        }
    }

    /// Spends `tokens` of the tenant's tokens-per-minute budget (serving
    /// calls this with a request's estimated tokens before it runs). When
    /// they do not fit, the request is refused and the request units its
    /// admission spent are given back in the same step.
    pub async fn reserve_tokens(&self, ctx: &TenantCtx, tokens: u32) -> ApiResult<LimitHeaders> {
        let check = Self::token_check(ctx, tokens);
        if tokens > check.limit {
            return Err(ApiError::validation(
                "max_tokens",
                format!(
                    "this request needs {tokens} tokens, more than the plan's {} tokens per minute",
                    check.limit
                ),
            ));
        }
        let give_back: Vec<LimitCheck> = Self::request_checks(ctx)
            .into_iter()
            .filter(|c| c.cost > 0)
            .collect();
        let mut outcome = None;
        if let Some(r) = &self.0.redis {
            match r.reserve(&check, &give_back).await {
                Ok(o) => outcome = Some(o),
                Err(e) => store_failed(&e),
            }
        }
        let outcome = outcome.unwrap_or_else(|| self.0.memory.reserve(&check, &give_back));
        let state = outcome
            .states
            .first()
            .copied()
            .unwrap_or(LimitState { tat_ahead_us: 0 });
        let headers = headers_for(&check, state, "tokens");
        match outcome.verdict {
            Verdict::Allowed => Ok(headers),
            Verdict::Requests { retry_after } => {
                metrics::counter!("ratelimit_refusals_total", "limit" => "tokens").increment(1);
                Err(ApiError::RateLimited {
                    dimension: "tokens",
                    retry_after,
                    headers: vec![headers],
                })
            }
            Verdict::Concurrency => Err(ApiError::Internal(
                "token reservation answered with a concurrency verdict".into(),
            )),
        }
    }

    /// Moves the tenant's token budget by `tokens`: forward (spent, even
    /// past the limit: usage that already happened) or back (a refund).
    async fn move_tokens(&self, ctx: &TenantCtx, tokens: u32, forward: bool) {
        if tokens == 0 {
            return;
        }
        let check = Self::token_check(ctx, tokens);
        if let Some(r) = &self.0.redis {
            match r.move_tat(&check, forward).await {
                Ok(()) => return,
                Err(e) => store_failed(&e),
            }
        }
        if forward {
            self.0.memory.charge(&check);
        } else {
            self.0.memory.refund(&check);
        }
    }

    /// A keyed limit outside tenancy (e.g. login attempts per email).
    pub async fn check_key(&self, key: String, per_minute: u32) -> ApiResult<()> {
        let checks = [LimitCheck {
            key,
            limit: per_minute,
            cost: 1,
        }];
        let mut outcome = None;
        if let Some(r) = &self.0.redis {
            match r.admit(&checks, None).await {
                Ok(o) => outcome = Some(o),
                Err(e) => store_failed(&e),
            }
        }
        let outcome = outcome.unwrap_or_else(|| self.0.memory.admit(&checks, None));
        match outcome.verdict {
            Verdict::Allowed => Ok(()),
            Verdict::Requests { retry_after } => Err(ApiError::RateLimited {
                dimension: "requests",
                retry_after,
                headers: vec![],
            }),
            Verdict::Concurrency => Err(ApiError::Internal(
                "a keyed limit answered with a concurrency verdict".into(),
            )),
        }
    }

    /// Frees the Redis slots dropped without an explicit release and renews
    /// the leases of those still held, until `stop`. Needed only with Redis.
    pub async fn run_background(&self, stop: CancellationToken) {
        let Some(redis) = &self.0.redis else { return };
        let mut renew = tokio::time::interval(redis::LEASE / 4);
        renew.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.free_orphans(redis).await;
                    return;
                }
                _ = self.0.wake.notified() => self.free_orphans(redis).await,
                _ = renew.tick() => {
                    let by_key: HashMap<String, Vec<String>> = match self.0.held.lock() {
                        Ok(held) => held.iter().fold(HashMap::new(), |mut m, (member, key)| {
                            m.entry(key.clone()).or_default().push(member.clone());
                            m
                        }),
                        Err(_) => HashMap::new(),
                    };
                    for (key, members) in by_key {
                        if let Err(e) = redis.renew(&key, &members).await {
                            store_failed(&e);
                        }
                    }
                }
            }
        }
    }

    async fn free_orphans(&self, redis: &RedisStore) {
        let batch = match self.0.orphans.lock() {
            Ok(mut o) => std::mem::take(&mut *o),
            Err(_) => return,
        };
        if let Err(e) = redis.release(&batch).await {
            // Their leases end them in at most `LEASE`.
            store_failed(&e);
        }
    }

    /// Requests of a concurrency key in flight in this process's store.
    pub fn in_flight_here(&self, ctx: &TenantCtx) -> u32 {
        self.0.memory.in_flight(&tenant_key(ctx.tenant_id(), "cc"))
    }
}

fn store_failed(e: &::redis::RedisError) {
    metrics::counter!("ratelimit_store_errors_total").increment(1);
    tracing::warn!(error = %e, "redis rate-limit store failed; using this replica's own state");
}

#[async_trait::async_trait]
impl llmops_core::limits::TokenBudget for RateLimiter {
    async fn reserve(&self, ctx: &TenantCtx, tokens: u32) -> ApiResult<LimitHeaders> {
        self.reserve_tokens(ctx, tokens).await
    }

    async fn refund(&self, ctx: &TenantCtx, tokens: u32) {
        self.move_tokens(ctx, tokens, false).await
    }

    async fn charge(&self, ctx: &TenantCtx, tokens: u32) {
        self.move_tokens(ctx, tokens, true).await
    }
}

/// One of a tenant's concurrent slots. [`ConcurrencySlot::release`] frees
/// it before the response's last bytes go out (so a client that sends its
/// next request at once finds it free); dropping it frees it too (a client
/// that went away), a Redis slot then in the background.
pub struct ConcurrencySlot {
    limiter: RateLimiter,
    key: String,
    /// The Redis member, for a slot held in Redis.
    member: Option<String>,
    released: bool,
}

impl ConcurrencySlot {
    /// Frees the slot: at once in process (`None`), or through a future that
    /// ends when Redis has removed it.
    pub fn release(mut self) -> Option<BoxFuture<'static, ()>> {
        self.released = true;
        let inner = self.limiter.0.clone();
        let key = std::mem::take(&mut self.key);
        let Some(member) = self.member.take() else {
            inner.memory.release(&key);
            return None;
        };
        if let Ok(mut held) = inner.held.lock() {
            held.remove(&member);
        }
        Some(Box::pin(async move {
            let Some(redis) = &inner.redis else { return };
            if let Err(e) = redis.release(&[(key, member)]).await {
                store_failed(&e);
            }
        }))
    }
}

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let inner = &self.limiter.0;
        match self.member.take() {
            None => inner.memory.release(&self.key),
            Some(member) => {
                if let Ok(mut held) = inner.held.lock() {
                    held.remove(&member);
                }
                if let Ok(mut o) = inner.orphans.lock() {
                    o.push((std::mem::take(&mut self.key), member));
                }
                inner.wake.notify_one();
            }
        }
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
    fn headers_count_down() {
        let store = MemoryStore::default();
        let c = check(5, 1);
        let remaining: Vec<u64> = (0..5)
            .map(|_| {
                headers_for(
                    &c,
                    store.admit(std::slice::from_ref(&c), None).states[0],
                    "requests",
                )
                .remaining
            })
            .collect();
        assert_eq!(remaining, vec![4, 3, 2, 1, 0]);
        let refused = store.admit(std::slice::from_ref(&c), None);
        assert!(matches!(refused.verdict, Verdict::Requests { .. }));
        let h = headers_for(&c, refused.states[0], "requests");
        assert_eq!(h.remaining, 0);
        assert!(h.reset > Duration::from_secs(59) && h.reset <= Duration::from_secs(60));
    }

    #[test]
    fn a_refused_token_reservation_reports_the_wait_and_spends_nothing() {
        let store = MemoryStore::default();
        let tok = |cost| LimitCheck {
            key: "tok".into(),
            limit: 1000,
            cost,
        };
        let ok = store.reserve(&tok(600), &[]);
        assert_eq!(
            headers_for(&tok(600), ok.states[0], "tokens").remaining,
            400
        );
        let refused = store.reserve(&tok(500), &[]);
        match refused.verdict {
            // 100 tokens short at 1000/min: about 6 s.
            Verdict::Requests { retry_after } => assert!(
                retry_after > Duration::from_secs(5) && retry_after <= Duration::from_secs(6)
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(
            headers_for(&tok(500), refused.states[0], "tokens").remaining,
            400,
            "a refusal spends nothing"
        );
        assert_eq!(store.reserve(&tok(400), &[]).verdict, Verdict::Allowed);
    }
}
