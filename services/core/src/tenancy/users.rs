//! A tenant's dashboard users: roles, invitations by its admins, and
//! browser sessions.
//!
//! Every query on users and invitations goes through [`Scoped`], so another
//! tenant's user or invitation is simply not found. Sessions and invitation
//! tokens are stored as SHA-256 hashes only: the database never holds a
//! secret a browser could present.

use crate::auth::{hash_password, random_alnum};
use crate::db::{Scoped, is_unique_violation};
use crate::entities::{tenant, user, user_invitation, user_session};
use crate::error::{ApiError, ApiResult};
use crate::ids::{InvitationId, TenantId, UserId};
use crate::pagination::{ListParams, Page};
use crate::tenancy::store::check_email;
use crate::tenancy::{Scope, ScopeSet};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a dashboard user may do in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, users and API keys included.
    Admin,
    /// Every resource but users and API keys (no `admin` scope).
    Member,
    /// Reads what a member reads; every change is refused.
    ReadOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::ReadOnly => "read_only",
        }
    }

    /// Unknown roles (none are written) get the least.
    pub fn from_db(s: &str) -> Self {
        match s {
            "admin" => Role::Admin,
            "member" => Role::Member,
            _ => Role::ReadOnly,
        }
    }

    /// The scopes a user of this role acts with.
    pub fn scopes(self) -> ScopeSet {
        match self {
            Role::Admin => ScopeSet::all(),
            Role::Member | Role::ReadOnly => Scope::ALL
                .into_iter()
                .filter(|s| *s != Scope::Admin)
                .collect(),
        }
    }
}

/// Seconds an invitation can be accepted for.
const INVITATION_TTL_DAYS: i64 = 7;
/// Letters and digits of a session secret, a CSRF token, an invitation token.
const SECRET_LEN: usize = 43;

fn sha256_hex(s: &str) -> String {
    crate::auth::hex(&Sha256::digest(s.as_bytes()))
}

