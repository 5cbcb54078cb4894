//! Settling a generation (token reconciliation and usage events, once,
//! also when the client leaves mid-answer) and turning its steps into
//! server-sent events.

use crate::openai::Usage;
use crate::service::Serving;
use crate::tokens::UsageSource;
use crate::triton::GenerationStep;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use llmops_core::usage::Meter;
use llmops_core::{ApiError, TenantCtx};
use std::time::Instant;

pub(crate) fn sse(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(format!(
        "data: {}\n\n",
        serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
    ))
}

/// Settles a generation once: usage events and the token reconciliation,
/// also when the client goes away mid-stream (on drop).
pub(crate) struct Settlement {
    pub(crate) serving: Serving,
    pub(crate) ctx: TenantCtx,
    pub(crate) id: String,
    pub(crate) model: String,
    /// When the call started (before its backend was opened).
    pub(crate) started: Instant,
    pub(crate) reserved: u32,
    pub(crate) prompt_tokens: u32,
    pub(crate) completion_tokens: u32,
    pub(crate) usage_source: UsageSource,
    pub(crate) done: bool,
}

impl Settlement {
    /// Takes the counts a step carries.
    pub(crate) fn update(&mut self, step: &GenerationStep) {
        self.prompt_tokens = step.prompt_tokens;
        self.completion_tokens = step.completion_tokens;
        self.usage_source = step.usage_source;
    }

    /// A call that failed before its client got anything: nothing is
    /// booked and the whole reservation goes back.
    pub(crate) fn abandon(&mut self) {
        self.prompt_tokens = 0;
        self.completion_tokens = 0;
        if self.done {
            return;
        }
        self.done = true;
        let s = self.serving.clone();
        let (ctx, reserved) = (self.ctx.clone(), self.reserved);
        s.0.tasks.clone().spawn(async move {
            s.0.budget.refund(&ctx, reserved).await;
        });
    }

    /// The settlement's work: the token reconciliation and the usage
    /// events (`None` once done).
    fn work(&mut self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if self.done {
            return None;
        }
        self.done = true;
        let s = self.serving.clone();
        let ctx = self.ctx.clone();
        let (id, model, reserved) = (self.id.clone(), self.model.clone(), self.reserved);
        let (p, c, source) = (
            self.prompt_tokens,
            self.completion_tokens,
            self.usage_source,
        );
        let parts = [
            (Meter::INPUT_TOKENS, p),
            (Meter::OUTPUT_TOKENS, c),
            (Meter::REQUESTS, 1),
        ];
        // The monitoring probe learns the counts now: a stream dropped by
        // its client settles in the background, after its record is taken.
        if let Some(probe) = ctx.probe() {
            probe.usage(&model, &parts);
        }
        Some(async move {
            s.0.budget.settle(&ctx, reserved, p.saturating_add(c)).await;
            s.record_settled(&ctx, &id, &model, source, &parts).await;
        })
    }

    /// Settles as part of the answer: the response ends once its usage is
    /// handed to the ledger, so a ledger that falls behind slows answers
    /// down (bounded memory) instead of piling up settlements.
    pub(crate) async fn settle_now(&mut self) {
        if let Some(work) = self.work() {
            work.await;
        }
    }

    /// Settles in the background (the client went away mid-answer).
    fn settle(&mut self) {
        if let Some(work) = self.work() {
            self.serving.0.tasks.clone().spawn(work);
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.settle();
    }
}

pub(crate) fn usage(p: u32, c: u32) -> Usage {
    Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: p + c,
        prompt_tokens_details: None,
        llmops_cache: None,
    }
}

pub(crate) fn openai_finish(f: &str) -> String {
    match f {
        "length" => "length".into(),
        _ => "stop".into(),
    }
}

pub(crate) fn observe(model: &str, started: Instant, first_token: Option<Instant>, tokens: u32) {
    let elapsed = started.elapsed().as_secs_f64();
    metrics::histogram!("llm_request_duration_seconds", "model" => model.to_string())
        .record(elapsed);
    if let Some(t) = first_token {
        metrics::histogram!("llm_time_to_first_token_seconds", "model" => model.to_string())
            .record(t.duration_since(started).as_secs_f64());
    }
    if elapsed > 0.0 && tokens > 0 {
        metrics::histogram!("llm_tokens_per_second", "model" => model.to_string())
            .record(f64::from(tokens) / elapsed);
    }
    metrics::counter!("llm_output_tokens_total", "model" => model.to_string())
        .increment(u64::from(tokens));
}

