//! Usage events: what every service reports and billing rates.
//!
//! A usage event carries the producer's idempotency key as its id. The
//! ledger is append-only and a second event with an id already recorded is
//! accepted and ignored, so producers may retry freely.

use crate::db::Db;
use crate::entities::usage_event;
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A meter name: lower-case snake case, at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Meter(String);

impl Meter {
    pub const INPUT_TOKENS: &'static str = "input_tokens";
    pub const OUTPUT_TOKENS: &'static str = "output_tokens";
    pub const CACHED_INPUT_TOKENS: &'static str = "cached_input_tokens";
    pub const EMBEDDING_TOKENS: &'static str = "embedding_tokens";
    /// Dedicated GPU time: replicas × GPUs × wall time, with `gpu_type`.
    pub const GPU_MILLISECONDS: &'static str = "gpu_milliseconds";
    pub const REQUESTS: &'static str = "requests";

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// Idempotency key chosen by the producer (e.g. `evt_…` or
    /// `chatcmpl-…:output`), 1 to 128 printable ASCII characters.
    pub id: String,
    pub tenant_id: TenantId,
    pub meter: Meter,
    /// In the meter's base unit; never negative.
    pub quantity: i64,
    /// Model, deployment, GPU type… (at most 16, short strings).
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
            || self
                .dimensions
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 256)
        {
            return Err(UsageError::Invalid(
                "at most 16 dimensions, keys 1 to 64 bytes, values at most 256".into(),
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
}

/// How many of a batch were new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordOutcome {
    pub inserted: u64,
    pub duplicates: u64,
}

/// Where services report usage. Implementations must be idempotent on
/// `UsageEvent::id`.
#[async_trait::async_trait]
pub trait UsageSink: Send + Sync {
    async fn record(&self, events: &[UsageEvent]) -> Result<RecordOutcome, UsageError>;
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

async fn insert_batch(db: &impl ConnectionTrait, events: &[UsageEvent]) -> Result<u64, UsageError> {
    let now = Utc::now();
    let rows = events.iter().map(|e| usage_event::ActiveModel {
        id: Set(e.id.clone()),
        tenant_id: Set(e.tenant_id.to_string()),
        meter: Set(e.meter.as_str().to_string()),
        quantity: Set(e.quantity),
        dimensions: Set(serde_json::to_string(&e.dimensions).unwrap_or_else(|_| "{}".into())),
        occurred_at: Set(e.occurred_at),
        recorded_at: Set(now),
    });
    let res = usage_event::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([usage_event::Column::Id])
        .exec_without_returning(db)
        .await?;
    Ok(match res {
        sea_orm::TryInsertResult::Inserted(n) => n,
        sea_orm::TryInsertResult::Empty | sea_orm::TryInsertResult::Conflicted => 0,
    })
}

#[async_trait::async_trait]
impl UsageSink for DbUsageSink {
    async fn record(&self, events: &[UsageEvent]) -> Result<RecordOutcome, UsageError> {
        for e in events {
            e.validate()?;
        }
        let txn = crate::db::begin_write(&self.db).await?;
        let mut inserted = 0;
        for chunk in events.chunks(500) {
            inserted += insert_batch(&txn, chunk).await?;
        }
        txn.commit().await?;
        Ok(RecordOutcome {
            inserted,
            duplicates: events.len() as u64 - inserted,
        })
    }
}
