//! A distillation's first stage: its teacher answers the training file's
//! chats through serving, and the answers are kept as a file of the
//! tenant's, which a later attempt reuses instead of asking again.

use super::{Beat, Outcome, Worker, current, failed};
use crate::api::Distill;
use crate::distill::{self, Prompt};
use crate::job::Lease;
use crate::service::JobSpec;
use llmops_core::{ApiError, TenantCtx};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// How a teacher's refusal ends the attempt: what retrying cannot mend
/// fails the job.
fn teacher_error(teacher: &str, e: ApiError) -> Outcome {
    let retryable = matches!(
        e,
        ApiError::Unavailable { .. } | ApiError::UpstreamFailed(_) | ApiError::Internal(_)
    );
    failed(format!("the teacher `{teacher}`: {e}"), retryable)
}

/// How far a distillation's teacher got.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    /// Of the prompts file these answers belong to.
    prompts_sha256: String,
    /// Lines of the prompts file done.
    processed: usize,
    skipped: usize,
    answered: Vec<String>,
}

impl Worker {
    async fn distill_progress(&self, key: &str) -> Option<Progress> {
        use futures_util::TryStreamExt;
        let (_, stream) = self.training.files().store().get_stream(key).await.ok()?;
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.ok()?;
        serde_json::from_slice(&chunks.concat()).ok()
    }

    async fn keep_progress(&self, key: &str, progress: &Progress) {
        let Ok(body) = serde_json::to_vec(progress) else {
            return;
        };
        let body = futures_util::stream::iter([Ok::<_, String>(bytes::Bytes::from(body))]);
        if let Err(e) = self.training.files().store().put_stream(key, body).await {
            tracing::warn!(error = %e, "keeping a distillation's progress failed");
        }
    }

    /// The training file with its teacher's answers, at `<dir>/distilled.jsonl`.
    pub(super) async fn distilled(
        &self,
        lease: &Lease,
        ctx: &TenantCtx,
        spec: &JobSpec,
        d: &Distill,
        prompts: &Path,
        beat: &tokio::sync::watch::Receiver<Beat>,
    ) -> Result<PathBuf, Outcome> {
        let files = self.training.files();
        let name = distill::generated_name(&lease.job_id.to_string());
        let path = prompts.with_file_name("distilled.jsonl");
        let earlier = files
            .named(ctx, &name)
            .await
            .map_err(|e| failed(format!("looking for earlier answers: {e}"), true))?;
        if let Some(row) = earlier {
            self.event(
                lease,
                "info",
                &format!(
                    "Reusing the teacher's answers of an earlier attempt ({})",
                    row.id
                ),
                None,
            )
            .await;
            return self.fetch_file(ctx, &row.id, &path).await;
        }
        let teacher = self.training.teacher().cloned().ok_or_else(|| {
            failed(
                "distillation needs the serving service, which this worker does not run",
                true,
            )
        })?;
        let text = tokio::fs::read_to_string(prompts)
            .await
            .map_err(|e| failed(format!("reading the prompts: {e}"), true))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        self.event(
            lease,
            "info",
            &format!(
                "Asking the teacher `{}` to answer {} chats",
                d.teacher,
                lines.len()
            ),
            None,
        )
        .await;
        // Answers an earlier attempt got stay answered (the teacher's
        // inference is billed): progress is kept every few chats and when
        // the attempt stops.
        let progress_key = format!(
            "tenants/{}/jobs/{}/distill-progress.json",
            lease.tenant_id, lease.job_id
        );
        let prompts_sha = format!("{:x}", Sha256::digest(text.as_bytes()));
        let mut progress = self
            .distill_progress(&progress_key)
            .await
            .filter(|p| p.prompts_sha256 == prompts_sha && p.processed <= lines.len())
            .unwrap_or(Progress {
                prompts_sha256: prompts_sha,
                ..Progress::default()
            });
        if progress.processed > 0 {
            self.event(
                lease,
                "info",
                &format!(
                    "Resuming after the {} chats an earlier attempt had the teacher answer",
                    progress.processed
                ),
                None,
            )
            .await;
        }
        let mut stopped: Option<Outcome> = None;
        for (i, line) in lines.iter().enumerate().skip(progress.processed) {
            match current(beat) {
                Beat::Continue => {}
                Beat::Pause => {
                    stopped = Some(Outcome::Paused);
                    break;
                }
                Beat::Cancel => return Err(Outcome::Cancelled),
                Beat::Lost => return Err(Outcome::Lost),
            }
            if let Some(prompt) = Prompt::parse(line) {
                match teacher
                    .answer(ctx, &d.teacher, &prompt.messages, d.max_tokens, spec.seed)
                    .await
                {
                    Ok(answer) if !answer.trim().is_empty() => {
                        progress.answered.push(prompt.answered(answer.trim()));
                    }
                    Ok(_) => progress.skipped += 1,
                    Err(e) => {
                        stopped = Some(teacher_error(&d.teacher, e));
                        break;
                    }
                }
            } else {
                progress.skipped += 1;
            }
            progress.processed = i + 1;
            if progress.processed % 10 == 0 {
                self.keep_progress(&progress_key, &progress).await;
                self.event(
                    lease,
                    "info",
                    &format!(
                        "The teacher answered {}/{} chats",
                        progress.processed,
                        lines.len()
                    ),
                    None,
                )
                .await;
            }
        }
        if let Some(o) = stopped {
            if current(beat) != Beat::Lost {
                self.keep_progress(&progress_key, &progress).await;
            }
            return Err(o);
        }
        let (answered, skipped) = (progress.answered, progress.skipped);
        if answered.is_empty() {
            return Err(failed(
                "the teacher answered none of the chats (each needs a user turn before its last assistant turn)",
                false,
            ));
        }
        // A stale attempt keeps nothing.
        match current(beat) {
            Beat::Lost => return Err(Outcome::Lost),
            Beat::Cancel => return Err(Outcome::Cancelled),
            Beat::Continue | Beat::Pause => {}
        }
        // Written once: the file the student trains on is the one kept.
        let mut text = answered.join("\n");
        text.push('\n');
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| failed(format!("writing the answers: {e}"), true))?;
        let file = files
            .upload(ctx, Some(&name), crate::executor::file_stream(path.clone()))
            .await
            .map_err(|e| {
                let retryable = !matches!(
                    e,
                    ApiError::Validation { .. } | ApiError::PayloadTooLarge { .. }
                );
                failed(format!("keeping the teacher's answers: {e}"), retryable)
            })?;
        let _ = files.store().delete(&progress_key).await;
        // Attempts that overlapped may each have kept their answers: all
        // of them train on (and report) the oldest.
        if let Ok(Some(first)) = files.named(ctx, &name).await
            && first.id != file.id.to_string()
        {
            return self.fetch_file(ctx, &first.id, &path).await;
        }
        self.event(
            lease,
            "info",
            &format!(
                "The teacher `{}` answered {} chats ({skipped} skipped); kept as {}",
                d.teacher,
                answered.len(),
                file.id
            ),
            None,
        )
        .await;
        Ok(path)
    }
}
