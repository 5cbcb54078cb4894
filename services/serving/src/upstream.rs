//! OpenAI-compatible HTTP upstreams (vLLM, TGI, hosted APIs) as a second
//! kind of backend. Requests stream (`stream: true`, with usage) so the
//! gateway relays tokens as they come and books the upstream's own counts.

use crate::tokens::{TokenCounter, UsageSource};
use crate::triton::GenerationStep;
use futures_util::{Stream, StreamExt};
use llmops_core::ApiError;
use std::time::Duration;

const ATTEMPTS: u32 = 3;

fn unavailable(model: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable {
        dependency: format!("upstream of `{model}` ({why})"),
        retry_after_secs: 2,
    }
}

/// Posts `body` to `url`, retrying with backoff while nothing has been
/// generated yet (connection errors, 429 and 5xx answers).
pub async fn post_streaming(
    client: &reqwest::Client,
    url: &reqwest::Url,
    api_key: Option<&str>,
    model: &str,
    body: bytes::Bytes,
) -> Result<reqwest::Response, ApiError> {
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
        }
        let mut req = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .timeout(Duration::from_secs(600));
        if let Some(k) = api_key {
            req = req.bearer_auth(k);
        }
        match req.send().await {
            Ok(res) if res.status().is_success() => return Ok(res),
            Ok(res) if res.status() == 429 || res.status().is_server_error() => {
                last = Some(unavailable(model, res.status()));
            }
            Ok(res) if res.status() == 404 => {
                return Err(ApiError::not_found(format!("model `{model}` upstream")));
            }
            Ok(res) => {
                let status = res.status();
                let text: String = res
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                return Err(ApiError::validation(
                    "model",
                    format!("upstream answered {status}: {text}"),
                ));
            }
            Err(e) => {
                last = Some(unavailable(
                    model,
                    if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    },
                ))
            }
        }
        metrics::counter!("upstream_retries_total", "model" => model.to_string()).increment(1);
    }
    Err(last.unwrap_or_else(|| unavailable(model, "no answer")))
}

/// The prompt of an upstream call, kept to count its tokens when the
/// upstream reports no usage.
pub enum Prompt {
    Chat(Vec<(String, String)>),
    Text(String),
}

/// What reading an upstream's answer needs besides the response.
pub struct Call {
    /// The catalog model (for errors and metrics).
    pub model: String,
    pub prompt: Prompt,
    pub counter: TokenCounter,
}

impl Call {
    fn is_chat(&self) -> bool {
        matches!(self.prompt, Prompt::Chat(_))
    }

    /// A step with the tokens of a call, from the upstream's usage or, when
    /// it gave none, counted here.
    fn counted(&self, usage: Option<(u32, u32)>, text: &str, finish: String) -> GenerationStep {
        let (p, c, source) = match usage {
            Some((p, c)) => (p, c, UsageSource::Backend),
            None => {
                let p = match &self.prompt {
                    Prompt::Chat(turns) => self.counter.count_chat(turns),
                    Prompt::Text(t) => self.counter.count(t),
                };
                (p, self.counter.count(text), self.counter.source())
            }
        };
        if source != UsageSource::Backend {
            metrics::counter!("upstream_usage_counted_total", "model" => self.model.clone())
                .increment(1);
        }
        GenerationStep {
            text: String::new(),
            finish_reason: finish,
            prompt_tokens: p,
            completion_tokens: c,
            usage_source: source,
        }
    }
}

/// An upstream that answered, but not with a usable completion.
fn bad_answer(model: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::UpstreamFailed(format!("the upstream of `{model}` {why}"))
}

/// The largest non-streamed answer read from an upstream.
const MAX_JSON_ANSWER: usize = 32 << 20;

