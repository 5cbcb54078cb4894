//! `/v1/cache/settings` and `/v1/cache/invalidations`.

use crate::SemanticCache;
use crate::settings::{CacheSettingsUpdate, CacheSettingsView};
use actix_web::{HttpResponse, web};
use llmops_core::error::Problem;
use llmops_core::http::{Json, Tenant};
use llmops_core::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/cache/settings")
            .route(web::get().to(get_settings))
            .route(web::patch().to(update_settings)),
    )
    .service(web::resource("/cache/invalidations").route(web::post().to(invalidate)));
}

/// What to remove; both absent: every entry of the tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidationRequest {
    /// Only this model's entries.
    #[schema(min_length = 1, max_length = 128)]
    pub model: Option<String>,
    /// Only this namespace's entries (`x-llmops-cache-namespace`; `""` is
    /// the default namespace).
    #[schema(max_length = 64)]
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invalidation {
    /// `cache.invalidation`
    pub object: &'static str,
    pub model: Option<String>,
    pub namespace: Option<String>,
    /// Stored answers removed (their vectors are removed with them).
    pub removed_entries: u64,
}

/// The tenant's cache settings (scope `inference`).
#[utoipa::path(get, path = "/v1/cache/settings", tag = "cache",
    security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = CacheSettingsView)))]
pub async fn get_settings(
    c: web::Data<SemanticCache>,
    Tenant(ctx): Tenant,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(c.settings_view(&ctx).await?))
}

/// Changes the tenant's cache settings (scope `admin`).
#[utoipa::path(patch, path = "/v1/cache/settings", tag = "cache",
    security(("bearer" = [])), request_body = CacheSettingsUpdate,
    responses((status = 200, description = "The settings now", body = CacheSettingsView),
        (status = 422, description = "A value out of range", body = Problem, content_type = "application/problem+json")))]
pub async fn update_settings(
    c: web::Data<SemanticCache>,
    Tenant(ctx): Tenant,
    body: Json<Object>,
) -> ApiResult<HttpResponse> {
    let up: CacheSettingsUpdate = typed(body.into_inner())?;
    Ok(HttpResponse::Ok().json(c.update_settings(&ctx, up).await?))
}

type Object = serde_json::Map<String, serde_json::Value>;

/// A body of optional fields read from a JSON object only (serde would
/// take an array of values for a struct too).
fn typed<T: serde::de::DeserializeOwned>(body: Object) -> ApiResult<T> {
    serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::validation("body", e.to_string()))
}

/// Removes the tenant's cached answers: all, a model's, a namespace's, or
/// a model's in a namespace (scope `inference`).
#[utoipa::path(post, path = "/v1/cache/invalidations", tag = "cache",
    security(("bearer" = [])), request_body = InvalidationRequest,
    responses((status = 200, description = "Removed", body = Invalidation),
        (status = 422, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cache store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn invalidate(
    c: web::Data<SemanticCache>,
    Tenant(ctx): Tenant,
    body: Json<Object>,
) -> ApiResult<HttpResponse> {
    let b: InvalidationRequest = typed(body.into_inner())?;
    if b.model
        .as_ref()
        .is_some_and(|m| m.is_empty() || m.chars().count() > 128)
    {
        return Err(ApiError::validation("model", "1 to 128 characters"));
    }
    if b.namespace
        .as_deref()
        .is_some_and(|n| !n.is_empty() && !crate::directives::valid_namespace(n))
    {
        return Err(ApiError::validation(
            "namespace",
            "up to 64 characters of A-Z, a-z, 0-9, `-`, `_` and `.`",
        ));
    }
    let removed = c
        .invalidate(&ctx, b.model.as_deref(), b.namespace.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(Invalidation {
        object: "cache.invalidation",
        model: b.model,
        namespace: b.namespace,
        removed_entries: removed,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_settings, update_settings, invalidate),
    tags((name = "cache", description = "The response cache of chat completions"))
)]
pub struct CacheDoc;
