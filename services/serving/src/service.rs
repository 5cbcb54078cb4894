//! The serving logic: catalog lookup, chat template, token reservation,
//! Triton calls, usage events.

use crate::catalog::{CatalogModel, ModelBackend, ModelKind};
use crate::openai::*;
use crate::settlement::{Settlement, observe, openai_finish, sse, stream_sse, usage};
use crate::tokens::UsageSource;
use crate::triton::{Generation, GenerationStep, Triton};
use crate::upstream::{Call, Prompt};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use llmops_core::error::LimitHeaders;
use llmops_core::limits::TokenBudget;
use llmops_core::usage::UsageSink;
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::task::TaskTracker;

pub(crate) struct Inner {
    pub(crate) db: Option<llmops_core::db::Db>,
    pub(crate) registry: Option<Arc<dyn llmops_registry::RegistryClient>>,
    pub(crate) meter_window: std::time::Duration,
    pub(crate) spend_guard: Option<Arc<dyn llmops_core::limits::SpendGuard>>,
    pub(crate) triton: Option<Triton>,
    /// Catalog models Triton reported ready at the last poll.
    pub(crate) ready: std::sync::RwLock<std::collections::HashSet<String>>,
    pub(crate) catalog: Vec<CatalogModel>,
    pub(crate) budget: Arc<dyn TokenBudget>,
    pub(crate) usage: Arc<dyn UsageSink>,
    pub(crate) tasks: TaskTracker,
    pub(crate) cache: Option<llmops_cache::SemanticCache>,
}

thread_local! {
    /// Client of OpenAI-compatible upstreams, one per thread: a connection
    /// is driven by the runtime that opened it, so each HTTP worker keeps
    /// its own pool instead of waiting on another worker's thread.
    static HTTP: reqwest::Client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap_or_default();
}

pub(crate) fn http() -> reqwest::Client {
    HTTP.with(Clone::clone)
}

/// A usage part: meter, quantity, and its dimensions besides `model`.
pub(crate) type Part<'a> = (&'a str, u32, &'a [(&'a str, &'a str)]);

/// What a `Serving` is built from.
pub struct ServingParts {
    pub triton: Option<Triton>,
    pub catalog: Vec<CatalogModel>,
    pub budget: Arc<dyn TokenBudget>,
    pub usage: Arc<dyn UsageSink>,
    /// For deployments (none: deployments are not available).
    pub db: Option<llmops_core::db::Db>,
    pub registry: Option<Arc<dyn llmops_registry::RegistryClient>>,
    /// Refuses calls of tenants whose budget is spent (402).
    pub spend_guard: Option<Arc<dyn llmops_core::limits::SpendGuard>>,
    /// GPU-time metering window of deployments.
    pub meter_window: std::time::Duration,
    /// The response cache of chat completions (none: nothing is cached).
    pub cache: Option<llmops_cache::SemanticCache>,
}

/// Cheap to clone; shared by every worker.
#[derive(Clone)]
pub struct Serving(pub(crate) Arc<Inner>);

/// What the response cache did with a request (its response headers).
#[derive(Debug, Clone, Copy)]
pub struct CacheOutcome {
    pub status: llmops_cache::Status,
    pub similarity: Option<f32>,
}

/// A generation in progress or done.
pub enum Reply<T> {
    /// With the token limit's headers (none for a cached answer, which
    /// spends no tokens).
    Full(T, Option<LimitHeaders>),
    Stream(
        std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + 'static>>,
        Option<LimitHeaders>,
    ),
}

