//! Jobs of the other kinds, `quantize` and `evaluate`, through the same
//! queue, resources, events and billing as fine-tuning:
//! `/v1/training/jobs`, which also lists and shows every job of the tenant
//! whatever its kind (fine-tuning and distillation jobs keep their
//! OpenAI-shaped `/v1/fine_tuning/jobs` view as well).
//!
//! Both run the CPU recipe's tools (`infra/recipes/llamacpp-cpu/`):
//! `quantize.py` (llama.cpp's own quantizer) and `evaluate.py` (loss,
//! perplexity, next-token accuracy and exact match on a held-out file).

use crate::api::{JobError, Resources};
use crate::job::{JobKind, JobRow, JobStatus, NewJob};
use crate::service::{
    JobResult, JobSpec, Training, job_error, missing_file, queue_error, record_event, unix,
};
use llmops_core::ids::{FileId, JobId};
use llmops_core::pagination::{ListParams, Page};
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use llmops_registry::domain::{Format, VersionStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kinds created here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A GGUF version → a new version at another quantization.
    Quantize,
    /// A held-out file against a version: its metrics are recorded on the
    /// version (`evaluated_metrics`), where promotion gates read them.
    Evaluate,
}

/// A quantization llama.cpp's quantizer writes, as the registry names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum QuantizeTarget {
    #[serde(rename = "gguf_q8_0")]
    Q8_0,
    #[serde(rename = "gguf_q5_k_m")]
    Q5KM,
    #[serde(rename = "gguf_q5_0")]
    Q5_0,
    #[serde(rename = "gguf_q4_k_m")]
    Q4KM,
    #[serde(rename = "gguf_q4_1")]
    Q4_1,
    #[serde(rename = "gguf_q4_0")]
    Q4_0,
    #[serde(rename = "fp16")]
    F16,
}

impl QuantizeTarget {
    /// The recipe's name for it.
    pub fn recipe_name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::Q5KM => "q5_k_m",
            Self::Q5_0 => "q5_0",
            Self::Q4KM => "q4_k_m",
            Self::Q4_1 => "q4_1",
            Self::Q4_0 => "q4_0",
            Self::F16 => "f16",
        }
    }

    /// The registry's name for it.
    pub fn registry_name(self) -> &'static str {
        match self {
            Self::Q8_0 => "gguf_q8_0",
            Self::Q5KM => "gguf_q5_k_m",
            Self::Q5_0 => "gguf_q5_0",
            Self::Q4KM => "gguf_q4_k_m",
            Self::Q4_1 => "gguf_q4_1",
            Self::Q4_0 => "gguf_q4_0",
            Self::F16 => "fp16",
        }
    }
}

/// `POST /v1/training/jobs`: a quantization or an evaluation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTrainingJob {
    pub kind: TaskKind,
    /// The version read: `name@alias`, `name@3` or `mv_…` of a ready GGUF
    /// model.
    #[schema(min_length = 1, max_length = 200)]
    pub model: String,
    /// `quantize` (required): the output's quantization.
    pub quantization: Option<QuantizeTarget>,
    /// `quantize`: the model the output becomes a version of (default: the
    /// source's own model, as its next version).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    pub output_model: Option<String>,
    /// `evaluate` (required): a held-out chat-format file (`file_…`);
    /// each chat's last assistant turn is the answer scored.
    pub file: Option<FileId>,
    /// `evaluate`: the metrics' prefix on the version (`heldout` →
    /// `heldout.loss`); default `eval`.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,31}$")]
    pub name: Option<String>,
    /// `evaluate`: the first N chats also get a greedy answer generated
    /// (the way serving does) and compared (`exact_match`); default 50.
    #[schema(minimum = 0, maximum = 1000)]
    pub generate_examples: Option<u32>,
    /// At most 16 pairs; keys up to 64 characters, values up to 512.
    #[schema(schema_with = crate::api::metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Higher runs first among the tenant's jobs.
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// Attempts before a retryable failure fails the job.
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<u32>,
}

