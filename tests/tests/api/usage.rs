//! The usage sink against each real database.

use chrono::Utc;
use llmops_core::ids::TenantId;
use llmops_core::usage::{DbUsageSink, Meter, UsageEvent, UsageSink};
use llmops_tests::{Backend, TestApp, on_both_backends};
use sea_orm::{ConnectionTrait, Statement};
use std::collections::BTreeMap;
use std::sync::Arc;

on_both_backends!(duplicate_event_ids_are_recorded_once);

fn event(id: &str, tenant: TenantId, qty: i64) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        tenant_id: tenant,
        meter: Meter::new(Meter::OUTPUT_TOKENS).unwrap(),
        quantity: qty,
        dimensions: BTreeMap::from([("model".to_string(), "smollm2".to_string())]),
        occurred_at: Utc::now(),
    }
}

async fn duplicate_event_ids_are_recorded_once(backend: Backend) {
    // The binary applies the migrations; the sink then writes to the same database.
    let app = TestApp::spawn(backend).await.unwrap();
    let url = app.db.as_ref().unwrap().url.clone();
    let db = sea_orm::Database::connect(&url).await.unwrap();
    let sink = Arc::new(DbUsageSink::new(db.clone()));
    let tenant = TenantId::new();

    let first = sink
        .record(&[event("e1", tenant, 10), event("e2", tenant, 5)])
        .await
        .unwrap();
    assert_eq!((first.inserted, first.duplicates), (2, 0));
    // A retry of the same batch, plus one new event.
    let retry = sink
        .record(&[
            event("e1", tenant, 10),
            event("e2", tenant, 5),
            event("e3", tenant, 1),
        ])
        .await
        .unwrap();
    assert_eq!((retry.inserted, retry.duplicates), (1, 2));

    // Concurrent producers sending the same ids.
    let batch: Vec<UsageEvent> = (0..200)
        .map(|i| event(&format!("c{i}"), tenant, 1))
        .collect();
    let producers = (0..4).map(|_| sink.record(&batch));
    let mut inserted = 0;
    for outcome in futures_util::future::join_all(producers).await {
        inserted += outcome.unwrap().inserted;
    }
    assert_eq!(
        inserted, 200,
        "each id inserted exactly once across producers"
    );

    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n, CAST(SUM(quantity) AS BIGINT) AS q FROM usage_events",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    let q: i64 = row.try_get("", "q").unwrap();
    assert_eq!((n, q), (203, 216));

    // Invalid events are refused whole.
    assert!(sink.record(&[event("", tenant, 1)]).await.is_err());
    assert!(sink.record(&[event("neg", tenant, -1)]).await.is_err());
}
