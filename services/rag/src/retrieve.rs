//! Retrieval (`query`) and grounded answers (`answer`).

use crate::api::{
    Answer, AnswerRequest, AnswerUsage, ChunkHit, Citation, Fusion, QueryRequest, QueryResponse,
    QueryUsage, Ranking,
};
use crate::entities::{document as doc, knowledge_base as kb};
use crate::models::{ChatModel, GenerationEvent, TextStream};
use crate::service::{Rag, kb_filter, key, vector_err};
use futures_util::StreamExt;
use llmops_core::usage::{Meter, UsageEvent};
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use llmops_vectors::{Cond, Filter, Hit, Query};
use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
use std::collections::{BTreeMap, HashMap};

/// What the answer says when nothing relevant was found.
pub const NOTHING_RELEVANT: &str =
    "I could not find anything relevant to this question in the knowledge base.";

const DEFAULT_ANSWER_THRESHOLD: f32 = 0.25;

/// The instruction the chat model gets.
const SYSTEM: &str = "Answer the question using only the numbered sources. Cite the sources you use as [1], [2]. If the sources do not contain the answer, say that you do not know.";

/// A retrieval's parameters, shared by `query` and `answer`.
struct Retrieval<'a> {
    text: &'a str,
    top_k: usize,
    ranking: Ranking,
    fusion: Fusion,
    filter: Option<&'a serde_json::Value>,
    document_ids: Option<&'a [String]>,
    score_threshold: Option<f32>,
    /// Keep only chunks whose dense similarity reaches this (answers).
    relevance: Option<f32>,
}

fn ranking(r: Ranking) -> llmops_vectors::Ranking {
    match r {
        Ranking::Hybrid => llmops_vectors::Ranking::Hybrid,
        Ranking::Dense => llmops_vectors::Ranking::Dense,
        Ranking::Sparse => llmops_vectors::Ranking::Sparse,
    }
}

