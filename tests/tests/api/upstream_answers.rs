//! Upstreams that answer other than they were asked, as many OpenAI-compatible
//! servers and proxies do: a plain JSON completion to a streamed request, no
//! `usage`, a stream cut before `[DONE]`, a stream without any choice, an
//! error event. nginx plays each upstream with a fixed answer. The gateway
//! must relay what is there, count what the upstream did not, and turn
//! what is broken into a 502 (or a fallback), never into an empty success.

use llmops_tests::nginx::{Fixed, Nginx};
use llmops_tests::{Backend, Options, TempDir, TestApp, problem, s};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const HELLO: &str = "Hello from the mock.";

fn chat_json(usage: bool) -> Value {
    let mut v = json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": "mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": HELLO}, "finish_reason": "stop"}],
    });
    if usage {
        v["usage"] = json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17});
    }
    v
}

fn chunk(content: &str, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "mock",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]})
    .to_string()
}

/// Token counts by Hugging Face's own Python `tokenizers` (an independent
/// caller of the same tokenizer file): `[count(text) for text in texts]`.
fn python_counts(texts: &[&str]) -> Vec<u32> {
    let python = std::env::var("TEST_TOKENIZER_PYTHON")
        .expect("TEST_TOKENIZER_PYTHON is set by scripts/test.sh");
    let file = std::env::var("TEST_TOKENIZER_JSON").expect("TEST_TOKENIZER_JSON");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import json,sys; from tokenizers import Tokenizer; t=Tokenizer.from_file(sys.argv[1]); \
             print(json.dumps([len(t.encode(x, add_special_tokens=False).ids) for x in json.loads(sys.argv[2])]))",
        )
        .arg(file)
        .arg(serde_json::to_string(texts).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A chat's prompt tokens as the gateway documents its count: each
/// message's role and content plus 3 framing tokens, and 3 for the reply.
fn chat_prompt_tokens(turns: &[(&str, &str)]) -> u32 {
    let texts: Vec<&str> = turns.iter().flat_map(|(r, c)| [*r, *c]).collect();
    python_counts(&texts).iter().sum::<u32>() + 3 * turns.len() as u32 + 3
}

/// The usage events of one call id: meter → (quantity, dimensions).
async fn events_of(app: &TestApp, call_id: &str) -> BTreeMap<String, (i64, Value)> {
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT meter, quantity, dimensions FROM usage_events WHERE id LIKE $1",
            [format!("{call_id}:%").into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let dims: String = r.try_get("", "dimensions").unwrap();
            (
                r.try_get::<String>("", "meter").unwrap(),
                (
                    r.try_get::<i64>("", "quantity").unwrap(),
                    serde_json::from_str(&dims).unwrap(),
                ),
            )
        })
        .collect()
}

