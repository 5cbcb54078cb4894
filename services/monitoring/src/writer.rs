//! Records leave the hot path through a bounded queue; one writer task per
//! process turns them into rows in batches, prices them from the tenant's
//! plan, and appends partial rollups (minute and hour) that compaction
//! later merges.

use crate::entities::{record, rollup, sample};
use crate::quality;
use crate::sketch::Sketch;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use llmops_core::ids::{RecordId, TenantId};
use llmops_core::limits::SpendGuard;
use llmops_core::monitor::{CallKind, InferenceRecord, RecordSink};
use llmops_core::usage::Meter;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Rollup resolutions (seconds).
pub const MINUTE: i32 = 60;
pub const HOUR: i32 = 3600;

/// The hot path's end of the queue.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<InferenceRecord>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<InferenceRecord>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx,
                dropped: Arc::default(),
            },
            rx,
        )
    }

    /// Records dropped because the queue was full (since start).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl RecordSink for Recorder {
    fn submit(&self, record: InferenceRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("llmops_monitoring_records_dropped_total").increment(1);
        }
    }
}

/// Embeds sampled prompts for embedding drift (the served embedding
/// model; platform overhead, not billed to the tenant).
#[async_trait::async_trait]
pub trait PromptEmbedder: Send + Sync {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String>;
}

pub(crate) struct WriterConfig {
    pub batch: usize,
    pub flush: Duration,
    /// Share of answered prompts embedded (0 to 1).
    pub sample_rate: f64,
    /// Where picked prompts go to be embedded (apart from the writer: a
    /// slow embedding model does not hold records back).
    pub samples: Option<mpsc::Sender<Picked>>,
    /// Where written records go as OpenTelemetry spans (when configured).
    pub spans: Option<crate::otlp::SpanQueue>,
}

/// A prompt picked for an embedding sample.
pub(crate) struct Picked {
    tenant: TenantId,
    model: String,
    at: DateTime<Utc>,
    prompt: String,
}

/// Writes batches until `stop`, then what is still queued.
pub(crate) async fn run(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<InferenceRecord>,
    pricer: Option<Arc<dyn SpendGuard>>,
    cfg: WriterConfig,
    stop: CancellationToken,
) {
    let mut buf = Vec::with_capacity(cfg.batch);
    loop {
        let got = tokio::select! {
            n = rx.recv_many(&mut buf, cfg.batch) => n,
            _ = stop.cancelled() => 0,
        };
        if got == 0 {
            break;
        }
        // Gather a fuller batch for a moment, unless stopping.
        let deadline = tokio::time::Instant::now() + cfg.flush;
        while buf.len() < cfg.batch {
            let more = tokio::select! {
                n = tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, cfg.batch)) => n.unwrap_or(0),
                _ = stop.cancelled() => 0,
            };
            if more == 0 {
                break;
            }
        }
        write_batch(&db, pricer.as_deref(), &cfg, &buf).await;
        if let Some(tx) = &cfg.samples {
            pick(tx, cfg.sample_rate, &buf);
        }
        buf.clear();
    }
    // Stopping: what is queued is written before the process ends.
    rx.close();
    while let Some(r) = rx.recv().await {
        buf.push(r);
        if buf.len() >= cfg.batch {
            write_batch(&db, pricer.as_deref(), &cfg, &buf).await;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        write_batch(&db, pricer.as_deref(), &cfg, &buf).await;
    }
}

/// Writes a batch, then hands what was written to the span export (when
/// configured).
async fn write_batch(
    db: &DatabaseConnection,
    pricer: Option<&dyn SpendGuard>,
    cfg: &WriterConfig,
    batch: &[InferenceRecord],
) {
    let rows = write_with_retry(db, pricer, batch).await;
    if let Some(spans) = &cfg.spans {
        spans.offer(&rows);
    }
}

