//! Finalized invoices pushed to Stripe (localstripe): exactly once across
//! crashes at the three points where Stripe has created something we have not
//! recorded yet, in period order, failures retried and visible, and
//! payments coming back through localstripe's signed webhooks.

use super::billing::{M, admin, close, create_bigger_plan, ev, ingest, pricing, set_plan};
use llmops_tests::{Backend, LocalStripe, Options, TestApp};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const WEBHOOK_SECRET: &str = "whsec_localstripe";

async fn app_with(stripe_env: Vec<(String, String)>, extra: &[(&str, &str)]) -> TestApp {
    let mut env = stripe_env;
    env.push(("LLMOPS_BILLING_SETTLE_SECS".into(), "0".into()));
    env.push(("LLMOPS_STRIPE_LEASE_SECS".into(), "1".into()));
    env.push(("LLMOPS_BILLING_AUTO_CLOSE".into(), "false".into()));
    env.push(("LLMOPS_STRIPE_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// A tenant on a priced plan with usage in September and October 2026.
async fn priced_tenant(app: &TestApp, name: &str) -> (String, String) {
    let (t, key) = app.tenant_on_plan(name, 1000, 100_000, 10).await.unwrap();
    let res = admin(
        app,
        Method::PUT,
        &format!("/admin/v1/plans/plan-{name}/pricing"),
        &pricing(),
    )
    .await;
    assert_eq!(res.status(), 200);
    ingest(
        app,
        vec![
            ev(
                &format!("{name}-s1"),
                &t,
                "input_tokens",
                25 * M,
                "2026-09-10T00:00:00Z",
            ),
            ev(
                &format!("{name}-s2"),
                &t,
                "output_tokens",
                12 * M,
                "2026-09-11T00:00:00Z",
            ),
            ev(
                &format!("{name}-o1"),
                &t,
                "input_tokens",
                3 * M,
                "2026-10-10T00:00:00Z",
            ),
        ],
    )
    .await;
    (t, key)
}

/// The tenant's view of an invoice (its push state included).
async fn get_invoice(app: &TestApp, key: &str, id: &str) -> Value {
    let res = app
        .client
        .get(app.url(&format!("/v1/invoices/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Waits for an invoice's push to reach `status`; returns the invoice.
async fn push_reaches(app: &TestApp, key: &str, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = get_invoice(app, key, id).await;
        if last["stripe"]["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("push never reached {status}: {last}");
}

/// Waits until replica 0 has died (a failpoint aborted it), then drops it.
async fn wait_for_crash(app: &mut TestApp) {
    for _ in 0..300 {
        if !app.servers[0].is_running() {
            app.servers.remove(0);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not reach its failpoint");
}

async fn customer_of(stripe: &LocalStripe, tenant: &str) -> String {
    let all = stripe.get("/v1/customers?limit=100").await.unwrap();
    let found: Vec<&Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metadata"]["llmops_tenant_id"] == tenant)
        .collect();
    assert_eq!(found.len(), 1, "one Stripe customer per tenant: {all}");
    found[0]["id"].as_str().unwrap().to_string()
}

async fn stripe_invoices(stripe: &LocalStripe, customer: &str) -> Vec<Value> {
    let mut v = stripe
        .get(&format!("/v1/invoices?customer={customer}&limit=100"))
        .await
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();
    v.sort_by_key(|i| i["created"].as_i64());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_push_is_exactly_once_across_crashes_and_in_period_order() {
    let stripe = LocalStripe::start().await.unwrap();
    // The first replica dies right after Stripe created the tenant's
    // customer, before llmops recorded it.
    let mut app = app_with(stripe.env(), &[("FAILPOINTS", "stripe-customer-created")]).await;
    let (t, key) = priced_tenant(&app, "stripey").await;
    let sep = close(&app, &t, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z").await;
    assert_eq!(sep["stripe"]["status"], "pending", "{sep}");
    // $20 base + input 24M billable (9M × 0.50 + 15M × 0.25 = $8.25) + output $3.60.
    assert_eq!(sep["total_minor"], 3185);
    wait_for_crash(&mut app).await;
    let cus = customer_of(&stripe, &t).await;

    // The second finds that customer (no second one) and dies right after
    // Stripe created the first invoice item, before llmops recorded it.
    app.set_env("FAILPOINTS", Some("stripe-item-created"));
    app.start_server().unwrap();
    wait_for_crash(&mut app).await;
    assert_eq!(customer_of(&stripe, &t).await, cus);
    let items = stripe
        .get(&format!("/v1/invoiceitems?customer={cus}&limit=100"))
        .await
        .unwrap();
    assert_eq!(items["data"].as_array().unwrap().len(), 1, "{items}");
    assert!(stripe_invoices(&stripe, &cus).await.is_empty());

    // The third dies right after Stripe created the invoice (pulling both
    // items in), before llmops recorded it.
    app.set_env("FAILPOINTS", Some("stripe-invoice-created"));
    app.start_server().unwrap();
    wait_for_crash(&mut app).await;
    let created = stripe_invoices(&stripe, &cus).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["status"], "draft");

    // The fourth finishes: it finds the unrecorded item and invoice instead
    // of creating others, and finalizes.
    app.set_env("FAILPOINTS", None);
    app.start_server().unwrap();
    let id = sep["id"].as_str().unwrap();
    let last = push_reaches(&app, &key, id, "pushed").await;
    assert!(last["stripe"]["attempts"].as_i64().unwrap() >= 1, "{last}");
    let pushed = stripe_invoices(&stripe, &cus).await;
    assert_eq!(pushed.len(), 1, "one Stripe invoice: {pushed:?}");
    let si = &pushed[0];
    assert_eq!(last["stripe"]["stripe_invoice_id"], si["id"]);
    assert_eq!(si["status"], "open", "finalized: {si}");
    assert_eq!(si["total"], 3185);
    assert_eq!(si["currency"], "usd");
    // The subscription's base fee and the two usage lines, each once.
    let mut amounts: Vec<i64> = si["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    amounts.sort();
    assert_eq!(amounts, vec![360, 825, 2000], "{si}");
    // Nothing left pending at Stripe.
    let items = stripe
        .get(&format!("/v1/invoiceitems?customer={cus}&limit=100"))
        .await
        .unwrap();
    assert_eq!(items["data"].as_array().unwrap().len(), 0, "{items}");

    // October goes through in one attempt, on its own Stripe invoice, with
    // the same customer and subscription.
    let oct = close(&app, &t, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z").await;
    let oid = oct["id"].as_str().unwrap();
    let pushed_oct = push_reaches(&app, &key, oid, "pushed").await;
    assert_eq!(pushed_oct["stripe"]["attempts"], 1, "{pushed_oct}");
    let both = stripe_invoices(&stripe, &cus).await;
    assert_eq!(both.len(), 2);
    // $20 base + 3M input, 1M of it included: 2M × $0.50 = $1.00.
    assert_eq!(oct["total_minor"], 2100);
    assert_eq!(both[1]["total"], 2100, "{}", both[1]);
    assert_eq!(customer_of(&stripe, &t).await, cus);
    let subs = stripe
        .get(&format!("/v1/subscriptions?customer={cus}"))
        .await
        .unwrap();
    assert_eq!(subs["data"].as_array().unwrap().len(), 1, "{subs}");

    // Asking again for a pushed invoice changes nothing at Stripe.
    let res = admin(
        &app,
        Method::POST,
        &format!("/admin/v1/invoices/{oid}/stripe/retry"),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stripe_invoices(&stripe, &cus).await.len(), 2);

    // A plan with another base fee: from the next period on, a new
    // subscription carries it and the old one is canceled.
    create_bigger_plan(&app).await;
    set_plan(&app, &t, "plan-bigger").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let from = chrono::Utc::now();
    let next = close(
        &app,
        &t,
        &from.to_rfc3339(),
        &(from + chrono::Duration::hours(1)).to_rfc3339(),
    )
    .await;
    assert_eq!(next["total_minor"], 5000, "{next}");
    push_reaches(&app, &key, next["id"].as_str().unwrap(), "pushed").await;
    let three = stripe_invoices(&stripe, &cus).await;
    assert_eq!(three.len(), 3);
    assert_eq!(three[2]["total"], 5000, "{}", three[2]);
    let subs = stripe
        .get(&format!("/v1/subscriptions?customer={cus}"))
        .await
        .unwrap();
    let live = subs["data"].as_array().unwrap();
    assert_eq!(live.len(), 1, "{subs}");
    assert_eq!(
        live[0]["plan"]["id"], "llmops-plan-bigger-usd-5000",
        "{subs}"
    );
}

/// Attaches a test card as the customer's default payment method.
async fn add_card(stripe: &LocalStripe, customer: &str, number: &str) -> String {
    let pm = stripe
        .post(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", number),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2030"),
                ("card[cvc]", "123"),
            ],
        )
        .await
        .unwrap();
    let pm = pm["id"].as_str().unwrap().to_string();
    stripe
        .post(
            &format!("/v1/payment_methods/{pm}/attach"),
            &[("customer", customer)],
        )
        .await
        .unwrap();
    stripe
        .post(
            &format!("/v1/customers/{customer}"),
            &[("invoice_settings[default_payment_method]", &pm)],
        )
        .await
        .unwrap();
    pm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_at_stripe_comes_back_by_webhook_and_voids_reach_stripe() {
    let stripe = LocalStripe::start().await.unwrap();
    let app = app_with(stripe.env(), &[]).await;
    let (t, key) = priced_tenant(&app, "payer").await;
    // localstripe signs its events with this secret, as Stripe does.
    stripe
        .post(
            "/_config/webhooks/llmops",
            &[
                ("url", &app.url("/v1/billing/stripe/webhook")),
                ("secret", WEBHOOK_SECRET),
            ],
        )
        .await
        .unwrap();
    let sep = close(&app, &t, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z").await;
    let id = sep["id"].as_str().unwrap();
    let pushed = push_reaches(&app, &key, id, "pushed").await;
    assert_eq!(pushed["status"], "finalized");
    let si = pushed["stripe"]["stripe_invoice_id"].as_str().unwrap();

    // The customer adds a card and Stripe collects the invoice.
    let cus = customer_of(&stripe, &t).await;
    add_card(&stripe, &cus, "4242424242424242").await;
    let paid = stripe
        .post(&format!("/v1/invoices/{si}/pay"), &[])
        .await
        .unwrap();
    assert_eq!(paid["status"], "paid");
    let mut last = Value::Null;
    for _ in 0..100 {
        last = get_invoice(&app, &key, id).await;
        if last["status"] == "paid" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "paid", "{last}");
    let res = admin(
        &app,
        Method::POST,
        &format!("/admin/v1/invoices/{id}/void"),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 409);

    // October's charge is declined (a card that attaches but fails). The
    // decline does not come back: localstripe sends no event for a failed
    // `/pay` (the `payment_failed` webhook is tested with events signed as
    // Stripe signs them, in billing.rs).
    let oct = close(&app, &t, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z").await;
    let oid = oct["id"].as_str().unwrap();
    let pushed = push_reaches(&app, &key, oid, "pushed").await;
    let osi = pushed["stripe"]["stripe_invoice_id"].as_str().unwrap();
    add_card(&stripe, &cus, "4000000000000341").await;
    let attempt = stripe
        .post(&format!("/v1/invoices/{osi}/pay"), &[])
        .await
        .unwrap();
    assert_eq!(attempt["status"], "open", "declined: {attempt}");
    // Voiding it voids it at Stripe first.
    let res = admin(
        &app,
        Method::POST,
        &format!("/admin/v1/invoices/{oid}/void"),
        &json!({}),
    )
    .await;
    let status = res.status();
    let voided: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{voided}");
    assert_eq!(voided["status"], "void");
    assert_eq!(voided["stripe"]["status"], "voided", "{voided}");
    let at_stripe = stripe.get(&format!("/v1/invoices/{osi}")).await.unwrap();
    assert_eq!(at_stripe["status"], "void", "{at_stripe}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pushes_are_retried_visibly_and_can_be_retried_by_an_operator() {
    // Stripe unreachable: a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = vec![
        (
            "LLMOPS_STRIPE_API_KEY".to_string(),
            "sk_test_llmops".to_string(),
        ),
        (
            "LLMOPS_STRIPE_API_BASE".to_string(),
            format!("http://127.0.0.1:{closed}"),
        ),
    ];
    let mut app = app_with(down, &[("LLMOPS_STRIPE_MAX_ATTEMPTS", "2")]).await;
    let (t, key) = priced_tenant(&app, "offline").await;
    let sep = close(&app, &t, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z").await;
    let oct = close(&app, &t, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z").await;
    let id = sep["id"].as_str().unwrap();
    let retrying = push_reaches(&app, &key, id, "retrying").await;
    assert_eq!(retrying["stripe"]["attempts"], 1, "{retrying}");
    assert!(
        retrying["stripe"]["last_error"]
            .as_str()
            .unwrap()
            .contains("Stripe unreachable"),
        "{retrying}"
    );
    assert!(retrying["stripe"]["next_attempt_at"].is_string());
    // The second attempt (2 s later) is the last.
    let failed = push_reaches(&app, &key, id, "failed").await;
    assert_eq!(failed["stripe"]["attempts"], 2, "{failed}");
    // October waits behind September: never attempted.
    let waiting = get_invoice(&app, &key, oct["id"].as_str().unwrap()).await;
    assert_eq!(waiting["stripe"]["status"], "pending", "{waiting}");
    assert_eq!(waiting["stripe"]["attempts"], 0);
    // Voided before it was pushed: the push is canceled.
    let res = admin(
        &app,
        Method::POST,
        &format!("/admin/v1/invoices/{}/void", oct["id"].as_str().unwrap()),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let canceled: Value = res.json().await.unwrap();
    assert_eq!(canceled["stripe"]["status"], "canceled", "{canceled}");

    // Stripe is back (the replica restarted with the right address); the
    // operator retries September and both go through, in order.
    let stripe = LocalStripe::start().await.unwrap();
    app.kill_server(0);
    app.servers.remove(0);
    for (k, v) in stripe.env() {
        app.set_env(&k, Some(&v));
    }
    app.start_server().unwrap();
    let res = admin(
        &app,
        Method::POST,
        &format!("/admin/v1/invoices/{id}/stripe/retry"),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 200);
    push_reaches(&app, &key, id, "pushed").await;
    let cus = customer_of(&stripe, &t).await;
    let all = stripe_invoices(&stripe, &cus).await;
    let totals: Vec<i64> = all.iter().map(|i| i["total"].as_i64().unwrap()).collect();
    assert_eq!(totals, vec![3185], "the voided October never went");
    let oct_now = get_invoice(&app, &key, oct["id"].as_str().unwrap()).await;
    assert_eq!(oct_now["stripe"]["status"], "canceled");
    let res = admin(
        &app,
        Method::POST,
        &format!(
            "/admin/v1/invoices/{}/stripe/retry",
            oct["id"].as_str().unwrap()
        ),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 409, "a void invoice is not pushed");
    // A canceled push holds nothing back: November goes.
    let nov = close(&app, &t, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z").await;
    push_reaches(&app, &key, nov["id"].as_str().unwrap(), "pushed").await;
    assert_eq!(stripe_invoices(&stripe, &cus).await.len(), 2);

    // Retry is an operator route; tenants are refused, and an unknown
    // invoice is a 404.
    let res = app
        .client
        .post(app.url(&format!("/admin/v1/invoices/{id}/stripe/retry")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = admin(
        &app,
        Method::POST,
        "/admin/v1/invoices/inv_01jzzzzzzzzzzzzzzzzzzzzzzz/stripe/retry",
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 404);
}
