//! Attempts on Kubernetes (`llmops worker --gpu-type T --pool P`): the
//! inputs are staged to the artifact store (which must be S3), the
//! attempt's objects are applied ([`crate::kubernetes::render`]), and the
//! worker follows them until they end: the Job's state each heartbeat, the
//! rank-0 pod's log as the recipe's protocol (events, metrics, the
//! result), cancel, pause, a lost lease, the wall-clock limit and a
//! shutdown deleting the objects. On success rank 0 has uploaded
//! `output/`; the worker fetches the artifact the result names and
//! registers it as the local executor's outputs are.
//!
//! No cluster runs here: this path is written against the Kubernetes API
//! as kube-rs documents it and has not met a real API server. Checkpoints
//! stay in the pod, so a paused or re-queued attempt starts again.

use super::{Beat, Outcome, Worker, failed, latest};
use crate::executor::RecipeResult;
use crate::job::Lease;
use crate::kube_exec::{Cluster, KubeState};
use crate::kubernetes::{self, KubeSettings};
use crate::service::JobSpec;
use futures_util::StreamExt;
use llmops_core::TenantCtx;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where and how a worker runs attempts on a cluster.
pub struct KubeTarget {
    pub cluster: Cluster,
    /// The training image: Python with the GPU recipe's requirements, and
    /// the AWS CLI for the output upload.
    pub image: String,
    /// Kueue's LocalQueue, if the cluster admits jobs through Kueue.
    pub queue_name: Option<String>,
    /// Secret with the artifact store's credentials.
    pub artifacts_secret: String,
    /// Node label naming the pool, and this worker's pool.
    pub pool_label: String,
    pub pool: String,
    /// `s3://bucket[/prefix]` of the artifact store.
    pub store_uri: String,
    pub s3_endpoint: Option<String>,
}

type Log = Pin<Box<dyn futures_util::Stream<Item = std::io::Result<String>> + Send>>;

