use llmops_tests::{Backend, TestApp, on_both_backends, problem, s};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    login_issues_a_working_jwt,
    expired_and_tampered_tokens_are_refused
);

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn login_issues_a_working_jwt(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let t = app.create_tenant("acme").unwrap();
    let res = login(&app, "ADMIN@acme.test", "correct horse battery staple").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["tenant_id"], t["tenant_id"]);
    let jwt = s(&body["access_token"]);
    // The JWT is accepted by the same middleware as keys, with admin rights.
    let me: serde_json::Value = app.get_json("/v1/tenant", &jwt).await.unwrap();
    assert_eq!(me["id"], t["tenant_id"]);
    let res = app
        .post(
            "/v1/api_keys",
            &jwt,
            &json!({"name": "from dashboard", "scopes": ["rag"]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key: serde_json::Value = res.json().await.unwrap();
    assert!(s(&key["created_by"]).starts_with("usr_"));

    // Wrong password and unknown user look the same.
    let a = problem(
        login(&app, "admin@acme.test", "wrong password!!").await,
        401,
        "unauthenticated",
    )
    .await
    .unwrap();
    let b = problem(
        login(&app, "nobody@acme.test", "wrong password!!").await,
        401,
        "unauthenticated",
    )
    .await
    .unwrap();
    assert_eq!(a["detail"], b["detail"]);
    // Malformed bodies.
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "not-an-email", "password": "x"}))
        .send()
        .await
        .unwrap();
    problem(res, 422, "validation_error").await.unwrap();
}

async fn expired_and_tampered_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        llmops_tests::Options {
            env: vec![("LLMOPS_JWT_TTL_SECS".into(), "1".into())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    app.create_tenant("acme").unwrap();
    let body: serde_json::Value = login(&app, "admin@acme.test", "correct horse battery staple")
        .await
        .json()
        .await
        .unwrap();
    let jwt = s(&body["access_token"]);
    assert_eq!(body["expires_in"], 1);

    // Tampered payload (claims another tenant): signature fails.
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut payload = parts[1].to_string();
    let last = payload.pop().unwrap();
    payload.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    let res = app.get("/v1/tenant", &tampered).await.unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    // A token signed with another secret.
    let res = app
        .get(
            "/v1/tenant",
            &format!("{}.{}.c2lnbmF0dXJl", parts[0], parts[1]),
        )
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = app.get("/v1/tenant", &jwt).await.unwrap();
    let p = problem(res, 401, "unauthenticated").await.unwrap();
    assert!(s(&p["detail"]).contains("expired"), "{p}");
}
