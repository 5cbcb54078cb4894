//! Usage events: what every service reports and billing rates.
//!
//! A usage event carries the producer's idempotency key as its id. The
//! ledger is append-only and a second event with an id already recorded is
//! accepted and ignored, so producers may retry freely.

use crate::db::Db;
use crate::entities::usage_event;
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A meter name: lower-case snake case, at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Meter(String);

impl Meter {
    pub const INPUT_TOKENS: &'static str = "input_tokens";
    pub const OUTPUT_TOKENS: &'static str = "output_tokens";
    /// Prompt tokens of a request answered from the response cache.
    pub const CACHED_INPUT_TOKENS: &'static str = "cached_input_tokens";
    /// Completion tokens a cached answer replayed (never generated again).
    pub const CACHED_OUTPUT_TOKENS: &'static str = "cached_output_tokens";
    pub const EMBEDDING_TOKENS: &'static str = "embedding_tokens";
    /// Dedicated GPU time: replicas × GPUs × wall time, with `gpu_type`.
    pub const GPU_MILLISECONDS: &'static str = "gpu_milliseconds";
    /// A training job on CPU workers: slots × wall time, with `pool`.
    pub const CPU_MILLISECONDS: &'static str = "cpu_milliseconds";
    pub const REQUESTS: &'static str = "requests";
    /// Retrievals from a knowledge base (`query` and `answer`).
    pub const RAG_QUERIES: &'static str = "rag_queries";
    /// Chunks stored in knowledge bases, sampled once per window (so a
    /// price per unit is a price per chunk-window).
    pub const VECTOR_STORAGE: &'static str = "vector_storage";

