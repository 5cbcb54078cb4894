//! Workers: claim jobs from the queue, run them with the local process
//! executor, and end each attempt exactly once.
//!
//! A worker runs inside `llmops serve` (`training_cpu_slots`) or as its own
//! `llmops worker` process on another machine; all claim from the same
//! database. While an attempt runs, a heartbeat renews its lease and
//! carries cancel and pause requests to it. When it ends, the output is
//! registered (keyed by the job, so at most one version whatever the
//! attempts), and the attempt's end, its metered time and the final
//! checkpoint commit in one transaction fenced by the attempt: a worker
//! that lost its lease writes nothing.

use crate::entities::checkpoint;
use crate::executor::{self, Exit, RecipeLine, RecipeResult};
use crate::job::{Capacity, Control, Finish, Lease, QueueError};
use crate::policy::StaticQuotas;
use crate::service::{JobResult, JobSpec, Training, record_event};
use llmops_core::TenantCtx;
use llmops_core::db::{begin_write, is_unique_violation};
use llmops_core::ids::CheckpointId;
use llmops_registry::domain::{Format, NewVersion, Quantization, Source};
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder, Set};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name in leases (host and process, say).
    pub owner: String,
    /// The device type it offers (`cpu`).
    pub gpu_type: String,
    /// Jobs it runs at once.
    pub slots: u32,
    pub python: PathBuf,
    pub recipes_dir: PathBuf,
    pub work_dir: PathBuf,
    pub heartbeat: Duration,
    pub wall_clock: Duration,
    /// Sleep between empty claims.
    pub poll: Duration,
    /// CPU threads a recipe may use.
    pub threads: u32,
}

pub struct Worker {
    training: Training,
    cfg: WorkerConfig,
    spend: Option<std::sync::Arc<dyn llmops_core::limits::SpendGuard>>,
    /// Quotas, weights and budget blocks, read at most every few seconds.
    admission: tokio::sync::Mutex<Option<(Instant, StaticQuotas)>>,
}

/// How long an admission snapshot is used.
const ADMISSION_TTL: Duration = Duration::from_secs(3);

/// What the attempt's heartbeats learned (sticky: a later beat never
/// lowers it; `Lost` outranks `Cancel`, which outranks `Pause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Beat {
    Continue,
    Pause,
    Cancel,
    /// The lease is no longer this attempt's.
    Lost,
}

/// The latest beat, copied (no lock held across an await).
fn current(beat: &tokio::sync::watch::Receiver<Beat>) -> Beat {
    *beat.borrow()
}

/// The latest beat, marked seen.
fn latest(beat: &mut tokio::sync::watch::Receiver<Beat>) -> Beat {
    *beat.borrow_and_update()
}

/// How an attempt ended, before it is written.
enum Outcome {
    Succeeded(RecipeResult),
    Failed {
        error: String,
        retryable: bool,
    },
    Cancelled,
    Paused,
    /// This worker is shutting down.
    Interrupted,
    /// The lease is no longer ours: write nothing.
    Lost,
}

fn failed(error: impl Into<String>, retryable: bool) -> Outcome {
    Outcome::Failed {
        error: error.into(),
        retryable,
    }
}

impl Worker {
    pub fn new(
        training: Training,
        cfg: WorkerConfig,
        spend: Option<std::sync::Arc<dyn llmops_core::limits::SpendGuard>>,
    ) -> Self {
        Self {
            training,
            cfg,
            spend,
            admission: tokio::sync::Mutex::new(None),
        }
    }

    /// The current admission snapshot (plans' quotas and weights, tenants
    /// over budget).
    async fn admission(&self) -> StaticQuotas {
        let mut cached = self.admission.lock().await;
        if let Some((at, q)) = cached.as_ref()
            && at.elapsed() < ADMISSION_TTL
        {
            return q.clone();
        }
        match self.training.pools().admission(self.spend.as_ref()).await {
            Ok(q) => {
                *cached = Some((Instant::now(), q.clone()));
                q
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading training quotas failed; using the last ones");
                cached.as_ref().map(|(_, q)| q.clone()).unwrap_or_default()
            }
        }
    }

