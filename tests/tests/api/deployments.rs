//! Dedicated deployments of a registered GGUF version on the real Triton.

use llmops_tests::{Backend, Options, TestApp, eventually, problem, s, triton_url};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_gguf_deploys_serves_and_is_metered() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env: vec![
                ("LLMOPS_TRITON_URL".into(), triton_url().unwrap()),
                ("LLMOPS_DEPLOYMENT_METER_WINDOW_SECS".into(), "1".into()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = app.create_tenant_on("acme", "standard").unwrap();
    let b = app.create_tenant_on("globex", "standard").unwrap();
    let (a_id, ka, kb) = (s(&a["tenant_id"]), s(&a["api_key"]), s(&b["api_key"]));

    // Register SmolLM2's GGUF (the file the local model ships) in A's registry.
    app.register_smollm(&ka).await.unwrap();
    app.post("/v1/registry/models", &ka, &json!({"name": "onnx-model"}))
        .await
        .unwrap();
    app.post(
        "/v1/registry/models/onnx-model/versions",
        &ka,
        &json!({"format": "onnx", "source": {"type": "import"}, "artifact_uri": "s3://x/y.onnx", "sha256": "c".repeat(64)}),
    )
    .await
    .unwrap();

    // Unsuitable requests.
    for (body, status, code) in [
        (
            json!({"name": "x", "model": "onnx-model@1"}),
            422,
            "validation_error",
        ),
        (
            json!({"name": "x", "model": "smol@9"}),
            422,
            "validation_error",
        ),
        (
            json!({"name": "Bad Name", "model": "smol@1"}),
            422,
            "validation_error",
        ),
        (
            json!({"name": "smollm2-135m-instruct", "model": "smol@1"}),
            409,
            "conflict",
        ),
        (
            json!({"name": "x", "model": "smol@1", "replicas": 0}),
            422,
            "validation_error",
        ),
    ] {
        let res = app.post("/v1/deployments", &ka, &body).await.unwrap();
        problem(res, status, code).await.unwrap();
    }

    let res = app
        .post(
            "/v1/deployments",
            &ka,
            &json!({"name": "support-bot", "model": "smol@1", "gpu_type": "cpu", "replicas": 2}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let d: Value = res.json().await.unwrap();
    let id = s(&d["id"]);
    assert!(id.starts_with("dep_"));
    assert!(d["status"] == "pending" || d["status"] == "loading", "{d}");
    let res = app
        .post(
            "/v1/deployments",
            &ka,
            &json!({"name": "support-bot", "model": "smol@1"}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();

    eventually(Duration::from_secs(60), || async {
        let d = app.get_json(&format!("/v1/deployments/{id}"), &ka).await?;
        assert_ne!(d["status"], "failed", "{d}");
        Ok(d["status"] == "ready")
    })
    .await
    .unwrap();
    let models = app.get_json("/v1/models", &ka).await.unwrap();
    assert!(models.to_string().contains("\"support-bot\""), "{models}");
    let chat = json!({"model": "support-bot", "max_tokens": 8, "temperature": 0,
                      "messages": [{"role": "user", "content": "Hello"}]});
    let res = app.post("/v1/chat/completions", &ka, &chat).await.unwrap();
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["model"], "support-bot");
    assert!(out["usage"]["completion_tokens"].as_i64().unwrap() > 0);

    // Another tenant sees none of it.
    problem(
        app.get(&format!("/v1/deployments/{id}"), &kb)
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    problem(
        app.delete(&format!("/v1/deployments/{id}"), &kb)
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    problem(
        app.post("/v1/chat/completions", &kb, &chat).await.unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    let listed = app.get_json("/v1/deployments", &kb).await.unwrap();
    assert_eq!(listed["data"], json!([]));
    assert!(
        !app.get_json("/v1/models", &kb)
            .await
            .unwrap()
            .to_string()
            .contains("support-bot")
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = app
        .delete(&format!("/v1/deployments/{id}"), &ka)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stopped: Value = res.json().await.unwrap();
    assert_eq!(stopped["status"], "stopped");
    let expected = 2 * (millis(&stopped["stopped_at"]) - millis(&stopped["ready_at"]));
    assert!(expected > 4000, "{stopped}");
    problem(
        app.post("/v1/chat/completions", &ka, &chat).await.unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();

    // GPU time: replicas × wall time between ready and stop, exactly.
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT CAST(SUM(quantity) AS BIGINT) AS q, COUNT(*) AS n FROM usage_events WHERE tenant_id = $1 AND meter = 'gpu_milliseconds'",
            [a_id.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let q: i64 = row.try_get("", "q").unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    assert_eq!(q, expected, "gpu_milliseconds booked");
    assert!(n >= 2, "one event per window: {n}");
}
