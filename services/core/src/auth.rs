//! Credentials: API key secrets, password hashes, JWTs, and the
//! [`Authenticator`] that turns a bearer token into a [`TenantCtx`].

use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::ids::{ApiKeyId, TenantId, UserId};
use crate::secret::Secret;
use crate::tenancy::store::{self, TenantStatus};
use crate::tenancy::users::{self, Role};
use crate::tenancy::{PlanLimits, Principal, ScopeSet, TenantCtx};
use chrono::{DateTime, Utc};
use dashmap_lite::ConcurrentMap;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "sk-llmops-";
const KEY_BODY_LEN: usize = 48;

/// Random letters and digits from the thread-local CSPRNG.
pub fn random_alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// An API key secret: `sk-llmops-` and 48 letters and digits (~285 bits).
pub struct ApiKeySecret(Secret<String>);

impl ApiKeySecret {
    pub fn generate() -> Self {
        Self(Secret::new(format!(
            "{KEY_PREFIX}{}",
            random_alnum(KEY_BODY_LEN)
        )))
    }

    /// Accepts only well-formed secrets, so garbage never reaches the store.
    pub fn parse(s: &str) -> Option<Self> {
        let body = s.strip_prefix(KEY_PREFIX)?;
        (body.len() == KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(Secret::new(s.to_string())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.expose().as_bytes()).into()
    }

    pub fn hash_hex(&self) -> String {
        hex(&self.hash())
    }

    /// `sk-llmops-AbCd…wxyz`: enough to recognise, useless to attack.
    pub fn redacted(&self) -> String {
        let s = self.0.expose();
        let body = &s[KEY_PREFIX.len()..];
        format!(
            "{KEY_PREFIX}{}…{}",
            &body[..4],
            &body[body.len().saturating_sub(4)..]
        )
    }
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let txt = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------- passwords

pub fn hash_password(password: &str) -> ApiResult<String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("argon2: {e}").into()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

// ---------------------------------------------------------------- JWT

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The tenant id.
    pub tid: String,
    /// Space-separated scopes.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// A `read_only` user's token: the gateway refuses its changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ro: bool,
}

const JWT_ISSUER: &str = "llmops";
const JWT_AUDIENCE: &str = "llmops-api";

pub struct JwtKeys {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[JWT_ISSUER]);
        validation.set_audience(&[JWT_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            encoding: jsonwebtoken::EncodingKey::from_secret(secret),
            decoding: jsonwebtoken::DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user: UserId, tenant: TenantId, scopes: ScopeSet) -> ApiResult<String> {
        self.issue_for(user, tenant, scopes, false)
    }

    /// A token; `read_only` marks a read-only user's.
    pub fn issue_for(
        &self,
        user: UserId,
        tenant: TenantId,
        scopes: ScopeSet,
        read_only: bool,
    ) -> ApiResult<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            tid: tenant.to_string(),
            scope: scopes.to_db(),
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(3600),
            iss: JWT_ISSUER.into(),
            aud: JWT_AUDIENCE.into(),
            ro: read_only,
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    pub fn verify(&self, token: &str) -> ApiResult<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                ApiError::Unauthenticated(match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired".into(),
                    ErrorKind::InvalidSignature => "token signature is invalid".into(),
                    _ => "token is invalid".into(),
                })
            })
    }
}

// ---------------------------------------------------------------- authenticator

/// A tiny concurrent map with no extra dependency: a sharded `Mutex<HashMap>`.
mod dashmap_lite {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};
    use std::sync::Mutex;

    pub struct ConcurrentMap<K, V> {
        shards: Vec<Mutex<HashMap<K, V>>>,
        hasher: std::collections::hash_map::RandomState,
    }

    impl<K: Hash + Eq + Clone, V: Clone> ConcurrentMap<K, V> {
        pub fn new() -> Self {
            Self {
                shards: (0..32).map(|_| Mutex::new(HashMap::new())).collect(),
                hasher: std::collections::hash_map::RandomState::new(),
            }
        }

        fn shard(&self, k: &K) -> &Mutex<HashMap<K, V>> {
            let i = (self.hasher.hash_one(k) as usize) % self.shards.len();
            &self.shards[i]
        }

        pub fn get(&self, k: &K) -> Option<V> {
            self.shard(k).lock().ok()?.get(k).cloned()
        }

        pub fn insert(&self, k: K, v: V) {
            if let Ok(mut m) = self.shard(&k).lock() {
                if m.len() >= 100_000 {
                    // Bounded: an attacker spraying keys only churns the cache.
                    m.clear();
                }
                m.insert(k, v);
            }
        }

        pub fn retain(&self, mut f: impl FnMut(&K, &V) -> bool) {
            for s in &self.shards {
                if let Ok(mut m) = s.lock() {
                    m.retain(|k, v| f(k, v));
                }
            }
        }

        pub fn drain(&self) -> Vec<(K, V)> {
            let mut out = Vec::new();
            for s in &self.shards {
                if let Ok(mut m) = s.lock() {
                    out.extend(m.drain());
                }
            }
            out
        }
    }
}

