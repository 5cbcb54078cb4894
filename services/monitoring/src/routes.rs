//! `/v1/monitoring/...`, `/v1/feedback`, and the operator's
//! `/admin/v1/monitoring/tenants`.

use crate::Monitoring;
use crate::entities::{feedback, record};
use crate::query::{Interval, Metric, Range, Series, Summary, Totals};
use crate::reports::{DriftReport, Span, Windows};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use llmops_core::error::Problem;
use llmops_core::http::{Json, Tenant};
use llmops_core::ids::FeedbackId;
use llmops_core::{ApiError, ApiResult, Scope};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(
    summary,
    timeseries,
    list_requests,
    create_feedback,
    create_drift_report,
    list_drift_reports,
    get_drift_report,
    admin_tenants
))]
pub struct MonitoringDoc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/monitoring/summary").route(web::get().to(summary)))
        .service(web::resource("/monitoring/timeseries").route(web::get().to(timeseries)))
        .service(web::resource("/monitoring/requests").route(web::get().to(list_requests)))
        .service(web::resource("/feedback").route(web::post().to(create_feedback)))
        .service(
            web::resource("/monitoring/drift_reports")
                .route(web::post().to(create_drift_report))
                .route(web::get().to(list_drift_reports)),
        )
        .service(
            web::resource("/monitoring/drift_reports/{report_id}")
                .route(web::get().to(get_drift_report)),
        );
}

pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/monitoring/tenants").route(web::get().to(admin_tenants)));
}

const MODEL_PATTERN: &str = "^[A-Za-z0-9._:/-]{1,128}$";

pub(crate) fn check_model(m: Option<&str>) -> ApiResult<()> {
    match m {
        Some(m)
            if m.is_empty()
                || m.len() > 128
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b)) =>
        {
            Err(ApiError::validation(
                "model",
                format!("must match {MODEL_PATTERN}"),
            ))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Start (inclusive, RFC 3339); default 24 hours before `end`.
    pub start: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339); default now.
    pub end: Option<DateTime<Utc>>,
    /// Only this model.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub model: Option<String>,
}

/// Latency percentiles, tokens, cost, errors, cache hits and quality
/// signals of the tenant's inference calls, overall and by model (scope
/// `monitoring`). Percentiles come from merged DDSketches: within
/// `relative_error` of the exact value.
#[utoipa::path(get, path = "/v1/monitoring/summary", tag = "monitoring",
    security(("bearer" = [])), params(SummaryQuery),
    responses((status = 200, description = "The summary", body = Summary),
        (status = 422, description = "Invalid range or model", body = Problem, content_type = "application/problem+json")))]
pub async fn summary(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    q: web::Query<SummaryQuery>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    check_model(q.model.as_deref())?;
    let r = Range::new(q.start, q.end)?;
    Ok(HttpResponse::Ok().json(m.summary(&ctx, r, q.model.as_deref()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    pub metric: Metric,
    /// `minute` (recent ranges only), `hour` or `day`.
    pub interval: Interval,
    /// Start (inclusive, RFC 3339); default 24 hours before `end`.
    pub start: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339); default now.
    pub end: Option<DateTime<Utc>>,
    /// Only this model.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub model: Option<String>,
}

/// One metric per minute, hour or day over a range (scope `monitoring`);
/// at most 2,000 points.
#[utoipa::path(get, path = "/v1/monitoring/timeseries", tag = "monitoring",
    security(("bearer" = [])), params(SeriesQuery),
    responses((status = 200, description = "The series", body = Series),
        (status = 422, description = "Invalid metric, interval, range or model", body = Problem, content_type = "application/problem+json")))]
