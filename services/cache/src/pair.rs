//! The pair classifier: the semantic level's verifier.
//!
//! all-MiniLM-L6-v2 fine-tuned as a cross-encoder: it reads the new prompt
//! and the cached one in one pass (`[CLS] new [SEP] cached [SEP]`, token
//! types 0 and 1), so attention compares the two prompts word by word,
//! which a bi-encoder's two vectors cannot; a linear head over the mean of
//! the last layer's states gives the probability that the cached prompt's
//! answer answers the new prompt. Only a LoRA adapter is shipped
//! (`pair.safetensors`, rank 16 on every linear layer, the layer norms and
//! the head, 2.7 MB); it is merged into the same base weights the embedder
//! loads. It was trained on this CPU with `train/pair_classifier.py` on the
//! training pair sets and labelled neighbours of `tests/corpus/cache`; the
//! threshold it carries was chosen on a validation split before any
//! held-out set was scored (`benches/README.md` has the figures).
//!
//! It runs only on a candidate that passed the cosine floor and the
//! guard's hard rules: one pass over both prompts, about as long as
//! embedding them both.

use crate::CacheError;
use crate::embed::load_model;
use llmops_encoder::{Bert, Precision};
use std::path::Path;

/// The adapter, the head (`head.weight`, `head.bias`) and the threshold.
static ADAPTER: &[u8] = include_bytes!("pair.safetensors");

/// Longest pair in tokens, as in training (the longer prompt is cut
/// first).
const MAX_TOKENS: usize = 128;

fn model_err(e: impl std::fmt::Display) -> CacheError {
    CacheError::Embedding(format!("pair classifier: {e}"))
}

pub struct PairClassifier {
    model: Bert,
    tokenizer: tokenizers::Tokenizer,
    head: Vec<f32>,
    bias: f32,
    /// Served from this probability up.
    pub threshold: f32,
}

impl std::fmt::Debug for PairClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairClassifier")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl PairClassifier {
    /// The shipped adapter over the base model in `dir` (`config.json`,
    /// `model.safetensors`, `tokenizer.json`: the embedder's files).
    pub fn load(dir: &Path, precision: Precision) -> Result<Self, CacheError> {
        Self::load_adapter(dir, ADAPTER, precision)
    }

    pub fn load_adapter(
        dir: &Path,
        adapter: &[u8],
        precision: Precision,
    ) -> Result<Self, CacheError> {
        let (model, tokenizer) = load_model(dir, Some(adapter), precision, MAX_TOKENS)?;
        let hidden = model.config().hidden;
        let scalar = |name: &str| {
            llmops_encoder::read_f32(adapter, name, &[1])
                .map(|v| v[0])
                .map_err(model_err)
        };
        let head =
            llmops_encoder::read_f32(adapter, "head.weight", &[hidden]).map_err(model_err)?;
        let (bias, threshold) = (scalar("head.bias")?, scalar("threshold")?);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(model_err(format!("threshold {threshold}")));
        }
        Ok(Self {
            model,
            tokenizer,
            head,
            bias,
            threshold,
        })
    }

    /// The probability that `cached`'s answer answers `new` (blocking: one
    /// encoder pass over both prompts).
    pub fn probability(&self, new: &str, cached: &str) -> Result<f32, CacheError> {
        let enc = self
            .tokenizer
            .encode((new, cached), true)
            .map_err(model_err)?;
        let hidden = self
            .model
            .forward_typed(enc.get_ids(), Some(enc.get_type_ids()))
            .map_err(model_err)?;
        let dims = self.head.len();
        let rows = (hidden.len() / dims).max(1) as f32;
        let mut pooled = vec![0.0f32; dims];
        for row in hidden.chunks_exact(dims) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        let z = self.bias
            + pooled
                .iter()
                .zip(&self.head)
                .map(|(p, w)| p / rows * w)
                .sum::<f32>();
        let p = 1.0 / (1.0 + (-z).exp());
        if p.is_finite() {
            Ok(p)
        } else {
            Err(model_err("not a number"))
        }
    }

    /// Whether the candidate is served: any error is a no.
    pub fn accepts(&self, new: &str, cached: &str) -> bool {
        self.probability(new, cached)
            .is_ok_and(|p| p >= self.threshold)
    }
}
