//! The identity store: plans, tenants, their users and API keys.
//!
//! Functions take `&impl ConnectionTrait` so they run inside or outside a
//! transaction. Tenant-owned rows (keys, users) are only reached through a
//! [`Scoped`] query, so a key id of another tenant is simply not found.

use crate::auth::{ApiKeySecret, hash_password};
use crate::db::{Scoped, is_unique_violation};
use crate::entities::{api_key, plan, tenant, user};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ApiKeyId, TenantId, UserId};
use crate::pagination::{ListParams, Page};
use crate::tenancy::{PlanLimits, Scope, ScopeSet};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- views

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    /// Always `plan`.
    pub object: &'static str,
    /// The plan's slug, e.g. `free`.
    pub id: String,
    pub display_name: String,
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
    pub concurrent_requests: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PlanView {
    pub fn limits(&self) -> PlanLimits {
        PlanLimits {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            concurrent_requests: self.concurrent_requests,
        }
    }
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl From<plan::Model> for PlanView {
    fn from(m: plan::Model) -> Self {
        PlanView {
            object: "plan",
            id: m.id,
            display_name: m.display_name,
            requests_per_minute: clamp_u32(m.requests_per_minute),
            tokens_per_minute: clamp_u32(m.tokens_per_minute),
            concurrent_requests: clamp_u32(m.concurrent_requests),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    pub fn from_db(s: &str) -> Self {
        // Anything but `active` is treated as suspended: fail closed.
        if s == "active" {
            TenantStatus::Active
        } else {
            TenantStatus::Suspended
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    /// Always `tenant`.
    pub object: &'static str,
    pub id: TenantId,
    pub name: String,
    pub status: TenantStatus,
    pub suspended_reason: Option<String>,
    pub plan: PlanView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn tenant_view(t: tenant::Model, p: plan::Model) -> ApiResult<TenantView> {
    Ok(TenantView {
        object: "tenant",
        id: t.id.parse().map_err(ApiError::internal)?,
        name: t.name,
        status: TenantStatus::from_db(&t.status),
        suspended_reason: t.suspended_reason,
        plan: p.into(),
        created_at: t.created_at,
        updated_at: t.updated_at,
    })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    /// Always `api_key`.
    pub object: &'static str,
    pub id: ApiKeyId,
    pub name: String,
    /// The key with its middle hidden, for recognising it.
    pub redacted_value: String,
    pub scopes: Vec<Scope>,
    /// Optional per-key cap below the plan's requests per minute.
    pub requests_per_minute: Option<u32>,
    /// `key_…` or `usr_…` that created it; null when created by the operator.
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Updated in batches (see `key_usage_flush_secs`), not on every request.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<api_key::Model> for ApiKeyView {
    type Error = ApiError;
    fn try_from(m: api_key::Model) -> ApiResult<Self> {
        Ok(ApiKeyView {
            object: "api_key",
            id: m.id.parse().map_err(ApiError::internal)?,
            name: m.name,
            redacted_value: m.redacted,
            scopes: ScopeSet::from_db(&m.scopes).to_vec(),
            requests_per_minute: m.requests_per_minute.map(clamp_u32),
            created_by: m.created_by,
            created_at: m.created_at,
            expires_at: m.expires_at,
            revoked_at: m.revoked_at,
            last_used_at: m.last_used_at,
        })
    }
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The secret (`sk-llmops-…`). Store it now: it is never shown again.
    pub secret: String,
}

/// What `tenants create` returns.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTenant {
    pub tenant_id: TenantId,
    pub tenant: TenantView,
    /// The first API key's secret (scope `admin`), shown once.
    pub api_key: String,
    pub api_key_id: ApiKeyId,
    pub admin_user_id: UserId,
    pub admin_email: String,
    /// Present only when the password was generated; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
}

// ---------------------------------------------------------------- inputs

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// Slug: lower-case letters, digits, `-` and `_`, at most 64.
    #[schema(schema_with = crate::schema::plan_id)]
    pub id: String,
    #[schema(schema_with = crate::schema::text_200_opt)]
    pub display_name: Option<String>,
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub requests_per_minute: u32,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub tokens_per_minute: u32,
    #[schema(minimum = 1, maximum = 100_000)]
    pub concurrent_requests: u32,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    #[schema(schema_with = crate::schema::text_200_opt)]
    pub display_name: Option<String>,
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub requests_per_minute: Option<u32>,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub tokens_per_minute: Option<u32>,
    #[schema(minimum = 1, maximum = 100_000)]
    pub concurrent_requests: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Unique display name, 1 to 100 characters.
    #[schema(schema_with = crate::schema::text_100)]
    pub name: String,
    #[schema(schema_with = crate::schema::email)]
    pub admin_email: String,
    /// At least 12 characters; generated (and returned once) when omitted.
    #[schema(schema_with = crate::schema::password_opt)]
    pub admin_password: Option<String>,
    /// Plan id; the configured default plan when omitted.
    #[schema(schema_with = crate::schema::plan_id_opt)]
    pub plan: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A label for humans, 1 to 200 characters.
    #[schema(schema_with = crate::schema::text_200)]
    pub name: String,
    /// At least one; each must be held by the caller.
    #[schema(min_items = 1, max_items = 7)]
    pub scopes: Vec<Scope>,
    /// Optional expiry; a key whose expiry has passed is refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// Optional per-key requests-per-minute cap (the plan's limit still applies).
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub requests_per_minute: Option<u32>,
}

// ---------------------------------------------------------------- validation

/// 1 to `max` characters (counted as sent), not only spaces, no control
/// characters; stored trimmed.
fn check_text(field: &'static str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.trim();
    if v.is_empty() || value.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(v.to_string())
}

pub fn check_plan_id(id: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "id",
            "plan id must be 1 to 64 of a-z, 0-9, `-`, `_`, starting with a letter or digit",
        ))
    }
}

fn check_limit(field: &'static str, v: u32, max: u32) -> ApiResult<i64> {
    if v == 0 || v > max {
        return Err(ApiError::validation(
            field,
            format!("{field} must be between 1 and {max}"),
        ));
    }
    Ok(i64::from(v))
}

/// Normalises and checks an email address (lower-cased, trimmed).
pub fn check_email(email: &str) -> ApiResult<String> {
    let e = email.trim().to_ascii_lowercase();
    let valid = e.len() <= 320
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(e)
    } else {
        Err(ApiError::validation(
            "admin_email",
            "not a valid email address",
        ))
    }
}

pub fn check_password(field: &'static str, pw: &str) -> ApiResult<()> {
    let n = pw.chars().count();
    if !(12..=1024).contains(&n) {
        return Err(ApiError::validation(
            field,
            "password must be 12 to 1024 characters",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- plans

pub async fn create_plan(db: &impl ConnectionTrait, input: NewPlan) -> ApiResult<PlanView> {
    check_plan_id(&input.id)?;
    let display = match &input.display_name {
        Some(d) => check_text("display_name", d, 200)?,
        None => input.id.clone(),
    };
    let now = Utc::now();
    let model = plan::ActiveModel {
        id: Set(input.id.clone()),
        display_name: Set(display),
        requests_per_minute: Set(check_limit(
            "requests_per_minute",
            input.requests_per_minute,
            10_000_000,
        )?),
        tokens_per_minute: Set(check_limit(
            "tokens_per_minute",
            input.tokens_per_minute,
            1_000_000_000,
        )?),
        concurrent_requests: Set(check_limit(
            "concurrent_requests",
            input.concurrent_requests,
            100_000,
        )?),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(db).await {
        Ok(m) => Ok(m.into()),
        Err(e) if is_unique_violation(&e) => Err(ApiError::Conflict(format!(
            "plan `{}` already exists",
            input.id
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn list_plans(db: &impl ConnectionTrait) -> ApiResult<Vec<PlanView>> {
    Ok(plan::Entity::find()
        .order_by_asc(plan::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

pub async fn get_plan(db: &impl ConnectionTrait, id: &str) -> ApiResult<PlanView> {
    plan::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .map(Into::into)
        .ok_or_else(|| ApiError::not_found(format!("plan `{}`", truncate(id))))
}

pub async fn update_plan(
    db: &impl ConnectionTrait,
    id: &str,
    patch: PlanPatch,
) -> ApiResult<PlanView> {
    let existing = plan::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("plan `{}`", truncate(id))))?;
    let mut m: plan::ActiveModel = existing.into();
    if let Some(d) = &patch.display_name {
        m.display_name = Set(check_text("display_name", d, 200)?);
    }
    if let Some(v) = patch.requests_per_minute {
        m.requests_per_minute = Set(check_limit("requests_per_minute", v, 10_000_000)?);
    }
    if let Some(v) = patch.tokens_per_minute {
        m.tokens_per_minute = Set(check_limit("tokens_per_minute", v, 1_000_000_000)?);
    }
    if let Some(v) = patch.concurrent_requests {
        m.concurrent_requests = Set(check_limit("concurrent_requests", v, 100_000)?);
    }
    m.updated_at = Set(Utc::now());
    Ok(m.update(db).await?.into())
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

// ---------------------------------------------------------------- tenants

/// Creates a tenant, its admin user and a first `admin` API key, together.
pub async fn create_tenant(
    db: &impl TransactionTrait,
    input: NewTenant,
    default_plan: &str,
) -> ApiResult<CreatedTenant> {
    let name = check_text("name", &input.name, 100)?;
    let email = check_email(&input.admin_email)?;
    let (password, generated) = match input.admin_password {
        Some(pw) => {
            check_password("admin_password", &pw)?;
            (pw, false)
        }
        None => (crate::auth::random_alnum(24), true),
    };
    let plan_id = input.plan.unwrap_or_else(|| default_plan.to_string());
    check_plan_id(&plan_id).map_err(|_| ApiError::validation("plan", "not a valid plan id"))?;
    let password_hash = hash_password(&password)?;

    let txn = crate::db::begin_write(db).await?;
    let plan = plan::Entity::find_by_id(plan_id.clone())
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::validation("plan", format!("plan `{plan_id}` does not exist")))?;
    let now = Utc::now();
    let tenant_id = TenantId::new();
    let tenant = tenant::ActiveModel {
        id: Set(tenant_id.to_string()),
        name: Set(name.clone()),
        status: Set(TenantStatus::Active.as_str().into()),
        plan_id: Set(plan.id.clone()),
        suspended_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let tenant = match tenant.insert(&txn).await {
        Ok(t) => t,
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "a tenant named `{name}` already exists"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let user_id = UserId::new();
    let user = user::ActiveModel {
        id: Set(user_id.to_string()),
        tenant_id: Set(tenant_id.to_string()),
        email: Set(email.clone()),
        password_hash: Set(password_hash),
        role: Set("admin".into()),
        created_at: Set(now),
        last_login_at: Set(None),
    };
    if let Err(e) = user.insert(&txn).await {
        return Err(if is_unique_violation(&e) {
            ApiError::Conflict(format!("a user with email `{email}` already exists"))
        } else {
            e.into()
        });
    }
    let key = insert_key(
        &txn,
        Scoped::new(tenant_id),
        NewApiKey {
            name: "first admin key".into(),
            scopes: vec![Scope::Admin],
            expires_at: None,
            requests_per_minute: None,
        },
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(CreatedTenant {
        tenant_id,
        tenant: tenant_view(tenant, plan)?,
        api_key: key.secret,
        api_key_id: key.key.id,
        admin_user_id: user_id,
        admin_email: email,
        admin_password: generated.then_some(password),
    })
}

pub async fn get_tenant(db: &impl ConnectionTrait, id: TenantId) -> ApiResult<TenantView> {
    let (t, p) = tenant_with_plan(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    tenant_view(t, p)
}

/// The tenant row and its plan, if it exists.
pub async fn tenant_with_plan(
    db: &impl ConnectionTrait,
    id: TenantId,
) -> ApiResult<Option<(tenant::Model, plan::Model)>> {
    let Some(t) = tenant::Entity::find_by_id(id.to_string()).one(db).await? else {
        return Ok(None);
    };
    let p = plan::Entity::find_by_id(t.plan_id.clone())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("tenant {id} has no plan row").into()))?;
    Ok(Some((t, p)))
}

pub async fn list_tenants(
    db: &impl ConnectionTrait,
    params: &ListParams,
) -> ApiResult<Page<TenantView>> {
    let limit = params.limit()?;
    let mut q = tenant::Entity::find().order_by_asc(tenant::Column::Id);
    if let Some(after) = &params.after {
        let after: TenantId = after.parse()?;
        q = q.filter(tenant::Column::Id.gt(after.to_string()));
    }
    let rows = q.limit(limit + 1).all(db).await?;
    let plans: std::collections::HashMap<String, plan::Model> = plan::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut views = Vec::with_capacity(rows.len());
    for t in rows {
        let p = plans
            .get(&t.plan_id)
            .cloned()
            .ok_or_else(|| ApiError::Internal(format!("tenant {} has no plan", t.id).into()))?;
        views.push(tenant_view(t, p)?);
    }
    Ok(Page::from_rows(views, limit, |t| t.id.to_string()))
}

/// Suspends (with a reason) or reactivates a tenant.
pub async fn set_tenant_status(
    db: &impl ConnectionTrait,
    id: TenantId,
    status: TenantStatus,
    reason: Option<String>,
) -> ApiResult<TenantView> {
    let reason = match (status, reason) {
        (TenantStatus::Suspended, Some(r)) => Some(check_text("reason", &r, 500)?),
        _ => None,
    };
    let existing = tenant::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let mut m: tenant::ActiveModel = existing.into();
    m.status = Set(status.as_str().into());
    m.suspended_reason = Set(reason);
    m.updated_at = Set(Utc::now());
    m.update(db).await?;
    get_tenant(db, id).await
}

pub async fn set_tenant_plan(
    db: &(impl ConnectionTrait + sea_orm::TransactionTrait),
    id: TenantId,
    plan_id: &str,
) -> ApiResult<TenantView> {
    check_plan_id(plan_id).map_err(|_| ApiError::validation("plan", "not a valid plan id"))?;
    if plan::Entity::find_by_id(plan_id.to_string())
        .one(db)
        .await?
        .is_none()
    {
        return Err(ApiError::validation(
            "plan",
            format!("plan `{plan_id}` does not exist"),
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    let existing = tenant::Entity::find_by_id(id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    if existing.plan_id != plan_id {
        let now = Utc::now();
        // Kept for billing: a period is priced by the plan in effect at its start.
        crate::entities::tenant_plan_change::ActiveModel {
            tenant_id: Set(existing.id.clone()),
            from_plan: Set(existing.plan_id.clone()),
            to_plan: Set(plan_id.to_string()),
            changed_at: Set(now),
            id: Set(ulid::Ulid::new().to_string()),
        }
        .insert(&txn)
        .await?;
        let mut m: tenant::ActiveModel = existing.into();
        m.plan_id = Set(plan_id.to_string());
        m.updated_at = Set(now);
        m.update(&txn).await?;
    }
    txn.commit().await?;
    get_tenant(db, id).await
}

/// The plan a tenant was on at `at`: the one the first later change moved
/// away from, or the current one.
pub async fn plan_at(
    db: &impl ConnectionTrait,
    id: TenantId,
    at: DateTime<Utc>,
) -> ApiResult<String> {
    use crate::entities::tenant_plan_change as c;
    if let Some(ch) = c::Entity::find()
        .filter(c::Column::TenantId.eq(id.to_string()))
        .filter(c::Column::ChangedAt.gt(at))
        .order_by_asc(c::Column::ChangedAt)
        .order_by_asc(c::Column::Id)
        .one(db)
        .await?
    {
        return Ok(ch.from_plan);
    }
    Ok(get_tenant(db, id).await?.plan.id)
}

// ---------------------------------------------------------------- API keys

async fn insert_key(
    db: &impl ConnectionTrait,
    scope: Scoped,
    input: NewApiKey,
    created_by: Option<String>,
) -> ApiResult<CreatedApiKey> {
    let name = check_text("name", &input.name, 200)?;
    if input.scopes.is_empty() {
        return Err(ApiError::validation("scopes", "give at least one scope"));
    }
    if input.scopes.len() > Scope::ALL.len() {
        return Err(ApiError::validation(
            "scopes",
            format!("give at most {} scopes", Scope::ALL.len()),
        ));
    }
    let scopes: ScopeSet = input.scopes.iter().copied().collect();
    if let Some(exp) = input.expires_at
        && exp <= Utc::now()
    {
        return Err(ApiError::validation(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    let rpm = input
        .requests_per_minute
        .map(|v| check_limit("requests_per_minute", v, 10_000_000))
        .transpose()?;
    let secret = ApiKeySecret::generate();
    let id = ApiKeyId::new();
    let model = api_key::ActiveModel {
        id: Set(id.to_string()),
        tenant_id: Set(scope.tenant_id().to_string()),
        name: Set(name),
        redacted: Set(secret.redacted()),
        secret_hash: Set(secret.hash_hex()),
        scopes: Set(scopes.to_db()),
        requests_per_minute: Set(rpm),
        created_by: Set(created_by),
        created_at: Set(Utc::now()),
        expires_at: Set(input.expires_at),
        revoked_at: Set(None),
        last_used_at: Set(None),
    };
    let m = model.insert(db).await?;
    Ok(CreatedApiKey {
        key: m.try_into()?,
        secret: secret.expose().to_string(),
    })
}

/// Creates a key for the tenant. `granter` is the scope set of whoever asks
/// (`None` for the operator): nobody can mint a key stronger than their own.
pub async fn create_key(
    db: &impl ConnectionTrait,
    scope: Scoped,
    input: NewApiKey,
    granter: Option<ScopeSet>,
    created_by: Option<String>,
) -> ApiResult<CreatedApiKey> {
    if let Some(g) = granter {
        let wanted: ScopeSet = input.scopes.iter().copied().collect();
        if !g.covers(wanted) {
            return Err(ApiError::validation(
                "scopes",
                "a key cannot get scopes its creator does not hold",
            ));
        }
    }
    insert_key(db, scope, input, created_by).await
}

pub async fn list_keys(
    db: &impl ConnectionTrait,
    scope: Scoped,
    params: &ListParams,
) -> ApiResult<Page<ApiKeyView>> {
    let limit = params.limit()?;
    let mut q = scope
        .find::<api_key::Entity>()
        .order_by_asc(api_key::Column::Id);
    if let Some(after) = &params.after {
        let after: ApiKeyId = after.parse()?;
        q = q.filter(api_key::Column::Id.gt(after.to_string()));
    }
    let rows = q.limit(limit + 1).all(db).await?;
    let views = rows
        .into_iter()
        .map(ApiKeyView::try_from)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page::from_rows(views, limit, |k| k.id.to_string()))
}

pub async fn get_key(
    db: &impl ConnectionTrait,
    scope: Scoped,
    id: ApiKeyId,
) -> ApiResult<ApiKeyView> {
    scope
        .find::<api_key::Entity>()
        .filter(api_key::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?
        .try_into()
}

/// Revokes a key (idempotent: revoking twice keeps the first time).
pub async fn revoke_key(
    db: &impl ConnectionTrait,
    scope: Scoped,
    id: ApiKeyId,
) -> ApiResult<ApiKeyView> {
    let now = Utc::now();
    scope
        .update_many::<api_key::Entity>()
        .col_expr(
            api_key::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(api_key::Column::Id.eq(id.to_string()))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    get_key(db, scope, id).await
}

/// Writes back batched `last_used_at` times; never moves one backwards.
pub async fn touch_keys(
    db: &impl ConnectionTrait,
    used: &[(ApiKeyId, DateTime<Utc>)],
) -> ApiResult<()> {
    for (id, at) in used {
        api_key::Entity::update_many()
            .col_expr(
                api_key::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(*at),
            )
            .filter(api_key::Column::Id.eq(id.to_string()))
            .filter(
                sea_orm::Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lt(*at)),
            )
            .exec(db)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- lookups for auth

/// The key with this secret hash, with its tenant and plan.
pub async fn key_by_hash(
    db: &impl ConnectionTrait,
    hash_hex: &str,
) -> ApiResult<Option<(api_key::Model, tenant::Model, plan::Model)>> {
    let Some(k) = api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(hash_hex))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let tid: TenantId = k.tenant_id.parse().map_err(ApiError::internal)?;
    Ok(tenant_with_plan(db, tid).await?.map(|(t, p)| (k, t, p)))
}

pub async fn user_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> ApiResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_ascii_lowercase()))
        .one(db)
        .await?)
}

pub async fn record_login(db: &impl ConnectionTrait, id: UserId) -> ApiResult<()> {
    user::Entity::update_many()
        .col_expr(
            user::Column::LastLoginAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(user::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(())
}
