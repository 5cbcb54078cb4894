//! Budgets: 402 once the month's rated usage reaches the limit, recovery
//! when it is raised, and the soft-threshold webhook once per period.

use llmops_tests::{Backend, OPERATOR_TOKEN, Options, TestApp, problem, s, triton_url};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_refuses_inference_until_raised() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env: vec![
                ("LLMOPS_TRITON_URL".into(), triton_url().unwrap()),
                ("LLMOPS_BUDGET_CACHE_SECS".into(), "0".into()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (tid, key) = app
        .tenant_on_plan("spender", 1000, 100_000, 10)
        .await
        .unwrap();
    let pricing = json!({"currency": "EUR", "components": [{"meter": "input_tokens", "mode": "graduated",
        "description": "Input tokens", "tiers": [{"up_to": null, "rate": {"amount_minor": 1, "per": 1}}]}]});
    let res = app
        .client
        .put(app.url("/admin/v1/plans/plan-spender/pricing"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&pricing)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (hook, mut hooks) = llmops_tests::webhook_sink(0).await;
    let res = app
        .client
        .put(app.url("/v1/billing/budget"))
        .bearer_auth(&key)
        .json(&json!({"limit_minor": 1000, "soft_percent": 50, "webhook_url": hook}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let spend = |qty: i64, id: &str| {
        json!({"events": [{"id": id, "tenant_id": tid, "meter": "input_tokens", "quantity": qty,
                           "dimensions": {}, "occurred_at": chrono::Utc::now().to_rfc3339()}]})
    };
    let ingest = |body: Value| {
        let app = &app;
        async move {
            let res = app
                .admin_post("/admin/v1/usage/events", &body)
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    };
    let chat = json!({"model": "smollm2-135m-instruct", "max_tokens": 2,
                      "messages": [{"role": "user", "content": "Hi"}]});

    ingest(spend(600, "s1")).await;
    assert_eq!(
        app.post("/v1/chat/completions", &key, &chat)
            .await
            .unwrap()
            .status(),
        200
    );
    let note = tokio::time::timeout(std::time::Duration::from_secs(10), hooks.recv())
        .await
        .expect("the soft-threshold webhook")
        .unwrap()
        .json();
    assert_eq!(note["type"], "budget.threshold_reached");
    assert_eq!(note["tenant_id"], tid.as_str());
    assert!(note["spend_minor"].as_i64().unwrap() >= 600, "{note}");
    assert_eq!(note["currency"], "EUR");

    ingest(spend(500, "s2")).await;
    let res = app.post("/v1/chat/completions", &key, &chat).await.unwrap();
    let p = problem(res, 402, "budget_exhausted").await.unwrap();
    assert!(s(&p["detail"]).contains("budget"), "{p}");
    let res = app
        .post(
            "/v1/embeddings",
            &key,
            &json!({"model": "all-minilm-l6-v2", "input": "x"}),
        )
        .await
        .unwrap();
    problem(res, 402, "budget_exhausted").await.unwrap();
    let b = app.get_json("/v1/billing/budget", &key).await.unwrap();
    assert!(b["spend_minor"].as_i64().unwrap() >= 1100, "{b}");

    let res = app
        .client
        .put(app.url("/v1/billing/budget"))
        .bearer_auth(&key)
        .json(&json!({"limit_minor": 100000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.post("/v1/chat/completions", &key, &chat)
            .await
            .unwrap()
            .status(),
        200
    );
    // One notification per period.
    assert!(hooks.try_recv().is_err());
}
