use llmops_tests::{Backend, OPERATOR_TOKEN, TestApp, on_both_backends, problem, s};
use serde_json::json;

on_both_backends!(
    cli_creates_a_tenant_whose_key_works,
    cli_config_masks_secrets,
    operator_manages_tenants_and_plans,
    suspended_tenant_is_refused_everywhere,
    tenant_isolation_on_keys,
);

async fn cli_creates_a_tenant_whose_key_works(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let created = app.create_tenant("acme").unwrap();
    let tenant_id = s(&created["tenant_id"]);
    let key = s(&created["api_key"]);
    assert!(tenant_id.starts_with("ten_"), "{created}");
    assert!(key.starts_with("sk-llmops-"), "{created}");
    assert!(
        created.get("admin_password").is_none(),
        "given password is not echoed"
    );

    let res = app.get("/v1/tenant", &key).await.unwrap();
    assert_eq!(res.status(), 200);
    let tenant: serde_json::Value = res.json().await.unwrap();
    assert_eq!(tenant["id"], tenant_id.as_str());
    assert_eq!(tenant["name"], "acme");
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["plan"]["id"], "free");

    // The same name again is a conflict; the CLI exits 2 with a problem.
    let out = app
        .cli_raw(&[
            "tenants",
            "create",
            "--name",
            "acme",
            "--admin-email",
            "x@y.test",
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], "conflict");

    // Without a password one is generated and shown once.
    let generated = app
        .cli(&[
            "tenants",
            "create",
            "--name",
            "globex",
            "--admin-email",
            "ops@globex.test",
        ])
        .unwrap();
    let pw = s(&generated["admin_password"]);
    assert!(pw.len() >= 20, "{generated}");
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "ops@globex.test", "password": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The CLI lists it, and nothing in the database holds the secret.
    let listed = app.cli(&["keys", "list", "--tenant", &tenant_id]).unwrap();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains(&key));
}

async fn cli_config_masks_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let cfg = app.cli(&["config"]).unwrap();
    let text = cfg.to_string();
    assert!(!text.contains(OPERATOR_TOKEN), "{text}");
    assert!(!text.contains(llmops_tests::JWT_SECRET), "{text}");
    assert_eq!(cfg["operator_token"], "****");
    assert_eq!(cfg["listen"], "127.0.0.1:0");
    // An unknown LLMOPS_ variable is refused, not ignored.
    let out = std::process::Command::new(llmops_tests::binary().unwrap())
        .env("LLMOPS_DATABSE_URL", "typo")
        .arg("config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("databse_url"));
}

