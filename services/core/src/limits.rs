//! What services need from the gateway's rate limiter.

use crate::error::LimitHeaders;
use crate::{ApiResult, TenantCtx};

/// A tenant's monthly spend limit: inference is refused with 402 once the
/// current period's rated usage reaches it.
#[async_trait::async_trait]
pub trait SpendGuard: Send + Sync {
    async fn check(&self, ctx: &TenantCtx) -> ApiResult<()>;
}

/// A tenant's tokens-per-minute budget: serving reserves a request's
/// estimated tokens before calling a model and gives back what it did not use.
#[async_trait::async_trait]
pub trait TokenBudget: Send + Sync {
    /// Spends `tokens` now or refuses with 429 (`x-ratelimit-*-tokens`).
    async fn reserve(&self, ctx: &TenantCtx, tokens: u32) -> ApiResult<LimitHeaders>;
    /// Returns `tokens` reserved but not used.
    async fn refund(&self, ctx: &TenantCtx, tokens: u32);
}
