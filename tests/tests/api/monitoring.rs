//! Monitoring: a record for every inference call (served, cached, streamed,
//! refused), priced from the plan; summaries whose percentiles come from
//! merged sketches and match the exact ones on the recorded data; series;
//! feedback on one's own calls only; every route tenant-scoped. Drift
//! reports are in `monitoring_drift.rs`, alert rules in
//! `monitoring_alerts.rs`.

use llmops_tests::{Backend, Options, TestApp, eventually, header, on_both_backends, problem, s};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

/// Records are flushed every 100 ms and rollups merged every second here.
pub(super) fn fast_env() -> Vec<(String, String)> {
    vec![
        ("LLMOPS_MONITORING_FLUSH_MS".into(), "100".into()),
        ("LLMOPS_MONITORING_COMPACT_SECS".into(), "1".into()),
        ("LLMOPS_MONITORING_POLL_MS".into(), "100".into()),
        ("LLMOPS_MONITORING_SAMPLE_RATE".into(), "1".into()),
        ("LLMOPS_MONITORING_DRIFT_EVERY_SECS".into(), "0".into()),
        ("LLMOPS_MONITORING_ALERT_EVERY_SECS".into(), "1".into()),
    ]
}

pub(super) async fn app_with_triton() -> TestApp {
    let mut opts = llmops_tests::with_triton().unwrap();
    opts.env.extend(fast_env());
    TestApp::spawn_with(Backend::Postgres, opts).await.unwrap()
}

/// A tenant whose plan prices tokens: 0.05 minor units per input token,
/// 0.1 per output token, a tenth of that for cached ones.
async fn priced_tenant(app: &TestApp, name: &str) -> (String, String) {
    let (tenant, key) = app.tenant_on_plan(name, 1000, 1_000_000, 10).await.unwrap();
    app.price_tokens(&format!("plan-{name}")).await.unwrap();
    // Short answers end at `max_tokens`: let the cache keep them too.
    let res = app
        .patch(
            "/v1/cache/settings",
            &key,
            &json!({"cache_truncated": true}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (tenant, key)
}

/// The tenant's records, newest first (all pages).
async fn records(app: &TestApp, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let q = if after.is_empty() {
            "/v1/monitoring/requests?limit=3".to_string()
        } else {
            format!("/v1/monitoring/requests?limit=3&after={after}")
        };
        let page = app.get_json(&q, key).await.unwrap();
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            return out;
        }
        after = s(&page["last_id"]);
    }
}

