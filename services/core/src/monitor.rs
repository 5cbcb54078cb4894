//! What an inference call did, collected while it runs and handed to the
//! monitoring service when its response ends.
//!
//! The gateway attaches a [`Probe`] to the caller's [`crate::TenantCtx`] on
//! inference routes; services fill it where they already book usage (one
//! place in serving), so a RAG answer's generation lands in the answer's
//! record. When the response body ends (or the client goes away), the
//! gateway turns the probe into an [`InferenceRecord`] and submits it to a
//! [`RecordSink`], which never blocks the call.

use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Most characters of a prompt or an answer a probe keeps, for the
/// quality signals and descriptors (never stored as text).
pub const TEXT_CAP: usize = 8 * 1024;

/// The kind of inference call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Chat,
    Completion,
    Embedding,
    RagAnswer,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Chat => "chat",
            CallKind::Completion => "completion",
            CallKind::Embedding => "embedding",
            CallKind::RagAnswer => "rag_answer",
        }
    }

    /// The call a route stands for (`None`: not an inference route).
    pub fn of_route(method: &str, path: &str) -> Option<Self> {
        if method != "POST" {
            return None;
        }
        match path {
            "/v1/chat/completions" => Some(CallKind::Chat),
            "/v1/completions" => Some(CallKind::Completion),
            "/v1/embeddings" => Some(CallKind::Embedding),
            p if p.starts_with("/v1/rag/knowledge_bases/") && p.ends_with("/answer") => {
                Some(CallKind::RagAnswer)
            }
            _ => None,
        }
    }
}

/// What services report while a call runs.
#[derive(Debug, Default, Clone)]
pub struct ProbeState {
    /// The model the call was answered by: the last one the request
    /// resolved (a RAG answer's chat model, after its embedding model), or
    /// the first one that booked usage.
    pub model: Option<String>,
    /// The tenant's deployment that answered, if any.
    pub deployment_id: Option<String>,
    /// Metered quantities by (model, meter), summed over everything the
    /// call booked.
    pub meters: Vec<(String, String, u64)>,
    /// The stream's first token.
    pub first_token: Option<Instant>,
    pub finish_reason: Option<String>,
    /// `hit`, `semantic-hit`, `miss`, `bypass`.
    pub cache: Option<&'static str>,
    /// An error that ended a stream after its 200 went out.
    pub error_type: Option<String>,
    /// The last user message (or the prompt), up to [`TEXT_CAP`].
    pub prompt: String,
    /// The answer, up to [`TEXT_CAP`].
    pub output: String,
    /// For RAG answers: the share of the answer's words found in the cited
    /// chunks.
    pub support: Option<f32>,
}

/// Shared by every clone of the caller's context.
#[derive(Debug, Clone, Default)]
pub struct Probe(Arc<Mutex<ProbeState>>);

fn push_capped(into: &mut String, text: &str) {
    let room = TEXT_CAP.saturating_sub(into.len());
    if room == 0 {
        return;
    }
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    into.push_str(&text[..end]);
}

impl Probe {
    fn state(&self) -> MutexGuard<'_, ProbeState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Usage booked for `model`: adds each meter's quantity.
    pub fn usage(&self, model: &str, parts: &[(&str, u32)]) {
        let mut s = self.state();
        if s.model.is_none() {
            s.model = Some(model.to_string());
        }
        for (meter, q) in parts {
            match s
                .meters
                .iter_mut()
                .find(|(md, m, _)| md == model && m == meter)
            {
                Some((_, _, total)) => *total += u64::from(*q),
                None => s
                    .meters
                    .push((model.to_string(), (*meter).to_string(), u64::from(*q))),
            }
        }
    }

    /// The request resolved `model` to answer it (the last one wins).
    pub fn resolve(&self, model: &str) {
        self.state().model = Some(model.to_string());
    }

    /// Quantity of `meter` over every model.
    pub fn total(state: &ProbeState, meter: &str) -> u64 {
        state
            .meters
            .iter()
            .filter(|(_, m, _)| m == meter)
            .map(|(_, _, q)| *q)
            .sum()
    }

    pub fn deployment(&self, id: &str) {
        self.state().deployment_id = Some(id.to_string());
    }