/// Writes a batch (four tries); returns the rows written (none when the
/// batch was lost).
async fn write_with_retry(
    db: &DatabaseConnection,
    pricer: Option<&dyn SpendGuard>,
    batch: &[InferenceRecord],
) -> Vec<record::Model> {
    let rows = rows(pricer, batch).await;
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=4 {
        match write(db, &rows).await {
            Ok(()) => {
                metrics::counter!("llmops_monitoring_records_written_total")
                    .increment(rows.len() as u64);
                return rows;
            }
            Err(e) if attempt < 4 => {
                tracing::warn!(error = %e, attempt, "monitoring batch not written; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(e) => {
                tracing::error!(error = %e, records = rows.len(), "monitoring batch lost");
                metrics::counter!("llmops_monitoring_records_lost_total")
                    .increment(rows.len() as u64);
            }
        }
    }
    Vec::new()
}

/// Picks a random share (`rate`) of the batch's answered prompts for
/// embedding samples; a full sample queue drops them.
fn pick(tx: &mpsc::Sender<Picked>, rate: f64, batch: &[InferenceRecord]) {
    for r in batch {
        if r.kind == CallKind::Embedding || r.status >= 400 || r.probe.prompt.trim().is_empty() {
            continue;
        }
        let Some(model) = r.probe.model.clone() else {
            continue;
        };
        if rate < 1.0 && rand::random::<f64>() >= rate {
            continue;
        }
        let picked = Picked {
            tenant: r.tenant_id,
            model,
            at: r.started_at,
            prompt: r.probe.prompt.clone(),
        };
        if tx.try_send(picked).is_err() {
            metrics::counter!("llmops_monitoring_samples_dropped_total").increment(1);
        }
    }
}

/// Embeds picked prompts in batches and stores the vectors, until `stop`.
/// Failures lose only the samples.
pub(crate) async fn run_sampler(
    db: DatabaseConnection,
    e: Arc<dyn PromptEmbedder>,
    mut rx: mpsc::Receiver<Picked>,
    stop: CancellationToken,
) {
    let mut buf = Vec::with_capacity(64);
    loop {
        let got = tokio::select! {
            n = rx.recv_many(&mut buf, 64) => n,
            _ = stop.cancelled() => 0,
        };
        if got == 0 {
            return;
        }
        let texts: Vec<String> = buf.iter().map(|p| p.prompt.clone()).collect();
        match e.embed(&texts).await {
            Ok(vectors) if vectors.len() == texts.len() => {
                let rows: Vec<sample::ActiveModel> = buf
                    .iter()
                    .zip(vectors)
                    .map(|(p, v)| sample::ActiveModel {
                        id: Set(RecordId::new().to_string()),
                        tenant_id: Set(p.tenant.to_string()),
                        model: Set(p.model.clone()),
                        created_at: Set(p.at),
                        vector: Set(serde_json::to_string(&v).unwrap_or_default()),
                    })
                    .collect();
                if let Err(err) = sample::Entity::insert_many(rows).exec(&db).await {
                    tracing::warn!(error = %err, "prompt samples not stored");
                }
            }
            Ok(_) => tracing::warn!("prompt embeddings: wrong number of vectors"),
            Err(err) => {
                tracing::warn!(error = %err, "prompt embeddings not computed");
                metrics::counter!("llmops_monitoring_samples_lost_total")
                    .increment(texts.len() as u64);
            }
        }
        buf.clear();
    }
}

fn meter(r: &InferenceRecord, name: &str) -> i64 {
    i64::try_from(llmops_core::monitor::Probe::total(&r.probe, name)).unwrap_or(i64::MAX)
}

/// Is this call an error (a refused or failed call, or a stream that
/// ended with an error event)?
pub fn is_error(status: i32, error_type: Option<&str>) -> bool {
    status >= 400 || error_type.is_some()
}

/// The rows of a batch: quality signals from the texts (which go no
/// further), costs from the tenants' plans (one lookup per tenant and
/// model).
async fn rows(pricer: Option<&dyn SpendGuard>, batch: &[InferenceRecord]) -> Vec<record::Model> {
    // Each model's part of a call is priced as that model (a RAG answer
    // books embedding tokens for one and chat tokens for another).
    let mut costs: Vec<Option<(f64, String)>> = vec![None; batch.len()];
    if let Some(p) = pricer {
        // (tenant, model) → (record index, that model's meters of it).
        type Parts<'a> = Vec<(usize, Vec<(&'a str, u64)>)>;
        let mut groups: BTreeMap<(TenantId, &str), Parts<'_>> = BTreeMap::new();
        for (i, r) in batch.iter().enumerate() {
            let mut by_model: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
            for (model, m, q) in &r.probe.meters {
                by_model.entry(model).or_default().push((m.as_str(), *q));
            }
            for (model, parts) in by_model {
                groups
                    .entry((r.tenant_id, model))
                    .or_default()
                    .push((i, parts));
            }
        }
        for ((tenant, model), parts) in groups {
            let usages: Vec<&[(&str, u64)]> = parts.iter().map(|(_, u)| u.as_slice()).collect();
            for ((i, _), q) in parts.iter().zip(p.quote_for(tenant, model, &usages).await) {
                if let Some(q) = q {
                    let c = costs[*i].get_or_insert((0.0, q.currency.clone()));
                    c.0 += q.minor;
                }
            }
        }
    }
    batch
        .iter()
        .zip(costs)
        .map(|(r, cost)| {
            let generates = r.kind != CallKind::Embedding && r.status < 400;
            let sig = if generates {
                quality::signals(
                    &r.probe.prompt,
                    &r.probe.output,
                    r.probe.finish_reason.as_deref(),
                )
            } else {
                quality::Signals::default()
            };
            let chars = |s: &str| i32::try_from(s.chars().count()).unwrap_or(i32::MAX);
            record::Model {
                id: RecordId::new().to_string(),
                tenant_id: r.tenant_id.to_string(),
                request_id: r.request_id.clone(),
                actor: r.actor.clone(),
                kind: r.kind.as_str().to_string(),
                model: r.probe.model.clone(),
                deployment_id: r.probe.deployment_id.clone(),
                status: i32::from(r.status),
                error_type: r.error_type.clone().or_else(|| r.probe.error_type.clone()),
                started_at: r.started_at,
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                input_tokens: meter(r, Meter::INPUT_TOKENS),
                output_tokens: meter(r, Meter::OUTPUT_TOKENS),
                cached_tokens: meter(r, Meter::CACHED_INPUT_TOKENS)
                    + meter(r, Meter::CACHED_OUTPUT_TOKENS),
                embedding_tokens: meter(r, Meter::EMBEDDING_TOKENS),
                cost_minor: cost.as_ref().map(|c| c.0),
                currency: cost.map(|c| c.1.to_ascii_lowercase()),
                cache: r.probe.cache.map(str::to_string),
                finish_reason: r.probe.finish_reason.clone(),
                prompt_chars: chars(&r.probe.prompt),
                output_chars: chars(&r.probe.output),
                prompt_lang: sig.prompt_lang.map(str::to_string),
                output_lang: sig.output_lang.map(str::to_string),
                empty: generates && sig.empty,
                truncated: sig.truncated,
                refusal: sig.refusal,
                repetition: sig.repetition,
                language_mismatch: sig.language_mismatch,
                support: r.probe.support.map(f64::from),
            }
        })
        .collect()
}

