//! `/v1/api_keys`: the tenant's API keys (scope `admin`).

use crate::extract::Tenant;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::http::Json;
use llmops_core::ids::ApiKeyId;
use llmops_core::pagination::ListParams;
use llmops_core::tenancy::store::{self, ApiKeyView, CreatedApiKey, NewApiKey};
use llmops_core::{ApiResult, Scope};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api_keys")
            .route(web::post().to(create_key))
            .route(web::get().to(list_keys)),
    )
    .service(
        web::resource("/api_keys/{key_id}")
            .route(web::get().to(get_key))
            .route(web::delete().to(revoke_key)),
    );
}

/// Creates a key. Its secret is in this response only.
#[utoipa::path(
    post, path = "/v1/api_keys", tag = "api_keys",
    security(("bearer" = [])),
    request_body = NewApiKey,
    responses((status = 201, description = "Created; `secret` is shown once", body = CreatedApiKey))
)]
pub async fn create_key(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    body: Json<NewApiKey>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let created = store::create_key(
        &state.db,
        ctx.scoped(),
        body.into_inner(),
        Some(ctx.scopes()),
        Some(ctx.actor()),
    )
    .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Lists keys (never their secrets), oldest first.
#[utoipa::path(
    get, path = "/v1/api_keys", tag = "api_keys",
    security(("bearer" = [])),
    params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<ApiKeyId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of keys", body = inline(llmops_core::pagination::Page<ApiKeyView>)))
)]
pub async fn list_keys(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let page = store::list_keys(&state.db, ctx.scoped(), &params).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One key.
#[utoipa::path(
    get, path = "/v1/api_keys/{key_id}", tag = "api_keys",
    security(("bearer" = [])),
    params(("key_id" = ApiKeyId, Path, description = "Key id")),
    responses((status = 200, description = "The key", body = ApiKeyView))
)]
pub async fn get_key(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let id: ApiKeyId = path.parse()?;
    Ok(HttpResponse::Ok().json(store::get_key(&state.db, ctx.scoped(), id).await?))
}

/// Revokes a key: refused at once on this replica, and on every other
/// replica within `auth_cache_ttl_secs` (5 s by default).
#[utoipa::path(
    delete, path = "/v1/api_keys/{key_id}", tag = "api_keys",
    security(("bearer" = [])),
    params(("key_id" = ApiKeyId, Path, description = "Key id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyView))
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let id: ApiKeyId = path.parse()?;
    let view = store::revoke_key(&state.db, ctx.scoped(), id).await?;
    state.auth.invalidate_key(id);
    Ok(HttpResponse::Ok().json(view))
}
