//! `llmops-serving`: OpenAI-compatible inference on NVIDIA Triton.
//!
//! Clients speak OpenAI's API (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/models`); the service applies the model's chat
//! template, reserves the tenant's tokens, calls Triton over gRPC (KServe v2,
//! streaming for decoupled models) and reports usage from the model's own
//! token counts.

mod cached;
pub mod catalog;
pub mod deployments;
mod embeddings;
pub mod openai;
mod readiness;
mod recording;
pub mod routes;
pub mod service;
mod settlement;
pub mod tokens;
pub mod triton;
pub mod upstream;

/// Generated from `proto/inference.proto`.
#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub mod pb {
    tonic::include_proto!("inference");
}

pub use service::{Serving, ServingParts};
