//! What a GPU job's processes are started with: the distributed
//! launcher's command line and DeepSpeed's JSON config, both rendered from
//! the job (so they are reviewed and tested here, not hand-written per run).

use crate::api::{Distributed, Peft, Resources};
use crate::service::JobSpec;
use serde_json::{Value, json};

/// Port of the rendezvous on the first node.
pub const RDZV_PORT: u16 = 29500;

/// DeepSpeed's config for a job that asks for ZeRO, else `None`. Batch
/// sizes, precision and clipping are `"auto"`: the Hugging Face Trainer
/// fills them from its own arguments, so the two can never disagree.
pub fn deepspeed_config(distributed: &Distributed) -> Option<Value> {
    let Distributed::Deepspeed {
        zero_stage,
        offload_optimizer,
        offload_params,
    } = distributed
    else {
        return None;
    };
    let mut zero = json!({
        "stage": zero_stage,
        "overlap_comm": true,
        "contiguous_gradients": true,
        "reduce_bucket_size": "auto",
    });
    if *offload_optimizer {
        zero["offload_optimizer"] = json!({"device": "cpu", "pin_memory": true});
    }
    if *zero_stage == 3 {
        zero["stage3_prefetch_bucket_size"] = json!("auto");
        zero["stage3_param_persistence_threshold"] = json!("auto");
        zero["stage3_gather_16bit_weights_on_model_save"] = json!(true);
        if *offload_params {
            zero["offload_param"] = json!({"device": "cpu", "pin_memory": true});
        }
    }
    Some(json!({
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
        "steps_per_print": 1000000,
        "wall_clock_breakdown": false,
    }))
}

/// Where the processes of one job find each other.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    /// Host of the first node (`ftjob-…-0.ftjob-…` on Kubernetes).
    pub host: String,
    /// The node's rank, as a shell expression (`$JOB_COMPLETION_INDEX`).
    pub node_rank: String,
}

/// The command that starts the recipe on one node: `python` for a single
/// device, `torchrun` (elastic, c10d rendezvous) for several.
pub fn command(
    python: &str,
    script: &str,
    spec_path: &str,
    resources: &Resources,
    rdzv: &Rendezvous,
) -> Vec<String> {
    if resources.devices() <= 1 {
        return vec![
            python.into(),
            script.into(),
            "--spec".into(),
            spec_path.into(),
        ];
    }
    vec![
        python.into(),
        "-m".into(),
        "torch.distributed.run".into(),
        format!("--nnodes={}", resources.nodes),
        format!("--nproc-per-node={}", resources.gpus_per_node),
        format!("--node-rank={}", rdzv.node_rank),
        "--rdzv-backend=c10d".into(),
        format!("--rdzv-endpoint={}:{RDZV_PORT}", rdzv.host),
        "--max-restarts=0".into(),
        script.into(),
        "--spec".into(),
        spec_path.into(),
    ]
}

/// The GPU recipe's spec (the recipe's own contract, see
/// `infra/recipes/torch-peft/README.md`), with data under `root` and the
/// rendered configs under `config_dir`.
pub fn gpu_spec(job_id: &str, attempt: i32, spec: &JobSpec, root: &str, config_dir: &str) -> Value {
    let method = match &spec.peft {
        Peft::Lora {
            r,
            alpha,
            dropout,
            target_modules,
        } => json!({"type": "lora", "r": r, "alpha": alpha, "dropout": dropout,
                    "target_modules": target_modules}),
        Peft::Full { trainable_blocks } => {
            json!({"type": "full", "trainable_blocks": trainable_blocks.unwrap_or(0)})
        }
    };
    json!({
        "job_id": job_id,
        "attempt": attempt,
        "kind": "fine_tune",
        "base_model": format!("{root}/base"),
        "training_file": format!("{root}/train.jsonl"),
        "validation_file": spec.validation_file.as_ref().map(|_| format!("{root}/valid.jsonl")),
        "hyperparameters": {
            "n_epochs": spec.hyperparameters.n_epochs,
            "batch_size": spec.hyperparameters.batch_size,
            "learning_rate": spec.learning_rate,
        },
        "method": method,
        "distributed": spec.distributed,
        "resources": spec.resources,
        "deepspeed_config": deepspeed_config(&spec.distributed).map(|_| format!("{config_dir}/ds_config.json")),
        "seed": spec.seed,
        "max_seq_len": 2048,
        "bf16": true,
        "checkpoint_dir": format!("{root}/checkpoints"),
        "resume_from": null,
        "output_dir": format!("{root}/output"),
        "merge_adapter": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(per_node: u32, nodes: u32) -> Resources {
        Resources {
            gpu_type: "h100".into(),
            gpus_per_node: per_node,
            nodes,
        }
    }

    fn rdzv() -> Rendezvous {
        Rendezvous {
            host: "ftjob-x-0.ftjob-x".into(),
            node_rank: "$JOB_COMPLETION_INDEX".into(),
        }
    }

    #[test]
    fn one_device_runs_the_recipe_directly() {
        let c = command("python", "train.py", "/job/spec.json", &res(1, 1), &rdzv());
        assert_eq!(c, ["python", "train.py", "--spec", "/job/spec.json"]);
    }

    #[test]
    fn several_nodes_use_torchrun_with_a_rendezvous_on_the_first() {
        let c = command("python", "train.py", "/job/spec.json", &res(8, 2), &rdzv()).join(" ");
        assert!(
            c.starts_with("python -m torch.distributed.run --nnodes=2 --nproc-per-node=8"),
            "{c}"
        );
        assert!(c.contains("--node-rank=$JOB_COMPLETION_INDEX"), "{c}");
        assert!(c.contains("--rdzv-endpoint=ftjob-x-0.ftjob-x:29500"), "{c}");
        assert!(c.ends_with("train.py --spec /job/spec.json"), "{c}");
    }

    #[test]
    fn zero_3_with_offload_renders_both_offloads() {
        let c = deepspeed_config(&Distributed::Deepspeed {
            zero_stage: 3,
            offload_optimizer: true,
            offload_params: true,
        })
        .unwrap();
        assert_eq!(c["zero_optimization"]["stage"], 3);
        assert_eq!(c["zero_optimization"]["offload_optimizer"]["device"], "cpu");
        assert_eq!(c["zero_optimization"]["offload_param"]["device"], "cpu");
        assert_eq!(
            c["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"],
            true
        );
        assert_eq!(c["train_micro_batch_size_per_gpu"], "auto");
    }

    #[test]
    fn zero_2_has_no_stage_3_settings_and_none_has_no_config() {
        let c = deepspeed_config(&Distributed::Deepspeed {
            zero_stage: 2,
            offload_optimizer: false,
            offload_params: false,
        })
        .unwrap();
        assert_eq!(c["zero_optimization"]["stage"], 2);
        assert!(c["zero_optimization"].get("offload_optimizer").is_none());
        assert!(
            c["zero_optimization"]
                .get("stage3_prefetch_bucket_size")
                .is_none()
        );
        assert!(deepspeed_config(&Distributed::None).is_none());
    }
}