/// A rollup being built.
#[derive(Default)]
pub(crate) struct Acc {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_minor: f64,
    pub cache_hits: i64,
    pub empty: i64,
    pub truncated: i64,
    pub refusals: i64,
    pub repetitive: i64,
    pub language_mismatches: i64,
    pub latency: Sketch,
    pub ttft: Sketch,
}

impl Acc {
    fn add_record(&mut self, r: &record::Model) {
        self.requests += 1;
        self.errors += i64::from(is_error(r.status, r.error_type.as_deref()));
        self.input_tokens += r.input_tokens + r.embedding_tokens;
        self.output_tokens += r.output_tokens;
        self.cached_tokens += r.cached_tokens;
        self.cost_minor += r.cost_minor.unwrap_or(0.0);
        self.cache_hits += i64::from(matches!(r.cache.as_deref(), Some("hit" | "semantic-hit")));
        self.empty += i64::from(r.empty);
        self.truncated += i64::from(r.truncated);
        self.refusals += i64::from(r.refusal);
        self.repetitive += i64::from(r.repetition >= quality::REPETITIVE);
        self.language_mismatches += i64::from(r.language_mismatch);
        self.latency.add(r.latency_ms);
        if let Some(t) = r.ttft_ms {
            self.ttft.add(t);
        }
    }

