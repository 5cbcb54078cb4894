//! OpenTelemetry export: every inference call reaches an OTLP/HTTP receiver
//! as a span with the GenAI semantic conventions, parsed by the
//! OpenTelemetry project's own protobuf classes (tests/otlp/receiver.py).

use llmops_tests::{TestApp, eventually, s};
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::Duration;

/// The receiver: its port, and the file it appends spans to.
struct Receiver {
    child: std::process::Child,
    port: u16,
    spans: std::path::PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver(dir: &std::path::Path) -> Receiver {
    let python =
        std::env::var("TEST_OTEL_PYTHON").expect("TEST_OTEL_PYTHON (set by scripts/test.sh)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("otlp/receiver.py");
    let spans = dir.join("spans.jsonl");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .arg(&spans)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Receiver {
        child,
        port: line.trim().parse().unwrap(),
        spans,
    }
}

fn spans(r: &Receiver) -> Vec<Value> {
    std::fs::read_to_string(&r.spans)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// An attribute of a span in opentelemetry-proto's JSON form.
fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["span"]["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_calls_are_exported_as_genai_spans() {
    let dir = llmops_tests::TempDir::new("otlp").unwrap();
    let rx = receiver(&dir.0);
    let mut opts = llmops_tests::with_triton().unwrap();
    opts.env.push((
        "LLMOPS_MONITORING_OTLP_ENDPOINT".into(),
        format!("http://127.0.0.1:{}/", rx.port),
    ));
    opts.env
        .push(("LLMOPS_MONITORING_FLUSH_MS".into(), "100".into()));
    let app = TestApp::spawn_with(llmops_tests::Backend::Sqlite, opts)
        .await
        .unwrap();
    let t = app.create_tenant("acme").unwrap();
    let key = s(&t["api_key"]);
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 6, "temperature": 0.7,
                    "messages": [{"role": "user", "content": "Name a colour."}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = llmops_tests::header(&res, "x-request-id");
    let body: Value = res.json().await.unwrap();
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let failed_id = llmops_tests::header(&res, "x-request-id");

    let find = |id: &str| {
        spans(&rx).into_iter().find(|sp| {
            attr(sp, "llmops.request.id").and_then(|v| v["stringValue"].as_str()) == Some(id)
        })
    };
    eventually(Duration::from_secs(20), || async {
        Ok(find(&request_id).is_some() && find(&failed_id).is_some())
    })
    .await
    .unwrap();

    let ok = find(&request_id).unwrap();
    assert_eq!(ok["resource"]["attributes"][0]["key"], "service.name");
    assert_eq!(ok["scope"]["name"], "llmops-monitoring");
    assert_eq!(ok["span"]["name"], "chat smollm2-135m-instruct");
    assert_eq!(ok["span"]["kind"], "SPAN_KIND_SERVER");
    assert_eq!(
        attr(&ok, "gen_ai.operation.name").unwrap()["stringValue"],
        "chat"
    );
    assert_eq!(
        attr(&ok, "gen_ai.request.model").unwrap()["stringValue"],
        "smollm2-135m-instruct"
    );
    assert_eq!(
        attr(&ok, "llmops.tenant.id").unwrap()["stringValue"],
        t["tenant_id"]
    );
    // The usage the client was told, as protobuf's JSON writes int64s.
    let tokens = |k: &str| {
        attr(&ok, k)
            .and_then(|v| v["intValue"].as_str())
            .map(str::to_string)
    };
    assert_eq!(
        tokens("gen_ai.usage.input_tokens"),
        Some(body["usage"]["prompt_tokens"].to_string())
    );
    assert_eq!(
        tokens("gen_ai.usage.output_tokens"),
        Some(body["usage"]["completion_tokens"].to_string())
    );
    let reasons = &attr(&ok, "gen_ai.response.finish_reasons").unwrap()["arrayValue"]["values"];
    assert_eq!(
        reasons[0]["stringValue"],
        body["choices"][0]["finish_reason"]
    );
    assert!(attr(&ok, "error.type").is_none());
    let start: u64 = s(&ok["span"]["startTimeUnixNano"]).parse().unwrap();
    let end: u64 = s(&ok["span"]["endTimeUnixNano"]).parse().unwrap();
    assert!(end > start, "{ok}");
    assert_eq!(
        s(&ok["span"]["traceId"]).len(),
        24,
        "16 bytes in base64: {ok}"
    );

    let failed = find(&failed_id).unwrap();
    assert!(attr(&failed, "error.type").is_some(), "{failed}");
    assert_eq!(
        attr(&failed, "http.response.status_code").unwrap()["intValue"],
        "404"
    );
}