    pub fn prompt(&self, text: &str) {
        let mut s = self.state();
        s.prompt.clear();
        push_capped(&mut s.prompt, text);
    }

    /// Appends answer text (a whole answer, or a stream's next piece).
    pub fn output(&self, text: &str) {
        push_capped(&mut self.state().output, text);
    }

    /// A stream's token arrived (only the first counts).
    pub fn token(&self) {
        let mut s = self.state();
        if s.first_token.is_none() {
            s.first_token = Some(Instant::now());
        }
    }

    /// How the answer ended (at most 32 characters are kept).
    pub fn finish(&self, reason: &str) {
        self.state().finish_reason = Some(reason.chars().take(32).collect());
    }

    pub fn cache(&self, outcome: &'static str) {
        self.state().cache = Some(outcome);
    }

    pub fn error(&self, code: &str) {
        self.state().error_type = Some(code.chars().take(64).collect());
    }

    pub fn support(&self, share: f32) {
        self.state().support = Some(share);
    }

    pub fn snapshot(&self) -> ProbeState {
        self.state().clone()
    }
}

/// One inference call, as the monitoring service receives it.
#[derive(Debug, Clone)]
pub struct InferenceRecord {
    pub request_id: String,
    pub tenant_id: TenantId,
    /// The API key (`key_…`) or user (`usr_…`) that called.
    pub actor: String,
    pub kind: CallKind,
    pub status: u16,
    /// The problem's `code` of a failed call.
    pub error_type: Option<String>,
    pub started_at: DateTime<Utc>,
    pub latency_ms: f64,
    /// Streams only: until the first token.
    pub ttft_ms: Option<f64>,
    pub probe: ProbeState,
}

/// Where records go. `submit` must return at once: a full queue drops the
/// record (and counts it), it never slows inference down.
pub trait RecordSink: Send + Sync {
    fn submit(&self, record: InferenceRecord);
}

/// Share of the answer's content words (4+ letters) found in `sources`
/// (a RAG answer's cited chunks): how much of it the citations support.
/// `None` when the answer has no content words.
pub fn support(answer: &str, sources: &[&str]) -> Option<f32> {
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 4)
            .map(str::to_lowercase)
            .collect()
    };
    let known: std::collections::HashSet<String> = sources.iter().flat_map(|s| words(s)).collect();
    let said = words(answer);
    if said.is_empty() {
        return None;
    }
    let found = said.iter().filter(|w| known.contains(*w)).count();
    Some(found as f32 / said.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_capped_on_a_char_boundary() {
        let p = Probe::default();
        p.output(&"é".repeat(TEXT_CAP));
        let s = p.snapshot();
        assert!(s.output.len() <= TEXT_CAP);
        assert!(s.output.len() >= TEXT_CAP - 1);
        p.output("more");
        assert_eq!(p.snapshot().output.len(), s.output.len());
    }

    #[test]
    fn meters_add_up_and_the_first_model_stays() {
        let p = Probe::default();
        p.usage("a", &[("input_tokens", 3), ("requests", 1)]);
        p.usage("b", &[("input_tokens", 4)]);
        p.usage("a", &[("input_tokens", 1)]);
        let s = p.snapshot();
        assert_eq!(s.model.as_deref(), Some("a"));
        assert_eq!(
            s.meters,
            vec![
                ("a".into(), "input_tokens".into(), 4),
                ("a".into(), "requests".into(), 1),
                ("b".into(), "input_tokens".into(), 4)
            ]
        );
        assert_eq!(Probe::total(&s, "input_tokens"), 8);
        p.resolve("b");
        assert_eq!(p.snapshot().model.as_deref(), Some("b"));
    }

    #[test]
    fn routes() {
        assert_eq!(
            CallKind::of_route("POST", "/v1/chat/completions"),
            Some(CallKind::Chat)
        );
        assert_eq!(
            CallKind::of_route("POST", "/v1/rag/knowledge_bases/kb_1/answer"),
            Some(CallKind::RagAnswer)
        );
        assert_eq!(CallKind::of_route("GET", "/v1/chat/completions"), None);
        assert_eq!(CallKind::of_route("POST", "/v1/models"), None);
    }
}