/// The lower nearest-rank quantile of `v` (sorted), as a DDSketch ranks.
fn exact(v: &[f64], q: f64) -> f64 {
    v[(q * (v.len() - 1) as f64).floor() as usize]
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs() + 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_inference_call_is_recorded_priced_and_summarised() {
    let app = app_with_triton().await;
    let (tenant, key) = priced_tenant(&app, "watched").await;
    let watcher = app.key_with_scope(&key, "monitoring").await.unwrap();
    let chat = |text: &str, max: u32| {
        json!({"model": "smollm2-135m-instruct", "max_tokens": max, "temperature": 0,
               "messages": [{"role": "user", "content": text}]})
    };
    let mut sent: Vec<(String, u16)> = Vec::new();
    let mut usage = Vec::new();
    for (text, max) in [
        ("Name a colour.", 6),
        ("Name a fruit.", 6),
        ("Name a country.", 1),
        ("Name a colour.", 6),
    ] {
        let res = app
            .post("/v1/chat/completions", &key, &chat(text, max))
            .await
            .unwrap();
        sent.push((header(&res, "x-request-id"), res.status().as_u16()));
        let body: Value = res.json().await.unwrap();
        usage.push(body["usage"].clone());
    }
    // A stream, an embedding, and a call that fails.
    let mut streamed = chat("Name an animal.", 6);
    streamed["stream"] = json!(true);
    let res = app
        .post("/v1/chat/completions", &key, &streamed)
        .await
        .unwrap();
    sent.push((header(&res, "x-request-id"), res.status().as_u16()));
    let text = res.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let res = app
        .post(
            "/v1/embeddings",
            &key,
            &json!({"model": "all-minilm-l6-v2", "input": "monitoring"}),
        )
        .await
        .unwrap();
    sent.push((header(&res, "x-request-id"), res.status().as_u16()));
    let embedded: Value = res.json().await.unwrap();
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &chat("Hi", 4)
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("model".into(), json!("no-such-model"));
                    Value::Object(o)
                })
                .unwrap(),
        )
        .await
        .unwrap();
    sent.push((header(&res, "x-request-id"), res.status().as_u16()));
    assert_eq!(
        sent.iter().map(|x| x.1).collect::<Vec<_>>(),
        [200, 200, 200, 200, 200, 200, 404]
    );

    // Every call has its record, written off the request path.
    eventually(Duration::from_secs(20), || async {
        Ok(records(&app, &watcher).await.len() == sent.len())
    })
    .await
    .unwrap();
    let recs = records(&app, &watcher).await;
    let by_request = |id: &str| -> Value {
        recs.iter()
            .find(|r| r["request_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no record of {id}: {recs:?}"))
    };
    for (i, (id, status)) in sent.iter().enumerate() {
        let r = by_request(id);
        assert_eq!(r["status"], *status, "{r}");
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(s(&r["actor"]).starts_with("key_"), "{r}");
        if i < 4 {
            assert_eq!(r["kind"], "chat");
            assert_eq!(r["model"], "smollm2-135m-instruct");
            let u = &usage[i];
            let (p, c) = (
                u["prompt_tokens"].as_i64().unwrap(),
                u["completion_tokens"].as_i64().unwrap(),
            );
            if i == 3 {
                // The repeat was answered from the cache, at the cached price.
                assert_eq!(r["cache"], "hit", "{r}");
                assert_eq!(
                    (r["input_tokens"].as_i64(), r["output_tokens"].as_i64()),
                    (Some(0), Some(0))
                );
                assert_eq!(r["cached_tokens"].as_i64().unwrap(), p + c, "{r}");
                let want = p as f64 * 0.005 + c as f64 * 0.01;
                assert!(
                    close(r["cost_minor"].as_f64().unwrap(), want, 1e-9),
                    "{r} vs {want}"
                );
            } else {
                assert_eq!(r["cache"], "miss", "{r}");
                assert_eq!(
                    (
                        r["input_tokens"].as_i64().unwrap(),
                        r["output_tokens"].as_i64().unwrap()
                    ),
                    (p, c),
                    "{r}"
                );
                let want = p as f64 * 0.05 + c as f64 * 0.1;
                assert!(
                    close(r["cost_minor"].as_f64().unwrap(), want, 1e-9),
                    "{r} vs {want}"
                );
            }
            assert_eq!(r["currency"], "usd");
            assert!(r["ttft_ms"].is_null(), "not a stream: {r}");
            assert!(r["prompt_chars"].as_i64().unwrap() > 0);
        }
    }
    // The answer cut at one token is flagged truncated.
    let cut = by_request(&sent[2].0);
    assert_eq!(
        (cut["finish_reason"].as_str(), cut["truncated"].as_bool()),
        (Some("length"), Some(true)),
        "{cut}"
    );
    let stream = by_request(&sent[4].0);
    let ttft = stream["ttft_ms"]
        .as_f64()
        .expect("a stream has a time to first token");
    assert!(
        ttft > 0.0 && ttft <= stream["latency_ms"].as_f64().unwrap(),
        "{stream}"
    );
    assert!(stream["output_chars"].as_i64().unwrap() > 0, "{stream}");
    let emb = by_request(&sent[5].0);
    assert_eq!(emb["kind"], "embedding");
    assert_eq!(
        emb["embedding_tokens"], embedded["usage"]["prompt_tokens"],
        "{emb}"
    );
    let failed = by_request(&sent[6].0);
    assert_eq!(
        (failed["error_type"].as_str(), failed["model"].is_null()),
        (Some("not_found"), true),
        "{failed}"
    );

    // The summary: counters add up, percentiles are the exact ones within
    // the stated error.
    let sum = app
        .get_json("/v1/monitoring/summary", &watcher)
        .await
        .unwrap();
    assert_eq!(sum["object"], "monitoring.summary");
    assert_eq!(sum["requests"], 7, "{sum}");
    assert_eq!(sum["errors"], 1, "{sum}");
    assert_eq!(sum["cache_hits"], 1, "{sum}");
    assert_eq!(sum["currency"], "usd");
    assert_eq!(
        sum["quality"]["truncated"].as_i64().unwrap(),
        recs.iter().filter(|r| r["truncated"] == true).count() as i64
    );
    let total = |f: &str| recs.iter().map(|r| r[f].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        sum["input_tokens"].as_i64().unwrap(),
        total("input_tokens") + total("embedding_tokens")
    );
    assert_eq!(
        sum["output_tokens"].as_i64().unwrap(),
        total("output_tokens")
    );
    let cost: f64 = recs.iter().filter_map(|r| r["cost_minor"].as_f64()).sum();
    assert!(
        close(sum["cost_minor"].as_f64().unwrap(), cost, 1e-6),
        "{sum} vs {cost}"
    );
    let mut lat: Vec<f64> = recs
        .iter()
        .map(|r| r["latency_ms"].as_f64().unwrap())
        .collect();
    lat.sort_by(f64::total_cmp);
    let rel = sum["relative_error"].as_f64().unwrap();
    assert_eq!(rel, 0.01);
    for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        let got = sum["latency_ms"][name].as_f64().unwrap();
        assert!(
            close(got, exact(&lat, q), rel),
            "{name}: {got} vs exact {}",
            exact(&lat, q)
        );
    }
    let models: Vec<&str> = sum["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["-", "all-minilm-l6-v2", "smollm2-135m-instruct"],
        "{sum}"
    );
    let only = app
        .get_json(
            "/v1/monitoring/summary?model=smollm2-135m-instruct",
            &watcher,
        )
        .await
        .unwrap();
    assert_eq!(only["requests"], 5, "{only}");

    // Series: minute buckets whose requests add up to the calls.
    let series = app
        .get_json(
            "/v1/monitoring/timeseries?metric=requests&interval=minute",
            &watcher,
        )
        .await
        .unwrap();
    let points = series["data"].as_array().unwrap();
    assert!(
        points.len() >= 1440 - 1 && points.len() <= 1441,
        "{}",
        points.len()
    );
    assert_eq!(
        points
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .sum::<f64>(),
        7.0
    );
    let p95 = app
        .get_json(
            "/v1/monitoring/timeseries?metric=latency_p95&interval=hour",
            &watcher,
        )
        .await
        .unwrap();
    let measured: Vec<&Value> = p95["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["value"].is_null())
        .collect();
    assert!(!measured.is_empty() && measured.len() <= 2, "{p95}");

    // Partial rollups are merged into one row per bucket.
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    eventually(Duration::from_secs(20), || async {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM monitoring_rollups WHERE tenant_id = $1 \
                 GROUP BY model, resolution_secs, bucket_start HAVING COUNT(*) > 1) AS d",
                [tenant.clone().into()],
            ))
            .await?
            .unwrap();
        Ok(row.try_get::<i64>("", "n")? == 0)
    })
    .await
    .unwrap();
    let again = app
        .get_json("/v1/monitoring/summary", &watcher)
        .await
        .unwrap();
    assert_eq!(
        (again["requests"].clone(), again["latency_ms"].clone()),
        (sum["requests"].clone(), sum["latency_ms"].clone())
    );

    // Feedback on one's own call; the summary counts it.
    let res = app
        .post(
            "/v1/feedback",
            &key,
            &json!({"request_id": sent[0].0, "score": 1, "comment": "good"}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    for bad in [
        json!({"request_id": sent[0].0, "score": 1.5}),
        json!({"request_id": "", "score": 0}),
        json!({"score": 0}),
    ] {
        problem(
            app.post("/v1/feedback", &key, &bad).await.unwrap(),
            422,
            "validation_error",
        )
        .await
        .unwrap();
    }
    let sum = app
        .get_json("/v1/monitoring/summary", &watcher)
        .await
        .unwrap();
    assert_eq!(
        (
            sum["feedback"]["count"].as_i64(),
            sum["feedback"]["mean_score"].as_f64()
        ),
        (Some(1), Some(1.0))
    );

    // A budget-use rule fires once the period's spend passes half a budget
    // the calls above already exceeded.
    let res = app
        .put("/v1/billing/budget", &key, &json!({"limit_minor": 1}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = app
        .post(
            "/v1/monitoring/alert_rules",
            &key,
            &json!({"name": "budget", "metric": "budget_percent", "threshold": 50}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    eventually(Duration::from_secs(20), || async {
        let list = app
            .get_json("/v1/monitoring/alerts?status=firing", &key)
            .await?;
        Ok(list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["metric"] == "budget_percent" && a["value"].as_f64().unwrap() >= 100.0))
    })
    .await
    .unwrap();

    // The operator sees the tenant among all tenants.
    let all: Value = app
        .client
        .get(app.url("/admin/v1/monitoring/tenants"))
        .bearer_auth(llmops_tests::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant_id"] == tenant.as_str())
        .cloned();
    assert_eq!(mine.map(|t| t["requests"].clone()), Some(json!(7)), "{all}");

    // A key without the `monitoring` scope reads nothing.
    let inference = app.key_with_scope(&key, "inference").await.unwrap();
    problem(
        app.get("/v1/monitoring/summary", &inference).await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await
    .unwrap();
    problem(
        app.get("/v1/monitoring/requests", &inference)
            .await
            .unwrap(),
        403,
        "insufficient_scope",
    )
    .await
    .unwrap();

    // Another tenant sees none of it, and cannot score it.
    let (_, other) = app
        .tenant_on_plan("other-watcher", 1000, 100_000, 10)
        .await
        .unwrap();
    let sum = app
        .get_json("/v1/monitoring/summary", &other)
        .await
        .unwrap();
    assert_eq!(
        (
            sum["requests"].as_i64(),
            sum["models"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0)),
        "{sum}"
    );
    assert!(records(&app, &other).await.is_empty());
    let series = app
        .get_json(
            "/v1/monitoring/timeseries?metric=requests&interval=hour",
            &other,
        )
        .await
        .unwrap();
    assert!(
        series["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["value"] == 0.0),
        "{series}"
    );
    problem(
        app.post(
            "/v1/feedback",
            &other,
            &json!({"request_id": sent[0].0, "score": 0}),
        )
        .await
        .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
}

on_both_backends!(refused_calls_are_recorded_and_ranges_are_checked);

/// Without a model backend: calls refused by validation, by the rate
/// limit, or for a missing model each leave a record; bad parameters of
/// the read routes are problems.
async fn refused_calls_are_recorded_and_ranges_are_checked(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            env: fast_env(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (_, key) = app
        .tenant_on_plan("refused", 1000, 100_000, 10)
        .await
        .unwrap();
    // A key allowed one request a minute.
    let res = app
        .post(
            "/v1/api_keys",
            &key,
            &json!({"name": "slow", "scopes": ["inference"], "requests_per_minute": 1}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let slow = s(&res.json::<Value>().await.unwrap()["secret"]);
    let missing = json!({"model": "nothing-here", "messages": [{"role": "user", "content": "hi"}]});
    let mut codes = Vec::new();
    for (k, body) in [
        (&key, missing.clone()),
        (
            &key,
            json!({"model": "nothing-here", "messages": "not a list"}),
        ),
        (&slow, missing.clone()),
        (&slow, missing),
    ] {
        let res = app.post("/v1/chat/completions", k, &body).await.unwrap();
        codes.push(res.status().as_u16());
    }
    assert_eq!(codes, [404, 422, 404, 429]);
    eventually(Duration::from_secs(20), || async {
        let sum = app.get_json("/v1/monitoring/summary", &key).await?;
        Ok(sum["requests"] == 4 && sum["errors"] == 4)
    })
    .await
    .unwrap();
    let recs = records(&app, &key).await;
    let mut errors: Vec<String> = recs.iter().map(|r| s(&r["error_type"])).collect();
    errors.sort();
    assert_eq!(
        errors,
        ["not_found", "not_found", "rate_limited", "validation_error"],
        "{recs:?}"
    );
    let limited = recs.iter().find(|r| r["status"] == 429).unwrap();
    assert!(s(&limited["actor"]).starts_with("key_"), "{limited}");

    for q in [
        "/v1/monitoring/summary?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
        "/v1/monitoring/summary?start=2020-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
        "/v1/monitoring/summary?model=bad%20model",
        "/v1/monitoring/timeseries?metric=requests&interval=minute&start=2020-01-01T00:00:00Z&end=2020-01-02T00:00:00Z",
        "/v1/monitoring/requests?after=nope",
        "/v1/monitoring/requests?limit=0",
        "/v1/monitoring/timeseries?metric=nope&interval=hour",
        "/v1/monitoring/timeseries?metric=requests",
        "/v1/monitoring/summary?unknown=1",
    ] {
        problem(app.get(q, &key).await.unwrap(), 422, "validation_error")
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}
