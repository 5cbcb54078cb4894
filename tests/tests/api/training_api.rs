//! `/v1/files` and `/v1/fine_tuning/jobs` over HTTP, with no worker
//! running (jobs stay queued): uploads and their validation, job creation
//! and what is refused, control (pause, resume, cancel), events,
//! checkpoints, and isolation between tenants on every route.

use llmops_tests::{Backend, TestApp, on_both_backends, problem, s};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const BOUNDARY: &str = "llmops-test-boundary-7d1f";

/// A multipart/form-data body with the given text parts and one file part.
pub fn form(parts: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    form_typed(
        parts,
        file.map(|(name, bytes)| (name, "application/jsonl", bytes)),
    )
}

/// The same with the file part's content type: `(filename, type, bytes)`.
pub fn form_typed(parts: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, mime, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub async fn upload(app: &TestApp, key: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/v1/files"))
        .bearer_auth(key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

fn chat(q: &str, a: &str) -> String {
    json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
        .to_string()
}

/// Registers an imported GGUF version `base@1` (ready at once: jobs can
/// name it; no worker reads its bytes in these tests).
async fn base_model(app: &TestApp, key: &str) {
    let res = app
        .post("/v1/registry/models", key, &json!({"name": "base"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .post(
            "/v1/registry/models/base/versions",
            key,
            &json!({"format": "gguf", "quantization": "gguf_q4_1", "source": {"type": "import"},
                    "artifact_uri": "s3://models/base.gguf", "sha256": "ab".repeat(32)}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // base@2: the same model as a Hugging Face directory, for the GPU recipe.
    let res = app
        .post(
            "/v1/registry/models/base/versions",
            key,
            &json!({"format": "safetensors", "quantization": "bf16", "source": {"type": "import"},
                    "artifact_uri": "s3://models/base-hf.tar", "sha256": "cd".repeat(32)}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

on_both_backends!(files_and_jobs_over_http);
async fn files_and_jobs_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let a = app.create_tenant("acme").unwrap();
    let b = app.create_tenant("globex").unwrap();
    let (ka, kb) = (s(&a["api_key"]), s(&b["api_key"]));

    // A valid file: stored with its checksum and counts.
    let data = [
        chat("Who keeps the lighthouse?", "Zorbemund does."),
        chat("Name the lighthouse keeper.", "Zorbemund."),
        String::new(),
    ]
    .join("\n");
    let res = upload(
        &app,
        &ka,
        form(
            &[("purpose", "fine-tune")],
            Some(("train.jsonl", data.as_bytes())),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);
    let file: Value = res.json().await.unwrap();
    let fid = s(&file["id"]);
    assert!(fid.starts_with("file_"), "{file}");
    assert_eq!(file["object"], "file");
    assert_eq!(file["purpose"], "fine-tune");
    assert_eq!(file["filename"], "train.jsonl");
    assert_eq!(file["status"], "processed");
    assert_eq!(file["bytes"], data.len());
    assert_eq!(file["sha256"], hex::encode(Sha256::digest(data.as_bytes())));
    assert_eq!(file["stats"]["examples"], 2);

    let res = app
        .get(&format!("/v1/files/{fid}/content"), &ka)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), data.as_bytes());
    assert_eq!(
        app.get_json(&format!("/v1/files/{fid}"), &ka)
            .await
            .unwrap()["id"],
        fid
    );

    // Invalid files: refused whole, the errors naming their lines.
    let bad = [
        chat("ok?", "ok"),
        "{not json".into(),
        json!({"messages": [{"role": "user", "content": "no answer"}]}).to_string(),
    ]
    .join("\n");
    let res = upload(
        &app,
        &ka,
        form(
            &[("purpose", "fine-tune")],
            Some(("bad.jsonl", bad.as_bytes())),
        ),
    )
    .await;
    let p = problem(res, 422, "validation_error").await.unwrap();
    let errors = p["errors"].to_string();
    assert!(errors.contains("line 2"), "{p}");
    assert!(errors.contains("line 3"), "{p}");
    assert!(!errors.contains("line 1:"), "{p}");
    for (body, field) in [
        (
            form(
                &[("purpose", "assistants")],
                Some(("t.jsonl", data.as_bytes())),
            ),
            "purpose",
        ),
        (form(&[("purpose", "fine-tune")], None), "file"),
        (form(&[], Some(("t.jsonl", data.as_bytes()))), "purpose"),
        (
            form(&[("purpose", "fine-tune"), ("colour", "blue")], None),
            "colour",
        ),
    ] {
        let p = problem(upload(&app, &ka, body).await, 422, "validation_error")
            .await
            .unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let res = app
        .client
        .post(app.url("/v1/files"))
        .bearer_auth(&ka)
        .json(&json!({"purpose": "fine-tune"}))
        .send()
        .await
        .unwrap();
    problem(res, 415, "unsupported_media_type").await.unwrap();
    // A file part before a refused purpose: refused, and not kept either.
    let mut file_first = form(&[], Some(("t.jsonl", data.as_bytes())));
    file_first.truncate(file_first.len() - format!("--{BOUNDARY}--\r\n").len());
    file_first.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--{BOUNDARY}--\r\n")
            .as_bytes(),
    );
    let p = problem(upload(&app, &ka, file_first).await, 422, "validation_error")
        .await
        .unwrap();
    assert_eq!(p["errors"][0]["field"], "purpose", "{p}");
    // Nothing of the refused uploads was kept.
    let files = app.get_json("/v1/files", &ka).await.unwrap();
    assert_eq!(files["data"].as_array().unwrap().len(), 1, "{files}");

    // Jobs.
    base_model(&app, &ka).await;
    let job_body = json!({"model": "base@1", "training_file": fid, "suffix": "keeper",
                          "hyperparameters": {"n_epochs": 2, "learning_rate_multiplier": "auto"},
                          "metadata": {"team": "support"}});
    let res = app
        .post("/v1/fine_tuning/jobs", &ka, &job_body)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let job: Value = res.json().await.unwrap();
    let jid = s(&job["id"]);
    assert!(jid.starts_with("ftjob_"), "{job}");
    assert_eq!(job["object"], "fine_tuning.job");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["model"], "base@1");
    assert_eq!(job["training_file"], fid);
    assert_eq!(
        job["hyperparameters"],
        json!({"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 1.0})
    );
    assert_eq!(job["executor"]["recipe"], "llamacpp-cpu");
    assert_eq!(job["executor"]["trains"]["type"], "full");
    assert_eq!(job["peft"]["type"], "full");
    assert_eq!(job["metadata"]["team"], "support");
    assert_eq!(job["user_provided_suffix"], "keeper");
    assert!(job["fine_tuned_model"].is_null());

    // What no executor here can do is refused with the reason.
    for (patch, field, says) in [
        (
            json!({"peft": {"type": "lora", "r": 8, "alpha": 16.0}}),
            "peft",
            "LoRA",
        ),
        (
            json!({"hyperparameters": {"batch_size": 4}}),
            "hyperparameters.batch_size",
            "batch_size",
        ),
        (
            json!({"resources": {"gpu_type": "h100", "gpus_per_node": 8}}),
            "resources.gpu_type",
            "h100",
        ),
        (
            json!({"distributed": {"type": "deepspeed", "zero_stage": 3}}),
            "distributed",
            "distributed",
        ),
        (json!({"method": {"type": "dpo"}}), "method.type", "dpo"),
        (json!({"model": "base@7"}), "model", "base"),
        (
            json!({"training_file": "file_01jaaaaaaaaaaaaaaaaaaaaaaa"}),
            "training_file",
            "does not exist",
        ),
        (json!({"suffix": "has space"}), "suffix", "suffix"),
        (
            json!({"hyperparameters": {"n_epochs": 0}}),
            "hyperparameters.n_epochs",
            "n_epochs",
        ),
    ] {
        let mut body = job_body.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let p = problem(
            app.post("/v1/fine_tuning/jobs", &ka, &body).await.unwrap(),
            422,
            "validation_error",
        )
        .await
        .unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(says), "{p}");
    }

    let listed = app.get_json("/v1/fine_tuning/jobs", &ka).await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["id"], jid);
    let events = app
        .get_json(&format!("/v1/fine_tuning/jobs/{jid}/events"), &ka)
        .await
        .unwrap();
    assert_eq!(events["object"], "list");
    assert_eq!(events["data"][0]["object"], "fine_tuning.job.event");
    assert!(
        events.to_string().contains("Created fine-tuning job"),
        "{events}"
    );
    let ckpts = app
        .get_json(&format!("/v1/fine_tuning/jobs/{jid}/checkpoints"), &ka)
        .await
        .unwrap();
    assert_eq!(ckpts["data"], json!([]));

    // A file a job still reads cannot be deleted.
    problem(
        app.delete(&format!("/v1/files/{fid}"), &ka).await.unwrap(),
        409,
        "conflict",
    )
    .await
    .unwrap();

    // Control.
    let post = |path: String, key: String| {
        let app = &app;
        async move { app.post(&path, &key, &json!({})).await.unwrap() }
    };
    let paused: Value = post(format!("/v1/fine_tuning/jobs/{jid}/pause"), ka.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paused["status"], "paused");
    let resumed: Value = post(format!("/v1/fine_tuning/jobs/{jid}/resume"), ka.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["status"], "queued");

    // Isolation: B sees and touches none of A's files and jobs.
    for path in [
        format!("/v1/files/{fid}"),
        format!("/v1/files/{fid}/content"),
        format!("/v1/fine_tuning/jobs/{jid}"),
        format!("/v1/fine_tuning/jobs/{jid}/events"),
        format!("/v1/fine_tuning/jobs/{jid}/checkpoints"),
    ] {
        problem(app.get(&path, &kb).await.unwrap(), 404, "not_found")
            .await
            .unwrap();
    }
    for action in ["cancel", "pause", "resume"] {
        problem(
            post(format!("/v1/fine_tuning/jobs/{jid}/{action}"), kb.clone()).await,
            404,
            "not_found",
        )
        .await
        .unwrap();
    }
    problem(
        app.delete(&format!("/v1/files/{fid}"), &kb).await.unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
    assert_eq!(
        app.get_json("/v1/files", &kb).await.unwrap()["data"],
        json!([])
    );
    assert_eq!(
        app.get_json("/v1/fine_tuning/jobs", &kb).await.unwrap()["data"],
        json!([])
    );
    // B cannot train on A's file, even with a base of its own.
    base_model(&app, &kb).await;
    let p = problem(
        app.post(
            "/v1/fine_tuning/jobs",
            &kb,
            &json!({"model": "base@1", "training_file": fid}),
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    assert_eq!(p["errors"][0]["field"], "training_file");

    // Cancel: at once for a queued job; a finished job refuses control.
    let cancelled: Value = post(format!("/v1/fine_tuning/jobs/{jid}/cancel"), ka.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].as_i64().is_some());
    problem(
        post(format!("/v1/fine_tuning/jobs/{jid}/cancel"), ka.clone()).await,
        409,
        "conflict",
    )
    .await
    .unwrap();
    // Its file is free again.
    let res = app.delete(&format!("/v1/files/{fid}"), &ka).await.unwrap();
    assert_eq!(res.status(), 200);
    let deleted: Value = res.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": fid, "object": "file", "deleted": true})
    );
    problem(
        app.get(&format!("/v1/files/{fid}/content"), &ka)
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();
}

/// The official openai Python SDK's files and fine_tuning.jobs calls work
/// unmodified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_drives_files_and_fine_tuning() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let t = app.create_tenant("sdk").unwrap();
    let key = s(&t["api_key"]);
    base_model(&app, &key).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sdk/check_openai_sdk_training.py"
    );
    let train = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/recipes/llamacpp-cpu/testdata/train.jsonl"
    );
    let url = app.url("/v1");
    llmops_tests::run_sdk_checks(
        "TEST_SDK_PYTHON",
        script,
        &[
            ("LLMOPS_BASE_URL", &url),
            ("LLMOPS_API_KEY", &key),
            ("LLMOPS_BASE_MODEL", "base@1"),
            ("LLMOPS_TRAIN_FILE", train),
        ],
    )
    .await
    .unwrap();
}

/// GPU pools decide which jobs can be accepted; a tenant over budget starts
/// no job (it waits with the reason `budget`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_and_budgets_gate_jobs() {
    let (app, tid, key) = crate::training_lifecycle::training_app(
        "spender",
        &[
            ("LLMOPS_TRAINING_CPU_SLOTS", "1"),
            ("LLMOPS_BUDGET_CACHE_SECS", "0"),
        ],
    )
    .await;
    let admin = |m: reqwest::Method, path: &str, body: Value| {
        let app = &app;
        let path = path.to_string();
        async move { crate::billing::admin(app, m, &path, &body).await }
    };
    let pool = json!({"id": "h100-spot", "gpu_type": "h100", "gpus_per_node": 8, "nodes": 2,
                      "spot": true, "price_per_gpu_hour_minor": 250, "currency": "USD"});
    let res = admin(
        reqwest::Method::PUT,
        "/admin/v1/gpu_pools/h100-spot",
        pool.clone(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        admin(reqwest::Method::GET, "/admin/v1/gpu_pools", json!({}))
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!([pool])
    );
    let mut wrong = pool.clone();
    wrong["id"] = json!("other");
    problem(
        admin(reqwest::Method::PUT, "/admin/v1/gpu_pools/h100-spot", wrong).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let res = admin(
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-spender/training_quotas",
        json!({"weight": 2, "max_gpus": {"h100": 8, "cpu": 1}}),
    )
    .await;
    assert_eq!(res.status(), 200);
    problem(
        admin(
            reqwest::Method::PUT,
            "/admin/v1/plans/nope/training_quotas",
            json!({"weight": 1, "max_gpus": {}}),
        )
        .await,
        404,
        "not_found",
    )
    .await
    .unwrap();

    base_model(&app, &key).await;
    let data = chat("Who keeps the lighthouse?", "Zorbemund does.");
    let res = upload(
        &app,
        &key,
        form(
            &[("purpose", "fine-tune")],
            Some(("t.jsonl", data.as_bytes())),
        ),
    )
    .await;
    let fid = s(&res.json::<Value>().await.unwrap()["id"]);

    // A pool makes its GPU type trainable: LoRA with DeepSpeed on 2 × 8.
    let res = app
        .post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "base@2", "training_file": fid,
                    "peft": {"type": "lora", "r": 16, "alpha": 32.0, "target_modules": ["q_proj", "v_proj"]},
                    "resources": {"gpu_type": "h100", "gpus_per_node": 8, "nodes": 2},
                    "distributed": {"type": "deepspeed", "zero_stage": 3, "offload_optimizer": true}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let gpu_job: Value = res.json().await.unwrap();
    assert_eq!(gpu_job["executor"]["recipe"], "torch-peft");
    // The GPU recipe reads safetensors, not the GGUF the CPU recipe reads.
    let p = problem(
        app.post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "base@1", "training_file": fid,
                    "resources": {"gpu_type": "h100", "gpus_per_node": 1}}),
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    assert!(p["detail"].as_str().unwrap().contains("safetensors"), "{p}");
    assert_eq!(gpu_job["executor"]["trains"]["type"], "lora");
    // A GPU worker runs attempts on Kubernetes, in its pool: without
    // them it refuses to start, and says what is missing.
    for (args, says) in [
        (vec!["--gpu-type", "h100"], "--pool ID"),
        (vec!["--gpu-type", "h100", "--pool", "nope"], "--pool nope"),
        (
            vec!["--gpu-type", "a100", "--pool", "h100-spot"],
            "holds h100 devices, not a100",
        ),
        (
            vec!["--gpu-type", "h100", "--pool", "h100-spot"],
            "training_kube_namespace",
        ),
        (vec!["--pool", "h100-spot"], "holds h100 devices, not cpu"),
    ] {
        let mut all = vec!["worker"];
        all.extend(args.iter().copied());
        let out = app.cli_raw(&all).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Only a CPU worker is online: the GPU job says why it waits.
    assert_eq!(gpu_job["wait_reason"], "capacity", "{gpu_job}");
    llmops_tests::eventually(std::time::Duration::from_secs(20), || async {
        let w: Value = admin(
            reqwest::Method::GET,
            "/admin/v1/training/workers",
            json!({}),
        )
        .await
        .json()
        .await?;
        let w = w.as_array().cloned().unwrap_or_default();
        Ok(w.len() == 1 && w[0]["gpu_type"] == "cpu" && w[0]["slots"] == 1)
    })
    .await
    .unwrap();
    // … but not larger than its largest pool.
    let p = problem(
        app.post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "base@2", "training_file": fid,
                    "resources": {"gpu_type": "h100", "gpus_per_node": 8, "nodes": 3},
                    "distributed": {"type": "deepspeed", "zero_stage": 2}}),
        )
        .await
        .unwrap(),
        422,
        "validation_error",
    )
    .await
    .unwrap();
    assert!(p["detail"].as_str().unwrap().contains("never fit"), "{p}");
    // A second pool of the type with more nodes (fewer GPUs each) holds
    // what the first cannot: any pool that fits will do.
    let wide = json!({"id": "h100-wide", "gpu_type": "h100", "gpus_per_node": 4, "nodes": 16,
                      "spot": false, "price_per_gpu_hour_minor": 300, "currency": "USD"});
    let res = admin(reqwest::Method::PUT, "/admin/v1/gpu_pools/h100-wide", wide).await;
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "base@2", "training_file": fid,
                    "resources": {"gpu_type": "h100", "gpus_per_node": 4, "nodes": 10},
                    "distributed": {"type": "deepspeed", "zero_stage": 2}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Over budget: the CPU job waits, visibly, and never starts.
    let pricing = json!({"currency": "USD", "components": [{"meter": "input_tokens", "mode": "graduated",
        "description": "Input tokens", "tiers": [{"up_to": null, "rate": {"amount_minor": 1, "per": 1}}]}]});
    let res = admin(
        reqwest::Method::PUT,
        "/admin/v1/plans/plan-spender/pricing",
        pricing,
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .put(app.url("/v1/billing/budget"))
        .bearer_auth(&key)
        .json(&json!({"limit_minor": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .admin_post(
            "/admin/v1/usage/events",
            &json!({"events": [{"id": "spent", "tenant_id": tid, "meter": "input_tokens", "quantity": 500,
                                "dimensions": {}, "occurred_at": chrono::Utc::now().to_rfc3339()}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            "/v1/fine_tuning/jobs",
            &key,
            &json!({"model": "base@1", "training_file": fid}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = s(&res.json::<Value>().await.unwrap()["id"]);
    llmops_tests::eventually(std::time::Duration::from_secs(20), || async {
        let j = app
            .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
            .await?;
        // A claim made on a snapshot older than the spend is given back
        // uncounted: the job may show `running` for an instant.
        assert_eq!(j["finished_at"], Value::Null, "{j}");
        Ok(j["wait_reason"] == "budget" && j["status"] == "queued")
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let j = app
        .get_json(&format!("/v1/fine_tuning/jobs/{id}"), &key)
        .await
        .unwrap();
    assert_eq!(
        (j["status"].clone(), j["attempt"].clone()),
        (json!("queued"), json!(0)),
        "{j}"
    );
}
