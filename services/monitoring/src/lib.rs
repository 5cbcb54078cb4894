//! `llmops-monitoring`: what each tenant's inference calls did, and how
//! that changes over time.
//!
//! - **Records**: the gateway hands one [`llmops_core::monitor::InferenceRecord`]
//!   per inference call to the [`Recorder`] (a bounded queue: when full,
//!   records are dropped and counted, inference never waits). A writer
//!   task prices them from the tenant's plan, computes the quality signals
//!   ([`quality`]) and writes them in batches.
//! - **Rollups**: each batch also appends partial rollups per tenant,
//!   model and minute/hour, with DDSketch latency sketches ([`sketch`]);
//!   compaction merges a bucket's partial rows into one. Percentiles over
//!   any range come from merged sketches (1% relative error), never from
//!   averaged percentiles.
//! - **Reads**: `/v1/monitoring/summary`, `/timeseries`, `/requests`,
//!   `POST /v1/feedback`, and the operator's `/admin/v1/monitoring/tenants`.

pub mod alert_routes;
pub mod alerts;
pub mod analysis;
pub mod drift;
pub mod entities;
pub mod otlp;
pub mod quality;
pub mod query;
pub mod reports;
pub mod routes;
pub mod sketch;
pub mod webhooks;
pub mod writer;

use chrono::TimeDelta;
use llmops_core::config::Config;
use llmops_core::limits::SpendGuard;
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
pub use writer::{PromptEmbedder, Recorder};

/// The monitoring service.
#[derive(Clone)]
pub struct Monitoring {
    db: DatabaseConnection,
    recorder: Recorder,
    sink: Arc<dyn llmops_core::monitor::RecordSink>,
    /// How long minute rollups are kept (reads choose minute rows only
    /// inside it).
    minute_retention: TimeDelta,
    pub(crate) retrainer: Option<Arc<dyn alerts::Retrainer>>,
    /// The tenant's budget use (`budget_percent` rules).
    pub(crate) spend: Option<Arc<dyn SpendGuard>>,
    pub(crate) allow_private_webhooks: bool,
}

/// What the monitoring service uses of the others.
#[derive(Default)]
pub struct Hooks {
    /// Prices records from the tenant's plan.
    pub pricer: Option<Arc<dyn SpendGuard>>,
    /// Embeds sampled prompts (embedding drift).
    pub embedder: Option<Arc<dyn PromptEmbedder>>,
    /// Starts the retraining jobs of alert rules.
    pub retrainer: Option<Arc<dyn alerts::Retrainer>>,
    /// Whether this process runs the monitoring service's schedules
    /// (compaction and retention, drift reports, alert rules, webhooks);
    /// every process that serves inference writes its own records.
    pub schedules: bool,
}

impl Monitoring {
    /// The service and its background work (the writer, compaction and
    /// retention), which runs on `tasks` until `stop`.
    pub fn start(
        cfg: &Config,
        db: DatabaseConnection,
        hooks: Hooks,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let Hooks {
            pricer,
            embedder,
            retrainer,
            schedules,
        } = hooks;
        let (recorder, rx) = Recorder::new(cfg.monitoring_queue);
        let samples = embedder.map(|e| {
            let (tx, srx) = tokio::sync::mpsc::channel(1024);
            tasks.spawn(writer::run_sampler(db.clone(), e, srx, stop.clone()));
            tx
        });
        // Spans to an OpenTelemetry collector, when one is configured (the
        // URL was checked with the configuration).
        let spans = cfg
            .monitoring_otlp_endpoint
            .as_deref()
            .and_then(|endpoint| {
                otlp::start(endpoint, cfg.monitoring_queue, tasks, stop.clone())
                    .inspect_err(|e| tracing::error!(error = %e, "OTLP export is off"))
                    .ok()
            });
        tasks.spawn(writer::run(
            db.clone(),
            rx,
            pricer.clone(),
            writer::WriterConfig {
                batch: cfg.monitoring_batch,
                flush: Duration::from_millis(cfg.monitoring_flush_ms),
                sample_rate: cfg.monitoring_sample_rate,
                samples,
                spans,
            },
            stop.clone(),
        ));
        let retention = writer::Retention {
            records: TimeDelta::days(i64::from(cfg.monitoring_record_retention_days)),
            minutes: TimeDelta::hours(i64::from(cfg.monitoring_minute_retention_hours)),
            hours: TimeDelta::days(i64::from(cfg.monitoring_hour_retention_days)),
        };
        let minute_retention = retention.minutes;
        let service = Self {
            db,
            sink: Arc::new(recorder.clone()),
            recorder,
            minute_retention,
            retrainer,
            spend: pricer,
            allow_private_webhooks: cfg.monitoring_webhook_allow_private,
        };
        if !schedules {
            return service;
        }
        let db = service.db.clone();
        tasks.spawn(reports::run(
            db.clone(),
            Duration::from_millis(cfg.monitoring_poll_ms),
            (cfg.monitoring_drift_every_secs > 0)
                .then(|| Duration::from_secs(cfg.monitoring_drift_every_secs)),
            stop.clone(),
        ));
        tasks.spawn(maintain(
            db.clone(),
            retention,
            Duration::from_secs(cfg.monitoring_compact_secs),
            stop.clone(),
        ));
        tasks.spawn(alerts::run(
            service.clone(),
            Duration::from_secs(cfg.monitoring_alert_every_secs),
            stop.clone(),
        ));
        tasks.spawn(webhooks::run_deliveries(
            service.db.clone(),
            Duration::from_secs(cfg.monitoring_alert_every_secs),
            Duration::from_millis(cfg.monitoring_webhook_backoff_ms),
            cfg.monitoring_webhook_allow_private,
            stop,
        ));
        service
    }

    /// The queue's counters.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Where the gateway submits records.
    pub fn sink(&self) -> Arc<dyn llmops_core::monitor::RecordSink> {
        self.sink.clone()
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Merges partial rollups now (what the periodic task does).
    pub async fn compact(&self) -> Result<usize, sea_orm::DbErr> {
        writer::compact(&self.db, 10_000).await
    }
}

/// Compaction and retention, every `every`.
async fn maintain(
    db: DatabaseConnection,
    retention: writer::Retention,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match writer::compact(&db, 1_000).await {
            Ok(n) if n > 0 => tracing::debug!(buckets = n, "monitoring rollups merged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "monitoring compaction failed"),
        }
        if let Err(e) = writer::expire(&db, &retention).await {
            tracing::warn!(error = %e, "monitoring retention failed");
        }
    }
}
