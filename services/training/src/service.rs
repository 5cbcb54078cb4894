//! The training service behind the routes: files, jobs, their events and
//! checkpoints, every query scoped to the calling tenant.

use crate::api::*;
use crate::entities::{checkpoint, event};
use crate::files::Files;
use crate::job::{JobKind, JobRow, JobStatus, NewJob, QueueError};
use crate::queue::Queue;
use crate::recipes;
use chrono::Utc;
use llmops_core::db::Db;
use llmops_core::ids::{CheckpointId, JobEventId, JobId, TenantId};
use llmops_core::pagination::{ListParams, Page};
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use llmops_registry::Registry;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Cancel,
    Pause,
    Resume,
}

/// The kinds `/v1/fine_tuning/jobs` shows.
pub const FINE_TUNING_KINDS: &[JobKind] = &[JobKind::FineTune, JobKind::Distill];

/// Attempts when the request does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Everything a worker needs, resolved when the job is created and stored
/// with it (the queue's `spec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// The base, as asked for.
    pub model: String,
    pub base_version_id: String,
    /// `name@N` of the base.
    pub base_version: String,
    pub base_sha256: Option<String>,
    pub training_file: String,
    pub training_file_sha256: String,
    pub validation_file: Option<String>,
    pub validation_file_sha256: Option<String>,
    pub hyperparameters: ResolvedHyperparameters,
    pub learning_rate: f64,
    pub method: serde_json::Value,
    pub suffix: Option<String>,
    pub seed: i64,
    pub metadata: Option<BTreeMap<String, String>>,
    pub peft: Peft,
    pub resources: Resources,
    pub distributed: Distributed,
    pub executor: ExecutorPlan,
    /// The registry model the output becomes a version of.
    pub output_model: String,
    /// A distillation: the training file's prompts are answered by the
    /// teacher first.
    #[serde(default)]
    pub distill: Option<Distill>,
}

/// What a succeeded job stored as its result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobResult {
    pub fine_tuned_model: Option<String>,
    pub version_id: Option<String>,
    pub trained_tokens: Option<i64>,
    pub metrics: Option<serde_json::Value>,
    /// Files the job wrote (a distillation's generated training file).
    #[serde(default)]
    pub result_files: Vec<String>,
}

#[derive(Clone)]
pub struct Training {
    db: Db,
    queue: Queue,
    files: Files,
    registry: Arc<Registry>,
    pools: crate::pools::Pools,
    presence: crate::presence::Presence,
    /// Serving, once it exists: answers distillations' prompts.
    teacher: Arc<std::sync::OnceLock<Arc<dyn crate::distill::Teacher>>>,
}

pub(crate) fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::NotFound => ApiError::not_found("fine-tuning job"),
        QueueError::Conflict(s) => ApiError::Conflict(format!("the job is {s}")),
        QueueError::Stale => ApiError::Conflict("the job changed meanwhile".into()),
        QueueError::Db(e) => e.into(),
        QueueError::Corrupt(what) => ApiError::Internal(Box::new(QueueError::Corrupt(what))),
    }
}

pub(crate) fn unix(t: chrono::DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// A file a job names that does not exist is the request's fault (422 on
/// `field`), not a missing route object.
pub(crate) fn missing_file<'a>(
    field: &'static str,
    id: &'a str,
) -> impl FnOnce(ApiError) -> ApiError + 'a {
    move |e: ApiError| match e {
        ApiError::NotFound(_) => ApiError::validation(field, format!("file `{id}` does not exist")),
        other => other,
    }
}

/// A failed job's error, in OpenAI's shape.
pub(crate) fn job_error(row: &JobRow) -> Option<JobError> {
    (row.status == JobStatus::Failed).then(|| JobError {
        code: "job_failed".into(),
        message: row.error.clone().unwrap_or_else(|| "the job failed".into()),
        param: None,
    })
}

fn check_metadata(m: &BTreeMap<String, String>) -> ApiResult<()> {
    if m.len() > 16
        || m.iter().any(|(k, v)| {
            k.is_empty()
                || k.chars().count() > 64
                || k.chars().any(char::is_control)
                || v.chars().count() > 512
        })
    {
        return Err(ApiError::validation(
            "metadata",
            "metadata holds at most 16 pairs; keys 1 to 64 characters without control characters, values at most 512",
        ));
    }
    Ok(())
}

