//! The Kubernetes executor's rendering, validated offline against the
//! Kubernetes API schemas (kubernetes-validate, strict: unknown fields
//! fail) for a one-GPU LoRA job and a two-node DeepSpeed ZeRO-3 job.

use llmops_training::api::{Distributed, ExecutorPlan, Peft, ResolvedHyperparameters, Resources};
use llmops_training::kubernetes::{KubeSettings, render};
use llmops_training::service::JobSpec;
use serde_json::Value;

fn spec(resources: Resources, distributed: Distributed) -> JobSpec {
    JobSpec {
        model: "llama@3".into(),
        base_version_id: "mv_01jaaaaaaaaaaaaaaaaaaaaaaa".into(),
        base_version: "llama@3".into(),
        base_sha256: None,
        training_file: "file_01jaaaaaaaaaaaaaaaaaaaaaaa".into(),
        training_file_sha256: "ab".repeat(32),
        validation_file: Some("file_01jbbbbbbbbbbbbbbbbbbbbbbb".into()),
        validation_file_sha256: None,
        hyperparameters: ResolvedHyperparameters {
            n_epochs: 3,
            batch_size: 8,
            learning_rate_multiplier: 1.0,
        },
        learning_rate: 2e-4,
        method: serde_json::json!({"type": "supervised"}),
        suffix: None,
        seed: 42,
        metadata: None,
        peft: Peft::Lora {
            r: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: vec![],
        },
        resources,
        distributed,
        executor: ExecutorPlan {
            recipe: "torch-peft".into(),
            trains: serde_json::json!({"type": "lora"}),
            notes: vec![],
        },
        output_model: "llama-ft".into(),
        distill: None,
    }
}

fn settings() -> KubeSettings {
    KubeSettings {
        namespace: "tenant-jobs".into(),
        image: "registry.example.com/llmops/train-gpu:1".into(),
        queue_name: Some("training".into()),
        artifacts_secret: "llmops-artifacts".into(),
        inputs_uri: "s3://llmops-artifacts/tenants/t/jobs/j/attempt-1/inputs/".into(),
        outputs_uri: "s3://llmops-artifacts/tenants/t/jobs/j/attempt-1/output/".into(),
        s3_endpoint: None,
        pool_label: "llmops.dev/gpu-pool".into(),
        pool: "h100-spot".into(),
    }
}

