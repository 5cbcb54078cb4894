//! `/v1/files` and `/v1/fine_tuning/jobs`: OpenAI's Files and Fine-tuning
//! APIs (the official SDK works unmodified), extended.

use crate::api::{CheckpointView, CreateJob, EventView, JobView};
use crate::files::{FileDeleted, FileListParams, FileObject, PURPOSE};
use crate::service::Training;
use crate::tasks::{CreateTrainingJob, TrainingJobView};
use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use llmops_core::error::Problem;
use llmops_core::http::{Json, Tenant};
use llmops_core::pagination::{ListParams, Page};
use llmops_core::{ApiError, ApiResult};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/files")
            .route(web::post().to(upload_file))
            .route(web::get().to(list_files)),
    )
    .service(
        web::resource("/files/{file_id}")
            .route(web::get().to(retrieve_file))
            .route(web::delete().to(delete_file)),
    )
    .service(web::resource("/files/{file_id}/content").route(web::get().to(download_file)))
    .service(
        web::resource("/fine_tuning/jobs")
            .route(web::post().to(create_fine_tuning_job))
            .route(web::get().to(list_fine_tuning_jobs)),
    )
    .service(
        web::resource("/fine_tuning/jobs/{job_id}").route(web::get().to(retrieve_fine_tuning_job)),
    )
    .service(
        web::resource("/fine_tuning/jobs/{job_id}/cancel")
            .route(web::post().to(cancel_fine_tuning_job)),
    )
    .service(
        web::resource("/fine_tuning/jobs/{job_id}/pause")
            .route(web::post().to(pause_fine_tuning_job)),
    )
    .service(
        web::resource("/fine_tuning/jobs/{job_id}/resume")
            .route(web::post().to(resume_fine_tuning_job)),
    )
    .service(
        web::resource("/fine_tuning/jobs/{job_id}/events")
            .route(web::get().to(list_fine_tuning_events)),
    )
    .service(
        web::resource("/fine_tuning/jobs/{job_id}/checkpoints")
            .route(web::get().to(list_fine_tuning_checkpoints)),
    )
    .service(
        web::resource("/training/jobs")
            .route(web::post().to(create_training_job))
            .route(web::get().to(list_training_jobs)),
    )
    .service(web::resource("/training/jobs/{job_id}").route(web::get().to(retrieve_training_job)))
    .service(
        web::resource("/training/jobs/{job_id}/cancel").route(web::post().to(cancel_training_job)),
    )
    .service(
        web::resource("/training/jobs/{job_id}/events")
            .route(web::get().to(list_training_job_events)),
    );
}

fn multipart_error(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::BadRequest(format!("multipart body: {e}"))
}

/// The multipart form of `POST /v1/files`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct FileUpload {
    /// Chat-format JSONL: one `{"messages": [...]}` example per line.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Only `fine-tune`.
    #[schema(pattern = "^fine-tune$")]
    purpose: String,
}

/// Uploads a training file (scope `training`): multipart with `purpose`
/// (`fine-tune`) and `file`. Streamed to the artifact store, hashed and
/// validated line by line on the way; a file with errors is refused whole
/// (422, each error naming its line).
#[utoipa::path(post, path = "/v1/files", tag = "training",
    security(("bearer" = [])),
    request_body(content = FileUpload, content_type = "multipart/form-data"),
    responses((status = 200, description = "Stored and valid", body = FileObject),
        (status = 400, description = "Not a multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the maximum file size", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid lines (each named), a purpose other than `fine-tune`, or no file part", body = Problem, content_type = "application/problem+json")))]
pub async fn upload_file(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let is_multipart = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::UnsupportedMediaType(
            "send the file as multipart/form-data with the parts `purpose` and `file`".into(),
        ));
    }
    let mut form = Multipart::new(req.headers(), payload);
    let mut stored: Option<FileObject> = None;
    let read = read_form(&svc, &ctx, &mut form, &mut stored).await;
    match (read, stored) {
        (Ok(()), Some(file)) => Ok(HttpResponse::Ok().json(file)),
        (Ok(()), None) => Err(ApiError::validation("file", "the form has no `file` part")),
        (Err(e), file) => {
            // Nothing of a refused form is kept.
            if let Some(f) = file {
                svc.delete_file(&ctx, &f.id.to_string()).await?;
            }
            Err(e)
        }
    }
}