/// The fields every kind of job takes, checked.
pub(crate) struct Common {
    pub priority: i32,
    pub max_attempts: u32,
}

pub(crate) fn check_common(
    metadata: Option<&BTreeMap<String, String>>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    model: &str,
) -> ApiResult<Common> {
    if let Some(m) = metadata {
        check_metadata(m)?;
    }
    if priority.is_some_and(|p| !(-1000..=1000).contains(&p)) {
        return Err(ApiError::validation(
            "priority",
            "priority must be -1000 to 1000",
        ));
    }
    let max_attempts = max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=10).contains(&max_attempts) {
        return Err(ApiError::validation(
            "max_attempts",
            "max_attempts must be 1 to 10",
        ));
    }
    if model.is_empty() || model.chars().count() > 200 {
        return Err(ApiError::validation(
            "model",
            "model must be 1 to 200 characters",
        ));
    }
    Ok(Common {
        priority: priority.unwrap_or(0),
        max_attempts,
    })
}

fn check_suffix(s: &str) -> ApiResult<()> {
    let ok = (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "suffix",
            "suffix is 1 to 40 letters, digits, `.`, `_` or `-`",
        ))
    }
}

/// `GET …/events` and `…/checkpoints` cursors are ids of their own kind.
fn cursor<T: std::str::FromStr>(after: &Option<String>) -> ApiResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    after
        .as_deref()
        .map(|a| {
            a.parse()
                .map_err(|e: T::Err| ApiError::validation("after", e.to_string()))
        })
        .transpose()
}

impl Training {
    pub fn new(db: Db, queue: Queue, files: Files, registry: Arc<Registry>) -> Self {
        Self {
            pools: crate::pools::Pools::new(db.clone()),
            presence: crate::presence::Presence::new(db.clone()),
            db,
            queue,
            files,
            registry,
            teacher: Arc::default(),
        }
    }

    /// Lets distillation jobs ask `teacher` (set once, when serving is
    /// built).
    pub fn set_teacher(&self, teacher: Arc<dyn crate::distill::Teacher>) {
        let _ = self.teacher.set(teacher);
    }

    pub fn teacher(&self) -> Option<&Arc<dyn crate::distill::Teacher>> {
        self.teacher.get()
    }

    pub fn pools(&self) -> &crate::pools::Pools {
        &self.pools
    }

    pub fn presence(&self) -> &crate::presence::Presence {
        &self.presence
    }

    /// A job just queued that no live worker can run says so (`capacity`).
    pub(crate) async fn note_unserved(&self) {
        if let Err(e) = self.presence.mark_unserved().await {
            tracing::warn!(error = %e, "marking jobs no worker serves failed");
        }
    }