async fn operator_manages_tenants_and_plans(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    // No token, wrong token: refused.
    let res = app
        .client
        .get(app.url("/admin/v1/tenants"))
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    let res = app
        .get("/admin/v1/tenants", "not-the-operator-token")
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    // A tenant key is not an operator token.
    let created = app.create_tenant("initech").unwrap();
    let res = app
        .get("/admin/v1/tenants", &s(&created["api_key"]))
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();

    // Plans.
    let res = app
        .admin_post(
            "/admin/v1/plans",
            &json!({"id": "gold", "requests_per_minute": 1000, "tokens_per_minute": 500000, "concurrent_requests": 20}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .admin_post(
            "/admin/v1/plans",
            &json!({"id": "gold", "requests_per_minute": 1, "tokens_per_minute": 1, "concurrent_requests": 1}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    let res = app
        .admin_post(
            "/admin/v1/plans",
            &json!({"id": "Bad Id", "requests_per_minute": 0, "tokens_per_minute": 1, "concurrent_requests": 1}),
        )
        .await
        .unwrap();
    problem(res, 422, "validation_error").await.unwrap();
    let plans: serde_json::Value = app
        .get_json("/admin/v1/plans", OPERATOR_TOKEN)
        .await
        .unwrap();
    let ids: Vec<String> = plans["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| s(&p["id"]))
        .collect();
    assert_eq!(ids, vec!["free", "gold", "standard"]);

    // Tenants: create over HTTP, page through, move plan.
    for i in 0..3 {
        let res = app
            .admin_post(
                "/admin/v1/tenants",
                &json!({"name": format!("t{i}"), "admin_email": format!("a{i}@t.test"), "plan": "gold"}),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let page1: serde_json::Value = app
        .get_json("/admin/v1/tenants?limit=2", OPERATOR_TOKEN)
        .await
        .unwrap();
    assert_eq!(page1["has_more"], true);
    assert_eq!(page1["data"].as_array().map(Vec::len), Some(2));
    let after = s(&page1["last_id"]);
    let page2: serde_json::Value = app
        .get_json(
            &format!("/admin/v1/tenants?limit=2&after={after}"),
            OPERATOR_TOKEN,
        )
        .await
        .unwrap();
    assert_eq!(page2["has_more"], false);
    assert_eq!(page2["data"].as_array().map(Vec::len), Some(2));
    assert!(s(&page2["first_id"]) > after);

    let tid = s(&created["tenant_id"]);
    let res = app
        .client
        .patch(app.url(&format!("/admin/v1/tenants/{tid}")))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"plan": "gold"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: serde_json::Value = app
        .get_json("/v1/tenant", &s(&created["api_key"]))
        .await
        .unwrap();
    assert_eq!(me["plan"]["id"], "gold");
    let res = app
        .get(
            "/admin/v1/tenants/ten_01jdq3k5h8x9v2m4n6p8r0t2w4",
            OPERATOR_TOKEN,
        )
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
}

async fn suspended_tenant_is_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let created = app.create_tenant("umbrella").unwrap();
    let (tid, key) = (s(&created["tenant_id"]), s(&created["api_key"]));
    let login = json!({"email": "admin@umbrella.test", "password": "correct horse battery staple"});
    let token: serde_json::Value = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = s(&token["access_token"]);
    assert_eq!(app.get("/v1/tenant", &jwt).await.unwrap().status(), 200);

    let res = app
        .admin_post(
            &format!("/admin/v1/tenants/{tid}/suspend"),
            &json!({"reason": "unpaid invoices"}),
        )
        .await
        .unwrap();
    let view: serde_json::Value = res.json().await.unwrap();
    assert_eq!(view["status"], "suspended");
    for cred in [&key, &jwt] {
        let res = app.get("/v1/tenant", cred).await.unwrap();
        problem(res, 403, "tenant_suspended").await.unwrap();
        let res = app.get("/v1/api_keys", cred).await.unwrap();
        problem(res, 403, "tenant_suspended").await.unwrap();
    }
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    problem(res, 403, "tenant_suspended").await.unwrap();

    let res = app
        .admin_post(&format!("/admin/v1/tenants/{tid}/reactivate"), &json!({}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/v1/tenant", &key).await.unwrap().status(), 200);
}

async fn tenant_isolation_on_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let a = app.create_tenant("alpha").unwrap();
    let b = app.create_tenant("beta").unwrap();
    let (a_key, b_key) = (s(&a["api_key"]), s(&b["api_key"]));
    let a_key_id = s(&a["api_key_id"]);

    // B cannot see, read or revoke A's key: 404, as if it did not exist.
    let res = app
        .get(&format!("/v1/api_keys/{a_key_id}"), &b_key)
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
    let res = app
        .delete(&format!("/v1/api_keys/{a_key_id}"), &b_key)
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
    let listed: serde_json::Value = app.get_json("/v1/api_keys", &b_key).await.unwrap();
    assert!(!listed.to_string().contains(&a_key_id), "{listed}");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    // A's key still works, and /v1/tenant shows each their own tenant.
    let me: serde_json::Value = app.get_json("/v1/tenant", &a_key).await.unwrap();
    assert_eq!(me["id"], a["tenant_id"]);
    let me: serde_json::Value = app.get_json("/v1/tenant", &b_key).await.unwrap();
    assert_eq!(me["id"], b["tenant_id"]);
    // The CLI refuses to revoke A's key in B's name too.
    let out = app
        .cli_raw(&["keys", "revoke", "--tenant", &s(&b["tenant_id"]), &a_key_id])
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(app.get("/v1/tenant", &a_key).await.unwrap().status(), 200);
}