/// Reads the form's parts, storing the file part into `stored` as soon as
/// it has streamed in.
async fn read_form(
    svc: &Training,
    ctx: &llmops_core::TenantCtx,
    form: &mut Multipart,
    stored: &mut Option<FileObject>,
) -> ApiResult<()> {
    let mut purpose = false;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "purpose" => {
                let mut value = Vec::new();
                while let Some(chunk) = field.next().await {
                    value.extend_from_slice(&chunk.map_err(multipart_error)?);
                    if value.len() > 64 {
                        return Err(ApiError::validation(
                            "purpose",
                            "purpose must be `fine-tune`",
                        ));
                    }
                }
                let value = String::from_utf8_lossy(&value).trim().to_string();
                if value != PURPOSE {
                    return Err(ApiError::validation(
                        "purpose",
                        format!("purpose `{value}` is not supported here; only `fine-tune`"),
                    ));
                }
                purpose = true;
            }
            "file" if stored.is_none() => {
                let filename = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(str::to_string);
                *stored = Some(
                    svc.files()
                        .upload(ctx, filename.as_deref(), &mut field)
                        .await?,
                );
            }
            "file" => return Err(ApiError::validation("file", "send one file per upload")),
            other => {
                return Err(ApiError::validation(
                    other.chars().take(64).collect::<String>(),
                    "unknown part: the form has `purpose` and `file`",
                ));
            }
        }
    }
    if !purpose {
        return Err(ApiError::validation(
            "purpose",
            "the form has no `purpose` part (`fine-tune`)",
        ));
    }
    Ok(())
}

/// Lists the tenant's files, newest first by default.
#[utoipa::path(get, path = "/v1/files", tag = "training",
    security(("bearer" = [])),
    params(("purpose" = Option<String>, Query, description = "Only this purpose (all files here are `fine-tune`)", max_length = 64),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::FileId>, Query, description = "The `last_id` of the previous page"),
        ("order" = Option<crate::files::SortOrder>, Query, description = "By creation: `desc` (default) or `asc`")),
    responses((status = 200, description = "A page of files", body = inline(Page<FileObject>))))]
pub async fn list_files(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    q: web::Query<FileListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.files().list(&ctx, q.into_inner()).await?))
}

#[utoipa::path(get, path = "/v1/files/{file_id}", tag = "training",
    security(("bearer" = [])),
    params(("file_id" = llmops_core::ids::FileId, Path, description = "The file")),
    responses((status = 200, description = "The file", body = FileObject),
        (status = 404, description = "No such file", body = Problem, content_type = "application/problem+json")))]
pub async fn retrieve_file(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.files().get(&ctx, &path).await?))
}

/// Deletes a file no unfinished job reads.
#[utoipa::path(delete, path = "/v1/files/{file_id}", tag = "training",
    security(("bearer" = [])),
    params(("file_id" = llmops_core::ids::FileId, Path, description = "The file")),
    responses((status = 200, description = "Deleted", body = FileDeleted),
        (status = 404, description = "No such file", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An unfinished job reads it", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_file(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.delete_file(&ctx, &path).await?))
}

/// The file's bytes, streamed.
#[utoipa::path(get, path = "/v1/files/{file_id}/content", tag = "training",
    security(("bearer" = [])),
    params(("file_id" = llmops_core::ids::FileId, Path, description = "The file")),
    responses((status = 200, description = "The bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "No such file", body = Problem, content_type = "application/problem+json")))]
pub async fn download_file(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (size, stream) = svc.files().open(&ctx, &path).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .no_chunking(size)
        .insert_header(("content-length", size))
        .streaming(stream.map(|r| r.map_err(actix_web::error::ErrorInternalServerError))))
}

/// Creates a fine-tuning job (scope `training`): queued at once; the
/// planned executor and what it trains are on the job.
#[utoipa::path(post, path = "/v1/fine_tuning/jobs", tag = "training",
    security(("bearer" = [])), request_body = CreateJob,
    responses((status = 200, description = "Queued", body = JobView),
        (status = 409, description = "A distillation in a process without serving (`not_configured`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid, or not something an executor here can train (the reason says which)", body = Problem, content_type = "application/problem+json")))]
pub async fn create_fine_tuning_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    body: Json<CreateJob>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.create_job(&ctx, body.into_inner()).await?))
}

/// Lists the tenant's jobs, newest first.
#[utoipa::path(get, path = "/v1/fine_tuning/jobs", tag = "training",
    security(("bearer" = [])),
    params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::JobId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of jobs", body = inline(Page<JobView>))))]
pub async fn list_fine_tuning_jobs(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    q: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.list_jobs(&ctx, q.into_inner()).await?))
}

#[utoipa::path(get, path = "/v1/fine_tuning/jobs/{job_id}", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job")),
    responses((status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json")))]
pub async fn retrieve_fine_tuning_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.get_job(&ctx, &path).await?))
}

