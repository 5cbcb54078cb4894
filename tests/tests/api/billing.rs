//! Invoices rated from the ledger by plan prices; idempotent and concurrent
//! period close; late usage as adjustments; isolation.

use llmops_tests::{Backend, OPERATOR_TOKEN, Options, TestApp, on_both_backends, problem, s};
use serde_json::{Value, json};

on_both_backends!(invoices_rate_the_ledger_and_carry_late_usage);

pub(crate) const M: u64 = 1_000_000;

fn app_options() -> Options {
    Options {
        env: vec![
            ("LLMOPS_BILLING_SETTLE_SECS".into(), "0".into()),
            // These tests close periods themselves.
            ("LLMOPS_BILLING_AUTO_CLOSE".into(), "false".into()),
        ],
        ..Default::default()
    }
}

pub(crate) fn pricing() -> Value {
    json!({
        "currency": "USD",
        "base_fee_minor": 2000,
        "components": [
            {"meter": "input_tokens", "included": M, "mode": "graduated", "description": "Input tokens",
             "tiers": [{"up_to": 9 * M, "rate": {"amount_minor": 50, "per": M}},
                       {"up_to": null, "rate": {"amount_minor": 25, "per": M}}]},
            {"meter": "output_tokens", "mode": "volume", "description": "Output tokens",
             "tiers": [{"up_to": 10 * M, "rate": {"amount_minor": 50, "per": M}},
                       {"up_to": null, "rate": {"amount_minor": 30, "per": M}}]}
        ]
    })
}

