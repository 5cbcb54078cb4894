//! OpenTelemetry export of inference spans (OTLP over HTTP, protobuf), when
//! `monitoring_otlp_endpoint` names a collector.
//!
//! Each monitoring record becomes one span named `{operation} {model}`
//! with the GenAI semantic conventions' attributes (`gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.usage.*`,
//! `gen_ai.response.finish_reasons`, `error.type`) and the platform's own
//! under `llmops.*` (tenant, request id, cache outcome, cost, time to first
//! token). Spans leave after the record is written, in batches, through a
//! bounded queue: when the collector is slow or down, spans are dropped and
//! counted (`llmops_monitoring_spans_dropped_total`), and neither inference
//! nor the records wait for it.
//!
//! The messages are the OTLP protobuf messages (opentelemetry-proto's
//! `trace/v1`, `common/v1`, `resource/v1`, `collector/trace/v1`), written
//! out with prost's derive: only the fields sent, with their numbers.

use crate::entities::record;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `ExportTraceServiceRequest` (collector/trace/v1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    /// `SpanKind`: 2 is `SPAN_KIND_SERVER`.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    /// 0 unset, 1 ok, 2 error.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// The GenAI operation of a record's kind.
fn operation(kind: &str) -> &'static str {
    match kind {
        "completion" => "text_completion",
        "embedding" => "embeddings",
        // chat, and a RAG answer (a chat over the cited chunks)
        _ => "chat",
    }
}

fn nanos(t: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(t.timestamp_nanos_opt().unwrap_or_default()).unwrap_or_default()
}

/// One record as a span.
pub fn span(r: &record::Model) -> Span {
    let op = operation(&r.kind);
    let model = r.model.clone().unwrap_or_default();
    let start = nanos(r.started_at);
    let end = start.saturating_add((r.latency_ms.max(0.0) * 1e6) as u64);
    let mut attributes = vec![
        kv("gen_ai.operation.name", Value::String(op.into())),
        kv("gen_ai.provider.name", Value::String("llmops".into())),
        kv("llmops.tenant.id", Value::String(r.tenant_id.clone())),
        kv("llmops.request.id", Value::String(r.request_id.clone())),
        kv("llmops.call.kind", Value::String(r.kind.clone())),
        kv("http.response.status_code", Value::Int(i64::from(r.status))),
    ];
    if !model.is_empty() {
        attributes.push(kv("gen_ai.request.model", Value::String(model.clone())));
    }
    // An embedding call's input is its embedding tokens.
    let input = if r.input_tokens == 0 {
        r.embedding_tokens
    } else {
        r.input_tokens
    };
    if input > 0 || r.output_tokens > 0 {
        attributes.push(kv("gen_ai.usage.input_tokens", Value::Int(input)));
        attributes.push(kv(
            "gen_ai.usage.output_tokens",
            Value::Int(r.output_tokens),
        ));
    }
    if let Some(reason) = &r.finish_reason {
        attributes.push(kv(
            "gen_ai.response.finish_reasons",
            Value::Array(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::String(reason.clone())),
                }],
            }),
        ));
    }
    if let Some(ttft) = r.ttft_ms {
        attributes.push(kv("llmops.time_to_first_token_ms", Value::Double(ttft)));
    }
    if let Some(cache) = &r.cache {
        attributes.push(kv("llmops.cache", Value::String(cache.clone())));
    }
    if let (Some(cost), Some(currency)) = (r.cost_minor, &r.currency) {
        attributes.push(kv("llmops.cost_minor", Value::Double(cost)));
        attributes.push(kv("llmops.currency", Value::String(currency.clone())));
    }
    let failed = crate::writer::is_error(r.status, r.error_type.as_deref());
    if let Some(code) = r.error_type.as_ref().filter(|_| failed) {
        attributes.push(kv("error.type", Value::String(code.clone())));
    }
    let ids = ulid::Ulid::new().0.to_be_bytes();
    Span {
        trace_id: ids.to_vec(),
        span_id: ids[8..].to_vec(),
        name: if model.is_empty() {
            op.to_string()
        } else {
            format!("{op} {model}")
        },
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        status: Some(Status {
            message: String::new(),
            code: if r.status >= 500 { 2 } else { 0 },
        }),
    }
}

/// The request that carries `spans` under this service's resource.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::String("llmops".into()))],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "llmops-monitoring".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans,
            }],
        }],
    }
}

/// Where the writer hands written records to the exporter.
#[derive(Clone)]
pub struct SpanQueue(mpsc::Sender<Span>);