/// Cancels a job: at once unless running; a running attempt stops within
/// a heartbeat.
#[utoipa::path(post, path = "/v1/fine_tuning/jobs/{job_id}/cancel", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job")),
    responses((status = 200, description = "Cancelled, or cancelling (a running job)", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has finished", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_fine_tuning_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.cancel_job(&ctx, &path).await?))
}

/// Pauses a job: a queued one at once, a running one after it saves a
/// checkpoint.
#[utoipa::path(post, path = "/v1/fine_tuning/jobs/{job_id}/pause", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job")),
    responses((status = 200, description = "Paused, or pausing", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has finished", body = Problem, content_type = "application/problem+json")))]
pub async fn pause_fine_tuning_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.pause_job(&ctx, &path).await?))
}

/// Resumes a paused job (it joins the queue and continues from its last
/// checkpoint).
#[utoipa::path(post, path = "/v1/fine_tuning/jobs/{job_id}/resume", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job")),
    responses((status = 200, description = "Queued again", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has finished", body = Problem, content_type = "application/problem+json")))]
pub async fn resume_fine_tuning_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.resume_job(&ctx, &path).await?))
}

/// The job's events (log lines and metrics), newest first.
#[utoipa::path(get, path = "/v1/fine_tuning/jobs/{job_id}/events", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job"),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::JobEventId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of events", body = inline(Page<EventView>)),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json")))]
pub async fn list_fine_tuning_events(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    q: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.list_events(&ctx, &path, q.into_inner()).await?))
}

/// The job's checkpoints, each a registry version, newest first.
#[utoipa::path(get, path = "/v1/fine_tuning/jobs/{job_id}/checkpoints", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job"),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::CheckpointId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of checkpoints", body = inline(Page<CheckpointView>)),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json")))]
pub async fn list_fine_tuning_checkpoints(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    q: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.list_checkpoints(&ctx, &path, q.into_inner()).await?))
}

/// Creates a quantization or an evaluation job (scope `training`),
/// queued at once beside the fine-tuning jobs.
#[utoipa::path(post, path = "/v1/training/jobs", tag = "training",
    security(("bearer" = [])), request_body = CreateTrainingJob,
    responses((status = 200, description = "Queued", body = TrainingJobView),
        (status = 422, description = "Invalid: a missing parameter of the kind, a version that is not a ready GGUF, an unknown file", body = Problem, content_type = "application/problem+json")))]
pub async fn create_training_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    body: Json<CreateTrainingJob>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.create_task(&ctx, body.into_inner()).await?))
}

/// Lists the tenant's jobs of every kind (fine-tune, distill, quantize,
/// evaluate), newest first.
#[utoipa::path(get, path = "/v1/training/jobs", tag = "training",
    security(("bearer" = [])),
    params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::JobId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of jobs", body = inline(Page<TrainingJobView>))))]
pub async fn list_training_jobs(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    q: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.list_tasks(&ctx, q.into_inner()).await?))
}

/// A job of any kind.
#[utoipa::path(get, path = "/v1/training/jobs/{job_id}", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job")),
    responses((status = 200, description = "The job", body = TrainingJobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json")))]
pub async fn retrieve_training_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.get_task(&ctx, &path).await?))
}

/// Cancels a job of any kind: at once unless running; a running attempt
/// stops within a heartbeat.
#[utoipa::path(post, path = "/v1/training/jobs/{job_id}/cancel", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job")),
    responses((status = 200, description = "Cancelled, or cancelling (a running job)", body = TrainingJobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has finished", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_training_job(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.cancel_task(&ctx, &path).await?))
}

/// A job's events (log lines and metrics), newest first, whatever its kind.
#[utoipa::path(get, path = "/v1/training/jobs/{job_id}/events", tag = "training",
    security(("bearer" = [])),
    params(("job_id" = llmops_core::ids::JobId, Path, description = "The job"),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("after" = Option<llmops_core::ids::JobEventId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of events", body = inline(Page<EventView>)),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json")))]
pub async fn list_training_job_events(
    svc: web::Data<Training>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    q: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc.list_task_events(&ctx, &path, q.into_inner()).await?))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        upload_file,
        list_files,
        retrieve_file,
        delete_file,
        download_file,
        create_fine_tuning_job,
        list_fine_tuning_jobs,
        retrieve_fine_tuning_job,
        cancel_fine_tuning_job,
        pause_fine_tuning_job,
        resume_fine_tuning_job,
        list_fine_tuning_events,
        list_fine_tuning_checkpoints,
        create_training_job,
        list_training_jobs,
        retrieve_training_job,
        cancel_training_job,
        list_training_job_events,
    ),
    components(schemas(crate::files::SortOrder)),
    tags((name = "training", description = "Training files, fine-tuning and distillation jobs (OpenAI-compatible, extended), quantization and evaluation jobs"))
)]
pub struct TrainingDoc;
