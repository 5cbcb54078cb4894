//! The `vector_storage` meter: every window, each tenant's stored chunks
//! (a facet over the tenant index of every RAG collection), one usage
//! event per tenant, collection and window. The event id names the window,
//! so replicas sampling the same window record it once.

use crate::service::Rag;
use llmops_core::usage::{Meter, UsageEvent};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Rag {
    /// Samples once now; returns the events recorded.
    pub async fn sample_storage(&self) -> Vec<UsageEvent> {
        let window = self.0.config.storage_meter_secs.max(1);
        let now = chrono::Utc::now();
        let start = now.timestamp() - now.timestamp().rem_euclid(window as i64);
        let Ok(meter) = Meter::new(Meter::VECTOR_STORAGE) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for m in self.0.models.embedding_models() {
            let Ok(coll) = self.collection(&m).await else {
                continue;
            };
            let per = match coll.points_per_tenant(100_000).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "vector storage not sampled");
                    continue;
                }
            };
            for (tenant, points) in per {
                let Ok(tenant_id) = tenant.parse() else {
                    continue;
                };
                events.push(UsageEvent {
                    id: format!("vecstore:{}:{tenant}:{start}", coll.spec().name),
                    tenant_id,
                    meter: meter.clone(),
                    quantity: i64::try_from(points).unwrap_or(i64::MAX),
                    dimensions: BTreeMap::from([
                        ("collection".into(), coll.spec().name.clone()),
                        ("window_secs".into(), window.to_string()),
                    ]),
                    occurred_at: now,
                });
            }
        }
        if let Err(e) = self.0.usage.submit(events.clone()).await {
            tracing::error!(error = %e, "vector storage not metered");
        }
        events
    }

    /// Samples at start and then every window until `stop` (a window
    /// sampled twice, by a restart or by several replicas, is recorded
    /// once: the event id names it).
    pub async fn run_storage_meter(&self, stop: CancellationToken) {
        let every = Duration::from_secs(self.0.config.storage_meter_secs.max(1));
        loop {
            self.sample_storage().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
