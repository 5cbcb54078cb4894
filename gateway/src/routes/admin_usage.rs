//! `POST /admin/v1/usage/events`: producers outside this process (training
//! workers, services in split mode) report usage to the ledger.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::http::Json;
use llmops_core::usage::{RecordOutcome, UsageEvent};
use llmops_core::{ApiError, ApiResult};
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/usage/events").route(web::post().to(ingest)));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1000 events; each id is an idempotency key.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<UsageEvent>,
}

/// Records usage events. The answer comes once they are committed
/// (acknowledged = durable); ids already recorded count as duplicates.
#[utoipa::path(
    post, path = "/admin/v1/usage/events", tag = "admin",
    security(("operator" = [])),
    request_body = UsageBatch,
    responses((status = 200, description = "Committed", body = RecordOutcome))
)]
pub async fn ingest(state: web::Data<AppState>, body: Json<UsageBatch>) -> ApiResult<HttpResponse> {
    let batch = body.into_inner();
    if batch.events.is_empty() || batch.events.len() > 1000 {
        return Err(ApiError::validation("events", "send 1 to 1000 events"));
    }
    let mut tenants: Vec<_> = batch.events.iter().map(|e| e.tenant_id).collect();
    tenants.sort();
    tenants.dedup();
    for t in tenants {
        if state.auth.tenant_state(t).await?.is_none() {
            return Err(ApiError::validation(
                "tenant_id",
                format!("tenant {t} does not exist"),
            ));
        }
    }
    let outcome = state
        .usage
        .record(&batch.events)
        .await
        .map_err(|e| match e {
            llmops_core::usage::UsageError::Invalid(msg) => ApiError::validation("events", msg),
            other => ApiError::Unavailable {
                dependency: format!("usage ledger ({other})"),
                retry_after_secs: 2,
            },
        })?;
    Ok(HttpResponse::Ok().json(outcome))
}
