//! `llmops-gateway`: the public edge (authentication, rate limits, problem
//! errors, metrics, OpenAPI) and the wiring that runs every service in one
//! process.

pub mod app;
pub mod cache_models;
pub mod dashboard;
pub mod extract;
pub mod logwriter;
pub mod middleware;
pub mod monitor;
pub mod openapi;
pub mod peers;
pub mod rag_models;
pub mod ratelimit;
pub mod retrain;
pub mod routes;
pub mod session;
pub mod split;
pub mod state;
pub mod teacher;