const SMOLLM_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// SmolLM2's ChatML template, applied here (the model receives plain text).
pub fn chatml(messages: &[(String, String)]) -> String {
    let mut out = String::new();
    if messages.first().is_none_or(|(r, _)| r != "system") {
        out.push_str(&format!("<|im_start|>system\n{SMOLLM_SYSTEM}<|im_end|>\n"));
    }
    for (role, content) in messages {
        out.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// OpenAI's range of `presence_penalty` and `frequency_penalty` (accepted,
/// not applied by the local models).
fn check_penalties(presence: Option<f32>, frequency: Option<f32>) -> ApiResult<()> {
    for (field, v) in [
        ("presence_penalty", presence),
        ("frequency_penalty", frequency),
    ] {
        if v.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
            return Err(ApiError::validation(
                field,
                format!("{field} must be between -2 and 2"),
            ));
        }
    }
    Ok(())
}

/// A generous estimate of a text's tokens, for reservations only.
pub(crate) fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len() / 3 + 8).unwrap_or(u32::MAX)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What an OpenAI-compatible upstream is asked (streamed, with usage).
#[derive(serde::Serialize)]
struct UpstreamRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    temperature: f32,
    top_p: f32,
    stream: bool,
    stream_options: IncludeUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<UpstreamMessage<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct IncludeUsage {
    include_usage: bool,
}

#[derive(serde::Serialize)]
struct UpstreamMessage<'a> {
    role: &'a str,
    content: &'a str,
}

impl Serving {
    pub fn new(p: ServingParts) -> Self {
        Self(Arc::new(Inner {
            db: p.db,
            registry: p.registry,
            meter_window: p.meter_window,
            spend_guard: p.spend_guard,
            triton: p.triton,
            ready: Default::default(),
            catalog: p.catalog,
            budget: p.budget,
            usage: p.usage,
            tasks: TaskTracker::new(),
            cache: p.cache,
        }))
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.0
    }

    /// Every shared model of the catalog.
    pub fn catalog(&self) -> &[CatalogModel] {
        &self.0.catalog
    }

    /// A shared model of the catalog by id (not a tenant's deployment).
    pub fn catalog_model(&self, id: &str) -> Option<&CatalogModel> {
        self.0.catalog.iter().find(|m| m.id == id)
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.0.tasks
    }

    pub(crate) fn registry(&self) -> ApiResult<&Arc<dyn llmops_registry::RegistryClient>> {
        self.0
            .registry
            .as_ref()
            .ok_or_else(|| ApiError::NotImplemented("deployments need the registry".into()))
    }

    /// Waits for pending usage writes (at shutdown).
    pub async fn drain(&self) {
        self.0.tasks.close();
        self.0.tasks.wait().await;
    }

    pub fn triton(&self) -> Option<&Triton> {
        self.0.triton.as_ref()
    }

    /// The model a request names: a shared one, or a deployment of the tenant.
    pub(crate) async fn target(
        &self,
        ctx: &TenantCtx,
        id: &str,
        kind: ModelKind,
    ) -> ApiResult<CatalogModel> {
        let not_found = || {
            ApiError::not_found(format!(
                "model `{}`",
                id.chars().take(128).collect::<String>()
            ))
        };
        let m = match self.0.catalog.iter().find(|m| m.id == id) {
            Some(m) => m.clone(),
            None => self
                .deployment_target(ctx, id)
                .await?
                .ok_or_else(not_found)?,
        };
        if m.kind != kind {
            return Err(ApiError::validation(
                "model",
                format!("`{id}` is a {:?} model", m.kind).to_lowercase(),
            ));
        }
        metrics::counter!("llm_requests_total", "model" => m.id.clone()).increment(1);
        if let Some(p) = ctx.probe() {
            p.resolve(&m.id);
        }
        Ok(m)
    }

    /// 402 once the tenant's budget is spent: checked after the request is
    /// known to be valid, before anything is reserved or run.
    pub(crate) async fn check_budget(&self, ctx: &TenantCtx) -> ApiResult<()> {
        match &self.0.spend_guard {
            Some(guard) => guard.check(ctx).await,
            None => Ok(()),
        }
    }

