//! How an attempt ends: its output registered (once per job, whatever the
//! attempts) and its end written, fenced by the attempt.

use super::Worker;
use super::{Outcome, Task, failed};
use crate::entities::checkpoint;
use crate::executor::{self, RecipeResult};
use crate::job::{Finish, Lease};
use crate::service::{JobResult, JobSpec};
use crate::tasks::TaskSpec;
use llmops_core::TenantCtx;
use llmops_core::db::begin_write;
use llmops_core::ids::CheckpointId;
use llmops_registry::domain::{Format, NewEvaluation, NewVersion, Quantization, Source};
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The recipe's output model: its path, checksum and size.
async fn artifact_of(result: &RecipeResult) -> Result<(PathBuf, String, i64), Outcome> {
    let (Some(path), Some(sha)) = (result.artifact.clone(), result.sha256.clone()) else {
        return Err(failed(
            "the recipe reported no artifact and checksum",
            false,
        ));
    };
    let size = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .map_err(|e| failed(format!("the recipe's output: {e}"), true))?;
    Ok((path, sha, i64::try_from(size).unwrap_or(i64::MAX)))
}

/// The recipe's finite numeric metrics.
fn numbers(result: &RecipeResult) -> BTreeMap<String, f64> {
    result
        .metrics
        .iter()
        .filter_map(|(k, v)| v.as_f64().filter(|x| x.is_finite()).map(|x| (k.clone(), x)))
        .collect()
}

impl Worker {
    /// Keeps what a succeeded attempt produced: the output registered
    /// (once per job, whatever the attempts) or the evaluation recorded on
    /// its version. Returns the job's result and, for a fine-tune, the
    /// final checkpoint to record.
    pub(super) async fn complete(
        &self,
        lease: &Lease,
        task: &Task,
        result: RecipeResult,
    ) -> Result<(serde_json::Value, Option<FinalCheckpoint>), Outcome> {
        match task {
            Task::FineTune(spec) => {
                let (mut job_result, last) = self.register(lease, spec, result).await?;
                if spec.distill.is_some() {
                    let ctx = TenantCtx::for_job(lease.tenant_id, lease.job_id);
                    let name = crate::distill::generated_name(&lease.job_id.to_string());
                    if let Ok(Some(f)) = self.training.files().named(&ctx, &name).await {
                        job_result.result_files = vec![f.id];
                    }
                }
                Ok((
                    serde_json::to_value(job_result).unwrap_or_default(),
                    Some(last),
                ))
            }
            Task::Quantize(spec) => self.register_quantized(lease, spec, result).await,
            Task::Evaluate(spec) => self.record_evaluation(lease, spec, result).await,
        }
    }

    /// Registers the attempt's output file as a version of `model` (keyed
    /// by the job, so once whatever the attempts) and says so in the job's
    /// events. Returns the version and its `name@N`.
    async fn register_file(
        &self,
        lease: &Lease,
        model: &str,
        version: NewVersion,
        path: PathBuf,
    ) -> Result<(llmops_registry::VersionView, String), Outcome> {
        let ctx = TenantCtx::for_job(lease.tenant_id, lease.job_id);
        let version = self
            .training
            .registry()
            .register_output(
                &ctx,
                model,
                version,
                &lease.job_id.to_string(),
                executor::file_stream(path),
            )
            .await
            .map_err(|e| failed(format!("registering the output: {e}"), true))?;
        let reference = format!("{}@{}", version.model, version.version);
        self.event(
            lease,
            "info",
            &format!("Registered the output as {reference}"),
            None,
        )
        .await;
        Ok((version, reference))
    }

    /// Registers a quantization's output as a version (keyed by the job).
    async fn register_quantized(
        &self,
        lease: &Lease,
        spec: &TaskSpec,
        result: RecipeResult,
    ) -> Result<(serde_json::Value, Option<FinalCheckpoint>), Outcome> {
        let (path, sha, size) = artifact_of(&result).await?;
        let target = spec
            .quantization
            .ok_or_else(|| failed("the quantize job names no quantization", false))?;
        let output = spec
            .output_model
            .clone()
            .ok_or_else(|| failed("the quantize job names no output model", false))?;
        let metrics = numbers(&result);
        let tags = BTreeMap::from([
            ("training.job_id".to_string(), lease.job_id.to_string()),
            ("training.kind".to_string(), "quantize".to_string()),
            ("quantize.from_version".to_string(), spec.version.clone()),
            (
                "quantize.from_version_id".to_string(),
                spec.version_id.clone(),
            ),
            (
                "quantize.from_quantization".to_string(),
                spec.version_quantization.clone(),
            ),
            (
                "quantize.method".to_string(),
                result.method.to_string().chars().take(256).collect(),
            ),
        ]);
        let (version, reference) = self
            .register_file(
                lease,
                &output,
                NewVersion {
                    format: Format::Gguf,
                    quantization: Quantization::parse(target.registry_name())
                        .unwrap_or(Quantization::None),
                    description: Some(format!(
                        "{} quantized to {} by job {} (llama.cpp)",
                        spec.version,
                        target.registry_name(),
                        lease.job_id
                    )),
                    parameter_count: metrics.get("parameters").map(|p| *p as i64),
                    base_model: Some(spec.version.clone()),
                    adapter_of: None,
                    source: Source::FineTuningJob {
                        job_id: lease.job_id.to_string(),
                    },
                    artifact_uri: None,
                    sha256: Some(sha),
                    size_bytes: Some(size),
                    metrics: metrics.clone(),
                    tags,
                },
                path,
            )
            .await?;
        let job_result = JobResult {
            fine_tuned_model: Some(reference),
            version_id: Some(version.id.to_string()),
            trained_tokens: None,
            metrics: Some(serde_json::Value::Object(result.metrics)),
            result_files: Vec::new(),
        };
        Ok((serde_json::to_value(job_result).unwrap_or_default(), None))
    }