/// Runs kubernetes-validate; returns whether every object passed, and
/// its report.
fn kubernetes_validate(objects: &[Value]) -> (bool, String) {
    let python = std::env::var("TEST_KUBE_PYTHON")
        .expect("TEST_KUBE_PYTHON (set by scripts/test.sh: scripts/lib.sh kube_python)");
    let dir = llmops_tests::TempDir::new("kube").unwrap();
    let mut files = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let path = dir.0.join(format!("{i}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(o).unwrap()).unwrap();
        files.push(path);
    }
    let out = std::process::Command::new(&python)
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.33.0"])
        .args(&files)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let all =
        out.status.success() && report.matches(" passed for resource ").count() == objects.len();
    (all, report)
}

/// Runs a command: whether it succeeded, and its stdout and stderr.
fn run(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

fn validate(objects: &[Value]) {
    let (ok, report) = kubernetes_validate(objects);
    assert!(ok, "{report}");
}

#[test]
fn a_one_gpu_lora_job_renders_valid_objects() {
    let s = spec(
        Resources {
            gpu_type: "h100".into(),
            gpus_per_node: 1,
            nodes: 1,
        },
        Distributed::None,
    );
    let objects = render(
        "ftjob_01jcccccccccccccccccccccccc",
        "ten_01jddddddddddddddddddddddd",
        1,
        &s,
        &settings(),
    );
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Job"]);
    let job = &objects[1];
    assert_eq!(
        job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"],
        "training"
    );
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    // The launcher runs under a wrapper that uploads rank 0's output; the
    // URIs travel as arguments, never inside the script.
    assert_eq!(c["command"][0], "sh");
    assert_eq!(c["command"][4], settings().outputs_uri);
    assert_eq!(c["command"][6], "python");
    assert!(!c["command"][2].as_str().unwrap().contains("s3://"));
    let stage = &job["spec"]["template"]["spec"]["initContainers"][0]["command"];
    assert_eq!(stage[4], settings().inputs_uri);
    // The wrapper, run by a real sh: the launcher's status decides, and
    // only rank 0 uploads (here `aws` is not installed, so an upload fails).
    let script = c["command"][2].as_str().unwrap();
    let wrapper = |rank: &str, launcher: &str| {
        std::process::Command::new("sh")
            .args(["-c", script, "train", "s3://b/out/", "", launcher])
            .env("JOB_COMPLETION_INDEX", rank)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    assert!(
        wrapper("1", "true").status.success(),
        "rank 1 uploads nothing"
    );
    assert!(
        !wrapper("1", "false").status.success(),
        "a failed launcher fails the pod"
    );
    let rank0 = wrapper("0", "true");
    assert!(!rank0.status.success());
    assert!(
        String::from_utf8_lossy(&rank0.stderr).contains("aws"),
        "rank 0 uploads: {}",
        String::from_utf8_lossy(&rank0.stderr)
    );
    // Deleting the pod sends SIGTERM to the shell (PID 1 there): it passes
    // it on to the recipe, whose status ends the container.
    let mut child = std::process::Command::new("sh")
        .args(["-c", script, "train", "s3://b/out/", "", "sleep", "30"])
        .env("JOB_COMPLETION_INDEX", "1")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "the recipe's SIGTERM status");
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "llmops-artifacts");
    let recipe: Value =
        serde_json::from_str(objects[0]["data"]["spec.json"].as_str().unwrap()).unwrap();
    assert_eq!(recipe["method"]["type"], "lora");
    assert!(recipe["deepspeed_config"].is_null());
    validate(&objects);
    // The validator does refuse what the API would: a misspelt field.
    let mut bad = objects[1].clone();
    bad["spec"]["template"]["spec"]["containers"][0]["gpus"] = serde_json::json!(1);
    let (ok, report) = kubernetes_validate(&[bad]);
    assert!(!ok, "{report}");
}

#[test]
fn a_two_node_deepspeed_job_renders_valid_objects() {
    let s = spec(
        Resources {
            gpu_type: "h100".into(),
            gpus_per_node: 8,
            nodes: 2,
        },
        Distributed::Deepspeed {
            zero_stage: 3,
            offload_optimizer: true,
            offload_params: false,
        },
    );
    let objects = render(
        "ftjob_01jcccccccccccccccccccccccc",
        "ten_01jddddddddddddddddddddddd",
        2,
        &s,
        &settings(),
    );
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "Job"]);
    let name = "ftjob-01jcccccccccccccccccccccccc-a2";
    assert_eq!(objects[2]["metadata"]["name"], name);
    assert_eq!(objects[2]["spec"]["completions"], 2);
    assert_eq!(objects[2]["spec"]["completionMode"], "Indexed");
    assert_eq!(objects[2]["spec"]["template"]["spec"]["subdomain"], name);
    let cmd = objects[2]["spec"]["template"]["spec"]["containers"][0]["command"].to_string();
    assert!(
        cmd.contains("--nnodes=2") && cmd.contains("--nproc-per-node=8"),
        "{cmd}"
    );
    assert!(
        cmd.contains(&format!("--rdzv-endpoint={name}-0.{name}:29500")),
        "{cmd}"
    );
    let ds: Value =
        serde_json::from_str(objects[0]["data"]["ds_config.json"].as_str().unwrap()).unwrap();
    assert_eq!(ds["zero_optimization"]["stage"], 3);
    validate(&objects);
}

/// The GPU recipe's dry run (`--check-spec`, no torch needed): spec and
/// data validation, the plan it prints, the refusals (Megatron, bad lines);
/// and the recipes' shared module.
#[test]
fn the_gpu_recipe_checks_its_specs_without_a_gpu() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/recipes/torch-peft/test_check_spec.py"
    );
    let (ok, report) = run(std::process::Command::new("python3").arg(script));
    assert!(ok, "{report}");
    assert!(report.contains("OK"), "{report}");
    // And the code both recipes share (protocol, spec and JSONL reading).
    let common = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/recipes/common");
    let (ok, report) =
        run(std::process::Command::new("python3")
            .args(["-m", "unittest", "discover", "-s", common]));
    assert!(ok, "{report}");
    assert!(report.contains("OK"), "{report}");
}
