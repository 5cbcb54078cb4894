//! Monitoring's alert rules: signed, retried webhooks, silences, the drift
//! rule's promotion gate and retraining job.

use super::monitoring::fast_env;
use llmops_tests::{Backend, TestApp, eventually, problem, s};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

/// Checks a `t=…,v1=…` signature as a receiver would (HMAC-SHA256 of
/// `t.body` under the secret).
fn signed_by(secret: &str, header: &str, body: &str) -> bool {
    use hmac::{Hmac, Mac};
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("v1", v)) => v1 = Some(v.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes()) == v1
}

/// Inserts a completed drift report of `model` (the statistics themselves
/// are tested above): what the drift rule and the promotion gate read.
async fn drift_verdict(app: &TestApp, tenant: &str, model: &str, drifted: bool) {
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    let id = format!(
        "drift_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let now = chrono::Utc::now();
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "INSERT INTO monitoring_drift_reports (id, tenant_id, model, status, trigger, reference_start, \
         reference_end, current_start, current_end, drifted, result, error, created_at, started_at, completed_at) \
         VALUES ($1, $2, $3, 'completed', 'api', $4, $4, $4, $5, $6, '{}', NULL, $5, $5, $5)",
        [
            id.into(),
            tenant.into(),
            model.into(),
            (now - chrono::TimeDelta::days(1)).into(),
            now.into(),
            drifted.into(),
        ],
    ))
    .await
    .unwrap();
}

