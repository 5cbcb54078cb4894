//! The Kubernetes executor's rendering: one attempt of a GPU job as plain
//! Kubernetes objects, so any cluster runs it (Kueue admits it when its
//! queue label is set; no Kubeflow or JobSet CRDs are needed).
//!
//! - a ConfigMap with the recipe's `spec.json` (and DeepSpeed's config);
//! - a headless Service giving each node a stable name, so the launcher's
//!   rendezvous on node 0 resolves (multi-node only);
//! - an Indexed Job: one pod per node (`JOB_COMPLETION_INDEX` is the node
//!   rank), GPUs as `nvidia.com/gpu` limits, the pool's node selector and
//!   GPU tolerations, an init container staging the inputs from the
//!   artifact store with credentials taken from a Secret by reference,
//!   `backoffLimit: 0` (retries are the queue's, fenced by attempt).
//!
//! The rank-0 pod uploads the recipe's output archive to the artifact store
//! when the recipe succeeded (the image needs the AWS CLI beside Python).
//!
//! Rendering is tested offline against the Kubernetes schemas
//! (`tests/tests/api/training_kube.rs`); [`crate::kube_exec`] submits the
//! objects and follows them (no cluster runs here).

use crate::launch::{self, Rendezvous};
use crate::service::JobSpec;
use serde_json::{Value, json};

/// Where and how jobs run on the cluster.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    pub namespace: String,
    /// The training image (Python with the GPU recipe's requirements).
    pub image: String,
    /// Kueue's LocalQueue in the namespace (`kueue.x-k8s.io/queue-name`).
    pub queue_name: Option<String>,
    /// Secret with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` for the
    /// artifact store.
    pub artifacts_secret: String,
    /// `s3://bucket/prefix/` of the attempt's staged inputs: `base.tar`
    /// (the base's Hugging Face directory), `train.jsonl`, `valid.jsonl`.
    pub inputs_uri: String,
    /// `s3://bucket/prefix/` the rank-0 pod uploads `output/` to once the
    /// recipe succeeded.
    pub outputs_uri: String,
    /// S3 endpoint for non-AWS stores.
    pub s3_endpoint: Option<String>,
    /// Node label that names the pool (`llmops.dev/gpu-pool`).
    pub pool_label: String,
    pub pool: String,
}

/// `ftjob-<ulid>-a<attempt>`: a DNS label (at most 63 characters).
pub fn name(job_id: &str, attempt: i32) -> String {
    format!("{}-a{attempt}", job_id.replace('_', "-"))
}

/// The objects of one attempt, in the order to create them.
pub fn render(
    job_id: &str,
    tenant_id: &str,
    attempt: i32,
    spec: &JobSpec,
    k: &KubeSettings,
) -> Vec<Value> {
    let name = name(job_id, attempt);
    let nodes = spec.resources.nodes.max(1);
    let labels = json!({
        "app.kubernetes.io/managed-by": "llmops",
        "llmops.dev/job-id": job_id,
        "llmops.dev/tenant-id": tenant_id,
        "llmops.dev/attempt": attempt.to_string(),
    });
    let root = "/work";
    let config_dir = "/etc/llmops/job";
    let recipe_spec = launch::gpu_spec(job_id, attempt, spec, root, config_dir);
    let mut data = json!({ "spec.json": recipe_spec.to_string() });
    if let Some(ds) = launch::deepspeed_config(&spec.distributed) {
        data["ds_config.json"] = json!(ds.to_string());
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": k.namespace, "labels": labels},
        "data": data,
    });
    let rdzv = Rendezvous {
        host: format!("{name}-0.{name}"),
        node_rank: "$(JOB_COMPLETION_INDEX)".into(),
    };
    let cmd = launch::command(
        "python",
        "/opt/recipes/torch-peft/train.py",
        &format!("{config_dir}/spec.json"),
        &spec.resources,
        &rdzv,
    );
    // The values travel as arguments ("$1", "$@"), never inside the
    // script: nothing from a job is ever parsed by the shell.
    let endpoint = k
        .s3_endpoint
        .as_ref()
        .map(|e| format!("--endpoint-url={e}"))
        .unwrap_or_default();
    let stage = vec![
        "sh".to_string(),
        "-c".into(),
        format!(
            "set -e; aws s3 cp --recursive \"$1\" {root} $2; mkdir -p {root}/base; \
             python3 -m tarfile -e {root}/base.tar {root}/base; rm {root}/base.tar"
        ),
        "stage-inputs".into(),
        k.inputs_uri.clone(),
        endpoint.clone(),
    ];
    // Rank 0 uploads the output archive once the recipe succeeded. The
    // shell (PID 1, which ignores signals it does not trap) passes SIGTERM
    // on, so a deleted pod's recipe stops at its step boundary.
    let mut train = vec![
        "sh".to_string(),
        "-c".into(),
        format!(
            "out=\"$1\"; ep=\"$2\"; shift 2; \"$@\" & p=$!; \
             trap 'kill -TERM \"$p\" 2>/dev/null' TERM INT; \
             wait \"$p\"; rc=$?; \
             while kill -0 \"$p\" 2>/dev/null; do wait \"$p\"; rc=$?; done; \
             [ \"$rc\" = 0 ] || exit \"$rc\"; \
             if [ \"$JOB_COMPLETION_INDEX\" = 0 ]; then \
             for f in {root}/output/*.tar; do aws s3 cp \"$f\" \"$out${{f##*/}}\" $ep || exit 1; done; fi"
        ),
        "train".into(),
        k.outputs_uri.clone(),
        endpoint,
    ];
    train.extend(cmd);
    let mut job_labels = labels.clone();
    if let Some(q) = &k.queue_name {
        job_labels["kueue.x-k8s.io/queue-name"] = json!(q);
    }
    let gpus = spec.resources.gpus_per_node.to_string();
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "nodeSelector": { k.pool_label.clone(): k.pool },
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "initContainers": [{
            "name": "stage-inputs",
            "image": k.image,
            "command": stage,
            "envFrom": [{"secretRef": {"name": k.artifacts_secret}}],
            "volumeMounts": [{"name": "work", "mountPath": root}],
        }],
        "containers": [{
            "name": "train",
            "image": k.image,
            "workingDir": root,
            "command": train,
            "env": [
                {"name": "LLMOPS_JOB_ID", "value": job_id},
                {"name": "LLMOPS_ATTEMPT", "value": attempt.to_string()},
                {"name": "NCCL_DEBUG", "value": "WARN"},
            ],
            "envFrom": [{"secretRef": {"name": k.artifacts_secret}}],
            "ports": [{"name": "rdzv", "containerPort": launch::RDZV_PORT}],
            "resources": {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}},
            "volumeMounts": [
                {"name": "work", "mountPath": root},
                {"name": "job", "mountPath": config_dir, "readOnly": true},
                {"name": "shm", "mountPath": "/dev/shm"},
            ],
        }],
        "volumes": [
            {"name": "work", "emptyDir": {}},
            {"name": "job", "configMap": {"name": name}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
    });
    let mut objects = vec![config];
    if nodes > 1 {
        pod_spec["subdomain"] = json!(name);
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": k.namespace, "labels": labels},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": true,
                "selector": {"job-name": name},
                "ports": [{"name": "rdzv", "port": launch::RDZV_PORT}],
            },
        }));
    }
    objects.push(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": k.namespace, "labels": job_labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }));
    objects
}
