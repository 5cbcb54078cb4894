//! OpenAI-compatible HTTP upstreams (vLLM, TGI, hosted APIs) as a second
//! kind of backend. Requests stream (`stream: true`, with usage) so the
//! gateway relays tokens as they come and books the upstream's own counts.

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
    url: &str,
    api_key: Option<&str>,
    model: &str,
    body: &serde_json::Value,
) -> Result<reqwest::Response, ApiError> {
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
        }
        let mut req = client
            .post(url)
            .json(body)
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

/// Turns an OpenAI event stream into generation steps: text deltas, then
/// one last step with the finish reason and the upstream's usage.
pub fn steps(
    res: reqwest::Response,
    model: String,
    chat: bool,
) -> impl Stream<Item = Result<GenerationStep, ApiError>> + Send + 'static {
    struct St<S> {
        body: S,
        buf: Vec<u8>,
        finish: Option<String>,
        done: bool,
        model: String,
        chat: bool,
    }
    let st = St {
        body: res.bytes_stream(),
        buf: Vec::new(),
        finish: None,
        done: false,
        model,
        chat,
    };
    futures_util::stream::unfold(st, |mut st| async move {
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
                    st.done = true;
                    // Read to the end so the connection goes back to the pool.
                    while let Some(Ok(_)) = st.body.next().await {}
                    let finish = st.finish.take().unwrap_or_else(|| "stop".into());
                    return Some((Ok(final_step(finish, 0, 0)), st));
                }
                let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                if let Some(err) = v.get("error") {
                    st.done = true;
                    let msg = err["message"]
                        .as_str()
                        .unwrap_or("upstream error")
                        .to_string();
                    return Some((Err(unavailable(&st.model, msg)), st));
                }
                let choice = &v["choices"][0];
                if let Some(f) = choice["finish_reason"].as_str() {
                    st.finish = Some(f.to_string());
                }
                if v["usage"].is_object() {
                    st.done = true;
                    while let Some(Ok(_)) = st.body.next().await {}
                    let p = v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as u32;
                    let c = v["usage"]["completion_tokens"].as_u64().unwrap_or(0) as u32;
                    let finish = st.finish.take().unwrap_or_else(|| "stop".into());
                    return Some((Ok(final_step(finish, p, c)), st));
                }
                let text = if st.chat {
                    choice["delta"]["content"].as_str()
                } else {
                    choice["text"].as_str()
                };
                if let Some(t) = text.filter(|t| !t.is_empty()) {
                    let step = GenerationStep {
                        text: t.to_string(),
                        finish_reason: String::new(),
                        prompt_tokens: 0,
                        completion_tokens: 0,
                    };
                    return Some((Ok(step), st));
                }
                continue;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(unavailable(&st.model, e)), st));
                }
                None => {
                    st.done = true;
                    let finish = st.finish.take().unwrap_or_else(|| "stop".into());
                    return Some((Ok(final_step(finish, 0, 0)), st));
                }
            }
        }
    })
}

fn final_step(finish: String, p: u32, c: u32) -> GenerationStep {
    GenerationStep {
        text: String::new(),
        finish_reason: finish,
        prompt_tokens: p,
        completion_tokens: c,
    }
}

/// Embeddings from an upstream: `(vectors, total tokens)`.
pub async fn embed(
    client: &reqwest::Client,
    base_url: &str,
    api_key: Option<&str>,
    model: &str,
    upstream_model: &str,
    texts: &[String],
) -> Result<(Vec<Vec<f32>>, u32), ApiError> {
    let body =
        serde_json::json!({"model": upstream_model, "input": texts, "encoding_format": "float"});
    let res = post_streaming(
        client,
        &format!("{base_url}/embeddings"),
        api_key,
        model,
        &body,
    )
    .await?;
    let v: serde_json::Value = res.json().await.map_err(|e| unavailable(model, e))?;
    let mut out = Vec::new();
    for d in v["data"].as_array().into_iter().flatten() {
        let vec: Vec<f32> = d["embedding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_f64().map(|f| f as f32))
            .collect();
        out.push(vec);
    }
    if out.len() != texts.len() {
        return Err(unavailable(model, "wrong number of embeddings"));
    }
    Ok((
        out,
        v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as u32,
    ))
}
