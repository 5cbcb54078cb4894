//! What services need from the gateway's rate limiter.

use crate::error::LimitHeaders;
use crate::{ApiResult, TenantCtx};

/// A tenant's monthly spend limit: inference is refused with 402 once the
/// current period's rated usage reaches it.
#[async_trait::async_trait]
pub trait SpendGuard: Send + Sync {
    async fn check(&self, ctx: &TenantCtx) -> ApiResult<()>;

    /// What each set of `usages` (meter, quantity) of `model` costs at the
    /// list price of the tenant's plan: each meter's first tier, before
    /// included units, in minor units (`None` for a set nothing prices).
    /// For display next to a response; invoices are rated from the
    /// ledger. One plan lookup for all the sets.
    async fn quote(
        &self,
        ctx: &TenantCtx,
        model: &str,
        usages: &[&[(&str, u64)]],
    ) -> Vec<Option<Quote>> {
        self.quote_for(ctx.tenant_id(), model, usages).await
    }

    /// The tenant's spend this billing period and its budget, both in
    /// minor units (`None`: no budget set). For alert rules.
    async fn budget_use(&self, _tenant: crate::ids::TenantId) -> Option<(i64, i64)> {
        None
    }

    /// [`SpendGuard::quote`] for a tenant outside a request (monitoring
    /// prices its records off the hot path).
    async fn quote_for(
        &self,
        _tenant: crate::ids::TenantId,
        _model: &str,
        usages: &[&[(&str, u64)]],
    ) -> Vec<Option<Quote>> {
        vec![None; usages.len()]
    }
}

/// A price shown to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub currency: String,
    /// Minor units, fractional (a few tokens cost a fraction of a cent).
    pub minor: f64,
}

/// A tenant's tokens-per-minute budget: serving reserves a request's
/// estimated tokens before calling a model and gives back what it did not use.
#[async_trait::async_trait]
pub trait TokenBudget: Send + Sync {
    /// Spends `tokens` now for the request being served, or refuses it with
    /// 429 (`x-ratelimit-*-tokens`); a refused request is then not counted
    /// against the tenant's requests per minute either.
    async fn reserve(&self, ctx: &TenantCtx, tokens: u32) -> ApiResult<LimitHeaders>;
    /// Returns `tokens` reserved but not used.
    async fn refund(&self, ctx: &TenantCtx, tokens: u32);
    /// Spends `tokens` already used beyond the reservation, even past the
    /// limit (the next requests wait for it).
    async fn charge(&self, ctx: &TenantCtx, tokens: u32);
    /// Settles a reservation once the tokens `used` are known: refunds
    /// what was reserved but not used, or charges what was used beyond it
    /// (already served, so even past the limit).
    async fn settle(&self, ctx: &TenantCtx, reserved: u32, used: u32) {
        if used < reserved {
            self.refund(ctx, reserved - used).await;
        } else if used > reserved {
            self.charge(ctx, used - reserved).await;
        }
    }
}
