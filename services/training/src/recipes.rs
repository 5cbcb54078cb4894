//! Which recipe runs a job, and what it will actually train.
//!
//! A job never silently runs another method than the one it asked for: a
//! request a recipe cannot honour is refused here, with the reason, before
//! it is queued; what is planned is shown on the job and recorded on the
//! registered version.

use crate::api::{
    CreateJob, Distributed, ExecutorPlan, Hyperparameters, MethodType, Peft,
    ResolvedHyperparameters, Resources,
};
use llmops_core::ApiError;

/// The CPU recipe: llama.cpp's own training API (full tensors).
pub const CPU_RECIPE: &str = "llamacpp-cpu";
/// The GPU recipe: PyTorch + PEFT (LoRA or full), DeepSpeed ZeRO when asked.
pub const GPU_RECIPE: &str = "torch-peft";
/// The GPU recipe's learning rate at multiplier 1 (LoRA).
pub const GPU_BASE_LEARNING_RATE: f64 = 2e-4;
/// Top blocks the CPU recipe trains when the job does not say.
pub const CPU_DEFAULT_BLOCKS: u32 = 10;
/// The CPU recipe's learning rate at multiplier 1.
pub const CPU_BASE_LEARNING_RATE: f64 = 4e-4;
/// Epochs for `n_epochs: "auto"`.
pub const AUTO_EPOCHS: u32 = 4;

/// What a request resolves to.
#[derive(Debug, Clone)]
pub struct Plan {
    pub hyperparameters: ResolvedHyperparameters,
    pub learning_rate: f64,
    pub peft: Peft,
    pub resources: Resources,
    pub distributed: Distributed,
    pub executor: ExecutorPlan,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(field, message)
}

/// The hyperparameters given, at the top level or under `method.supervised`
/// (not both: OpenAI moved them; a request must say which it means).
fn hyperparameters(req: &CreateJob) -> Result<Hyperparameters, ApiError> {
    let nested = req
        .method
        .as_ref()
        .and_then(|m| m.supervised.as_ref())
        .and_then(|s| s.hyperparameters.clone());
    match (&req.hyperparameters, nested) {
        (Some(_), Some(_)) => Err(invalid(
            "hyperparameters",
            "give hyperparameters either at the top level or in method.supervised, not both",
        )),
        (Some(h), None) => Ok(h.clone()),
        (None, Some(h)) => Ok(h),
        (None, None) => Ok(Hyperparameters::default()),
    }
}