    pub fn files(&self) -> &Files {
        &self.files
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub async fn delete_file(
        &self,
        ctx: &TenantCtx,
        id: &str,
    ) -> ApiResult<crate::files::FileDeleted> {
        ctx.require(Scope::Training)?;
        let row = self.files.row(ctx, id).await?;
        if let Some(job) = self
            .queue
            .unfinished_reading(ctx.tenant_id(), &row.id)
            .await
            .map_err(queue_error)?
        {
            return Err(ApiError::Conflict(format!(
                "file `{}` is read by job `{job}`, which has not finished; cancel it or wait",
                row.id
            )));
        }
        self.files.delete(ctx, row).await
    }

    pub async fn create_job(&self, ctx: &TenantCtx, req: CreateJob) -> ApiResult<JobView> {
        ctx.require(Scope::Training)?;
        if let Some(s) = &req.suffix {
            check_suffix(s)?;
        }
        let common = check_common(
            req.metadata.as_ref(),
            req.priority,
            req.max_attempts,
            &req.model,
        )?;
        if req.integrations.as_ref().is_some_and(|i| !i.is_empty()) {
            return Err(ApiError::validation(
                "integrations",
                "integrations (e.g. Weights & Biases) are not supported; metrics are in the job's events",
            ));
        }
        if req
            .seed
            .is_some_and(|s| !(0..=i64::from(i32::MAX)).contains(&s))
        {
            return Err(ApiError::validation("seed", "seed must be 0 to 2147483647"));
        }
        let asked = req.resources.clone().unwrap_or_default();
        let pool = self
            .pools
            .shape_for(&asked.gpu_type, asked.gpus_per_node, asked.nodes)
            .await?;
        let plan = recipes::plan(&req, pool)?;
        let train_id = req.training_file.to_string();
        let train = self
            .files
            .row(ctx, &train_id)
            .await
            .map_err(missing_file("training_file", &train_id))?;
        let valid = match &req.validation_file {
            Some(v) => {
                let id = v.to_string();
                Some(
                    self.files
                        .row(ctx, &id)
                        .await
                        .map_err(missing_file("validation_file", &id))?,
                )
            }
            None => None,
        };
        let format = if plan.executor.recipe == recipes::GPU_RECIPE {
            llmops_registry::domain::Format::Safetensors
        } else {
            llmops_registry::domain::Format::Gguf
        };
        let base = self.readable_version(ctx, &req.model, format).await?;
        let distill = match &req.distill {
            Some(d) => Some(crate::distill::check(self.teacher(), ctx, d).await?),
            None => None,
        };
        let output_model = format!(
            "{}-{}",
            base.model.chars().take(80).collect::<String>(),
            req.suffix.as_deref().unwrap_or("ft")
        );
        let id = JobId::new();
        let seed = req.seed.unwrap_or(42);
        let method = serde_json::json!({
            "type": "supervised",
            "supervised": { "hyperparameters": plan.hyperparameters },
        });
        let spec = JobSpec {
            model: req.model.clone(),
            base_version_id: base.id.to_string(),
            base_version: format!("{}@{}", base.model, base.version),
            base_sha256: base.sha256.clone(),
            training_file: train.id.clone(),
            training_file_sha256: train.sha256.clone(),
            validation_file: valid.as_ref().map(|v| v.id.clone()),
            validation_file_sha256: valid.as_ref().map(|v| v.sha256.clone()),
            hyperparameters: plan.hyperparameters,
            learning_rate: plan.learning_rate,
            method,
            suffix: req.suffix.clone(),
            seed,
            metadata: req.metadata.clone(),
            peft: plan.peft,
            resources: plan.resources.clone(),
            distributed: plan.distributed,
            executor: plan.executor,
            output_model,
            distill,
        };
        let spec_json = serde_json::to_value(&spec).map_err(|e| ApiError::Internal(Box::new(e)))?;
        self.queue
            .enqueue(NewJob {
                id,
                tenant_id: ctx.tenant_id(),
                kind: if spec.distill.is_some() {
                    JobKind::Distill
                } else {
                    JobKind::FineTune
                },
                priority: common.priority,
                gpu_type: plan.resources.gpu_type.clone(),
                gpus: plan.resources.devices(),
                spec: spec_json,
                max_attempts: common.max_attempts,
                status: JobStatus::Queued,
            })
            .await
            .map_err(queue_error)?;
        self.note_unserved().await;
        record_event(
            &self.db,
            ctx.tenant_id(),
            id,
            0,
            "info",
            &format!(
                "Created {} job {id}",
                if spec.distill.is_some() {
                    "distillation"
                } else {
                    "fine-tuning"
                }
            ),
            None,
        )
        .await?;
        self.get_job(ctx, &id.to_string()).await
    }

    fn job_id(id: &str) -> ApiResult<JobId> {
        id.parse().map_err(|_| {
            ApiError::not_found(format!("job `{}`", id.chars().take(64).collect::<String>()))
        })
    }

    /// The tenant's job of any kind (another tenant's is 404).
    pub(crate) async fn any_job(&self, ctx: &TenantCtx, id: &str) -> ApiResult<JobRow> {
        ctx.require(Scope::Training)?;
        self.queue
            .get(ctx.tenant_id(), Self::job_id(id)?)
            .await
            .map_err(queue_error)
    }

    /// The tenant's fine-tuning or distillation job: what
    /// `/v1/fine_tuning/jobs` shows (a job of another kind is 404 there).
    async fn job_row(&self, ctx: &TenantCtx, id: &str) -> ApiResult<JobRow> {
        let row = self.any_job(ctx, id).await?;
        if FINE_TUNING_KINDS.contains(&row.kind) {
            Ok(row)
        } else {
            Err(queue_error(QueueError::NotFound))
        }
    }

    /// A page of the tenant's jobs of `kinds` (all when empty), newest
    /// first.
    pub(crate) async fn list_rows<V>(
        &self,
        ctx: &TenantCtx,
        p: ListParams,
        kinds: &[JobKind],
        view: impl Fn(JobRow) -> ApiResult<V>,
        id_of: impl Fn(&V) -> String,
    ) -> ApiResult<Page<V>> {
        ctx.require(Scope::Training)?;
        let limit = p.limit()?;
        let after: Option<JobId> = cursor(&p.after)?;
        let rows = self
            .queue
            .list(ctx.tenant_id(), kinds, after, limit + 1)
            .await
            .map_err(queue_error)?;
        let views = rows.into_iter().map(view).collect::<ApiResult<Vec<_>>>()?;
        Ok(Page::from_rows(views, limit, id_of))
    }

    pub async fn get_job(&self, ctx: &TenantCtx, id: &str) -> ApiResult<JobView> {
        view(self.job_row(ctx, id).await?)
    }

    pub async fn list_jobs(&self, ctx: &TenantCtx, p: ListParams) -> ApiResult<Page<JobView>> {
        self.list_rows(ctx, p, FINE_TUNING_KINDS, view, |j| j.id.to_string())
            .await
    }

    pub async fn cancel_job(&self, ctx: &TenantCtx, id: &str) -> ApiResult<JobView> {
        let row = self.job_row(ctx, id).await?;
        view(self.control(ctx, &row, Action::Cancel).await?)
    }

    pub async fn pause_job(&self, ctx: &TenantCtx, id: &str) -> ApiResult<JobView> {
        let row = self.job_row(ctx, id).await?;
        view(self.control(ctx, &row, Action::Pause).await?)
    }

    pub async fn resume_job(&self, ctx: &TenantCtx, id: &str) -> ApiResult<JobView> {
        let row = self.job_row(ctx, id).await?;
        view(self.control(ctx, &row, Action::Resume).await?)
    }

    /// Cancel, pause or resume the tenant's `job`, and say so in its events.
    pub(crate) async fn control(
        &self,
        ctx: &TenantCtx,
        job: &JobRow,
        action: Action,
    ) -> ApiResult<JobRow> {
        ctx.require(Scope::Training)?;
        let job_id = job.id;
        let (tenant, q) = (ctx.tenant_id(), &self.queue);
        let row = match action {
            Action::Cancel => q.cancel(tenant, job_id).await,
            Action::Pause => q.pause(tenant, job_id).await,
            Action::Resume => q.resume(tenant, job_id).await,
        }
        .map_err(queue_error)?;
        let msg = match (action, row.status) {
            (Action::Cancel, JobStatus::Cancelled) => "Job cancelled",
            (Action::Cancel, _) => {
                "Cancellation requested; the running attempt stops at its next heartbeat"
            }
            (Action::Pause, JobStatus::Paused) => "Job paused",
            (Action::Pause, _) => {
                "Pause requested; the running attempt stops at its next step and keeps its last checkpoint"
            }
            (Action::Resume, _) => "Job resumed",
        };
        record_event(&self.db, tenant, job_id, row.attempt, "info", msg, None).await?;
        Ok(row)
    }

    pub async fn list_events(
        &self,
        ctx: &TenantCtx,
        id: &str,
        p: ListParams,
    ) -> ApiResult<Page<EventView>> {
        let job = self.job_row(ctx, id).await?;
        self.events_of(ctx, job, p).await
    }

    /// A job's events, whatever its kind.
    pub(crate) async fn events_of(
        &self,
        ctx: &TenantCtx,
        job: JobRow,
        p: ListParams,
    ) -> ApiResult<Page<EventView>> {
        let limit = p.limit()?;
        let after: Option<JobEventId> = cursor(&p.after)?;
        let mut q = ctx
            .scoped()
            .find::<event::Entity>()
            .filter(event::Column::JobId.eq(job.id.to_string()));
        if let Some(a) = after {
            q = q.filter(event::Column::Id.lt(a.to_string()));
        }
        let rows = q
            .order_by_desc(event::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let views = rows
            .into_iter()
            .map(|r| EventView {
                id: r.id.parse().unwrap_or_default(),
                object: "fine_tuning.job.event",
                created_at: unix(r.created_at),
                level: r.level,
                message: r.message,
                kind: r.kind,
                data: r.data.and_then(|d| serde_json::from_str(&d).ok()),
            })
            .collect();
        Ok(Page::from_rows(views, limit, |e| e.id.to_string()))
    }

    pub async fn list_checkpoints(
        &self,
        ctx: &TenantCtx,
        id: &str,
        p: ListParams,
    ) -> ApiResult<Page<CheckpointView>> {
        let job = self.job_row(ctx, id).await?;
        let limit = p.limit()?;
        let after: Option<CheckpointId> = cursor(&p.after)?;
        let mut q = ctx
            .scoped()
            .find::<checkpoint::Entity>()
            .filter(checkpoint::Column::JobId.eq(job.id.to_string()))
            .filter(checkpoint::Column::VersionRef.is_not_null());
        if let Some(a) = after {
            q = q.filter(checkpoint::Column::Id.lt(a.to_string()));
        }
        let rows = q
            .order_by_desc(checkpoint::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let views = rows
            .into_iter()
            .map(|r| {
                let mut metrics: BTreeMap<String, f64> =
                    serde_json::from_str(&r.metrics).unwrap_or_default();
                metrics.insert("step".into(), r.step as f64);
                CheckpointView {
                    id: r.id.parse().unwrap_or_default(),
                    object: "fine_tuning.job.checkpoint",
                    created_at: unix(r.created_at),
                    fine_tuned_model_checkpoint: r.version_ref.unwrap_or_default(),
                    fine_tuning_job_id: job.id,
                    metrics,
                    step_number: r.step,
                }
            })
            .collect();
        Ok(Page::from_rows(views, limit, |c| c.id.to_string()))
    }
}

/// Appends an event to a job's log.
pub async fn record_event(
    db: &impl sea_orm::ConnectionTrait,
    tenant: TenantId,
    job: JobId,
    attempt: i32,
    level: &str,
    message: &str,
    data: Option<&serde_json::Value>,
) -> ApiResult<()> {
    event::ActiveModel {
        id: Set(JobEventId::new().to_string()),
        tenant_id: Set(tenant.to_string()),
        job_id: Set(job.to_string()),
        attempt: Set(attempt),
        level: Set(level.into()),
        kind: Set(if data.is_some() { "metrics" } else { "message" }.into()),
        message: Set(message.chars().take(4000).collect()),
        data: Set(data.map(|d| d.to_string())),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

fn view(row: JobRow) -> ApiResult<JobView> {
    let spec: JobSpec =
        serde_json::from_value(row.spec.clone()).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let result: JobResult = row
        .result
        .clone()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    let error = job_error(&row);
    Ok(JobView {
        id: row.id,
        object: "fine_tuning.job",
        created_at: unix(row.created_at),
        error,
        fine_tuned_model: result.fine_tuned_model,
        finished_at: row.finished_at.map(unix),
        hyperparameters: spec.hyperparameters,
        model: spec.model,
        organization_id: row.tenant_id.to_string(),
        result_files: result.result_files,
        seed: spec.seed,
        status: row.status,
        trained_tokens: result.trained_tokens,
        training_file: spec.training_file,
        validation_file: spec.validation_file,
        estimated_finish: None,
        integrations: Vec::new(),
        metadata: spec.metadata,
        method: spec.method,
        user_provided_suffix: spec.suffix,
        kind: row.kind,
        priority: row.priority,
        peft: spec.peft,
        resources: spec.resources,
        distributed: spec.distributed,
        executor: spec.executor,
        attempt: row.attempt,
        max_attempts: row.max_attempts,
        wait_reason: row.wait_reason,
        result_metrics: result.metrics,
    })
}