    /// Records an evaluation's metrics on the version it read (once per
    /// job).
    async fn record_evaluation(
        &self,
        lease: &Lease,
        spec: &TaskSpec,
        result: RecipeResult,
    ) -> Result<(serde_json::Value, Option<FinalCheckpoint>), Outcome> {
        let ctx = TenantCtx::for_job(lease.tenant_id, lease.job_id);
        let name = spec.name.clone().unwrap_or_else(|| "eval".into());
        let metrics = numbers(&result);
        let evaluation = self
            .training
            .registry()
            .record_evaluation(
                &ctx,
                &spec.version_id,
                NewEvaluation {
                    name: name.clone(),
                    metrics: metrics.clone(),
                    dataset_sha256: spec.file_sha256.clone(),
                    job_id: lease.job_id.to_string(),
                },
            )
            .await
            .map_err(|e| {
                let retryable = !matches!(
                    e,
                    llmops_core::ApiError::Conflict(_)
                        | llmops_core::ApiError::NotFound(_)
                        | llmops_core::ApiError::Validation { .. }
                );
                failed(format!("recording the evaluation: {e}"), retryable)
            })?;
        let shown: Vec<String> = ["loss", "perplexity", "token_accuracy", "exact_match"]
            .iter()
            .filter_map(|k| metrics.get(*k).map(|v| format!("{name}.{k}={v}")))
            .collect();
        self.event(
            lease,
            "info",
            &format!(
                "Recorded evaluation {} on {}: {}",
                evaluation.id,
                spec.version,
                shown.join(", ")
            ),
            None,
        )
        .await;
        let job_result = JobResult {
            fine_tuned_model: None,
            version_id: Some(spec.version_id.clone()),
            trained_tokens: None,
            metrics: Some(serde_json::Value::Object(result.metrics)),
            result_files: Vec::new(),
        };
        Ok((serde_json::to_value(job_result).unwrap_or_default(), None))
    }

