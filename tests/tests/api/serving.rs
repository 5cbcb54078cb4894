//! Inference through the gateway on the real Triton (started by the test
//! command) with SmolLM2-135M-Instruct and all-MiniLM-L6-v2.

use futures_util::StreamExt;
use llmops_tests::{Backend, TestApp, eventually, header, problem, run_sdk_checks, s, with_triton};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

async fn app() -> TestApp {
    TestApp::spawn_with(Backend::Postgres, with_triton().unwrap())
        .await
        .unwrap()
}

/// `(meter, sum of quantity)` of a tenant's usage events.
async fn usage_totals(app: &TestApp, tenant: &str) -> Vec<(String, i64)> {
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT meter, CAST(SUM(quantity) AS BIGINT) AS q FROM usage_events WHERE tenant_id = $1 GROUP BY meter ORDER BY meter",
            [tenant.into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String>("", "meter").unwrap(),
                r.try_get::<i64>("", "q").unwrap(),
            )
        })
        .collect()
}

/// The official openai Python SDK works unmodified against the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_works_unmodified() {
    let app = app().await;
    let t = app.create_tenant_on("sdk", "standard").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/check_openai_sdk.py");
    let (url, key) = (app.url("/v1"), s(&t["api_key"]));
    run_sdk_checks(
        "TEST_SDK_PYTHON",
        script,
        &[("LLMOPS_BASE_URL", &url), ("LLMOPS_API_KEY", &key)],
    )
    .await
    .unwrap();
}

