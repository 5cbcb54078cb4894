//! Errors as RFC 9457 `application/problem+json`.
//!
//! `ApiError` is the one error type HTTP handlers return. Its mapping to a
//! status, a stable `type` URI and a title lives in [`ApiError::kind`], one
//! complete `match`; 5xx bodies are opaque and their cause goes to the log
//! with the request id.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

pub type ApiResult<T> = Result<T, ApiError>;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://llmops.dev/problems/";

tokio::task_local! {
    /// The request being served on this task: set by the gateway's outermost
    /// middleware so that any error rendered below it names its request.
    pub static REQUEST: RequestInfo;
}

#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub request_id: String,
    pub path: String,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer-like path to the field (`scopes[1]`, `name`).
    pub field: String,
    pub message: String,
}

/// OpenAI-style rate-limit headers for one limit.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitHeaders {
    /// `requests` or `tokens`.
    pub dimension: &'static str,
    pub limit: u64,
    pub remaining: u64,
    pub reset: std::time::Duration,
}

impl LimitHeaders {
    pub fn to_headers(&self) -> [(HeaderName, HeaderValue); 3] {
        // Names are static: this runs for every answer.
        let [limit, remaining, reset] = if self.dimension == "tokens" {
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ]
        } else {
            [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ]
        };
        let name = HeaderName::from_static;
        [
            (name(limit), HeaderValue::from(self.limit)),
            (name(remaining), HeaderValue::from(self.remaining)),
            (
                name(reset),
                HeaderValue::from_str(&format_reset(self.reset))
                    .unwrap_or(HeaderValue::from_static("0s")),
            ),
        ]
    }
}