/// Alert rules: an error-rate rule fires, its webhook is signed and
/// retried until the receiver takes it, it resolves when the rate falls
/// (silenced: no webhook); a drift alert blocks promotion to `production`
/// through the `open_drift_alerts` gate and starts the rule's retraining
/// job; every route is tenant-scoped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_signed_webhooks_gate_promotions_and_retrain() {
    let mut opts = llmops_tests::with_triton().unwrap();
    opts.env.extend(fast_env());
    opts.env.extend([
        (
            "LLMOPS_MONITORING_ALERT_EVERY_SECS".to_string(),
            "1".to_string(),
        ),
        ("LLMOPS_MONITORING_WEBHOOK_BACKOFF_MS".into(), "300".into()),
        (
            "LLMOPS_MONITORING_WEBHOOK_ALLOW_PRIVATE".into(),
            "true".into(),
        ),
    ]);
    let app = TestApp::spawn_with(Backend::Postgres, opts).await.unwrap();
    let (tenant, key) = app
        .tenant_on_plan("alerting", 10_000, 1_000_000, 10)
        .await
        .unwrap();
    let (url, mut hooks) = llmops_tests::webhook_sink(1).await;

    let res = app
        .post(
            "/v1/monitoring/alert_rules",
            &key,
            &json!({"name": "errors", "metric": "error_rate", "threshold": 0.5, "window_secs": 300,
                    "min_requests": 3, "webhook_url": url}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let rule: Value = res.json().await.unwrap();
    let secret = s(&rule["webhook_secret"]);
    assert!(secret.starts_with("whsec_"), "{rule}");
    // The secret is shown once.
    let again = app
        .get_json(
            &format!("/v1/monitoring/alert_rules/{}", s(&rule["id"])),
            &key,
        )
        .await
        .unwrap();
    assert!(again.get("webhook_secret").is_none(), "{again}");

    // Three failing calls: the error rate is 1.
    let missing = json!({"model": "nothing-here", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        assert_eq!(
            app.post("/v1/chat/completions", &key, &missing)
                .await
                .unwrap()
                .status(),
            404
        );
    }
    // The receiver refuses the first POST; the retry is taken.
    let first = tokio::time::timeout(Duration::from_secs(30), hooks.recv())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(30), hooks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.answered, second.answered), (500, 204));
    assert_eq!(first.body, second.body, "a retry sends the same event");
    assert_eq!(
        first.header("llmops-delivery"),
        second.header("llmops-delivery")
    );
    let event = second.json();
    assert_eq!(event["type"], "alert.firing", "{event}");
    assert_eq!(event["data"]["value"], 1.0, "{event}");
    assert!(signed_by(
        &secret,
        second.header("llmops-signature").unwrap(),
        &second.body
    ));
    assert!(!signed_by(
        "whsec_wrong",
        second.header("llmops-signature").unwrap(),
        &second.body
    ));
    let alert_id = s(&event["data"]["alert_id"]);
    eventually(Duration::from_secs(10), || async {
        let a = app
            .get_json(&format!("/v1/monitoring/alerts/{alert_id}"), &key)
            .await?;
        Ok(a["deliveries"][0]["status"] == "delivered" && a["deliveries"][0]["attempts"] == 2)
    })
    .await
    .unwrap();
    let firing = app
        .get_json("/v1/monitoring/alerts?status=firing", &key)
        .await
        .unwrap();
    assert_eq!(firing["data"].as_array().unwrap().len(), 1, "{firing}");

    // Acknowledged by the caller; a second acknowledgement keeps the first.
    let acked: Value = app
        .post(
            &format!("/v1/monitoring/alerts/{alert_id}/acknowledge"),
            &key,
            &json!({}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(s(&acked["acknowledged_by"]).starts_with("key_"), "{acked}");
    let again: Value = app
        .post(
            &format!("/v1/monitoring/alerts/{alert_id}/acknowledge"),
            &key,
            &json!({}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["acknowledged_at"], acked["acknowledged_at"]);

    // Silenced, the rule resolves without a webhook.
    let until = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let res = app
        .post(
            &format!("/v1/monitoring/alert_rules/{}/silence", s(&rule["id"])),
            &key,
            &json!({"until": until}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for i in 0..4 {
        let res = app
            .post(
                "/v1/embeddings",
                &key,
                &json!({"model": "all-minilm-l6-v2", "input": format!("ok {i}")}),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    eventually(Duration::from_secs(20), || async {
        let a = app
            .get_json(&format!("/v1/monitoring/alerts/{alert_id}"), &key)
            .await?;
        Ok(a["status"] == "resolved")
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = app
        .get_json(&format!("/v1/monitoring/alerts/{alert_id}"), &key)
        .await
        .unwrap();
    assert_eq!(
        a["deliveries"].as_array().unwrap().len(),
        1,
        "silenced: no resolved event: {a}"
    );
    assert!(hooks.try_recv().is_err());

    // A drift alert on the registry model `base` blocks its promotion.
    let res = app
        .post(
            "/v1/registry/models",
            &key,
            &json!({"name": "base",
        "promotion_gates": [{"metric": "open_drift_alerts", "op": "==", "value": 0}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .post(
            "/v1/registry/models/base/versions",
            &key,
            &json!({"format": "gguf", "quantization": "gguf_q4_1", "source": {"type": "import"},
                    "artifact_uri": "s3://models/base.gguf", "sha256": "ab".repeat(32)}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let data = [
        json!({"messages": [{"role": "user", "content": "Who keeps the lighthouse?"}, {"role": "assistant", "content": "Zorbemund."}]}).to_string(),
        json!({"messages": [{"role": "user", "content": "Name the keeper."}, {"role": "assistant", "content": "Zorbemund."}]}).to_string(),
        String::new(),
    ]
    .join("\n");
    let res = crate::training_api::upload(
        &app,
        &key,
        crate::training_api::form(
            &[("purpose", "fine-tune")],
            Some(("train.jsonl", data.as_bytes())),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);
    let fid = s(&res.json::<Value>().await.unwrap()["id"]);
    let res = app
        .post(
            "/v1/monitoring/alert_rules",
            &key,
            &json!({"name": "base drifts", "metric": "drift", "model": "base", "threshold": 0,
                    "action": {"type": "retrain", "job": {"model": "base@1", "training_file": fid, "suffix": "redrift"}}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let drift_rule: Value = res.json().await.unwrap();
    drift_verdict(&app, &tenant, "base", true).await;
    let mut drift_alert = Value::Null;
    eventually(Duration::from_secs(20), || async {
        let list = app
            .get_json("/v1/monitoring/alerts?status=firing", &key)
            .await?;
        Ok(list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule_id"] == drift_rule["id"] && !a["action_result"].is_null()))
    })
    .await
    .unwrap();
    let list = app
        .get_json("/v1/monitoring/alerts?status=firing", &key)
        .await
        .unwrap();
    for a in list["data"].as_array().unwrap() {
        if a["rule_id"] == drift_rule["id"] {
            drift_alert = a.clone();
        }
    }
    // The retraining job was started by the rule.
    let result = &drift_alert["action_result"];
    assert_eq!(result["status"], "started", "{drift_alert}");
    let job = app
        .get_json(
            &format!("/v1/fine_tuning/jobs/{}", s(&result["job_id"])),
            &key,
        )
        .await
        .unwrap();
    assert_eq!(
        (job["model"].as_str(), job["training_file"].as_str()),
        (Some("base@1"), Some(fid.as_str())),
        "{job}"
    );
    // The gate refuses production while the alert fires, and shows it.
    let res = app
        .put(
            "/v1/registry/models/base/aliases/production",
            &key,
            &json!({"version": 1}),
        )
        .await
        .unwrap();
    let p = problem(res, 409, "promotion_gate_failed").await.unwrap();
    assert_eq!(p["checks"][0]["gate"]["metric"], "open_drift_alerts", "{p}");
    assert_eq!(p["checks"][0]["actual"], 1.0, "{p}");
    assert_eq!(
        p["checks"][0]["alerts"][0]["alert_id"], drift_alert["id"],
        "{p}"
    );
    // A version made after the drift began (what the retraining produces)
    // is not held back by it.
    let res = app
        .post(
            "/v1/registry/models/base/versions",
            &key,
            &json!({"format": "gguf", "quantization": "gguf_q4_1", "source": {"type": "import"},
                    "artifact_uri": "s3://models/base-2.gguf", "sha256": "cd".repeat(32)}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .put(
            "/v1/registry/models/base/aliases/production",
            &key,
            &json!({"version": 2}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // A newer report without drift resolves it; the older version may go
    // back to production.
    drift_verdict(&app, &tenant, "base", false).await;
    eventually(Duration::from_secs(20), || async {
        let a = app
            .get_json(
                &format!("/v1/monitoring/alerts/{}", s(&drift_alert["id"])),
                &key,
            )
            .await?;
        Ok(a["status"] == "resolved")
    })
    .await
    .unwrap();
    let res = app
        .put(
            "/v1/registry/models/base/aliases/production",
            &key,
            &json!({"version": 1}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // Another tenant sees none of it.
    let (_, other) = app
        .tenant_on_plan("not-alerting", 1000, 100_000, 10)
        .await
        .unwrap();
    for path in [
        format!("/v1/monitoring/alerts/{alert_id}"),
        format!("/v1/monitoring/alert_rules/{}", s(&rule["id"])),
    ] {
        problem(app.get(&path, &other).await.unwrap(), 404, "not_found")
            .await
            .unwrap();
    }
    problem(
        app.post(
            &format!("/v1/monitoring/alerts/{alert_id}/acknowledge"),
            &other,
            &json!({}),
        )
        .await
        .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    problem(
        app.delete(
            &format!("/v1/monitoring/alert_rules/{}", s(&rule["id"])),
            &other,
        )
        .await
        .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    assert_eq!(
        app.get_json("/v1/monitoring/alerts", &other).await.unwrap()["data"],
        json!([])
    );
    assert_eq!(
        app.get_json("/v1/monitoring/alert_rules", &other)
            .await
            .unwrap()["data"],
        json!([])
    );

    // Rules are checked.
    for bad in [
        json!({"name": "", "metric": "error_rate", "threshold": 0.1}),
        json!({"name": "x", "metric": "drift", "threshold": 0}),
        json!({"name": "x", "metric": "nope", "threshold": 0}),
        json!({"name": "x", "metric": "error_rate", "threshold": 0.1, "window_secs": 5}),
        json!({"name": "x", "metric": "error_rate", "threshold": 0.1, "webhook_url": "ftp://x"}),
        json!({"name": "x", "metric": "drift", "model": "base", "threshold": 0, "action": {"type": "retrain", "job": {"model": 3}}}),
    ] {
        problem(
            app.post("/v1/monitoring/alert_rules", &key, &bad)
                .await
                .unwrap(),
            422,
            "validation_error",
        )
        .await
        .unwrap_or_else(|e| panic!("{bad}: {e}"));
    }
    // Deleting a rule deletes its alerts.
    assert_eq!(
        app.delete(
            &format!("/v1/monitoring/alert_rules/{}", s(&rule["id"])),
            &key
        )
        .await
        .unwrap()
        .status(),
        204
    );
    problem(
        app.get(&format!("/v1/monitoring/alerts/{alert_id}"), &key)
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
}