impl SpanQueue {
    /// Queues the records' spans; a full queue drops (and counts) them.
    pub fn offer(&self, rows: &[record::Model]) {
        for r in rows {
            if self.0.try_send(span(r)).is_err() {
                metrics::counter!("llmops_monitoring_spans_dropped_total").increment(1);
            }
        }
    }
}

/// The exporter: a queue of `capacity` spans, sent to
/// `{endpoint}/v1/traces` in batches of up to 512 every second.
pub fn start(
    endpoint: &str,
    capacity: usize,
    tasks: &tokio_util::task::TaskTracker,
    stop: CancellationToken,
) -> Result<SpanQueue, String> {
    let url = url::Url::parse(&format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .map_err(|e| format!("monitoring_otlp_endpoint: {e}"))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    tasks.spawn(run(client, url, rx, stop));
    Ok(SpanQueue(tx))
}

async fn run(
    client: reqwest::Client,
    url: url::Url,
    mut rx: mpsc::Receiver<Span>,
    stop: CancellationToken,
) {
    let mut buf = Vec::with_capacity(512);
    loop {
        let got = tokio::select! {
            n = rx.recv_many(&mut buf, 512) => n,
            _ = stop.cancelled() => 0,
        };
        if got == 0 {
            break;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while buf.len() < 512 {
            let more = tokio::select! {
                n = tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, 512)) => n.unwrap_or(0),
                _ = stop.cancelled() => 0,
            };
            if more == 0 {
                break;
            }
        }
        send(&client, &url, std::mem::take(&mut buf)).await;
    }
    // Stopping: one last try for what is queued.
    rx.close();
    while let Some(s) = rx.recv().await {
        buf.push(s);
    }
    if !buf.is_empty() {
        send(&client, &url, buf).await;
    }
}

/// Sends one batch: three tries, 0.5 s then 2 s apart, on transport errors,
/// 429 and 5xx (the OTLP retryable answers); then the spans are dropped.
async fn send(client: &reqwest::Client, url: &url::Url, spans: Vec<Span>) {
    use prost::Message;
    let n = spans.len() as u64;
    let body = request(spans).encode_to_vec();
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=3 {
        let res = client
            .post(url.clone())
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await;
        let retry = match res {
            Ok(r) if r.status().is_success() => {
                metrics::counter!("llmops_monitoring_spans_exported_total").increment(n);
                return;
            }
            Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
            Err(_) => true,
        };
        if !retry || attempt == 3 {
            break;
        }
        tokio::time::sleep(delay).await;
        delay *= 4;
    }
    tracing::warn!(spans = n, "OTLP export failed; spans dropped");
    metrics::counter!("llmops_monitoring_spans_dropped_total").increment(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn row() -> record::Model {
        record::Model {
            id: "r".into(),
            tenant_id: "ten_x".into(),
            request_id: "req_1".into(),
            actor: "key_1".into(),
            kind: "chat".into(),
            model: Some("smol".into()),
            deployment_id: None,
            status: 200,
            error_type: None,
            started_at: chrono::Utc::now(),
            latency_ms: 12.5,
            ttft_ms: Some(3.0),
            input_tokens: 7,
            output_tokens: 5,
            cached_tokens: 0,
            embedding_tokens: 0,
            cost_minor: Some(1.5),
            currency: Some("usd".into()),
            cache: Some("miss".into()),
            finish_reason: Some("stop".into()),
            prompt_chars: 10,
            output_chars: 10,
            prompt_lang: None,
            output_lang: None,
            empty: false,
            truncated: false,
            refusal: false,
            repetition: 0.0,
            language_mismatch: false,
            support: None,
        }
    }

    #[test]
    fn a_record_is_a_genai_span_that_round_trips() {
        let s = span(&row());
        assert_eq!(s.name, "chat smol");
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id.len(), 8);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 12_500_000);
        let get = |k: &str| {
            s.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(get("gen_ai.usage.input_tokens"), Some(Value::Int(7)));
        assert_eq!(get("gen_ai.usage.output_tokens"), Some(Value::Int(5)));
        assert_eq!(
            get("gen_ai.request.model"),
            Some(Value::String("smol".into()))
        );
        assert!(get("error.type").is_none());
        let bytes = request(vec![s.clone()]).encode_to_vec();
        let back = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap_or_default();
        assert_eq!(back.resource_spans[0].scope_spans[0].spans[0], s);
        let mut failed = row();
        failed.status = 502;
        failed.error_type = Some("upstream_failed".into());
        let f = span(&failed);
        assert_eq!(f.status.map(|s| s.code), Some(2));
        assert!(f.attributes.iter().any(|a| a.key == "error.type"));
    }
}
