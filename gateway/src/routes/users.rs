//! `/v1/users` and `/v1/invitations`: the tenant's dashboard users and
//! their roles, managed by its admins (scope `admin`).

use crate::extract::Tenant;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use llmops_core::http::Json;
use llmops_core::ids::{InvitationId, UserId};
use llmops_core::pagination::ListParams;
use llmops_core::tenancy::Principal;
use llmops_core::tenancy::users::{
    self, CreatedInvitation, InvitationView, NewInvitation, UserPatch, UserView,
};
use llmops_core::{ApiResult, Scope};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").route(web::get().to(list_users)))
        .service(
            web::resource("/users/{user_id}")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user))
                .route(web::delete().to(remove_user)),
        )
        .service(
            web::resource("/invitations")
                .route(web::post().to(invite))
                .route(web::get().to(list_invitations)),
        )
        .service(
            web::resource("/invitations/{invitation_id}")
                .route(web::delete().to(revoke_invitation)),
        );
}

/// Lists the tenant's users, oldest first.
#[utoipa::path(
    get, path = "/v1/users", tag = "users",
    security(("bearer" = [])),
    params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<UserId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of users", body = inline(llmops_core::pagination::Page<UserView>)))
)]
pub async fn list_users(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    Ok(HttpResponse::Ok().json(users::list_users(&state.db, ctx.scoped(), &params).await?))
}

/// One user.
#[utoipa::path(
    get, path = "/v1/users/{user_id}", tag = "users",
    security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserView))
)]
pub async fn get_user(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let id: UserId = path.parse()?;
    Ok(HttpResponse::Ok().json(users::get_user(&state.db, ctx.scoped(), id).await?))
}

/// Changes a user's role; it applies to the user's next request. The
/// tenant's last admin cannot be demoted (409).
#[utoipa::path(
    patch, path = "/v1/users/{user_id}", tag = "users",
    security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "User id")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 409, description = "The tenant's last admin", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn update_user(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
    body: Json<UserPatch>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let id: UserId = path.parse()?;
    let view = users::set_role(&state.db, ctx.scoped(), id, body.role).await?;
    state.auth.invalidate_user(id);
    Ok(HttpResponse::Ok().json(view))
}

/// Removes a user and ends its sessions. Nobody removes themselves, and
/// the tenant's last admin stays (409).
#[utoipa::path(
    delete, path = "/v1/users/{user_id}", tag = "users",
    security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, description = "Yourself, or the tenant's last admin", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn remove_user(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let id: UserId = path.parse()?;
    let acting = match ctx.principal() {
        Principal::User { id } => Some(id),
        _ => None,
    };
    users::remove_user(&state.db, ctx.scoped(), id, acting).await?;
    state.auth.invalidate_user(id);
    Ok(HttpResponse::NoContent().finish())
}

/// Invites a user with a role. The response holds the one-time token and
/// the dashboard page that accepts it, shown this once; it can be
/// accepted for 7 days. No mail is sent: pass the link on yourself.
#[utoipa::path(
    post, path = "/v1/invitations", tag = "users",
    security(("bearer" = [])),
    request_body = NewInvitation,
    responses(
        (status = 201, description = "Invited; `token` and `accept_path` are shown once", body = CreatedInvitation),
        (status = 409, description = "Already a user of this tenant", body = llmops_core::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn invite(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    body: Json<NewInvitation>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let created = users::create_invitation(
        &state.db,
        ctx.scoped(),
        body.into_inner(),
        Some(ctx.actor()),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(created))
}

/// Lists pending invitations (not accepted, revoked or expired).
#[utoipa::path(
    get, path = "/v1/invitations", tag = "users",
    security(("bearer" = [])),
    params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<InvitationId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of invitations", body = inline(llmops_core::pagination::Page<InvitationView>)))
)]
pub async fn list_invitations(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    Ok(HttpResponse::Ok().json(users::list_invitations(&state.db, ctx.scoped(), &params).await?))
}

/// Revokes a pending invitation.
#[utoipa::path(
    delete, path = "/v1/invitations/{invitation_id}", tag = "users",
    security(("bearer" = [])),
    params(("invitation_id" = InvitationId, Path, description = "Invitation id")),
    responses((status = 204, description = "Revoked"))
)]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::Admin)?;
    let id: InvitationId = path.parse()?;
    users::revoke_invitation(&state.db, ctx.scoped(), id).await?;
    Ok(HttpResponse::NoContent().finish())
}
