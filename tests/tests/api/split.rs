//! Split mode, black box: the gateway and the services as separate
//! `llmops serve --services …` processes on PostgreSQL and Redis, with the
//! real Triton. The same flows as the single-process tests (the OpenAI
//! SDK's chat and stream, the registry, a deployment of a registered
//! version, usage into billing, an invoice, monitoring records), then the
//! boundary: a service reached directly
//! refuses requests without the gateway's token, with a forged, expired
//! or misaddressed one; a stopped service takes only its own routes down
//! (503 with `retry-after`), and comes back without restarting anything.

use llmops_core::internal::{Caller, HEADER, InternalKeys, Target};
use llmops_tests::{
    Backend, Options, TestApp, eventually, header, problem, run_sdk_checks, s, triton_url,
};
use serde_json::{Value, json};
use std::time::Duration;

const SECRET: &str = "split-mode-internal-secret-0123456789abcdef";

struct Split {
    app: TestApp,
    /// Base URLs of the service processes, by `--services` value.
    services: Vec<(String, String, usize)>,
}

impl Split {
    fn base(&self, services: &str) -> String {
        self.services
            .iter()
            .find(|(s, _, _)| s == services)
            .map(|(_, b, _)| b.clone())
            .unwrap()
    }
    fn index(&self, services: &str) -> usize {
        self.services
            .iter()
            .find(|(s, _, _)| s == services)
            .map(|(_, _, i)| *i)
            .unwrap()
    }
}

