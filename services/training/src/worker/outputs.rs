//! How an attempt ends: its output registered (once per job, whatever the
//! attempts) and its end written, fenced by the attempt.

use super::Worker;
use super::{Outcome, failed};
use crate::entities::checkpoint;
use crate::executor::{self, RecipeResult};
use crate::job::{Finish, Lease};
use crate::service::{JobResult, JobSpec};
use llmops_core::TenantCtx;
use llmops_core::db::begin_write;
use llmops_core::ids::CheckpointId;
use llmops_registry::domain::{Format, NewVersion, Quantization, Source};
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};
use std::collections::BTreeMap;

impl Worker {
    /// Registers the output (once per job, whatever the attempts) and
    /// returns the job's result and the final checkpoint to record.
    pub(super) async fn register(
        &self,
        lease: &Lease,
        spec: &JobSpec,
        result: RecipeResult,
    ) -> Result<(serde_json::Value, FinalCheckpoint), Outcome> {
        let ctx = TenantCtx::for_job(lease.tenant_id, lease.job_id);
        let size = tokio::fs::metadata(&result.artifact)
            .await
            .map(|m| m.len())
            .map_err(|e| failed(format!("the recipe's output: {e}"), true))?;
        let metrics: BTreeMap<String, f64> = result
            .metrics
            .iter()
            .filter_map(|(k, v)| v.as_f64().filter(|x| x.is_finite()).map(|x| (k.clone(), x)))
            .collect();
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
            ("training.format".to_string(), "merged".to_string()),
        ]);
        if let Some(v) = &spec.validation_file_sha256 {
            tags.insert("training.validation_file_sha256".into(), v.clone());
        }
        let quantization = Quantization::parse(&format!("gguf_{}", result.quantization))
            .or_else(|| Quantization::parse(&result.quantization))
            .unwrap_or(Quantization::None);
        let version = self
            .training
            .registry()
            .register_output(
                &ctx,
                &spec.output_model,
                NewVersion {
                    format: Format::Gguf,
                    quantization,
                    description: Some(format!(
                        "Fine-tuned from {} by job {} ({})",
                        spec.base_version, lease.job_id, spec.executor.recipe
                    )),
                    parameter_count: None,
                    base_model: Some(spec.base_version.clone()),
                    adapter_of: None,
                    source: Source::FineTuningJob {
                        job_id: lease.job_id.to_string(),
                    },
                    artifact_uri: None,
                    sha256: Some(result.sha256.clone()),
                    size_bytes: Some(i64::try_from(size).unwrap_or(i64::MAX)),
                    metrics: metrics.clone(),
                    tags,
                },
                &lease.job_id.to_string(),
                executor::file_stream(result.artifact.clone()),
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
        let steps = metrics.get("steps").copied().unwrap_or(0.0) as i64;
        let trained = metrics.get("tokens").map(|t| *t as i64);
        let job_result = JobResult {
            fine_tuned_model: Some(reference.clone()),
            version_id: Some(version.id.to_string()),
            trained_tokens: trained,
            metrics: Some(serde_json::Value::Object(result.metrics.clone())),
        };
        Ok((
            serde_json::to_value(job_result).unwrap_or_default(),
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
