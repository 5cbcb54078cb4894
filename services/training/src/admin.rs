//! Operator routes: `/admin/v1/gpu_pools`, a plan's training quotas, the
//! training workers online.

use crate::pools::{GpuPool, TrainingQuotas};
use crate::service::Training;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::error::Problem;
use llmops_core::http::Json;

pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/gpu_pools").route(web::get().to(list_gpu_pools)))
        .service(
            web::resource("/gpu_pools/{pool_id}")
                .route(web::put().to(put_gpu_pool))
                .route(web::get().to(get_gpu_pool))
                .route(web::delete().to(delete_gpu_pool)),
        )
        .service(
            web::resource("/plans/{plan_id}/training_quotas")
                .route(web::put().to(put_training_quotas)),
        )
        .service(web::resource("/training/workers").route(web::get().to(list_training_workers)));
}

/// The training workers online (beat within the last 30 s): what each
/// offers. A queued job of a GPU type none offers waits with `capacity`.
#[utoipa::path(get, path = "/admin/v1/training/workers", tag = "admin",
    security(("operator" = [])),
    responses((status = 200, description = "Every live worker", body = Vec<crate::presence::WorkerView>)))]
pub async fn list_training_workers(svc: web::Data<Training>) -> ApiResult<HttpResponse> {
    let workers = svc
        .presence()
        .list()
        .await
        .map_err(llmops_core::ApiError::from)?;
    Ok(HttpResponse::Ok().json(workers))
}

/// Lists the GPU pools.
#[utoipa::path(get, path = "/admin/v1/gpu_pools", tag = "admin",
    security(("operator" = [])),
    responses((status = 200, description = "Every pool", body = Vec<GpuPool>)))]
pub async fn list_gpu_pools(svc: web::Data<Training>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.pools().list().await?))
}

/// Creates or replaces a pool (the body's `id` must be the path's).
#[utoipa::path(put, path = "/admin/v1/gpu_pools/{pool_id}", tag = "admin",
    security(("operator" = [])), request_body = GpuPool,
    params(("pool_id" = String, Path, description = "The pool", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")),
    responses((status = 200, description = "Stored", body = GpuPool),
        (status = 422, description = "Invalid, or the body's id is not the path's", body = Problem, content_type = "application/problem+json")))]
pub async fn put_gpu_pool(
    svc: web::Data<Training>,
    path: web::Path<String>,
    body: Json<GpuPool>,
) -> ApiResult<HttpResponse> {
    let pool = body.into_inner();
    if pool.id != *path {
        return Err(llmops_core::ApiError::validation(
            "id",
            "the body's id must be the path's",
        ));
    }
    Ok(HttpResponse::Ok().json(svc.pools().put(pool).await?))
}

#[utoipa::path(get, path = "/admin/v1/gpu_pools/{pool_id}", tag = "admin",
    security(("operator" = [])),
    params(("pool_id" = String, Path, description = "The pool", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")),
    responses((status = 200, description = "The pool", body = GpuPool),
        (status = 404, description = "No such pool", body = Problem, content_type = "application/problem+json")))]
pub async fn get_gpu_pool(
    svc: web::Data<Training>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.pools().get(&path).await?))
}

#[utoipa::path(delete, path = "/admin/v1/gpu_pools/{pool_id}", tag = "admin",
    security(("operator" = [])),
    params(("pool_id" = String, Path, description = "The pool", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")),
    responses((status = 204, description = "Deleted (queued jobs of its type wait for capacity)"),
        (status = 404, description = "No such pool", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_gpu_pool(
    svc: web::Data<Training>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    svc.pools().delete(&path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets a plan's training quotas: fair-share weight and most devices per
/// GPU type a tenant of the plan holds at once.
#[utoipa::path(put, path = "/admin/v1/plans/{plan_id}/training_quotas", tag = "admin",
    security(("operator" = [])), request_body = TrainingQuotas,
    params(("plan_id" = String, Path, description = "The plan", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "Stored", body = TrainingQuotas),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json")))]
pub async fn put_training_quotas(
    svc: web::Data<Training>,
    path: web::Path<String>,
    body: Json<TrainingQuotas>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.pools().put_quotas(&path, body.into_inner()).await?))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_gpu_pools,
    put_gpu_pool,
    get_gpu_pool,
    delete_gpu_pool,
    put_training_quotas,
    list_training_workers
))]
pub struct TrainingAdminDoc;
