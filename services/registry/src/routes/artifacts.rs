//! `PUT/GET /v1/registry/models/{model}/versions/{version}/artifact`.

use super::version_number;
use crate::domain::VersionView;
use crate::service::Registry;
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use llmops_core::ApiResult;
use llmops_core::error::Problem;
use llmops_core::http::Tenant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/registry/models/{model}/versions/{version}/artifact")
            .route(web::put().to(upload))
            .route(web::get().to(download)),
    );
}

/// Streams the artifact's bytes (any size up to the configured maximum,
/// never buffered whole). The version becomes `ready` if they match its
/// declared sha256/size; otherwise nothing is kept.
#[utoipa::path(put, path = "/v1/registry/models/{model}/versions/{version}/artifact", tag = "registry",
    security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("version" = i64, Path, description = "Version number", minimum = 1)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Stored and verified; the version is ready", body = VersionView),
        (status = 409, description = "The version is not pending", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the maximum artifact size", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Checksum or size mismatch; nothing kept", body = Problem, content_type = "application/problem+json")))]
pub async fn upload(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let (model, n) = path.into_inner();
    let n = version_number(&n)?;
    let body = payload.boxed_local();
    let view = reg.upload_artifact(&ctx, &model, n, body).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Streams the uploaded artifact back.
#[utoipa::path(get, path = "/v1/registry/models/{model}/versions/{version}/artifact", tag = "registry",
    security(("bearer" = [])),
    params(("model" = String, Path, description = "Model name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), ("version" = i64, Path, description = "Version number", minimum = 1)),
    responses((status = 200, description = "The bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "No uploaded artifact", body = Problem, content_type = "application/problem+json")))]
pub async fn download(
    reg: web::Data<Registry>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (model, n) = path.into_inner();
    let (size, sha, stream) = reg.open_artifact(&ctx, &model, version_number(&n)?).await?;
    let mut res = HttpResponse::Ok();
    res.content_type("application/octet-stream")
        .no_chunking(size)
        .insert_header(("content-length", size));
    if let Some(sha) = sha {
        res.insert_header(("x-checksum-sha256", sha));
    }
    Ok(res.streaming(stream.map(|r| r.map_err(actix_web::error::ErrorInternalServerError))))
}
