//! Chat completions and the response cache: storing a completed answer,
//! and answering from a cached one (as JSON, or replayed as server-sent
//! events), billed as cached tokens.

use crate::catalog::CatalogModel;
use crate::openai::*;
use crate::service::{CacheOutcome, Reply, Serving};
use crate::settlement::{openai_finish, sse};
use bytes::Bytes;
use llmops_cache::{Entry, SemanticCache, Status, Ticket};
use llmops_core::usage::Meter;
use llmops_core::{ApiResult, TenantCtx};
use tokio_util::task::TaskTracker;

/// Stores an answer once it completed (in the background: the client
/// does not wait for the cache).
pub(crate) struct Keeper {
    pub(crate) cache: Option<SemanticCache>,
    pub(crate) ticket: Ticket,
    pub(crate) model: String,
    pub(crate) tasks: TaskTracker,
}

impl Keeper {
    pub(crate) fn keep(self, text: &str, finish: &str, prompt_tokens: u32, completion_tokens: u32) {
        let Some(cache) = self.cache else { return };
        let entry = Entry {
            model: self.model,
            text: text.to_string(),
            finish_reason: openai_finish(finish),
            prompt_tokens,
            completion_tokens,
            created_at: chrono::Utc::now().timestamp(),
            expires_at: 0,
        };
        let ticket = self.ticket;
        self.tasks.spawn(async move {
            if let Err(e) = cache.store(ticket, entry).await {
                tracing::warn!(error = %e, "answer not cached");
            }
        });
    }
}

/// A request answered from the cache.
pub(crate) struct Replay<'a> {
    pub(crate) id: String,
    pub(crate) model: CatalogModel,
    pub(crate) turns: &'a [(String, String)],
    pub(crate) status: Status,
    pub(crate) similarity: Option<f32>,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
}

/// Splits a text into stream deltas of about `size` bytes, at character
/// boundaries, preferring the end of a word.
fn deltas(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() <= size {
            out.push(rest);
            break;
        }
        let mut cut = size;
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        if let Some(space) = rest[..cut].rfind(' ').filter(|i| *i > 0) {
            cut = space + 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

impl Serving {
    /// Answers from a cached entry: books `cached_input_tokens` and
    /// `cached_output_tokens` (never the model's token meters, never the
    /// tokens-per-minute budget, which counts generated tokens only) and
    /// reports in `usage` what the call would have cost and what it saved.
    pub(crate) async fn replay(
        &self,
        ctx: &TenantCtx,
        r: Replay<'_>,
        entry: Entry,
    ) -> ApiResult<(Reply<ChatCompletion>, Option<CacheOutcome>)> {
        // An exact hit's prompt is the cached one; a semantic hit's is this
        // request's own, counted as the model counts it.
        let prompt_tokens = match r.status {
            Status::SemanticHit => r.model.counter.count_chat(r.turns),
            _ => entry.prompt_tokens,
        };
        let completion_tokens = entry.completion_tokens;
        self.record_with(
            ctx,
            &r.id,
            &r.model.id,
            &[("cache", r.status.as_str())],
            &[
                (Meter::CACHED_INPUT_TOKENS, prompt_tokens),
                (Meter::CACHED_OUTPUT_TOKENS, completion_tokens),
                (Meter::REQUESTS, 1),
            ],
        )
        .await;
        metrics::counter!("llm_cache_served_tokens_total", "model" => r.model.id.clone())
            .increment(u64::from(completion_tokens));
        let (p, c) = (u64::from(prompt_tokens), u64::from(completion_tokens));
        let quotes = match &self.inner().spend_guard {
            Some(g) => {
                g.quote(
                    ctx,
                    &r.model.id,
                    &[
                        &[(Meter::INPUT_TOKENS, p), (Meter::OUTPUT_TOKENS, c)],
                        &[
                            (Meter::CACHED_INPUT_TOKENS, p),
                            (Meter::CACHED_OUTPUT_TOKENS, c),
                        ],
                    ],
                )
                .await
            }
            None => Vec::new(),
        };
        let mut quotes = quotes.into_iter();
        let (list, charged) = (quotes.next().flatten(), quotes.next().flatten());
        let currency = list
            .as_ref()
            .or(charged.as_ref())
            .map(|q| q.currency.clone());
        let (list, charged) = (
            list.map(|q| q.minor),
            currency.as_ref().map(|_| charged.map_or(0.0, |q| q.minor)),
        );
        let usage = Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: prompt_tokens,
            }),
            llmops_cache: Some(CacheUsage {
                status: r.status.as_str().to_string(),
                similarity: r.similarity,
                cached_input_tokens: prompt_tokens,
                cached_output_tokens: completion_tokens,
                currency,
                list_cost_minor: list,
                charged_minor: charged,
                saved_minor: list.map(|l| l - charged.unwrap_or(0.0)),
            }),
        };
        let outcome = Some(CacheOutcome {
            status: r.status,
            similarity: r.similarity,
        });
        let created = chrono::Utc::now().timestamp();
        let finish = entry.finish_reason.clone();
        if let Some(p) = ctx.probe() {
            p.output(&entry.text);
            p.finish(&finish);
        }
        if !r.stream {
            let body = ChatCompletion {
                id: r.id,
                object: "chat.completion",
                created,
                model: r.model.id,
                choices: vec![ChatChoice {
                    index: 0,
                    message: AssistantMessage {
                        role: "assistant",
                        content: entry.text,
                    },
                    finish_reason: finish,
                    logprobs: None,
                }],
                usage,
            };
            return Ok((Reply::Full(body, None), outcome));
        }
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            serde_json::json!({
                "id": r.id, "object": "chat.completion.chunk", "created": created, "model": r.model.id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
            })
        };
        let mut out = Vec::new();
        out.extend_from_slice(&sse(&chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        )));
        for piece in deltas(&entry.text, 24) {
            out.extend_from_slice(&sse(&chunk(serde_json::json!({"content": piece}), None)));
        }
        out.extend_from_slice(&sse(&chunk(serde_json::json!({}), Some(&finish))));
        if r.include_usage {
            let mut last = chunk(serde_json::json!({}), None);
            last["choices"] = serde_json::json!([]);
            last["usage"] = serde_json::to_value(&usage).unwrap_or_default();
            out.extend_from_slice(&sse(&last));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        let body = futures_util::stream::iter([Ok(Bytes::from(out))]);
        Ok((Reply::Stream(Box::pin(body), None), outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::deltas;

    #[test]
    fn deltas_cover_the_text_at_char_boundaries() {
        let text = "Größe: the quick brown fox jumps over the lazy dog — ünïcödé 🦀 done";
        let parts = deltas(text, 7);
        assert_eq!(parts.concat(), text);
        assert!(parts.len() > 3);
        assert!(deltas("", 7).is_empty());
    }
}
