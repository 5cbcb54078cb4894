//! `GET /v1/tenant`: the caller's tenant.

use crate::extract::Tenant;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::tenancy::store::TenantView;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tenant").route(web::get().to(get_tenant)));
}

/// The tenant the credential belongs to, with its plan and limits (served
/// from the auth cache: up to `auth_cache_ttl_secs` old).
#[utoipa::path(
    get, path = "/v1/tenant", tag = "tenant",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's tenant", body = TenantView))
)]
pub async fn get_tenant(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
) -> ApiResult<HttpResponse> {
    let view = state.auth.tenant_view(ctx.tenant_id()).await?;
    Ok(HttpResponse::Ok().json(&*view))
}