pub async fn timeseries(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    q: web::Query<SeriesQuery>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    check_model(q.model.as_deref())?;
    let r = Range::new(q.start, q.end)?;
    Ok(HttpResponse::Ok().json(
        m.series(&ctx, r, q.metric, q.interval, q.model.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Records older than this one (the `last_id` of the previous page).
    #[param(pattern = "^mrec_[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub after: Option<String>,
    /// Only this model.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub model: Option<String>,
}

/// One inference call as monitoring recorded it (no prompt or answer text
/// is kept).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    #[schema(value_type = String)]
    pub id: String,
    /// `monitoring.request`
    pub object: &'static str,
    /// The call's `x-request-id`.
    pub request_id: String,
    /// The API key or user that called.
    pub actor: String,
    /// `chat`, `completion`, `embedding` or `rag_answer`.
    pub kind: String,
    pub model: Option<String>,
    pub status: i32,
    pub error_type: Option<String>,
    pub started_at: DateTime<Utc>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub embedding_tokens: i64,
    pub cost_minor: Option<f64>,
    pub currency: Option<String>,
    /// `hit`, `semantic-hit`, `miss` or `bypass`.
    pub cache: Option<String>,
    pub finish_reason: Option<String>,
    pub prompt_chars: i32,
    pub output_chars: i32,
    /// ISO 639-3, when detected with confidence.
    pub prompt_lang: Option<String>,
    pub output_lang: Option<String>,
    pub empty: bool,
    pub truncated: bool,
    pub refusal: bool,
    /// Share of repeated word trigrams (0 to 1).
    pub repetition: f64,
    pub language_mismatch: bool,
    /// RAG answers: share of the answer's words found in the cited chunks.
    pub support: Option<f64>,
}

impl From<record::Model> for RecordView {
    fn from(r: record::Model) -> Self {
        Self {
            id: r.id,
            object: "monitoring.request",
            request_id: r.request_id,
            actor: r.actor,
            kind: r.kind,
            model: r.model,
            status: r.status,
            error_type: r.error_type,
            started_at: r.started_at,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_tokens: r.cached_tokens,
            embedding_tokens: r.embedding_tokens,
            cost_minor: r.cost_minor,
            currency: r.currency,
            cache: r.cache,
            finish_reason: r.finish_reason,
            prompt_chars: r.prompt_chars,
            output_chars: r.output_chars,
            prompt_lang: r.prompt_lang,
            output_lang: r.output_lang,
            empty: r.empty,
            truncated: r.truncated,
            refusal: r.refusal,
            repetition: r.repetition,
            language_mismatch: r.language_mismatch,
            support: r.support,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordPage {
    /// `list`
    pub object: &'static str,
    pub data: Vec<RecordView>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

/// The tenant's inference calls, newest first (scope `monitoring`).
/// Records are written in batches, within seconds of each response.
#[utoipa::path(get, path = "/v1/monitoring/requests", tag = "monitoring",
    security(("bearer" = [])), params(RecordsQuery),
    responses((status = 200, description = "A page of records", body = RecordPage),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json")))]
pub async fn list_requests(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    q: web::Query<RecordsQuery>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    check_model(q.model.as_deref())?;
    let limit = llmops_core::pagination::ListParams {
        limit: q.limit,
        after: None,
    }
    .limit()?;
    if let Some(a) = &q.after {
        a.parse::<llmops_core::ids::RecordId>()
            .map_err(|e| ApiError::validation("after", e.to_string()))?;
    }
    let rows = m
        .records(&ctx, limit + 1, q.after.as_deref(), q.model.as_deref())
        .await?;
    let page = llmops_core::pagination::Page::from_rows(
        rows.into_iter().map(RecordView::from).collect(),
        limit,
        |r| r.id.clone(),
    );
    Ok(HttpResponse::Ok().json(RecordPage {
        object: "list",
        data: page.data,
        has_more: page.has_more,
        first_id: page.first_id,
        last_id: page.last_id,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The call's `x-request-id` (the gateway returns it on every response).
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub request_id: String,
    /// 1 is a thumbs up, 0 a thumbs down; anything between a graded score.
    #[schema(minimum = 0, maximum = 1)]
    pub score: f64,
    #[schema(max_length = 4000, pattern = "^[^\\u0000]*$")]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Feedback {
    pub id: FeedbackId,
    /// `monitoring.feedback`
    pub object: &'static str,
    pub request_id: String,
    pub score: f64,
    pub comment: Option<String>,
    /// Who gave it (API key or user).
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

/// Scores one of the tenant's own calls by its request id (scope
/// `inference` or `monitoring`). Another tenant's request id is 404.
#[utoipa::path(post, path = "/v1/feedback", tag = "monitoring",
    security(("bearer" = [])), request_body = FeedbackRequest,
    responses((status = 201, description = "Recorded", body = Feedback),
        (status = 404, description = "No call of the tenant has this request id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json")))]
pub async fn create_feedback(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    body: Json<FeedbackRequest>,
) -> ApiResult<HttpResponse> {
    if ctx.require(Scope::Inference).is_err() {
        ctx.require(Scope::Monitoring)?;
    }
    let b = body.into_inner();
    // Request ids are printable ASCII (ours are `req_…`; a caller's own
    // propagated id is limited the same way): anything else is no request.
    if b.request_id.is_empty()
        || b.request_id.len() > 128
        || !b.request_id.bytes().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::validation(
            "request_id",
            "must be 1 to 128 printable ASCII characters",
        ));
    }
    if !(b.score.is_finite() && (0.0..=1.0).contains(&b.score)) {
        return Err(ApiError::validation("score", "must be between 0 and 1"));
    }
    if b.comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > 4000 || c.contains('\0'))
    {
        return Err(ApiError::validation(
            "comment",
            "must be at most 4000 characters, with no NUL",
        ));
    }
    let rec = m.record(&ctx, &b.request_id).await?;
    let fb = Feedback {
        id: FeedbackId::new(),
        object: "monitoring.feedback",
        request_id: rec.request_id,
        score: b.score,
        comment: b.comment,
        actor: ctx.actor(),
        created_at: Utc::now(),
    };
    feedback::Entity::insert(feedback::ActiveModel {
        id: Set(fb.id.to_string()),
        tenant_id: Set(ctx.tenant_id().to_string()),
        request_id: Set(fb.request_id.clone()),
        score: Set(fb.score),
        comment: Set(fb.comment.clone()),
        actor: Set(fb.actor.clone()),
        created_at: Set(fb.created_at),
    })
    .exec(m.db())
    .await?;
    Ok(HttpResponse::Created().json(fb))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantTotals {
    pub tenant_id: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantsReport {
    /// `monitoring.tenants`
    pub object: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub relative_error: f64,
    pub data: Vec<TenantTotals>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start (inclusive, RFC 3339); default 24 hours before `end`.
    pub start: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339); default now.
    pub end: Option<DateTime<Utc>>,
}

/// Every tenant's totals over a range, from hourly rollups (operator).
#[utoipa::path(get, path = "/admin/v1/monitoring/tenants", tag = "admin",
    security(("operator" = [])), params(RangeQuery),
    responses((status = 200, description = "Totals by tenant", body = TenantsReport),
        (status = 422, description = "Invalid range", body = Problem, content_type = "application/problem+json")))]
pub async fn admin_tenants(
    m: web::Data<Monitoring>,
    q: web::Query<RangeQuery>,
) -> ApiResult<HttpResponse> {
    let r = Range::new(q.start, q.end)?;
    let data = m
        .tenants(r)
        .await?
        .into_iter()
        .map(|(tenant_id, totals)| TenantTotals { tenant_id, totals })
        .collect();
    Ok(HttpResponse::Ok().json(TenantsReport {
        object: "monitoring.tenants",
        start: crate::writer::bucket(r.start, crate::writer::HOUR),
        end: r.end,
        relative_error: crate::sketch::RELATIVE_ERROR,
        data,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftReportRequest {
    /// The model whose traffic is compared.
    #[schema(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub model: String,
    /// The reference window (both or neither; default: the model's first
    /// week of traffic, ending before the current window).
    pub reference_start: Option<DateTime<Utc>>,
    pub reference_end: Option<DateTime<Utc>>,
    /// The current window (both or neither; default: the last 24 hours).
    pub current_start: Option<DateTime<Utc>>,
    pub current_end: Option<DateTime<Utc>>,
}

fn span(
    name: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> ApiResult<Option<Span>> {
    match (start, end) {
        (None, None) => Ok(None),
        (Some(start), Some(end)) => {
            let r = Range::new(Some(start), Some(end)).map_err(|_| {
                ApiError::validation(
                    format!("{name}_start"),
                    format!(
                        "{name}_start must be before {name}_end, at most {} days apart",
                        crate::query::MAX_RANGE_DAYS
                    ),
                )
            })?;
            Ok(Some(Span {
                start: r.start,
                end: r.end,
            }))
        }
        _ => Err(ApiError::validation(
            format!("{name}_start"),
            format!("give both {name}_start and {name}_end, or neither"),
        )),
    }
}

/// Queues a drift report of a model (scope `monitoring`): prompt
/// embeddings by an MMD permutation test, text descriptors by PSI and KS.
/// Poll the returned report (or its `Location`) until `completed`.
#[utoipa::path(post, path = "/v1/monitoring/drift_reports", tag = "monitoring",
    security(("bearer" = [])), request_body = DriftReportRequest,
    responses((status = 202, description = "Queued", body = DriftReport,
            headers(("location" = String, description = "The report's URL"))),
        (status = 409, description = "Too many reports of the tenant queued or running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid model or windows", body = Problem, content_type = "application/problem+json")))]
pub async fn create_drift_report(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    body: Json<DriftReportRequest>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    let b = body.into_inner();
    check_model(Some(&b.model))?;
    let w = Windows {
        reference: span("reference", b.reference_start, b.reference_end)?,
        current: span("current", b.current_start, b.current_end)?,
    };
    let report = m.request_drift_report(&ctx, &b.model, w).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/monitoring/drift_reports/{}", report.id),
        ))
        .json(report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DriftReportsQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Reports older than this one (the `last_id` of the previous page).
    #[param(pattern = "^drift_[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub after: Option<String>,
    /// Only this model.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DriftReportPage {
    /// `list`
    pub object: &'static str,
    pub data: Vec<DriftReport>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

/// The tenant's drift reports, newest first (scope `monitoring`).
#[utoipa::path(get, path = "/v1/monitoring/drift_reports", tag = "monitoring",
    security(("bearer" = [])), params(DriftReportsQuery),
    responses((status = 200, description = "A page of reports", body = DriftReportPage),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json")))]
pub async fn list_drift_reports(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    q: web::Query<DriftReportsQuery>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    check_model(q.model.as_deref())?;
    let limit = llmops_core::pagination::ListParams {
        limit: q.limit,
        after: None,
    }
    .limit()?;
    if let Some(a) = &q.after {
        a.parse::<llmops_core::ids::DriftReportId>()
            .map_err(|e| ApiError::validation("after", e.to_string()))?;
    }
    let rows = m
        .drift_reports(&ctx, limit + 1, q.after.as_deref(), q.model.as_deref())
        .await?;
    let page = llmops_core::pagination::Page::from_rows(rows, limit, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(DriftReportPage {
        object: "list",
        data: page.data,
        has_more: page.has_more,
        first_id: page.first_id,
        last_id: page.last_id,
    }))
}

/// One drift report (scope `monitoring`); another tenant's is 404.
#[utoipa::path(get, path = "/v1/monitoring/drift_reports/{report_id}", tag = "monitoring",
    security(("bearer" = [])),
    params(("report_id" = llmops_core::ids::DriftReportId, Path, description = "The report")),
    responses((status = 200, description = "The report", body = DriftReport),
        (status = 404, description = "No such report", body = Problem, content_type = "application/problem+json")))]
pub async fn get_drift_report(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    Ok(HttpResponse::Ok().json(m.drift_report(&ctx, &id).await?))
}
