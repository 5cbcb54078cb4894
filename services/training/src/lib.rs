//! `llmops-training`: fine-tuning and the other model-producing jobs
//! (quantize, distill, evaluate) over one durable queue.
//!
//! This first part is the queue: jobs claimed under expiring leases,
//! renewed by heartbeats, fenced by attempt number, retried with back-off,
//! cancelled or paused through the heartbeat; claims ordered by weighted
//! fair share between tenants, priority within a tenant, and per-tenant
//! quotas on concurrent devices. Also the streaming validator of
//! chat-format training files (`dataset`). The API, executors and recipes
//! build on these.

pub mod admin;
pub mod api;
pub mod dataset;
pub mod distill;
pub mod entities;
pub mod executor;
pub mod files;
pub mod job;
pub mod kube_exec;
pub mod kubernetes;
pub mod launch;
pub mod policy;
pub mod pools;
pub mod presence;
pub mod queue;
pub mod recipes;
pub mod routes;
pub mod service;
pub mod tasks;
pub mod worker;

pub use service::Training;

pub use queue::{
    Capacity, Control, Finish, JobKind, JobRow, JobStatus, Lease, NewJob, Queue, QueueConfig,
    QueueError,
};
