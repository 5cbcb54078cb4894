//! What an attempt reads and keeps while it runs: its inputs (the base
//! model, cached per tenant and version; the files; the checkpoint to resume
//! from) and its checkpoints in the artifact store.

use super::{Beat, Outcome, Task, Worker, failed};
use crate::entities::checkpoint;
use crate::executor;
use crate::job::Lease;
use crate::service::JobSpec;
use llmops_core::TenantCtx;
use llmops_core::db::is_unique_violation;
use llmops_core::ids::CheckpointId;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder, Set};
use std::path::{Path, PathBuf};

/// An I/O error while staging: retryable.
fn io(what: &str) -> impl FnOnce(std::io::Error) -> Outcome {
    let what = what.to_string();
    move |e| failed(format!("{what}: {e}"), true)
}

impl Worker {
    /// Downloads what the task reads and writes the recipe's spec.
    /// Returns the recipe's script and the spec's path.
    pub(super) async fn prepare(
        &self,
        lease: &Lease,
        task: &Task,
        dir: &Path,
        beat: &tokio::sync::watch::Receiver<Beat>,
    ) -> Result<(PathBuf, PathBuf), Outcome> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io("creating the attempt directory"))?;
        let ctx = TenantCtx::for_job(lease.tenant_id, lease.job_id);
        let output = dir.join("output");
        tokio::fs::create_dir_all(&output)
            .await
            .map_err(io("creating directories"))?;
        let (entry, recipe_spec) = match task {
            Task::FineTune(spec) => (
                "train.py",
                self.fine_tune_spec(lease, &ctx, spec, dir, beat).await?,
            ),
            Task::Quantize(spec) => {
                let base = self
                    .fetch_version(lease, &ctx, &spec.version_id, &spec.version)
                    .await?;
                let target = spec
                    .quantization
                    .ok_or_else(|| failed("the quantize job names no quantization", false))?;
                (
                    "quantize.py",
                    serde_json::json!({
                        "job_id": lease.job_id.to_string(),
                        "kind": "quantize",
                        "base_model": base,
                        "quantization": target.recipe_name(),
                        "threads": self.cfg.threads,
                        "output_dir": output,
                    }),
                )
            }
            Task::Evaluate(spec) => {
                let base = self
                    .fetch_version(lease, &ctx, &spec.version_id, &spec.version)
                    .await?;
                let file = spec
                    .file
                    .as_deref()
                    .ok_or_else(|| failed("the evaluate job names no file", false))?;
                let file = self.fetch_file(&ctx, file, &dir.join("eval.jsonl")).await?;
                (
                    "evaluate.py",
                    serde_json::json!({
                        "job_id": lease.job_id.to_string(),
                        "kind": "evaluate",
                        "base_model": base,
                        "file": file,
                        "n_ctx": 512,
                        "threads": self.cfg.threads,
                        "generate_examples": spec.generate_examples,
                        "max_new_tokens": 64,
                    }),
                )
            }
        };
        let path = dir.join("spec.json");
        tokio::fs::write(&path, recipe_spec.to_string())
            .await
            .map_err(io("writing the recipe spec"))?;
        Ok((self.script(crate::recipes::CPU_RECIPE, entry), path))
    }

    /// A version's GGUF, from the cache of the tenant's versions (fetched
    /// once; versions are immutable, and the cache is never shared between
    /// tenants, whatever checksums they declare).
    async fn fetch_version(
        &self,
        lease: &Lease,
        ctx: &TenantCtx,
        version_id: &str,
        label: &str,
    ) -> Result<PathBuf, Outcome> {
        let registry = self.training.registry();
        let version = registry
            .resolve(ctx, version_id)
            .await
            .map_err(|e| failed(format!("the model {label}: {e}"), false))?;
        let models = self
            .cfg
            .work_dir
            .join("cache")
            .join("models")
            .join(lease.tenant_id.to_string());
        tokio::fs::create_dir_all(&models)
            .await
            .map_err(io("creating the model cache"))?;
        let path = models.join(format!("{}.gguf", version.id));
        if !path.exists() {
            self.event(lease, "info", &format!("Fetching the model {label}"), None)
                .await;
            let (_, _, stream) = registry
                .open_artifact(ctx, &version.model, version.version)
                .await
                .map_err(|e| failed(format!("reading the model {label}: {e}"), true))?;
            executor::download(stream, &path)
                .await
                .map_err(io("downloading the model"))?;
        }
        Ok(path)
    }

    /// A file of the tenant, downloaded to `path`.
    pub(super) async fn fetch_file(
        &self,
        ctx: &TenantCtx,
        id: &str,
        path: &Path,
    ) -> Result<PathBuf, Outcome> {
        let files = self.training.files();
        let row = files
            .row(ctx, id)
            .await
            .map_err(|e| failed(format!("file {id}: {e}"), false))?;
        let (_, stream) = files
            .store()
            .get_stream(&row.artifact_key)
            .await
            .map_err(|e| failed(format!("reading file {id}: {e}"), true))?;
        executor::download(stream, path)
            .await
            .map_err(|e| failed(format!("downloading file {id}: {e}"), true))?;
        Ok(path.to_path_buf())
    }

    /// The fine-tuning recipe's spec: the base, the files (a
    /// distillation's answered by its teacher first), the checkpoint to
    /// resume from.
    async fn fine_tune_spec(
        &self,
        lease: &Lease,
        ctx: &TenantCtx,
        spec: &JobSpec,
        dir: &Path,
        beat: &tokio::sync::watch::Receiver<Beat>,
    ) -> Result<serde_json::Value, Outcome> {
        let base_path = self
            .fetch_version(lease, ctx, &spec.base_version_id, &spec.base_version)
            .await?;
        let train = self
            .fetch_file(ctx, &spec.training_file, &dir.join("train.jsonl"))
            .await?;
        let train = match &spec.distill {
            Some(d) => self.distilled(lease, ctx, spec, d, &train, beat).await?,
            None => train,
        };
        let valid = match &spec.validation_file {
            Some(v) => Some(self.fetch_file(ctx, v, &dir.join("valid.jsonl")).await?),
            None => None,
        };
        let resume = self.resume_point(lease, dir).await?;
        let checkpoints = dir.join("checkpoints");
        tokio::fs::create_dir_all(&checkpoints)
            .await
            .map_err(io("creating directories"))?;
        let trainable_blocks = spec
            .executor
            .trains
            .get("trainable_blocks")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        Ok(serde_json::json!({
            "job_id": lease.job_id.to_string(),
            "attempt": lease.attempt,
            "kind": "fine_tune",
            "base_model": base_path,
            "training_file": train,
            "validation_file": valid,
            "hyperparameters": {
                "n_epochs": spec.hyperparameters.n_epochs,
                "batch_size": spec.hyperparameters.batch_size,
                "learning_rate": spec.learning_rate,
            },
            "method": { "type": "full", "trainable_blocks": trainable_blocks },
            "seed": spec.seed,
            "n_ctx": 256,
            "threads": self.cfg.threads,
            "output_quantization": "q8_0",
            "cache_dir": self.cfg.work_dir.join("cache"),
            "checkpoint_dir": checkpoints,
            "resume_from": resume,
            "output_dir": dir.join("output"),
        }))
    }

    /// The job's latest checkpoint, downloaded, as the recipe's
    /// `resume_from`.
    pub(super) async fn resume_point(
        &self,
        lease: &Lease,
        dir: &Path,
    ) -> Result<serde_json::Value, Outcome> {
        let scope = llmops_core::db::Scoped::new(lease.tenant_id);
        let last = scope
            .find::<checkpoint::Entity>()
            .filter(checkpoint::Column::JobId.eq(lease.job_id.to_string()))
            .order_by_desc(checkpoint::Column::Step)
            .one(self.training.db())
            .await
            .map_err(|e| failed(format!("reading checkpoints: {e}"), true))?;
        let Some(last) = last else {
            return Ok(serde_json::Value::Null);
        };
        let Ok((_, stream)) = self
            .training
            .files()
            .store()
            .get_stream(&last.artifact_key)
            .await
        else {
            return Ok(serde_json::Value::Null);
        };
        let path = dir.join("resume.gguf");
        executor::download(stream, &path)
            .await
            .map_err(|e| failed(format!("downloading the checkpoint: {e}"), true))?;
        let metrics: serde_json::Value = serde_json::from_str(&last.metrics).unwrap_or_default();
        self.event(
            lease,
            "info",
            &format!("Resuming from the checkpoint at step {}", last.step),
            None,
        )
        .await;
        Ok(serde_json::json!({
            "step": last.step,
            "epoch": metrics.get("epoch").cloned().unwrap_or(serde_json::Value::Null),
            "path": path,
        }))
    }

    /// Keeps a checkpoint in the artifact store (the latest is what a later
    /// attempt resumes from; older ones of the job are dropped).
    pub(super) async fn checkpoint(
        &self,
        lease: &Lease,
        step: i64,
        epoch: Option<serde_json::Value>,
        path: &Path,
        metrics: serde_json::Map<String, serde_json::Value>,
    ) {
        let store = self.training.files().store();
        let key = format!(
            "tenants/{}/jobs/{}/checkpoints/step-{step}-attempt-{}.gguf",
            lease.tenant_id, lease.job_id, lease.attempt
        );
        if let Err(e) = store
            .put_stream(&key, executor::file_stream(path.to_path_buf()))
            .await
        {
            self.event(
                lease,
                "warn",
                &format!("Checkpoint at step {step} not kept: {e}"),
                None,
            )
            .await;
            return;
        }
        let _ = tokio::fs::remove_file(path).await;
        let mut m = metrics;
        if let Some(e) = epoch {
            m.insert("epoch".into(), e);
        }
        let row = checkpoint::ActiveModel {
            id: Set(CheckpointId::new().to_string()),
            tenant_id: Set(lease.tenant_id.to_string()),
            job_id: Set(lease.job_id.to_string()),
            attempt: Set(lease.attempt),
            step: Set(step),
            metrics: Set(serde_json::Value::Object(m).to_string()),
            artifact_key: Set(key.clone()),
            version_ref: Set(None),
            created_at: Set(chrono::Utc::now()),
        };
        match row.insert(self.training.db()).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => tracing::warn!(error = %e, "recording a checkpoint failed"),
        }
        // Older checkpoints of the job are no longer resume points.
        let scope = llmops_core::db::Scoped::new(lease.tenant_id);
        if let Ok(older) = scope
            .find::<checkpoint::Entity>()
            .filter(checkpoint::Column::JobId.eq(lease.job_id.to_string()))
            .filter(checkpoint::Column::Step.lt(step))
            .all(self.training.db())
            .await
        {
            for c in older {
                let _ = store.delete(&c.artifact_key).await;
            }
        }
        self.event(
            lease,
            "info",
            &format!("Checkpoint saved at step {step}"),
            None,
        )
        .await;
    }
}