/// Formats a duration as OpenAI does in `x-ratelimit-reset-*`: `1s`, `6m0s`, `120ms`.
pub fn format_reset(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let total_secs = d.as_secs_f64();
    let minutes = (total_secs / 60.0).floor() as u64;
    let secs = total_secs - (minutes as f64) * 60.0;
    let secs_txt = if (secs - secs.round()).abs() < 0.0005 {
        format!("{}", secs.round() as u64)
    } else {
        format!("{secs:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    if minutes > 0 {
        format!("{minutes}m{secs_txt}s")
    } else {
        format!("{secs_txt}s")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("this call needs the `{0}` scope")]
    MissingScope(String),
    #[error("tenant is suspended")]
    TenantSuspended,
    #[error("operator token required")]
    OperatorOnly,
    /// A cookie-authenticated change without the session's CSRF token (or
    /// from another origin).
    #[error("{0}")]
    CsrfRejected(String),
    /// A change by a read-only dashboard user.
    #[error("this user has the read_only role: it cannot change anything")]
    ReadOnly,
    #[error("{0} not found")]
    NotFound(String),
    #[error("no route matches {0}")]
    RouteNotFound(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{detail}")]
    GateFailed {
        detail: String,
        /// The failed checks, returned in the problem body.
        checks: serde_json::Value,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("rate limit reached for {dimension}")]
    RateLimited {
        dimension: &'static str,
        retry_after: std::time::Duration,
        headers: Vec<LimitHeaders>,
    },
    #[error("too many concurrent requests (limit {limit})")]
    ConcurrencyLimited { limit: u32 },
    #[error("{0}")]
    BudgetExhausted(String),
    /// A plan's cap on stored objects (knowledge bases, documents, chunks).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: String,
        retry_after_secs: u64,
    },
    /// A backend answered, but not with something usable (an empty or cut
    /// stream, an error event, a malformed body).
    #[error("{0}")]
    UpstreamFailed(String),
    /// A feature this deployment has not configured (e.g. Stripe).
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("internal error")]
    Internal(#[source] anyhow_like::BoxError),
}

/// Minimal boxed error so the core does not depend on `anyhow`.
pub mod anyhow_like {
    pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
}

/// What a kind of error looks like on the wire.
pub struct ProblemKind {
    pub status: StatusCode,
    /// Stable, machine-readable code; the `type` URI is `PROBLEM_BASE + code`.
    pub code: &'static str,
    pub title: &'static str,
}

impl ApiError {
    pub fn internal<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Self::Internal(Box::new(e))
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Validation {
            detail: message.clone(),
            errors: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    /// The one table from error to status, code and title.
    pub fn kind(&self) -> ProblemKind {
        use StatusCode as S;
        let (status, code, title) = match self {
            Self::Unauthenticated(_) => (S::UNAUTHORIZED, "unauthenticated", "Unauthenticated"),
            Self::MissingScope(_) => (S::FORBIDDEN, "insufficient_scope", "Insufficient scope"),
            Self::TenantSuspended => (S::FORBIDDEN, "tenant_suspended", "Tenant suspended"),
            Self::OperatorOnly => (S::FORBIDDEN, "operator_only", "Operator token required"),
            Self::CsrfRejected(_) => (S::FORBIDDEN, "csrf_token_invalid", "CSRF check failed"),
            Self::ReadOnly => (S::FORBIDDEN, "read_only", "Read-only user"),
            Self::NotFound(_) => (S::NOT_FOUND, "not_found", "Not found"),
            Self::RouteNotFound(_) => (S::NOT_FOUND, "route_not_found", "No such route"),
            Self::MethodNotAllowed(_) => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            Self::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
            Self::GateFailed { .. } => (
                S::CONFLICT,
                "promotion_gate_failed",
                "Promotion gate failed",
            ),
            Self::BadRequest(_) => (S::BAD_REQUEST, "bad_request", "Malformed request"),
            Self::Validation { .. } => (
                S::UNPROCESSABLE_ENTITY,
                "validation_error",
                "Invalid request",
            ),
            Self::PayloadTooLarge { .. } => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            Self::UnsupportedMediaType(_) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            Self::RateLimited { .. } => {
                (S::TOO_MANY_REQUESTS, "rate_limited", "Rate limit exceeded")
            }
            Self::ConcurrencyLimited { .. } => (
                S::TOO_MANY_REQUESTS,
                "concurrency_limited",
                "Too many concurrent requests",
            ),
            Self::BudgetExhausted(_) => {
                (S::PAYMENT_REQUIRED, "budget_exhausted", "Budget exhausted")
            }
            Self::QuotaExceeded(_) => (S::FORBIDDEN, "quota_exceeded", "Plan quota exceeded"),
            Self::Unavailable { .. } => (
                S::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service unavailable",
            ),
            Self::UpstreamFailed(_) => (S::BAD_GATEWAY, "bad_gateway", "Bad gateway"),
            Self::NotConfigured(_) => (S::CONFLICT, "not_configured", "Not configured"),
            Self::NotImplemented(_) => (S::NOT_IMPLEMENTED, "not_implemented", "Not implemented"),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            ),
        };
        ProblemKind {
            status,
            code,
            title,
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            Self::ConcurrencyLimited { .. } => Some(1),
            Self::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// The `code` of the problem a response carries, in its extensions.
#[derive(Debug, Clone)]
pub struct ProblemCode(pub String);

/// The RFC 9457 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "https://llmops.dev/problems/not_found")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Stable machine-readable code (the last segment of `type`).
    pub code: String,
    /// The request id (also in the `x-request-id` header and the logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Field errors, for `validation_error`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(default)]
    pub errors: Vec<FieldError>,
    /// The checks behind the problem: failed gates for
    /// `promotion_gate_failed`, dependency states for `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<serde_json::Value>,
}

impl Problem {
    pub fn from_error(err: &ApiError) -> Self {
        let kind = err.kind();
        let current = REQUEST.try_with(Clone::clone).ok();
        let detail = if kind.status.is_server_error() {
            match err {
                ApiError::Unavailable { .. }
                | ApiError::UpstreamFailed(_)
                | ApiError::NotImplemented(_) => err.to_string(),
                _ => "The server failed to handle this request; quote the request id when reporting it."
                    .to_string(),
            }
        } else {
            err.to_string()
        };
        let errors = match err {
            ApiError::Validation { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        Problem {
            type_uri: format!("{PROBLEM_BASE}{}", kind.code),
            title: kind.title.to_string(),
            status: kind.status.as_u16(),
            detail,
            instance: current.as_ref().map(|r| r.path.clone()),
            code: kind.code.to_string(),
            request_id: current.map(|r| r.request_id),
            errors,
            checks: match err {
                ApiError::GateFailed { checks, .. } => Some(checks.clone()),
                _ => None,
            },
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = Problem::from_error(self);
        if let Self::Internal(source) = self {
            tracing::error!(
                request_id = problem.request_id.as_deref().unwrap_or("-"),
                error = %source,
                cause = ?source,
                "internal error"
            );
        }
        let mut res = HttpResponse::build(self.status_code());
        res.content_type(PROBLEM_JSON);
        // For the monitoring record of the call (never sent).
        res.extensions_mut()
            .insert(ProblemCode(problem.code.clone()));
        if let Some(secs) = self.retry_after_secs() {
            res.insert_header((header::RETRY_AFTER, secs));
        }
        if let Self::RateLimited { headers, .. } = self {
            for h in headers {
                for pair in h.to_headers() {
                    res.insert_header(pair);
                }
            }
        }
        if let Self::Unauthenticated(_) = self {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.json(problem)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match &e {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable {
                dependency: "database".into(),
                retry_after_secs: 2,
            },
            _ => Self::internal(e),
        }
    }
}

impl From<crate::ids::InvalidId> for ApiError {
    fn from(e: crate::ids::InvalidId) -> Self {
        Self::validation("id", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reset_formats_like_openai() {
        assert_eq!(format_reset(Duration::from_millis(120)), "120ms");
        assert_eq!(format_reset(Duration::from_secs(1)), "1s");
        assert_eq!(format_reset(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_reset(Duration::from_secs(61)), "1m1s");
    }

    #[test]
    fn server_errors_are_opaque() {
        let e = ApiError::internal(std::io::Error::other("password=hunter2 in dsn"));
        let p = Problem::from_error(&e);
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("hunter2"));
        assert_eq!(p.type_uri, "https://llmops.dev/problems/internal_error");
    }

    #[test]
    fn retry_after_rounds_up() {
        let e = ApiError::RateLimited {
            dimension: "requests",
            retry_after: Duration::from_millis(1001),
            headers: vec![],
        };
        assert_eq!(e.retry_after_secs(), Some(2));
    }
}