pub(crate) async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(OPERATOR_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn ingest(app: &TestApp, events: Vec<Value>) {
    let res = admin(
        app,
        reqwest::Method::POST,
        "/admin/v1/usage/events",
        &json!({ "events": events }),
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// `plan-bigger`: the test pricing with a $50 base fee.
pub(crate) async fn create_bigger_plan(app: &TestApp) {
    let res = admin(
        app,
        reqwest::Method::POST,
        "/admin/v1/plans",
        &json!({"id": "plan-bigger", "requests_per_minute": 1000, "tokens_per_minute": 100_000,
                "concurrent_requests": 10}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let mut bigger = pricing();
    bigger["base_fee_minor"] = json!(5000);
    let res = admin(
        app,
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-bigger/pricing",
        &bigger,
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// Moves a tenant to another plan (operator API).
pub(crate) async fn set_plan(app: &TestApp, tenant: &str, plan: &str) {
    let res = admin(
        app,
        reqwest::Method::PATCH,
        &format!("/admin/v1/tenants/{tenant}"),
        &json!({"plan": plan}),
    )
    .await;
    assert_eq!(res.status(), 200);
}

pub(crate) fn ev(id: &str, tenant: &str, meter: &str, qty: u64, at: &str) -> Value {
    json!({"id": id, "tenant_id": tenant, "meter": meter, "quantity": qty,
           "dimensions": {"model": "m"}, "occurred_at": at})
}

pub(crate) async fn close(app: &TestApp, tenant: &str, start: &str, end: &str) -> Value {
    let res = admin(
        app,
        reqwest::Method::POST,
        "/admin/v1/billing/close-period",
        &json!({"tenant_id": tenant, "period_start": start, "period_end": end}),
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()[0].clone()
}

async fn invoices_rate_the_ledger_and_carry_late_usage(backend: Backend) {
    let app = TestApp::spawn_with(backend, app_options()).await.unwrap();
    let (ta, ka) = app.tenant_on_plan("acme", 1000, 100_000, 10).await.unwrap();
    let (_, kb) = app
        .tenant_on_plan("globex", 1000, 100_000, 10)
        .await
        .unwrap();
    let res = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-acme/pricing",
        &pricing(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut bad = pricing();
    bad["components"][0]["tiers"][1]["up_to"] = json!(5);
    let res = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-acme/pricing",
        &bad,
    )
    .await;
    problem(res, 422, "validation_error").await.unwrap();

    // October: 25M input tokens in three events, 12M output, and one event
    // in November that October must not carry.
    ingest(
        &app,
        vec![
            ev("o1", &ta, "input_tokens", 10 * M, "2026-10-05T10:00:00Z"),
            ev("o2", &ta, "input_tokens", 10 * M, "2026-10-15T10:00:00Z"),
            ev("o3", &ta, "input_tokens", 5 * M, "2026-10-31T23:59:59Z"),
            ev("o4", &ta, "output_tokens", 12 * M, "2026-10-20T00:00:00Z"),
            ev("n1", &ta, "output_tokens", M, "2026-11-02T00:00:00Z"),
        ],
    )
    .await;
    let oct = close(&app, &ta, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z").await;
    // $20 base; input: 24M billable = 9M × $0.50 + 15M × $0.25 = $8.25;
    // output: volume, 12M × $0.30 = $3.60. Total $31.85.
    let amounts: Vec<i64> = oct["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount_minor"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, vec![2000, 825, 360], "{oct}");
    assert_eq!(oct["total_minor"], 3185);
    assert_eq!(oct["status"], "finalized");
    assert_eq!(oct["currency"], "USD");
    // Closing again returns the same invoice.
    let again = close(&app, &ta, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z").await;
    assert_eq!(again["id"], oct["id"]);

    // A late October event lands on November's invoice, priced at the
    // margin: 27M input = 9M × 0.50 + 17M × 0.25 = $8.75, minus $8.25 = $0.50.
    ingest(
        &app,
        vec![ev(
            "late",
            &ta,
            "input_tokens",
            2 * M,
            "2026-10-20T00:00:00Z",
        )],
    )
    .await;
    let nov = close(&app, &ta, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z").await;
    let lines = nov["lines"].as_array().unwrap();
    let adj: Vec<&Value> = lines.iter().filter(|l| l["adjustment"] == true).collect();
    assert_eq!(adj.len(), 1, "{nov}");
    assert_eq!(adj[0]["quantity"], 2 * M);
    assert_eq!(adj[0]["amount_minor"], 50);
    // November's own output: 1M × $0.50 = $0.50 (+ $20 base).
    let own: Vec<i64> = lines
        .iter()
        .filter(|l| l["adjustment"] == false)
        .map(|l| l["amount_minor"].as_i64().unwrap())
        .collect();
    assert_eq!(own, vec![2000, 50]);
    assert_eq!(nov["total_minor"], 2100);

    // The tenant reads its invoices; others cannot.
    let list = app.get_json("/v1/invoices", &ka).await.unwrap();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    let id = s(&oct["id"]);
    let got = app
        .get_json(&format!("/v1/invoices/{id}"), &ka)
        .await
        .unwrap();
    assert_eq!(got["total_minor"], 3185);
    let html = app
        .get(&format!("/v1/invoices/{id}/html"), &ka)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("31.85 USD") && html.contains("acme"),
        "{html}"
    );
    for path in [
        format!("/v1/invoices/{id}"),
        format!("/v1/invoices/{id}/html"),
    ] {
        problem(app.get(&path, &kb).await.unwrap(), 404, "not_found")
            .await
            .unwrap();
    }
    assert_eq!(
        app.get_json("/v1/invoices", &kb).await.unwrap()["data"],
        json!([])
    );
}

/// Ten concurrent closes of the same period make one invoice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invoice_per_tenant_and_period_under_concurrency() {
    let mut app = TestApp::spawn_with(Backend::Postgres, app_options())
        .await
        .unwrap();
    let second = app.start_server().unwrap();
    let (ta, _) = app.tenant_on_plan("busy", 1000, 100_000, 10).await.unwrap();
    admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-busy/pricing",
        &pricing(),
    )
    .await;
    ingest(
        &app,
        vec![ev(
            "x1",
            &ta,
            "output_tokens",
            3 * M,
            "2026-10-10T00:00:00Z",
        )],
    )
    .await;
    let bases = [
        app.servers[0].base.clone(),
        app.servers[second].base.clone(),
    ];
    let calls = (0..10).map(|i| {
        let base = bases[i % 2].clone();
        let ta = ta.clone();
        let c = app.client.clone();
        async move {
            c.post(format!("{base}/admin/v1/billing/close-period"))
                .bearer_auth(OPERATOR_TOKEN)
                .json(&json!({"tenant_id": ta, "period_start": "2026-10-01T00:00:00Z", "period_end": "2026-11-01T00:00:00Z"}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let ids: std::collections::HashSet<String> = results.iter().map(|r| s(&r[0]["id"])).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(results[0][0]["total_minor"], 2000 + 150);
}

on_both_backends!(stripe_webhooks_are_verified_and_applied_once);

fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn stripe_webhooks_are_verified_and_applied_once(backend: Backend) {
    const SECRET: &str = "whsec_test_0123456789";
    let mut opts = app_options();
    opts.env
        .push(("LLMOPS_STRIPE_WEBHOOK_SECRET".into(), SECRET.into()));
    let app = TestApp::spawn_with(backend, opts).await.unwrap();
    let (ta, ka) = app
        .tenant_on_plan("payer", 1000, 100_000, 10)
        .await
        .unwrap();
    admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-payer/pricing",
        &pricing(),
    )
    .await;
    let inv = close(&app, &ta, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z").await;
    let id = s(&inv["id"]);
    assert_eq!(inv["status"], "finalized");

    let post = |body: String, sig: Option<String>| {
        let app = &app;
        async move {
            let mut req = app
                .client
                .post(app.url("/v1/billing/stripe/webhook"))
                .header("content-type", "application/json")
                .body(body);
            if let Some(sig) = sig {
                req = req.header("stripe-signature", sig);
            }
            req.send().await.unwrap()
        }
    };
    let event = json!({"id": "evt_paid_1", "type": "invoice.paid",
                       "data": {"object": {"id": "in_123", "metadata": {"llmops_invoice_id": id}}}})
    .to_string();
    let now = chrono::Utc::now().timestamp();

    // Unsigned, wrongly signed, stale: refused, nothing changes.
    problem(post(event.clone(), None).await, 400, "bad_request")
        .await
        .unwrap();
    problem(
        post(
            event.clone(),
            Some(stripe_signature("whsec_wrong", now, &event)),
        )
        .await,
        400,
        "bad_request",
    )
    .await
    .unwrap();
    problem(
        post(
            event.clone(),
            Some(stripe_signature(SECRET, now - 600, &event)),
        )
        .await,
        400,
        "bad_request",
    )
    .await
    .unwrap();
    let tampered = event.replace("invoice.paid", "invoice.payment_failed");
    problem(
        post(tampered, Some(stripe_signature(SECRET, now, &event))).await,
        400,
        "bad_request",
    )
    .await
    .unwrap();
    assert_eq!(
        app.get_json(&format!("/v1/invoices/{id}"), &ka)
            .await
            .unwrap()["status"],
        "finalized"
    );

    // Properly signed: applied once; a redelivery is acknowledged, no effect.
    let res = post(event.clone(), Some(stripe_signature(SECRET, now, &event))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["result"], "applied");
    assert_eq!(
        app.get_json(&format!("/v1/invoices/{id}"), &ka)
            .await
            .unwrap()["status"],
        "paid"
    );
    let res = post(event.clone(), Some(stripe_signature(SECRET, now, &event))).await;
    assert_eq!(res.json::<Value>().await.unwrap()["result"], "duplicate");
    // A later failure event cannot un-pay a paid invoice.
    let failed = json!({"id": "evt_failed_1", "type": "invoice.payment_failed",
                        "data": {"object": {"metadata": {"llmops_invoice_id": id}}}})
    .to_string();
    let res = post(failed.clone(), Some(stripe_signature(SECRET, now, &failed))).await;
    assert_eq!(res.json::<Value>().await.unwrap()["result"], "ignored");
    assert_eq!(
        app.get_json(&format!("/v1/invoices/{id}"), &ka)
            .await
            .unwrap()["status"],
        "paid"
    );

    // A paid invoice cannot be voided; an unpaid one can (once, idempotently).
    let res = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/v1/invoices/{id}/void"),
        &json!({}),
    )
    .await;
    problem(res, 409, "conflict").await.unwrap();
    let nov = close(&app, &ta, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z").await;
    let nid = s(&nov["id"]);
    for _ in 0..2 {
        let res = admin(
            &app,
            reqwest::Method::POST,
            &format!("/admin/v1/invoices/{nid}/void"),
            &json!({}),
        )
        .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "void");
    }
    let res = admin(
        &app,
        reqwest::Method::POST,
        "/admin/v1/invoices/inv_01jdq3k5h8x9v2m4n6p8r0t2w4/void",
        &json!({}),
    )
    .await;
    problem(res, 404, "not_found").await.unwrap();
    // Voided at Stripe (its dashboard): voided here too.
    let dec = close(&app, &ta, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z").await;
    let did = s(&dec["id"]);
    let voided = json!({"id": "evt_void_1", "type": "invoice.voided",
                        "data": {"object": {"metadata": {"llmops_invoice_id": did}}}})
    .to_string();
    let res = post(voided.clone(), Some(stripe_signature(SECRET, now, &voided))).await;
    assert_eq!(res.json::<Value>().await.unwrap()["result"], "applied");
    assert_eq!(
        app.get_json(&format!("/v1/invoices/{did}"), &ka)
            .await
            .unwrap()["status"],
        "void"
    );
}