    /// The Triton client, 503 when a model of the catalog is not ready.
    pub(crate) fn triton_for(&self, m: &CatalogModel) -> ApiResult<&Triton> {
        let triton = self
            .0
            .triton
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable {
                dependency: "inference backend (no triton_url configured)".into(),
                retry_after_secs: 30,
            })?;
        let shared = self.0.catalog.iter().any(|c| c.id == m.id);
        if shared && !self.is_ready(&m.id) {
            return Err(ApiError::Unavailable {
                dependency: format!("model `{}` (loading, or its backend is down)", m.id),
                retry_after_secs: 2,
            });
        }
        Ok(triton)
    }

    /// The model, then its fallbacks (same kind), in order.
    fn candidates(&self, m: &CatalogModel) -> Vec<CatalogModel> {
        let mut out = vec![m.clone()];
        for f in &m.fallbacks {
            if let Some(c) = self
                .0
                .catalog
                .iter()
                .find(|c| &c.id == f && c.kind == m.kind)
            {
                out.push(c.clone());
            }
        }
        out
    }

    /// Opens the generation on one backend.
    async fn open_steps(
        &self,
        m: &CatalogModel,
        g: &Generation,
    ) -> ApiResult<futures_util::stream::BoxStream<'static, Result<GenerationStep, ApiError>>> {
        match &m.backend {
            ModelBackend::Triton { model } => {
                let triton = self.triton_for(m)?;
                Ok(triton.generate(model, g).await?.boxed())
            }
            ModelBackend::OpenAi {
                chat_url,
                completions_url,
                api_key,
                model,
                ..
            } => {
                let (url, prompt, messages) = match &g.messages {
                    Some(turns) => (
                        chat_url,
                        Prompt::Chat(turns.clone()),
                        Some(
                            turns
                                .iter()
                                .map(|(role, content)| UpstreamMessage { role, content })
                                .collect(),
                        ),
                    ),
                    None => (completions_url, Prompt::Text(g.prompt.clone()), None),
                };
                let body = UpstreamRequest {
                    model,
                    max_tokens: g.max_tokens,
                    temperature: g.temperature,
                    top_p: g.top_p,
                    stream: true,
                    stream_options: IncludeUsage {
                        include_usage: true,
                    },
                    seed: g.seed,
                    stop: &g.stop,
                    prompt: messages.is_none().then_some(g.prompt.as_str()),
                    messages,
                };
                let body = serde_json::to_vec(&body).map_err(ApiError::internal)?;
                let res = crate::upstream::post_streaming(
                    &http(),
                    url,
                    api_key.as_ref().map(|k| k.expose().as_str()),
                    &m.id,
                    body.into(),
                )
                .await?;
                Ok(crate::upstream::steps(
                    res,
                    Call {
                        model: m.id.clone(),
                        prompt,
                        counter: m.counter.clone(),
                    },
                ))
            }
        }
    }

    /// The models this tenant may call now: shared ones ready on their
    /// backend, and the tenant's ready deployments.
    pub async fn models(&self, ctx: &TenantCtx) -> ApiResult<ModelList> {
        ctx.require(Scope::Inference)?;
        let mut data: Vec<ModelObject> = self
            .0
            .catalog
            .iter()
            // Upstream models are listed; Triton ones once ready.
            .filter(|m| !m.is_triton() || self.is_ready(&m.id))
            .map(|m| ModelObject {
                id: m.id.clone(),
                object: "model",
                created: 1_764_288_000,
                owned_by: "llmops".into(),
            })
            .collect();
        for name in self.ready_deployments(ctx).await? {
            data.push(ModelObject {
                id: name,
                object: "model",
                created: 1_764_288_000,
                owned_by: ctx.tenant_id().to_string(),
            });
        }
        Ok(ModelList {
            object: "list",
            data,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn sampling(
        model: &CatalogModel,
        prompt: String,
        max_tokens: Option<u32>,
        default_max: u32,
        temperature: Option<f32>,
        top_p: Option<f32>,
        seed: Option<i64>,
        stop: Option<StringOrList>,
        n: Option<u32>,
    ) -> ApiResult<Generation> {
        if n.is_some_and(|n| n != 1) {
            return Err(ApiError::validation("n", "only n = 1 is supported"));
        }
        let max_tokens = max_tokens.unwrap_or(default_max);
        if max_tokens == 0 || max_tokens >= model.context_tokens {
            return Err(ApiError::validation(
                "max_tokens",
                format!(
                    "max_tokens must be between 1 and {}",
                    model.context_tokens - 1
                ),
            ));
        }
        let temperature = temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::validation(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        let top_p = top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::validation("top_p", "top_p must be in (0, 1]"));
        }
        let stop = stop.map(StringOrList::into_vec).unwrap_or_default();
        if stop.len() > 4 || stop.iter().any(|s| s.is_empty() || s.chars().count() > 100) {
            return Err(ApiError::validation(
                "stop",
                "at most 4 stop sequences of 1 to 100 characters",
            ));
        }
        if seed.is_some_and(|s| s < 0) {
            return Err(ApiError::validation("seed", "seed must not be negative"));
        }
        Ok(Generation {
            messages: None,
            prompt,
            max_tokens,
            temperature,
            top_p,
            seed,
            stop,
        })
    }

    /// Reserves tokens, starts the generation (on the model, or on its
    /// fallbacks while backends are unavailable) and returns its steps with
    /// the settlement that books them.
    async fn start(
        &self,
        ctx: &TenantCtx,
        model: &CatalogModel,
        g: &Generation,
        id: &str,
    ) -> ApiResult<(
        futures_util::stream::BoxStream<'static, Result<GenerationStep, ApiError>>,
        Settlement,
        LimitHeaders,
    )> {
        self.check_budget(ctx).await?;
        let started = Instant::now();
        let reserved = estimate_tokens(&g.prompt).saturating_add(g.max_tokens);
        let headers = self.0.budget.reserve(ctx, reserved).await?;
        let mut last = None;
        for candidate in self.candidates(model) {
            // `g` has both forms: the templated prompt (Triton) and the turns
            // (upstreams template themselves). The first step is awaited
            // here, so a backend that fails before producing anything is
            // still a failure of this candidate (the next one is tried, or
            // the client gets a 502/503), never an empty success.
            let opened = match self.open_steps(&candidate, g).await {
                Ok(mut steps) => match steps.next().await {
                    Some(Err(e)) => Err(e),
                    first => Ok(futures_util::stream::iter(first).chain(steps).boxed()),
                },
                Err(e) => Err(e),
            };
            match opened {
                Ok(steps) => {
                    if candidate.id != model.id {
                        metrics::counter!("llm_fallbacks_total", "model" => model.id.clone(), "to" => candidate.id.clone())
                            .increment(1);
                    }
                    let settlement = Settlement {
                        serving: self.clone(),
                        ctx: ctx.clone(),
                        id: id.to_string(),
                        model: candidate.id.clone(),
                        started,
                        reserved,
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        usage_source: UsageSource::Backend,
                        done: false,
                    };
                    return Ok((steps, settlement, headers));
                }
                Err(e @ (ApiError::Unavailable { .. } | ApiError::UpstreamFailed(_))) => {
                    last = Some(e)
                }
                Err(e) => {
                    self.0.budget.refund(ctx, reserved).await;
                    return Err(e);
                }
            }
        }
        // Nothing ran: give everything back, book nothing.
        self.0.budget.refund(ctx, reserved).await;
        Err(last.unwrap_or_else(|| ApiError::Internal("no backend tried".into())))
    }

    /// Runs a generation to the end and books it:
    /// `(text, finish_reason, usage)`. On an error midway the client gets
    /// the error and nothing is booked.
    async fn collect(
        steps: impl Stream<Item = Result<GenerationStep, ApiError>>,
        mut settlement: Settlement,
    ) -> ApiResult<(String, String, Usage)> {
        let mut text = String::new();
        let mut finish = String::from("length");
        futures_util::pin_mut!(steps);
        while let Some(step) = steps.next().await {
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    settlement.abandon();
                    return Err(e);
                }
            };
            text.push_str(&step.text);
            settlement.update(&step);
            if !step.finish_reason.is_empty() {
                finish = step.finish_reason;
                break;
            }
        }
        observe(
            &settlement.model,
            settlement.started,
            None,
            settlement.completion_tokens,
        );
        let booked = usage(settlement.prompt_tokens, settlement.completion_tokens);
        if let Some(p) = settlement.ctx.probe() {
            p.output(&text);
            p.finish(&finish);
        }
        settlement.settle_now().await;
        Ok((text, finish, booked))
    }

    /// A chat completion, not cached (the platform's own calls: RAG
    /// answers, distillation teachers).
    pub async fn chat(
        &self,
        ctx: &TenantCtx,
        req: ChatCompletionRequest,
    ) -> ApiResult<Reply<ChatCompletion>> {
        Ok(self.chat_with(ctx, req, None).await?.0)
    }

    /// A client's chat completion through the response cache (when one is
    /// configured), with the cache's outcome for the response headers.
    pub async fn chat_cached(
        &self,
        ctx: &TenantCtx,
        req: ChatCompletionRequest,
        directives: &llmops_cache::Directives,
    ) -> ApiResult<(Reply<ChatCompletion>, Option<CacheOutcome>)> {
        self.chat_with(ctx, req, Some(directives)).await
    }

    async fn chat_with(
        &self,
        ctx: &TenantCtx,
        req: ChatCompletionRequest,
        directives: Option<&llmops_cache::Directives>,
    ) -> ApiResult<(Reply<ChatCompletion>, Option<CacheOutcome>)> {
        ctx.require(Scope::Inference)?;
        let model = &self.target(ctx, &req.model, ModelKind::Chat).await?;
        check_penalties(req.presence_penalty, req.frequency_penalty)?;
        if req.messages.is_empty() {
            return Err(ApiError::validation(
                "messages",
                "give at least one message",
            ));
        }
        let mut turns = Vec::with_capacity(req.messages.len());
        for (i, m) in req.messages.iter().enumerate() {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ApiError::validation(
                        format!("messages[{i}].role"),
                        format!(
                            "unsupported role `{}`",
                            other.chars().take(32).collect::<String>()
                        ),
                    ));
                }
            };
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut s = String::new();
                    for p in parts {
                        if p.kind != "text" {
                            return Err(ApiError::validation(
                                format!("messages[{i}].content"),
                                "only text content parts are supported",
                            ));
                        }
                        s.push_str(p.text.as_deref().unwrap_or(""));
                    }
                    s
                }
            };
            turns.push((role.to_string(), content));
        }
        let g = Self::sampling(
            model,
            chatml(&turns),
            req.max_completion_tokens.or(req.max_tokens),
            256,
            req.temperature,
            req.top_p,
            req.seed,
            req.stop,
            req.n,
        )?;
        let mut g = g;
        let id = format!("chatcmpl-{}", ulid::Ulid::new().to_string().to_lowercase());
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let mut ticket = None;
        let mut outcome = None;
        if let (Some(cache), Some(d)) = (&self.0.cache, directives) {
            // A spent budget refuses cached answers too (they are billed).
            self.check_budget(ctx).await?;
            let key = llmops_cache::CacheRequest {
                model: &model.id,
                turns: &turns,
                sampling: llmops_cache::Sampling {
                    max_tokens: g.max_tokens,
                    temperature: g.temperature,
                    top_p: g.top_p,
                    seed: g.seed,
                    stop: {
                        let mut s = g.stop.clone();
                        s.sort();
                        s
                    },
                    presence_penalty: req.presence_penalty,
                    frequency_penalty: req.frequency_penalty,
                },
            };
            let found = cache.lookup(ctx, &key, d).await?;
            if let Some(entry) = found.entry {
                let cached = crate::cached::Replay {
                    id,
                    model: model.clone(),
                    turns: &turns,
                    status: found.status,
                    similarity: found.similarity,
                    stream: req.stream,
                    include_usage,
                };
                return self.replay(ctx, cached, entry).await;
            }
            outcome = Some(CacheOutcome {
                status: found.status,
                similarity: None,
            });
            ticket = found.ticket;
        }
        g.messages = Some(turns);
        let (steps, settlement, headers) = self.start(ctx, model, &g, &id).await?;
        let created = now_secs();
        let model_id = model.id.clone();
        let keep = ticket.map(|t| crate::cached::Keeper {
            cache: self.0.cache.clone(),
            ticket: t,
            model: model_id.clone(),
            tasks: self.0.tasks.clone(),
        });
        if !req.stream {
            let (text, finish, usage) = Self::collect(steps, settlement).await?;
            if let Some(k) = keep {
                k.keep(&text, &finish, usage.prompt_tokens, usage.completion_tokens);
            }
            return Ok((
                Reply::Full(
                    ChatCompletion {
                        id,
                        object: "chat.completion",
                        created,
                        model: model_id,
                        choices: vec![ChatChoice {
                            index: 0,
                            message: AssistantMessage {
                                role: "assistant",
                                content: text,
                            },
                            finish_reason: openai_finish(&finish),
                            logprobs: None,
                        }],
                        usage,
                    },
                    Some(headers),
                ),
                outcome,
            ));
        }
        let chunk = move |delta: serde_json::Value, finish: Option<String>| {
            serde_json::json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
            })
        };
        let first = sse(&chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ));
        let body = stream_sse(
            steps,
            settlement,
            include_usage,
            first,
            move |step, finish| match finish {
                None => chunk(serde_json::json!({"content": step}), None),
                Some(f) => chunk(serde_json::json!({}), Some(f)),
            },
            keep,
        );
        Ok((Reply::Stream(body, Some(headers)), outcome))
    }

    pub async fn complete(
        &self,
        ctx: &TenantCtx,
        req: CompletionRequest,
    ) -> ApiResult<Reply<Completion>> {
        ctx.require(Scope::Inference)?;
        let model = &self.target(ctx, &req.model, ModelKind::Chat).await?;
        check_penalties(req.presence_penalty, req.frequency_penalty)?;
        let prompts = req.prompt.into_vec();
        let [prompt] = <[String; 1]>::try_from(prompts)
            .map_err(|_| ApiError::validation("prompt", "give exactly one prompt"))?;
        if req.echo == Some(true) {
            return Err(ApiError::validation("echo", "echo is not supported"));
        }
        let g = Self::sampling(
            model,
            prompt,
            req.max_tokens,
            16,
            req.temperature,
            req.top_p,
            req.seed,
            req.stop,
            req.n,
        )?;
        let id = format!("cmpl-{}", ulid::Ulid::new().to_string().to_lowercase());
        let (steps, settlement, headers) = self.start(ctx, model, &g, &id).await?;
        let created = now_secs();
        let model_id = model.id.clone();
        if !req.stream {
            let (text, finish, usage) = Self::collect(steps, settlement).await?;
            return Ok(Reply::Full(
                Completion {
                    id,
                    object: "text_completion",
                    created,
                    model: model_id,
                    choices: vec![CompletionChoice {
                        index: 0,
                        text,
                        finish_reason: Some(openai_finish(&finish)),
                        logprobs: None,
                    }],
                    usage: Some(usage),
                },
                Some(headers),
            ));
        }
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let chunk = move |text: String, finish: Option<String>| {
            serde_json::json!({
                "id": id, "object": "text_completion", "created": created, "model": model_id,
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}],
            })
        };
        let body = stream_sse(steps, settlement, include_usage, Bytes::new(), chunk, None);
        Ok(Reply::Stream(body, Some(headers)))
    }
}
