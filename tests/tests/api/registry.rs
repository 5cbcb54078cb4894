//! The model registry through the API: models, versions, aliases and
//! their gates, lineage, deletion and tenant isolation (artifacts are in
//! `registry_artifacts.rs`).

use llmops_tests::{Backend, TestApp, on_both_backends, problem, s};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_backends!(
    models_crud_filters_and_scopes,
    concurrent_versions_get_distinct_numbers,
    aliases_gates_and_audit,
    resolution_lineage_and_imports,
    deletion_and_archiving_rules,
    tenant_isolation_on_every_registry_route,
);

/// A tenant with an admin key and a `registry`-only key.
pub(super) async fn tenant(app: &TestApp, name: &str) -> (String, String) {
    let t = app.create_tenant_on(name, "standard").unwrap();
    let admin = s(&t["api_key"]);
    let reg = app.key_with_scope(&admin, "registry").await.unwrap();
    (admin, reg)
}

pub(super) async fn new_model(app: &TestApp, key: &str, body: Value) -> Value {
    let res = app.post("/v1/registry/models", key, &body).await.unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

pub(super) async fn new_version(app: &TestApp, key: &str, model: &str, body: Value) -> Value {
    let res = app
        .post(&format!("/v1/registry/models/{model}/versions"), key, &body)
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        201,
        "{}",
        res.text().await.unwrap_or_default()
    );
    res.json().await.unwrap()
}

pub(super) fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(super) async fn upload(
    app: &TestApp,
    key: &str,
    model: &str,
    n: i64,
    data: Vec<u8>,
) -> reqwest::Response {
    app.client
        .put(app.url(&format!(
            "/v1/registry/models/{model}/versions/{n}/artifact"
        )))
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap()
}

/// Files under the server's artifact directory.
pub(super) fn artifact_files(app: &TestApp) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() { walk(&p) } else { 1 }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&app.data.0.join("artifacts"))
}