    /// Says why this worker cannot run its recipes, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !self.cfg.python.exists() {
            return Err(format!(
                "the recipe Python {} does not exist (build it with scripts/lib.sh train_python, or set training_python)",
                self.cfg.python.display()
            ));
        }
        let script = self.script(crate::recipes::CPU_RECIPE);
        if !script.exists() {
            return Err(format!(
                "the recipe {} does not exist (set training_recipes_dir)",
                script.display()
            ));
        }
        Ok(())
    }

    fn script(&self, recipe: &str) -> PathBuf {
        self.cfg.recipes_dir.join(recipe).join("train.py")
    }

    /// Claims and runs jobs until `stop`. While the recipes cannot run here
    /// (their Python is still being installed, say) it claims nothing and
    /// looks again every few seconds.
    pub async fn run(&self, stop: CancellationToken) {
        let mut warned = false;
        while let Err(why) = self.check() {
            if !warned {
                tracing::warn!(
                    reason = why,
                    "training jobs wait: this worker cannot run its recipes yet"
                );
                warned = true;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.cfg.poll * 5) => {}
            }
        }
        if warned {
            tracing::info!("the recipes can run now: claiming training jobs");
        }
        let slots = (0..self.cfg.slots.max(1)).map(|i| self.slot(i, stop.clone()));
        futures_util::future::join_all(slots).await;
    }

    async fn slot(&self, i: u32, stop: CancellationToken) {
        let owner = format!("{}/{i}", self.cfg.owner);
        let capacity = Capacity::of(&self.cfg.gpu_type, 1);
        while !stop.is_cancelled() {
            let quotas = self.admission().await;
            match self
                .training
                .queue()
                .claim(&owner, &capacity, &quotas)
                .await
            {
                Ok(Some(lease)) => {
                    let job = lease.job_id;
                    tracing::info!(%job, attempt = lease.attempt, owner, "training attempt claimed");
                    self.attempt(lease, &stop).await;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(self.cfg.poll) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a training job failed");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(self.cfg.poll * 4) => {}
                    }
                }
            }
        }
    }

    async fn event(&self, lease: &Lease, level: &str, msg: &str, data: Option<&serde_json::Value>) {
        if let Err(e) = record_event(
            self.training.db(),
            lease.tenant_id,
            lease.job_id,
            lease.attempt,
            level,
            msg,
            data,
        )
        .await
        {
            tracing::warn!(error = %e, job = %lease.job_id, "recording a job event failed");
        }
    }

    /// Runs one attempt and writes its end.
    async fn attempt(&self, lease: Lease, stop: &CancellationToken) {
        // The admission snapshot may be seconds old: a tenant whose budget
        // ran out since starts nothing, and the claim does not count.
        if let Some(spend) = &self.spend
            && let Err(llmops_core::ApiError::BudgetExhausted(_)) = spend
                .check(&TenantCtx::for_job(lease.tenant_id, lease.job_id))
                .await
        {
            if let Err(e) = self.training.queue().unclaim(&lease, "budget").await {
                tracing::warn!(error = %e, job = %lease.job_id, "giving back a job over budget failed");
            }
            // Until the admission snapshot knows, do not claim it again at once.
            tokio::time::sleep(self.cfg.poll).await;
            return;
        }
        self.event(
            &lease,
            "info",
            &format!("Attempt {} started on {}", lease.attempt, lease.owner),
            None,
        )
        .await;
        // The lease is renewed for the whole attempt (downloads and uploads
        // included), by heartbeats running beside it in this task.
        let (beat_tx, beat) = tokio::sync::watch::channel(Beat::Continue);
        tokio::select! {
            () = self.run_attempt(&lease, stop, beat) => {}
            () = self.heartbeats(&lease, beat_tx) => {}
        }
    }

    /// Renews the lease every heartbeat period and publishes what it hears.
    /// Never returns (it stops beating once the lease is lost).
    async fn heartbeats(&self, lease: &Lease, tx: tokio::sync::watch::Sender<Beat>) {
        let mut tick = tokio::time::interval(self.cfg.heartbeat);
        tick.tick().await;
        loop {
            tick.tick().await;
            let heard = match self.training.queue().heartbeat(lease).await {
                Ok(Control::Continue) => Beat::Continue,
                Ok(Control::Pause) => Beat::Pause,
                Ok(Control::Cancel) => Beat::Cancel,
                Err(QueueError::Stale) => Beat::Lost,
                Err(e) => {
                    tracing::warn!(error = %e, job = %lease.job_id, "heartbeat failed; retrying");
                    continue;
                }
            };
            tx.send_if_modified(|b| {
                let raised = heard > *b;
                if raised {
                    *b = heard;
                }
                raised
            });
            if heard == Beat::Lost {
                std::future::pending::<()>().await;
            }
        }
    }

    async fn run_attempt(
        &self,
        lease: &Lease,
        stop: &CancellationToken,
        beat: tokio::sync::watch::Receiver<Beat>,
    ) {
        let lease = lease.clone();
        let outcome = match serde_json::from_value::<JobSpec>(lease.spec.clone()) {
            Ok(spec) => {
                let dir = self
                    .cfg
                    .work_dir
                    .join(lease.job_id.to_string())
                    .join(format!("attempt-{}", lease.attempt));
                let outcome = self.execute(&lease, &spec, &dir, stop, beat.clone()).await;
                let outcome = match outcome {
                    Outcome::Succeeded(result) => match current(&beat) {
                        // Still ours (renewed within a heartbeat), unless told
                        // otherwise: a lost lease registers nothing.
                        Beat::Lost => Err(Outcome::Lost),
                        Beat::Cancel => Err(Outcome::Cancelled),
                        Beat::Continue | Beat::Pause => Ok(result),
                    },
                    other => Err(other),
                };
                let outcome = match outcome {
                    Ok(result) => self.register(&lease, &spec, result).await,
                    Err(o) => Err(o),
                };
                // Attempt directories hold copies of the base and data.
                if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                    tracing::debug!(error = %e, "removing an attempt directory");
                }
                match outcome {
                    Ok(done) => {
                        self.finish(&lease, Finish::Succeeded(done.0), Some(done.1))
                            .await;
                        return;
                    }
                    Err(o) => o,
                }
            }
            Err(e) => failed(format!("the job's spec is not readable: {e}"), false),
        };
        let finish = match outcome {
            Outcome::Lost => {
                tracing::warn!(job = %lease.job_id, attempt = lease.attempt, "lease lost; the attempt writes nothing");
                return;
            }
            Outcome::Succeeded(..) => return,
            Outcome::Failed { error, retryable } => {
                self.event(&lease, "error", &error, None).await;
                Finish::Failed { error, retryable }
            }
            Outcome::Cancelled => Finish::Cancelled,
            Outcome::Paused => Finish::Paused,
            Outcome::Interrupted => {
                Finish::Interrupted("the worker shut down during the attempt; re-queued".into())
            }
        };
        self.finish(&lease, finish, None).await;
    }

    /// Fetches the inputs, runs the recipe, follows it.
    async fn execute(
        &self,
        lease: &Lease,
        spec: &JobSpec,
        dir: &Path,
        stop: &CancellationToken,
        mut beat: tokio::sync::watch::Receiver<Beat>,
    ) -> Outcome {
        let inputs = match self.prepare(lease, spec, dir).await {
            Ok(i) => i,
            Err(o) => return o,
        };
        match latest(&mut beat) {
            Beat::Continue => {}
            Beat::Pause => return Outcome::Paused,
            Beat::Cancel => return Outcome::Cancelled,
            Beat::Lost => return Outcome::Lost,
        }
        let script = self.script(&spec.executor.recipe);
        let mut run = match executor::start(&self.cfg.python, &script, &inputs, dir) {
            Ok(r) => r,
            Err(e) => return failed(format!("starting the recipe: {e}"), true),
        };
        let deadline = tokio::time::sleep(self.cfg.wall_clock);
        tokio::pin!(deadline);
        let grace = tokio::time::sleep(Duration::from_secs(365 * 86400));
        tokio::pin!(grace);
        let mut stopping: Option<Outcome> = None;
        let mut result: Option<RecipeResult> = None;
        let (mut reading, mut killed) = (true, false);
        let exit: Exit;
        let mut last_error: Option<String> = None;
        let ask_stop = |why: Outcome, stopping: &mut Option<Outcome>| -> bool {
            if stopping.is_none() {
                *stopping = Some(why);
                true
            } else {
                false
            }
        };
        loop {
            tokio::select! {
                status = run.child.wait(), if !reading => {
                    exit = match status {
                        Ok(s) => s.code().map_or(Exit::Signal, Exit::Code),
                        Err(_) => Exit::Signal,
                    };
                    break;
                }
                line = run.lines.next_line(), if reading => match line {
                    Ok(Some(line)) if line.trim().is_empty() => {}
                    Ok(Some(line)) => match RecipeLine::parse(&line) {
                        RecipeLine::Result(r) => result = Some(r),
                        RecipeLine::Message { level, message } => {
                            let level = match level.as_str() { "warn" | "warning" => "warn", "error" => "error", _ => "info" };
                            if level == "error" {
                                last_error = Some(message.clone());
                            }
                            self.event(lease, level, &message, None).await;
                        }
                        RecipeLine::Metrics { step, epoch, data } => {
                            let mut d = data;
                            d.insert("step".into(), step.into());
                            if let Some(e) = epoch {
                                d.insert("epoch".into(), e);
                            }
                            let text = d.iter().filter(|(k, _)| *k != "step").map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
                            self.event(lease, "info", &format!("Step {step}: {text}"), Some(&serde_json::Value::Object(d))).await;
                        }
                        // A stale attempt keeps no checkpoint.
                        RecipeLine::Checkpoint { step, epoch, path, metrics } if current(&beat) != Beat::Lost => {
                            self.checkpoint(lease, step, epoch, &path, metrics).await;
                        }
                        RecipeLine::Checkpoint { .. } => {}
                    },
                    // End of output: the process is waited for next.
                    Ok(None) => reading = false,
                    Err(e) => {
                        // Not text: the protocol is broken, and an unread
                        // pipe would block the recipe.
                        ask_stop(failed(format!("the recipe wrote unreadable output: {e}"), false), &mut stopping);
                        reading = false;
                        run.kill();
                    }
                },
                Ok(()) = beat.changed() => match latest(&mut beat) {
                    Beat::Continue => {}
                    Beat::Cancel => {
                        // A cancel outranks a pause under way.
                        if matches!(stopping, None | Some(Outcome::Paused)) {
                            stopping = Some(Outcome::Cancelled);
                            run.kill();
                        }
                    }
                    Beat::Pause => {
                        if ask_stop(Outcome::Paused, &mut stopping) {
                            run.terminate().await;
                            grace.as_mut().reset(tokio::time::Instant::now() + executor::TERM_GRACE);
                        }
                    }
                    Beat::Lost => {
                        stopping = Some(Outcome::Lost);
                        run.kill();
                    }
                },
                _ = &mut deadline, if stopping.is_none() => {
                    ask_stop(failed(format!("the attempt ran past the wall-clock limit of {} s", self.cfg.wall_clock.as_secs()), false), &mut stopping);
                    run.terminate().await;
                    grace.as_mut().reset(tokio::time::Instant::now() + executor::TERM_GRACE);
                }
                _ = stop.cancelled(), if stopping.is_none() => {
                    ask_stop(Outcome::Interrupted, &mut stopping);
                    run.terminate().await;
                    grace.as_mut().reset(tokio::time::Instant::now() + executor::TERM_GRACE);
                }
                _ = &mut grace, if !killed => {
                    killed = true;
                    run.kill();
                }
            }
        }
        if let Some(o) = stopping {
            return o;
        }
        match (exit, result) {
            (Exit::Code(0), Some(r)) => Outcome::Succeeded(r),
            (Exit::Code(0), None) => failed("the recipe ended without a result", false),
            (e, _) => {
                let why = match last_error {
                    Some(m) => m,
                    None => run.stderr_tail(5).await,
                };
                let retryable = !e.is_refusal();
                failed(
                    match e {
                        Exit::Code(c) => format!("the recipe failed (exit {c}): {why}"),
                        Exit::Signal => format!("the recipe was killed: {why}"),
                    },
                    retryable,
                )
            }
        }
    }

    /// Downloads the base, the files and the checkpoint to resume from, and
    /// writes the recipe's spec. Returns the spec's path.
    async fn prepare(&self, lease: &Lease, spec: &JobSpec, dir: &Path) -> Result<PathBuf, Outcome> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| failed(format!("{what}: {e}"), true)
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io("creating the attempt directory"))?;
        let ctx = TenantCtx::for_job(lease.tenant_id, lease.job_id);
        let registry = self.training.registry();
        let base = registry
            .resolve(&ctx, &spec.base_version_id)
            .await
            .map_err(|e| failed(format!("the base model {}: {e}", spec.base_version), false))?;
        // Cached per tenant and version (versions are immutable): never
        // shared between tenants, whatever checksums they declare.
        let models = self
            .cfg
            .work_dir
            .join("cache")
            .join("models")
            .join(lease.tenant_id.to_string());
        tokio::fs::create_dir_all(&models)
            .await
            .map_err(io("creating the model cache"))?;
        let base_path = models.join(format!("{}.gguf", base.id));
        if !base_path.exists() {
            self.event(
                lease,
                "info",
                &format!("Fetching the base model {}", spec.base_version),
                None,
            )
            .await;
            let (_, sha, stream) = registry
                .open_artifact(&ctx, &base.model, base.version)
                .await
                .map_err(|e| failed(format!("reading the base model: {e}"), true))?;
            let _ = sha;
            executor::download(stream, &base_path)
                .await
                .map_err(io("downloading the base model"))?;
        }
        let files = self.training.files();
        let fetch_file = async |id: &str, name: &str| -> Result<PathBuf, Outcome> {
            let row = files
                .row(&ctx, id)
                .await
                .map_err(|e| failed(format!("file {id}: {e}"), false))?;
            let (_, stream) = files
                .store()
                .get_stream(&row.artifact_key)
                .await
                .map_err(|e| failed(format!("reading file {id}: {e}"), true))?;
            let path = dir.join(name);
            executor::download(stream, &path)
                .await
                .map_err(|e| failed(format!("downloading file {id}: {e}"), true))?;
            Ok(path)
        };
        let train = fetch_file(&spec.training_file, "train.jsonl").await?;
        let valid = match &spec.validation_file {
            Some(v) => Some(fetch_file(v, "valid.jsonl").await?),
            None => None,
        };
        let resume = self.resume_point(lease, dir).await?;
        let checkpoints = dir.join("checkpoints");
        let output = dir.join("output");
        for d in [&checkpoints, &output] {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(io("creating directories"))?;
        }
        let trainable_blocks = spec
            .executor
            .trains
            .get("trainable_blocks")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let recipe_spec = serde_json::json!({
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
            "output_dir": output,
        });
        let path = dir.join("spec.json");
        tokio::fs::write(&path, recipe_spec.to_string())
            .await
            .map_err(io("writing the recipe spec"))?;
        Ok(path)
    }

    /// The job's latest checkpoint, downloaded, as the recipe's
    /// `resume_from`.
    async fn resume_point(&self, lease: &Lease, dir: &Path) -> Result<serde_json::Value, Outcome> {
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
    async fn checkpoint(
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

    /// Registers the output (once per job, whatever the attempts) and
    /// returns the job's result and the final checkpoint to record.
    async fn register(
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
    async fn finish(&self, lease: &Lease, outcome: Finish, last: Option<FinalCheckpoint>) {
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
struct FinalCheckpoint {
    step: i64,
    metrics: BTreeMap<String, f64>,
    reference: String,
    artifact_key: String,
}
