//! Serving as RAG's models: embeddings and chat completions of the
//! tenant's, metered and budgeted like any other call, and the catalog's
//! facts (vector sizes, context, tokenizers).

use actix_web::web::Data;
use futures_util::StreamExt;
use llmops_core::{ApiError, ApiResult, TenantCtx};
use llmops_rag::models::{
    ChatModel, EmbeddingModel, Generated, GenerationEvent, Models, TextStream,
};
use llmops_serving::Serving;
use llmops_serving::catalog::{CatalogModel, ModelKind};
use llmops_serving::openai::{ChatCompletionRequest, EmbeddingRequest, EmbeddingVector};
use llmops_serving::service::Reply;

pub struct ServingModels(pub Data<Serving>);

fn embedding(m: &CatalogModel) -> Option<EmbeddingModel> {
    (m.kind == ModelKind::Embedding).then_some(())?;
    Some(EmbeddingModel {
        id: m.id.clone(),
        dimensions: usize::try_from(m.dimensions?).ok()?,
        max_tokens: usize::try_from(m.context_tokens).unwrap_or(512),
        tokenizer: m.counter.tokenizer(),
    })
}

fn chat_request(
    model: &str,
    messages: Vec<(String, String)>,
    max_tokens: u32,
    temperature: f32,
    stream: bool,
) -> ApiResult<ChatCompletionRequest> {
    let messages: Vec<serde_json::Value> = messages
        .into_iter()
        .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
        .collect();
    let mut req = serde_json::json!({
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stream": stream,
    });
    if stream {
        req["stream_options"] = serde_json::json!({"include_usage": true});
    }
    serde_json::from_value(req).map_err(ApiError::internal)
}

/// Turns serving's OpenAI server-sent events into text deltas and a final
/// usage.
struct SseText {
    /// Bytes of an event not complete yet (a character may be split
    /// between network chunks: decoded only once the event is whole).
    buf: Vec<u8>,
    text: String,
    usage: (u32, u32),
}

impl SseText {
    /// Complete events in `bytes`: deltas, and `true` once `[DONE]` came.
    fn feed(&mut self, bytes: &[u8]) -> (Vec<String>, bool) {
        self.buf.extend_from_slice(bytes);
        let mut deltas = Vec::new();
        let mut done = false;
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&raw);
            for line in event.lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    done = true;
                    continue;
                }
                let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                if let Some(d) = v["choices"][0]["delta"]["content"].as_str()
                    && !d.is_empty()
                {
                    self.text.push_str(d);
                    deltas.push(d.to_string());
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    let n = |k: &str| {
                        u[k].as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .unwrap_or(0)
                    };
                    self.usage = (n("prompt_tokens"), n("completion_tokens"));
                }
            }
        }
        (deltas, done)
    }
}

#[async_trait::async_trait]
impl Models for ServingModels {
    fn embedding_model(&self, id: &str) -> Option<EmbeddingModel> {
        self.0.catalog_model(id).and_then(embedding)
    }

    fn embedding_models(&self) -> Vec<EmbeddingModel> {
        self.0.catalog().iter().filter_map(embedding).collect()
    }

    async fn chat_model(&self, ctx: &TenantCtx, id: &str) -> ApiResult<ChatModel> {
        let models = self.0.models(ctx).await?;
        if !models.data.iter().any(|m| m.id == id) {
            return Err(ApiError::not_found(format!(
                "model `{}`",
                id.chars().take(128).collect::<String>()
            )));
        }
        Ok(match self.0.catalog_model(id) {
            Some(m) if m.kind == ModelKind::Chat => ChatModel {
                id: m.id.clone(),
                context_tokens: usize::try_from(m.context_tokens).unwrap_or(2048),
                tokenizer: m.counter.tokenizer(),
            },
            Some(_) => {
                return Err(ApiError::validation(
                    "model",
                    format!("`{id}` is not a chat model"),
                ));
            }
            // A deployment: serving's own default context, counted by
            // estimate.
            None => ChatModel {
                id: id.to_string(),
                context_tokens: 2048,
                tokenizer: None,
            },
        })
    }

    async fn embed(
        &self,
        ctx: &TenantCtx,
        model: &str,
        texts: Vec<String>,
    ) -> ApiResult<(Vec<Vec<f32>>, u32)> {
        let req: EmbeddingRequest =
            serde_json::from_value(serde_json::json!({"model": model, "input": texts}))
                .map_err(ApiError::internal)?;
        let (list, _) = self.0.embed(ctx, req).await?;
        let vectors = list
            .data
            .into_iter()
            .map(|e| match e.embedding {
                EmbeddingVector::Float(v) => Ok(v),
                EmbeddingVector::Base64(_) => Err(ApiError::UpstreamFailed(
                    "serving answered base64 embeddings".into(),
                )),
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok((vectors, list.usage.total_tokens))
    }

    async fn chat(
        &self,
        ctx: &TenantCtx,
        model: &str,
        messages: Vec<(String, String)>,
        max_tokens: u32,
        temperature: f32,
    ) -> ApiResult<Generated> {
        let req = chat_request(model, messages, max_tokens, temperature, false)?;
        match self.0.chat(ctx, req).await? {
            Reply::Full(c, _) => Ok(Generated {
                text: c
                    .choices
                    .into_iter()
                    .next()
                    .map(|c| c.message.content)
                    .unwrap_or_default(),
                prompt_tokens: c.usage.prompt_tokens,
                completion_tokens: c.usage.completion_tokens,
            }),
            Reply::Stream(..) => Err(ApiError::Internal(
                "serving streamed a request that did not ask for a stream".into(),
            )),
        }
    }

    async fn chat_stream(
        &self,
        ctx: &TenantCtx,
        model: &str,
        messages: Vec<(String, String)>,
        max_tokens: u32,
        temperature: f32,
    ) -> ApiResult<TextStream> {
        let req = chat_request(model, messages, max_tokens, temperature, true)?;
        let body = match self.0.chat(ctx, req).await? {
            Reply::Stream(s, _) => s,
            Reply::Full(..) => {
                return Err(ApiError::Internal(
                    "serving answered a stream request whole".into(),
                ));
            }
        };
        let parser = SseText {
            buf: Vec::new(),
            text: String::new(),
            usage: (0, 0),
        };
        let events = futures_util::stream::unfold(
            (body, parser, std::collections::VecDeque::new(), false),
            |(mut body, mut parser, mut pending, finished)| async move {
                loop {
                    if let Some(ev) = pending.pop_front() {
                        return Some((Ok(ev), (body, parser, pending, finished)));
                    }
                    if finished {
                        return None;
                    }
                    match body.next().await {
                        Some(Ok(bytes)) => {
                            let (deltas, done) = parser.feed(&bytes);
                            pending.extend(deltas.into_iter().map(GenerationEvent::Delta));
                            if done {
                                pending.push_back(GenerationEvent::Done(Generated {
                                    text: parser.text.clone(),
                                    prompt_tokens: parser.usage.0,
                                    completion_tokens: parser.usage.1,
                                }));
                                return pending
                                    .pop_front()
                                    .map(|ev| (Ok(ev), (body, parser, pending, true)));
                            }
                        }
                        Some(Err(e)) => return Some((Err(e), (body, parser, pending, true))),
                        None => {
                            return Some((
                                Err(ApiError::UpstreamFailed(
                                    "the model's stream ended early".into(),
                                )),
                                (body, parser, pending, true),
                            ));
                        }
                    }
                }
            },
        );
        Ok(Box::pin(events))
    }
}
