//! Booking a call's usage: one ledger event per non-zero meter, with the
//! model and the part's dimensions.

use crate::service::{Part, Serving};
use crate::tokens::UsageSource;
use llmops_core::TenantCtx;
use llmops_core::usage::{Meter, UsageEvent};
use std::collections::BTreeMap;

impl Serving {
    /// Books a call's usage. Token counts the gateway made itself (the
    /// backend reported none) say so in a `usage_source` dimension.
    pub(crate) async fn record(
        &self,
        ctx: &TenantCtx,
        id: &str,
        model: &str,
        source: UsageSource,
        parts: &[(&str, u32)],
    ) {
        self.record_sourced(ctx, id, model, source, parts, true)
            .await;
    }

    /// [`Serving::record`] of a settlement, whose probe booking was done
    /// when it settled (a dropped stream settles in the background, after
    /// its monitoring record is taken).
    pub(crate) async fn record_settled(
        &self,
        ctx: &TenantCtx,
        id: &str,
        model: &str,
        source: UsageSource,
        parts: &[(&str, u32)],
    ) {
        self.record_sourced(ctx, id, model, source, parts, false)
            .await;
    }

    async fn record_sourced(
        &self,
        ctx: &TenantCtx,
        id: &str,
        model: &str,
        source: UsageSource,
        parts: &[(&str, u32)],
        probe: bool,
    ) {
        let counted = [("usage_source", source.as_str())];
        let extra = |meter: &str| -> &[(&str, &str)] {
            if source != UsageSource::Backend && meter != Meter::REQUESTS {
                &counted
            } else {
                &[]
            }
        };
        let parts: Vec<Part<'_>> = parts.iter().map(|(m, q)| (*m, *q, extra(m))).collect();
        self.record_parts(ctx, id, model, &parts, probe).await;
    }

    /// Books usage with the same extra dimensions on every meter (a cached
    /// answer's `cache`).
    pub(crate) async fn record_with(
        &self,
        ctx: &TenantCtx,
        id: &str,
        model: &str,
        dims: &[(&str, &str)],
        parts: &[(&str, u32)],
    ) {
        let parts: Vec<Part<'_>> = parts.iter().map(|(m, q)| (*m, *q, dims)).collect();
        self.record_parts(ctx, id, model, &parts, true).await;
    }

    /// One event per non-zero part, `<id>:<meter>`, with `model` and the
    /// part's dimensions.
    async fn record_parts(
        &self,
        ctx: &TenantCtx,
        id: &str,
        model: &str,
        parts: &[Part<'_>],
        probe: bool,
    ) {
        if let Some(p) = ctx.probe().filter(|_| probe) {
            let q: Vec<(&str, u32)> = parts.iter().map(|(m, q, _)| (*m, *q)).collect();
            p.usage(model, &q);
        }
        let events: Vec<UsageEvent> = parts
            .iter()
            .filter(|(_, q, _)| *q > 0)
            .filter_map(|(meter, q, dims)| {
                let mut dimensions = BTreeMap::from([("model".to_string(), model.to_string())]);
                for (k, v) in dims.iter() {
                    dimensions.insert((*k).to_string(), (*v).to_string());
                }
                Some(UsageEvent {
                    id: format!("{id}:{meter}"),
                    tenant_id: ctx.tenant_id(),
                    meter: Meter::new(meter).ok()?,
                    quantity: i64::from(*q),
                    dimensions,
                    occurred_at: chrono::Utc::now(),
                })
            })
            .collect();
        // Handed over without waiting for their commit (the client has, or
        // is about to have, its answer); waits only for room in the
        // ledger's queue.
        if let Err(e) = self.0.usage.submit(events).await {
            tracing::error!(error = %e, request = id, "usage events not recorded");
        }
    }
}
