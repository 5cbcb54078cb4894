//! Monitoring: a record for every inference call (served, cached, streamed,
//! refused), priced from the plan; summaries whose percentiles come from
//! merged sketches and match the exact ones on the recorded data; series;
//! feedback on one's own calls only; every route tenant-scoped.

use llmops_tests::{Backend, Options, TestApp, eventually, header, on_both_backends, problem, s};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

/// Records are flushed every 100 ms and rollups merged every second here.
fn fast_env() -> Vec<(String, String)> {
    vec![
        ("LLMOPS_MONITORING_FLUSH_MS".into(), "100".into()),
        ("LLMOPS_MONITORING_COMPACT_SECS".into(), "1".into()),
        ("LLMOPS_MONITORING_POLL_MS".into(), "100".into()),
        ("LLMOPS_MONITORING_SAMPLE_RATE".into(), "1".into()),
        ("LLMOPS_MONITORING_DRIFT_EVERY_SECS".into(), "0".into()),
        ("LLMOPS_MONITORING_ALERT_EVERY_SECS".into(), "1".into()),
    ]
}

async fn app_with_triton() -> TestApp {
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

/// The drift statistics' stored reference values are what numpy and scipy
/// compute now (the unit test `drift::tests::matches_the_scipy_reference_values`
/// holds the Rust side to the same values).
#[test]
fn the_drift_statistics_reference_is_scipys() {
    let python =
        std::env::var("TEST_STATS_PYTHON").expect("TEST_STATS_PYTHON (set by scripts/test.sh)");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../services/monitoring/tests/stats_reference.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .arg("--check")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("agree with numpy/scipy"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A known shift (English questions, then long French requests) is
/// reported as drift, with the embedding test and the descriptors that
/// moved; reports are tenant-scoped and their windows checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_in_prompts_is_reported_as_drift() {
    let app = app_with_triton().await;
    let (tenant, key) = app
        .tenant_on_plan("drifting", 10_000, 10_000_000, 10)
        .await
        .unwrap();
    let countries = [
        "France",
        "Germany",
        "Spain",
        "Italy",
        "Portugal",
        "Poland",
        "Austria",
        "Belgium",
        "Sweden",
        "Norway",
        "Finland",
        "Denmark",
        "Ireland",
        "Greece",
        "Hungary",
        "Romania",
        "Bulgaria",
        "Croatia",
        "Serbia",
        "Slovakia",
        "Slovenia",
        "Estonia",
        "Latvia",
        "Lithuania",
        "Iceland",
        "Malta",
        "Cyprus",
        "Albania",
        "Moldova",
        "Ukraine",
        "Japan",
        "Kenya",
    ];
    let ask = |text: String| {
        json!({"model": "smollm2-135m-instruct", "max_tokens": 1, "temperature": 0,
               "messages": [{"role": "user", "content": text}]})
    };
    let t0 = chrono::Utc::now();
    for c in countries {
        let res = app
            .post(
                "/v1/chat/completions",
                &key,
                &ask(format!("Please tell me which city is the capital of {c}.")),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let t1 = chrono::Utc::now();
    for c in countries {
        let res = app
            .post(
                "/v1/chat/completions",
                &key,
                &ask(format!(
                    "Rédigez un long paragraphe détaillé sur l'histoire ancienne, la cuisine \
                     régionale et les traditions populaires du pays suivant : {c}. Merci beaucoup."
                )),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let t2 = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    // Every call recorded, every prompt embedded (sample rate 1 here).
    eventually(Duration::from_secs(30), || async {
        let sum = app.get_json("/v1/monitoring/summary", &key).await?;
        Ok(sum["requests"] == 64)
    })
    .await
    .unwrap();
    // The prompts are embedded by a task of their own, after the records.
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    eventually(Duration::from_secs(60), || async {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM monitoring_samples WHERE tenant_id = $1",
                [tenant.clone().into()],
            ))
            .await?
            .unwrap();
        Ok(row.try_get::<i64>("", "n")? == 64)
    })
    .await
    .unwrap();

    let res = app
        .post(
            "/v1/monitoring/drift_reports",
            &key,
            &json!({"model": "smollm2-135m-instruct", "reference_start": t0, "reference_end": t1,
                    "current_start": t1, "current_end": t2}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let location = header(&res, "location");
    let queued: Value = res.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(
        location,
        format!("/v1/monitoring/drift_reports/{}", s(&queued["id"]))
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        let r = app.get_json(&location, &key).await.unwrap();
        if r["status"] == "completed" || r["status"] == "failed" {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "still {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(report["status"], "completed", "{report}");
    assert_eq!(report["drifted"], true, "{report}");
    let a = &report["analysis"];
    assert_eq!(
        (
            a["reference_requests"].as_i64(),
            a["current_requests"].as_i64()
        ),
        (Some(32), Some(32)),
        "{a}"
    );
    let emb = &a["embedding"];
    assert_eq!(
        (
            emb["reference_samples"].as_i64(),
            emb["current_samples"].as_i64()
        ),
        (Some(32), Some(32)),
        "{emb}"
    );
    assert_eq!(emb["drifted"], true, "{emb}");
    assert!(emb["p_value"].as_f64().unwrap() < 0.05, "{emb}");
    let drifted: Vec<&str> = a["descriptors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["drifted"] == true)
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        drifted.contains(&"prompt_chars") && drifted.contains(&"prompt_language"),
        "{a}"
    );
    assert!(
        a["descriptors"][0]["psi"].as_f64().unwrap()
            >= a["descriptors"][1]["psi"].as_f64().unwrap()
    );

    // Listed for its tenant only; another tenant gets 404.
    let list = app
        .get_json("/v1/monitoring/drift_reports", &key)
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], queued["id"]);
    let (_, other) = app
        .tenant_on_plan("not-drifting", 1000, 100_000, 10)
        .await
        .unwrap();
    problem(app.get(&location, &other).await.unwrap(), 404, "not_found")
        .await
        .unwrap();
    let list = app
        .get_json("/v1/monitoring/drift_reports", &other)
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));

    // Windows are checked.
    for bad in [
        json!({"model": "smollm2-135m-instruct", "reference_start": t1, "reference_end": t2, "current_start": t0, "current_end": t1}),
        json!({"model": "smollm2-135m-instruct", "reference_start": t0}),
        json!({"model": "smollm2-135m-instruct", "current_start": t1, "current_end": t0}),
        json!({"model": "bad model"}),
    ] {
        problem(
            app.post("/v1/monitoring/drift_reports", &key, &bad)
                .await
                .unwrap(),
            422,
            "validation_error",
        )
        .await
        .unwrap_or_else(|e| panic!("{bad}: {e}"));
    }
}

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
