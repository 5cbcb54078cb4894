//! `POST /v1/auth/login`: email and password for a dashboard JWT.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::ApiResult;
use llmops_core::http::Json;
use llmops_core::ids::TenantId;
use llmops_core::tenancy::store::check_email;
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(login)));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(schema_with = llmops_core::schema::email)]
    pub email: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// A JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub tenant_id: TenantId,
}

/// Logs a tenant admin in. Attempts are limited to 10 per minute per email.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong email or password", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Tenant suspended", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let email = check_email(&body.email)
        .map_err(|_| llmops_core::ApiError::validation("email", "not a valid email address"))?;
    if body.password.is_empty() || body.password.chars().count() > 1024 {
        return Err(llmops_core::ApiError::validation(
            "password",
            "password must be 1 to 1024 characters",
        ));
    }
    state
        .limiter
        .check_key(format!("login:{email}"), 10)
        .await?;
    let (token, tenant_id) = state.auth.login(&email, &body.password).await?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: state.auth.jwt().ttl().as_secs(),
        tenant_id,
    }))
}
