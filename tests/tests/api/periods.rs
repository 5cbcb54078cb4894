//! Billing periods: ended periods close by themselves (once, also with two
//! replicas closing), back to back; a plan change takes effect at the next
//! period boundary.

use super::billing::{M, admin, close, create_bigger_plan, ev, ingest, pricing, set_plan};
use llmops_tests::{Backend, Options, TestApp, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

async fn invoices(app: &TestApp, key: &str) -> Vec<Value> {
    let res = app.get("/v1/invoices?limit=100", key).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut v = res.json::<Value>().await.unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();
    v.sort_by(|a, b| {
        a["period_start"]
            .as_str()
            .unwrap()
            .cmp(b["period_start"].as_str().unwrap())
    });
    v
}

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

on_both_backends!(ended_periods_close_by_themselves_once_and_back_to_back);

async fn ended_periods_close_by_themselves_once_and_back_to_back(backend: Backend) {
    let mut app = TestApp::spawn_with(
        backend,
        Options {
            env: vec![
                ("LLMOPS_BILLING_SETTLE_SECS".into(), "0".into()),
                ("LLMOPS_BILLING_PERIOD_SECS".into(), "2".into()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A second replica closes the same periods concurrently.
    app.start_server().unwrap();
    let (t, key) = app
        .tenant_on_plan("ticker", 1000, 100_000, 10)
        .await
        .unwrap();
    let res = admin(
        &app,
        Method::PUT,
        "/admin/v1/plans/plan-ticker/pricing",
        &pricing(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let used_at = chrono::Utc::now();
    ingest(
        &app,
        vec![ev(
            "tick-1",
            &t,
            "input_tokens",
            3 * M,
            &used_at.to_rfc3339(),
        )],
    )
    .await;
    // Wait for the period with the usage and the one after it.
    let mut all = Vec::new();
    for _ in 0..200 {
        all = invoices(&app, &key).await;
        if all
            .iter()
            .any(|i| at(&i["period_start"]) > used_at + chrono::Duration::seconds(2))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(all.len() >= 2, "{all:?}");
    // One invoice per period, two seconds each, back to back.
    let starts: HashSet<&str> = all
        .iter()
        .map(|i| i["period_start"].as_str().unwrap())
        .collect();
    assert_eq!(starts.len(), all.len(), "{all:?}");
    for w in all.windows(2) {
        assert_eq!(w[0]["period_end"], w[1]["period_start"], "{all:?}");
    }
    for i in &all {
        assert_eq!(
            at(&i["period_end"]) - at(&i["period_start"]),
            chrono::Duration::seconds(2)
        );
        assert_eq!(i["lines"][0]["amount_minor"], 2000, "base fee: {i}");
    }
    // The usage is on exactly the invoice of its period: 3M input, 1M
    // included, 2M × $0.50.
    let with_usage: Vec<&Value> = all
        .iter()
        .filter(|i| i["total_minor"].as_i64().unwrap() > 2000)
        .collect();
    assert_eq!(with_usage.len(), 1, "{all:?}");
    let inv = with_usage[0];
    assert!(at(&inv["period_start"]) <= used_at && used_at < at(&inv["period_end"]));
    assert_eq!(inv["total_minor"], 2100, "{inv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_takes_effect_at_the_next_period() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env: vec![
                ("LLMOPS_BILLING_SETTLE_SECS".into(), "0".into()),
                ("LLMOPS_BILLING_AUTO_CLOSE".into(), "false".into()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (t, key) = app
        .tenant_on_plan("mover", 1000, 100_000, 10)
        .await
        .unwrap();
    let res = admin(
        &app,
        Method::PUT,
        "/admin/v1/plans/plan-mover/pricing",
        &pricing(),
    )
    .await;
    assert_eq!(res.status(), 200);
    create_bigger_plan(&app).await;

    let now = chrono::Utc::now();
    let p1 = (
        now - chrono::Duration::hours(1),
        now + chrono::Duration::seconds(1),
    );
    let p2 = (p1.1, p1.1 + chrono::Duration::hours(1));
    ingest(
        &app,
        vec![ev("mv-1", &t, "input_tokens", 3 * M, &now.to_rfc3339())],
    )
    .await;
    // The open month's draft: $20 base + 2M billable input × $0.50.
    let draft = upcoming(&app, &key).await;
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["plan_id"], "plan-mover");
    assert_eq!(draft["total_minor"], 2100, "{draft}");
    // Another tenant's draft has none of it.
    let (_, other) = app
        .tenant_on_plan("bystander", 1000, 100_000, 10)
        .await
        .unwrap();
    let theirs = upcoming(&app, &other).await;
    assert_eq!(theirs["total_minor"], 0, "{theirs}");
    assert_eq!(theirs["lines"], json!([]));
    // Moving up mid-period: limits change now, prices at the boundary.
    set_plan(&app, &t, "plan-bigger").await;
    // The open period started on the old plan, so its draft still does.
    assert_eq!(upcoming(&app, &key).await["plan_id"], "plan-mover");
    let first = close(&app, &t, &p1.0.to_rfc3339(), &p1.1.to_rfc3339()).await;
    assert_eq!(first["plan_id"], "plan-mover", "{first}");
    assert_eq!(first["total_minor"], 2000 + 100, "{first}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = close(&app, &t, &p2.0.to_rfc3339(), &p2.1.to_rfc3339()).await;
    assert_eq!(second["plan_id"], "plan-bigger", "{second}");
    assert_eq!(second["total_minor"], 5000, "{second}");
    // The tenant sees both; the open period now starts where the second
    // ended, on the new plan.
    assert_eq!(invoices(&app, &key).await.len(), 2);
    let draft = upcoming(&app, &key).await;
    assert_eq!(draft["period_start"], second["period_end"], "{draft}");
    assert_eq!(draft["plan_id"], "plan-bigger");
    assert_eq!(draft["total_minor"], 5000);
    // Periods close in order, without overlap: an earlier or overlapping
    // one would bill some usage twice.
    let res = admin(
        &app,
        Method::POST,
        "/admin/v1/billing/close-period",
        &json!({"tenant_id": t, "period_start": "2026-10-01T00:00:00Z",
                "period_end": "2026-11-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(res.status(), 409);
    let res = admin(
        &app,
        Method::POST,
        "/admin/v1/billing/close-period",
        &json!({"tenant_id": t, "period_start": (p2.0 + chrono::Duration::minutes(1)).to_rfc3339(),
                "period_end": (p2.1 + chrono::Duration::hours(1)).to_rfc3339()}),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(invoices(&app, &key).await.len(), 2);
}

async fn upcoming(app: &TestApp, key: &str) -> Value {
    let res = app.get("/v1/invoices/upcoming", key).await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}
