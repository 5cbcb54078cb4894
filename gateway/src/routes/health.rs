//! `/healthz`, `/readyz`, `/metrics`.

use crate::state::AppState;
use actix_web::{HttpResponse, ResponseError, web};
use llmops_core::ApiError;
use llmops_core::error::{PROBLEM_JSON, Problem};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (liveness), `ready`, or `degraded` (a remote service is down).
    pub status: &'static str,
    /// Each configured dependency: `ok`, or what went wrong.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, String>,
    /// Split mode, the gateway: each service run elsewhere (`ok`,
    /// `unreachable`, `timed out`, `not ready (503)`). A service that is
    /// down makes only its own routes answer 503, so it does not make the
    /// gateway unready; the status reads `degraded`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        checks: BTreeMap::new(),
        services: BTreeMap::new(),
    })
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// `retry-after` of a not-ready answer.
const READY_RETRY_SECS: u64 = 5;

async fn check_db(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, state.db.execute_unprepared("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(short(&e.to_string())),
        Err(_) => Err("timed out".into()),
    }
}

async fn check_redis(conn: &redis::aio::ConnectionManager) -> Result<(), String> {
    let mut conn = conn.clone();
    let cmd = redis::cmd("PING");
    let ping = cmd.query_async::<String>(&mut conn);
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(short(&e.to_string())),
        Err(_) => Err("timed out".into()),
    }
}

/// Error text without anything that could carry a credential.
fn short(s: &str) -> String {
    let first = s.lines().next().unwrap_or("error");
    if first.contains("://") {
        "connection failed".into()
    } else {
        first.chars().take(200).collect()
    }
}

/// Readiness: every configured dependency answers within 2 s.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is down (see `checks`)", body = llmops_core::error::Problem, content_type = "application/problem+json")
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = BTreeMap::new();
    let mut failed = Vec::new();
    // Every check at once (each bounded by CHECK_TIMEOUT), the remote
    // services' too: the answer comes within one timeout, inside the
    // readiness probe's own.
    let db = check_db(&state);
    let redis = async {
        match &state.redis {
            Some(conn) => Some(check_redis(conn).await),
            None => None,
        }
    };
    let stores_artifacts = state.topology.runs("registry") || state.topology.runs("training");
    let artifacts = async {
        match state
            .config
            .artifacts_url
            .as_ref()
            .filter(|_| stores_artifacts)
        {
            Some(_) => Some(
                match tokio::time::timeout(CHECK_TIMEOUT, state.registry.artifacts().check()).await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(short(&e.to_string())),
                    Err(_) => Err("timed out".into()),
                },
            ),
            None => None,
        }
    };
    let triton = async {
        match state
            .serving
            .triton()
            .filter(|_| state.topology.runs("serving"))
        {
            Some(_) => Some(
                match tokio::time::timeout(CHECK_TIMEOUT, state.serving.triton_ready()).await {
                    Ok(result) => result.map_err(|e| short(&e)),
                    Err(_) => Err("timed out".into()),
                },
            ),
            None => None,
        }
    };
    let vectors = async {
        match &state.rag {
            Some(rag) => Some(
                match tokio::time::timeout(CHECK_TIMEOUT, rag.store().health()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(short(&e.to_string())),
                    Err(_) => Err("timed out".into()),
                },
            ),
            None => None,
        }
    };
    let ((db, redis, artifacts, triton, vectors), services) = futures_util::future::join(
        futures_util::future::join5(db, redis, artifacts, triton, vectors),
        state.topology.remote_readiness(),
    )
    .await;
    for (name, result) in [
        ("database", Some(db)),
        ("redis", redis),
        ("artifact_store", artifacts),
        ("triton", triton),
        ("vector_store", vectors),
    ] {
        match result {
            None => {}
            Some(Ok(())) => {
                checks.insert(name, "ok".to_string());
            }
            Some(Err(e)) => {
                failed.push(name);
                checks.insert(name, e);
            }
        }
    }
    if failed.is_empty() {
        let degraded = services.values().any(|s| s != "ok");
        return HttpResponse::Ok().json(Health {
            status: if degraded { "degraded" } else { "ready" },
            checks,
            services,
        });
    }
    let err = ApiError::Unavailable {
        dependency: failed.join(", "),
        retry_after_secs: READY_RETRY_SECS,
    };
    // The standard problem body, with the checks for operators.
    let mut problem = Problem::from_error(&err);
    problem.checks = serde_json::to_value(&checks).ok();
    HttpResponse::ServiceUnavailable()
        .content_type(PROBLEM_JSON)
        .insert_header((actix_web::http::header::RETRY_AFTER, READY_RETRY_SECS))
        .json(problem)
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match &state.metrics {
        Some(handle) => {
            handle.run_upkeep();
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4")
                .body(handle.render())
        }
        None => ApiError::NotImplemented("metrics recorder not installed".into()).error_response(),
    }
}
