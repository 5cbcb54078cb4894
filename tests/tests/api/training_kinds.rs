//! The job kinds besides fine-tuning, run for real by the in-process
//! worker with the CPU recipe's tools: `quantize` (llama.cpp's quantizer:
//! SmolLM2 Q4_1 → a new Q4_0 version), `evaluate` (a held-out file's loss,
//! perplexity, token accuracy and exact match, recorded on the version and
//! read by promotion gates), and `distill` (a teacher on Triton answers
//! the prompts, a student is fine-tuned on its answers).

use crate::billing::admin;
use crate::training_lifecycle::{
    control_until, testdata, training_app, training_invoice_line, upload_testdata, usage_events,
};
use llmops_tests::{TestApp, eventually, problem, s, triton_url};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Waits for a job of any kind to succeed; returns its view.
async fn succeeded(app: &TestApp, key: &str, id: &str, limit: Duration) -> Value {
    eventually(limit, || async {
        let j = app
            .get_json(&format!("/v1/training/jobs/{id}"), key)
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
    app.get_json(&format!("/v1/training/jobs/{id}"), key)
        .await
        .unwrap()
}

async fn create(app: &TestApp, key: &str, body: Value) -> String {
    let res = app.post("/v1/training/jobs", key, &body).await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["object"], "training.job");
    assert_eq!(job["status"], "queued", "{job}");
    s(&job["id"])
}

/// The usage events of a tenant's training jobs: (id, kind, pool,
/// quantity).
async fn training_usage(app: &TestApp, tenant: &str) -> Vec<(String, String, String, i64)> {
    usage_events(app, tenant, "cpu_milliseconds")
        .await
        .into_iter()
        .map(|(id, q, dims)| (id, s(&dims["kind"]), s(&dims["pool"]), q))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantized_and_evaluated_versions_meet_promotion_gates() {
    let (app, tenant, key) = training_app(
        "kinds",
        &[
            ("LLMOPS_TRAINING_CPU_SLOTS", "1"),
            // The in-process worker's CPUs are the operator's pool `cpu-std`.
            ("LLMOPS_TRAINING_CPU_POOL", "cpu-std"),
            ("LLMOPS_BILLING_AUTO_CLOSE", "false"),
            ("LLMOPS_BILLING_SETTLE_SECS", "0"),
        ],
    )
    .await;
    // The pool's list price (36 dollars a device-hour: a cent a second)
    // prices training time, as the plan prices tokens only.
    let res = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/gpu_pools/cpu-std",
        &json!({"id": "cpu-std", "gpu_type": "cpu", "gpus_per_node": 1, "nodes": 1, "spot": false,
                "price_per_gpu_hour_minor": 3600, "currency": "USD"}),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-kinds/pricing",
        &json!({"currency": "USD", "components": [
            {"meter": "input_tokens", "mode": "graduated", "description": "Input tokens",
             "tiers": [{"up_to": null, "rate": {"amount_minor": 1, "per": 1000000}}]}]}),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let started = chrono::Utc::now();
    app.register_smollm(&key).await.unwrap();
    let heldout = upload_testdata(&app, &key, "valid.jsonl").await;

    // What each kind refuses before anything is queued.
    for (body, field) in [
        (
            json!({"kind": "quantize", "model": "smol@1"}),
            "quantization",
        ),
        (
            json!({"kind": "quantize", "model": "smol@1", "quantization": "gguf_q4_1"}),
            "quantization",
        ),
        (
            json!({"kind": "quantize", "model": "smol@1", "quantization": "gguf_q4_0", "file": heldout}),
            "file",
        ),
        (json!({"kind": "evaluate", "model": "smol@1"}), "file"),
        (
            json!({"kind": "evaluate", "model": "smol@9", "file": heldout}),
            "model",
        ),
        (
            json!({"kind": "evaluate", "model": "smol@1", "file": "file_01jd0000000000000000000000"}),
            "file",
        ),
        (
            json!({"kind": "evaluate", "model": "smol@1", "file": heldout, "name": "Bad Name"}),
            "name",
        ),
    ] {
        let res = app.post("/v1/training/jobs", &key, &body).await.unwrap();
        let p = problem(res, 422, "validation_error").await.unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
    }

    // Q4_1 → Q4_0: a new version of the same model, with its lineage.
    let quantize = create(
        &app,
        &key,
        json!({"kind": "quantize", "model": "smol@1", "quantization": "gguf_q4_0"}),
    )
    .await;
    let q = succeeded(&app, &key, &quantize, Duration::from_secs(300)).await;
    assert_eq!(q["kind"], "quantize");
    assert_eq!(q["output_version"], "smol@2", "{q}");
    let v1 = app
        .get_json("/v1/registry/models/smol/versions/1", &key)
        .await
        .unwrap();
    let v2 = app
        .get_json("/v1/registry/models/smol/versions/2", &key)
        .await
        .unwrap();
    assert_eq!(v2["status"], "ready", "{v2}");
    assert_eq!(v2["format"], "gguf");
    assert_eq!(v2["quantization"], "gguf_q4_0");
    assert_eq!(v2["base_model"], "smol@1");
    assert_eq!(
        v2["source"],
        json!({"type": "fine_tuning_job", "job_id": quantize})
    );
    assert_eq!(v2["tags"]["quantize.from_quantization"], "gguf_q4_1");
    assert_eq!(v2["tags"]["quantize.from_version"], "smol@1");
    assert!(
        v2["size_bytes"].as_i64().unwrap() < v1["size_bytes"].as_i64().unwrap(),
        "Q4_0 is smaller than Q4_1: {} vs {}",
        v2["size_bytes"],
        v1["size_bytes"]
    );
    let bytes = app
        .get("/v1/registry/models/smol/versions/2/artifact", &key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), s(&v2["sha256"]));
    assert_eq!(&bytes[..4], b"GGUF");

    // Both versions evaluated on the held-out file.
    let mut evaluated = Vec::new();
    for version in ["smol@1", "smol@2"] {
        let id = create(
            &app,
            &key,
            json!({"kind": "evaluate", "model": version, "file": heldout,
                   "name": "heldout", "generate_examples": 3}),
        )
        .await;
        let e = succeeded(&app, &key, &id, Duration::from_secs(300)).await;
        evaluated.push((id, e));
    }
    let heldout_sha = hex::encode(Sha256::digest(testdata("valid.jsonl")));
    let mut losses = Vec::new();
    for (n, (job, _)) in [1, 2].iter().zip(&evaluated) {
        let v = app
            .get_json(&format!("/v1/registry/models/smol/versions/{n}"), &key)
            .await
            .unwrap();
        let m = &v["evaluated_metrics"];
        let loss = m["heldout.loss"].as_f64().unwrap_or_else(|| panic!("{v}"));
        let ppl = m["heldout.perplexity"].as_f64().unwrap();
        assert!(loss > 0.0 && (ppl - loss.exp()).abs() < 1e-3 * ppl, "{m}");
        let acc = m["heldout.token_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{m}");
        assert_eq!(m["heldout.examples"], 10.0, "{m}");
        assert_eq!(m["heldout.generated"], 3.0, "{m}");
        assert!(m["heldout.exact_match"].as_f64().is_some(), "{m}");
        // The version's own metrics are untouched.
        assert!(v["metrics"].get("heldout.loss").is_none(), "{v}");
        let list = app
            .get_json(
                &format!("/v1/registry/models/smol/versions/{n}/evaluations"),
                &key,
            )
            .await
            .unwrap();
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["data"][0]["job_id"], *job);
        assert_eq!(list["data"][0]["dataset_sha256"], heldout_sha);
        assert_eq!(list["data"][0]["name"], "heldout");
        losses.push(loss);
    }
    println!(
        "held-out loss: smol@1 (Q4_1) {:.4}, smol@2 (Q4_0) {:.4}",
        losses[0], losses[1]
    );
    assert!(
        losses[1] > losses[0],
        "requantizing to Q4_0 costs accuracy: {losses:?}"
    );

    // A gate between the two losses: the Q4_1 version passes, the Q4_0
    // one is refused with the failed check.
    let threshold = (losses[0] + losses[1]) / 2.0;
    let res = app
        .patch(
            "/v1/registry/models/smol",
            &key,
            &json!({"promotion_gates": [{"metric": "heldout.loss", "op": "<=", "value": threshold}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = app
        .put(
            "/v1/registry/models/smol/aliases/production",
            &key,
            &json!({"version": 2}),
        )
        .await
        .unwrap();
    let p = problem(res, 409, "promotion_gate_failed").await.unwrap();
    assert_eq!(p["checks"][0]["gate"]["metric"], "heldout.loss", "{p}");
    let res = app
        .put(
            "/v1/registry/models/smol/aliases/production",
            &key,
            &json!({"version": 1}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // The registry's audit trail says who measured what.
    let events = app
        .get_json("/v1/registry/models/smol/events?limit=100", &key)
        .await
        .unwrap();
    let evaluated_events = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "version_evaluated")
        .count();
    assert_eq!(evaluated_events, 2, "{events}");

    // One list shows every kind; the fine-tuning API shows none of these.
    let all = app.get_json("/v1/training/jobs", &key).await.unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 3, "{all}");
    let ft = app.get_json("/v1/fine_tuning/jobs", &key).await.unwrap();
    assert_eq!(ft["data"].as_array().unwrap().len(), 0, "{ft}");
    let res = app
        .get(&format!("/v1/fine_tuning/jobs/{quantize}"), &key)
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let events = app
        .get_json(
            &format!("/v1/training/jobs/{quantize}/events?limit=100"),
            &key,
        )
        .await
        .unwrap();
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| s(&e["message"]).contains("Registered the output as smol@2")),
        "{events}"
    );
    // A finished job cannot be cancelled.
    let res = app
        .post(
            &format!("/v1/training/jobs/{quantize}/cancel"),
            &key,
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

    // Each job's one attempt is metered once, with its kind and pool…
    let usage = training_usage(&app, &tenant).await;
    let mut kinds: Vec<&str> = usage.iter().map(|(_, k, _, _)| k.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["evaluate", "evaluate", "quantize"], "{usage:?}");
    assert!(
        usage
            .iter()
            .any(|(id, ..)| *id == format!("{quantize}:attempt-1"))
    );
    assert!(
        usage.iter().all(|(_, _, pool, _)| pool == "cpu-std"),
        "{usage:?}"
    );
    // … and priced at the pool's list price on the invoice.
    let cpu_ms: i64 = usage.iter().map(|(.., q)| q).sum();
    let line = training_invoice_line(&app, &tenant, started).await;
    assert_eq!(line["quantity"], cpu_ms, "{line}");
    assert_eq!(
        line["description"],
        "Training on pool cpu-std (cpu), per device-hour"
    );
    // 3600 cents an hour: a cent a second, rounded half up.
    assert_eq!(line["amount_minor"], (cpu_ms + 500) / 1000, "{line}");

    // Another tenant sees none of it.
    let (_, other) = app
        .tenant_on_plan("kinds-other", 1000, 1_000_000, 10)
        .await
        .unwrap();
    for path in [
        format!("/v1/training/jobs/{quantize}"),
        format!("/v1/training/jobs/{quantize}/events"),
        "/v1/registry/models/smol/versions/1/evaluations".to_string(),
    ] {
        let res = app.get(&path, &other).await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let res = app
        .post(
            &format!("/v1/training/jobs/{quantize}/cancel"),
            &other,
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let theirs = app.get_json("/v1/training/jobs", &other).await.unwrap();
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    let res = app
        .post(
            "/v1/training/jobs",
            &other,
            &json!({"kind": "evaluate", "model": "smol@1", "file": heldout}),
        )
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        422,
        "another tenant's model and file do not exist for them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_on_triton_distills_into_a_student() {
    let triton = triton_url().unwrap();
    let (app, tenant, key) = training_app(
        "distill",
        &[
            ("LLMOPS_TRITON_URL", &triton),
            ("LLMOPS_TRAINING_CPU_SLOTS", "1"),
        ],
    )
    .await;
    app.register_smollm(&key).await.unwrap();
    let prompts = upload_testdata(&app, &key, "train.jsonl").await;

    // A teacher that does not exist is refused at once.
    let res = app
        .post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "smol@1", "training_file": prompts, "distill": {"teacher": "nobody"}}),
        )
        .await
        .unwrap();
    let p = problem(res, 422, "validation_error").await.unwrap();
    assert_eq!(p["errors"][0]["field"], "distill.teacher", "{p}");

    let dep = app.deploy_ready(&key, "teacher", "smol@1").await.unwrap();

    let res = app
        .post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "smol@1", "training_file": prompts, "suffix": "student", "seed": 3,
                    "distill": {"teacher": "teacher", "max_tokens": 32},
                    "hyperparameters": {"n_epochs": 1},
                    "peft": {"type": "full", "trainable_blocks": 2}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["kind"], "distill", "{job}");
    let id = s(&job["id"]);

    // Paused while the teacher answers, then resumed: the second attempt
    // goes on from the answers the first kept.
    eventually(Duration::from_secs(300), || async {
        let events = app
            .get_json(&format!("/v1/fine_tuning/jobs/{id}/events?limit=100"), &key)
            .await?;
        Ok(events["data"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| s(&e["message"]).starts_with("The teacher answered 10/28"))
        }))
    })
    .await
    .unwrap();
    control_until(&app, &key, &id, "pause", "paused", Duration::from_secs(60)).await;
    let res = app
        .post(
            &format!("/v1/fine_tuning/jobs/{id}/resume"),
            &key,
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    succeeded(&app, &key, &id, Duration::from_secs(600)).await;
    let done = app
        .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
        .await
        .unwrap();
    assert_eq!(done["fine_tuned_model"], "smol-student@1", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    let events = app
        .get_json(&format!("/v1/fine_tuning/jobs/{id}/events?limit=100"), &key)
        .await
        .unwrap();
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| s(&e["message"]).starts_with("Resuming after the ")),
        "{events}"
    );
    // The teacher's answers were the tenant's inference, metered as such.
    let answers = usage_events(&app, &tenant, "requests").await.len();
    // Each chat asked once, across both attempts.
    assert_eq!(answers, 28, "metered teacher requests");
    let files = done["result_files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{done}");
    let generated = s(&files[0]);

    // The generated file holds the teacher's own greedy answers: asking
    // the teacher the same question gives the same answer.
    let text = app
        .get(&format!("/v1/files/{generated}/content"), &key)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 28, "{text}");
    let original: Vec<Value> = String::from_utf8(testdata("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut differ = 0;
    for (line, orig) in lines.iter().zip(&original).take(2) {
        let msgs = line["messages"].as_array().unwrap();
        let answer = s(&msgs.last().unwrap()["content"]);
        let prompt: Vec<Value> = msgs[..msgs.len() - 1].to_vec();
        let res = app
            .post(
                "/v1/chat/completions",
                &key,
                &json!({"model": "teacher", "messages": prompt, "temperature": 0,
                        "max_tokens": 32, "seed": 3}),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let direct: Value = res.json().await.unwrap();
        assert_eq!(
            s(&direct["choices"][0]["message"]["content"]).trim(),
            answer,
            "{line}"
        );
        let orig_msgs = orig["messages"].as_array().unwrap();
        differ += usize::from(s(&orig_msgs.last().unwrap()["content"]) != answer);
    }
    assert!(differ > 0, "the answers are the teacher's, not the file's");

    // The student is a version with the distillation's lineage.
    let v = app
        .get_json("/v1/registry/models/smol-student/versions/1", &key)
        .await
        .unwrap();
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["base_model"], "smol@1");
    assert_eq!(v["tags"]["training.job_id"], id);
    let listed = app.get_json("/v1/training/jobs", &key).await.unwrap();
    assert_eq!(listed["data"][0]["kind"], "distill", "{listed}");
    assert_eq!(
        listed["data"][0]["parameters"]["distill"]["teacher"],
        "teacher"
    );
    let res = app
        .delete(&format!("/v1/deployments/{dep}"), &key)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