/// Turns generation steps into server-sent events. The settlement travels
/// with the stream: when the client disconnects, the stream (and the gRPC
/// call, which cancels the generation on Triton) is dropped and the tokens
/// produced so far are booked.
pub(crate) fn stream_sse<F>(
    steps: impl Stream<Item = Result<GenerationStep, ApiError>> + Send + 'static,
    settlement: Settlement,
    include_usage: bool,
    first: Bytes,
    chunk: F,
    keep: Option<crate::cached::Keeper>,
) -> std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + 'static>>
where
    F: Fn(String, Option<String>) -> serde_json::Value + 'static,
{
    struct State<S, F> {
        steps: std::pin::Pin<Box<S>>,
        settlement: Settlement,
        chunk: F,
        include_usage: bool,
        first_token: Option<Instant>,
        finished: bool,
        sent_done: bool,
        /// The answer so far, when it is to be cached once complete.
        keep: Option<(crate::cached::Keeper, String)>,
    }
    let state = State {
        steps: Box::pin(steps),
        settlement,
        chunk,
        include_usage,
        first_token: None,
        finished: false,
        sent_done: false,
        keep: keep.map(|k| (k, String::new())),
    };
    let head = futures_util::stream::iter((!first.is_empty()).then_some(Ok(first)));
    let body = futures_util::stream::unfold(state, |mut st| async move {
        if st.sent_done {
            return None;
        }
        if st.finished {
            st.sent_done = true;
            return Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), st));
        }
        match st.steps.next().await {
            Some(Ok(step)) => {
                st.settlement.update(&step);
                if st.first_token.is_none() && !step.text.is_empty() {
                    st.first_token = Some(Instant::now());
                }
                if let Some(p) = st.settlement.ctx.probe() {
                    if !step.text.is_empty() {
                        p.token();
                        p.output(&step.text);
                    }
                    if !step.finish_reason.is_empty() {
                        p.finish(&step.finish_reason);
                    }
                }
                let mut out = Vec::new();
                if let Some((_, text)) = st.keep.as_mut() {
                    text.push_str(&step.text);
                }
                if !step.text.is_empty() {
                    out.extend_from_slice(&sse(&(st.chunk)(step.text, None)));
                }
                if !step.finish_reason.is_empty() {
                    st.finished = true;
                    out.extend_from_slice(&sse(&(st.chunk)(
                        String::new(),
                        Some(openai_finish(&step.finish_reason)),
                    )));
                    if st.include_usage {
                        let u =
                            serde_json::to_value(usage(step.prompt_tokens, step.completion_tokens))
                                .unwrap_or_default();
                        // OpenAI's usage chunk: the chunk's envelope, no choices.
                        let mut last = (st.chunk)(String::new(), None);
                        last["choices"] = serde_json::json!([]);
                        last["usage"] = u;
                        out.extend_from_slice(&sse(&last));
                    }
                    observe(
                        &st.settlement.model,
                        st.settlement.started,
                        st.first_token,
                        step.completion_tokens,
                    );
                    st.settlement.settle_now().await;
                    // Completed normally: the answer may be cached. An
                    // aborted stream never gets here (it is dropped).
                    if let Some((k, text)) = st.keep.take() {
                        k.keep(
                            &text,
                            &step.finish_reason,
                            step.prompt_tokens,
                            step.completion_tokens,
                        );
                    }
                }
                Some((Ok(Bytes::from(out)), st))
            }
            Some(Err(e)) => {
                // An error event ends the stream: no `[DONE]` after it, so a
                // client that ignores error events still sees an unfinished
                // answer rather than a complete one.
                st.finished = true;
                st.sent_done = true;
                let problem = llmops_core::error::Problem::from_error(&e);
                if let Some(p) = st.settlement.ctx.probe() {
                    p.error(&problem.code);
                }
                let body = serde_json::json!({"error": {"message": problem.detail, "type": problem.code, "code": problem.code}});
                st.settlement.settle_now().await;
                Some((Ok(sse(&body)), st))
            }
            None => {
                st.finished = true;
                st.settlement.settle_now().await;
                Some((Ok(Bytes::new()), st))
            }
        }
    });
    Box::pin(head.chain(body))
}
