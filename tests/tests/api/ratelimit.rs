use llmops_tests::{Backend, Options, TestApp, header, on_both_backends, problem, s};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    requests_per_minute_is_enforced_with_headers,
    per_key_limit_is_below_the_tenant_limit
);

async fn requests_per_minute_is_enforced_with_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    // 60 per minute: one request per second of budget, burst of 60.
    let (_, key) = app.tenant_on_plan("acme", 60, 1000, 10).await.unwrap();
    for i in 0..60u32 {
        let res = app.get("/v1/tenant", &key).await.unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(header(&res, "x-ratelimit-limit-requests"), "60");
        let remaining: u32 = header(&res, "x-ratelimit-remaining-requests")
            .parse()
            .unwrap();
        // Time passes while we send, so budget may trickle back, never more.
        assert!(
            remaining >= 59 - i && remaining <= 59,
            "request {i}: {remaining}"
        );
        assert_eq!(header(&res, "x-ratelimit-limit-tokens"), "1000");
        assert_eq!(header(&res, "x-ratelimit-remaining-tokens"), "1000");
        assert!(!header(&res, "x-ratelimit-reset-requests").is_empty());
    }
    // Drain whatever trickled back, then the next one is refused.
    let mut refused = None;
    for _ in 0..20 {
        let res = app.get("/v1/tenant", &key).await.unwrap();
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
    }
    let res = refused.expect("a request over the limit is refused");
    let retry_after: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "0");
    assert_eq!(header(&res, "x-ratelimit-limit-requests"), "60");
    let body = problem(res, 429, "rate_limited").await.unwrap();
    assert!(s(&body["detail"]).contains("requests"));

    // After retry-after the budget is back.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let res = app.get("/v1/tenant", &key).await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn per_key_limit_is_below_the_tenant_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (_, admin) = app.tenant_on_plan("acme", 1000, 1000, 10).await.unwrap();
    let res = app
        .post(
            "/v1/api_keys",
            &admin,
            &json!({"name": "slow", "scopes": ["inference"], "requests_per_minute": 2}),
        )
        .await
        .unwrap();
    let slow = s(&res.json::<serde_json::Value>().await.unwrap()["secret"]);
    for _ in 0..2 {
        assert_eq!(app.get("/v1/tenant", &slow).await.unwrap().status(), 200);
    }
    let res = app.get("/v1/tenant", &slow).await.unwrap();
    assert_eq!(header(&res, "x-ratelimit-limit-requests"), "2");
    problem(res, 429, "rate_limited").await.unwrap();
    // The tenant's other key is unaffected.
    assert_eq!(app.get("/v1/tenant", &admin).await.unwrap().status(), 200);
}

/// Two gateway processes with Redis share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_through_redis() {
    let mut app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            redis: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let second = app.start_server().unwrap();
    // 10 per minute: refills one every 6 s, far slower than this test.
    let (_, key) = app.tenant_on_plan("shared", 10, 1000, 10).await.unwrap();
    let urls = [app.url("/v1/tenant"), app.servers[second].url("/v1/tenant")];
    let mut ok = 0;
    let mut refused = 0;
    for i in 0..16 {
        let res = app
            .client
            .get(&urls[i % 2])
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 10, "the two replicas together admit exactly the budget");
    assert_eq!(refused, 6);
    let ready: serde_json::Value = app.get_public_json("/readyz").await.unwrap();
    assert_eq!(ready["checks"]["redis"], "ok");
}