/// Turns an upstream's answer into generation steps: text, then one last
/// step with the finish reason and the tokens. An event stream is relayed
/// as it comes; a plain JSON completion (servers that ignore `stream`) is
/// taken as it is. An answer without any choice, a stream cut before
/// `[DONE]` and an error event are upstream failures (502), never an empty
/// success; tokens the upstream does not report are counted here.
pub fn steps(
    res: reqwest::Response,
    call: Call,
) -> futures_util::stream::BoxStream<'static, Result<GenerationStep, ApiError>> {
    let is_sse = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    if is_sse {
        sse_steps(res, call).boxed()
    } else {
        futures_util::stream::once(json_steps(res, call))
            .flat_map(|r| {
                futures_util::stream::iter(match r {
                    Ok(steps) => steps.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                })
            })
            .boxed()
    }
}

/// One event of an OpenAI stream, read without building a JSON tree
/// (strings are borrowed from the line unless they hold escapes).
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(default)]
    usage: Option<UsageNums>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct UsageNums {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl UsageNums {
    fn pair(&self) -> Option<(u32, u32)> {
        let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Some((
            n(self.prompt_tokens?),
            n(self.completion_tokens.unwrap_or(0)),
        ))
    }
}

/// The usage object of an OpenAI answer, if it has one.
fn usage_of(v: &serde_json::Value) -> Option<(u32, u32)> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    let n = |k: &str| {
        u.get(k)?
            .as_u64()
            .map(|x| u32::try_from(x).unwrap_or(u32::MAX))
    };
    Some((n("prompt_tokens")?, n("completion_tokens").unwrap_or(0)))
}

fn error_message(err: &serde_json::Value) -> String {
    err.get("message")
        .and_then(|m| m.as_str())
        .or_else(|| err.as_str())
        .unwrap_or("no message")
        .chars()
        .take(300)
        .collect()
}

/// A whole JSON completion.
async fn json_steps(
    mut res: reqwest::Response,
    call: Call,
) -> Result<Vec<GenerationStep>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| unavailable(&call.model, e))? {
        if body.len() + chunk.len() > MAX_JSON_ANSWER {
            return Err(bad_answer(&call.model, "answered more than 32 MiB"));
        }
        body.extend_from_slice(&chunk);
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| bad_answer(&call.model, "answered neither an event stream nor JSON"))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(bad_answer(
            &call.model,
            format!("answered an error: {}", error_message(err)),
        ));
    }
    let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else {
        return Err(bad_answer(&call.model, "answered without any choice"));
    };
    let text = if call.is_chat() {
        choice["message"]["content"].as_str()
    } else {
        choice["text"].as_str()
    }
    .unwrap_or_default()
    .to_string();
    let finish = choice["finish_reason"]
        .as_str()
        .unwrap_or("stop")
        .to_string();
    let last = call.counted(usage_of(&v), &text, finish);
    let mut out = Vec::with_capacity(2);
    if !text.is_empty() {
        out.push(text_step(text));
    }
    out.push(last);
    Ok(out)
}

fn text_step(text: String) -> GenerationStep {
    GenerationStep {
        text,
        finish_reason: String::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        usage_source: UsageSource::Backend,
    }
}

