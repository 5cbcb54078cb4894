//! Which training workers are online. Each worker beats every
//! [`BEAT`] with the GPU type and slots it offers; one that missed
//! [`LIVE`] is gone. A queued job of a type no live worker offers waits
//! with reason `capacity` from the moment it is created (the claim loop,
//! which sets the other reasons, never sees it), and operators list the
//! fleet at `GET /admin/v1/training/workers`.

use chrono::{DateTime, Utc};
use llmops_core::db::Db;
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};
use serde::Serialize;
use std::time::Duration;

/// How often a worker says it is online.
pub const BEAT: Duration = Duration::from_secs(5);
/// How long after its last beat a worker counts as online.
pub const LIVE: Duration = Duration::from_secs(30);

/// A live worker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerView {
    /// Host and process (`llmops worker --owner`).
    pub owner: String,
    /// The device type it offers (`cpu` for CPU workers).
    pub gpu_type: String,
    /// Jobs it runs at once.
    pub slots: i32,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Presence {
    db: Db,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Presence {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        crate::queue::stmt(&self.db, sql, values)
    }

    fn live_since() -> i64 {
        now_ms() - i64::try_from(LIVE.as_millis()).unwrap_or(30_000)
    }

    /// Says `owner` is online, offering `slots` of `gpu_type`.
    pub async fn beat(&self, owner: &str, gpu_type: &str, slots: u32) -> Result<(), DbErr> {
        self.db
            .execute_raw(self.stmt(
                "INSERT INTO training_workers (owner, gpu_type, slots, started_at, last_seen_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner) DO UPDATE SET gpu_type = $2, \
                 slots = $3, last_seen_ms = $5",
                vec![
                    owner.into(),
                    gpu_type.into(),
                    i64::from(slots).into(),
                    Utc::now().into(),
                    now_ms().into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// `owner` stopped.
    pub async fn leave(&self, owner: &str) -> Result<(), DbErr> {
        self.db
            .execute_raw(self.stmt(
                "DELETE FROM training_workers WHERE owner = $1",
                vec![owner.into()],
            ))
            .await?;
        Ok(())
    }

    /// Marks the queued jobs no live worker can run (`capacity`), and
    /// forgets workers long gone.
    pub async fn mark_unserved(&self) -> Result<u64, DbErr> {
        let since = Self::live_since();
        let r = self
            .db
            .execute_raw(self.stmt(
                "UPDATE training_jobs SET wait_reason = 'capacity' WHERE status = 'queued' \
                 AND wait_reason IS NULL AND gpu_type NOT IN \
                 (SELECT gpu_type FROM training_workers WHERE last_seen_ms > $1)",
                vec![since.into()],
            ))
            .await?;
        self.db
            .execute_raw(self.stmt(
                "DELETE FROM training_workers WHERE last_seen_ms < $1",
                vec![(since - 86_400_000).into()],
            ))
            .await?;
        Ok(r.rows_affected())
    }

    /// The live workers, by owner.
    pub async fn list(&self) -> Result<Vec<WorkerView>, DbErr> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT owner, gpu_type, slots, started_at, last_seen_ms FROM training_workers \
                 WHERE last_seen_ms > $1 ORDER BY owner",
                vec![Self::live_since().into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                let seen: i64 = r.try_get("", "last_seen_ms")?;
                Ok(WorkerView {
                    owner: r.try_get("", "owner")?,
                    gpu_type: r.try_get("", "gpu_type")?,
                    slots: r.try_get("", "slots")?,
                    started_at: r.try_get("", "started_at")?,
                    last_seen_at: DateTime::from_timestamp_millis(seen).unwrap_or_default(),
                })
            })
            .collect()
    }
}