    pub(crate) fn add_rollup(&mut self, u: &rollup::Model) {
        self.requests += u.requests;
        self.errors += u.errors;
        self.input_tokens += u.input_tokens;
        self.output_tokens += u.output_tokens;
        self.cached_tokens += u.cached_tokens;
        self.cost_minor += u.cost_minor;
        self.cache_hits += u.cache_hits;
        self.empty += u.empty;
        self.truncated += u.truncated;
        self.refusals += u.refusals;
        self.repetitive += u.repetitive;
        self.language_mismatches += u.language_mismatches;
        self.latency.merge(&Sketch::from_json(&u.latency));
        self.ttft.merge(&Sketch::from_json(&u.ttft));
    }

    fn into_row(self, tenant: &str, model: &str, res: i32, start: DateTime<Utc>) -> rollup::Model {
        rollup::Model {
            id: RecordId::new().to_string(),
            tenant_id: tenant.to_string(),
            model: model.to_string(),
            resolution_secs: res,
            bucket_start: start,
            requests: self.requests,
            errors: self.errors,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_tokens: self.cached_tokens,
            cost_minor: self.cost_minor,
            cache_hits: self.cache_hits,
            empty: self.empty,
            truncated: self.truncated,
            refusals: self.refusals,
            repetitive: self.repetitive,
            language_mismatches: self.language_mismatches,
            latency: self.latency.to_json(),
            ttft: self.ttft.to_json(),
            created_at: Utc::now(),
        }
    }
}

/// The bucket of `t` at `res` seconds.
pub fn bucket(t: DateTime<Utc>, res: i32) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(i64::from(res)))
        .unwrap_or(t)
}

/// A record's model in rollups (`-` for a call that never reached one).
pub const NO_MODEL: &str = "-";

fn to_active(m: rollup::Model) -> rollup::ActiveModel {
    rollup::ActiveModel {
        id: Set(m.id),
        tenant_id: Set(m.tenant_id),
        model: Set(m.model),
        resolution_secs: Set(m.resolution_secs),
        bucket_start: Set(m.bucket_start),
        requests: Set(m.requests),
        errors: Set(m.errors),
        input_tokens: Set(m.input_tokens),
        output_tokens: Set(m.output_tokens),
        cached_tokens: Set(m.cached_tokens),
        cost_minor: Set(m.cost_minor),
        cache_hits: Set(m.cache_hits),
        empty: Set(m.empty),
        truncated: Set(m.truncated),
        refusals: Set(m.refusals),
        repetitive: Set(m.repetitive),
        language_mismatches: Set(m.language_mismatches),
        latency: Set(m.latency),
        ttft: Set(m.ttft),
        created_at: Set(m.created_at),
    }
}