    pub fn new(name: &str) -> Result<Self, UsageError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && name.as_bytes()[0].is_ascii_lowercase();
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(UsageError::Invalid(format!(
                "meter `{}` must be lower-case snake case, at most 64 bytes",
                name.chars().take(64).collect::<String>()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Meter {
    type Error = UsageError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Meter::new(&s)
    }
}

impl From<Meter> for String {
    fn from(m: Meter) -> String {
        m.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    /// Idempotency key chosen by the producer (e.g. `evt_…` or
    /// `chatcmpl-…:output`), 1 to 128 printable ASCII characters.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub id: String,
    pub tenant_id: TenantId,
    /// `input_tokens`, `output_tokens`, `embedding_tokens`, `gpu_milliseconds`, …
    #[schema(schema_with = crate::schema::meter)]
    pub meter: Meter,
    /// In the meter's base unit; never negative.
    #[schema(minimum = 0)]
    pub quantity: i64,
    /// Model, deployment, GPU type… (at most 16; keys 1 to 64 characters,
    /// values at most 256).
    #[schema(schema_with = dimensions)]
    pub dimensions: BTreeMap<String, String>,
    pub occurred_at: DateTime<Utc>,
}

impl UsageEvent {
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.id.is_empty()
            || self.id.len() > 128
            || !self.id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(UsageError::Invalid(
                "event id must be 1 to 128 printable ASCII characters".into(),
            ));
        }
        if self.quantity < 0 {
            return Err(UsageError::Invalid("quantity must not be negative".into()));
        }
        if self.dimensions.len() > 16
            || self.dimensions.iter().any(|(k, v)| {
                k.is_empty()
                    || k.chars().count() > 64
                    || k.chars().any(char::is_control)
                    || v.chars().count() > 256
            })
        {
            return Err(UsageError::Invalid(
                "at most 16 dimensions, keys 1 to 64 characters without control characters, values at most 256".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("invalid usage event: {0}")]
    Invalid(String),
    #[error("usage ledger unavailable: {0}")]
    Store(#[from] sea_orm::DbErr),
    #[error("usage ledger is shutting down")]
    Closed,
}

crate::schema_fns! {
    dimensions => crate::schema::string_map(16, 64, crate::schema::string(false).max_length(Some(256)), false);
}

/// How many of a batch were new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct RecordOutcome {
    pub inserted: u64,
    pub duplicates: u64,
}

/// Where services report usage. Implementations must be idempotent on
/// `UsageEvent::id`.
#[async_trait::async_trait]
pub trait UsageSink: Send + Sync {
    async fn record(&self, events: &[UsageEvent]) -> Result<RecordOutcome, UsageError>;

    /// Hands events over to be committed without waiting for the commit,
    /// for a producer that has nothing to do with the outcome (a call's
    /// settlement). Waits only while the ledger's queue is full, so a
    /// ledger that falls behind slows producers down instead of letting
    /// work pile up in memory. Submitted events are committed like recorded
    /// ones, and before a graceful shutdown ends; a crash may lose them, as
    /// it may lose events whose `record` had not returned.
    async fn submit(&self, events: Vec<UsageEvent>) -> Result<(), UsageError> {
        self.record(&events).await.map(|_| ())
    }
}

/// Appends to the `usage_events` table, ignoring ids already there.
#[derive(Clone)]
pub struct DbUsageSink {
    db: Db,
}

impl DbUsageSink {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// Rows of the largest insert statement.
const CHUNK: usize = 256;

/// Records events inside the caller's transaction (so they commit with
/// what produced them, or not at all), skipping ids already recorded.
pub async fn record_in(
    db: &impl ConnectionTrait,
    events: &[UsageEvent],
) -> Result<usize, UsageError> {
    for e in events {
        e.validate()?;
    }
    Ok(insert_new(db, events).await?.len())
}

/// Inserts events, skipping ids already recorded (or repeated in the
/// batch); returns the ids this call inserted.
async fn insert_new(
    db: &impl ConnectionTrait,
    events: &[UsageEvent],
) -> Result<std::collections::HashSet<String>, UsageError> {
    use sea_orm::sea_query::{OnConflict, Query};
    let now = Utc::now();
    let mut inserted = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&UsageEvent> = events
        .iter()
        .filter(|e| seen.insert(e.id.as_str()))
        .collect();
    let mut rest = &unique[..];
    while !rest.is_empty() {
        // Statements of a few fixed sizes (256 rows, then powers of two):
        // the driver caches prepared statements by their text, and every
        // distinct row count was a new, large statement cached on every
        // connection (hundreds of MB under load), prepared anew each time.
        let n = if rest.len() >= CHUNK {
            CHUNK
        } else {
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut q = Query::insert();
        q.into_table(usage_event::Entity)
            .columns([
                usage_event::Column::Id,
                usage_event::Column::TenantId,
                usage_event::Column::Meter,
                usage_event::Column::Quantity,
                usage_event::Column::Dimensions,
                usage_event::Column::OccurredAt,
                usage_event::Column::RecordedAt,
            ])
            .on_conflict(
                OnConflict::column(usage_event::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .returning_col(usage_event::Column::Id);
        for e in chunk {
            q.values_panic([
                e.id.clone().into(),
                e.tenant_id.to_string().into(),
                e.meter.as_str().to_string().into(),
                e.quantity.into(),
                serde_json::to_string(&e.dimensions)
                    .unwrap_or_else(|_| "{}".into())
                    .into(),
                e.occurred_at.into(),
                now.into(),
            ]);
        }
        let stmt = db.get_database_backend().build(&q);
        for row in db.query_all_raw(stmt).await? {
            inserted.insert(row.try_get::<String>("", "id")?);
        }
    }
    Ok(inserted)
}

/// Counts, per batch of callers, what each one inserted (the first caller
/// naming an id gets it).
fn attribute(
    batches: &[&[UsageEvent]],
    inserted: &std::collections::HashSet<String>,
) -> Vec<RecordOutcome> {
    let mut claimed = std::collections::HashSet::new();
    batches
        .iter()
        .map(|events| {
            let new = events
                .iter()
                .filter(|e| inserted.contains(&e.id) && claimed.insert(e.id.clone()))
                .count() as u64;
            RecordOutcome {
                inserted: new,
                duplicates: events.len() as u64 - new,
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl UsageSink for DbUsageSink {
    async fn record(&self, events: &[UsageEvent]) -> Result<RecordOutcome, UsageError> {
        for e in events {
            e.validate()?;
        }
        let txn = crate::db::begin_write(&self.db).await?;
        let inserted = insert_new(&txn, events).await?;
        txn.commit().await?;
        Ok(attribute(&[events], &inserted)[0])
    }
}

struct Pending {
    events: Vec<UsageEvent>,
    /// `None` for submitted events: nobody waits for them.
    done: Option<tokio::sync::oneshot::Sender<Result<RecordOutcome, UsageError>>>,
}

/// Group commit in front of the ledger: concurrent `record` calls are
/// written together, one transaction per batch, so many producers cost one
/// round trip. `record` returns when its events are committed: an
/// acknowledged event is durable, and a crash loses only events whose
/// producers were still waiting. A failing database is retried (capped
/// backoff) while producers wait; the bounded queue pushes back on them.
#[derive(Clone)]
pub struct GroupCommitSink {
    tx: tokio::sync::mpsc::Sender<Pending>,
}

impl GroupCommitSink {
    /// The sink, and the flusher future to run on the caller's task tracker
    /// (it stops when `stop` is cancelled, after committing what is queued).
    pub fn new(
        db: Db,
        max_batch: usize,
        linger: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Pending>(16_384);
        (Self { tx }, flusher(db, rx, max_batch.max(1), linger, stop))
    }
}

async fn flusher(
    db: Db,
    mut rx: tokio::sync::mpsc::Receiver<Pending>,
    max_batch: usize,
    linger: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let first = tokio::select! {
            p = rx.recv() => p,
            _ = stop.cancelled() => { rx.close(); rx.recv().await }
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        let mut count = batch[0].events.len();
        // Let a batch gather without being woken by each producer: sleep
        // the linger, then take what came meanwhile (one wake-up a batch,
        // not one per event, which cost the request path a thread hand-off).
        if !stop.is_cancelled() {
            tokio::time::sleep(linger).await;
        }
        while count < max_batch {
            match rx.try_recv() {
                Ok(p) => {
                    count += p.events.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let all: Vec<UsageEvent> = batch
            .iter()
            .flat_map(|p| p.events.iter().cloned())
            .collect();
        let mut delay = std::time::Duration::from_millis(50);
        let inserted = loop {
            let attempt = async {
                let txn = crate::db::begin_write(&db).await?;
                let inserted = insert_new(&txn, &all).await?;
                txn.commit().await?;
                Ok::<_, UsageError>(inserted)
            }
            .await;
            match attempt {
                Ok(ids) => break ids,
                Err(e) => {
                    tracing::warn!(error = %e, events = all.len(), "ledger write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        };
        metrics::counter!("usage_events_committed_total").increment(inserted.len() as u64);
        metrics::histogram!("usage_batch_events").record(all.len() as f64);
        let slices: Vec<&[UsageEvent]> = batch.iter().map(|p| p.events.as_slice()).collect();
        let outcomes = attribute(&slices, &inserted);
        for (p, outcome) in batch.into_iter().zip(outcomes) {
            if let Some(done) = p.done {
                let _ = done.send(Ok(outcome));
            }
        }
    }
}

/// Validates events before they are queued; false when there are none.
fn worth_queueing(events: &[UsageEvent]) -> Result<bool, UsageError> {
    for e in events {
        e.validate()?;
    }
    Ok(!events.is_empty())
}

#[async_trait::async_trait]
impl UsageSink for GroupCommitSink {
    async fn record(&self, events: &[UsageEvent]) -> Result<RecordOutcome, UsageError> {
        if !worth_queueing(events)? {
            return Ok(RecordOutcome::default());
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Pending {
                events: events.to_vec(),
                done: Some(done),
            })
            .await
            .map_err(|_| UsageError::Closed)?;
        wait.await.map_err(|_| UsageError::Closed)?
    }

    async fn submit(&self, events: Vec<UsageEvent>) -> Result<(), UsageError> {
        if !worth_queueing(&events)? {
            return Ok(());
        }
        self.tx
            .send(Pending { events, done: None })
            .await
            .map_err(|_| UsageError::Closed)
    }
}
