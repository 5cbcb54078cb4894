//! `/v1/registry/…` routes, one file per resource.

pub mod aliases;
pub mod artifacts;
pub mod models;
pub mod versions;

use actix_web::web;

/// Registers the registry's routes under the caller's `/v1` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    models::configure(cfg);
    versions::configure(cfg);
    artifacts::configure(cfg);
    aliases::configure(cfg);
}

/// Parses a version number in a path.
pub(crate) fn version_number(s: &str) -> Result<i64, llmops_core::ApiError> {
    s.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        llmops_core::ApiError::validation("version", "a version is a positive integer")
    })
}