/// Usage events carry exactly the model's own token counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_events_equal_the_model_counts() {
    let app = app().await;
    let t = app.create_tenant_on("metered", "standard").unwrap();
    let (tid, key) = (s(&t["tenant_id"]), s(&t["api_key"]));
    let chat = json!({"model": "smollm2-135m-instruct", "max_tokens": 12, "temperature": 0,
                      "messages": [{"role": "user", "content": "Count to five."}]});
    let full: Value = app
        .post("/v1/chat/completions", &key, &chat)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (p1, c1) = (
        full["usage"]["prompt_tokens"].as_i64().unwrap(),
        full["usage"]["completion_tokens"].as_i64().unwrap(),
    );
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let body = app
        .post("/v1/chat/completions", &key, &streamed)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let usage_line = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["usage"].is_object())
        .expect("a usage chunk");
    let (p2, c2) = (
        usage_line["usage"]["prompt_tokens"].as_i64().unwrap(),
        usage_line["usage"]["completion_tokens"].as_i64().unwrap(),
    );
    assert!(body.trim_end().ends_with("data: [DONE]"));
    let emb: Value = app
        .post(
            "/v1/embeddings",
            &key,
            &json!({"model": "all-minilm-l6-v2", "input": ["one two three", "four"]}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let e = emb["usage"]["prompt_tokens"].as_i64().unwrap();
    let expected = vec![
        ("embedding_tokens".to_string(), e),
        ("input_tokens".to_string(), p1 + p2),
        ("output_tokens".to_string(), c1 + c2),
        ("requests".to_string(), 3),
    ];
    let settled = eventually(Duration::from_secs(10), || async {
        Ok(usage_totals(&app, &tid).await == expected)
    })
    .await;
    assert!(
        settled.is_ok(),
        "usage {:?} != {expected:?}",
        usage_totals(&app, &tid).await
    );
}

/// Tokens per minute: reservations refuse with 429 and token headers; a
/// request larger than the whole budget is refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limits_refuse_with_headers() {
    let app = app().await;
    let (_, key) = app.tenant_on_plan("tight", 1000, 300, 10).await.unwrap();
    // Sampled (temperature 0.7, no seed): never answered from the response
    // cache, which spends no tokens (tests/tests/api/cache.rs).
    let req = |max: u32| {
        json!({"model": "smollm2-135m-instruct", "max_tokens": max, "temperature": 0.7,
               "messages": [{"role": "user", "content": "Hi"}]})
    };
    // A streamed call holds its reservation while it runs (what it did
    // not use comes back when it ends, before its last bytes).
    let mut streamed = req(200);
    streamed["stream"] = json!(true);
    let running = app
        .post("/v1/chat/completions", &key, &streamed)
        .await
        .unwrap();
    assert_eq!(running.status(), 200);
    assert_eq!(header(&running, "x-ratelimit-limit-tokens"), "300");
    let remaining: u32 = header(&running, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap();
    assert!(remaining < 100, "the reservation was spent: {remaining}");
    let res = app
        .post("/v1/chat/completions", &key, &req(200))
        .await
        .unwrap();
    assert_eq!(header(&res, "x-ratelimit-limit-tokens"), "300");
    assert!(!header(&res, "retry-after").is_empty());
    let p = problem(res, 429, "rate_limited").await.unwrap();
    assert!(s(&p["detail"]).contains("tokens"), "{p}");
    // Larger than a whole minute's budget: never fits, so 422 at once.
    let res = app
        .post("/v1/chat/completions", &key, &req(1000))
        .await
        .unwrap();
    problem(res, 422, "validation_error").await.unwrap();
    // Once the streamed call ends, its unused tokens are back.
    let body = running.text().await.unwrap();
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let res = app.get("/v1/tenant", &key).await.unwrap();
    let after: u32 = header(&res, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap();
    assert!(
        after > remaining + 100,
        "refunded: {after} after {remaining}"
    );
}

/// A client that disconnects mid-stream is billed only for what was produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_stream_stops_and_bills_what_was_produced() {
    let app = app().await;
    let t = app.create_tenant_on("quitter", "standard").unwrap();
    let (tid, key) = (s(&t["tenant_id"]), s(&t["api_key"]));
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 1500, "stream": true,
                    "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut seen = 0;
    while let Some(part) = body.next().await {
        seen += part.unwrap().len();
        if seen > 600 {
            break;
        }
    }
    drop(body);
    let output_tokens = || async {
        usage_totals(&app, &tid)
            .await
            .iter()
            .find(|(m, _)| m == "output_tokens")
            .map(|(_, q)| *q)
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(20), || async {
        Ok(output_tokens().await > 0)
    })
    .await
    .unwrap();
    let billed = output_tokens().await;
    assert!(
        billed < 200,
        "billed {billed} of at most 1500 tokens for a stream dropped early"
    );
    // The model is free again: a new request completes.
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 4,
                    "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Errors: unknown model, wrong kind, missing scope, bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_errors_are_problems() {
    let app = app().await;
    let t = app.create_tenant_on("errs", "standard").unwrap();
    let key = s(&t["api_key"]);
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2});
    problem(
        app.post("/v1/chat/completions", &key, &chat("nope"))
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    problem(
        app.post("/v1/chat/completions", &key, &chat("all-minilm-l6-v2"))
            .await
            .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    problem(
        app.post(
            "/v1/embeddings",
            &key,
            &json!({"model": "all-minilm-l6-v2", "input": []}),
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    problem(
        app.post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "messages": [], "max_tokens": 2}),
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    problem(
        app.post("/v1/chat/completions", &key, &json!({"model": "smollm2-135m-instruct", "messages": [{"role": "tool", "content": "x"}]}))
            .await
            .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let reg = app.key_with_scope(&key, "registry").await.unwrap();
    problem(
        app.get("/v1/models", &reg).await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await
    .unwrap();
    problem(
        app.post("/v1/chat/completions", &reg, &chat("smollm2-135m-instruct"))
            .await
            .unwrap(),
        403,
        "insufficient_scope",
    )
    .await
    .unwrap();
    // Readiness follows the shared models only: another test's deployment
    // loading or unloading on the shared Triton does not make the gateway
    // unready (Triton's own `server_ready` would).
    eventually(Duration::from_secs(30), || async {
        let ready = app.get_public_json("/readyz").await?;
        Ok(ready["checks"]["triton"] == "ok")
    })
    .await
    .unwrap();
}

/// A stream holds its concurrency slot until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_counts_against_concurrency() {
    let app = app().await;
    let (_, key) = app
        .tenant_on_plan("single", 1000, 100_000, 1)
        .await
        .unwrap();
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 1000, "stream": true,
                    "messages": [{"role": "user", "content": "Tell a long story."}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    assert!(body.next().await.is_some(), "the stream started");
    // While it is open, a second call of the tenant is refused.
    let second = app.get("/v1/tenant", &key).await.unwrap();
    let p = problem(second, 429, "concurrency_limited").await.unwrap();
    assert!(s(&p["detail"]).contains("limit 1"), "{p}");
    drop(body);
    eventually(Duration::from_secs(10), || async {
        Ok(app.get("/v1/tenant", &key).await?.status() == 200)
    })
    .await
    .unwrap();
}
