use llmops_tests::{Backend, TestApp, eventually, on_both_backends, problem, s};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    key_lifecycle,
    scopes_are_enforced,
    revocation_reaches_other_replicas
);

async fn key_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let t = app.create_tenant("acme").unwrap();
    let admin = s(&t["api_key"]);

    let res = app
        .post(
            "/v1/api_keys",
            &admin,
            &json!({"name": "ci runner", "scopes": ["inference", "rag"]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.unwrap();
    let secret = s(&created["secret"]);
    let id = s(&created["id"]);
    assert!(secret.starts_with("sk-llmops-") && id.starts_with("key_"));
    assert_eq!(created["scopes"], json!(["inference", "rag"]));
    assert!(!s(&created["redacted_value"]).contains(&secret[14..40]));

    // Listing never shows a secret.
    let listed: serde_json::Value = app.get_json("/v1/api_keys", &admin).await.unwrap();
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains(&secret));
    assert!(listed["data"][0].get("secret").is_none());

    // The new key works; last use is recorded (in batches).
    assert_eq!(app.get("/v1/tenant", &secret).await.unwrap().status(), 200);
    eventually(Duration::from_secs(10), || async {
        let k: serde_json::Value = app
            .get(&format!("/v1/api_keys/{id}"), &admin)
            .await?
            .json()
            .await?;
        Ok(k["last_used_at"].is_string())
    })
    .await
    .unwrap();

    // Revocation takes effect at once on this replica.
    let res = app
        .delete(&format!("/v1/api_keys/{id}"), &admin)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let revoked: serde_json::Value = res.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string());
    let res = app.get("/v1/tenant", &secret).await.unwrap();
    let body = problem(res, 401, "unauthenticated").await.unwrap();
    assert!(s(&body["detail"]).contains("revoked"), "{body}");
    // Revoking again is harmless and keeps the first time.
    let again: serde_json::Value = app
        .delete(&format!("/v1/api_keys/{id}"), &admin)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    // An expiring key stops working when it expires.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let res = app
        .post(
            "/v1/api_keys",
            &admin,
            &json!({"name": "short", "scopes": ["inference"], "expires_at": soon}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let short = s(&res.json::<serde_json::Value>().await.unwrap()["secret"]);
    assert_eq!(app.get("/v1/tenant", &short).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = app.get("/v1/tenant", &short).await.unwrap();
    let body = problem(res, 401, "unauthenticated").await.unwrap();
    assert!(s(&body["detail"]).contains("expired"), "{body}");

    // Expiry in the past, no scopes, unknown scope: 422.
    for bad in [
        json!({"name": "x", "scopes": ["inference"], "expires_at": "2020-01-01T00:00:00Z"}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "", "scopes": ["inference"]}),
    ] {
        let res = app.post("/v1/api_keys", &admin, &bad).await.unwrap();
        problem(res, 422, "validation_error").await.unwrap();
    }
}

async fn scopes_are_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let t = app.create_tenant("acme").unwrap();
    let admin = s(&t["api_key"]);
    let created = app
        .cli(&[
            "keys",
            "create",
            "--tenant",
            &s(&t["tenant_id"]),
            "--name",
            "inference only",
            "--scopes",
            "inference",
        ])
        .unwrap();
    let narrow = s(&created["secret"]);
    // Reading the tenant needs no scope; managing keys needs `admin`.
    assert_eq!(app.get("/v1/tenant", &narrow).await.unwrap().status(), 200);
    let res = app.get("/v1/api_keys", &narrow).await.unwrap();
    let body = problem(res, 403, "insufficient_scope").await.unwrap();
    assert!(s(&body["detail"]).contains("admin"));
    let res = app
        .post(
            "/v1/api_keys",
            &narrow,
            &json!({"name": "escalate", "scopes": ["admin"]}),
        )
        .await
        .unwrap();
    problem(res, 403, "insufficient_scope").await.unwrap();
    let res = app
        .delete(&format!("/v1/api_keys/{}", s(&t["api_key_id"])), &narrow)
        .await
        .unwrap();
    problem(res, 403, "insufficient_scope").await.unwrap();
    // The admin key still works: nothing was revoked.
    assert_eq!(app.get("/v1/api_keys", &admin).await.unwrap().status(), 200);
}

async fn revocation_reaches_other_replicas(backend: Backend) {
    let mut app = TestApp::spawn(backend).await.unwrap();
    let other = app.start_server().unwrap();
    let t = app.create_tenant("acme").unwrap();
    let admin = s(&t["api_key"]);
    let created: serde_json::Value = app
        .post(
            "/v1/api_keys",
            &admin,
            &json!({"name": "k", "scopes": ["inference"]}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = s(&created["secret"]);
    let other_url = app.servers[other].url("/v1/tenant");
    let status = app
        .client
        .get(&other_url)
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "replica 2 caches the key");
    app.delete(&format!("/v1/api_keys/{}", s(&created["id"])), &admin)
        .await
        .unwrap();
    // Bounded by the auth cache TTL (1 s in tests).
    eventually(Duration::from_secs(5), || async {
        let st = app
            .client
            .get(&other_url)
            .bearer_auth(&secret)
            .send()
            .await?
            .status();
        Ok(st == 401)
    })
    .await
    .unwrap();
}
