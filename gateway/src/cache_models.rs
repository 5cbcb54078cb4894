//! The response cache's embedder when no weights are configured for the
//! in-process one: the served embedding model on Triton (platform
//! overhead, not billed to the tenant).

use llmops_cache::CacheError;
use llmops_serving::Serving;
use llmops_serving::catalog::{ModelBackend, ModelKind};

/// The embedding model the semantic level uses (the catalog's local one).
pub const CACHE_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

pub struct ServedEmbedder {
    serving: Serving,
    triton_model: String,
    dims: usize,
}

impl ServedEmbedder {
    /// The catalog's all-MiniLM-L6-v2 on Triton, when there is one.
    pub fn new(serving: &Serving) -> Option<Self> {
        let m = serving.catalog_model(CACHE_EMBEDDING_MODEL)?;
        if m.kind != ModelKind::Embedding {
            return None;
        }
        let ModelBackend::Triton { model } = &m.backend else {
            return None;
        };
        Some(Self {
            serving: serving.clone(),
            triton_model: model.clone(),
            dims: m.dimensions.map_or(384, |d| d as usize),
        })
    }
}

#[async_trait::async_trait]
impl llmops_cache::Embedder for ServedEmbedder {
    fn model(&self) -> &str {
        CACHE_EMBEDDING_MODEL
    }

    fn dims(&self) -> usize {
        self.dims
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, CacheError> {
        let triton = self
            .serving
            .triton()
            .ok_or_else(|| CacheError::Embedding("no triton_url".into()))?;
        let (mut vectors, _) = triton
            .embed(&self.triton_model, &[text.to_string()])
            .await
            .map_err(|e| CacheError::Embedding(e.to_string()))?;
        vectors
            .pop()
            .ok_or_else(|| CacheError::Embedding("no vector".into()))
    }
}

/// Monitoring's prompt samples are embedded by the same served model.
#[async_trait::async_trait]
impl llmops_monitoring::PromptEmbedder for ServedEmbedder {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let triton = self.serving.triton().ok_or("no triton_url")?;
        let (vectors, _) = triton
            .embed(&self.triton_model, texts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(vectors)
    }
}
