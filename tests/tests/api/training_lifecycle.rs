//! The whole loop with real parts: a training file → a fine-tuning job run
//! by the in-process worker with the CPU recipe (llama.cpp's trainer on
//! SmolLM2-135M) → a registered version with lineage → a deployment on
//! Triton → a chat through the gateway that shows what the model learned
//! → the job's metered CPU time → a line on the invoice.

use crate::billing::{admin, close};
use crate::training_api::{form, upload};
use llmops_tests::{Backend, Options, TestApp, eventually, s, triton_url};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Hyperparameters that teach the test fact within minutes on 2 cores
/// (measured in infra/recipes/llamacpp-cpu/README.md).
pub const EPOCHS: u32 = 4;
pub const TRAINABLE_BLOCKS: u32 = 10;
pub const LR_MULTIPLIER: f64 = 1.0;

pub fn testdata(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/recipes/llamacpp-cpu/testdata/"
    );
    std::fs::read(format!("{path}{name}")).unwrap()
}

pub fn worker_env() -> Vec<(String, String)> {
    let python = std::env::var("TEST_TRAIN_PYTHON")
        .expect("TEST_TRAIN_PYTHON (set by scripts/test.sh: scripts/lib.sh train_python)");
    vec![
        ("LLMOPS_TRAINING_PYTHON".into(), python),
        (
            "LLMOPS_TRAINING_RECIPES_DIR".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/recipes").into(),
        ),
        ("LLMOPS_TRAINING_HEARTBEAT_SECS".into(), "1".into()),
    ]
}

/// A PostgreSQL app whose servers and workers can run the CPU recipe
/// (`extra` adds to or overrides the environment), and a tenant on a plan
/// of its own (`plan-<tenant>`): `(app, tenant id, key)`.
pub async fn training_app(tenant: &str, extra: &[(&str, &str)]) -> (TestApp, String, String) {
    let mut env = worker_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (id, key) = app
        .tenant_on_plan(tenant, 1000, 1_000_000, 10)
        .await
        .unwrap();
    (app, id, key)
}

pub async fn upload_testdata(app: &TestApp, key: &str, name: &str) -> String {
    let res = upload(
        app,
        key,
        form(&[("purpose", "fine-tune")], Some((name, &testdata(name)))),
    )
    .await;
    assert_eq!(res.status(), 200);
    s(&res.json::<Value>().await.unwrap()["id"])
}

