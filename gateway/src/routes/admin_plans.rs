//! `/admin/v1/plans`: price plans and the limits they grant.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::http::Json;
use llmops_core::tenancy::store::{self, NewPlan, PlanPatch, PlanView};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/plans")
            .route(web::post().to(create_plan))
            .route(web::get().to(list_plans)),
    )
    .service(
        web::resource("/plans/{plan_id}")
            .route(web::get().to(get_plan))
            .route(web::patch().to(update_plan)),
    );
}

#[utoipa::path(
    post, path = "/admin/v1/plans", tag = "admin",
    security(("operator" = [])),
    request_body = NewPlan,
    responses(
        (status = 201, description = "Created", body = PlanView),
        (status = 409, description = "Plan id taken", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_plan(
    state: web::Data<AppState>,
    body: Json<NewPlan>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(store::create_plan(&state.db, body.into_inner()).await?))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PlanList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<PlanView>,
}

#[utoipa::path(
    get, path = "/admin/v1/plans", tag = "admin",
    security(("operator" = [])),
    responses((status = 200, description = "Every plan", body = PlanList))
)]
pub async fn list_plans(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(PlanList {
        object: "list",
        data: store::list_plans(&state.db).await?,
    }))
}

#[utoipa::path(
    get, path = "/admin/v1/plans/{plan_id}", tag = "admin",
    security(("operator" = [])),
    params(("plan_id" = String, Path, description = "Plan id", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "The plan", body = PlanView))
)]
pub async fn get_plan(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(store::get_plan(&state.db, &path).await?))
}

/// Changes a plan's limits; tenants on it see them within the auth cache TTL.
#[utoipa::path(
    patch, path = "/admin/v1/plans/{plan_id}", tag = "admin",
    security(("operator" = [])),
    params(("plan_id" = String, Path, description = "Plan id", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    request_body = PlanPatch,
    responses((status = 200, description = "The plan", body = PlanView))
)]
pub async fn update_plan(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<PlanPatch>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(store::update_plan(&state.db, &path, body.into_inner()).await?))
}
