//! Counting tokens in the gateway, for backends that do not report usage.
//!
//! A model's own tokenizer (a Hugging Face `tokenizer.json`, named by the
//! catalog entry's `tokenizer`) counts exactly what that tokenizer gives;
//! without one the count is an estimate (four bytes a token, rounded up).
//! Usage events say which of the three produced their numbers.

use std::path::Path;
use std::sync::Arc;

/// Where a call's token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    /// The backend reported them (Triton's model, an upstream's `usage`).
    Backend,
    /// Counted by the gateway with the model's tokenizer.
    Tokenizer,
    /// Estimated by the gateway (no tokenizer configured).
    Estimate,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Backend => "backend",
            UsageSource::Tokenizer => "gateway_tokenizer",
            UsageSource::Estimate => "gateway_estimate",
        }
    }
}

/// Framing tokens per chat message (start, role separator, end) and for the
/// assistant's reply header: the convention OpenAI documents for counting
/// chat tokens, applied with the model's own tokenizer.
const PER_MESSAGE: u32 = 3;
const REPLY_PRIMING: u32 = 3;

#[derive(Clone, Default)]
pub struct TokenCounter(Option<Arc<tokenizers::Tokenizer>>);

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "TokenCounter(tokenizer)"
        } else {
            "TokenCounter(estimate)"
        })
    }
}

impl TokenCounter {
    /// Loads a `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self, String> {
        tokenizers::Tokenizer::from_file(path)
            .map(|t| Self(Some(Arc::new(t))))
            .map_err(|e| format!("tokenizer {}: {e}", path.display()))
    }

    /// A counter that estimates.
    pub fn estimate() -> Self {
        Self(None)
    }

    /// The model's tokenizer, when it has one.
    pub fn tokenizer(&self) -> Option<Arc<tokenizers::Tokenizer>> {
        self.0.clone()
    }

    pub fn source(&self) -> UsageSource {
        if self.0.is_some() {
            UsageSource::Tokenizer
        } else {
            UsageSource::Estimate
        }
    }

    /// Tokens of `text` (without special tokens).
    pub fn count(&self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        match &self.0 {
            Some(t) => match t.encode_fast(text, false) {
                Ok(enc) => u32::try_from(enc.len()).unwrap_or(u32::MAX),
                Err(e) => {
                    tracing::warn!(error = %e, "tokenizer failed; estimating");
                    estimate(text)
                }
            },
            None => estimate(text),
        }
    }

    /// Tokens of a chat prompt: every message's role and content plus its
    /// framing, and the reply's header.
    pub fn count_chat(&self, turns: &[(String, String)]) -> u32 {
        turns
            .iter()
            .map(|(role, content)| {
                self.count(role)
                    .saturating_add(self.count(content))
                    .saturating_add(PER_MESSAGE)
            })
            .fold(REPLY_PRIMING, u32::saturating_add)
    }
}

/// Four bytes a token, rounded up.
fn estimate(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_round_up_and_chats_add_framing() {
        let c = TokenCounter::estimate();
        assert_eq!(c.source(), UsageSource::Estimate);
        assert_eq!(c.count(""), 0);
        assert_eq!(c.count("abcd"), 1);
        assert_eq!(c.count("abcde"), 2);
        // user (1) + "hello" (2) + 3, then 3 for the reply.
        assert_eq!(c.count_chat(&[("user".into(), "hello".into())]), 9);
    }

    #[test]
    fn a_missing_tokenizer_file_is_a_clear_error() {
        let e = TokenCounter::load(Path::new("/nonexistent/tokenizer.json"));
        assert!(matches!(e, Err(m) if m.contains("/nonexistent/tokenizer.json")));
    }
}
