//! The fine-tuning API's types: OpenAI's `fine_tuning.job` request and
//! objects, extended with PEFT, resources, distributed settings and
//! priority. Validation of a request against what an executor can do is in
//! [`crate::recipes`].

use llmops_core::ids::{CheckpointId, FileId, JobEventId, JobId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `"auto"` or a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AutoOr<T> {
    Auto(Auto),
    Value(T),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Auto {
    Auto,
}

impl<T: Copy> AutoOr<T> {
    pub fn value(self) -> Option<T> {
        match self {
            AutoOr::Auto(_) => None,
            AutoOr::Value(v) => Some(v),
        }
    }
}

/// OpenAI's hyperparameters; each may be `"auto"` (the executor's choice,
/// shown resolved on the job).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    /// Passes over the training file: 1 to 50, or `auto`.
    #[schema(value_type = Option<serde_json::Value>, example = 3)]
    pub n_epochs: Option<AutoOr<u32>>,
    /// Examples per optimizer step: 1 to 256, or `auto`.
    #[schema(value_type = Option<serde_json::Value>, example = "auto")]
    pub batch_size: Option<AutoOr<u32>>,
    /// Scales the executor's base learning rate: above 0, at most 10, or `auto` (1).
    #[schema(value_type = Option<serde_json::Value>, example = 1.0)]
    pub learning_rate_multiplier: Option<AutoOr<f64>>,
}

/// The values a job runs with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolvedHyperparameters {
    pub n_epochs: u32,
    pub batch_size: u32,
    pub learning_rate_multiplier: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MethodType {
    Supervised,
    Dpo,
    Reinforcement,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SupervisedMethod {
    pub hyperparameters: Option<Hyperparameters>,
}

/// OpenAI's `method`: only `supervised` is trained here.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Method {
    #[serde(rename = "type")]
    pub kind: MethodType,
    pub supervised: Option<SupervisedMethod>,
    /// Not supported (refused with 422).
    #[schema(value_type = Option<Object>)]
    pub dpo: Option<serde_json::Value>,
    /// Not supported (refused with 422).
    #[schema(value_type = Option<Object>)]
    pub reinforcement: Option<serde_json::Value>,
}

/// What is trained: all weights of the chosen blocks (`full`), or a LoRA
/// adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Peft {
    /// Full-tensor training. `trainable_blocks`: only the top N transformer
    /// blocks (and the final norm) are trained; absent or 0: all of them.
    Full {
        #[schema(minimum = 0, maximum = 1000)]
        trainable_blocks: Option<u32>,
    },
    Lora {
        #[schema(minimum = 1, maximum = 1024)]
        r: u32,
        #[schema(minimum = 0.0, exclusive_minimum = 0.0, maximum = 4096.0)]
        alpha: f64,
        #[serde(default)]
        #[schema(minimum = 0.0, maximum = 0.9)]
        dropout: f64,
        /// Module names (`q_proj`, `v_proj`, …); empty: all linear layers.
        #[serde(default)]
        #[schema(max_items = 32)]
        target_modules: Vec<String>,
    },
}

/// Where the job runs: a GPU type (a pool's; `cpu` for CPU workers), the
/// devices per node and the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default = "cpu")]
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub gpu_type: String,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 64)]
    pub gpus_per_node: u32,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 512)]
    pub nodes: u32,
}

fn cpu() -> String {
    "cpu".into()
}

fn one() -> u32 {
    1
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            gpu_type: cpu(),
            gpus_per_node: 1,
            nodes: 1,
        }
    }
}

impl Resources {
    pub fn devices(&self) -> u32 {
        self.gpus_per_node.saturating_mul(self.nodes)
    }
}

/// How the training is spread over devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Distributed {
    None,
    /// DeepSpeed ZeRO.
    Deepspeed {
        #[schema(minimum = 1, maximum = 3)]
        zero_stage: u8,
        #[serde(default)]
        offload_optimizer: bool,
        /// Stage 3 only.
        #[serde(default)]
        offload_params: bool,
    },
    /// Megatron-style model parallelism; data parallel fills the rest.
    Megatron {
        #[schema(minimum = 1, maximum = 64)]
        tensor_parallel: u32,
        #[schema(minimum = 1, maximum = 64)]
        pipeline_parallel: u32,
    },
}