    /// Registers a fine-tune's output (once per job, whatever the
    /// attempts) and returns the job's result and the final checkpoint to
    /// record.
    pub(super) async fn register(
        &self,
        lease: &Lease,
        spec: &JobSpec,
        result: RecipeResult,
    ) -> Result<(JobResult, FinalCheckpoint), Outcome> {
        let (artifact, sha, size) = artifact_of(&result).await?;
        let metrics = numbers(&result);
        let mut tags = BTreeMap::from([
            ("training.job_id".to_string(), lease.job_id.to_string()),
            (
                "training.base_version".to_string(),
                spec.base_version.clone(),
            ),
            (
                "training.base_version_id".to_string(),
                spec.base_version_id.clone(),
            ),
            (
                "training.file_sha256".to_string(),
                spec.training_file_sha256.clone(),
            ),
            ("training.recipe".to_string(), spec.executor.recipe.clone()),
            (
                "training.method".to_string(),
                result.method.to_string().chars().take(256).collect(),
            ),
            (
                "training.hyperparameters".to_string(),
                serde_json::json!({
                    "n_epochs": spec.hyperparameters.n_epochs,
                    "batch_size": spec.hyperparameters.batch_size,
                    "learning_rate": spec.learning_rate,
                    "seed": spec.seed,
                })
                .to_string(),
            ),
        ]);
        // A LoRA adapter the recipe did not merge applies to its base.
        let adapter = result.method.get("type").and_then(|t| t.as_str()) == Some("lora")
            && result.method.get("merged").and_then(|m| m.as_bool()) != Some(true);
        tags.insert(
            "training.format".into(),
            if adapter { "adapter" } else { "merged" }.into(),
        );
        if let Some(v) = &spec.validation_file_sha256 {
            tags.insert("training.validation_file_sha256".into(), v.clone());
        }
        // The recipes' names (`q8_0`, `f16`, `bf16`) as the registry's.
        let named = match result.quantization.as_str() {
            "f16" => "fp16".to_string(),
            "f32" => "fp32".to_string(),
            other => other.to_string(),
        };
        let quantization = Quantization::parse(&format!("gguf_{named}"))
            .or_else(|| Quantization::parse(&named))
            .unwrap_or(Quantization::None);
        let (version, reference) = self
            .register_file(
                lease,
                &spec.output_model,
                NewVersion {
                    format: Format::parse(&result.format).unwrap_or(Format::Gguf),
                    quantization,
                    description: Some(format!(
                        "Fine-tuned from {} by job {} ({})",
                        spec.base_version, lease.job_id, spec.executor.recipe
                    )),
                    parameter_count: None,
                    base_model: Some(spec.base_version.clone()),
                    adapter_of: adapter.then(|| spec.base_version_id.clone()),
                    source: Source::FineTuningJob {
                        job_id: lease.job_id.to_string(),
                    },
                    artifact_uri: None,
                    sha256: Some(sha),
                    size_bytes: Some(size),
                    metrics: metrics.clone(),
                    tags,
                },
                artifact,
            )
            .await?;
        let steps = metrics.get("steps").copied().unwrap_or(0.0) as i64;
        let trained = metrics.get("tokens").map(|t| *t as i64);
        let job_result = JobResult {
            fine_tuned_model: Some(reference.clone()),
            version_id: Some(version.id.to_string()),
            trained_tokens: trained,
            metrics: Some(serde_json::Value::Object(result.metrics.clone())),
            result_files: Vec::new(),
        };
        Ok((
            job_result,
            FinalCheckpoint {
                step: steps,
                metrics,
                reference,
                artifact_key: version.artifact_uri.unwrap_or_default(),
            },
        ))
    }

    /// Ends the attempt (the queue meters its time) and, on success,
    /// records the final checkpoint, in one transaction fenced by the
    /// attempt.
    pub(super) async fn finish(
        &self,
        lease: &Lease,
        outcome: Finish,
        last: Option<FinalCheckpoint>,
    ) {
        let what = match &outcome {
            Finish::Succeeded(_) => "Job succeeded".to_string(),
            Finish::Failed {
                retryable: true, ..
            } => "Attempt failed; the job will be retried if attempts remain".to_string(),
            Finish::Failed { .. } => "Job failed".to_string(),
            Finish::Cancelled => "Job cancelled".to_string(),
            Finish::Paused => "Job paused".to_string(),
            Finish::Interrupted(why) => format!("Attempt interrupted: {why}"),
        };
        let queue = self.training.queue();
        let result: Result<(), String> = async {
            let _turn = queue.write_turn().await;
            let txn = begin_write(self.training.db())
                .await
                .map_err(|e| e.to_string())?;
            queue
                .finish_in(&txn, lease, outcome)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(c) = &last {
                let row = checkpoint::ActiveModel {
                    id: Set(CheckpointId::new().to_string()),
                    tenant_id: Set(lease.tenant_id.to_string()),
                    job_id: Set(lease.job_id.to_string()),
                    attempt: Set(lease.attempt),
                    step: Set(c.step),
                    metrics: Set(serde_json::to_string(&c.metrics).unwrap_or_default()),
                    artifact_key: Set(c.artifact_key.clone()),
                    version_ref: Set(Some(c.reference.clone())),
                    created_at: Set(chrono::Utc::now()),
                };
                // The final step may have been checkpointed already: then
                // that row gets the registry reference.
                let existing = llmops_core::db::Scoped::new(lease.tenant_id)
                    .find::<checkpoint::Entity>()
                    .filter(checkpoint::Column::JobId.eq(lease.job_id.to_string()))
                    .filter(checkpoint::Column::Step.eq(c.step))
                    .one(&txn)
                    .await
                    .map_err(|e| e.to_string())?;
                match existing {
                    Some(found) => {
                        let mut found: checkpoint::ActiveModel = found.into();
                        found.version_ref = Set(Some(c.reference.clone()));
                        found.update(&txn).await.map_err(|e| e.to_string())?;
                    }
                    None => {
                        row.insert(&txn).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            txn.commit().await.map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                self.event(lease, "info", &what, None).await;
                tracing::info!(job = %lease.job_id, attempt = lease.attempt, outcome = what, "training attempt ended");
            }
            Err(e) => {
                tracing::warn!(job = %lease.job_id, attempt = lease.attempt, error = e, "ending the attempt failed (a later attempt or lease expiry settles it)")
            }
        }
    }
}

/// The registered output as the job's last checkpoint.
pub(super) struct FinalCheckpoint {
    step: i64,
    metrics: BTreeMap<String, f64>,
    reference: String,
    artifact_key: String,
}