#[derive(Clone)]
struct CachedKey {
    fetched: Instant,
    /// `None`: no such key (negative entry).
    entry: Option<KeyEntry>,
}

#[derive(Clone)]
struct KeyEntry {
    hash: [u8; 32],
    id: ApiKeyId,
    tenant_id: TenantId,
    scopes: ScopeSet,
    requests_per_minute: Option<u32>,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
    tenant_status: TenantStatus,
    limits: PlanLimits,
}

#[derive(Clone)]
struct CachedTenant {
    fetched: Instant,
    state: Option<(TenantStatus, PlanLimits)>,
}

/// Verifies bearer credentials. Keys and tenant states are cached for
/// `ttl`; changes made through this replica invalidate its cache at once,
/// other replicas see them within `ttl`.
pub struct Authenticator {
    db: Db,
    jwt: Arc<JwtKeys>,
    ttl: Duration,
    keys: ConcurrentMap<[u8; 32], CachedKey>,
    tenants: ConcurrentMap<TenantId, CachedTenant>,
    views: ConcurrentMap<TenantId, (Instant, Arc<store::TenantView>)>,
    last_used: ConcurrentMap<ApiKeyId, DateTime<Utc>>,
    /// A JWT's user as it is now: its role, or `None` once removed.
    users: ConcurrentMap<UserId, (Instant, Option<Role>)>,
}

impl Authenticator {
    pub fn new(db: Db, jwt: Arc<JwtKeys>, ttl: Duration) -> Self {
        Self {
            db,
            jwt,
            ttl,
            keys: ConcurrentMap::new(),
            tenants: ConcurrentMap::new(),
            views: ConcurrentMap::new(),
            last_used: ConcurrentMap::new(),
            users: ConcurrentMap::new(),
        }
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }

    /// Authenticates the value of an `Authorization` header.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, authorization: Option<&str>) -> ApiResult<TenantCtx> {
        let header = authorization.ok_or_else(|| {
            ApiError::Unauthenticated(
                "missing credentials: send `Authorization: Bearer <api key or token>`".into(),
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "malformed Authorization header: expected `Bearer <credential>`".into(),
                )
            })?;
        if token.starts_with(KEY_PREFIX) {
            let secret = ApiKeySecret::parse(token)
                .ok_or_else(|| ApiError::Unauthenticated("malformed API key".into()))?;
            self.authenticate_key(&secret).await
        } else if token.split('.').count() == 3 {
            self.authenticate_jwt(token).await
        } else {
            Err(ApiError::Unauthenticated(
                "credential is neither an API key nor a token".into(),
            ))
        }
    }

    async fn authenticate_key(&self, secret: &ApiKeySecret) -> ApiResult<TenantCtx> {
        let hash = secret.hash();
        let cached = self
            .keys
            .get(&hash)
            .filter(|c| c.fetched.elapsed() < self.ttl);
        let cached = match cached {
            Some(c) => c,
            None => {
                let fresh = self.load_key(secret).await?;
                self.keys.insert(hash, fresh.clone());
                fresh
            }
        };
        let invalid = || ApiError::Unauthenticated("invalid API key".into());
        let entry = cached.entry.ok_or_else(invalid)?;
        // The map lookup already matched; this comparison is the one that
        // decides, and it takes the same time wherever the bytes differ.
        if !bool::from(entry.hash.ct_eq(&hash)) {
            return Err(invalid());
        }
        if entry.revoked {
            return Err(ApiError::Unauthenticated("API key has been revoked".into()));
        }
        let now = Utc::now();
        if entry.expires_at.is_some_and(|e| e <= now) {
            return Err(ApiError::Unauthenticated("API key has expired".into()));
        }
        if entry.tenant_status != TenantStatus::Active {
            return Err(ApiError::TenantSuspended);
        }
        self.last_used.insert(entry.id, now);
        Ok(TenantCtx::new(
            entry.tenant_id,
            Principal::ApiKey {
                id: entry.id,
                requests_per_minute: entry.requests_per_minute,
            },
            entry.scopes,
            entry.limits,
        ))
    }

    async fn load_key(&self, secret: &ApiKeySecret) -> ApiResult<CachedKey> {
        let row = store::key_by_hash(&self.db, &secret.hash_hex()).await?;
        let entry = match row {
            None => None,
            Some((k, t, p)) => Some(KeyEntry {
                hash: unhex(&k.secret_hash)
                    .ok_or_else(|| ApiError::Internal("corrupt key hash".into()))?,
                id: k.id.parse().map_err(ApiError::internal)?,
                tenant_id: t.id.parse().map_err(ApiError::internal)?,
                scopes: ScopeSet::from_db(&k.scopes),
                requests_per_minute: k
                    .requests_per_minute
                    .map(|v| u32::try_from(v.max(1)).unwrap_or(u32::MAX)),
                expires_at: k.expires_at,
                revoked: k.revoked_at.is_some(),
                tenant_status: TenantStatus::from_db(&t.status),
                limits: store::PlanView::from(p).limits(),
            }),
        };
        Ok(CachedKey {
            fetched: Instant::now(),
            entry,
        })
    }

    async fn authenticate_jwt(&self, token: &str) -> ApiResult<TenantCtx> {
        let claims = self.jwt.verify(token)?;
        let bad = || ApiError::Unauthenticated("token is invalid".into());
        let user: UserId = claims.sub.parse().map_err(|_| bad())?;
        let tenant: TenantId = claims.tid.parse().map_err(|_| bad())?;
        let (status, limits) = self.tenant_state(tenant).await?.ok_or_else(bad)?;
        if status != TenantStatus::Active {
            return Err(ApiError::TenantSuspended);
        }
        // The token's scopes, as far as the user's role today allows: a
        // removed user's tokens stop, a demoted one's lose what it lost
        // (within `ttl` on other replicas, at once on this one).
        let role = self
            .user_role(tenant, user)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("the token's user no longer exists".into()))?;
        let scopes: ScopeSet = ScopeSet::from_db(&claims.scope)
            .iter()
            .filter(|s| role.scopes().contains(*s))
            .collect();
        let mut ctx = TenantCtx::new(tenant, Principal::User { id: user }, scopes, limits);
        ctx.set_read_only(claims.ro || role == Role::ReadOnly);
        Ok(ctx)
    }

    /// Status and limits of a tenant, cached like keys.
    pub async fn tenant_state(
        &self,
        id: TenantId,
    ) -> ApiResult<Option<(TenantStatus, PlanLimits)>> {
        if let Some(c) = self
            .tenants
            .get(&id)
            .filter(|c| c.fetched.elapsed() < self.ttl)
        {
            return Ok(c.state);
        }
        let state = store::tenant_with_plan(&self.db, id).await?.map(|(t, p)| {
            (
                TenantStatus::from_db(&t.status),
                store::PlanView::from(p).limits(),
            )
        });
        self.tenants.insert(
            id,
            CachedTenant {
                fetched: Instant::now(),
                state,
            },
        );
        Ok(state)
    }

    /// The tenant as `GET /v1/tenant` shows it, cached like keys: the
    /// hottest read of the API never waits on the database.
    pub async fn tenant_view(&self, id: TenantId) -> ApiResult<Arc<store::TenantView>> {
        if let Some((at, view)) = self.views.get(&id)
            && at.elapsed() < self.ttl
        {
            return Ok(view);
        }
        let view = Arc::new(store::get_tenant(&self.db, id).await?);
        self.views.insert(id, (Instant::now(), view.clone()));
        Ok(view)
    }

    /// Forget everything cached about a tenant (after suspension, plan change).
    pub fn invalidate_tenant(&self, id: TenantId) {
        self.tenants.retain(|k, _| *k != id);
        self.views.retain(|k, _| *k != id);
        self.keys
            .retain(|_, v| v.entry.as_ref().is_none_or(|e| e.tenant_id != id));
    }

    /// A user's current role (`None`: no such user in that tenant),
    /// cached like keys.
    async fn user_role(&self, tenant: TenantId, user: UserId) -> ApiResult<Option<Role>> {
        if let Some((at, role)) = self.users.get(&user)
            && at.elapsed() < self.ttl
        {
            return Ok(role);
        }
        let role = users::current_role(&self.db, crate::db::Scoped::new(tenant), user).await?;
        self.users.insert(user, (Instant::now(), role));
        Ok(role)
    }

    /// Forget a user's cached role (after a role change or removal).
    pub fn invalidate_user(&self, id: UserId) {
        self.users.retain(|k, _| *k != id);
    }

    /// Forget a key (after revocation).
    pub fn invalidate_key(&self, id: ApiKeyId) {
        self.keys
            .retain(|_, v| v.entry.as_ref().is_none_or(|e| e.id != id));
    }

    /// Writes the batched `last_used_at` times to the database.
    pub async fn flush_key_usage(&self) -> ApiResult<usize> {
        let used = self.last_used.drain();
        if used.is_empty() {
            return Ok(0);
        }
        let n = used.len();
        if let Err(e) = store::touch_keys(&self.db, &used).await {
            // Put them back so the next flush retries.
            for (k, v) in used {
                self.last_used.insert(k, v);
            }
            return Err(e);
        }
        Ok(n)
    }

    /// Checks an email and password: the user, once its tenant is active.
    /// A wrong email and a wrong password take the same time and answer.
    async fn check_login(
        &self,
        email: &str,
        password: &str,
    ) -> ApiResult<crate::entities::user::Model> {
        let denied = || ApiError::Unauthenticated("email or password is wrong".into());
        let user = store::user_by_email(&self.db, email).await?;
        let Some(user) = user else {
            // Same work as a real check, so timing does not reveal accounts.
            let pw = password.to_string();
            let _ = tokio::task::spawn_blocking(move || verify_password(&pw, dummy_hash())).await;
            return Err(denied());
        };
        let pw = password.to_string();
        let phc = user.password_hash.clone();
        let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &phc))
            .await
            .map_err(ApiError::internal)?;
        if !ok {
            return Err(denied());
        }
        let user_id: UserId = user.id.parse().map_err(ApiError::internal)?;
        let tenant: TenantId = user.tenant_id.parse().map_err(ApiError::internal)?;
        match self.tenant_state(tenant).await? {
            Some((TenantStatus::Active, _)) => {}
            Some((TenantStatus::Suspended, _)) => return Err(ApiError::TenantSuspended),
            None => return Err(denied()),
        }
        store::record_login(&self.db, user_id).await?;
        Ok(user)
    }

    /// Email and password login: returns a JWT with the user's role's
    /// scopes (a `read_only` user's token is marked so).
    pub async fn login(&self, email: &str, password: &str) -> ApiResult<(String, TenantId)> {
        let user = self.check_login(email, password).await?;
        let user_id: UserId = user.id.parse().map_err(ApiError::internal)?;
        let tenant: TenantId = user.tenant_id.parse().map_err(ApiError::internal)?;
        let role = Role::from_db(&user.role);
        let token = self
            .jwt
            .issue_for(user_id, tenant, role.scopes(), role == Role::ReadOnly)?;
        Ok((token, tenant))
    }

    /// Email and password sign-in to the dashboard: a new session.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        ttl: Duration,
    ) -> ApiResult<(users::OpenedSession, users::LiveSession)> {
        let user = self.check_login(email, password).await?;
        let user_id: UserId = user.id.parse().map_err(ApiError::internal)?;
        let tenant: TenantId = user.tenant_id.parse().map_err(ApiError::internal)?;
        users::start_session(&self.db, tenant, user_id, ttl).await
    }

    /// Authenticates a dashboard session's cookie secret. The session and
    /// its user are read on every request, so signing out, removing a
    /// user or changing its role take effect at once.
    pub async fn authenticate_session(
        &self,
        secret: &str,
    ) -> ApiResult<(TenantCtx, users::LiveSession)> {
        let session = users::live_session(&self.db, secret)
            .await?
            .ok_or_else(|| {
                ApiError::Unauthenticated("the session has ended; sign in again".into())
            })?;
        let (status, limits) = self.tenant_state(session.tenant_id).await?.ok_or_else(|| {
            ApiError::Unauthenticated("the session has ended; sign in again".into())
        })?;
        if status != TenantStatus::Active {
            return Err(ApiError::TenantSuspended);
        }
        let user: UserId = session.user.id.parse().map_err(ApiError::internal)?;
        let role = Role::from_db(&session.user.role);
        let mut ctx = TenantCtx::new(
            session.tenant_id,
            Principal::User { id: user },
            role.scopes(),
            limits,
        );
        ctx.set_read_only(role == Role::ReadOnly);
        Ok((ctx, session))
    }
}

/// An argon2id hash of a random string, verified against when no user matches.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_alnum(32)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_and_redact() {
        let s = ApiKeySecret::generate();
        assert!(s.expose().starts_with(KEY_PREFIX));
        assert_eq!(s.expose().len(), KEY_PREFIX.len() + KEY_BODY_LEN);
        assert!(ApiKeySecret::parse(s.expose()).is_some());
        assert!(ApiKeySecret::parse("sk-llmops-short").is_none());
        assert!(ApiKeySecret::parse(&s.expose().replace("sk-llmops-", "sk-other-")).is_none());
        let r = s.redacted();
        assert!(r.len() < 30 && !s.expose().contains(&r), "{r}");
        assert_eq!(unhex(&s.hash_hex()), Some(s.hash()));
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse battery").unwrap_or_default();
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn jwt_refuses_tampering() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let tok = keys
            .issue(UserId::new(), TenantId::new(), ScopeSet::all())
            .unwrap_or_default();
        assert!(keys.verify(&tok).is_ok());
        let mut parts: Vec<String> = tok.split('.').map(String::from).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(keys.verify(&parts.join(".")).is_err());
        let other = JwtKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert!(other.verify(&tok).is_err());
    }
}