/// One transaction: the records and the batch's partial rollups.
async fn write(db: &DatabaseConnection, rows: &[record::Model]) -> Result<(), DbErr> {
    let mut accs: BTreeMap<(String, String, i32, DateTime<Utc>), Acc> = BTreeMap::new();
    for r in rows {
        let model = r.model.clone().unwrap_or_else(|| NO_MODEL.to_string());
        for res in [MINUTE, HOUR] {
            accs.entry((
                r.tenant_id.clone(),
                model.clone(),
                res,
                bucket(r.started_at, res),
            ))
            .or_default()
            .add_record(r);
        }
    }
    let txn = llmops_core::db::begin_write(db).await?;
    // 100 rows of 31 columns stay far below every engine's bind limit.
    for chunk in rows.chunks(100) {
        let models: Vec<record::ActiveModel> = chunk
            .iter()
            .cloned()
            .map(sea_orm::IntoActiveModel::into_active_model)
            .collect();
        record::Entity::insert_many(models).exec(&txn).await?;
    }
    let rollups: Vec<rollup::ActiveModel> = accs
        .into_iter()
        .map(|((t, m, res, start), acc)| to_active(acc.into_row(&t, &m, res, start)))
        .collect();
    for chunk in rollups.chunks(100) {
        rollup::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

/// Merges every bucket that has more than one row into one row; returns
/// how many buckets were merged. Safe beside other replicas doing the
/// same: a merge whose rows another already took is rolled back.
pub(crate) async fn compact(db: &DatabaseConnection, max_groups: u64) -> Result<usize, DbErr> {
    let groups: Vec<(String, String, i32, DateTime<Utc>)> = rollup::Entity::find()
        .select_only()
        .column(rollup::Column::TenantId)
        .column(rollup::Column::Model)
        .column(rollup::Column::ResolutionSecs)
        .column(rollup::Column::BucketStart)
        .group_by(rollup::Column::TenantId)
        .group_by(rollup::Column::Model)
        .group_by(rollup::Column::ResolutionSecs)
        .group_by(rollup::Column::BucketStart)
        .having(Expr::col(rollup::Column::Id).count().gt(1i64))
        .limit(max_groups)
        .into_tuple()
        .all(db)
        .await?;
    let mut merged = 0;
    for (tenant, model, res, start) in groups {
        // IMMEDIATE on SQLite: the read and the delete see one snapshot
        // even while the writer commits.
        let txn = llmops_core::db::begin_write(db).await?;
        let rows = rollup::Entity::find()
            .filter(rollup::Column::TenantId.eq(tenant.as_str()))
            .filter(rollup::Column::Model.eq(model.as_str()))
            .filter(rollup::Column::ResolutionSecs.eq(res))
            .filter(rollup::Column::BucketStart.eq(start))
            .all(&txn)
            .await?;
        if rows.len() < 2 {
            continue;
        }
        let mut acc = Acc::default();
        for r in &rows {
            acc.add_rollup(r);
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let gone = rollup::Entity::delete_many()
            .filter(rollup::Column::Id.is_in(ids.clone()))
            .exec(&txn)
            .await?
            .rows_affected;
        if gone != ids.len() as u64 {
            // Another replica merged some of these rows first.
            txn.rollback().await?;
            continue;
        }
        rollup::Entity::insert(to_active(acc.into_row(&tenant, &model, res, start)))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        merged += 1;
    }
    Ok(merged)
}

pub(crate) struct Retention {
    pub records: TimeDelta,
    pub minutes: TimeDelta,
    pub hours: TimeDelta,
}

/// Deletes rows older than their retention: records, prompt samples,
/// drift reports and webhook deliveries with the records; rollups by
/// resolution; resolved alerts with the hour rollups.
pub(crate) async fn expire(db: &DatabaseConnection, keep: &Retention) -> Result<u64, DbErr> {
    use crate::entities::{alert, delivery, drift_report};
    let now = Utc::now();
    let old = now - keep.records;
    let mut n = record::Entity::delete_many()
        .filter(record::Column::StartedAt.lt(old))
        .exec(db)
        .await?
        .rows_affected;
    n += sample::Entity::delete_many()
        .filter(sample::Column::CreatedAt.lt(old))
        .exec(db)
        .await?
        .rows_affected;
    n += drift_report::Entity::delete_many()
        .filter(drift_report::Column::CreatedAt.lt(old))
        .exec(db)
        .await?
        .rows_affected;
    n += delivery::Entity::delete_many()
        .filter(delivery::Column::CreatedAt.lt(old))
        .filter(delivery::Column::Status.ne("pending"))
        .exec(db)
        .await?
        .rows_affected;
    n += alert::Entity::delete_many()
        .filter(alert::Column::Status.eq("resolved"))
        .filter(alert::Column::ResolvedAt.lt(now - keep.hours))
        .exec(db)
        .await?
        .rows_affected;
    for (res, age) in [(MINUTE, keep.minutes), (HOUR, keep.hours)] {
        n += rollup::Entity::delete_many()
            .filter(rollup::Column::ResolutionSecs.eq(res))
            .filter(rollup::Column::BucketStart.lt(now - age))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmops_core::monitor::{CallKind, ProbeState};

    fn rec(tenant: TenantId, ms: f64) -> InferenceRecord {
        InferenceRecord {
            request_id: "req_1".into(),
            tenant_id: tenant,
            actor: "key_x".into(),
            kind: CallKind::Chat,
            status: 200,
            error_type: None,
            started_at: Utc::now(),
            latency_ms: ms,
            ttft_ms: None,
            probe: ProbeState::default(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (r, mut rx) = Recorder::new(2);
        let t = TenantId::new();
        let started = std::time::Instant::now();
        for i in 0..5 {
            r.submit(rec(t, f64::from(i)));
        }
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(r.dropped(), 3);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn buckets_are_aligned() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T10:17:42.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(bucket(t, MINUTE).to_rfc3339(), "2026-12-02T10:17:00+00:00");
        assert_eq!(bucket(t, HOUR).to_rfc3339(), "2026-12-02T10:00:00+00:00");
    }

    #[tokio::test]
    async fn batches_roll_up_and_compaction_merges_them_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/m.db?mode=rwc", dir.path().display());
        let db = sea_orm::Database::connect(&url).await.unwrap();
        llmops_migrations::up(&db).await.unwrap();
        // Rows reference their tenant.
        let tenant = TenantId::new();
        use sea_orm::ConnectionTrait;
        db.execute_unprepared(&format!(
            "INSERT INTO tenants (id, name, status, plan_id, created_at, updated_at) \
             VALUES ('{tenant}', 't', 'active', 'free', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
        ))
        .await
        .unwrap();
        let mut all = Vec::new();
        for part in 0..3 {
            let batch: Vec<InferenceRecord> = (0..50)
                .map(|i| rec(tenant, f64::from(part * 50 + i + 1)))
                .collect();
            all.extend(batch.iter().map(|r| r.latency_ms));
            write_with_retry(&db, None, &batch).await;
        }
        let rows = rollup::Entity::find().all(&db).await.unwrap();
        assert!(
            rows.len() >= 6,
            "three partial rows per resolution: {}",
            rows.len()
        );
        let merged = compact(&db, 100).await.unwrap();
        assert!(merged >= 2);
        assert_eq!(compact(&db, 100).await.unwrap(), 0, "nothing left to merge");
        let rows = rollup::Entity::find()
            .filter(rollup::Column::ResolutionSecs.eq(HOUR))
            .all(&db)
            .await
            .unwrap();
        let mut acc = Acc::default();
        for r in &rows {
            acc.add_rollup(r);
        }
        assert_eq!(acc.requests, 150);
        all.sort_by(f64::total_cmp);
        let p95 = acc.latency.quantile(0.95).unwrap();
        let exact = all[(0.95 * 149.0_f64).floor() as usize];
        assert!(
            (p95 - exact).abs() / exact <= crate::sketch::RELATIVE_ERROR,
            "{p95} vs {exact}"
        );
    }
}
