//! Extractors and their errors: every malformed input becomes problem+json.

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::web;
use llmops_core::ApiError;

pub use llmops_core::http::Tenant;

pub fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".into(),
        ),
        JsonPayloadError::Deserialize(e) => match e.classify() {
            serde_json::error::Category::Data => ApiError::Validation {
                detail: e.to_string(),
                errors: vec![],
            },
            _ => ApiError::BadRequest(format!("malformed JSON: {e}")),
        },
        other => ApiError::BadRequest(other.to_string()),
    }
}

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_error(err).into())
}

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