/// Plans a job. `pool` is the shape (devices per node, nodes) of a pool of
/// the job's GPU type that holds it, or of the largest when none does;
/// `None` when no pool has the type (`cpu` needs none).
pub fn plan(req: &CreateJob, pool: Option<(u32, u32)>) -> Result<Plan, ApiError> {
    if let Some(m) = &req.method {
        match m.kind {
            MethodType::Supervised => {}
            other => {
                return Err(invalid(
                    "method.type",
                    format!(
                        "method `{}` is not trained here; only `supervised` is",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
        if m.dpo.is_some() || m.reinforcement.is_some() {
            return Err(invalid(
                "method",
                "only method.supervised may be given with type `supervised`",
            ));
        }
    }
    let h = hyperparameters(req)?;
    let n_epochs = match h.n_epochs.and_then(|v| v.value()) {
        None => AUTO_EPOCHS,
        Some(n) if (1..=50).contains(&n) => n,
        Some(_) => {
            return Err(invalid(
                "hyperparameters.n_epochs",
                "n_epochs must be 1 to 50",
            ));
        }
    };
    let multiplier = match h.learning_rate_multiplier.and_then(|v| v.value()) {
        None => 1.0,
        Some(x) if x.is_finite() && x > 0.0 && x <= 10.0 => x,
        Some(_) => {
            return Err(invalid(
                "hyperparameters.learning_rate_multiplier",
                "learning_rate_multiplier must be above 0 and at most 10",
            ));
        }
    };
    let batch = h.batch_size.and_then(|v| v.value());
    if batch.is_some_and(|b| !(1..=256).contains(&b)) {
        return Err(invalid(
            "hyperparameters.batch_size",
            "batch_size must be 1 to 256",
        ));
    }
    let resources = req.resources.clone().unwrap_or_default();
    check_resources(&resources)?;
    let distributed = req.distributed.clone().unwrap_or(Distributed::None);
    if resources.gpu_type != "cpu" {
        let Some((per_node, nodes)) = pool else {
            return Err(invalid(
                "resources.gpu_type",
                format!(
                    "no GPU pool offers `{}` (the operator defines pools in /admin/v1/gpu_pools; `cpu` is built in)",
                    resources.gpu_type
                ),
            ));
        };
        if resources.gpus_per_node > per_node || resources.nodes > nodes {
            return Err(invalid(
                "resources",
                format!(
                    "no `{}` pool can hold the job (the largest has {nodes} node(s) of {per_node} GPU(s)): it can never fit",
                    resources.gpu_type
                ),
            ));
        }
        return gpu_plan(
            batch,
            n_epochs,
            multiplier,
            req.peft.clone(),
            resources,
            distributed,
        );
    }
    // The CPU recipe.
    if resources.devices() != 1 {
        return Err(invalid(
            "resources",
            "a CPU job runs on one worker: gpus_per_node and nodes must be 1",
        ));
    }
    if distributed != Distributed::None {
        return Err(invalid(
            "distributed",
            "the CPU recipe runs in one process: distributed must be `none` (DeepSpeed and Megatron settings need a GPU pool)",
        ));
    }
    let peft = req.peft.clone().unwrap_or(Peft::Full {
        trainable_blocks: Some(CPU_DEFAULT_BLOCKS),
    });
    let blocks = match &peft {
        Peft::Full { trainable_blocks } if trainable_blocks.is_some_and(|b| b > 1000) => {
            return Err(invalid(
                "peft.trainable_blocks",
                "trainable_blocks must be 0 to 1000",
            ));
        }
        Peft::Full { trainable_blocks } => *trainable_blocks,
        Peft::Lora { .. } => {
            return Err(invalid(
                "peft",
                "the CPU recipe (llama.cpp's training API) trains full tensors and has no LoRA; \
                 ask for {\"type\": \"full\", \"trainable_blocks\": N}, or LoRA on a GPU pool",
            ));
        }
    };
    if batch.is_some_and(|b| b != 1) {
        return Err(invalid(
            "hyperparameters.batch_size",
            "the CPU recipe takes one packed window of 256 tokens per step: batch_size must be 1 or auto",
        ));
    }
    let mut notes = vec![
        "llama.cpp's optimizer (AdamW, constant learning rate) on chats rendered with the base model's chat template and packed into windows of 256 tokens; prompt tokens are trained on too (no loss masking)".to_string(),
    ];
    if blocks.is_some_and(|b| b > 0) {
        notes.push("token embeddings are never trained by this API".to_string());
    }
    Ok(Plan {
        hyperparameters: ResolvedHyperparameters {
            n_epochs,
            batch_size: 1,
            learning_rate_multiplier: multiplier,
        },
        learning_rate: CPU_BASE_LEARNING_RATE * multiplier,
        executor: ExecutorPlan {
            recipe: CPU_RECIPE.into(),
            trains: serde_json::json!({
                "type": "full",
                "trainable_blocks": blocks.unwrap_or(0),
            }),
            notes,
        },
        peft,
        resources,
        distributed,
    })
}

fn check_resources(r: &Resources) -> Result<(), ApiError> {
    let ok_type = !r.gpu_type.is_empty()
        && r.gpu_type.len() <= 64
        && r.gpu_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok_type {
        return Err(invalid(
            "resources.gpu_type",
            "gpu_type is lower-case letters, digits, `.`, `_`, `-` (at most 64)",
        ));
    }
    if !(1..=64).contains(&r.gpus_per_node) || !(1..=512).contains(&r.nodes) {
        return Err(invalid(
            "resources",
            "gpus_per_node must be 1 to 64 and nodes 1 to 512",
        ));
    }
    Ok(())
}

fn gpu_plan(
    batch: Option<u32>,
    n_epochs: u32,
    multiplier: f64,
    peft: Option<Peft>,
    resources: Resources,
    distributed: Distributed,
) -> Result<Plan, ApiError> {
    let peft = peft.unwrap_or(Peft::Lora {
        r: 16,
        alpha: 32.0,
        dropout: 0.05,
        target_modules: Vec::new(),
    });
    if let Peft::Lora {
        r,
        alpha,
        dropout,
        target_modules,
    } = &peft
        && !lora_ok(*r, *alpha, *dropout, target_modules)
    {
        return Err(invalid(
            "peft",
            "LoRA needs r 1 to 1024, alpha above 0 (at most 4096), dropout 0 to 0.9, at most 32 module names",
        ));
    }
    let devices = resources.devices();
    match &distributed {
        Distributed::Deepspeed {
            zero_stage,
            offload_params,
            ..
        } => {
            if !(1..=3).contains(zero_stage) {
                return Err(invalid(
                    "distributed.zero_stage",
                    "zero_stage must be 1, 2 or 3",
                ));
            }
            if *offload_params && *zero_stage != 3 {
                return Err(invalid(
                    "distributed.offload_params",
                    "offloading parameters needs ZeRO stage 3",
                ));
            }
        }
        Distributed::Megatron {
            tensor_parallel,
            pipeline_parallel,
        } => {
            let model_parallel = tensor_parallel.saturating_mul(*pipeline_parallel);
            if *tensor_parallel > resources.gpus_per_node {
                return Err(invalid(
                    "distributed.tensor_parallel",
                    "tensor parallelism stays within a node: at most gpus_per_node",
                ));
            }
            if model_parallel == 0 || !devices.is_multiple_of(model_parallel) {
                return Err(invalid(
                    "distributed",
                    "tensor_parallel × pipeline_parallel must divide the job's devices",
                ));
            }
        }
        Distributed::None if devices > 1 => {
            return Err(invalid(
                "distributed",
                "a job on several GPUs needs a distributed setting (deepspeed or megatron)",
            ));
        }
        Distributed::None => {}
    }
    let batch = batch.unwrap_or(8);
    let trains = match &peft {
        Peft::Lora {
            r,
            alpha,
            dropout,
            target_modules,
        } => serde_json::json!({
            "type": "lora", "r": r, "alpha": alpha, "dropout": dropout,
            "target_modules": target_modules,
        }),
        Peft::Full { trainable_blocks } => serde_json::json!({
            "type": "full", "trainable_blocks": trainable_blocks.unwrap_or(0),
        }),
    };
    Ok(Plan {
        hyperparameters: ResolvedHyperparameters {
            n_epochs,
            batch_size: batch,
            learning_rate_multiplier: multiplier,
        },
        learning_rate: GPU_BASE_LEARNING_RATE * multiplier,
        executor: ExecutorPlan {
            recipe: GPU_RECIPE.into(),
            trains,
            notes: vec![
                "PyTorch + PEFT with transformers in bf16 on the pool's GPUs; runs on a `llmops worker --gpu-type` of the pool".to_string(),
            ],
        },
        peft,
        resources,
        distributed,
    })
}

fn lora_ok(r: u32, alpha: f64, dropout: f64, modules: &[String]) -> bool {
    let module_ok = |m: &String| {
        !m.is_empty()
            && m.len() <= 64
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._".contains(&b))
    };
    (1..=1024).contains(&r)
        && alpha.is_finite()
        && alpha > 0.0
        && alpha <= 4096.0
        && (0.0..=0.9).contains(&dropout)
        && modules.len() <= 32
        && modules.iter().all(module_ok)
}
