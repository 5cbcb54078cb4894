//! Extractors and their errors: every malformed input becomes problem+json
//! (JSON bodies: `llmops_core::http::Json`).

use actix_web::error::QueryPayloadError;
use actix_web::web;
use llmops_core::ApiError;

pub use llmops_core::http::Tenant;

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let QueryPayloadError::Deserialize(e) = &err else {
            return ApiError::BadRequest(err.to_string()).into();
        };
        ApiError::Validation {
            detail: format!("invalid query string: {e}"),
            errors: vec![],
        }
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid path: {err}")).into())
}
