//! What the queue stores and hands out: jobs, their kinds and statuses,
//! leases, and how attempts end.

use chrono::{DateTime, Utc};
use llmops_core::ids::{JobId, TenantId};
use sea_orm::DbErr;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a job is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    FineTune,
    Quantize,
    Distill,
    Evaluate,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FineTune => "fine_tune",
            Self::Quantize => "quantize",
            Self::Distill => "distill",
            Self::Evaluate => "evaluate",
        }
    }

    pub fn parse(s: &str) -> Result<Self, QueueError> {
        Ok(match s {
            "fine_tune" => Self::FineTune,
            "quantize" => Self::Quantize,
            "distill" => Self::Distill,
            "evaluate" => Self::Evaluate,
            other => return Err(QueueError::Corrupt(format!("job kind `{other}`"))),
        })
    }
}

/// A job's status, as OpenAI names them (plus `paused`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    ValidatingFiles,
    Queued,
    Running,
    Paused,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidatingFiles => "validating_files",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, QueueError> {
        Ok(match s {
            "validating_files" => Self::ValidatingFiles,
            "queued" => Self::Queued,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(QueueError::Corrupt(format!("job status `{other}`"))),
        })
    }

    /// Succeeded, failed or cancelled: nothing changes any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The lease is no longer this worker's: the job was claimed again by a
    /// later attempt, or ended. The worker must stop and write nothing.
    #[error("the job's lease was lost (another attempt owns it, or it ended)")]
    Stale,
    #[error("job not found")]
    NotFound,
    /// The job is in a state the operation does not apply to.
    #[error("the job is {0}")]
    Conflict(&'static str),
    #[error("corrupt queue row: {0}")]
    Corrupt(String),
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub tenant_id: TenantId,
    pub kind: JobKind,
    /// Higher runs first, within the tenant.
    pub priority: i32,
    pub gpu_type: String,
    /// Devices in all: per node × nodes.
    pub gpus: u32,
    pub spec: serde_json::Value,
    pub max_attempts: u32,
    /// `Queued`, or `ValidatingFiles` until [`Queue::release`].
    pub status: JobStatus,
}

/// What a worker can start now: free devices per GPU type, and the pool
/// they are in (recorded on the attempt, whose metered time carries it).
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    pub devices: BTreeMap<String, u32>,
    pub pool: Option<String>,
}

impl Capacity {
    pub fn of(gpu_type: &str, free: u32) -> Self {
        Self {
            devices: BTreeMap::from([(gpu_type.to_string(), free)]),
            pool: None,
        }
    }

    pub fn in_pool(mut self, pool: Option<String>) -> Self {
        self.pool = pool;
        self
    }
}

/// A claimed attempt: the worker's proof of ownership for every later write.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job_id: JobId,
    pub tenant_id: TenantId,
    pub attempt: i32,
    pub owner: String,
    pub kind: JobKind,
    pub gpu_type: String,
    pub gpus: u32,
    pub spec: serde_json::Value,
}

/// What a heartbeat tells the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop now; finish with [`Finish::Cancelled`].
    Cancel,
    /// Save a checkpoint and finish with [`Finish::Paused`].
    Pause,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Finish {
    Succeeded(serde_json::Value),
    /// A retryable failure re-queues the job with back-off while attempts
    /// remain; any other fails it.
    Failed {
        error: String,
        retryable: bool,
    },
    Cancelled,
    Paused,
    /// The worker stopped (shut down) mid-attempt: re-queued at once, and
    /// the attempt does not count against the job's maximum.
    Interrupted(String),
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: JobId,
    pub tenant_id: TenantId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub priority: i32,
    pub gpu_type: String,
    pub gpus: u32,
    pub spec: serde_json::Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub wait_reason: Option<String>,
    pub control: Option<String>,
    pub error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Timing of the queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    /// How long a claim or heartbeat holds the job.
    pub lease: Duration,
    /// Back-off after the first retryable failure; doubles per attempt.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Candidates read per claim (heads of tenants' queues).
    pub candidates: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            backoff: Duration::from_secs(10),
            backoff_max: Duration::from_secs(600),
            candidates: 64,
        }
    }
}

/// The usage event of one attempt: its devices × `ms` of running time, on
/// `cpu_milliseconds` for CPU workers and `gpu_milliseconds` otherwise, with
/// an id derived from the job and attempt, so an attempt is billed once
/// whoever records it (its worker at the end, or the queue when its lease
/// lapsed).
#[allow(clippy::too_many_arguments)]
pub fn attempt_usage(
    job: JobId,
    tenant: TenantId,
    attempt: i32,
    kind: JobKind,
    gpu_type: &str,
    pool: Option<&str>,
    gpus: u32,
    ms: i64,
) -> Option<llmops_core::usage::UsageEvent> {
    use llmops_core::usage::{Meter, UsageEvent};
    let meter = if gpu_type == "cpu" {
        Meter::CPU_MILLISECONDS
    } else {
        Meter::GPU_MILLISECONDS
    };
    Some(UsageEvent {
        id: format!("{job}:attempt-{attempt}"),
        tenant_id: tenant,
        meter: Meter::new(meter).ok()?,
        quantity: ms.max(0).saturating_mul(i64::from(gpus.max(1))),
        dimensions: {
            let mut d = BTreeMap::from([
                ("gpu_type".to_string(), gpu_type.to_string()),
                ("job_id".to_string(), job.to_string()),
                ("kind".to_string(), kind.as_str().to_string()),
            ]);
            if let Some(p) = pool {
                d.insert("pool".to_string(), p.to_string());
            }
            d
        },
        occurred_at: chrono::Utc::now(),
    })
}
