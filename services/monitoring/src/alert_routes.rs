//! `/v1/monitoring/alert_rules` and `/v1/monitoring/alerts`.

use crate::Monitoring;
use crate::alerts::{Alert, AlertRule, NewAlertRule};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use llmops_core::error::Problem;
use llmops_core::http::{Json, Tenant};
use llmops_core::ids::{AlertId, AlertRuleId};
use llmops_core::{ApiError, ApiResult, Scope};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(
    create_rule,
    list_rules,
    get_rule,
    delete_rule,
    silence_rule,
    list_alerts,
    get_alert,
    acknowledge_alert
))]
pub struct AlertsDoc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/monitoring/alert_rules")
            .route(web::post().to(create_rule))
            .route(web::get().to(list_rules)),
    )
    .service(
        web::resource("/monitoring/alert_rules/{rule_id}")
            .route(web::get().to(get_rule))
            .route(web::delete().to(delete_rule)),
    )
    .service(
        web::resource("/monitoring/alert_rules/{rule_id}/silence")
            .route(web::post().to(silence_rule)),
    )
    .service(web::resource("/monitoring/alerts").route(web::get().to(list_alerts)))
    .service(web::resource("/monitoring/alerts/{alert_id}").route(web::get().to(get_alert)))
    .service(
        web::resource("/monitoring/alerts/{alert_id}/acknowledge")
            .route(web::post().to(acknowledge_alert)),
    );
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleList {
    /// `list`
    pub object: &'static str,
    pub data: Vec<AlertRule>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// `list`
    pub object: &'static str,
    pub data: Vec<Alert>,
}

/// Creates an alert rule (scope `monitoring`; a `retrain` action also needs
/// `training`). The webhook secret is in this response only.
#[utoipa::path(post, path = "/v1/monitoring/alert_rules", tag = "monitoring",
    security(("bearer" = [])), request_body = NewAlertRule,
    responses((status = 201, description = "Created", body = AlertRule),
        (status = 409, description = "The tenant has the most rules allowed (100)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid rule", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "A `retrain` action without the training service", body = Problem, content_type = "application/problem+json")))]
pub async fn create_rule(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    body: Json<NewAlertRule>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    Ok(HttpResponse::Created().json(m.create_rule(&ctx, body.into_inner()).await?))
}

/// The tenant's alert rules (scope `monitoring`).
#[utoipa::path(get, path = "/v1/monitoring/alert_rules", tag = "monitoring",
    security(("bearer" = [])),
    responses((status = 200, description = "The rules", body = RuleList)))]
pub async fn list_rules(m: web::Data<Monitoring>, Tenant(ctx): Tenant) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    Ok(HttpResponse::Ok().json(RuleList {
        object: "list",
        data: m.rules(&ctx).await?,
    }))
}

/// One alert rule (scope `monitoring`); another tenant's is 404.
#[utoipa::path(get, path = "/v1/monitoring/alert_rules/{rule_id}", tag = "monitoring",
    security(("bearer" = [])),
    params(("rule_id" = AlertRuleId, Path, description = "The rule")),
    responses((status = 200, description = "The rule", body = AlertRule),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json")))]
pub async fn get_rule(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    Ok(HttpResponse::Ok().json(m.rule(&ctx, &id).await?))
}

/// Deletes a rule with its alerts (scope `monitoring`).
#[utoipa::path(delete, path = "/v1/monitoring/alert_rules/{rule_id}", tag = "monitoring",
    security(("bearer" = [])),
    params(("rule_id" = AlertRuleId, Path, description = "The rule")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_rule(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    m.delete_rule(&ctx, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// No webhooks before this time; `null` ends a silence.
    pub until: Option<DateTime<Utc>>,
}

/// Silences a rule's webhooks until a time, or ends its silence (scope
/// `monitoring`). Alerts are still recorded while silenced.
#[utoipa::path(post, path = "/v1/monitoring/alert_rules/{rule_id}/silence", tag = "monitoring",
    security(("bearer" = [])), request_body = Silence,
    params(("rule_id" = AlertRuleId, Path, description = "The rule")),
    responses((status = 200, description = "The rule", body = AlertRule),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json")))]
pub async fn silence_rule(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    id: web::Path<String>,
    body: Json<Silence>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    Ok(HttpResponse::Ok().json(m.silence_rule(&ctx, &id, body.into_inner().until).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// `firing` or `resolved`.
    #[param(schema_with = alert_status)]
    pub status: Option<String>,
    /// At most this many, newest first (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

llmops_core::schema_fns! {
    alert_status => llmops_core::schema::string(false).enum_values(Some(["firing", "resolved"]));
}

/// The tenant's alerts, newest first, with their webhook deliveries
/// (scope `monitoring`).
#[utoipa::path(get, path = "/v1/monitoring/alerts", tag = "monitoring",
    security(("bearer" = [])), params(AlertsQuery),
    responses((status = 200, description = "The alerts", body = AlertList),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json")))]
pub async fn list_alerts(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    q: web::Query<AlertsQuery>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    if let Some(s) = &q.status
        && s != "firing"
        && s != "resolved"
    {
        return Err(ApiError::validation("status", "`firing` or `resolved`"));
    }
    let limit = llmops_core::pagination::ListParams {
        limit: q.limit,
        after: None,
    }
    .limit()?;
    Ok(HttpResponse::Ok().json(AlertList {
        object: "list",
        data: m.alerts(&ctx, q.status.as_deref(), limit).await?,
    }))
}

/// One alert (scope `monitoring`); another tenant's is 404.
#[utoipa::path(get, path = "/v1/monitoring/alerts/{alert_id}", tag = "monitoring",
    security(("bearer" = [])),
    params(("alert_id" = AlertId, Path, description = "The alert")),
    responses((status = 200, description = "The alert", body = Alert),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json")))]
pub async fn get_alert(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    Ok(HttpResponse::Ok().json(m.alert(&ctx, &id).await?))
}

/// Acknowledges an alert (scope `monitoring`); the first acknowledgement
/// is kept.
#[utoipa::path(post, path = "/v1/monitoring/alerts/{alert_id}/acknowledge", tag = "monitoring",
    security(("bearer" = [])),
    params(("alert_id" = AlertId, Path, description = "The alert")),
    responses((status = 200, description = "The alert", body = Alert),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json")))]
pub async fn acknowledge_alert(
    m: web::Data<Monitoring>,
    Tenant(ctx): Tenant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Monitoring)?;
    Ok(HttpResponse::Ok().json(m.acknowledge(&ctx, &id).await?))
}