/// Waits until the ledger has the call's events (they are written after the answer).
async fn settled(app: &TestApp, call_id: &str, meters: usize) -> BTreeMap<String, (i64, Value)> {
    for _ in 0..100 {
        let ev = events_of(app, call_id).await;
        if ev.len() >= meters {
            return ev;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "call {call_id} was not booked: {:?}",
        events_of(app, call_id).await
    );
}

/// The content, usage chunk and terminator of an SSE answer.
struct Sse {
    text: String,
    usage: Option<Value>,
    error: Option<Value>,
    done: bool,
    id: String,
}

fn parse_sse(body: &str) -> Sse {
    let mut out = Sse {
        text: String::new(),
        usage: None,
        error: None,
        done: false,
        id: String::new(),
    };
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            out.done = true;
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if v.get("error").is_some() {
            out.error = Some(v["error"].clone());
            continue;
        }
        if out.id.is_empty() {
            out.id = s(&v["id"]);
        }
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            out.text.push_str(t);
        }
        if v["usage"].is_object() {
            out.usage = Some(v["usage"].clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_that_do_not_stream_count_or_finish_are_handled() {
    let embeddings = json!({"object": "list", "model": "mock", "data": [
        {"object": "embedding", "index": 1, "embedding": [0.5, 0.25]},
        {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}]});
    let nginx = Nginx::start(&[
        Fixed::json("/json/v1/chat/completions", &chat_json(true)),
        Fixed::json(
            "/json/v1/completions",
            &json!({"id": "cmpl-mock", "object": "text_completion", "created": 1, "model": "mock",
                    "choices": [{"index": 0, "text": HELLO, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}),
        ),
        Fixed::json("/nousage/v1/chat/completions", &chat_json(false)),
        Fixed::json("/nousage/v1/embeddings", &embeddings),
        Fixed::sse(
            "/ssenousage/v1/chat/completions",
            &[
                chunk("Hello", None),
                chunk(" from the mock.", Some("stop")),
                "[DONE]".into(),
            ],
        ),
        Fixed::sse("/cut/v1/chat/completions", &[chunk("Hello", None)]),
        Fixed::sse("/empty/v1/chat/completions", &["[DONE]".into()]),
        Fixed::sse(
            "/error/v1/chat/completions",
            &[
                json!({"error": {"message": "the model is overloaded", "type": "server_error"}})
                    .to_string(),
            ],
        ),
        Fixed::json(
            "/nochoice/v1/chat/completions",
            &json!({"id": "x", "object": "chat.completion", "choices": []}),
        ),
    ])
    .await
    .unwrap();
    let tokenizer = std::env::var("TEST_TOKENIZER_JSON").unwrap();
    let entry = |id: &str, path: &str, extra: &str| {
        format!(
            "[[catalog]]\nid = \"{id}\"\nkind = \"chat\"\nbackend = \"openai\"\nbase_url = \"{}/{path}/v1\"\nmodel = \"mock\"\n{extra}\n",
            nginx.base
        )
    };
    let tok = format!("tokenizer = \"{tokenizer}\"");
    let config = [
        entry("json", "json", ""),
        entry("nousage", "nousage", &tok),
        entry("nousage-estimated", "nousage", ""),
        entry("ssenousage", "ssenousage", &tok),
        entry("cut", "cut", &tok),
        entry("empty", "empty", ""),
        entry("error", "error", ""),
        entry("nochoice", "nochoice", ""),
        entry("empty-then-json", "empty", "fallbacks = [\"json\"]"),
        format!(
            "[[catalog]]\nid = \"embed\"\nkind = \"embedding\"\nbackend = \"openai\"\nbase_url = \"{}/nousage/v1\"\nmodel = \"mock\"\n{tok}\n",
            nginx.base
        ),
    ]
    .concat();
    let dir = TempDir::new("config").unwrap();
    let path = dir.0.join("llmops.toml");
    std::fs::write(&path, config).unwrap();
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env: vec![("LLMOPS_CONFIG".into(), path.display().to_string())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let key = s(&app.create_tenant_on("acme", "standard").unwrap()["api_key"]);
    let turns = [("system", "Be brief."), ("user", "Say hello.")];
    let chat = |model: &str, stream: bool| {
        let messages: Vec<Value> = turns
            .iter()
            .map(|(r, c)| json!({"role": r, "content": c}))
            .collect();
        json!({"model": model, "max_tokens": 32, "stream": stream,
               "stream_options": {"include_usage": true}, "messages": messages})
    };

    // 1. A plain JSON answer to a streamed request is taken as it is.
    let res = app
        .post("/v1/chat/completions", &key, &chat("json", false))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], HELLO);
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})
    );
    let ev = settled(&app, &s(&body["id"]), 3).await;
    assert_eq!(ev["input_tokens"].0, 12);
    assert_eq!(ev["output_tokens"].0, 5);
    assert_eq!(ev["requests"].0, 1);
    assert!(
        ev["input_tokens"].1.get("usage_source").is_none(),
        "the upstream's own counts"
    );

    let res = app
        .post("/v1/chat/completions", &key, &chat("json", true))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sse = parse_sse(&res.text().await.unwrap());
    assert_eq!(sse.text, HELLO);
    assert!(sse.done && sse.error.is_none());
    assert_eq!(sse.usage.unwrap()["completion_tokens"], 5);

    let res = app
        .post(
            "/v1/completions",
            &key,
            &json!({"model": "json", "prompt": "Hi", "max_tokens": 8}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["text"], HELLO);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["prompt_tokens"], 3);

    // 2. No usage: counted with the model's tokenizer, and said so.
    let prompt = chat_prompt_tokens(&turns);
    let completion = python_counts(&[HELLO])[0];
    assert!(prompt > 10 && completion > 2, "{prompt} {completion}");
    for (model, stream) in [("nousage", false), ("ssenousage", true)] {
        let res = app
            .post("/v1/chat/completions", &key, &chat(model, stream))
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{model}");
        let (id, usage) = if stream {
            let sse = parse_sse(&res.text().await.unwrap());
            assert_eq!(sse.text, HELLO);
            assert!(sse.done);
            (sse.id, sse.usage.unwrap())
        } else {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], HELLO);
            (s(&body["id"]), body["usage"].clone())
        };
        assert_eq!(usage["prompt_tokens"], prompt, "{model}");
        assert_eq!(usage["completion_tokens"], completion, "{model}");
        let ev = settled(&app, &id, 3).await;
        assert_eq!(ev["input_tokens"].0, i64::from(prompt), "{model}");
        assert_eq!(ev["output_tokens"].0, i64::from(completion), "{model}");
        assert_eq!(ev["input_tokens"].1["usage_source"], "gateway_tokenizer");
        assert_eq!(ev["output_tokens"].1["usage_source"], "gateway_tokenizer");
        assert_eq!(ev["input_tokens"].1["model"], model);
    }
    // Without a tokenizer the count is an estimate, and says so.
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &chat("nousage-estimated", false),
        )
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], HELLO.len().div_ceil(4));
    let ev = settled(&app, &s(&body["id"]), 3).await;
    assert_eq!(ev["output_tokens"].1["usage_source"], "gateway_estimate");

    // Embeddings without usage: counted, and put back in the inputs' order.
    let res = app
        .post(
            "/v1/embeddings",
            &key,
            &json!({"model": "embed", "input": ["first text", "second"]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"][0]["embedding"], json!([1.0, 0.0]));
    assert_eq!(body["data"][1]["embedding"], json!([0.5, 0.25]));
    let want: u32 = python_counts(&["first text", "second"]).iter().sum();
    assert_eq!(body["usage"]["prompt_tokens"], want);

    // 3. Broken answers are upstream failures, never empty successes.
    for model in ["empty", "error", "nochoice"] {
        for stream in [false, true] {
            let res = app
                .post("/v1/chat/completions", &key, &chat(model, stream))
                .await
                .unwrap();
            let p = problem(res, 502, "bad_gateway").await.unwrap();
            assert!(s(&p["detail"]).contains(&format!("`{model}`")), "{p}");
        }
    }
    // A fallback takes over when the first backend answered nothing usable.
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &chat("empty-then-json", false),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], HELLO);

    // A stream cut before `[DONE]`: a non-streamed call fails whole and books
    // nothing; a streamed one relays what came, ends with an error event
    // (no `[DONE]`), and books what it relayed.
    let res = app
        .post("/v1/chat/completions", &key, &chat("cut", false))
        .await
        .unwrap();
    problem(res, 502, "bad_gateway").await.unwrap();
    let res = app
        .post("/v1/chat/completions", &key, &chat("cut", true))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sse = parse_sse(&res.text().await.unwrap());
    assert_eq!(sse.text, "Hello");
    assert!(!sse.done, "a cut stream is not finished");
    assert_eq!(sse.error.unwrap()["code"], "bad_gateway");
    let ev = settled(&app, &sse.id, 3).await;
    assert_eq!(
        ev["output_tokens"].0,
        i64::from(python_counts(&["Hello"])[0])
    );
    assert_eq!(ev["input_tokens"].0, i64::from(prompt));
}
