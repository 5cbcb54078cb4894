use llmops_tests::{Backend, TestApp, on_both_backends, problem, s};

on_both_backends!(bad_input_gets_problem_json_and_never_a_crash);

async fn bad_input_gets_problem_json_and_never_a_crash(backend: Backend) {
    let mut app = TestApp::spawn(backend).await.unwrap();
    let t = app.create_tenant("acme").unwrap();
    let key = s(&t["api_key"]);
    let url = app.url("/v1/api_keys");
    let c = &app.client;

    let send = |body: Vec<u8>, ctype: &'static str| {
        c.post(&url)
            .bearer_auth(&key)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    // Malformed JSON.
    problem(
        send(b"{\"name\": ".to_vec(), "application/json")
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await
    .unwrap();
    // Wrong types.
    problem(
        send(
            br#"{"name": 5, "scopes": "admin"}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    // Unknown fields are refused, not dropped.
    problem(
        send(
            br#"{"name": "k", "scopes": ["rag"], "scope": "admin"}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    // Oversized body (limit 1 MiB).
    let big = format!(
        r#"{{"name": "{}", "scopes": ["rag"]}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    problem(
        send(big.into_bytes(), "application/json").await.unwrap(),
        413,
        "payload_too_large",
    )
    .await
    .unwrap();
    // Not JSON.
    problem(
        send(b"name=k".to_vec(), "text/plain").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await
    .unwrap();
    // Invalid ids, bad query strings.
    for path in [
        "/v1/api_keys/not-an-id",
        "/v1/api_keys/ten_01jdq3k5h8x9v2m4n6p8r0t2w4",
    ] {
        problem(app.get(path, &key).await.unwrap(), 422, "validation_error")
            .await
            .unwrap();
    }
    problem(
        app.get("/v1/api_keys?limit=0", &key).await.unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    problem(
        app.get("/v1/api_keys?limit=abc", &key).await.unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    problem(
        app.get("/v1/api_keys?after=key_zz", &key).await.unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    // A well-formed id that does not exist.
    problem(
        app.get("/v1/api_keys/key_01jdq3k5h8x9v2m4n6p8r0t2w4", &key)
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    // Missing and malformed credentials.
    let no_auth = c.get(app.url("/v1/tenant")).send().await.unwrap();
    assert_eq!(
        no_auth
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    problem(no_auth, 401, "unauthenticated").await.unwrap();
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer sk-llmops-short",
        "Bearer sk-llmops-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer a.b.c",
        "Bearer ",
    ] {
        let res = c
            .get(app.url("/v1/tenant"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        problem(res, 401, "unauthenticated").await.unwrap();
    }
    // Unknown route and wrong method.
    problem(
        c.get(app.url("/v2/nothing")).send().await.unwrap(),
        404,
        "route_not_found",
    )
    .await
    .unwrap();
    problem(
        c.put(app.url("/v1/tenant"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await
    .unwrap();
    // A caller's request id is propagated into the error body.
    let res = c
        .get(app.url("/v1/tenant"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    let body = problem(res, 401, "unauthenticated").await.unwrap();
    assert_eq!(body["request_id"], "trace-abc-123");

    // After all that, the process is alive and serving.
    assert!(app.servers[0].is_running());
    assert_eq!(app.get("/v1/tenant", &key).await.unwrap().status(), 200);
    // The request id is logged (lines reach the log a few milliseconds
    // after the answer), and the log never printed a secret.
    llmops_tests::eventually(std::time::Duration::from_secs(5), || async {
        Ok(app.servers[0]
            .logs()
            .contains("\"request_id\":\"trace-abc-123\""))
    })
    .await
    .expect("request id not logged");
    let logs = app.servers[0].logs();
    assert!(!logs.contains(&key), "a key leaked into the logs");
}
