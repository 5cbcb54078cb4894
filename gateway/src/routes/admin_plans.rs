//! `/admin/v1/plans`: price plans and the limits they grant.

use crate::openapi::{InputErrors, NotFound, OperatorErrors};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
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
        (status = 409, description = "Plan id taken", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        InputErrors, OperatorErrors
    )
)]
pub async fn create_plan(
    state: web::Data<AppState>,
    body: web::Json<NewPlan>,
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
    responses((status = 200, description = "Every plan", body = PlanList), OperatorErrors)
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
    params(("plan_id" = String, Path, description = "Plan id")),
    responses((status = 200, description = "The plan", body = PlanView), NotFound, OperatorErrors)
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
    params(("plan_id" = String, Path, description = "Plan id")),
    request_body = PlanPatch,
    responses((status = 200, description = "The plan", body = PlanView), NotFound, InputErrors, OperatorErrors)
)]
pub async fn update_plan(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<PlanPatch>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(store::update_plan(&state.db, &path, body.into_inner()).await?))
}
