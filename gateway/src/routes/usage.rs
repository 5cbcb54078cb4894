//! `GET /v1/usage`: the tenant's usage by meter, model and time bucket.

use crate::extract::Tenant;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use llmops_core::{ApiError, ApiResult, Scope};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/usage").route(web::get().to(usage)));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (inclusive, RFC 3339); default 30 days before `end`.
    pub start: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339); default now.
    pub end: Option<DateTime<Utc>>,
    /// `hour` or `day` (default).
    #[param(schema_with = bucket)]
    pub bucket: Option<String>,
    /// Only this meter.
    #[param(pattern = "^[a-z][a-z0-9_]{0,63}$")]
    pub meter: Option<String>,
}

llmops_core::schema_fns! {
    bucket => llmops_core::schema::string(false).enum_values(Some(["hour", "day"]));
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// Start of the bucket (UTC).
    pub bucket_start: String,
    pub meter: String,
    /// The `model` dimension (empty when the event has none).
    pub model: String,
    pub quantity: i64,
    pub events: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// Always `usage`.
    pub object: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub bucket: String,
    pub data: Vec<UsageRow>,
}

/// Usage of the caller's tenant, aggregated (scope `billing:read`).
#[utoipa::path(
    get, path = "/v1/usage", tag = "usage",
    security(("bearer" = [])),
    params(UsageQuery),
    responses((status = 200, description = "Aggregated usage", body = UsageReport))
)]
pub async fn usage(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    q: web::Query<UsageQuery>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::BillingRead)?;
    let end = q.end.unwrap_or_else(Utc::now);
    let start = q.start.unwrap_or(end - Duration::days(30));
    if start >= end || end - start > Duration::days(366) {
        return Err(ApiError::validation(
            "start",
            "start must be before end, at most 366 days apart",
        ));
    }
    if let Some(m) = &q.meter {
        llmops_core::usage::Meter::new(m)
            .map_err(|e| ApiError::validation("meter", e.to_string()))?;
    }
    let bucket = q.bucket.clone().unwrap_or_else(|| "day".into());
    let backend = state.db.get_database_backend();
    let (trunc, model) = match (backend, bucket.as_str()) {
        (DbBackend::Postgres, "hour" | "day") => (
            format!(
                "to_char(date_trunc('{bucket}', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            ),
            "COALESCE(CAST(dimensions AS jsonb) ->> 'model', '')".to_string(),
        ),
        (DbBackend::Sqlite, "hour") => (
            "strftime('%Y-%m-%dT%H:00:00Z', occurred_at)".to_string(),
            "COALESCE(json_extract(dimensions, '$.model'), '')".to_string(),
        ),
        (DbBackend::Sqlite, "day") => (
            "strftime('%Y-%m-%dT00:00:00Z', occurred_at)".to_string(),
            "COALESCE(json_extract(dimensions, '$.model'), '')".to_string(),
        ),
        _ => return Err(ApiError::validation("bucket", "bucket is `hour` or `day`")),
    };
    let mut sql = format!(
        "SELECT {trunc} AS bucket_start, meter, {model} AS model, \
         CAST(SUM(quantity) AS BIGINT) AS quantity, COUNT(*) AS events \
         FROM usage_events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3"
    );
    let mut values: Vec<sea_orm::Value> =
        vec![ctx.tenant_id().to_string().into(), start.into(), end.into()];
    if let Some(m) = &q.meter {
        sql.push_str(" AND meter = $4");
        values.push(m.clone().into());
    }
    sql.push_str(" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
    let rows = state
        .db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut data = Vec::with_capacity(rows.len());
    for r in rows {
        data.push(UsageRow {
            bucket_start: r.try_get("", "bucket_start")?,
            meter: r.try_get("", "meter")?,
            model: r.try_get("", "model")?,
            quantity: r.try_get("", "quantity")?,
            events: r.try_get("", "events")?,
        });
    }
    Ok(HttpResponse::Ok().json(UsageReport {
        object: "usage",
        start,
        end,
        bucket,
        data,
    }))
}
