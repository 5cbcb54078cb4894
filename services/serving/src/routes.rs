//! OpenAI-compatible routes: `/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/models`.

use crate::deployments::{DeploymentView, NewDeployment};
use crate::openai::*;
use crate::service::{Reply, Serving};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use llmops_core::ApiResult;
use llmops_core::error::{LimitHeaders, Problem};
use llmops_core::http::Json;
use llmops_core::http::Tenant;
use llmops_core::pagination::ListParams;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/chat/completions").route(web::post().to(chat)))
        .service(web::resource("/completions").route(web::post().to(complete)))
        .service(web::resource("/embeddings").route(web::post().to(embeddings)))
        .service(web::resource("/models").route(web::get().to(models)))
        .service(web::resource("/models/{model}").route(web::get().to(model)))
        .service(
            web::resource("/deployments")
                .route(web::post().to(create_deployment))
                .route(web::get().to(list_deployments)),
        )
        .service(
            web::resource("/deployments/{id}")
                .route(web::get().to(get_deployment))
                .route(web::delete().to(delete_deployment)),
        );
}

fn with_headers(mut res: HttpResponse, h: Option<&LimitHeaders>) -> HttpResponse {
    for (k, v) in h.map(LimitHeaders::to_headers).into_iter().flatten() {
        res.headers_mut().insert(k, v);
    }
    res
}

fn reply<T: serde::Serialize>(r: Reply<T>) -> HttpResponse {
    match r {
        Reply::Full(body, h) => with_headers(HttpResponse::Ok().json(body), h.as_ref()),
        Reply::Stream(stream, h) => with_headers(
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .insert_header(("cache-control", "no-cache"))
                .streaming(stream.map(|r| r.map_err(actix_web::Error::from))),
            h.as_ref(),
        ),
    }
}

/// Chat completion (scope `inference`); `stream: true` answers with
/// server-sent events in OpenAI's chunk format.
///
/// The response cache answers repeated requests (exactly the same, or a
/// verified paraphrase of the last user message in the same conversation)
/// when the output is reusable (`temperature` 0 or a `seed`, unless the
/// tenant opts in for others). `x-llmops-cache` says what it did; a cached
/// answer's `usage` has `prompt_tokens_details.cached_tokens` and
/// `llmops_cache` (what it cost and saved).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "inference",
    security(("bearer" = [])), request_body = ChatCompletionRequest,
    params(
        ("cache-control" = Option<String>, Header, description = "`no-cache`: do not answer from the cache (the fresh answer is stored); `no-store`: do not store the answer"),
        ("x-llmops-cache-ttl" = Option<u64>, Header, description = "How long this answer stays cached, in seconds (1 to the operator's maximum)", minimum = 1),
        ("x-llmops-cache-namespace" = Option<String>, Header, description = "A namespace of the tenant's cache: entries are only found in their own (invalidated together)", pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("x-llmops-cache-threshold" = Option<f32>, Header, description = "Least cosine of a semantic hit for this request; not below the operator's floor", minimum = 0, maximum = 1),
    ),
    responses((status = 200, description = "The completion, or an event stream of chunks", body = ChatCompletion,
        headers(("x-llmops-cache" = String, description = "`hit`, `semantic-hit`, `miss` or `bypass` (absent when no cache is configured)"),
                ("x-llmops-cache-similarity" = f32, description = "The cached prompt's cosine, on a semantic hit"))),
        (status = 402, description = "The tenant's budget is spent (`budget_exhausted`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The backend answered nothing usable (`bad_gateway`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Request or token limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Inference backend unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn chat(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    req: actix_web::HttpRequest,
    body: Json<ChatCompletionRequest>,
) -> ApiResult<HttpResponse> {
    let header = |name: &str| -> ApiResult<Option<&str>> {
        req.headers()
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| llmops_core::ApiError::validation(name, "not visible ASCII"))
            })
            .transpose()
    };
    let directives = llmops_cache::Directives::parse(
        header("cache-control")?,
        header("x-llmops-cache-ttl")?,
        header("x-llmops-cache-namespace")?,
        header("x-llmops-cache-threshold")?,
    )?;
    let body = body.into_inner();
    if let Some(p) = ctx.probe()
        && let Some(last) = body.messages.iter().rev().find(|m| m.role == "user")
    {
        match &last.content {
            Some(Content::Text(t)) => p.prompt(t),
            Some(Content::Parts(parts)) => p.prompt(
                &parts
                    .iter()
                    .filter_map(|x| x.text.as_deref())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            None => {}
        }
    }
    let (r, outcome) = s.chat_cached(&ctx, body, &directives).await?;
    let mut res = reply(r);
    if let Some(o) = outcome {
        if let Some(p) = ctx.probe() {
            p.cache(o.status.as_str());
        }
        let h = res.headers_mut();
        h.insert(
            actix_web::http::header::HeaderName::from_static("x-llmops-cache"),
            actix_web::http::header::HeaderValue::from_static(o.status.as_str()),
        );
        if let Some(sim) = o.similarity
            && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!("{sim:.4}"))
        {
            h.insert(
                actix_web::http::header::HeaderName::from_static("x-llmops-cache-similarity"),
                v,
            );
        }
    }
    Ok(res)
}

