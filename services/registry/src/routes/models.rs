//! `/v1/registry/models`.

use crate::domain::{ModelPatch, ModelView, NewModel};
use crate::service::{ModelListParams, Registry};
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::error::Problem;
use llmops_core::http::Json;
use llmops_core::http::Tenant;
use llmops_core::pagination::Page;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/registry/models")
            .route(web::post().to(create_model))
            .route(web::get().to(list_models)),
    )
    .service(
        web::resource("/registry/models/{model}")
            .route(web::get().to(get_model))
            .route(web::patch().to(update_model))
            .route(web::delete().to(delete_model)),
    )
    .service(web::resource("/registry/resolve/{reference}").route(web::get().to(resolve)));
}

/// Registers a model (scope `registry`).
#[utoipa::path(post, path = "/v1/registry/models", tag = "registry",
    security(("bearer" = [])), request_body = NewModel,
    responses((status = 201, description = "Created", body = ModelView),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json")))]
pub async fn create_model(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    body: Json<NewModel>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(reg.create_model(&ctx, body.into_inner()).await?))
}

/// Lists models, filtered by name prefix and tag.
#[utoipa::path(get, path = "/v1/registry/models", tag = "registry",
    security(("bearer" = [])), params(ModelListParams),
    responses((status = 200, description = "A page of models", body = inline(Page<ModelView>))))]
pub async fn list_models(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    params: web::Query<ModelListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(reg.list_models(&ctx, &params).await?))
}

#[utoipa::path(get, path = "/v1/registry/models/{model}", tag = "registry",
    security(("bearer" = [])), params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")),
    responses((status = 200, description = "The model", body = ModelView),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json")))]
pub async fn get_model(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(reg.get_model(&ctx, &path).await?))
}

/// Changes description, tags or promotion gates.
#[utoipa::path(patch, path = "/v1/registry/models/{model}", tag = "registry",
    security(("bearer" = [])), params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")),
    request_body = ModelPatch,
    responses((status = 200, description = "The model", body = ModelView),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json")))]
pub async fn update_model(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    body: Json<ModelPatch>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(reg.update_model(&ctx, &path, body.into_inner()).await?))
}

/// Deletes a model with its versions and uploaded artifacts; refused (409)
/// while any alias is set.
#[utoipa::path(delete, path = "/v1/registry/models/{model}", tag = "registry",
    security(("bearer" = [])), params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An alias is live", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_model(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    reg.delete_model(&ctx, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Resolves `name@alias`, `name@3` or `mv_…` to a version.
#[utoipa::path(get, path = "/v1/registry/resolve/{reference}", tag = "registry",
    security(("bearer" = [])), params(("reference" = String, Path, description = "`name@alias`, `name@3` or `mv_…`", pattern = "^(mv_[0-7][0-9a-hjkmnp-tv-z]{25}|[A-Za-z0-9][A-Za-z0-9._-]{0,127}@([a-z][a-z0-9_-]{0,63}|[1-9][0-9]{0,17}))$")),
    responses((status = 200, description = "The version", body = crate::domain::VersionView),
        (status = 404, description = "Nothing by that reference", body = Problem, content_type = "application/problem+json")))]
pub async fn resolve(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(reg.resolve(&ctx, &path).await?))
}
