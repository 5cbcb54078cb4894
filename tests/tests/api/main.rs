//! Black-box tests of the `llmops` binary over HTTP, on PostgreSQL and SQLite.
//! One test binary (one link) with a module per area.

mod auth;
mod benches;
mod billing;
mod budget;
mod cache;
mod contract;
mod dashboard;
mod dashboard_page;
mod deployments;
mod errors;
mod keys;
mod ledger;
mod monitoring;
mod ops;
mod otlp;
mod periods;
mod rag;
mod rag_uploads;
mod ratelimit;
mod readme;
mod registry;
mod serving;
mod split;
mod stripe;
mod tenants;
mod training_api;
mod training_kinds;
mod training_kube;
mod training_lifecycle;
mod training_queue;
mod triton_outage;
mod upstream;
mod upstream_answers;
mod usage;