/// Text completion (scope `inference`).
#[utoipa::path(post, path = "/v1/completions", tag = "inference",
    security(("bearer" = [])), request_body = CompletionRequest,
    responses((status = 200, description = "The completion, or an event stream", body = Completion),
        (status = 402, description = "The tenant's budget is spent (`budget_exhausted`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The backend answered nothing usable (`bad_gateway`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Request or token limit", body = Problem, content_type = "application/problem+json")))]
pub async fn complete(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    body: Json<CompletionRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if let Some(p) = ctx.probe()
        && let StringOrList::One(text) = &body.prompt
    {
        p.prompt(text);
    }
    Ok(reply(s.complete(&ctx, body).await?))
}

/// Embeddings (scope `inference`), as floats or base64.
#[utoipa::path(post, path = "/v1/embeddings", tag = "inference",
    security(("bearer" = [])), request_body = EmbeddingRequest,
    responses((status = 200, description = "The embeddings", body = EmbeddingList),
        (status = 402, description = "The tenant's budget is spent (`budget_exhausted`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The backend answered nothing usable (`bad_gateway`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json")))]
pub async fn embeddings(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    body: Json<EmbeddingRequest>,
) -> ApiResult<HttpResponse> {
    let (list, h) = s.embed(&ctx, body.into_inner()).await?;
    Ok(with_headers(HttpResponse::Ok().json(list), Some(&h)))
}

/// Models this tenant may call.
#[utoipa::path(get, path = "/v1/models", tag = "inference",
    security(("bearer" = [])),
    responses((status = 200, description = "The models", body = ModelList)))]
pub async fn models(s: web::Data<Serving>, Tenant(ctx): Tenant) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(s.models(&ctx).await?))
}

#[utoipa::path(get, path = "/v1/models/{model}", tag = "inference",
    security(("bearer" = [])), params(("model" = String, Path, description = "Model id")),
    responses((status = 200, description = "The model", body = ModelObject),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json")))]
pub async fn model(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let list = s.models(&ctx).await?;
    let found = list
        .data
        .into_iter()
        .find(|m| m.id == *path)
        .ok_or_else(|| {
            llmops_core::ApiError::not_found(format!(
                "model `{}`",
                path.chars().take(128).collect::<String>()
            ))
        })?;
    Ok(HttpResponse::Ok().json(found))
}

/// Deploys a registry version (GGUF on the local backend) as a dedicated
/// model named `name`; 202, then `loading` → `ready` (or `failed`).
#[utoipa::path(post, path = "/v1/deployments", tag = "deployments",
    security(("bearer" = [])), request_body = NewDeployment,
    responses((status = 202, description = "Accepted; poll it", body = DeploymentView),
        (status = 409, description = "Name in use", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown or unsuitable version", body = Problem, content_type = "application/problem+json")))]
pub async fn create_deployment(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    body: Json<NewDeployment>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Accepted().json(s.create_deployment(&ctx, body.into_inner()).await?))
}

#[utoipa::path(get, path = "/v1/deployments", tag = "deployments",
    security(("bearer" = [])), params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<llmops_core::ids::DeploymentId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of deployments", body = inline(llmops_core::pagination::Page<DeploymentView>))))]
pub async fn list_deployments(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(s.list_deployments(&ctx, &params).await?))
}

#[utoipa::path(get, path = "/v1/deployments/{id}", tag = "deployments",
    security(("bearer" = [])), params(("id" = llmops_core::ids::DeploymentId, Path, description = "Deployment id")),
    responses((status = 200, description = "The deployment", body = DeploymentView),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json")))]
pub async fn get_deployment(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(s.get_deployment(&ctx, &path).await?))
}

/// Stops a deployment (unloads it; its GPU time is metered to this moment).
#[utoipa::path(delete, path = "/v1/deployments/{id}", tag = "deployments",
    security(("bearer" = [])), params(("id" = llmops_core::ids::DeploymentId, Path, description = "Deployment id")),
    responses((status = 200, description = "The stopped deployment", body = DeploymentView),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_deployment(
    s: web::Data<Serving>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(s.delete_deployment(&ctx, &path).await?))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(chat, complete, embeddings, models, model, create_deployment, list_deployments, get_deployment, delete_deployment),
    tags((name = "inference", description = "OpenAI-compatible inference"),
         (name = "deployments", description = "Dedicated model deployments"))
)]
pub struct ServingDoc;
