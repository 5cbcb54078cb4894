//! `/v1/registry/models/{model}/versions` and the model's audit trail.

use super::version_number;
use crate::domain::{EvaluationView, EventView, NewVersion, VersionPatch, VersionView};
use crate::service::Registry;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::error::Problem;
use llmops_core::http::Json;
use llmops_core::http::Tenant;
use llmops_core::pagination::{ListParams, Page};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/registry/models/{model}/versions")
            .route(web::post().to(create_version))
            .route(web::get().to(list_versions)),
    )
    .service(
        web::resource("/registry/models/{model}/versions/{version}")
            .route(web::get().to(get_version))
            .route(web::patch().to(update_version)),
    )
    .service(
        web::resource("/registry/models/{model}/versions/{version}/evaluations")
            .route(web::get().to(list_evaluations)),
    )
    .service(web::resource("/registry/models/{model}/events").route(web::get().to(list_events)));
}

/// Registers a version with the model's next number: `pending` until its
/// artifact is uploaded, or `ready` at once for an `artifact_uri` with a
/// declared checksum.
#[utoipa::path(post, path = "/v1/registry/models/{model}/versions", tag = "registry",
    security(("bearer" = [])), params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")),
    request_body = NewVersion,
    responses((status = 201, description = "Created", body = VersionView),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid version", body = Problem, content_type = "application/problem+json")))]
pub async fn create_version(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    body: Json<NewVersion>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(reg.create_version(&ctx, &path, body.into_inner()).await?))
}

/// Lists versions by number (`after` is a version number).
#[utoipa::path(get, path = "/v1/registry/models/{model}/versions", tag = "registry",
    security(("bearer" = [])), params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<i64>, Query, description = "The last version number of the previous page")),
    responses((status = 200, description = "A page of versions", body = inline(Page<VersionView>))))]
pub async fn list_versions(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(reg.list_versions(&ctx, &path, &params).await?))
}

#[utoipa::path(get, path = "/v1/registry/models/{model}/versions/{version}", tag = "registry",
    security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("version" = i64, Path, description = "Version number", minimum = 1)),
    responses((status = 200, description = "The version, with its lineage", body = VersionView),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json")))]
pub async fn get_version(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (model, n) = path.into_inner();
    Ok(HttpResponse::Ok().json(reg.get_version(&ctx, &model, version_number(&n)?).await?))
}

/// Changes description and tags; metrics while `pending`; archives.
#[utoipa::path(patch, path = "/v1/registry/models/{model}/versions/{version}", tag = "registry",
    security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("version" = i64, Path, description = "Version number", minimum = 1)),
    request_body = VersionPatch,
    responses((status = 200, description = "The version", body = VersionView),
        (status = 409, description = "Not allowed in this state", body = Problem, content_type = "application/problem+json")))]
pub async fn update_version(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
    body: Json<VersionPatch>,
) -> ApiResult<HttpResponse> {
    let (model, n) = path.into_inner();
    let view = reg
        .update_version(&ctx, &model, version_number(&n)?, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The model's audit trail: versions, alias moves (who, when, from, to, forced).
#[utoipa::path(get, path = "/v1/registry/models/{model}/events", tag = "registry",
    security(("bearer" = [])), params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<llmops_core::ids::RegistryEventId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of events, oldest first", body = inline(Page<EventView>))))]
pub async fn list_events(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(reg.list_events(&ctx, &path, &params).await?))
}

/// The version's evaluations (metrics measured on held-out files by
/// `evaluate` jobs), oldest first. Their latest values are the version's
/// `evaluated_metrics`, which promotion gates read.
#[utoipa::path(get, path = "/v1/registry/models/{model}/versions/{version}/evaluations", tag = "registry",
    security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("version" = i64, Path, description = "Version number", minimum = 1),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<llmops_core::ids::EvaluationId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of evaluations", body = inline(Page<EvaluationView>)),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json")))]
pub async fn list_evaluations(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let (model, n) = path.into_inner();
    Ok(HttpResponse::Ok().json(
        reg.list_evaluations(&ctx, &model, version_number(&n)?, &params)
            .await?,
    ))
}
