//! `/admin/v1/tenants`: the operator's view of tenants.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::http::Json;
use llmops_core::ids::TenantId;
use llmops_core::pagination::{ListParams, Page};
use llmops_core::tenancy::store::{
    self, CreatedApiKey, CreatedTenant, NewApiKey, NewTenant, TenantStatus, TenantView,
};
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants")
            .route(web::post().to(create_tenant))
            .route(web::get().to(list_tenants)),
    )
    .service(
        web::resource("/tenants/{tenant_id}")
            .route(web::get().to(get_tenant))
            .route(web::patch().to(update_tenant)),
    )
    .service(web::resource("/tenants/{tenant_id}/suspend").route(web::post().to(suspend_tenant)))
    .service(
        web::resource("/tenants/{tenant_id}/reactivate").route(web::post().to(reactivate_tenant)),
    )
    .service(web::resource("/tenants/{tenant_id}/api_keys").route(web::post().to(create_key)));
}

/// Creates a tenant with its admin user and a first `admin` key.
#[utoipa::path(
    post, path = "/admin/v1/tenants", tag = "admin",
    security(("operator" = [])),
    request_body = NewTenant,
    responses(
        (status = 201, description = "Created; secrets are shown once", body = CreatedTenant),
        (status = 409, description = "Name or email taken", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_tenant(
    state: web::Data<AppState>,
    body: Json<NewTenant>,
) -> ApiResult<HttpResponse> {
    let created =
        store::create_tenant(&state.db, body.into_inner(), &state.config.default_plan).await?;
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(
    get, path = "/admin/v1/tenants", tag = "admin",
    security(("operator" = [])),
    params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<TenantId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of tenants", body = inline(Page<TenantView>)))
)]
pub async fn list_tenants(
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(store::list_tenants(&state.db, &params).await?))
}

#[utoipa::path(
    get, path = "/admin/v1/tenants/{tenant_id}", tag = "admin", operation_id = "admin_get_tenant",
    security(("operator" = [])),
    params(("tenant_id" = TenantId, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant", body = TenantView))
)]
pub async fn get_tenant(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: TenantId = path.parse()?;
    Ok(HttpResponse::Ok().json(store::get_tenant(&state.db, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// Move the tenant to this plan (takes effect within the auth cache TTL).
    #[schema(schema_with = llmops_core::schema::plan_id_opt)]
    pub plan: Option<String>,
}

#[utoipa::path(
    patch, path = "/admin/v1/tenants/{tenant_id}", tag = "admin",
    security(("operator" = [])),
    params(("tenant_id" = TenantId, Path, description = "Tenant id")),
    request_body = TenantPatch,
    responses((status = 200, description = "The tenant", body = TenantView))
)]
pub async fn update_tenant(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<TenantPatch>,
) -> ApiResult<HttpResponse> {
    let id: TenantId = path.parse()?;
    let view = match &body.plan {
        Some(plan) => store::set_tenant_plan(&state.db, id, plan).await?,
        None => store::get_tenant(&state.db, id).await?,
    };
    state.auth.invalidate_tenant(id);
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Shown to the operator, not to the tenant.
    #[schema(schema_with = llmops_core::schema::text_500_opt)]
    pub reason: Option<String>,
}

/// Suspends a tenant: every credential of it is refused with 403
/// `tenant_suspended` (at once here, within the auth cache TTL elsewhere).
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/suspend", tag = "admin",
    security(("operator" = [])),
    params(("tenant_id" = TenantId, Path, description = "Tenant id")),
    request_body = SuspendRequest,
    responses((status = 200, description = "The tenant", body = TenantView))
)]
pub async fn suspend_tenant(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<SuspendRequest>,
) -> ApiResult<HttpResponse> {
    let id: TenantId = path.parse()?;
    let view = store::set_tenant_status(
        &state.db,
        id,
        TenantStatus::Suspended,
        body.into_inner().reason,
    )
    .await?;
    state.auth.invalidate_tenant(id);
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/reactivate", tag = "admin",
    security(("operator" = [])),
    params(("tenant_id" = TenantId, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant", body = TenantView))
)]
pub async fn reactivate_tenant(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: TenantId = path.parse()?;
    let view = store::set_tenant_status(&state.db, id, TenantStatus::Active, None).await?;
    state.auth.invalidate_tenant(id);
    Ok(HttpResponse::Ok().json(view))
}

/// Creates a key for a tenant (support and recovery).
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/api_keys", tag = "admin", operation_id = "admin_create_key",
    security(("operator" = [])),
    params(("tenant_id" = TenantId, Path, description = "Tenant id")),
    request_body = NewApiKey,
    responses((status = 201, description = "Created; `secret` is shown once", body = CreatedApiKey))
)]
pub async fn create_key(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<NewApiKey>,
) -> ApiResult<HttpResponse> {
    let id: TenantId = path.parse()?;
    store::get_tenant(&state.db, id).await?;
    let created = store::create_key(
        &state.db,
        llmops_core::db::Scoped::new(id),
        body.into_inner(),
        None,
        None,
    )
    .await?;
    Ok(HttpResponse::Created().json(created))
}
