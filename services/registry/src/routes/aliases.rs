//! `PUT/DELETE /v1/registry/models/{model}/aliases/{alias}`.

use crate::domain::{ModelView, SetAlias};
use crate::service::Registry;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::error::Problem;
use llmops_core::http::Json;
use llmops_core::http::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/registry/models/{model}/aliases/{alias}")
            .route(web::put().to(set_alias))
            .route(web::delete().to(delete_alias)),
    );
}

/// Points an alias at a ready version (atomic move, audited). For
/// `production` the model's promotion gates must pass unless an `admin`
/// caller sends `force: true`.
#[utoipa::path(put, path = "/v1/registry/models/{model}/aliases/{alias}", tag = "registry",
    security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("alias" = String, Path, description = "Alias, e.g. `production`", pattern = "^[a-z][a-z0-9_-]{0,63}$")),
    request_body = SetAlias,
    responses((status = 200, description = "The model with its aliases", body = ModelView),
        (status = 403, description = "`force` without the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Promotion gates failed (`checks` lists them) or version not ready", body = Problem, content_type = "application/problem+json")))]
pub async fn set_alias(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
    body: Json<SetAlias>,
) -> ApiResult<HttpResponse> {
    let (model, alias) = path.into_inner();
    Ok(HttpResponse::Ok().json(
        reg.set_alias(&ctx, &model, &alias, body.into_inner())
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/registry/models/{model}/aliases/{alias}", tag = "registry",
    security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("alias" = String, Path, description = "Alias", pattern = "^[a-z][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "The model with its aliases", body = ModelView),
        (status = 404, description = "No such alias", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_alias(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (model, alias) = path.into_inner();
    Ok(HttpResponse::Ok().json(reg.delete_alias(&ctx, &model, &alias).await?))
}