/// `POST /v1/fine_tuning/jobs`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// The base: a registry version (`name@alias`, `name@3` or `mv_…`) of
    /// a GGUF model.
    #[schema(min_length = 1, max_length = 200)]
    pub model: String,
    pub training_file: FileId,
    pub validation_file: Option<FileId>,
    pub hyperparameters: Option<Hyperparameters>,
    pub method: Option<Method>,
    /// Added to the output model's name: letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,40}$")]
    pub suffix: Option<String>,
    #[schema(minimum = 0, maximum = 2147483647)]
    pub seed: Option<i64>,
    /// At most 16 pairs; keys up to 64 characters, values up to 512.
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Not supported; only an empty list is accepted.
    #[schema(value_type = Option<Vec<Object>>, max_items = 0)]
    pub integrations: Option<Vec<serde_json::Value>>,
    pub peft: Option<Peft>,
    pub resources: Option<Resources>,
    pub distributed: Option<Distributed>,
    /// Higher runs first among the tenant's jobs.
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// Attempts before a retryable failure fails the job.
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<u32>,
    /// Makes the job a distillation: each chat of the training file is
    /// answered by the teacher (its last assistant turn replaced by the
    /// teacher's answer) and the student (`model`) is fine-tuned on the
    /// answers. The generated file is kept (`result_files`).
    pub distill: Option<Distill>,
}

/// A distillation's teacher: a model the tenant can chat with through
/// serving (a deployment, or a catalog model), called greedily.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Distill {
    /// What `POST /v1/chat/completions` takes as `model`.
    #[schema(min_length = 1, max_length = 200)]
    pub teacher: String,
    /// The longest answer, in tokens (default 256).
    #[serde(default = "default_teacher_tokens")]
    #[schema(minimum = 1, maximum = 4096, default = 256)]
    pub max_tokens: u32,
}

fn default_teacher_tokens() -> u32 {
    256
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
}

/// What the executor actually trains (the job shows it; the registered
/// version records it).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutorPlan {
    /// The recipe under `infra/recipes/`.
    pub recipe: String,
    /// `full` (with `trainable_blocks`) or `lora`.
    #[schema(value_type = Object)]
    pub trains: serde_json::Value,
    /// Notes on choices made for the job.
    pub notes: Vec<String>,
}

/// A fine-tuning job, in OpenAI's shape plus ours.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: JobId,
    /// Always `fine_tuning.job`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: i64,
    pub error: Option<JobError>,
    /// The registered output (`name@N`) once succeeded.
    pub fine_tuned_model: Option<String>,
    pub finished_at: Option<i64>,
    pub hyperparameters: ResolvedHyperparameters,
    /// The base, as asked for.
    pub model: String,
    /// The tenant.
    pub organization_id: String,
    pub result_files: Vec<String>,
    pub seed: i64,
    /// `validating_files`, `queued`, `running`, `paused`, `succeeded`,
    /// `failed`, `cancelled`.
    #[schema(value_type = String)]
    pub status: crate::job::JobStatus,
    pub trained_tokens: Option<i64>,
    pub training_file: String,
    pub validation_file: Option<String>,
    pub estimated_finish: Option<i64>,
    pub integrations: Vec<serde_json::Value>,
    pub metadata: Option<BTreeMap<String, String>>,
    #[schema(value_type = Object)]
    pub method: serde_json::Value,
    pub user_provided_suffix: Option<String>,
    /// `fine_tune`, `quantize`, `distill`, `evaluate`.
    #[schema(value_type = String)]
    pub kind: crate::job::JobKind,
    pub priority: i32,
    pub peft: Peft,
    pub resources: Resources,
    pub distributed: Distributed,
    pub executor: ExecutorPlan,
    /// Attempts so far.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Why a queued job waits: `quota`, `capacity` or `budget`.
    pub wait_reason: Option<String>,
    /// The final metrics (losses, steps, tokens, seconds).
    #[schema(value_type = Option<Object>)]
    pub result_metrics: Option<serde_json::Value>,
}

/// A job event: a log line or a metrics record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: JobEventId,
    /// Always `fine_tuning.job.event`.
    pub object: &'static str,
    pub created_at: i64,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
    /// `message` or `metrics`.
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// A checkpoint, registered as a version of the job's output model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckpointView {
    pub id: CheckpointId,
    /// Always `fine_tuning.job.checkpoint`.
    pub object: &'static str,
    pub created_at: i64,
    /// The registry version (`name@N`).
    pub fine_tuned_model_checkpoint: String,
    pub fine_tuning_job_id: JobId,
    /// `step`, `train_loss`, `valid_loss`, …
    pub metrics: BTreeMap<String, f64>,
    pub step_number: i64,
}

pub(crate) fn metadata_schema() -> utoipa::openapi::ObjectBuilder {
    use llmops_core::schema::{string, string_map};
    string_map(16, 64, string(false).max_length(Some(512)), true)
}