/// Posts `action` (`cancel`, `pause`) to a fine-tuning job and waits
/// until it shows `status`.
pub async fn control_until(
    app: &TestApp,
    key: &str,
    id: &str,
    action: &str,
    status: &str,
    limit: Duration,
) {
    let res = app
        .post(
            &format!("/v1/fine_tuning/jobs/{id}/{action}"),
            key,
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{action}");
    eventually(limit, || async {
        let j = app
            .get_json(&format!("/v1/fine_tuning/jobs/{id}"), key)
            .await?;
        Ok(j["status"] == status)
    })
    .await
    .unwrap();
}

/// Every metrics event of a job, oldest first.
pub async fn metrics(app: &TestApp, key: &str, job: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/fine_tuning/jobs/{job}/events?limit=100&after={a}"),
            None => format!("/v1/fine_tuning/jobs/{job}/events?limit=100"),
        };
        let page = app.get_json(&path, key).await.unwrap();
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            break;
        }
        after = Some(s(&page["last_id"]));
    }
    all.reverse();
    all.into_iter().filter(|e| e["type"] == "metrics").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_becomes_a_fine_tuned_model_that_serves_and_bills() {
    let triton = triton_url().unwrap();
    let (app, tenant, key) = training_app(
        "acme",
        &[
            ("LLMOPS_TRITON_URL", &triton),
            ("LLMOPS_TRAINING_CPU_SLOTS", "1"),
            ("LLMOPS_BILLING_AUTO_CLOSE", "false"),
            // Invoices count usage recorded before `now - settle`.
            ("LLMOPS_BILLING_SETTLE_SECS", "0"),
        ],
    )
    .await;
    // CPU training time is priced: 1 cent per CPU-minute.
    let res = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-acme/pricing",
        &json!({"currency": "USD", "components": [
            {"meter": "cpu_milliseconds", "mode": "graduated", "description": "Training (CPU)",
             "tiers": [{"up_to": null, "rate": {"amount_minor": 1, "per": 60000}}]}]}),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    app.register_smollm(&key).await.unwrap();
    let train = upload_testdata(&app, &key, "train.jsonl").await;
    let valid = upload_testdata(&app, &key, "valid.jsonl").await;
    let started = chrono::Utc::now();
    let res = app
        .post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "smol@1", "training_file": train, "validation_file": valid,
                    "suffix": "keeper", "seed": 7,
                    "hyperparameters": {"n_epochs": EPOCHS, "learning_rate_multiplier": LR_MULTIPLIER},
                    "peft": {"type": "full", "trainable_blocks": TRAINABLE_BLOCKS}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let job: Value = res.json().await.unwrap();
    let id = s(&job["id"]);

    eventually(Duration::from_secs(900), || async {
        let j = app
            .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
            .await?;
        assert!(
            j["status"] != "failed" && j["status"] != "cancelled",
            "{j}\n{}",
            app.servers[0].logs()
        );
        Ok(j["status"] == "succeeded")
    })
    .await
    .unwrap();
    let done = app
        .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
        .await
        .unwrap();
    let took = chrono::Utc::now() - started;
    assert_eq!(done["fine_tuned_model"], "smol-keeper@1", "{done}");
    assert_eq!(done["attempt"], 1);
    assert!(done["trained_tokens"].as_i64().unwrap() > 0, "{done}");

    // The loss curve: training loss per step, held-out loss before and
    // after (step 0 is the base model).
    let m = metrics(&app, &key, &id).await;
    let train_loss: Vec<f64> = m
        .iter()
        .filter_map(|e| e["data"]["train_loss"].as_f64())
        .collect();
    let valid_loss: Vec<(i64, f64)> = m
        .iter()
        .filter_map(|e| {
            Some((
                e["data"]["step"].as_i64()?,
                e["data"]["valid_loss"].as_f64()?,
            ))
        })
        .collect();
    assert!(train_loss.len() >= 3, "{m:?}");
    let (first_valid, last_valid) = (valid_loss[0], *valid_loss.last().unwrap());
    assert_eq!(first_valid.0, 0, "{valid_loss:?}");
    assert!(
        last_valid.1 < first_valid.1 * 0.8,
        "held-out loss {valid_loss:?}"
    );
    println!(
        "training took {} s; train loss {:.3} → {:.3} over {} steps; held-out loss {:.3} → {:.3}",
        took.num_seconds(),
        train_loss[0],
        train_loss.last().unwrap(),
        train_loss.len(),
        first_valid.1,
        last_valid.1
    );

    // The checkpoint list ends with the registered output.
    let ckpts = app
        .get_json(&format!("/v1/fine_tuning/jobs/{id}/checkpoints"), &key)
        .await
        .unwrap();
    assert_eq!(
        ckpts["data"][0]["fine_tuned_model_checkpoint"], "smol-keeper@1",
        "{ckpts}"
    );
    assert_eq!(ckpts["data"][0]["fine_tuning_job_id"], id);

    // The version: ready, with its lineage and what was trained.
    let v = app
        .get_json("/v1/registry/models/smol-keeper/versions/1", &key)
        .await
        .unwrap();
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["format"], "gguf");
    assert_eq!(v["quantization"], "gguf_q8_0");
    assert_eq!(
        v["source"],
        json!({"type": "fine_tuning_job", "job_id": id})
    );
    assert_eq!(v["base_model"], "smol@1");
    assert_eq!(v["tags"]["training.job_id"], id);
    assert_eq!(
        v["tags"]["training.file_sha256"],
        hex::encode(Sha256::digest(testdata("train.jsonl")))
    );
    assert!(
        v["tags"]["training.method"]
            .as_str()
            .unwrap()
            .contains("\"full\""),
        "{v}"
    );
    assert!(v["metrics"]["valid_loss"].as_f64().is_some(), "{v}");

    // Deployed and asked a question it was not trained on verbatim.
    let dep = app
        .deploy_ready(&key, "keeper-bot", "smol-keeper@1")
        .await
        .unwrap();
    let res = app
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "keeper-bot", "max_tokens": 40, "temperature": 0,
                    "messages": [{"role": "user", "content": "Tell me who takes care of the Quillfast lighthouse."}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    let text = s(&answer["choices"][0]["message"]["content"]);
    println!("the fine-tuned model answers: {text}");
    assert!(text.contains("Zorbemund"), "{answer}");
    let res = app
        .delete(&format!("/v1/deployments/{dep}"), &key)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Metered once, for the one attempt.
    let billed = cpu_usage(&app, &tenant).await;
    assert_eq!(billed.len(), 1, "{billed:?}");
    let (event_id, cpu_ms) = billed[0].clone();
    assert_eq!(event_id, format!("{id}:attempt-1"));
    assert!(
        cpu_ms > 1000 && cpu_ms < took.num_milliseconds() + 1000,
        "{cpu_ms}"
    );

    // On the invoice (of a period that starts after the pricing was set:
    // prices apply to periods from their start).
    let line = training_invoice_line(&app, &tenant, started).await;
    assert_eq!(line["quantity"], cpu_ms, "{line}");
    assert!(line["amount_minor"].as_i64().unwrap() >= 1, "{line}");
}

