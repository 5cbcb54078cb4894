//! `/v1/rag/knowledge_bases`: knowledge bases, their documents, queries
//! and answers (scope `rag`); `/admin/v1`: a plan's RAG caps, a tenant's
//! purge.

use crate::api::{
    Answer, AnswerRequest, CreateDocument, CreateKnowledgeBase, Deleted, Document, DocumentUpload,
    KnowledgeBase, QueryRequest, QueryResponse, RagLimits, UpdateKnowledgeBase,
};
use crate::documents::NewDocument;
use crate::extract::ContentType;
use crate::service::Rag;
use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use llmops_core::error::Problem;
use llmops_core::http::{Json, Tenant};
use llmops_core::pagination::{ListParams, Page};
use llmops_core::{ApiError, ApiResult};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/rag/knowledge_bases")
            .route(web::post().to(create_knowledge_base))
            .route(web::get().to(list_knowledge_bases)),
    )
    .service(
        web::resource("/rag/knowledge_bases/{kb_id}")
            .route(web::get().to(get_knowledge_base))
            .route(web::patch().to(update_knowledge_base))
            .route(web::delete().to(delete_knowledge_base)),
    )
    .service(
        web::resource("/rag/knowledge_bases/{kb_id}/documents")
            .route(web::post().to(create_document))
            .route(web::get().to(list_documents)),
    )
    .service(
        web::resource("/rag/knowledge_bases/{kb_id}/documents/{doc_id}")
            .route(web::get().to(get_document))
            .route(web::delete().to(delete_document)),
    )
    .service(
        web::resource("/rag/knowledge_bases/{kb_id}/documents/{doc_id}/retry")
            .route(web::post().to(retry_document)),
    )
    .service(web::resource("/rag/knowledge_bases/{kb_id}/query").route(web::post().to(query)))
    .service(web::resource("/rag/knowledge_bases/{kb_id}/answer").route(web::post().to(answer)));
}

pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/plans/{plan_id}/rag_limits")
            .route(web::put().to(put_rag_limits))
            .route(web::get().to(get_rag_limits)),
    )
    .service(web::resource("/tenants/{tenant_id}/rag").route(web::delete().to(purge_tenant_rag)));
}

/// Creates a knowledge base (scope `rag`).
#[utoipa::path(post, path = "/v1/rag/knowledge_bases", tag = "rag",
    security(("bearer" = [])), request_body = CreateKnowledgeBase,
    responses((status = 201, description = "Created", body = KnowledgeBase),
        (status = 403, description = "Missing scope, or the plan's cap on knowledge bases is reached (`quota_exceeded`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A knowledge base of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, metadata, chunking, or not an embedding model with a known size and tokenizer", body = Problem, content_type = "application/problem+json")))]
pub async fn create_knowledge_base(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    body: Json<CreateKnowledgeBase>,
) -> ApiResult<HttpResponse> {
    let kb = svc.create_kb(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(kb))
}

#[utoipa::path(get, path = "/v1/rag/knowledge_bases", tag = "rag",
    security(("bearer" = [])),
    params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::KnowledgeBaseId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of knowledge bases, oldest first", body = inline(Page<KnowledgeBase>))))]
pub async fn list_knowledge_bases(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    q: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.list_kbs(&ctx, &q).await?))
}

#[utoipa::path(get, path = "/v1/rag/knowledge_bases/{kb_id}", tag = "rag",
    security(("bearer" = [])),
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64)),
    responses((status = 200, description = "The knowledge base", body = KnowledgeBase),
        (status = 404, description = "No such knowledge base (or another tenant's)", body = Problem, content_type = "application/problem+json")))]
pub async fn get_knowledge_base(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.get_kb(&ctx, &path).await?))
}

#[utoipa::path(patch, path = "/v1/rag/knowledge_bases/{kb_id}", tag = "rag",
    security(("bearer" = [])), request_body = UpdateKnowledgeBase,
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64)),
    responses((status = 200, description = "Updated", body = KnowledgeBase),
        (status = 404, description = "No such knowledge base", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another knowledge base has that name", body = Problem, content_type = "application/problem+json")))]
pub async fn update_knowledge_base(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    body: Json<UpdateKnowledgeBase>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.update_kb(&ctx, &path, body.into_inner()).await?))
}

