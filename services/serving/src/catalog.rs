//! Models every tenant may call: the operator's catalog (configuration) and,
//! with a Triton URL, the local models of `infra/triton`.

use crate::tokens::TokenCounter;
pub use llmops_core::config::CatalogEntry;
use llmops_core::secret::Secret;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Chat and text completions.
    Chat,
    Embedding,
}

/// Where a model runs.
#[derive(Debug, Clone)]
pub enum ModelBackend {
    /// A model on the configured Triton (gRPC).
    Triton { model: String },
    /// Any OpenAI-compatible HTTP server (vLLM, TGI, a hosted API).
    OpenAi {
        /// `{base_url}/chat/completions`, `/completions` and
        /// `/embeddings`, parsed once.
        chat_url: Box<reqwest::Url>,
        completions_url: Box<reqwest::Url>,
        embeddings_url: Box<reqwest::Url>,
        api_key: Option<Secret<String>>,
        model: String,
    },
}

/// A shared model published by the operator.
#[derive(Debug, Clone)]
pub struct CatalogModel {
    /// What clients pass as `model`.
    pub id: String,
    pub kind: ModelKind,
    pub backend: ModelBackend,
    /// Upper bound of prompt + completion tokens.
    pub context_tokens: u32,
    /// Vector size of an embedding model, when known.
    pub dimensions: Option<u32>,
    /// Models tried in order when this one's backend is unavailable.
    pub fallbacks: Vec<String>,
    /// Counts tokens when the backend reports none.
    pub counter: TokenCounter,
}

impl CatalogModel {
    pub fn is_triton(&self) -> bool {
        matches!(self.backend, ModelBackend::Triton { .. })
    }

    pub fn triton_model(&self) -> Option<&str> {
        match &self.backend {
            ModelBackend::Triton { model } => Some(model),
            ModelBackend::OpenAi { .. } => None,
        }
    }
}

/// A model of the configuration's catalog (`[[catalog]]` in `llmops.toml`).
pub fn from_entry(e: &CatalogEntry) -> Result<CatalogModel, String> {
    let kind = match e.kind.as_str() {
        "chat" => ModelKind::Chat,
        "embedding" => ModelKind::Embedding,
        other => return Err(format!("catalog `{}`: unknown kind `{other}`", e.id)),
    };
    let model = e.model.clone().unwrap_or_else(|| e.id.clone());
    let backend = match e.backend.as_str() {
        "triton" => ModelBackend::Triton { model },
        "openai" => {
            let base_url = e
                .base_url
                .clone()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .ok_or_else(|| format!("catalog `{}`: openai needs an http(s) base_url", e.id))?;
            let base_url = base_url.trim_end_matches('/');
            let url = |path: &str| {
                reqwest::Url::parse(&format!("{base_url}/{path}"))
                    .map(Box::new)
                    .map_err(|err| format!("catalog `{}`: base_url: {err}", e.id))
            };
            ModelBackend::OpenAi {
                chat_url: url("chat/completions")?,
                completions_url: url("completions")?,
                embeddings_url: url("embeddings")?,
                api_key: e.api_key.clone(),
                model,
            }
        }
        other => return Err(format!("catalog `{}`: unknown backend `{other}`", e.id)),
    };
    let counter = match &e.tokenizer {
        Some(path) => TokenCounter::load(path).map_err(|m| format!("catalog `{}`: {m}", e.id))?,
        None => TokenCounter::estimate(),
    };
    Ok(CatalogModel {
        id: e.id.clone(),
        kind,
        backend,
        context_tokens: e.context_tokens.unwrap_or(4096),
        dimensions: e.dimensions,
        fallbacks: e.fallbacks.clone(),
        counter,
    })
}

/// The whole catalog: the configured models, then (with a Triton) the local
/// ones not overridden by id; `tokenizers` (by model id) give models their
/// `tokenizer.json` where their entry names none.
pub fn build(
    entries: &[CatalogEntry],
    with_local: bool,
    tokenizers: &std::collections::BTreeMap<String, std::path::PathBuf>,
) -> Result<Vec<CatalogModel>, String> {
    let mut out = entries
        .iter()
        .map(from_entry)
        .collect::<Result<Vec<_>, _>>()?;
    if with_local {
        for m in local_models() {
            if !out.iter().any(|o| o.id == m.id) {
                out.push(m);
            }
        }
    }
    for (id, path) in tokenizers {
        let m = out
            .iter_mut()
            .find(|m| &m.id == id)
            .ok_or_else(|| format!("model_tokenizers: no catalog model `{id}`"))?;
        if m.counter.tokenizer().is_none() {
            m.counter = TokenCounter::load(path).map_err(|e| format!("model_tokenizers: {e}"))?;
        }
    }
    Ok(out)
}

/// The catalog of the local Triton repository (`infra/triton`).
pub fn local_models() -> Vec<CatalogModel> {
    vec![
        CatalogModel {
            id: "smollm2-135m-instruct".into(),
            kind: ModelKind::Chat,
            backend: ModelBackend::Triton {
                model: "smollm2-135m-instruct".into(),
            },
            context_tokens: 2048,
            dimensions: None,
            fallbacks: Vec::new(),
            counter: TokenCounter::estimate(),
        },
        CatalogModel {
            id: "all-minilm-l6-v2".into(),
            kind: ModelKind::Embedding,
            backend: ModelBackend::Triton {
                model: "all-minilm-l6-v2".into(),
            },
            context_tokens: 256,
            dimensions: Some(384),
            fallbacks: Vec::new(),
            counter: TokenCounter::estimate(),
        },
    ]
}
