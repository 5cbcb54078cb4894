//! `llmops-core`: the shared kernel every service builds on.
//!
//! It holds what all services share and nothing of any single service's
//! business: typed configuration, database connection, prefixed ids, the
//! tenancy context (`TenantCtx`) that proves a caller authenticated, the
//! identity store (tenants, plans, users, API keys), RFC 9457 problem errors,
//! pagination and usage events.

pub mod auth;
pub mod config;
pub mod db;
pub mod entities;
pub mod error;
pub mod http;
pub mod ids;
pub mod internal;
pub mod limits;
pub mod monitor;
pub mod pagination;
pub mod schema;
pub mod secret;
pub mod tenancy;
pub mod usage;

pub use error::{ApiError, ApiResult};
pub use tenancy::{Scope, TenantCtx};
