//! The usage ledger: idempotent, group-committed ingestion; acknowledged
//! events survive a crash; `GET /v1/usage` aggregates per tenant.

use futures_util::StreamExt;
use llmops_tests::{Backend, OPERATOR_TOKEN, TestApp, on_both_backends, problem, s};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

on_both_backends!(usage_is_aggregated_per_tenant_meter_model_and_bucket);

fn event(id: &str, tenant: &str, meter: &str, qty: i64, model: &str, at: &str) -> Value {
    json!({"id": id, "tenant_id": tenant, "meter": meter, "quantity": qty,
           "dimensions": {"model": model}, "occurred_at": at})
}

async fn ingest(app: &TestApp, base: &str, events: Vec<Value>) -> reqwest::Response {
    app.client
        .post(format!("{base}/admin/v1/usage/events"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap()
}

async fn count_events(app: &TestApp) -> i64 {
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM usage_events",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn usage_is_aggregated_per_tenant_meter_model_and_bucket(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let a = app.create_tenant("alpha").unwrap();
    let b = app.create_tenant("beta").unwrap();
    let (ta, ka, kb) = (s(&a["tenant_id"]), s(&a["api_key"]), s(&b["api_key"]));
    let base = app.servers[0].base.clone();
    let events = vec![
        event("e1", &ta, "input_tokens", 100, "m1", "2026-11-01T10:15:00Z"),
        event("e2", &ta, "input_tokens", 50, "m1", "2026-11-01T10:45:00Z"),
        event("e3", &ta, "output_tokens", 7, "m2", "2026-11-01T11:05:00Z"),
        event("e4", &ta, "input_tokens", 1, "m1", "2026-11-02T00:00:00Z"),
        event(
            "e5",
            &ta,
            "input_tokens",
            1000,
            "m1",
            "2026-11-03T00:00:00Z",
        ),
    ];
    let res = ingest(&app, &base, events.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"inserted": 5, "duplicates": 0})
    );
    // A retry (plus one new event) books only the new one.
    let mut retry = events.clone();
    retry.push(event(
        "e6",
        &ta,
        "output_tokens",
        3,
        "m2",
        "2026-11-01T11:30:00Z",
    ));
    let res = ingest(&app, &base, retry).await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"inserted": 1, "duplicates": 5})
    );

    let range = "start=2026-11-01T00:00:00Z&end=2026-11-03T00:00:00Z";
    let hourly = app
        .get_json(&format!("/v1/usage?{range}&bucket=hour"), &ka)
        .await
        .unwrap();
    let rows: Vec<(String, String, String, i64)> = hourly["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                s(&r["bucket_start"]),
                s(&r["meter"]),
                s(&r["model"]),
                r["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "2026-11-01T10:00:00Z".into(),
                "input_tokens".into(),
                "m1".into(),
                150
            ),
            (
                "2026-11-01T11:00:00Z".into(),
                "output_tokens".into(),
                "m2".into(),
                10
            ),
            (
                "2026-11-02T00:00:00Z".into(),
                "input_tokens".into(),
                "m1".into(),
                1
            ),
        ]
    );
    let daily = app
        .get_json(
            &format!("/v1/usage?{range}&bucket=day&meter=input_tokens"),
            &ka,
        )
        .await
        .unwrap();
    let q: Vec<i64> = daily["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(q, vec![150, 1]);

    // Isolation, scope, validation.
    let other = app
        .get_json(&format!("/v1/usage?{range}"), &kb)
        .await
        .unwrap();
    assert_eq!(other["data"], json!([]));
    let inf = app.key_with_scope(&ka, "inference").await.unwrap();
    problem(
        app.get("/v1/usage", &inf).await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await
    .unwrap();
    problem(
        app.get("/v1/usage?bucket=week", &ka).await.unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    problem(
        app.get(
            "/v1/usage?start=2026-11-03T00:00:00Z&end=2026-11-01T00:00:00Z",
            &ka,
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let res = ingest(
        &app,
        &base,
        vec![event(
            "x",
            "ten_01jdq3k5h8x9v2m4n6p8r0t2w4",
            "input_tokens",
            1,
            "m",
            "2026-11-01T00:00:00Z",
        )],
    )
    .await;
    problem(res, 422, "validation_error").await.unwrap();
    let res = ingest(
        &app,
        &base,
        vec![event(
            "neg",
            &ta,
            "input_tokens",
            -1,
            "m",
            "2026-11-01T00:00:00Z",
        )],
    )
    .await;
    problem(res, 422, "validation_error").await.unwrap();
    let res = ingest(
        &app,
        &base,
        vec![event(
            "bad",
            &ta,
            "Input Tokens",
            1,
            "m",
            "2026-11-01T00:00:00Z",
        )],
    )
    .await;
    problem(res, 422, "validation_error").await.unwrap();
}

/// Every event the ledger acknowledged is still there after the process is
/// killed (SIGKILL) in the middle of ingestion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_crash() {
    let mut app = TestApp::spawn(Backend::Postgres).await.unwrap();
    let t = app.create_tenant("crashy").unwrap();
    let tid = s(&t["tenant_id"]);
    let base = app.servers[0].base.clone();
    let batches: Vec<Vec<Value>> = (0..40)
        .map(|b| {
            (0..50)
                .map(|i| {
                    event(
                        &format!("c{b}-{i}"),
                        &tid,
                        "output_tokens",
                        1,
                        "m",
                        "2026-11-01T00:00:00Z",
                    )
                })
                .collect()
        })
        .collect();
    let mut pending: futures_util::stream::FuturesUnordered<_> = batches
        .iter()
        .enumerate()
        .map(|(i, batch)| {
            let (app, base) = (&app, base.clone());
            async move {
                let res = app
                    .client
                    .post(format!("{base}/admin/v1/usage/events"))
                    .bearer_auth(OPERATOR_TOKEN)
                    .json(&json!({ "events": batch }))
                    .send()
                    .await;
                (i, res.map(|r| r.status().as_u16()).unwrap_or(0))
            }
        })
        .collect();
    let mut acked = Vec::new();
    while let Some((i, status)) = pending.next().await {
        if status == 200 {
            acked.push(i);
        }
        if acked.len() == 8 {
            break;
        }
    }
    drop(pending);
    app.kill_server(0);
    assert!(acked.len() >= 8);
    app.start_server().unwrap();
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    for i in acked {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM usage_events WHERE id LIKE $1",
                [format!("c{i}-%").into()],
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        assert_eq!(n, 50, "acknowledged batch {i} lost events");
    }
    let total = count_events(&app).await;
    assert!(
        total <= 2000 && total % 50 == 0,
        "batches commit whole: {total}"
    );
}

/// Two replicas ingesting the same events concurrently book them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_ingest_the_same_events_once() {
    let mut app = TestApp::spawn(Backend::Postgres).await.unwrap();
    let second = app.start_server().unwrap();
    let t = app.create_tenant("dup").unwrap();
    let tid = s(&t["tenant_id"]);
    let batch: Vec<Value> = (0..300)
        .map(|i| {
            event(
                &format!("d{i}"),
                &tid,
                "input_tokens",
                2,
                "m",
                "2026-11-01T00:00:00Z",
            )
        })
        .collect();
    let (b0, b1) = (
        app.servers[0].base.clone(),
        app.servers[second].base.clone(),
    );
    let (r0, r1) = futures_util::future::join(
        ingest(&app, &b0, batch.clone()),
        ingest(&app, &b1, batch.clone()),
    )
    .await;
    let (o0, o1): (Value, Value) = (r0.json().await.unwrap(), r1.json().await.unwrap());
    assert_eq!(
        o0["inserted"].as_i64().unwrap() + o1["inserted"].as_i64().unwrap(),
        300,
        "{o0} {o1}"
    );
    assert_eq!(count_events(&app).await, 300);
}