async fn models_crud_filters_and_scopes(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (admin, reg) = tenant(&app, "acme").await;
    let m = new_model(
        &app,
        &reg,
        json!({"name": "llama-3-8b", "description": "base", "tags": {"team": "nlp", "tier": "gold"}}),
    )
    .await;
    assert_eq!(m["object"], "registry.model");
    assert!(s(&m["id"]).starts_with("mdl_"));
    assert_eq!(m["latest_version"], Value::Null);
    new_model(
        &app,
        &reg,
        json!({"name": "llama-3-70b", "tags": {"team": "nlp"}}),
    )
    .await;
    new_model(
        &app,
        &reg,
        json!({"name": "mistral_7b", "tags": {"team": "search"}}),
    )
    .await;

    let res = app
        .post("/v1/registry/models", &reg, &json!({"name": "llama-3-8b"}))
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    for bad in [
        json!({"name": "has space"}),
        json!({"name": "x@y"}),
        json!({"name": ""}),
        json!({"name": "ok", "promotion_gates": [{"metric": "loss", "op": "~", "value": 1}]}),
        json!({"name": "ok", "unknown": true}),
    ] {
        let res = app.post("/v1/registry/models", &reg, &bad).await.unwrap();
        problem(res, 422, "validation_error").await.unwrap();
    }

    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| s(&m["name"]))
            .collect()
    };
    let all = app.get_json("/v1/registry/models", &reg).await.unwrap();
    assert_eq!(names(&all), vec!["llama-3-8b", "llama-3-70b", "mistral_7b"]);
    let llamas = app
        .get_json("/v1/registry/models?name_prefix=llama-3-", &reg)
        .await
        .unwrap();
    assert_eq!(names(&llamas), vec!["llama-3-8b", "llama-3-70b"]);
    // `_` is not a wildcard.
    let none = app
        .get_json("/v1/registry/models?name_prefix=mistral%257", &reg)
        .await
        .unwrap();
    assert_eq!(names(&none), Vec::<String>::new());
    let nlp = app
        .get_json("/v1/registry/models?tag=team:nlp", &reg)
        .await
        .unwrap();
    assert_eq!(names(&nlp), vec!["llama-3-8b", "llama-3-70b"]);
    let gold = app
        .get_json("/v1/registry/models?tag=tier", &reg)
        .await
        .unwrap();
    assert_eq!(names(&gold), vec!["llama-3-8b"]);
    let page = app
        .get_json("/v1/registry/models?limit=2", &reg)
        .await
        .unwrap();
    assert_eq!(page["has_more"], true);
    let rest = app
        .get_json(
            &format!("/v1/registry/models?limit=2&after={}", s(&page["last_id"])),
            &reg,
        )
        .await
        .unwrap();
    assert_eq!(names(&rest), vec!["mistral_7b"]);

    let res = app
        .patch(
            "/v1/registry/models/llama-3-8b",
            &reg,
            &json!({"description": "Llama 3 8B", "tags": {"team": "core"}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = app
        .get_json("/v1/registry/models/llama-3-8b", &admin)
        .await
        .unwrap();
    assert_eq!(got["description"], "Llama 3 8B");
    assert_eq!(got["tags"], json!({"team": "core"}));

    // A key without the registry scope is refused.
    let rag = app.key_with_scope(&admin, "rag").await.unwrap();
    let res = app.get("/v1/registry/models", &rag).await.unwrap();
    problem(res, 403, "insufficient_scope").await.unwrap();
    problem(
        app.get("/v1/registry/models/nope", &reg).await.unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
}

async fn concurrent_versions_get_distinct_numbers(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (_, reg) = tenant(&app, "acme").await;
    new_model(&app, &reg, json!({"name": "m"})).await;
    let bodies: Vec<Value> = (0..20)
        .map(|i| json!({"format": "safetensors", "tags": {"i": i.to_string()}}))
        .collect();
    let creations = bodies
        .iter()
        .map(|b| app.post("/v1/registry/models/m/versions", &reg, b));
    let mut numbers = Vec::new();
    for res in futures_util::future::join_all(creations).await {
        let res = res.unwrap();
        assert_eq!(res.status(), 201);
        numbers.push(
            res.json::<Value>().await.unwrap()["version"]
                .as_i64()
                .unwrap(),
        );
    }
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=20).collect::<Vec<i64>>(),
        "no gaps, no duplicates"
    );
    let m = app.get_json("/v1/registry/models/m", &reg).await.unwrap();
    assert_eq!(m["latest_version"], 20);
    let listed = app
        .get_json("/v1/registry/models/m/versions?limit=100", &reg)
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 20);
    let page = app
        .get_json("/v1/registry/models/m/versions?limit=5&after=15", &reg)
        .await
        .unwrap();
    let nums: Vec<i64> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(nums, vec![16, 17, 18, 19, 20]);
}