/// Deletes a knowledge base, its documents and all their chunks.
#[utoipa::path(delete, path = "/v1/rag/knowledge_bases/{kb_id}", tag = "rag",
    security(("bearer" = [])),
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64)),
    responses((status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such knowledge base", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_knowledge_base(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.delete_kb(&ctx, &path).await?))
}

fn multipart_error(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::BadRequest(format!("multipart body: {e}"))
}

/// Reads a multipart upload: `file`, and optional text parts
/// `external_id`, `metadata` (JSON) and `content_type`.
async fn read_form(mut form: Multipart, max: usize) -> ApiResult<NewDocument> {
    let mut new = NewDocument::default();
    let mut has_file = false;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_string();
        let part_type = field.content_type().map(|m| m.essence_str().to_string());
        let filename = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_string);
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(multipart_error)?;
            if data.len() + chunk.len() > max {
                return Err(ApiError::PayloadTooLarge { limit: max });
            }
            data.extend_from_slice(&chunk);
        }
        let text = || {
            String::from_utf8(data.clone())
                .map_err(|_| ApiError::validation(name.clone(), "must be UTF-8 text"))
        };
        match name.as_str() {
            "file" => {
                has_file = true;
                if new.content_type.is_none() {
                    new.content_type = part_type.as_deref().and_then(ContentType::from_mime);
                }
                new.filename = filename;
                new.bytes = data;
            }
            "external_id" => new.external_id = Some(text()?),
            "metadata" => {
                let v: serde_json::Value = serde_json::from_str(&text()?)
                    .map_err(|e| ApiError::validation("metadata", format!("not JSON: {e}")))?;
                match v {
                    serde_json::Value::Object(m) => new.metadata = Some(m),
                    _ => return Err(ApiError::validation("metadata", "a JSON object")),
                }
            }
            "content_type" => {
                let t = text()?;
                new.content_type = Some(ContentType::from_mime(&t).ok_or_else(|| {
                    ApiError::validation(
                        "content_type",
                        "text/plain, text/markdown, text/html or application/pdf",
                    )
                })?);
            }
            other => {
                return Err(ApiError::validation(
                    other.chars().take(64).collect::<String>(),
                    "unknown part (file, external_id, metadata, content_type)",
                ));
            }
        }
    }
    if !has_file {
        return Err(ApiError::validation("file", "the form has no `file` part"));
    }
    Ok(new)
}

/// Adds a document (scope `rag`), as JSON (`text`) or multipart (`file`:
/// text, Markdown, HTML or PDF). Its text is extracted now; chunking and
/// embedding run in the background: poll the document until `ready` (or
/// `failed`, with `error`). An `external_id` already in the knowledge base
/// uploads a new version of that document: readers keep seeing the old
/// chunks until every new one is stored.
#[utoipa::path(post, path = "/v1/rag/knowledge_bases/{kb_id}/documents", tag = "rag",
    security(("bearer" = [])),
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64)),
    request_body(content(
        (CreateDocument = "application/json"),
        (DocumentUpload = "multipart/form-data"))),
    responses((status = 202, description = "Stored and queued for ingestion", body = Document),
        (status = 400, description = "A malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing scope, or the plan's cap on documents is reached (`quota_exceeded`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such knowledge base", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The same external_id was uploaded at the same moment", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the largest document", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor multipart", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unreadable (not UTF-8, a PDF without a text layer), empty, or invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn create_document(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let mime = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let max = svc.max_document_bytes();
    let new = if mime.starts_with("multipart/form-data") {
        read_form(Multipart::new(req.headers(), payload), max).await?
    } else if mime.starts_with("application/json") {
        let mut body = Vec::new();
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
            // Escapes can double the text; the text itself is held to
            // the limit once decoded.
            if body.len() + chunk.len() > max.saturating_mul(2) + 4096 {
                return Err(ApiError::PayloadTooLarge { limit: max });
            }
            body.extend_from_slice(&chunk);
        }
        let doc: CreateDocument = llmops_core::http::parse_json(&body)?;
        NewDocument {
            bytes: doc.text.into_bytes(),
            content_type: doc.content_type,
            filename: doc.filename,
            external_id: doc.external_id,
            metadata: doc.metadata,
        }
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "send application/json (`text`) or multipart/form-data (`file`)".into(),
        ));
    };
    if new.bytes.is_empty() {
        return Err(ApiError::validation("text", "the document is empty"));
    }
    let (doc, _) = svc.add_document(&ctx, &path, new).await?;
    Ok(HttpResponse::Accepted().json(doc))
}

#[utoipa::path(get, path = "/v1/rag/knowledge_bases/{kb_id}/documents", tag = "rag",
    security(("bearer" = [])),
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::DocumentId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of documents, oldest first", body = inline(Page<Document>)),
        (status = 404, description = "No such knowledge base", body = Problem, content_type = "application/problem+json")))]
pub async fn list_documents(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    q: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.list_documents(&ctx, &path, &q).await?))
}

#[utoipa::path(get, path = "/v1/rag/knowledge_bases/{kb_id}/documents/{doc_id}", tag = "rag",
    security(("bearer" = [])),
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64),
        ("doc_id" = String, Path, description = "The document", max_length = 64)),
    responses((status = 200, description = "The document and its ingestion status", body = Document),
        (status = 404, description = "No such document", body = Problem, content_type = "application/problem+json")))]
pub async fn get_document(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (kb, doc) = path.into_inner();
    Ok(HttpResponse::Ok().json(svc.get_document(&ctx, &kb, &doc).await?))
}

