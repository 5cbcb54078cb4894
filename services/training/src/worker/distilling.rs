//! A distillation's first stage: its teacher answers the training file's
//! chats through serving, and the answers are kept as a file of the
//! tenant's, which a later attempt reuses instead of asking again.

use super::{Beat, Outcome, Worker, current, failed};
use crate::api::Distill;
use crate::distill::{self, Prompt};
use crate::job::Lease;
use crate::service::JobSpec;
use llmops_core::{ApiError, TenantCtx};
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

impl Worker {
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
        let (mut answered, mut skipped) = (Vec::with_capacity(lines.len()), 0usize);
        for (i, line) in lines.iter().enumerate() {
            match current(beat) {
                Beat::Continue => {}
                Beat::Pause => return Err(Outcome::Paused),
                Beat::Cancel => return Err(Outcome::Cancelled),
                Beat::Lost => return Err(Outcome::Lost),
            }
            let Some(prompt) = Prompt::parse(line) else {
                skipped += 1;
                continue;
            };
            let answer = teacher
                .answer(ctx, &d.teacher, &prompt.messages, d.max_tokens, spec.seed)
                .await
                .map_err(|e| teacher_error(&d.teacher, e))?;
            let answer = answer.trim();
            if answer.is_empty() {
                skipped += 1;
                continue;
            }
            answered.push(prompt.answered(answer));
            if (i + 1) % 10 == 0 {
                self.event(
                    lease,
                    "info",
                    &format!("The teacher answered {}/{} chats", i + 1, lines.len()),
                    None,
                )
                .await;
            }
        }
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
        let file = files
            .upload(ctx, Some(&name), distill::body(&answered))
            .await
            .map_err(|e| {
                let retryable = !matches!(
                    e,
                    ApiError::Validation { .. } | ApiError::PayloadTooLarge { .. }
                );
                failed(format!("keeping the teacher's answers: {e}"), retryable)
            })?;
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
        let mut text = answered.join("\n");
        text.push('\n');
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| failed(format!("writing the answers: {e}"), true))?;
        Ok(path)
    }
}