async fn aliases_gates_and_audit(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (admin, reg) = tenant(&app, "acme").await;
    new_model(
        &app,
        &reg,
        json!({"name": "chat", "promotion_gates": [
            {"metric": "eval_loss", "op": "<=", "value": 1.8},
            {"metric": "accuracy", "op": ">=", "value": 0.7}
        ]}),
    )
    .await;
    let uri = |i: u32| format!("s3://weights/chat/{i}.safetensors");
    let sha = "a".repeat(64);
    for (loss, acc) in [(1.5, 0.8), (2.0, 0.9), (1.7, 0.75)] {
        new_version(
            &app,
            &reg,
            "chat",
            json!({"format": "safetensors", "source": {"type": "import"}, "artifact_uri": uri(1),
                   "sha256": sha, "metrics": {"eval_loss": loss, "accuracy": acc}}),
        )
        .await;
    }
    let set = |alias: &'static str, body: Value, key: String| {
        let app = &app;
        async move {
            app.put(
                &format!("/v1/registry/models/chat/aliases/{alias}"),
                &key,
                &body,
            )
            .await
            .unwrap()
        }
    };
    // v1 passes the gates.
    let res = set("production", json!({"version": 1}), reg.clone()).await;
    assert_eq!(res.status(), 200);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["aliases"], json!({"production": 1}));
    // v2 fails eval_loss: refused, with the failed check listed.
    let res = set("production", json!({"version": 2}), reg.clone()).await;
    let p = problem(res, 409, "promotion_gate_failed").await.unwrap();
    let checks = p["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{p}");
    assert_eq!(checks[0]["gate"]["metric"], "eval_loss");
    assert_eq!(checks[0]["actual"], 2.0);
    // Gates guard production only.
    assert_eq!(
        set("staging", json!({"version": 2}), reg.clone())
            .await
            .status(),
        200
    );
    // Forcing needs admin.
    let res = set(
        "production",
        json!({"version": 2, "force": true}),
        reg.clone(),
    )
    .await;
    problem(res, 403, "insufficient_scope").await.unwrap();
    let res = set(
        "production",
        json!({"version": 2, "force": true}),
        admin.clone(),
    )
    .await;
    assert_eq!(res.status(), 200);
    // Moving to a passing version.
    assert_eq!(
        set("production", json!({"version": 3}), reg.clone())
            .await
            .status(),
        200
    );
    // Bad alias names and versions.
    problem(
        set("Prod", json!({"version": 1}), reg.clone()).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    problem(
        set("production", json!({"version": 99}), reg.clone()).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();

    let events = app
        .get_json("/v1/registry/models/chat/events?limit=100", &reg)
        .await
        .unwrap();
    let moves: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "alias_set" && e["alias"] == "production")
        .collect();
    assert_eq!(moves.len(), 3);
    assert_eq!(
        (
            moves[0]["from_version"].clone(),
            moves[0]["to_version"].clone()
        ),
        (Value::Null, json!(1))
    );
    assert_eq!(
        (
            moves[1]["from_version"].clone(),
            moves[1]["to_version"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(moves[1]["forced"], true);
    assert!(s(&moves[1]["actor"]).starts_with("key_"));
    assert_eq!(moves[2]["forced"], false);
    assert!(moves.iter().all(|e| e["created_at"].is_string()));

    // Atomic moves: while aliases move concurrently, resolution always
    // finds exactly one version.
    let movers = (0..12).map(|i| set("canary", json!({"version": 1 + (i % 3)}), reg.clone()));
    let readers = (0..12).map(|_| app.get("/v1/registry/resolve/chat@canary", &reg));
    let (moved, read) = futures_util::future::join(
        futures_util::future::join_all(movers),
        futures_util::future::join_all(readers),
    )
    .await;
    for res in moved {
        assert!(
            res.status() == 200 || res.status() == 409,
            "{}",
            res.status()
        );
    }
    for res in read {
        let res = res.unwrap();
        assert!(res.status() == 200 || res.status() == 404);
        if res.status() == 200 {
            let v: Value = res.json().await.unwrap();
            assert!((1..=3).contains(&v["version"].as_i64().unwrap()));
        }
    }
    let m = app
        .get_json("/v1/registry/models/chat", &reg)
        .await
        .unwrap();
    let canary = m["aliases"]["canary"].as_i64().unwrap();
    let resolved = app
        .get_json("/v1/registry/resolve/chat@canary", &reg)
        .await
        .unwrap();
    assert_eq!(resolved["version"].as_i64().unwrap(), canary);
    assert!(
        resolved["aliases"]
            .as_array()
            .unwrap()
            .contains(&json!("canary"))
    );

    // Deleting an alias is audited too.
    let res = app
        .delete("/v1/registry/models/chat/aliases/staging", &reg)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .delete("/v1/registry/models/chat/aliases/staging", &reg)
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
}

async fn resolution_lineage_and_imports(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (_, reg) = tenant(&app, "acme").await;
    new_model(&app, &reg, json!({"name": "base"})).await;
    let sha = "b".repeat(64);
    let imported = new_version(
        &app,
        &reg,
        "base",
        json!({"format": "safetensors", "quantization": "bf16", "parameter_count": 135000000,
               "source": {"type": "import"}, "artifact_uri": "https://example.test/w.safetensors",
               "sha256": sha.to_uppercase(), "base_model": "HuggingFaceTB/SmolLM2-135M"}),
    )
    .await;
    assert_eq!(imported["status"], "ready");
    assert_eq!(imported["sha256"], sha.as_str());
    assert_eq!(imported["source"], json!({"type": "import"}));
    assert_eq!(
        imported["artifact_uri"],
        "https://example.test/w.safetensors"
    );
    // An import needs its checksum and URI.
    for bad in [
        json!({"format": "gguf", "source": {"type": "import"}}),
        json!({"format": "gguf", "source": {"type": "import"}, "artifact_uri": "s3://x/y"}),
        json!({"format": "gguf", "artifact_uri": "s3://x/y", "sha256": sha}),
        json!({"format": "pickle"}),
        json!({"format": "gguf", "quantization": "int3"}),
        json!({"format": "gguf", "source": {"type": "fine_tuning_job"}}),
        json!({"format": "gguf", "metrics": {"loss": "low"}}),
        json!({"format": "gguf", "adapter_of": "base@99"}),
    ] {
        let res = app
            .post("/v1/registry/models/base/versions", &reg, &bad)
            .await
            .unwrap();
        problem(res, 422, "validation_error").await.unwrap();
    }
    app.put(
        "/v1/registry/models/base/aliases/production",
        &reg,
        &json!({"version": 1}),
    )
    .await
    .unwrap();

    // A LoRA adapter produced by a fine-tuning job, on base@production.
    new_model(&app, &reg, json!({"name": "support-bot"})).await;
    let adapter = new_version(
        &app,
        &reg,
        "support-bot",
        json!({"format": "safetensors", "adapter_of": "base@production",
               "source": {"type": "fine_tuning_job", "job_id": "ftjob_01jdq3k5h8x9v2m4n6p8r0t2w4"},
               "metrics": {"eval_loss": 1.2}}),
    )
    .await;
    assert_eq!(adapter["is_adapter"], true);
    assert_eq!(adapter["adapter_of"], imported["id"]);
    let got = app
        .get_json("/v1/registry/models/support-bot/versions/1", &reg)
        .await
        .unwrap();
    assert_eq!(
        got["source"],
        json!({"type": "fine_tuning_job", "job_id": "ftjob_01jdq3k5h8x9v2m4n6p8r0t2w4"})
    );
    // Metrics can be completed while pending.
    let res = app
        .patch(
            "/v1/registry/models/support-bot/versions/1",
            &reg,
            &json!({"metrics": {"accuracy": 0.9}}),
        )
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["metrics"], json!({"accuracy": 0.9, "eval_loss": 1.2}));

    // Every reference form resolves to the same version.
    let id = s(&imported["id"]);
    for r in ["base@production", "base@1", id.as_str()] {
        let v = app
            .get_json(&format!("/v1/registry/resolve/{r}"), &reg)
            .await
            .unwrap();
        assert_eq!(v["id"], imported["id"], "{r}");
        assert_eq!(v["aliases"], json!(["production"]));
    }
    for (r, code, status) in [
        ("base@staging", "not_found", 404),
        ("base@2", "not_found", 404),
        ("nobody@production", "not_found", 404),
        ("mv_01jdq3k5h8x9v2m4n6p8r0t2w4", "not_found", 404),
        ("base", "validation_error", 422),
        ("base@Prod", "validation_error", 422),
    ] {
        let res = app
            .get(&format!("/v1/registry/resolve/{r}"), &reg)
            .await
            .unwrap();
        problem(res, status, code).await.unwrap();
    }
}

async fn deletion_and_archiving_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (_, reg) = tenant(&app, "acme").await;
    new_model(&app, &reg, json!({"name": "m"})).await;
    new_version(&app, &reg, "m", json!({"format": "onnx"})).await;
    let res = upload(&app, &reg, "m", 1, b"weights".to_vec()).await;
    assert_eq!(res.status(), 200);
    // A pending version cannot be aliased.
    new_version(&app, &reg, "m", json!({"format": "onnx"})).await;
    let res = app
        .put(
            "/v1/registry/models/m/aliases/production",
            &reg,
            &json!({"version": 2}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    app.put(
        "/v1/registry/models/m/aliases/production",
        &reg,
        &json!({"version": 1}),
    )
    .await
    .unwrap();

    // Behind a live alias: no deleting the model, no archiving the version.
    let res = app.delete("/v1/registry/models/m", &reg).await.unwrap();
    problem(res, 409, "conflict").await.unwrap();
    let res = app
        .patch(
            "/v1/registry/models/m/versions/1",
            &reg,
            &json!({"status": "archived"}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();

    app.delete("/v1/registry/models/m/aliases/production", &reg)
        .await
        .unwrap();
    let res = app
        .patch(
            "/v1/registry/models/m/versions/1",
            &reg,
            &json!({"status": "archived"}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Archived keeps its artifact and history, and cannot be aliased.
    let res = app
        .get("/v1/registry/models/m/versions/1/artifact", &reg)
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"weights");
    let res = app
        .put(
            "/v1/registry/models/m/aliases/production",
            &reg,
            &json!({"version": 1}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    let res = app
        .patch(
            "/v1/registry/models/m/versions/1",
            &reg,
            &json!({"status": "ready"}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    let events = app
        .get_json("/v1/registry/models/m/events", &reg)
        .await
        .unwrap();
    let kinds: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["kind"]))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "model_created",
            "version_created",
            "version_ready",
            "version_created",
            "alias_set",
            "alias_deleted",
            "version_archived"
        ]
    );

    // Without aliases the model goes, with its artifacts.
    assert_eq!(artifact_files(&app), 1);
    let res = app.delete("/v1/registry/models/m", &reg).await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(artifact_files(&app), 0);
    problem(
        app.get("/v1/registry/models/m", &reg).await.unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    // Its name is free again, numbering restarts.
    new_model(&app, &reg, json!({"name": "m"})).await;
    let v = new_version(&app, &reg, "m", json!({"format": "onnx"})).await;
    assert_eq!(v["version"], 1);
}

async fn tenant_isolation_on_every_registry_route(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (_, a) = tenant(&app, "alpha").await;
    let (_, b) = tenant(&app, "beta").await;
    new_model(&app, &a, json!({"name": "secret-model"})).await;
    let v = new_version(&app, &a, "secret-model", json!({"format": "gguf"})).await;
    assert_eq!(
        upload(&app, &a, "secret-model", 1, b"aaaa".to_vec())
            .await
            .status(),
        200
    );
    app.put(
        "/v1/registry/models/secret-model/aliases/production",
        &a,
        &json!({"version": 1}),
    )
    .await
    .unwrap();
    let vid = s(&v["id"]);

    let base = "/v1/registry/models/secret-model";
    let c = &app.client;
    let requests = vec![
        c.get(app.url(base)),
        c.patch(app.url(base)).json(&json!({"description": "mine"})),
        c.delete(app.url(base)),
        c.get(app.url(&format!("{base}/versions"))),
        c.post(app.url(&format!("{base}/versions")))
            .json(&json!({"format": "gguf"})),
        c.get(app.url(&format!("{base}/versions/1"))),
        c.patch(app.url(&format!("{base}/versions/1")))
            .json(&json!({"status": "archived"})),
        c.get(app.url(&format!("{base}/versions/1/artifact"))),
        c.put(app.url(&format!("{base}/versions/1/artifact")))
            .body("bbbb"),
        c.put(app.url(&format!("{base}/aliases/production")))
            .json(&json!({"version": 1})),
        c.delete(app.url(&format!("{base}/aliases/production"))),
        c.get(app.url(&format!("{base}/events"))),
        c.get(app.url("/v1/registry/resolve/secret-model@production")),
        c.get(app.url(&format!("/v1/registry/resolve/{vid}"))),
    ];
    for req in requests {
        let res = req.bearer_auth(&b).send().await.unwrap();
        let url = res.url().clone();
        problem(res, 404, "not_found")
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    let listed = app.get_json("/v1/registry/models", &b).await.unwrap();
    assert_eq!(listed["data"], json!([]));
    // B can use the same name for its own model.
    new_model(&app, &b, json!({"name": "secret-model"})).await;
    // A's model is untouched.
    let m = app.get_json(base, &a).await.unwrap();
    assert_eq!(m["description"], Value::Null);
    assert_eq!(m["aliases"], json!({"production": 1}));
    let res = app
        .get(&format!("{base}/versions/1/artifact"), &a)
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"aaaa");
}