/// An OpenAI event stream.
fn sse_steps(
    res: reqwest::Response,
    call: Call,
) -> impl Stream<Item = Result<GenerationStep, ApiError>> + Send + 'static {
    struct St<S> {
        body: S,
        buf: Vec<u8>,
        call: Call,
        finish: Option<String>,
        usage: Option<(u32, u32)>,
        saw_choice: bool,
        /// What was relayed, to count it if no usage comes.
        text: String,
        /// The error to yield after the step that books what was relayed.
        failure: Option<ApiError>,
        done: bool,
    }
    impl<S> St<S> {
        /// Fails the call: first a step booking what was relayed (when
        /// anything was), then the error.
        fn fail(&mut self, e: ApiError) -> Result<GenerationStep, ApiError> {
            self.done = true;
            if self.text.is_empty() {
                return Err(e);
            }
            self.failure = Some(e);
            let mut step = self.call.counted(self.usage, &self.text, String::new());
            step.finish_reason = String::new();
            Ok(step)
        }
    }
    let st = St {
        body: res.bytes_stream(),
        buf: Vec::new(),
        call,
        finish: None,
        usage: None,
        saw_choice: false,
        text: String::new(),
        failure: None,
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        if let Some(e) = st.failure.take() {
            return Some((Err(e), st));
        }
        loop {
            if st.done {
                return None;
            }
            if let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = st.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                    continue;
                };
                if data == "[DONE]" {
                    if !st.saw_choice {
                        let e = bad_answer(&st.call.model, "ended its stream without any choice");
                        return Some((st.fail(e), st));
                    }
                    st.done = true;
                    // Read to the end so the connection goes back to the pool.
                    while let Some(Ok(_)) = st.body.next().await {}
                    let finish = st.finish.take().unwrap_or_else(|| "stop".into());
                    let last = st.call.counted(st.usage, &st.text, finish);
                    return Some((Ok(last), st));
                }
                let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data) else {
                    continue;
                };
                if let Some(err) = &chunk.error {
                    let e = bad_answer(
                        &st.call.model,
                        format!("sent an error event: {}", error_message(err)),
                    );
                    return Some((st.fail(e), st));
                }
                if let Some(u) = chunk.usage.as_ref().and_then(UsageNums::pair) {
                    st.usage = Some(u);
                }
                let Some(choice) = chunk.choices.as_ref().and_then(|c| c.first()) else {
                    continue;
                };
                st.saw_choice = true;
                if let Some(f) = &choice.finish_reason {
                    st.finish = Some(f.to_string());
                }
                let text = if st.call.is_chat() {
                    choice.delta.as_ref().and_then(|d| d.content.as_deref())
                } else {
                    choice.text.as_deref()
                };
                if let Some(t) = text.filter(|t| !t.is_empty()) {
                    st.text.push_str(t);
                    let step = text_step(t.to_string());
                    return Some((Ok(step), st));
                }
                continue;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    let e = unavailable(&st.call.model, e);
                    return Some((st.fail(e), st));
                }
                None => {
                    let e = bad_answer(&st.call.model, "ended its stream before `[DONE]`");
                    return Some((st.fail(e), st));
                }
            }
        }
    })
}

/// Embeddings from an upstream: the vectors, the tokens and who counted
/// them (the upstream's `usage`, or this gateway when it gave none).
pub async fn embed(
    client: &reqwest::Client,
    url: &reqwest::Url,
    api_key: Option<&str>,
    model: &str,
    upstream_model: &str,
    texts: &[String],
    counter: &TokenCounter,
) -> Result<(Vec<Vec<f32>>, u32, UsageSource), ApiError> {
    let body =
        serde_json::json!({"model": upstream_model, "input": texts, "encoding_format": "float"});
    let res = post_streaming(
        client,
        url,
        api_key,
        model,
        bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
    .await?;
    let v: serde_json::Value = res
        .json()
        .await
        .map_err(|_| bad_answer(model, "answered embeddings that are not JSON"))?;
    // Upstreams may answer out of order; `index` says where each belongs.
    let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    for (i, d) in v["data"].as_array().into_iter().flatten().enumerate() {
        let at = d["index"].as_u64().map_or(i, |x| x as usize);
        let vec: Vec<f32> = d["embedding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_f64().map(|f| f as f32))
            .collect();
        match out.get_mut(at) {
            Some(slot @ None) if !vec.is_empty() => *slot = Some(vec),
            _ => return Err(bad_answer(model, "answered malformed embeddings")),
        }
    }
    let Some(out) = out.into_iter().collect::<Option<Vec<_>>>() else {
        return Err(bad_answer(model, "answered the wrong number of embeddings"));
    };
    let (tokens, source) = match v["usage"]["prompt_tokens"].as_u64() {
        Some(t) => (u32::try_from(t).unwrap_or(u32::MAX), UsageSource::Backend),
        None => (
            texts
                .iter()
                .map(|t| counter.count(t))
                .fold(0, u32::saturating_add),
            counter.source(),
        ),
    };
    Ok((out, tokens, source))
}
