//! The monitoring record of each inference call: a probe travels with the
//! caller's context while services fill it, and the record is submitted
//! when the response body ends or is dropped (the client went away).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use llmops_core::TenantCtx;
use llmops_core::error::REQUEST;
use llmops_core::monitor::{CallKind, InferenceRecord, Probe, RecordSink};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// One monitored call, from authentication to the end of its body.
pub struct Watch {
    sink: Arc<dyn RecordSink>,
    /// Prometheus series per tenant (`metrics_tenant_labels`).
    tenant_labels: bool,
    kind: CallKind,
    request_id: String,
    started: Instant,
    started_at: DateTime<Utc>,
    pub probe: Probe,
}

impl Watch {
    pub fn new(sink: Arc<dyn RecordSink>, kind: CallKind, tenant_labels: bool) -> Self {
        Self {
            sink,
            tenant_labels,
            kind,
            request_id: REQUEST
                .try_with(|r| r.request_id.clone())
                .unwrap_or_default(),
            started: Instant::now(),
            started_at: Utc::now(),
            probe: Probe::default(),
        }
    }

    /// Hands the record over (never waits).
    pub fn finish(self, ctx: &TenantCtx, status: u16, error_type: Option<String>, ended: bool) {
        let mut probe = self.probe.snapshot();
        if !ended && probe.finish_reason.is_none() {
            probe.finish_reason = Some("cancelled".into());
        }
        let ttft_ms = probe
            .first_token
            .map(|t| t.saturating_duration_since(self.started).as_secs_f64() * 1000.0);
        let latency = self.started.elapsed();
        if self.tenant_labels {
            let labels = [
                ("tenant", ctx.tenant_id().to_string()),
                ("kind", self.kind.as_str().to_string()),
                ("status", status.to_string()),
            ];
            metrics::counter!("llmops_tenant_inference_requests_total", &labels).increment(1);
            metrics::histogram!("llmops_tenant_inference_duration_seconds", &labels)
                .record(latency.as_secs_f64());
            for (_, meter, q) in &probe.meters {
                if meter.ends_with("_tokens") {
                    metrics::counter!("llmops_tenant_tokens_total", "tenant" => ctx.tenant_id().to_string(), "meter" => meter.clone())
                        .increment(*q);
                }
            }
        }
        self.sink.submit(InferenceRecord {
            request_id: self.request_id,
            tenant_id: ctx.tenant_id(),
            actor: ctx.actor(),
            kind: self.kind,
            status,
            error_type,
            started_at: self.started_at,
            latency_ms: latency.as_secs_f64() * 1000.0,
            ttft_ms,
            probe,
        });
    }
}

/// A response body that submits its call's record when it ends, or when
/// it is dropped before (the client went away mid-stream).
pub struct RecordBody {
    body: BoxBody,
    /// A body of known size is dropped once sent; only a stream can be
    /// cut short by its client.
    sized: bool,
    pending: Option<(Watch, TenantCtx, u16, Option<String>)>,
}

impl RecordBody {
    pub fn new(
        body: BoxBody,
        watch: Watch,
        ctx: TenantCtx,
        status: u16,
        error: Option<String>,
    ) -> Self {
        let sized = !matches!(body.size(), actix_web::body::BodySize::Stream);
        Self {
            body,
            sized,
            pending: Some((watch, ctx, status, error)),
        }
    }

    fn finish(&mut self, ended: bool) {
        if let Some((w, ctx, status, error)) = self.pending.take() {
            w.finish(&ctx, status, error, ended);
        }
    }
}

impl Drop for RecordBody {
    fn drop(&mut self) {
        // The inner body goes first: a stream's settlement books what was
        // generated into the probe as it drops.
        drop(std::mem::replace(&mut self.body, BoxBody::new(())));
        self.finish(self.sized);
    }
}

impl MessageBody for RecordBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let next = Pin::new(&mut this.body).poll_next(cx);
        if let Poll::Ready(None) = next {
            this.finish(true);
        }
        next
    }
}

/// The registry's `open_drift_alerts` promotion gate: drift alerts firing
/// on the traffic of the registry model's deployments (or on its name).
pub struct DriftGate {
    pub monitoring: actix_web::web::Data<llmops_monitoring::Monitoring>,
    pub serving: actix_web::web::Data<llmops_serving::Serving>,
}

#[async_trait::async_trait]
impl llmops_registry::LiveChecks for DriftGate {
    async fn open_drift_alerts(
        &self,
        ctx: &TenantCtx,
        name: &str,
        version_ids: &[String],
        since: DateTime<Utc>,
    ) -> llmops_core::ApiResult<Vec<serde_json::Value>> {
        let mut models = vec![name.to_string()];
        // Deployments are listed on the caller's behalf (its `registry`
        // scope was checked).
        let dctx = ctx.delegate(llmops_core::Scope::Inference);
        let mut params = llmops_core::pagination::ListParams {
            limit: Some(100),
            after: None,
        };
        let prefix = format!("{name}@");
        loop {
            let page = self.serving.list_deployments(&dctx, &params).await?;
            for d in &page.data {
                if d.model.starts_with(&prefix) || version_ids.contains(&d.model_version_id) {
                    models.push(d.name.clone());
                }
            }
            if !page.has_more {
                break;
            }
            params.after = page.last_id.clone();
        }
        let alerts = self
            .monitoring
            .open_drift_alerts(ctx.tenant_id(), &models, since)
            .await?;
        Ok(alerts
            .into_iter()
            .map(|a| {
                serde_json::json!({
                    "alert_id": a.id, "rule_id": a.rule_id, "model": a.model,
                    "started_at": a.started_at, "value": a.value,
                    "details": serde_json::from_str::<serde_json::Value>(&a.details).unwrap_or_default(),
                })
            })
            .collect())
    }
}
