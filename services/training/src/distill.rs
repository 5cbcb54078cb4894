//! Distillation: before a distillation job fine-tunes its student, the
//! teacher answers every chat of the training file through the serving
//! service (greedy, metered as the tenant's inference like any chat), and
//! the answers become a training file of their own (`distill-<job>.jsonl`,
//! validated and kept like an upload). A later attempt reuses that file
//! instead of asking the teacher again.

use crate::api::Distill;
use llmops_core::{ApiError, ApiResult, TenantCtx};

/// What answers a distillation's prompts: serving's chat completions.
#[async_trait::async_trait]
pub trait Teacher: Send + Sync {
    /// Refuses a model the tenant cannot chat with (404 or 422).
    async fn check(&self, ctx: &TenantCtx, model: &str) -> ApiResult<()>;
    /// The teacher's greedy answer to `messages` (role, content).
    async fn answer(
        &self,
        ctx: &TenantCtx,
        model: &str,
        messages: &[(String, String)],
        max_tokens: u32,
        seed: i64,
    ) -> ApiResult<String>;
}

/// The name of a job's generated file.
pub fn generated_name(job: &str) -> String {
    format!("distill-{job}.jsonl")
}

/// Checks a distillation request against the teacher.
pub async fn check(
    teacher: Option<&std::sync::Arc<dyn Teacher>>,
    ctx: &TenantCtx,
    d: &Distill,
) -> ApiResult<Distill> {
    if d.teacher.is_empty() || d.teacher.chars().count() > 200 {
        return Err(ApiError::validation(
            "distill.teacher",
            "the teacher is 1 to 200 characters",
        ));
    }
    if !(1..=4096).contains(&d.max_tokens) {
        return Err(ApiError::validation(
            "distill.max_tokens",
            "max_tokens must be 1 to 4096",
        ));
    }
    let Some(teacher) = teacher else {
        return Err(ApiError::NotConfigured(
            "distillation needs the serving service, which this process does not run".into(),
        ));
    };
    teacher.check(ctx, &d.teacher).await.map_err(|e| match e {
        ApiError::NotFound(what) => ApiError::validation(
            "distill.teacher",
            format!("{what}: the teacher is a model the tenant can chat with (a ready deployment)"),
        ),
        ApiError::Validation { detail, .. } => ApiError::validation("distill.teacher", detail),
        other => other,
    })?;
    Ok(d.clone())
}

/// One chat of the training file, split into the prompt the teacher
/// answers and the line to write with its answer.
pub struct Prompt {
    /// The chat's messages before its last assistant turn.
    pub messages: Vec<(String, String)>,
    /// The line, to which the answer is added as its last assistant turn.
    line: serde_json::Map<String, serde_json::Value>,
    keep: usize,
}

impl Prompt {
    /// A line of a validated training file; `None` for a chat without a
    /// text prompt before its last assistant turn.
    pub fn parse(line: &str) -> Option<Prompt> {
        let serde_json::Value::Object(obj) = serde_json::from_str(line).ok()? else {
            return None;
        };
        let msgs = obj.get("messages")?.as_array()?;
        let last = msgs
            .iter()
            .rposition(|m| m.get("role").and_then(|r| r.as_str()) == Some("assistant"))?;
        let mut messages = Vec::with_capacity(last);
        for m in &msgs[..last] {
            let role = m.get("role")?.as_str()?;
            let content = m.get("content").and_then(|c| c.as_str()).unwrap_or("");
            // Tool turns have no place in a plain chat request.
            if role == "tool" {
                return None;
            }
            messages.push((role.to_string(), content.to_string()));
        }
        if !messages.iter().any(|(r, _)| r == "user") {
            return None;
        }
        Some(Prompt {
            messages,
            line: obj,
            keep: last,
        })
    }

    /// The line with the teacher's answer as its last turn.
    pub fn answered(mut self, answer: &str) -> String {
        if let Some(serde_json::Value::Array(msgs)) = self.line.get_mut("messages") {
            msgs.truncate(self.keep);
            // Only the teacher's answers are learned.
            for m in msgs.iter_mut() {
                if m.get("role").and_then(|r| r.as_str()) == Some("assistant")
                    && let Some(o) = m.as_object_mut()
                {
                    o.insert("weight".into(), 0.into());
                }
            }
            msgs.push(serde_json::json!({"role": "assistant", "content": answer}));
        }
        serde_json::Value::Object(self.line).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_assistant_turn_is_replaced() {
        let p = Prompt::parse(
            r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"old"}]}"#,
        )
        .expect("a prompt");
        assert_eq!(
            p.messages,
            vec![
                ("system".to_string(), "Be brief.".to_string()),
                ("user".to_string(), "Hi".to_string())
            ]
        );
        let line: serde_json::Value = serde_json::from_str(&p.answered("new")).expect("json");
        assert_eq!(line["messages"][2]["content"], "new");
        assert_eq!(line["messages"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn earlier_answers_are_not_learned() {
        let p = Prompt::parse(
            r#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"d"}]}"#,
        )
        .expect("a prompt");
        let line: serde_json::Value = serde_json::from_str(&p.answered("D")).expect("json");
        assert_eq!(line["messages"][1]["weight"], 0);
        assert_eq!(line["messages"][3]["content"], "D");
        assert!(line["messages"][3].get("weight").is_none());
    }

    #[test]
    fn chats_without_a_user_prompt_are_skipped() {
        assert!(Prompt::parse(r#"{"messages":[{"role":"assistant","content":"x"}]}"#).is_none());
        assert!(Prompt::parse("not json").is_none());
    }
}