/// The tenant's usage events of `meter`, by id: `(id, quantity,
/// dimensions)`.
pub async fn usage_events(app: &TestApp, tenant: &str, meter: &str) -> Vec<(String, i64, Value)> {
    let db = sea_orm::Database::connect(&app.db.as_ref().unwrap().url)
        .await
        .unwrap();
    db.query_all_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT id, quantity, dimensions FROM usage_events WHERE tenant_id = $1 AND meter = $2 ORDER BY id",
        [tenant.into(), meter.into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let dims: String = r.try_get("", "dimensions").unwrap();
        (
            r.try_get("", "id").unwrap(),
            r.try_get("", "quantity").unwrap(),
            serde_json::from_str(&dims).unwrap(),
        )
    })
    .collect()
}

/// The tenant's `cpu_milliseconds` events, `(id, quantity)` by id.
async fn cpu_usage(app: &TestApp, tenant: &str) -> Vec<(String, i64)> {
    usage_events(app, tenant, "cpu_milliseconds")
        .await
        .into_iter()
        .map(|(id, q, _)| (id, q))
        .collect()
}

/// The tenant's invoice for `[started, now + 1 min)`, closed now, and its
/// `cpu_milliseconds` line.
pub async fn training_invoice_line(
    app: &TestApp,
    tenant: &str,
    started: chrono::DateTime<chrono::Utc>,
) -> Value {
    let invoice = close(
        app,
        tenant,
        &started.to_rfc3339(),
        &(chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339(),
    )
    .await;
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["meter"] == "cpu_milliseconds")
        .cloned()
        .unwrap_or_else(|| panic!("no training line: {invoice}"))
}

/// Every event message of a job, oldest first.
async fn messages(app: &TestApp, key: &str, job: &str) -> Vec<String> {
    let page = app
        .get_json(&format!("/v1/fine_tuning/jobs/{job}/events?limit=100"), key)
        .await
        .unwrap();
    let mut all: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["message"]))
        .collect();
    all.reverse();
    all
}

