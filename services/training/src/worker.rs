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

use crate::executor::{self, Exit, RecipeLine, RecipeResult};
use crate::job::JobKind;
use crate::job::{Capacity, Control, Finish, Lease, QueueError};
use crate::policy::StaticQuotas;
use crate::service::{JobSpec, Training, record_event};
use crate::tasks::TaskSpec;
use llmops_core::TenantCtx;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mod distilling;
mod kube;
mod outputs;
mod staging;

pub use kube::KubeTarget;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name in leases (host and process, say).
    pub owner: String,
    /// The device type it offers (`cpu`).
    pub gpu_type: String,
    /// The pool its devices are in: attempts' metered time carries it.
    pub pool: Option<String>,
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
    /// Attempts run on this cluster instead of as local processes.
    kube: Option<KubeTarget>,
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
    /// Boxed: the result is large next to the other outcomes.
    Succeeded(Box<RecipeResult>),
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

/// What an attempt runs: a fine-tune (a distillation is one, after its
/// teacher answered), or one of the recipe's tools.
pub(super) enum Task {
    FineTune(Box<JobSpec>),
    Quantize(TaskSpec),
    Evaluate(TaskSpec),
}

impl Task {
    fn of(lease: &Lease) -> Result<Task, String> {
        let spec = lease.spec.clone();
        let task = match lease.kind {
            JobKind::FineTune | JobKind::Distill => {
                serde_json::from_value(spec).map(|s| Task::FineTune(Box::new(s)))
            }
            JobKind::Quantize => serde_json::from_value(spec).map(Task::Quantize),
            JobKind::Evaluate => serde_json::from_value(spec).map(Task::Evaluate),
        };
        task.map_err(|e| format!("the job's spec is not readable: {e}"))
    }
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
            kube: None,
        }
    }

    /// Runs attempts on `target`'s cluster (GPU jobs of this worker's
    /// type, any size a pool of it holds; the cluster schedules them).
    pub fn on_kubernetes(mut self, target: KubeTarget) -> Self {
        self.kube = Some(target);
        self
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
        if self.kube.is_some() {
            // Recipes run in the cluster's image.
            return Ok(());
        }
        if !self.cfg.python.exists() {
            return Err(format!(
                "the recipe Python {} does not exist (build it with scripts/lib.sh train_python, or set training_python)",
                self.cfg.python.display()
            ));
        }
        let script = self.script(crate::recipes::CPU_RECIPE, "train.py");
        if !script.exists() {
            return Err(format!(
                "the recipe {} does not exist (set training_recipes_dir)",
                script.display()
            ));
        }
        Ok(())
    }

    fn script(&self, recipe: &str, entry: &str) -> PathBuf {
        self.cfg.recipes_dir.join(recipe).join(entry)
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
        tokio::join!(futures_util::future::join_all(slots), self.presence(&stop));
    }

    /// Says this worker is online until `stop`, and marks the queued jobs
    /// no live worker can run.
    async fn presence(&self, stop: &CancellationToken) {
        let presence = self.training.presence();
        loop {
            if let Err(e) = presence
                .beat(&self.cfg.owner, &self.cfg.gpu_type, self.cfg.slots)
                .await
            {
                tracing::warn!(error = %e, "announcing the worker failed");
            }
            self.training.note_unserved().await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(crate::presence::BEAT) => {}
            }
        }
        if let Err(e) = presence.leave(&self.cfg.owner).await {
            tracing::debug!(error = %e, "leaving the worker list");
        }
    }

    async fn slot(&self, i: u32, stop: CancellationToken) {
        let owner = format!("{}/{i}", self.cfg.owner);
        // A local slot runs one single-device job; a cluster slot submits
        // one job of any size (the cluster, or Kueue, schedules it).
        let devices = if self.kube.is_some() { u32::MAX } else { 1 };
        let capacity = Capacity::of(&self.cfg.gpu_type, devices).in_pool(self.cfg.pool.clone());
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
        let outcome = match Task::of(&lease) {
            Ok(task) => {
                let dir = self
                    .cfg
                    .work_dir
                    .join(lease.job_id.to_string())
                    .join(format!("attempt-{}", lease.attempt));
                let outcome = match (&task, &self.kube) {
                    (Task::FineTune(spec), Some(k)) => {
                        self.kube_execute(&lease, spec, k, &dir, stop, beat.clone())
                            .await
                    }
                    _ => self.execute(&lease, &task, &dir, stop, beat.clone()).await,
                };
                let outcome = match outcome {
                    Outcome::Succeeded(result) => match current(&beat) {
                        // Still ours (renewed within a heartbeat), unless told
                        // otherwise: a lost lease registers nothing.
                        Beat::Lost => Err(Outcome::Lost),
                        Beat::Cancel => Err(Outcome::Cancelled),
                        Beat::Continue | Beat::Pause => Ok(*result),
                    },
                    other => Err(other),
                };
                let outcome = match outcome {
                    Ok(result) => self.complete(&lease, &task, result).await,
                    Err(o) => Err(o),
                };
                // Attempt directories hold copies of the base and data.
                if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                    tracing::debug!(error = %e, "removing an attempt directory");
                }
                match outcome {
                    Ok((result, last)) => {
                        self.finish(&lease, Finish::Succeeded(result), last).await;
                        return;
                    }
                    Err(o) => o,
                }
            }
            Err(e) => failed(e, false),
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

    /// One line of a recipe's protocol: events, metrics, checkpoints (kept
    /// only while `checkpoints`: a stale attempt keeps none), the result,
    /// the last error message.
    async fn on_line(
        &self,
        lease: &Lease,
        line: &str,
        checkpoints: bool,
        result: &mut Option<RecipeResult>,
        last_error: &mut Option<String>,
    ) {
        match RecipeLine::parse(line) {
            RecipeLine::Result(r) => *result = Some(r),
            RecipeLine::Message { level, message } => {
                let level = match level.as_str() {
                    "warn" | "warning" => "warn",
                    "error" => "error",
                    _ => "info",
                };
                if level == "error" {
                    *last_error = Some(message.clone());
                }
                self.event(lease, level, &message, None).await;
            }
            RecipeLine::Metrics { step, epoch, data } => {
                let mut d = data;
                d.insert("step".into(), step.into());
                if let Some(e) = epoch {
                    d.insert("epoch".into(), e);
                }
                let text = d
                    .iter()
                    .filter(|(k, _)| *k != "step")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.event(
                    lease,
                    "info",
                    &format!("Step {step}: {text}"),
                    Some(&serde_json::Value::Object(d)),
                )
                .await;
            }
            RecipeLine::Checkpoint {
                step,
                epoch,
                path,
                metrics,
            } if checkpoints => {
                self.checkpoint(lease, step, epoch, &path, metrics).await;
            }
            RecipeLine::Checkpoint { .. } => {}
        }
    }

    /// Fetches the inputs, runs the recipe, follows it.
    async fn execute(
        &self,
        lease: &Lease,
        task: &Task,
        dir: &Path,
        stop: &CancellationToken,
        mut beat: tokio::sync::watch::Receiver<Beat>,
    ) -> Outcome {
        let (script, inputs) = match self.prepare(lease, task, dir, &beat).await {
            Ok(i) => i,
            Err(o) => return o,
        };
        match latest(&mut beat) {
            Beat::Continue => {}
            Beat::Pause => return Outcome::Paused,
            Beat::Cancel => return Outcome::Cancelled,
            Beat::Lost => return Outcome::Lost,
        }
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
                    exit = Exit::of(status);
                    break;
                }
                line = run.lines.next_line(), if reading => match line {
                    Ok(Some(line)) if line.trim().is_empty() => {}
                    Ok(Some(line)) => {
                        let checkpoints = current(&beat) != Beat::Lost;
                        self.on_line(lease, &line, checkpoints, &mut result, &mut last_error).await;
                    }
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
            (Exit::Code(0), Some(r)) => Outcome::Succeeded(Box::new(r)),
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
}