/// Deletes a document and its chunks.
#[utoipa::path(delete, path = "/v1/rag/knowledge_bases/{kb_id}/documents/{doc_id}", tag = "rag",
    security(("bearer" = [])),
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64),
        ("doc_id" = String, Path, description = "The document", max_length = 64)),
    responses((status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such document", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_document(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (kb, doc) = path.into_inner();
    Ok(HttpResponse::Ok().json(svc.delete_document(&ctx, &kb, &doc).await?))
}

/// Queues a failed ingestion again.
#[utoipa::path(post, path = "/v1/rag/knowledge_bases/{kb_id}/documents/{doc_id}/retry", tag = "rag",
    security(("bearer" = [])),
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64),
        ("doc_id" = String, Path, description = "The document", max_length = 64)),
    responses((status = 202, description = "Queued", body = Document),
        (status = 404, description = "No such document", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The document's ingestion has not failed", body = Problem, content_type = "application/problem+json")))]
pub async fn retry_document(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (kb, doc) = path.into_inner();
    Ok(HttpResponse::Accepted().json(svc.retry_document(&ctx, &kb, &doc).await?))
}

/// Retrieves the chunks most relevant to a query.
#[utoipa::path(post, path = "/v1/rag/knowledge_bases/{kb_id}/query", tag = "rag",
    security(("bearer" = [])), request_body = QueryRequest,
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64)),
    responses((status = 200, description = "The best chunks, best first", body = QueryResponse),
        (status = 404, description = "No such knowledge base", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The embedding model or the vector store is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn query(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    body: Json<QueryRequest>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.query(&ctx, &path, body.into_inner()).await?))
}

/// Answers a question from the knowledge base, citing the chunks it was
/// given; says so, without generating, when nothing relevant is found.
/// With `stream: true`, server-sent events: `citations`, `delta`s, `done`.
#[utoipa::path(post, path = "/v1/rag/knowledge_bases/{kb_id}/answer", tag = "rag",
    security(("bearer" = [])), request_body = AnswerRequest,
    params(("kb_id" = String, Path, description = "The knowledge base", max_length = 64)),
    responses((status = 200, description = "The answer (JSON), or its events (`text/event-stream`)", content(
            (Answer = "application/json"),
            (String = "text/event-stream"))),
        (status = 402, description = "The tenant's budget is exhausted", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such knowledge base or model", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model answered with something unusable", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The models or the vector store are unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn answer(
    svc: web::Data<Rag>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    body: Json<AnswerRequest>,
) -> ApiResult<HttpResponse> {
    let req = body.into_inner();
    if req.stream == Some(true) {
        let events = svc.answer_stream(&ctx, &path, req).await?;
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(events));
    }
    Ok(HttpResponse::Ok().json(svc.answer(&ctx, &path, req).await?))
}

/// Sets a plan's RAG caps.
#[utoipa::path(put, path = "/admin/v1/plans/{plan_id}/rag_limits", tag = "admin",
    security(("operator" = [])), request_body = RagLimits,
    params(("plan_id" = String, Path, description = "The plan", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "Stored", body = RagLimits),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json")))]
pub async fn put_rag_limits(
    svc: web::Data<Rag>,
    path: web::Path<String>,
    body: Json<RagLimits>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.set_limits(&path, body.into_inner()).await?))
}

#[utoipa::path(get, path = "/admin/v1/plans/{plan_id}/rag_limits", tag = "admin",
    security(("operator" = [])),
    params(("plan_id" = String, Path, description = "The plan", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "The plan's caps (the defaults when it has none)", body = RagLimits),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json")))]
pub async fn get_rag_limits(
    svc: web::Data<Rag>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.get_limits(&path).await?))
}

/// What a purge removed.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Purged {
    pub tenant_id: String,
    /// Chunks removed from the vector store.
    pub points_deleted: u64,
}

/// Removes every knowledge base, document and chunk of a tenant.
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant_id}/rag", tag = "admin",
    security(("operator" = [])),
    params(("tenant_id" = String, Path, description = "The tenant", max_length = 64)),
    responses((status = 200, description = "Purged", body = Purged),
        (status = 404, description = "Not a tenant id", body = Problem, content_type = "application/problem+json")))]
pub async fn purge_tenant_rag(
    svc: web::Data<Rag>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = path.parse().map_err(|_| {
        ApiError::not_found(format!(
            "tenant `{}`",
            path.chars().take(64).collect::<String>()
        ))
    })?;
    let points_deleted = svc.purge_tenant(tenant).await?;
    Ok(HttpResponse::Ok().json(Purged {
        tenant_id: path.into_inner(),
        points_deleted,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_knowledge_base,
        list_knowledge_bases,
        get_knowledge_base,
        update_knowledge_base,
        delete_knowledge_base,
        create_document,
        list_documents,
        get_document,
        delete_document,
        retry_document,
        query,
        answer,
        put_rag_limits,
        get_rag_limits,
        purge_tenant_rag
    ),
    components(schemas(llmops_core::ids::KnowledgeBaseId, llmops_core::ids::DocumentId))
)]
pub struct RagDoc;