/// The next log line, or never while there is no log.
async fn next_line(log: &mut Option<Log>) -> Option<std::io::Result<String>> {
    match log {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    /// Copies `from` (a key of the artifact store) to `to`.
    async fn copy_key(&self, from: &str, to: &str) -> Result<(), Outcome> {
        let store = self.training.files().store();
        let (_, stream) = store
            .get_stream(from)
            .await
            .map_err(|e| failed(format!("staging {from}: {e}"), true))?;
        store
            .put_stream(to, stream)
            .await
            .map_err(|e| failed(format!("staging {to}: {e}"), true))?;
        Ok(())
    }

    /// The attempt's inputs under `<prefix>/inputs/`: the base's artifact
    /// (`base.tar`) and the files (a distillation's answered by its
    /// teacher first).
    async fn stage_inputs(
        &self,
        lease: &Lease,
        spec: &JobSpec,
        prefix: &str,
        dir: &Path,
        beat: &tokio::sync::watch::Receiver<Beat>,
    ) -> Result<(), Outcome> {
        let ctx = TenantCtx::for_job(lease.tenant_id, lease.job_id);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| failed(format!("creating the attempt directory: {e}"), true))?;
        let registry = self.training.registry();
        let base = registry
            .resolve(&ctx, &spec.base_version_id)
            .await
            .map_err(|e| failed(format!("the base model {}: {e}", spec.base_version), false))?;
        let (_, _, stream) = registry
            .open_artifact(&ctx, &base.model, base.version)
            .await
            .map_err(|e| failed(format!("reading the base model: {e}"), true))?;
        let store = self.training.files().store();
        store
            .put_stream(&format!("{prefix}/inputs/base.tar"), stream)
            .await
            .map_err(|e| failed(format!("staging the base model: {e}"), true))?;
        let files = self.training.files();
        let key_of = async |id: &str| {
            files
                .row(&ctx, id)
                .await
                .map(|r| r.artifact_key)
                .map_err(|e| failed(format!("file {id}: {e}"), false))
        };
        match &spec.distill {
            Some(d) => {
                let prompts = self
                    .fetch_file(&ctx, &spec.training_file, &dir.join("train.jsonl"))
                    .await?;
                let answered = self.distilled(lease, &ctx, spec, d, &prompts, beat).await?;
                store
                    .put_stream(
                        &format!("{prefix}/inputs/train.jsonl"),
                        crate::executor::file_stream(answered),
                    )
                    .await
                    .map_err(|e| failed(format!("staging the answers: {e}"), true))?;
            }
            None => {
                let key = key_of(&spec.training_file).await?;
                self.copy_key(&key, &format!("{prefix}/inputs/train.jsonl"))
                    .await?;
            }
        }
        if let Some(v) = &spec.validation_file {
            let key = key_of(v).await?;
            self.copy_key(&key, &format!("{prefix}/inputs/valid.jsonl"))
                .await?;
        }
        Ok(())
    }

    /// Runs the attempt on the cluster and follows it to its end.
    pub(super) async fn kube_execute(
        &self,
        lease: &Lease,
        spec: &JobSpec,
        k: &KubeTarget,
        dir: &Path,
        stop: &CancellationToken,
        mut beat: tokio::sync::watch::Receiver<Beat>,
    ) -> Outcome {
        let prefix = format!(
            "tenants/{}/jobs/{}/attempt-{}",
            lease.tenant_id, lease.job_id, lease.attempt
        );
        if let Err(o) = self.stage_inputs(lease, spec, &prefix, dir, &beat).await {
            return o;
        }
        match latest(&mut beat) {
            Beat::Continue => {}
            Beat::Pause => return Outcome::Paused,
            Beat::Cancel => return Outcome::Cancelled,
            Beat::Lost => return Outcome::Lost,
        }
        let job_id = lease.job_id.to_string();
        let name = kubernetes::name(&job_id, lease.attempt);
        let settings = KubeSettings {
            namespace: k.cluster.namespace().to_string(),
            image: k.image.clone(),
            queue_name: k.queue_name.clone(),
            artifacts_secret: k.artifacts_secret.clone(),
            inputs_uri: format!("{}/{prefix}/inputs/", k.store_uri),
            outputs_uri: format!("{}/{prefix}/output/", k.store_uri),
            s3_endpoint: k.s3_endpoint.clone(),
            pool_label: k.pool_label.clone(),
            pool: k.pool.clone(),
        };
        let objects = kubernetes::render(
            &job_id,
            &lease.tenant_id.to_string(),
            lease.attempt,
            spec,
            &settings,
        );
        // An earlier attempt whose worker died may still hold its GPUs.
        for earlier in 1..lease.attempt {
            let _ = k.cluster.delete(&kubernetes::name(&job_id, earlier)).await;
        }
        if let Err(e) = k.cluster.apply(&objects).await {
            let _ = k.cluster.delete(&name).await;
            // The API refusing the objects (4xx) does so every time.
            let retryable = !matches!(
                &e,
                crate::kube_exec::KubeError::Api(kube::Error::Api(r)) if (400..500).contains(&r.code) && r.code != 429
            );
            self.clean_staged(&prefix).await;
            return failed(
                format!("submitting the attempt to Kubernetes: {e}"),
                retryable,
            );
        }
        self.event(
            lease,
            "info",
            &format!(
                "Submitted Job {name} to namespace {} (pool {})",
                settings.namespace, k.pool
            ),
            None,
        )
        .await;
        let outcome = match self.follow(lease, k, &name, stop, &mut beat).await {
            Ok(result) => self.fetch_output(lease, &prefix, result, dir).await,
            Err(o) => o,
        };
        // Whatever the end: the objects and the staged copies go.
        if let Err(e) = k.cluster.delete(&name).await {
            tracing::warn!(error = %e, job = %lease.job_id, "deleting the attempt's Kubernetes objects failed");
        }
        self.clean_staged(&prefix).await;
        outcome
    }

    /// Deletes the attempt's staged inputs and uploaded output.
    async fn clean_staged(&self, prefix: &str) {
        let store = self.training.files().store();
        for key in [
            "inputs/base.tar",
            "inputs/train.jsonl",
            "inputs/valid.jsonl",
            "output/model.tar",
        ] {
            let _ = store.delete(&format!("{prefix}/{key}")).await;
        }
    }

    /// Follows the Job until it ends: its result, or how it ended.
    async fn follow(
        &self,
        lease: &Lease,
        k: &KubeTarget,
        name: &str,
        stop: &CancellationToken,
        beat: &mut tokio::sync::watch::Receiver<Beat>,
    ) -> Result<RecipeResult, Outcome> {
        let (mut result, mut last_error) = (None, None);
        let mut log: Option<Log> = None;
        let mut log_ended = false;
        let mut tick = tokio::time::interval(self.cfg.heartbeat);
        // The wall clock runs from the first running pod: time in Kueue's
        // queue or pulling images does not count.
        let far = Duration::from_secs(10 * 365 * 86400);
        let deadline = tokio::time::sleep(far);
        tokio::pin!(deadline);
        let mut running = false;
        let ended = loop {
            tokio::select! {
                line = next_line(&mut log) => match line {
                    Some(Ok(line)) if line.trim().is_empty() => {}
                    // Checkpoints stay in the pod: their paths are not ours.
                    Some(Ok(line)) => {
                        self.on_line(lease, &line, false, &mut result, &mut last_error).await;
                    }
                    // The container ended (or the stream broke: not
                    // reopened, which would repeat its events).
                    Some(Err(_)) | None => {
                        log = None;
                        log_ended = true;
                    }
                },
                _ = tick.tick() => {
                    if log.is_none() && !log_ended
                        && let Ok(Some(l)) = k.cluster.rank0_log(name).await
                    {
                        log = Some(Box::pin(l));
                    }
                    match k.cluster.state(name).await {
                        Ok(KubeState::Running) => {
                            if !running {
                                running = true;
                                deadline.as_mut().reset(tokio::time::Instant::now() + self.cfg.wall_clock);
                            }
                        }
                        Ok(KubeState::Pending) => {
                            if let Ok(Some(why)) = k.cluster.pending_problem(name).await {
                                break Err(failed(format!("the attempt's pods cannot start: {why}"), false));
                            }
                        }
                        Ok(KubeState::Succeeded) => break Ok(()),
                        Ok(KubeState::Failed(why)) => {
                            break Err(failed(
                                format!("the Job failed: {}", last_error.clone().unwrap_or(why)),
                                true,
                            ));
                        }
                        Ok(KubeState::Missing) => {
                            break Err(failed(format!("the Job {name} is gone"), true));
                        }
                        Err(e) => tracing::warn!(error = %e, job = %lease.job_id, "reading the Job's state failed; retrying"),
                    }
                }
                Ok(()) = beat.changed() => match latest(beat) {
                    Beat::Continue => {}
                    Beat::Pause => break Err(Outcome::Paused),
                    Beat::Cancel => break Err(Outcome::Cancelled),
                    Beat::Lost => break Err(Outcome::Lost),
                },
                _ = &mut deadline => {
                    break Err(failed(
                        format!("the attempt ran past the wall-clock limit of {} s", self.cfg.wall_clock.as_secs()),
                        false,
                    ));
                }
                _ = stop.cancelled() => break Err(Outcome::Interrupted),
            }
        };
        ended?;
        // The rest of the log (the result is its last line).
        if !log_ended && log.is_none() {
            log = k
                .cluster
                .rank0_log(name)
                .await
                .ok()
                .flatten()
                .map(|l| Box::pin(l) as Log);
        }
        if let Some(mut l) = log {
            let drain = async {
                while let Some(Ok(line)) = l.next().await {
                    if !line.trim().is_empty() {
                        self.on_line(lease, &line, false, &mut result, &mut last_error)
                            .await;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(60), drain).await;
        }
        // A stream that broke early: the finished pod's whole log, read
        // again for its result only (its events are in already).
        if result.is_none()
            && let Ok(Some(l)) = k.cluster.rank0_log(name).await
        {
            let mut l: Log = Box::pin(l);
            let read = async {
                while let Some(Ok(line)) = l.next().await {
                    if let crate::executor::RecipeLine::Result(r) =
                        crate::executor::RecipeLine::parse(&line)
                    {
                        result = Some(r);
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
        }
        result.ok_or_else(|| failed("the Job succeeded without a result line in its log", true))
    }

    /// Downloads the artifact rank 0 uploaded, for registration.
    async fn fetch_output(
        &self,
        lease: &Lease,
        prefix: &str,
        mut result: RecipeResult,
        dir: &Path,
    ) -> Outcome {
        let Some(file) = result
            .artifact
            .as_ref()
            .and_then(|a| a.file_name())
            .map(|f| f.to_string_lossy().to_string())
        else {
            return failed("the recipe's result names no artifact", false);
        };
        let key = format!("{prefix}/output/{file}");
        let local = dir.join(&file);
        let stream = match self.training.files().store().get_stream(&key).await {
            Ok((_, s)) => s,
            Err(e) => {
                return failed(
                    format!("the output rank 0 should have uploaded ({key}): {e}"),
                    true,
                );
            }
        };
        if let Err(e) = crate::executor::download(stream, &local).await {
            return failed(format!("downloading the output: {e}"), true);
        }
        self.event(lease, "info", &format!("Fetched the output {file}"), None)
            .await;
        result.artifact = Some(local);
        Outcome::Succeeded(Box::new(result))
    }
}