/// Whether a presented secret has the shape this module issues, so
/// garbage never reaches the database.
fn well_formed(secret: &str) -> bool {
    secret.len() == SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------- users

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Always `user`.
    pub object: &'static str,
    pub id: UserId,
    #[schema(schema_with = crate::schema::email)]
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl TryFrom<user::Model> for UserView {
    type Error = ApiError;
    fn try_from(m: user::Model) -> ApiResult<Self> {
        Ok(UserView {
            object: "user",
            id: m.id.parse().map_err(ApiError::internal)?,
            email: m.email,
            role: Role::from_db(&m.role),
            created_at: m.created_at,
            last_login_at: m.last_login_at,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Role,
}

pub async fn list_users(
    db: &impl ConnectionTrait,
    scope: Scoped,
    params: &ListParams,
) -> ApiResult<Page<UserView>> {
    let limit = params.limit()?;
    let mut q = scope.find::<user::Entity>().order_by_asc(user::Column::Id);
    if let Some(after) = &params.after {
        let after: UserId = after.parse()?;
        q = q.filter(user::Column::Id.gt(after.to_string()));
    }
    let rows = q.limit(limit + 1).all(db).await?;
    let views = rows
        .into_iter()
        .map(UserView::try_from)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page::from_rows(views, limit, |u| u.id.to_string()))
}

pub async fn get_user(db: &impl ConnectionTrait, scope: Scoped, id: UserId) -> ApiResult<UserView> {
    find_user(db, scope, id).await?.try_into()
}

async fn find_user(db: &impl ConnectionTrait, scope: Scoped, id: UserId) -> ApiResult<user::Model> {
    scope
        .find::<user::Entity>()
        .filter(user::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

/// A user's role now (`None` when the tenant has no such user).
pub async fn current_role(
    db: &impl ConnectionTrait,
    scope: Scoped,
    id: UserId,
) -> ApiResult<Option<Role>> {
    Ok(scope
        .find::<user::Entity>()
        .filter(user::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .map(|u| Role::from_db(&u.role)))
}

/// Holds the tenant's row until the transaction ends (PostgreSQL: `FOR
/// UPDATE`; SQLite serialises writers anyway), so that two admins demoting
/// or removing each other at once are decided one after the other and
/// the second finds the first's change.
async fn lock_tenant(db: &impl ConnectionTrait, scope: Scoped) -> ApiResult<()> {
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        tenant::Entity::find_by_id(scope.tenant_id().to_string())
            .lock_exclusive()
            .one(db)
            .await?;
    }
    Ok(())
}

/// Refuses to leave the tenant without an admin.
async fn keep_an_admin(db: &impl ConnectionTrait, scope: Scoped, leaving: UserId) -> ApiResult<()> {
    let others = scope
        .find::<user::Entity>()
        .filter(user::Column::Role.eq(Role::Admin.as_str()))
        .filter(user::Column::Id.ne(leaving.to_string()))
        .count(db)
        .await?;
    if others == 0 {
        return Err(ApiError::Conflict(
            "the tenant's last admin cannot be demoted or removed".into(),
        ));
    }
    Ok(())
}

/// Changes a user's role. A demotion takes effect on the user's next
/// request (sessions read the role each time).
pub async fn set_role(
    db: &(impl ConnectionTrait + TransactionTrait),
    scope: Scoped,
    id: UserId,
    role: Role,
) -> ApiResult<UserView> {
    let txn = db.begin().await?;
    lock_tenant(&txn, scope).await?;
    let current = find_user(&txn, scope, id).await?;
    if Role::from_db(&current.role) == Role::Admin && role != Role::Admin {
        keep_an_admin(&txn, scope, id).await?;
    }
    scope
        .update_many::<user::Entity>()
        .col_expr(
            user::Column::Role,
            sea_orm::sea_query::Expr::value(role.as_str()),
        )
        .filter(user::Column::Id.eq(id.to_string()))
        .exec(&txn)
        .await?;
    let view = get_user(&txn, scope, id).await?;
    txn.commit().await?;
    Ok(view)
}

/// Removes a user and ends its sessions. Nobody removes themselves (an
/// admin would lock the tenant's dashboard out by mistake).
pub async fn remove_user(
    db: &(impl ConnectionTrait + TransactionTrait),
    scope: Scoped,
    id: UserId,
    acting: Option<UserId>,
) -> ApiResult<()> {
    if acting == Some(id) {
        return Err(ApiError::Conflict("you cannot remove yourself".into()));
    }
    let txn = db.begin().await?;
    lock_tenant(&txn, scope).await?;
    let current = find_user(&txn, scope, id).await?;
    if Role::from_db(&current.role) == Role::Admin {
        keep_an_admin(&txn, scope, id).await?;
    }
    // What the user set in motion and could still use: its pending
    // invitations (its API keys belong to the tenant and stay).
    scope
        .update_many::<user_invitation::Entity>()
        .col_expr(
            user_invitation::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(user_invitation::Column::CreatedBy.eq(id.to_string()))
        .filter(pending(Utc::now()))
        .exec(&txn)
        .await?;
    scope
        .delete_many::<user_session::Entity>()
        .filter(user_session::Column::UserId.eq(id.to_string()))
        .exec(&txn)
        .await?;
    scope
        .delete_many::<user::Entity>()
        .filter(user::Column::Id.eq(id.to_string()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- invitations

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    #[schema(schema_with = crate::schema::email)]
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    /// Always `invitation`.
    pub object: &'static str,
    pub id: InvitationId,
    #[schema(schema_with = crate::schema::email)]
    pub email: String,
    pub role: Role,
    /// `key_…` or `usr_…` that invited.
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl TryFrom<user_invitation::Model> for InvitationView {
    type Error = ApiError;
    fn try_from(m: user_invitation::Model) -> ApiResult<Self> {
        Ok(InvitationView {
            object: "invitation",
            id: m.id.parse().map_err(ApiError::internal)?,
            email: m.email,
            role: Role::from_db(&m.role),
            created_by: m.created_by,
            created_at: m.created_at,
            expires_at: m.expires_at,
        })
    }
}

/// An invitation just made: the only time its token is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: InvitationView,
    /// The one-time token. It is never shown again.
    pub token: String,
    /// The dashboard page that accepts it (the token rides in the URL's
    /// fragment, which browsers never send to a server).
    pub accept_path: String,
}

/// A pending invitation: not accepted, not revoked, not expired.
fn pending(now: DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(user_invitation::Column::AcceptedAt.is_null())
        .add(user_invitation::Column::RevokedAt.is_null())
        .add(user_invitation::Column::ExpiresAt.gt(now))
}

pub async fn create_invitation(
    db: &impl ConnectionTrait,
    scope: Scoped,
    input: NewInvitation,
    created_by: Option<String>,
) -> ApiResult<CreatedInvitation> {
    let email = check_email(&input.email)
        .map_err(|_| ApiError::validation("email", "not a valid email address"))?;
    let member = scope
        .find::<user::Entity>()
        .filter(user::Column::Email.eq(email.clone()))
        .count(db)
        .await?;
    if member > 0 {
        return Err(ApiError::Conflict(format!(
            "`{email}` is already a user of this tenant"
        )));
    }
    let now = Utc::now();
    let token = random_alnum(SECRET_LEN);
    let row = user_invitation::ActiveModel {
        id: Set(InvitationId::new().to_string()),
        tenant_id: Set(scope.tenant_id().to_string()),
        email: Set(email),
        role: Set(input.role.as_str().into()),
        token_hash: Set(sha256_hex(&token)),
        created_by: Set(created_by),
        created_at: Set(now),
        expires_at: Set(now + Duration::days(INVITATION_TTL_DAYS)),
        accepted_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(CreatedInvitation {
        invitation: row.try_into()?,
        accept_path: format!("/dashboard/#/accept?token={token}"),
        token,
    })
}

pub async fn list_invitations(
    db: &impl ConnectionTrait,
    scope: Scoped,
    params: &ListParams,
) -> ApiResult<Page<InvitationView>> {
    let limit = params.limit()?;
    let mut q = scope
        .find::<user_invitation::Entity>()
        .filter(pending(Utc::now()))
        .order_by_asc(user_invitation::Column::Id);
    if let Some(after) = &params.after {
        let after: InvitationId = after.parse()?;
        q = q.filter(user_invitation::Column::Id.gt(after.to_string()));
    }
    let rows = q.limit(limit + 1).all(db).await?;
    let views = rows
        .into_iter()
        .map(InvitationView::try_from)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page::from_rows(views, limit, |i| i.id.to_string()))
}

/// Revokes a pending invitation (404 when there is none by that id).
pub async fn revoke_invitation(
    db: &impl ConnectionTrait,
    scope: Scoped,
    id: InvitationId,
) -> ApiResult<()> {
    let done = scope
        .update_many::<user_invitation::Entity>()
        .col_expr(
            user_invitation::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(user_invitation::Column::Id.eq(id.to_string()))
        .filter(pending(Utc::now()))
        .exec(db)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::not_found("invitation"));
    }
    Ok(())
}

/// Accepts an invitation: creates its user with this password. The token
/// works once; a wrong, used, revoked or expired one is the same 404.
pub async fn accept_invitation(
    db: &(impl ConnectionTrait + TransactionTrait),
    token: &str,
    password: &str,
) -> ApiResult<(UserId, TenantId)> {
    let gone = || ApiError::not_found("invitation");
    if !well_formed(token) {
        return Err(gone());
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    // The invitation first: a made-up token costs one indexed lookup, not
    // a password hash.
    let invitation = user_invitation::Entity::find()
        .filter(user_invitation::Column::TokenHash.eq(sha256_hex(token)))
        .filter(pending(now))
        .one(&txn)
        .await?
        .ok_or_else(gone)?;
    let tenant: TenantId = invitation.tenant_id.parse().map_err(ApiError::internal)?;
    // A suspended tenant takes no new users (the invitation stays).
    let active = tenant::Entity::find_by_id(invitation.tenant_id.clone())
        .one(&txn)
        .await?
        .is_some_and(|t| {
            crate::tenancy::store::TenantStatus::from_db(&t.status)
                == crate::tenancy::store::TenantStatus::Active
        });
    if !active {
        return Err(ApiError::TenantSuspended);
    }
    let password_hash = {
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(ApiError::internal)??
    };
    // Claimed under the condition it was read with: of two acceptances at
    // once, one updates the row and the other finds it accepted.
    let claimed = user_invitation::Entity::update_many()
        .col_expr(
            user_invitation::Column::AcceptedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(user_invitation::Column::Id.eq(invitation.id.clone()))
        .filter(pending(now))
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Err(gone());
    }
    let user_id = UserId::new();
    let row = user::ActiveModel {
        id: Set(user_id.to_string()),
        tenant_id: Set(invitation.tenant_id.clone()),
        email: Set(invitation.email.clone()),
        password_hash: Set(password_hash),
        role: Set(invitation.role.clone()),
        created_at: Set(now),
        last_login_at: Set(Some(now)),
    };
    if let Err(e) = row.insert(&txn).await {
        return Err(if is_unique_violation(&e) {
            ApiError::Conflict("this email address already has an account".into())
        } else {
            e.into()
        });
    }
    txn.commit().await?;
    Ok((user_id, tenant))
}

// ---------------------------------------------------------------- sessions

/// A session just opened: the cookie's secret and the page's CSRF token.
pub struct OpenedSession {
    pub secret: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn open_session(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: UserId,
    ttl: std::time::Duration,
) -> ApiResult<OpenedSession> {
    let now = Utc::now();
    let secret = random_alnum(SECRET_LEN);
    let csrf_token = random_alnum(SECRET_LEN);
    let expires_at = now + Duration::from_std(ttl).map_err(ApiError::internal)?;
    user_session::ActiveModel {
        id: Set(sha256_hex(&secret)),
        tenant_id: Set(tenant.to_string()),
        user_id: Set(user.to_string()),
        csrf_token: Set(csrf_token.clone()),
        created_at: Set(now),
        expires_at: Set(expires_at),
    }
    .insert(db)
    .await?;
    Ok(OpenedSession {
        secret,
        csrf_token,
        expires_at,
    })
}

/// Opens a session and reads it back with its user (what a sign-in
/// answers with).
pub async fn start_session(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: UserId,
    ttl: std::time::Duration,
) -> ApiResult<(OpenedSession, LiveSession)> {
    let opened = open_session(db, tenant, user, ttl).await?;
    let live = live_session(db, &opened.secret)
        .await?
        .ok_or_else(|| ApiError::Internal("a new session is missing".into()))?;
    Ok((opened, live))
}

/// An open session with its user as it is now.
#[derive(Clone)]
pub struct LiveSession {
    /// Hex SHA-256 of the secret (the row's id).
    pub id: String,
    pub tenant_id: TenantId,
    pub user: user::Model,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// The unexpired session with this cookie secret and its (still existing)
/// user.
pub async fn live_session(
    db: &impl ConnectionTrait,
    secret: &str,
) -> ApiResult<Option<LiveSession>> {
    if !well_formed(secret) {
        return Ok(None);
    }
    let Some(s) = user_session::Entity::find()
        .filter(user_session::Column::Id.eq(sha256_hex(secret)))
        .filter(user_session::Column::ExpiresAt.gt(Utc::now()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let tenant_id: TenantId = s.tenant_id.parse().map_err(ApiError::internal)?;
    let Some(user) = Scoped::new(tenant_id)
        .find::<user::Entity>()
        .filter(user::Column::Id.eq(s.user_id.clone()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(LiveSession {
        id: s.id,
        tenant_id,
        user,
        csrf_token: s.csrf_token,
        expires_at: s.expires_at,
    }))
}

/// Ends a session (signing out).
pub async fn close_session(db: &impl ConnectionTrait, id: &str) -> ApiResult<()> {
    user_session::Entity::delete_many()
        .filter(user_session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes expired sessions and invitations that can no longer be
/// accepted (a day after their expiry, so a late click still reads 404).
pub async fn sweep(db: &impl ConnectionTrait) -> ApiResult<u64> {
    let now = Utc::now();
    let sessions = user_session::Entity::delete_many()
        .filter(user_session::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?
        .rows_affected;
    let invitations = user_invitation::Entity::delete_many()
        .filter(user_invitation::Column::ExpiresAt.lte(now - Duration::days(1)))
        .exec(db)
        .await?
        .rows_affected;
    Ok(sessions + invitations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_scopes() {
        assert!(Role::Admin.scopes().contains(Scope::Admin));
        for role in [Role::Member, Role::ReadOnly] {
            let s = role.scopes();
            assert!(!s.contains(Scope::Admin), "{role:?}");
            assert!(s.contains(Scope::Inference) && s.contains(Scope::BillingRead));
        }
        for role in [Role::Admin, Role::Member, Role::ReadOnly] {
            assert_eq!(Role::from_db(role.as_str()), role);
        }
        assert_eq!(Role::from_db("superuser"), Role::ReadOnly);
    }

    #[test]
    fn secrets_are_checked_before_lookup() {
        let s = random_alnum(SECRET_LEN);
        assert!(well_formed(&s));
        assert!(!well_formed(&s[1..]));
        assert!(!well_formed(&format!("{}'", &s[1..])));
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
