//! Monitoring's drift reports: the statistics' reference values against
//! numpy/scipy, and a known shift in prompts reported as drift.

use super::monitoring::app_with_triton;
use llmops_tests::{eventually, header, problem, s};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

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