/// What a quantize or evaluate job stores as its spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The version, as asked for.
    pub model: String,
    pub version_id: String,
    /// `name@N`.
    pub version: String,
    pub version_sha256: Option<String>,
    pub version_quantization: String,
    pub quantization: Option<QuantizeTarget>,
    pub output_model: Option<String>,
    pub file: Option<String>,
    pub file_sha256: Option<String>,
    pub name: Option<String>,
    pub generate_examples: u32,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Any job of the tenant, whatever its kind.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrainingJobView {
    pub id: JobId,
    /// Always `training.job`.
    pub object: &'static str,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The version read (the base of a fine-tune), as asked for.
    pub model: String,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub priority: i32,
    pub resources: Resources,
    /// Attempts so far.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Why a queued job waits: `quota`, `capacity` or `budget`.
    pub wait_reason: Option<String>,
    pub error: Option<JobError>,
    /// The kind's inputs: the files, hyperparameters, target quantization
    /// or evaluation name.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// The registered output (`name@N`) of a fine-tune, distillation or
    /// quantization, once succeeded.
    pub output_version: Option<String>,
    /// Final metrics (an evaluation's are also on the version).
    #[schema(value_type = Option<Object>)]
    pub result_metrics: Option<serde_json::Value>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The view of any job.
pub fn task_view(row: JobRow) -> ApiResult<TrainingJobView> {
    let internal = |e: serde_json::Error| ApiError::Internal(Box::new(e));
    let result: JobResult = row
        .result
        .clone()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    let mut resources = Resources {
        gpu_type: row.gpu_type.clone(),
        gpus_per_node: row.gpus,
        nodes: 1,
    };
    let (model, parameters, metadata) = match row.kind {
        JobKind::FineTune | JobKind::Distill => {
            let s: JobSpec = serde_json::from_value(row.spec.clone()).map_err(internal)?;
            let p = serde_json::json!({
                "training_file": s.training_file,
                "validation_file": s.validation_file,
                "hyperparameters": s.hyperparameters,
                "peft": s.peft,
                "distributed": s.distributed,
                "distill": s.distill,
                "output_model": s.output_model,
            });
            resources = s.resources.clone();
            (s.model, p, s.metadata)
        }
        JobKind::Quantize | JobKind::Evaluate => {
            let s: TaskSpec = serde_json::from_value(row.spec.clone()).map_err(internal)?;
            let p = match row.kind {
                JobKind::Quantize => serde_json::json!({
                    "version": s.version,
                    "quantization": s.quantization,
                    "output_model": s.output_model,
                }),
                _ => serde_json::json!({
                    "version": s.version,
                    "file": s.file,
                    "name": s.name,
                    "generate_examples": s.generate_examples,
                }),
            };
            (s.model, p, s.metadata)
        }
    };
    Ok(TrainingJobView {
        id: row.id,
        object: "training.job",
        kind: row.kind,
        status: row.status,
        model,
        created_at: unix(row.created_at),
        started_at: row.started_at.map(unix),
        finished_at: row.finished_at.map(unix),
        priority: row.priority,
        resources,
        attempt: row.attempt,
        max_attempts: row.max_attempts,
        wait_reason: row.wait_reason.clone(),
        error: job_error(&row),
        parameters,
        output_version: result.fine_tuned_model,
        result_metrics: result.metrics,
        metadata,
    })
}

impl Training {
    /// Queues a quantization or an evaluation.
    pub async fn create_task(
        &self,
        ctx: &TenantCtx,
        req: CreateTrainingJob,
    ) -> ApiResult<TrainingJobView> {
        ctx.require(Scope::Training)?;
        let common = crate::service::check_common(
            req.metadata.as_ref(),
            req.priority,
            req.max_attempts,
            &req.model,
        )?;
        let version = self.readable_version(ctx, &req.model, Format::Gguf).await?;
        let (kind, mut spec) = (
            req.kind,
            TaskSpec {
                model: req.model.clone(),
                version_id: version.id.to_string(),
                version: format!("{}@{}", version.model, version.version),
                version_sha256: version.sha256.clone(),
                version_quantization: version.quantization.as_str().to_string(),
                quantization: None,
                output_model: None,
                file: None,
                file_sha256: None,
                name: None,
                generate_examples: 0,
                metadata: req.metadata.clone(),
            },
        );
        let only = |field: &'static str, given: bool, kind: &str| {
            if given {
                Err(ApiError::validation(
                    field,
                    format!("`{field}` is not a parameter of {kind} jobs"),
                ))
            } else {
                Ok(())
            }
        };
        let job_kind = match kind {
            TaskKind::Quantize => {
                only("file", req.file.is_some(), "quantize")?;
                only("name", req.name.is_some(), "quantize")?;
                only(
                    "generate_examples",
                    req.generate_examples.is_some(),
                    "quantize",
                )?;
                let target = req.quantization.ok_or_else(|| {
                    ApiError::validation("quantization", "a quantize job needs `quantization`")
                })?;
                if version.quantization.as_str() == target.registry_name() {
                    return Err(ApiError::validation(
                        "quantization",
                        format!("{} is {} already", spec.version, target.registry_name()),
                    ));
                }
                let output = req
                    .output_model
                    .clone()
                    .unwrap_or_else(|| version.model.clone());
                llmops_registry::domain::check_model_name(&output).map_err(|_| {
                    ApiError::validation(
                        "output_model",
                        "a model name is letters, digits, `.`, `_`, `-`; at most 128",
                    )
                })?;
                spec.quantization = Some(target);
                spec.output_model = Some(output);
                JobKind::Quantize
            }
            TaskKind::Evaluate => {
                // Its metrics are read by promotion gates: a registry
                // matter, not only a training one.
                ctx.require(Scope::Registry)?;
                only("quantization", req.quantization.is_some(), "evaluate")?;
                only("output_model", req.output_model.is_some(), "evaluate")?;
                let file = req.file.ok_or_else(|| {
                    ApiError::validation("file", "an evaluate job needs a held-out `file`")
                })?;
                let name = req.name.clone().unwrap_or_else(|| "eval".into());
                llmops_registry::service::check_evaluation_name(&name)?;
                let generate = req.generate_examples.unwrap_or(50);
                if generate > 1000 {
                    return Err(ApiError::validation(
                        "generate_examples",
                        "generate_examples must be 0 to 1000",
                    ));
                }
                let id = file.to_string();
                let row = self
                    .files()
                    .row(ctx, &id)
                    .await
                    .map_err(missing_file("file", &id))?;
                spec.file = Some(row.id);
                spec.file_sha256 = Some(row.sha256);
                spec.name = Some(name);
                spec.generate_examples = generate;
                JobKind::Evaluate
            }
        };
        let id = JobId::new();
        let spec_json = serde_json::to_value(&spec).map_err(|e| ApiError::Internal(Box::new(e)))?;
        self.queue()
            .enqueue(NewJob {
                id,
                tenant_id: ctx.tenant_id(),
                kind: job_kind,
                priority: common.priority,
                gpu_type: "cpu".into(),
                gpus: 1,
                spec: spec_json,
                max_attempts: common.max_attempts,
                status: JobStatus::Queued,
            })
            .await
            .map_err(queue_error)?;
        self.note_unserved().await;
        record_event(
            self.db(),
            ctx.tenant_id(),
            id,
            0,
            "info",
            &format!("Created {} job {id} on {}", job_kind.as_str(), spec.version),
            None,
        )
        .await?;
        self.get_task(ctx, &id.to_string()).await
    }

    /// A ready version of the tenant in `format`, as a job reads it:
    /// GGUF for the CPU recipe and its tools, safetensors (a Hugging Face
    /// model directory) for the GPU recipe.
    pub(crate) async fn readable_version(
        &self,
        ctx: &TenantCtx,
        reference: &str,
        format: Format,
    ) -> ApiResult<llmops_registry::VersionView> {
        let v = self
            .registry()
            .resolve(ctx, reference)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(what) => ApiError::validation(
                    "model",
                    format!(
                        "{what}: the model is a registry version (`name@alias`, `name@3` or `mv_…`)"
                    ),
                ),
                ApiError::Validation { detail, .. } => ApiError::validation("model", detail),
                other => other,
            })?;
        if v.status != VersionStatus::Ready {
            return Err(ApiError::validation(
                "model",
                format!(
                    "{}@{} is not ready (no verified artifact)",
                    v.model, v.version
                ),
            ));
        }
        if v.format != format || v.is_adapter {
            let why = match format {
                Format::Gguf => {
                    "the CPU recipe and its tools read GGUF models (a safetensors checkpoint needs llama.cpp's convert_hf_to_gguf.py first, which no package here ships)"
                }
                _ => {
                    "the GPU recipe (PyTorch + PEFT) reads a Hugging Face model directory in safetensors"
                }
            };
            return Err(ApiError::validation(
                "model",
                format!(
                    "{}@{} is {}{}; {why}",
                    v.model,
                    v.version,
                    v.format.as_str(),
                    if v.is_adapter { " (an adapter)" } else { "" }
                ),
            ));
        }
        Ok(v)
    }

    pub async fn get_task(&self, ctx: &TenantCtx, id: &str) -> ApiResult<TrainingJobView> {
        task_view(self.any_job(ctx, id).await?)
    }

    pub async fn list_tasks(
        &self,
        ctx: &TenantCtx,
        p: ListParams,
    ) -> ApiResult<Page<TrainingJobView>> {
        self.list_rows(ctx, p, &[], task_view, |j| j.id.to_string())
            .await
    }

    pub async fn list_task_events(
        &self,
        ctx: &TenantCtx,
        id: &str,
        p: ListParams,
    ) -> ApiResult<Page<crate::api::EventView>> {
        let row = self.any_job(ctx, id).await?;
        self.events_of(ctx, row, p).await
    }

    pub async fn cancel_task(&self, ctx: &TenantCtx, id: &str) -> ApiResult<TrainingJobView> {
        let row = self.any_job(ctx, id).await?;
        task_view(
            self.control(ctx, &row, crate::service::Action::Cancel)
                .await?,
        )
    }
}
