//! What a request is cached under.
//!
//! - The **exact key** hashes the tenant, the namespace, the model, every
//!   message (role and text, whitespace runs collapsed) and every parameter
//!   that changes the output.
//! - The **partition** of the semantic level hashes all of that except the
//!   last user message: the same tenant, namespace, model, sampling
//!   parameters, system prompt and earlier turns. Only prompts of one
//!   partition are ever compared, and only by their last user message.

use sha2::{Digest, Sha256};

/// The parameters that change what a model answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sampling {
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<i64>,
    /// Sorted (their order changes nothing).
    pub stop: Vec<String>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
}

impl Sampling {
    /// Outputs that can be served again: greedy decoding, or a seed.
    pub fn reusable(&self) -> bool {
        self.temperature == 0.0 || self.seed.is_some()
    }
}

/// A chat request as the cache sees it.
#[derive(Debug, Clone)]
pub struct CacheRequest<'a> {
    pub model: &'a str,
    /// `(role, text)`; roles already normalised (`system`, `user`, `assistant`).
    pub turns: &'a [(String, String)],
    pub sampling: Sampling,
}

/// Collapses whitespace runs and trims: `"a \n b "` → `"a b"`.
pub fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Short, stable, file- and key-safe hash of a name.
pub fn name_hash(name: &str) -> String {
    hex::encode(&Sha256::digest(name.as_bytes())[..8])
}

fn hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so no two splits of the same bytes collide.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Where a request's entries are kept and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `<model hash>:<namespace hash>:<exact hash>` (the store adds the tenant).
    pub exact: String,
    pub model_hash: String,
    pub namespace_hash: String,
    /// The semantic partition and the last user message, when the request
    /// ends with one.
    pub semantic: Option<(String, String)>,
}

impl CacheRequest<'_> {
    pub fn keys(&self, tenant: &str, namespace: &str) -> Keys {
        let sampling = serde_json::to_vec(&self.sampling).unwrap_or_default();
        let turns: Vec<(String, String)> = self
            .turns
            .iter()
            .map(|(r, t)| (r.clone(), normalise(t)))
            .collect();
        let all = serde_json::to_vec(&turns).unwrap_or_default();
        let exact = hash(&[
            b"chat/v1",
            tenant.as_bytes(),
            namespace.as_bytes(),
            self.model.as_bytes(),
            &sampling,
            &all,
        ]);
        let semantic = match turns.split_last() {
            Some(((role, last), earlier)) if role == "user" && !last.is_empty() => {
                let earlier = serde_json::to_vec(earlier).unwrap_or_default();
                let partition = hash(&[
                    b"chat-partition/v1",
                    tenant.as_bytes(),
                    namespace.as_bytes(),
                    self.model.as_bytes(),
                    &sampling,
                    &earlier,
                ]);
                Some((partition, last.clone()))
            }
            _ => None,
        };
        let (model_hash, namespace_hash) = (name_hash(self.model), name_hash(namespace));
        Keys {
            exact: format!("{model_hash}:{namespace_hash}:{exact}"),
            model_hash,
            namespace_hash,
            semantic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling() -> Sampling {
        Sampling {
            max_tokens: 16,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
            stop: vec![],
            presence_penalty: None,
            frequency_penalty: None,
        }
    }

    #[test]
    fn keys_separate_what_changes_the_answer() {
        let turns = vec![
            ("system".to_string(), "Be brief.".to_string()),
            ("user".to_string(), "Hi  there ".to_string()),
        ];
        let req = CacheRequest {
            model: "m",
            turns: &turns,
            sampling: sampling(),
        };
        let k = req.keys("ten_a", "");
        // Whitespace runs do not matter; the tenant, namespace, model,
        // parameters and earlier turns do.
        let spaced = vec![
            turns[0].clone(),
            ("user".to_string(), "Hi there".to_string()),
        ];
        assert_eq!(
            CacheRequest {
                turns: &spaced,
                ..req.clone()
            }
            .keys("ten_a", ""),
            k
        );
        assert_ne!(req.keys("ten_b", "").exact, k.exact);
        assert_ne!(req.keys("ten_b", "").semantic, k.semantic);
        assert_ne!(req.keys("ten_a", "ns").exact, k.exact);
        assert_ne!(
            CacheRequest {
                model: "n",
                ..req.clone()
            }
            .keys("ten_a", "")
            .exact,
            k.exact
        );
        let mut hotter = sampling();
        hotter.max_tokens = 17;
        let other = CacheRequest {
            sampling: hotter,
            ..req.clone()
        }
        .keys("ten_a", "");
        assert_ne!(other.exact, k.exact);
        assert_ne!(other.semantic.unwrap().0, k.semantic.clone().unwrap().0);
        let other_system = vec![
            ("system".to_string(), "Be long.".to_string()),
            turns[1].clone(),
        ];
        let o = CacheRequest {
            turns: &other_system,
            ..req.clone()
        }
        .keys("ten_a", "");
        assert_ne!(o.semantic.unwrap().0, k.semantic.clone().unwrap().0);
        // Same partition for another last message.
        let other_last = vec![turns[0].clone(), ("user".to_string(), "Hello".to_string())];
        let o = CacheRequest {
            turns: &other_last,
            ..req.clone()
        }
        .keys("ten_a", "");
        assert_eq!(
            o.semantic.as_ref().unwrap().0,
            k.semantic.as_ref().unwrap().0
        );
        assert_ne!(o.exact, k.exact);
        assert_eq!(k.semantic.unwrap().1, "Hi there");
    }

    #[test]
    fn only_a_last_user_message_is_compared() {
        let turns = vec![("assistant".to_string(), "x".to_string())];
        let req = CacheRequest {
            model: "m",
            turns: &turns,
            sampling: sampling(),
        };
        assert!(req.keys("t", "").semantic.is_none());
    }
}