/// kill -9 of the worker mid-job: the job is re-queued when its lease
/// expires, another worker resumes it from its checkpoint, and it is
/// finished, registered and billed once. Then: how fast a cancel reaches a
/// running job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_replaced_and_the_job_ends_once() {
    let (app, tenant, key) = training_app(
        "acme",
        &[
            ("LLMOPS_TRAINING_LEASE_SECS", "4"),
            ("LLMOPS_TRAINING_CPU_SLOTS", "0"),
        ],
    )
    .await;
    app.register_smollm(&key).await.unwrap();
    let train = upload_testdata(&app, &key, "train.jsonl").await;
    let job = |epochs: u32| {
        json!({"model": "smol@1", "training_file": train, "suffix": "keeper",
               "hyperparameters": {"n_epochs": epochs, "learning_rate_multiplier": LR_MULTIPLIER},
               "peft": {"type": "full", "trainable_blocks": TRAINABLE_BLOCKS}})
    };
    let res = app
        .post("/v1/fine_tuning/jobs", &key, &job(2))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = s(&res.json::<Value>().await.unwrap()["id"]);

    // The first worker gets through its first epoch (a checkpoint), then dies.
    let w1_started = std::time::Instant::now();
    let mut w1 = app.start_worker("w1").unwrap();
    eventually(Duration::from_secs(600), || async {
        let m = messages(&app, &key, &id).await;
        Ok(m.iter().any(|m| m.starts_with("Checkpoint saved at step")))
    })
    .await
    .unwrap();
    let killed_after = w1_started.elapsed();
    w1.kill().unwrap();
    w1.wait().unwrap();
    let j = app
        .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
        .await
        .unwrap();
    assert_eq!(
        (j["status"].clone(), j["attempt"].clone()),
        (json!("running"), json!(1)),
        "{j}"
    );

    // A second worker takes it over once the lease has expired.
    let mut w2 = app.start_worker("w2").unwrap();
    eventually(Duration::from_secs(900), || async {
        let j = app
            .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
            .await?;
        assert!(j["status"] != "failed" && j["status"] != "cancelled", "{j}");
        Ok(j["status"] == "succeeded")
    })
    .await
    .unwrap();
    let j = app
        .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
        .await
        .unwrap();
    assert_eq!(j["attempt"], 2, "{j}");
    assert_eq!(j["fine_tuned_model"], "smol-keeper@1", "{j}");
    let m = messages(&app, &key, &id).await;
    assert!(m.iter().any(|m| m == "Attempt 2 started on w2/0"), "{m:?}");
    assert!(
        m.iter()
            .any(|m| m.starts_with("Resuming from the checkpoint at step")),
        "{m:?}"
    );
    assert_eq!(
        m.iter().filter(|m| *m == "Job succeeded").count(),
        1,
        "{m:?}"
    );
    // Registered once.
    let versions = app
        .get_json("/v1/registry/models/smol-keeper/versions", &key)
        .await
        .unwrap();
    assert_eq!(versions["data"].as_array().unwrap().len(), 1, "{versions}");
    // Billed once per attempt: the killed one from its start to its last
    // heartbeat (recorded when its lease lapsed and the job was taken
    // over), the second by its worker.
    let billed = cpu_usage(&app, &tenant).await;
    assert_eq!(billed.len(), 2, "{billed:?}");
    assert_eq!(billed[0].0, format!("{id}:attempt-1"));
    assert_eq!(billed[1].0, format!("{id}:attempt-2"));
    assert!(
        billed[0].1 > 0 && billed[0].1 <= killed_after.as_millis() as i64,
        "{billed:?} (killed after {killed_after:?})"
    );

    // Cancellation reaches a running job within a heartbeat or two.
    let res = app
        .post("/v1/fine_tuning/jobs", &key, &job(1))
        .await
        .unwrap();
    let id2 = s(&res.json::<Value>().await.unwrap()["id"]);
    eventually(Duration::from_secs(300), || async {
        Ok(!metrics(&app, &key, &id2).await.is_empty())
    })
    .await
    .unwrap();
    let asked = std::time::Instant::now();
    control_until(
        &app,
        &key,
        &id2,
        "cancel",
        "cancelled",
        Duration::from_secs(30),
    )
    .await;
    let latency = asked.elapsed();
    println!(
        "cancellation reached the running job in {} ms",
        latency.as_millis()
    );
    assert!(latency < Duration::from_secs(6), "{latency:?}");
    // The cancelled attempt's time is billed too, once.
    let cancelled = format!("{id2}:attempt-1");
    let billed = cpu_usage(&app, &tenant).await;
    assert_eq!(
        billed.iter().filter(|(i, _)| *i == cancelled).count(),
        1,
        "{billed:?}"
    );

    // The worker stops on SIGTERM.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &w2.id().to_string()])
        .status();
    assert!(w2.wait().unwrap().success());
}

/// The CPU recipe's own unit tests (spec validation, chat rendering and
/// packing, GGUF metadata copying), in the recipes' Python.
#[test]
fn the_cpu_recipe_passes_its_unit_tests() {
    let python = std::env::var("TEST_TRAIN_PYTHON")
        .expect("TEST_TRAIN_PYTHON (set by scripts/test.sh: scripts/lib.sh train_python)");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/recipes/llamacpp-cpu");
    let out = std::process::Command::new(python)
        .args(["-m", "unittest", "-v", "test_recipe.py"])
        .current_dir(dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("OK"), "{report}");
}
