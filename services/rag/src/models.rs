//! What RAG needs from serving, as a trait the gateway implements over the
//! serving service (so that this crate does not depend on it): embeddings,
//! chat, and the models' facts (vector size, context, tokenizers). Calls are
//! made with the caller's context, so they are metered and budgeted as the
//! tenant's own.

use llmops_core::{ApiResult, TenantCtx};
use std::sync::Arc;

/// An embedding model of the catalog.
#[derive(Clone)]
pub struct EmbeddingModel {
    pub id: String,
    pub dimensions: usize,
    /// Longest input, in the model's tokens (special tokens included).
    pub max_tokens: usize,
    pub tokenizer: Option<Arc<tokenizers::Tokenizer>>,
}

/// A chat model the tenant may call.
#[derive(Clone)]
pub struct ChatModel {
    pub id: String,
    pub context_tokens: usize,
    /// Its tokenizer, when configured; token counts are estimated (a
    /// generous 3 bytes a token) without one.
    pub tokenizer: Option<Arc<tokenizers::Tokenizer>>,
}

impl ChatModel {
    pub fn count(&self, text: &str) -> usize {
        match &self.tokenizer {
            Some(t) => t
                .encode_fast(text, false)
                .map(|e| e.len())
                .unwrap_or(text.len() / 3 + 1),
            None => text.len() / 3 + 1,
        }
    }
}

/// A generation.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// Text deltas of a streamed generation, then its usage.
pub type TextStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = ApiResult<GenerationEvent>> + 'static>>;

#[derive(Debug, Clone)]
pub enum GenerationEvent {
    Delta(String),
    Done(Generated),
}

#[async_trait::async_trait]
pub trait Models: Send + Sync {
    /// A catalog embedding model, with its vector size known.
    fn embedding_model(&self, id: &str) -> Option<EmbeddingModel>;
    /// Every catalog embedding model whose vector size is known.
    fn embedding_models(&self) -> Vec<EmbeddingModel>;
    /// A chat model the tenant may call (the catalog's or its deployments),
    /// 404 otherwise.
    async fn chat_model(&self, ctx: &TenantCtx, id: &str) -> ApiResult<ChatModel>;
    /// Embeddings of `texts`, in order, and the tokens billed.
    async fn embed(
        &self,
        ctx: &TenantCtx,
        model: &str,
        texts: Vec<String>,
    ) -> ApiResult<(Vec<Vec<f32>>, u32)>;
    /// A chat completion of `messages` (`(role, content)`).
    async fn chat(
        &self,
        ctx: &TenantCtx,
        model: &str,
        messages: Vec<(String, String)>,
        max_tokens: u32,
        temperature: f32,
    ) -> ApiResult<Generated>;
    /// The same, streamed.
    async fn chat_stream(
        &self,
        ctx: &TenantCtx,
        model: &str,
        messages: Vec<(String, String)>,
        max_tokens: u32,
        temperature: f32,
    ) -> ApiResult<TextStream>;
}