fn as_u32(v: Option<&serde_json::Value>) -> u32 {
    v.and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

fn hit_view(h: Hit) -> ChunkHit {
    let p = &h.payload;
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    ChunkHit {
        chunk_id: llmops_vectors::id_text(h.id),
        document_id: s(key::DOC),
        external_id: p
            .get(key::EXTERNAL)
            .and_then(|v| v.as_str())
            .map(str::to_string),
        chunk_index: as_u32(p.get(key::INDEX)),
        score: h.score,
        text: s(key::TEXT),
        start: as_u32(p.get(key::START)),
        end: as_u32(p.get(key::END)),
        section: s(key::SECTION),
        metadata: p
            .get(crate::filter::METADATA)
            .and_then(|m| m.as_object())
            .cloned()
            .unwrap_or_default(),
    }
}

impl Rag {
    /// Retrieves chunks of the knowledge base; returns them and the query's
    /// embedding tokens.
    async fn retrieve(
        &self,
        ctx: &TenantCtx,
        kb: &kb::Model,
        r: Retrieval<'_>,
    ) -> ApiResult<(Vec<ChunkHit>, u32)> {
        let model = self.embedding(&kb.embedding_model)?;
        let coll = self.collection(&model).await?;
        let mut must = vec![kb_filter(&kb.id)];
        if let Some(f) = r.filter {
            must.push(Cond::Nested(crate::filter::parse(f)?));
        }
        if let Some(ids) = r.document_ids {
            if ids.is_empty() || ids.len() > 100 {
                return Err(ApiError::validation(
                    "document_ids",
                    "1 to 100 document ids",
                ));
            }
            must.push(Cond::AnyKeyword {
                key: key::DOC.into(),
                values: ids.to_vec(),
            });
        }
        let (vectors, tokens) = self
            .0
            .models
            .embed(
                &ctx.delegate(Scope::Inference),
                &model.id,
                vec![r.text.to_string()],
            )
            .await?;
        let dense = vectors
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::UpstreamFailed("serving returned no embedding".into()))?;
        // A few more than asked: chunks of a version being replaced are
        // dropped below.
        let limit = r.top_k + 8;
        let scope = coll.scoped(ctx);
        // The query's terms weighted by their IDF in this knowledge base.
        let n: Option<i64> = ctx
            .scoped()
            .find::<doc::Entity>()
            .filter(doc::Column::KbId.eq(kb.id.clone()))
            .filter(doc::Column::Status.ne("deleting"))
            .select_only()
            .column_as(doc::Column::ChunkCount.sum(), "n")
            .into_tuple()
            .one(&self.0.db)
            .await
            .map_err(ApiError::internal)?
            .flatten();
        let n = n.unwrap_or(0);
        let asked = self.0.lexical.query(r.text).indices;
        let df = crate::terms::frequencies(&self.0.db, ctx.tenant_id(), &kb.id, &asked)
            .await
            .map_err(ApiError::internal)?;
        let sparse = self
            .0
            .lexical
            .weighted(r.text, |t| df.get(&t).map(|d| crate::terms::idf(n, *d)));
        let query = Query {
            dense,
            sparse,
            ranking: ranking(r.ranking),
            fusion: match r.fusion {
                Fusion::Dbsf => llmops_vectors::Fusion::Dbsf,
                Fusion::Rrf => llmops_vectors::Fusion::Rrf,
            },
            filter: Filter::must(must),
            limit,
            prefetch: (limit * 4).max(40),
            score_threshold: r.score_threshold,
        };
        // Relevance is the embedding's: a lexical match alone (a shared
        // word) does not make a chunk relevant to a question.
        let relevant: Option<std::collections::HashSet<u128>> = match r.relevance {
            Some(t) => {
                let gate = Query {
                    ranking: llmops_vectors::Ranking::Dense,
                    score_threshold: Some(t),
                    limit: query.prefetch,
                    ..query.clone()
                };
                Some(
                    scope
                        .query(gate)
                        .await
                        .map_err(vector_err)?
                        .into_iter()
                        .map(|h| h.id)
                        .collect(),
                )
            }
            None => None,
        };
        let mut hits = scope.query(query).await.map_err(vector_err)?;
        if let Some(relevant) = relevant {
            hits.retain(|h| relevant.contains(&h.id));
        }
        let live = self.live_versions(ctx, &hits).await?;
        let out = hits
            .into_iter()
            .filter(|h| {
                let d = h.payload.get(key::DOC).and_then(|v| v.as_str());
                let v = h.payload.get(key::VERSION).and_then(serde_json::Value::as_i64);
                matches!((d.and_then(|d| live.get(d)), v), (Some(live), Some(v)) if i64::from(*live) == v)
            })
            .take(r.top_k)
            .map(hit_view)
            .collect();
        Ok((out, tokens))
    }

    /// The version readers see of each document among the hits (documents
    /// being deleted have none).
    async fn live_versions(
        &self,
        ctx: &TenantCtx,
        hits: &[Hit],
    ) -> ApiResult<HashMap<String, i32>> {
        let ids: Vec<String> = hits
            .iter()
            .filter_map(|h| {
                h.payload
                    .get(key::DOC)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = ctx
            .scoped()
            .find::<doc::Entity>()
            .filter(doc::Column::Id.is_in(ids))
            .filter(doc::Column::Status.ne("deleting"))
            .all(&self.0.db)
            .await
            .map_err(ApiError::internal)?;
        Ok(rows.into_iter().map(|d| (d.id, d.version)).collect())
    }

    async fn record_query(&self, ctx: &TenantCtx, id: &str, kb: &kb::Model) {
        let event = UsageEvent {
            id: format!("{id}:{}", Meter::RAG_QUERIES),
            tenant_id: ctx.tenant_id(),
            meter: match Meter::new(Meter::RAG_QUERIES) {
                Ok(m) => m,
                Err(_) => return,
            },
            quantity: 1,
            dimensions: BTreeMap::from([("embedding_model".into(), kb.embedding_model.clone())]),
            occurred_at: chrono::Utc::now(),
        };
        if let Err(e) = self.0.usage.submit(vec![event]).await {
            tracing::error!(error = %e, "rag query not metered");
        }
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn query(
        &self,
        ctx: &TenantCtx,
        kb: &str,
        req: QueryRequest,
    ) -> ApiResult<QueryResponse> {
        ctx.require(Scope::Rag)?;
        let kb = self.find_kb(ctx, kb).await?;
        check_text("query", &req.query)?;
        let top_k = req.top_k.unwrap_or(5);
        if !(1..=50).contains(&top_k) {
            return Err(ApiError::validation("top_k", "1 to 50"));
        }
        check_threshold(req.score_threshold)?;
        let rank = req.ranking.unwrap_or(Ranking::Hybrid);
        let fusion = req.fusion.unwrap_or(Fusion::Dbsf);
        let (data, tokens) = self
            .retrieve(
                ctx,
                &kb,
                Retrieval {
                    text: &req.query,
                    top_k: top_k as usize,
                    ranking: rank,
                    fusion,
                    filter: req.filter.as_ref(),
                    document_ids: req.document_ids.as_deref(),
                    score_threshold: req.score_threshold,
                    relevance: None,
                },
            )
            .await?;
        let id = format!("rq_{}", ulid::Ulid::new().to_string().to_lowercase());
        self.record_query(ctx, &id, &kb).await;
        Ok(QueryResponse {
            object: "list",
            data,
            ranking: rank,
            fusion: (rank == Ranking::Hybrid).then_some(fusion),
            embedding_model: kb.embedding_model,
            usage: QueryUsage {
                embedding_tokens: tokens,
            },
        })
    }

    /// Retrieves, fits the chunks into the chat model's context, and
    /// returns the prompt messages with the citations they carry.
    async fn prepare_answer(
        &self,
        ctx: &TenantCtx,
        kb: &str,
        req: &AnswerRequest,
    ) -> ApiResult<Prepared> {
        ctx.require(Scope::Rag)?;
        let kb = self.find_kb(ctx, kb).await?;
        check_text("question", &req.question)?;
        let top_k = req.top_k.unwrap_or(4);
        if !(1..=20).contains(&top_k) {
            return Err(ApiError::validation("top_k", "1 to 20"));
        }
        let max_tokens = req.max_tokens.unwrap_or(256);
        if !(1..=1024).contains(&max_tokens) {
            return Err(ApiError::validation("max_tokens", "1 to 1024"));
        }
        let temperature = req.temperature.unwrap_or(0.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::validation("temperature", "0 to 2"));
        }
        check_threshold(req.score_threshold)?;
        if req.model.is_empty() || req.model.len() > 128 {
            return Err(ApiError::validation("model", "1 to 128 characters"));
        }
        let chat = self
            .0
            .models
            .chat_model(&ctx.delegate(Scope::Inference), &req.model)
            .await?;
        let (hits, embedding_tokens) = self
            .retrieve(
                ctx,
                &kb,
                Retrieval {
                    text: &req.question,
                    top_k: top_k as usize,
                    ranking: req.ranking.unwrap_or(Ranking::Hybrid),
                    fusion: req.fusion.unwrap_or(Fusion::Dbsf),
                    filter: req.filter.as_ref(),
                    document_ids: None,
                    score_threshold: None,
                    relevance: Some(req.score_threshold.unwrap_or(DEFAULT_ANSWER_THRESHOLD)),
                },
            )
            .await?;
        let id = format!("ans_{}", ulid::Ulid::new().to_string().to_lowercase());
        self.record_query(ctx, &id, &kb).await;
        let (messages, citations) = assemble(&chat, &req.question, hits, max_tokens)?;
        let probe = ctx.probe().cloned();
        if let Some(p) = &probe {
            p.prompt(&req.question);
        }
        Ok(Prepared {
            probe,
            id,
            chat,
            messages,
            citations,
            embedding_tokens,
            max_tokens,
            temperature,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn answer(&self, ctx: &TenantCtx, kb: &str, req: AnswerRequest) -> ApiResult<Answer> {
        let p = self.prepare_answer(ctx, kb, &req).await?;
        if p.citations.is_empty() {
            return Ok(p.ungrounded());
        }
        let g = self
            .0
            .models
            .chat(
                &ctx.delegate(Scope::Inference),
                &p.chat.id,
                p.messages.clone(),
                p.max_tokens,
                p.temperature,
            )
            .await?;
        Ok(p.finish(g.text, g.prompt_tokens, g.completion_tokens))
    }

    /// The same answer as server-sent events: `citations`, `delta`s, `done`
    /// (the whole answer object).
    pub async fn answer_stream(
        &self,
        ctx: &TenantCtx,
        kb: &str,
        req: AnswerRequest,
    ) -> ApiResult<futures_util::stream::LocalBoxStream<'static, Result<bytes::Bytes, ApiError>>>
    {
        let p = self.prepare_answer(ctx, kb, &req).await?;
        let head = sse(
            "citations",
            &serde_json::json!({"id": p.id, "citations": p.citations}),
        );
        if p.citations.is_empty() {
            let done = sse("done", &p.ungrounded());
            return Ok(futures_util::stream::iter([Ok(head), Ok(done)]).boxed_local());
        }
        let generation: TextStream = self
            .0
            .models
            .chat_stream(
                &ctx.delegate(Scope::Inference),
                &p.chat.id,
                p.messages.clone(),
                p.max_tokens,
                p.temperature,
            )
            .await?;
        let state = (generation, Some(p), String::new(), false);
        let body =
            futures_util::stream::unfold(state, |(mut generation, p, mut text, done)| async move {
                if done {
                    return None;
                }
                match generation.next().await {
                    Some(Ok(GenerationEvent::Delta(d))) => {
                        text.push_str(&d);
                        let ev = sse("delta", &serde_json::json!({"text": d}));
                        Some((Ok(ev), (generation, p, text, false)))
                    }
                    Some(Ok(GenerationEvent::Done(g))) => {
                        let p = p?;
                        let ev = sse(
                            "done",
                            &p.finish(text.clone(), g.prompt_tokens, g.completion_tokens),
                        );
                        Some((Ok(ev), (generation, None, text, true)))
                    }
                    Some(Err(e)) => {
                        let ev = sse("error", &serde_json::json!({"detail": e.to_string()}));
                        Some((Ok(ev), (generation, None, text, true)))
                    }
                    None => None,
                }
            });
        Ok(futures_util::stream::iter([Ok(head)])
            .chain(body)
            .boxed_local())
    }
}

fn sse<T: serde::Serialize>(event: &str, data: &T) -> bytes::Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    bytes::Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

struct Prepared {
    /// The call's monitoring probe (the question, and how much of the
    /// answer its sources support).
    probe: Option<llmops_core::monitor::Probe>,
    id: String,
    chat: ChatModel,
    messages: Vec<(String, String)>,
    citations: Vec<Citation>,
    embedding_tokens: u32,
    max_tokens: u32,
    temperature: f32,
}

impl Prepared {
    fn ungrounded(&self) -> Answer {
        Answer {
            id: self.id.clone(),
            object: "rag.answer",
            model: self.chat.id.clone(),
            answer: NOTHING_RELEVANT.into(),
            grounded: false,
            citations: Vec::new(),
            usage: AnswerUsage {
                embedding_tokens: self.embedding_tokens,
                prompt_tokens: 0,
                completion_tokens: 0,
            },
        }
    }

    fn finish(&self, text: String, prompt_tokens: u32, completion_tokens: u32) -> Answer {
        if let Some(probe) = &self.probe {
            // The sources are the user message up to its question.
            let sources: Vec<&str> = self
                .messages
                .iter()
                .filter(|(role, _)| role == "user")
                .map(|(_, m)| m.rsplit_once("Question: ").map_or(m.as_str(), |(s, _)| s))
                .collect();
            if let Some(share) = llmops_core::monitor::support(&text, &sources) {
                probe.support(share);
            }
        }
        let citations = self
            .citations
            .iter()
            .map(|c| Citation {
                cited: text.contains(&format!("[{}]", c.marker)),
                ..c.clone()
            })
            .collect();
        Answer {
            id: self.id.clone(),
            object: "rag.answer",
            model: self.chat.id.clone(),
            answer: text,
            grounded: true,
            citations,
            usage: AnswerUsage {
                embedding_tokens: self.embedding_tokens,
                prompt_tokens,
                completion_tokens,
            },
        }
    }
}

/// Chat messages: `(role, content)`.
type Messages = Vec<(String, String)>;

/// The messages: the instruction, then the numbered sources that fit the
/// model's context (counted with its tokenizer) beside the question and
/// the answer's `max_tokens`, best first.
fn assemble(
    chat: &ChatModel,
    question: &str,
    hits: Vec<ChunkHit>,
    max_tokens: u32,
) -> ApiResult<(Messages, Vec<Citation>)> {
    // Chat framing per message (role markers), as serving counts it.
    const FRAMING: usize = 8;
    let fixed = chat.count(SYSTEM) + chat.count(question) + 3 * FRAMING + 16;
    let budget = chat
        .context_tokens
        .checked_sub(fixed + max_tokens as usize)
        .ok_or_else(|| {
            ApiError::validation(
                "max_tokens",
                format!(
                    "the question and {max_tokens} answer tokens leave no room for sources in `{}`'s {} tokens",
                    chat.id, chat.context_tokens
                ),
            )
        })?;
    let mut used = 0;
    let mut sources = String::new();
    let mut citations = Vec::new();
    for h in hits {
        let marker = citations.len() as u32 + 1;
        let block = if h.section.is_empty() {
            format!("[{marker}] {}\n\n", h.text)
        } else {
            format!("[{marker}] ({}) {}\n\n", h.section, h.text)
        };
        let cost = chat.count(&block);
        if used + cost > budget {
            break;
        }
        used += cost;
        sources.push_str(&block);
        citations.push(Citation {
            marker,
            chunk_id: h.chunk_id,
            document_id: h.document_id,
            external_id: h.external_id,
            chunk_index: h.chunk_index,
            start: h.start,
            end: h.end,
            score: h.score,
            cited: false,
        });
    }
    let messages = vec![
        ("system".to_string(), SYSTEM.to_string()),
        (
            "user".to_string(),
            format!("Sources:\n\n{}Question: {question}", sources),
        ),
    ];
    Ok((messages, citations))
}

fn check_text(field: &str, s: &str) -> ApiResult<()> {
    if s.trim().is_empty() || s.chars().count() > 4096 {
        return Err(ApiError::validation(
            field,
            "1 to 4096 characters, not blank",
        ));
    }
    Ok(())
}

fn check_threshold(t: Option<f32>) -> ApiResult<()> {
    if t.is_some_and(|t| !(-1.0..=1.0).contains(&t)) {
        return Err(ApiError::validation("score_threshold", "-1 to 1"));
    }
    Ok(())
}