async fn split() -> Split {
    let mut app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            redis: true,
            no_server: true,
            env: vec![
                ("LLMOPS_INTERNAL_SECRET".into(), SECRET.into()),
                ("LLMOPS_BILLING_SETTLE_SECS".into(), "0".into()),
                ("LLMOPS_BILLING_AUTO_CLOSE".into(), "false".into()),
                ("LLMOPS_BUDGET_CACHE_SECS".into(), "0".into()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let triton = triton_url().unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/triton/models")
        .display()
        .to_string();
    let mut services = Vec::new();
    let (mut billing_url, mut registry_url) = (String::new(), String::new());
    for names in ["billing", "registry", "serving", "training,rag,monitoring"] {
        // Serving calls billing (budgets, prices) and the registry
        // (deployments) over HTTP; monitoring, billing.
        let peers = format!("{{billing=\"{billing_url}\",registry=\"{registry_url}\"}}");
        let extra = match names {
            "billing" | "registry" => vec![],
            // RAG embeds and answers with the models on Triton.
            _ => vec![
                ("LLMOPS_TRITON_URL", triton.as_str()),
                ("LLMOPS_TRITON_MODELS_DIR", models.as_str()),
                ("LLMOPS_SERVICE_URLS", peers.as_str()),
            ],
        };
        // Each process keeps its own data directory (the embedded vector
        // store belongs to one process).
        let dir = app.data.0.join(names.replace(',', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.display().to_string();
        let mut env = extra;
        env.push(("LLMOPS_DATA_DIR", dir.as_str()));
        let i = app
            .start_server_with(&["serve", "--services", names], &env)
            .unwrap();
        services.push((names.to_string(), app.servers[i].base.clone(), i));
        match names {
            "billing" => billing_url = app.servers[i].base.clone(),
            "registry" => registry_url = app.servers[i].base.clone(),
            _ => {}
        }
    }
    let url = |n: &str| services.iter().find(|(s, _, _)| s == n).unwrap().1.clone();
    let urls = format!(
        "{{registry=\"{}\",serving=\"{}\",billing=\"{}\",training=\"{t}\",rag=\"{t}\",monitoring=\"{t}\"}}",
        url("registry"),
        url("serving"),
        url("billing"),
        t = url("training,rag,monitoring"),
    );
    let gw = app
        .start_server_with(
            &["serve", "--services", "gateway"],
            &[("LLMOPS_SERVICE_URLS", urls.as_str())],
        )
        .unwrap();
    // `app.url()` is the gateway's.
    app.servers.swap(0, gw);
    for entry in &mut services {
        if entry.2 == 0 {
            entry.2 = gw;
        }
    }
    Split { app, services }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_as_separate_services_behind_the_gateway() {
    let sp = split().await;
    let app = &sp.app;

    // The gateway reports every remote service.
    let ready = app.get_public_json("/readyz").await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    for name in [
        "registry",
        "serving",
        "billing",
        "training",
        "rag",
        "monitoring",
    ] {
        assert_eq!(ready["services"][name], "ok", "{ready}");
    }

    app.price_tokens("standard").await.unwrap();
    let t = app.create_tenant_on("split", "standard").unwrap();
    let (tid, key) = (s(&t["tenant_id"]), s(&t["api_key"]));

    // The OpenAI SDK, unmodified: chat, stream, embeddings, errors.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/check_openai_sdk.py");
    let base = app.url("/v1");
    run_sdk_checks(
        "TEST_SDK_PYTHON",
        script,
        &[("LLMOPS_BASE_URL", &base), ("LLMOPS_API_KEY", &key)],
    )
    .await
    .unwrap();

    // A stream arrives as server-sent events, in several chunks, through
    // the gateway.
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 16, "seed": 1,
                    "temperature": 0.7, "stream": true,
                    "messages": [{"role": "user", "content": "Name three colours."}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/event-stream"));
    let body = res.text().await.unwrap();
    assert!(body.matches("data: ").count() > 2, "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");

    // A client that goes away mid-stream cancels the call at serving too:
    // its record (written by the serving process) ends `cancelled`, with
    // fewer tokens than were asked for.
    {
        use futures_util::StreamExt;
        let res = app
            .post(
                "/v1/chat/completions",
                &key,
                &json!({"model": "smollm2-135m-instruct", "max_tokens": 400, "seed": 3,
                        "temperature": 0.9, "stream": true,
                        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}]}),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let rid = header(&res, "x-request-id");
        let mut body = res.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
        drop(body);
        eventually(Duration::from_secs(30), || async {
            let recs = app.get_json("/v1/monitoring/requests", &key).await?;
            Ok(recs["data"].as_array().is_some_and(|d| {
                d.iter().any(|r| {
                    r["request_id"] == rid.as_str()
                        && r["finish_reason"] == "cancelled"
                        && r["output_tokens"].as_i64().unwrap_or(400) < 400
                })
            }))
        })
        .await
        .unwrap();
    }

    // The registry, through the gateway.
    let res = app
        .post("/v1/registry/models", &key, &json!({"name": "split-model"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let got = app
        .get_json("/v1/registry/models/split-model", &key)
        .await
        .unwrap();
    assert_eq!(got["name"], "split-model");

    // A version uploaded through the gateway (the artifact streams through
    // it), deployed by serving, which resolves it and streams its artifact
    // from the registry's process over HTTP, then served.
    app.register_smollm(&key).await.unwrap();
    let dep = app.deploy_ready(&key, "split-bot", "smol@1").await.unwrap();
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "split-bot", "max_tokens": 6, "temperature": 0,
                    "messages": [{"role": "user", "content": "Hello"}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let registry_log = app.servers[sp.index("registry")].logs();
    assert!(
        registry_log.contains("/v1/registry/resolve/{reference}")
            && registry_log.contains("/v1/registry/models/{model}/versions/{version}/artifact"),
        "{registry_log}"
    );
    let res = app
        .delete(&format!("/v1/deployments/{dep}"), &key)
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());

    // A knowledge base in the RAG service's process: ingested with the
    // served embedding model, answered with citations.
    let kb = crate::rag::create_kb(app, &key, "split-kb").await;
    let doc = crate::rag::upload(
        app,
        &key,
        &kb,
        json!({"text": "The Halvard service desk answers on extension 4417, weekdays from 8 to 18."}),
    )
    .await;
    crate::rag::wait_status(app, &key, &kb, &s(&doc["id"]), "ready").await;
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/answer"),
            &key,
            &json!({"question": "Which extension reaches the Halvard service desk?",
                    "model": "smollm2-135m-instruct", "max_tokens": 32}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let ans: Value = res.json().await.unwrap();
    assert!(!ans["citations"].as_array().unwrap().is_empty(), "{ans}");

    // Usage from the serving process reaches billing's ledger: the
    // upcoming invoice prices it.
    eventually(Duration::from_secs(30), || async {
        let up = app.get_json("/v1/invoices/upcoming", &key).await?;
        Ok(up["total_minor"].as_i64().unwrap_or(0) > 0)
    })
    .await
    .unwrap();
    // Records of the calls, written where serving runs, read where
    // monitoring runs.
    eventually(Duration::from_secs(30), || async {
        let recs = app.get_json("/v1/monitoring/requests", &key).await?;
        Ok(recs["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|r| r["kind"] == "chat")))
    })
    .await
    .unwrap();

    // An invoice, closed by the operator through the gateway.
    let now = chrono::Utc::now();
    let res = app
        .admin_post(
            "/admin/v1/billing/close-period",
            &json!({"tenant_id": tid,
                    "period_start": (now - chrono::TimeDelta::hours(1)).to_rfc3339(),
                    "period_end": now.to_rfc3339()}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let closed: Value = res.json().await.unwrap();
    let invoice = s(&closed[0]["id"]);
    assert!(closed[0]["total_minor"].as_i64().unwrap() > 0, "{closed}");
    let got = app
        .get_json(&format!("/v1/invoices/{invoice}"), &key)
        .await
        .unwrap();
    assert_eq!(got["id"], invoice.as_str());
    let html = app
        .get(&format!("/v1/invoices/{invoice}/html"), &key)
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.text().await.unwrap().contains(&invoice));

    // Serving asks billing over HTTP whether the tenant may spend: a
    // budget below what it spent refuses the next call with 402.
    let res = app
        .put("/v1/billing/budget", &key, &json!({"limit_minor": 1}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 4, "seed": 2,
                    "messages": [{"role": "user", "content": "Hello again."}]}),
        )
        .await
        .unwrap();
    problem(res, 402, "budget_exhausted").await.unwrap();
    // ... and it was billing's process that answered.
    let billing_log = app.servers[sp.index("billing")].logs();
    assert!(
        billing_log.contains("/internal/v1/billing/check"),
        "{billing_log}"
    );

    // Another tenant sees none of it, through any service.
    let other = app.create_tenant_on("other", "standard").unwrap();
    let okey = s(&other["api_key"]);
    let res = app
        .get(&format!("/v1/invoices/{invoice}"), &okey)
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
    let res = app
        .get("/v1/registry/models/split-model", &okey)
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
}

/// `PUT path` sent byte for byte (no client-side path normalisation);
/// returns the status.
async fn raw_put(base: &str, path: &str, key: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"currency": "USD", "components": []}"#;
    let req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_answer_only_the_gateway_and_fail_alone() {
    let mut sp = split().await;
    sp.app.price_tokens("standard").await.unwrap();
    let t = sp.app.create_tenant_on("edge", "standard").unwrap();
    let (tid, key) = (s(&t["tenant_id"]), s(&t["api_key"]));
    let registry = sp.base("registry");
    let client = reqwest::Client::new();
    let models = format!("{registry}/v1/registry/models");

    // The gateway has no internal routes to offer.
    let res = sp
        .app
        .post("/internal/v1/billing/check", &key, &json!({}))
        .await
        .unwrap();
    problem(res, 404, "route_not_found").await.unwrap();

    // Directly, with the tenant's own key: refused.
    let res = client.get(&models).bearer_auth(&key).send().await.unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();

    let caller = Caller::Tenant {
        tenant: tid.clone(),
        principal: "user".into(),
        principal_id: llmops_core::ids::UserId::new().to_string(),
        key_requests_per_minute: None,
        scopes: "registry".into(),
        requests_per_minute: 100,
        tokens_per_minute: 1000,
        concurrent_requests: 5,
    };
    let send = |token: String| {
        client
            .get(&models)
            .header(HEADER, token)
            .header("x-request-id", "req-direct")
            .send()
    };
    let keys = InternalKeys::new(SECRET.as_bytes(), Duration::from_secs(60));
    let to = |path: &'static str| Target {
        request_id: "req-direct",
        method: "GET",
        path,
    };
    let models_path = "/v1/registry/models";
    // The same request with a token the gateway's secret signs: answered
    // (so what refuses the others is the token alone).
    let good = keys
        .sign("registry", caller.clone(), to(models_path))
        .unwrap();
    let res = send(good).await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // Forged (another secret), misaddressed, expired, or issued for
    // another request (its id, or another path): refused.
    let forged = InternalKeys::new(
        b"not-the-secret-but-just-as-long-0123456789",
        Duration::from_secs(60),
    )
    .sign("registry", caller.clone(), to(models_path))
    .unwrap();
    let res = send(forged).await.unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    let misaddressed = keys
        .sign("billing", caller.clone(), to(models_path))
        .unwrap();
    let res = send(misaddressed).await.unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    let other_request = Target {
        request_id: "req-other",
        ..to(models_path)
    };
    let res = send(
        keys.sign("registry", caller.clone(), other_request)
            .unwrap(),
    )
    .await
    .unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    let other_path = to("/v1/registry/models/x");
    let res = send(keys.sign("registry", caller.clone(), other_path).unwrap())
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    let expired = InternalKeys::new(SECRET.as_bytes(), Duration::from_secs(0))
        .sign("registry", caller.clone(), to(models_path))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = send(expired).await.unwrap();
    let p = problem(res, 401, "unauthenticated").await.unwrap();
    assert!(s(&p["detail"]).contains("expired"), "{p}");
    // A tenant token opens neither the operator's routes nor the internal
    // ones; an operator token does not open the internal ones.
    let rest = sp.base("training,rag,monitoring");
    let pools = "/admin/v1/gpu_pools";
    let res = client
        .get(format!("{rest}{pools}"))
        .header(
            HEADER,
            keys.sign("training", caller.clone(), to(pools)).unwrap(),
        )
        .header("x-request-id", "req-direct")
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await.unwrap();
    let budget = "/internal/v1/billing/budget_use";
    for who in [caller.clone(), Caller::Operator] {
        let res = client
            .get(format!("{}{budget}?tenant_id={tid}", sp.base("billing")))
            .header(HEADER, keys.sign("billing", who, to(budget)).unwrap())
            .header("x-request-id", "req-direct")
            .send()
            .await
            .unwrap();
        problem(res, 401, "unauthenticated").await.unwrap();
    }

    // Through the gateway, a path that URL parsing would rewrite into
    // another service's operator or internal routes is refused, not
    // normalised (plain and percent-encoded dot segments); the plan's
    // pricing is unchanged.
    let before = sp
        .app
        .client
        .get(sp.app.url("/admin/v1/plans/standard/pricing"))
        .bearer_auth(llmops_tests::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for path in [
        "/v1/billing/../../%61dmin/v1/plans/standard/pricing",
        "/v1/billing/%2e%2e/%2e%2e/admin/v1/plans/standard/pricing",
        "/v1/billing/%2E%2E/%2E%2E/internal/v1/billing/budget_use",
    ] {
        // As written: an HTTP client would normalise the path first.
        let status = raw_put(&sp.app.servers[0].base, path, &key).await;
        assert_eq!(status, 400, "{path}");
    }
    let after = sp
        .app
        .client
        .get(sp.app.url("/admin/v1/plans/standard/pricing"))
        .bearer_auth(llmops_tests::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(before, after, "the plan's pricing changed");

    // Billing stops: its routes answer 503 with retry-after, the others
    // keep working, and the gateway stays ready (degraded).
    let billing = sp.base("billing");
    let port = billing.rsplit(':').next().unwrap().to_string();
    let i = sp.index("billing");
    sp.app.kill_server(i);
    let app = &sp.app;
    let res = app.get("/v1/invoices", &key).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(header(&res, "retry-after"), "5");
    problem(res, 503, "service_unavailable").await.unwrap();
    let res = app.get("/v1/registry/models", &key).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.get("/v1/tenant", &key).await.unwrap();
    assert_eq!(res.status(), 200);
    // Inference does not depend on billing being up (its budget check
    // lets the call through; the usage still reaches the ledger).
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 4, "temperature": 0,
                    "messages": [{"role": "user", "content": "Still there?"}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let ready = app.get_public_json("/readyz").await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["services"]["billing"], "unreachable", "{ready}");
    assert_eq!(ready["services"]["registry"], "ok", "{ready}");

    // Back on the same address: the gateway recovers without a restart.
    let dir = sp.app.data.0.join("billing").display().to_string();
    let listen = format!("127.0.0.1:{port}");
    sp.app
        .start_server_with(
            &["serve", "--services", "billing"],
            &[
                ("LLMOPS_DATA_DIR", dir.as_str()),
                ("LLMOPS_LISTEN", listen.as_str()),
            ],
        )
        .unwrap();
    let app = &sp.app;
    let res = app.get("/v1/invoices", &key).await.unwrap();
    assert_eq!(res.status(), 200);
    let ready = app.get_public_json("/readyz").await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
}
