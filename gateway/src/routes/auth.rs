//! Signing in: `POST /v1/auth/login` (email and password for a JWT) and
//! the dashboard's browser sessions (`/v1/auth/sessions`,
//! `/v1/auth/session`, accepting an invitation).

use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use llmops_core::http::Json;
use llmops_core::ids::TenantId;
use llmops_core::tenancy::store::{check_email, check_password};
use llmops_core::tenancy::users::{self, LiveSession, UserView};
use llmops_core::{ApiResult, Scope};
use serde::{Deserialize, Serialize};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(login)))
        .service(web::resource("/auth/sessions").route(web::post().to(sign_in)))
        .service(
            web::resource("/auth/session")
                .route(web::get().to(get_session))
                .route(web::delete().to(sign_out)),
        )
        .service(
            web::resource("/auth/invitations/accept").route(web::post().to(accept_invitation)),
        );
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

/// The login body's email, normalised, once its shape is valid and the
/// email's budget of 10 attempts a minute (shared by both ways to sign in)
/// has room.
async fn admit_login(state: &AppState, body: &LoginRequest) -> ApiResult<String> {
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
    Ok(email)
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
    let email = admit_login(&state, &body).await?;
    let (token, tenant_id) = state.auth.login(&email, &body.password).await?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: state.auth.jwt().ttl().as_secs(),
        tenant_id,
    }))
}

// ---------------------------------------------------------------- sessions

/// The tenant a session belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionTenant {
    pub id: TenantId,
    pub name: String,
}

/// A dashboard session (its secret is only in the HttpOnly cookie).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Always `session`.
    pub object: &'static str,
    /// Send it back in `x-csrf-token` with every request that changes
    /// something; keep it in the page's memory only.
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub user: UserView,
    pub tenant: SessionTenant,
    /// What the user's role allows.
    pub scopes: Vec<Scope>,
}

async fn session_view(state: &AppState, session: LiveSession) -> ApiResult<SessionView> {
    let tenant = state.auth.tenant_view(session.tenant_id).await?;
    let user = UserView::try_from(session.user)?;
    Ok(SessionView {
        object: "session",
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
        scopes: user.role.scopes().to_vec(),
        user,
        tenant: SessionTenant {
            id: tenant.id,
            name: tenant.name.clone(),
        },
    })
}

/// Signs in to the dashboard: a session cookie (HttpOnly, SameSite=Strict,
/// Secure over HTTPS) and the session's CSRF token. Attempts are limited to
/// 10 per minute per email, shared with `POST /v1/auth/login`.
#[utoipa::path(
    post, path = "/v1/auth/sessions", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 201, description = "Signed in; the cookie `llmops_session` is set", body = SessionView,
            headers(("set-cookie" = String, description = "`llmops_session=…; Path=/; HttpOnly; SameSite=Strict`"))),
        (status = 401, description = "Wrong email or password", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Tenant suspended, or the request comes from another origin", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    crate::session::check_origin(&req)?;
    let email = admit_login(&state, &body).await?;
    let ttl = std::time::Duration::from_secs(state.config.session_ttl_secs);
    let (opened, live) = state.auth.sign_in(&email, &body.password, ttl).await?;
    signed_in(&req, &state, &opened, live).await
}

async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
    opened: &users::OpenedSession,
    live: LiveSession,
) -> ApiResult<HttpResponse> {
    let cookie = crate::session::set_cookie(
        &opened.secret,
        state.config.session_ttl_secs,
        crate::session::is_https(req),
    );
    Ok(HttpResponse::Created()
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session_view(state, live).await?))
}

/// The session the request's cookie belongs to, with its CSRF token (a
/// page reloaded reads it here). 404 for a request authenticated otherwise.
#[utoipa::path(
    get, path = "/v1/auth/session", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The current session", body = SessionView),
        (status = 404, description = "The request was not authenticated by a session cookie", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_session(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let session = req
        .extensions()
        .get::<LiveSession>()
        .cloned()
        .ok_or_else(|| llmops_core::ApiError::not_found("session"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session_view(&state, session).await?))
}

/// Signs out: the session ends on the server and the cookie is removed.
#[utoipa::path(
    delete, path = "/v1/auth/session", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 404, description = "The request was not authenticated by a session cookie", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn sign_out(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let id = req
        .extensions()
        .get::<LiveSession>()
        .map(|s| s.id.clone())
        .ok_or_else(|| llmops_core::ApiError::not_found("session"))?;
    users::close_session(&state.db, &id).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((
            header::SET_COOKIE,
            crate::session::clear_cookie(crate::session::is_https(&req)),
        ))
        .finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The token from the invitation link.
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// The new user's password.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
}

/// Accepts an invitation: creates the user with this password and signs it
/// in. A token works once; an unknown, used, revoked or expired one is 404.
/// Attempts are limited to 10 per minute per client address.
#[utoipa::path(
    post, path = "/v1/auth/invitations/accept", tag = "auth",
    request_body = AcceptInvitation,
    responses(
        (status = 201, description = "The user exists and is signed in", body = SessionView,
            headers(("set-cookie" = String, description = "`llmops_session=…; Path=/; HttpOnly; SameSite=Strict`"))),
        (status = 403, description = "The tenant is suspended, or the request comes from another origin", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No pending invitation has this token", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email address already has an account", body = llmops_core::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn accept_invitation(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<AcceptInvitation>,
) -> ApiResult<HttpResponse> {
    crate::session::check_origin(&req)?;
    if body.token.is_empty() || body.token.len() > 256 {
        return Err(llmops_core::ApiError::validation(
            "token",
            "token must be 1 to 256 characters",
        ));
    }
    check_password("password", &body.password)?;
    // The connection's own address: a header the client writes would let
    // it pick a fresh budget for every try.
    let client = req
        .peer_addr()
        .map_or_else(|| "-".to_string(), |a| a.ip().to_string());
    state
        .limiter
        .check_key(format!("accept:{client}"), 10)
        .await?;
    let (user, tenant) = users::accept_invitation(&state.db, &body.token, &body.password).await?;
    let ttl = std::time::Duration::from_secs(state.config.session_ttl_secs);
    let (opened, live) = users::start_session(&state.db, tenant, user, ttl).await?;
    signed_in(&req, &state, &opened, live).await
}
