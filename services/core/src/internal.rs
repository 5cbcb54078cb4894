//! Split mode: the internal token a gateway signs for each request it
//! forwards to a service, and the service's check of it.
//!
//! The token is an HS256 JWT under `internal_secret` (not the dashboard's
//! `jwt_secret`: a dashboard token is never an internal one), addressed to
//! one service (`aud`), valid for `internal_token_ttl_secs`, and carrying
//! what the gateway established: the tenant, principal, scopes and plan
//! limits, or that the caller is the operator, or that the route is public,
//! or that another service calls; and the request it was issued for: its
//! method, its path as sent, and its request id. A service trusts nothing
//! else about the caller, so a request that reaches it directly (or with a
//! token forged, expired, or meant for another service or request) is
//! refused.

use crate::error::ApiError;
use crate::ids::{AlertRuleId, ApiKeyId, DocumentId, JobId, TenantId, UserId};
use crate::tenancy::{PlanLimits, Principal, ScopeSet, TenantCtx};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The header that carries the token from the gateway to a service.
pub const HEADER: &str = "x-llmops-internal-token";

/// The services a process can run (`serve --services`), besides `gateway`.
pub const SERVICES: &[&str] = &[
    "registry",
    "serving",
    "billing",
    "training",
    "rag",
    "monitoring",
];

const ISSUER: &str = "llmops-gateway";

/// Who the gateway says is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Caller {
    /// A route that needs no credentials (login, Stripe's webhook).
    Public,
    /// The operator (`/admin/v1`).
    Operator,
    /// Another service (`/internal/v1`), named.
    Service { from: String },
    /// An authenticated tenant.
    Tenant {
        tenant: String,
        principal: String,
        principal_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_requests_per_minute: Option<u32>,
        scopes: String,
        requests_per_minute: u32,
        tokens_per_minute: u32,
        concurrent_requests: u32,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// The request id the token was issued for.
    rid: String,
    /// The request's method and path (as sent, percent-encoded).
    m: String,
    p: String,
    #[serde(flatten)]
    caller: Caller,
}

impl Caller {
    pub fn tenant(ctx: &TenantCtx) -> Self {
        let (principal, principal_id, key_rpm) = match ctx.principal() {
            Principal::ApiKey {
                id,
                requests_per_minute,
            } => ("api_key", id.to_string(), requests_per_minute),
            Principal::User { id } => ("user", id.to_string(), None),
            Principal::Job { id } => ("job", id.to_string(), None),
            Principal::Ingestion { id } => ("ingestion", id.to_string(), None),
            Principal::AlertRule { id } => ("alert_rule", id.to_string(), None),
        };
        let limits = ctx.limits();
        Self::Tenant {
            tenant: ctx.tenant_id().to_string(),
            principal: principal.into(),
            principal_id,
            key_requests_per_minute: key_rpm,
            scopes: ctx.scopes().to_db(),
            requests_per_minute: limits.requests_per_minute,
            tokens_per_minute: limits.tokens_per_minute,
            concurrent_requests: limits.concurrent_requests,
        }
    }

    /// The tenant context a service acts in, for a tenant caller.
    pub fn to_ctx(&self) -> Result<Option<TenantCtx>, ApiError> {
        let Self::Tenant {
            tenant,
            principal,
            principal_id,
            key_requests_per_minute,
            scopes,
            requests_per_minute,
            tokens_per_minute,
            concurrent_requests,
        } = self
        else {
            return Ok(None);
        };
        let bad = |what: &str| ApiError::Unauthenticated(format!("internal token: bad {what}"));
        let tenant: TenantId = tenant.parse().map_err(|_| bad("tenant"))?;
        let id = principal_id.as_str();
        let principal = match principal.as_str() {
            "api_key" => Principal::ApiKey {
                id: id.parse::<ApiKeyId>().map_err(|_| bad("principal"))?,
                requests_per_minute: *key_requests_per_minute,
            },
            "user" => Principal::User {
                id: id.parse::<UserId>().map_err(|_| bad("principal"))?,
            },
            "job" => Principal::Job {
                id: id.parse::<JobId>().map_err(|_| bad("principal"))?,
            },
            "ingestion" => Principal::Ingestion {
                id: id.parse::<DocumentId>().map_err(|_| bad("principal"))?,
            },
            "alert_rule" => Principal::AlertRule {
                id: id.parse::<AlertRuleId>().map_err(|_| bad("principal"))?,
            },
            _ => return Err(bad("principal")),
        };
        Ok(Some(TenantCtx::new(
            tenant,
            principal,
            ScopeSet::from_db(scopes),
            PlanLimits {
                requests_per_minute: *requests_per_minute,
                tokens_per_minute: *tokens_per_minute,
                concurrent_requests: *concurrent_requests,
            },
        )))
    }
}

/// What a service learns from a valid token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub caller: Caller,
    pub request_id: String,
    pub method: String,
    pub path: String,
}

/// The request a token is for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    /// The path as sent on the wire.
    pub path: &'a str,
}

/// Signs and checks internal tokens.
pub struct InternalKeys {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    ttl: Duration,
}

impl InternalKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self {
            encoding: jsonwebtoken::EncodingKey::from_secret(secret),
            decoding: jsonwebtoken::DecodingKey::from_secret(secret),
            ttl,
        }
    }

    /// A token for one request to `service`.
    pub fn sign(
        &self,
        service: &str,
        caller: Caller,
        target: Target<'_>,
    ) -> Result<String, ApiError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: service.into(),
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(60),
            rid: target.request_id.into(),
            m: target.method.into(),
            p: target.path.into(),
            caller,
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// Checks a token addressed to one of `services` (the ones this
    /// process runs): signature, issuer, audience and expiry, no leeway.
    pub fn verify(&self, token: &str, services: &[String]) -> Result<Verified, ApiError> {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(services);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                ApiError::Unauthenticated(
                    match e.kind() {
                        ErrorKind::ExpiredSignature => "internal token expired",
                        ErrorKind::InvalidAudience => "internal token is for another service",
                        _ => "internal token is not valid",
                    }
                    .into(),
                )
            })?;
        Ok(Verified {
            caller: data.claims.caller,
            request_id: data.claims.rid,
            method: data.claims.m,
            path: data.claims.p,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::Scope;

    fn target(request_id: &str) -> Target<'_> {
        Target {
            request_id,
            method: "GET",
            path: "/v1/models",
        }
    }

    fn keys(secret: &str) -> InternalKeys {
        InternalKeys::new(secret.as_bytes(), Duration::from_secs(60))
    }

    #[test]
    fn a_tenant_context_survives_the_round_trip() {
        let ctx = TenantCtx::new(
            TenantId::new(),
            Principal::ApiKey {
                id: ApiKeyId::new(),
                requests_per_minute: Some(7),
            },
            [Scope::Inference, Scope::Registry].into_iter().collect(),
            PlanLimits {
                requests_per_minute: 10,
                tokens_per_minute: 20,
                concurrent_requests: 3,
            },
        );
        let k = keys("a-secret-of-at-least-thirty-two-chars");
        let token = k
            .sign("serving", Caller::tenant(&ctx), target("req-1"))
            .unwrap();
        let v = k.verify(&token, &["serving".into()]).unwrap();
        assert_eq!(v.request_id, "req-1");
        assert_eq!((v.method.as_str(), v.path.as_str()), ("GET", "/v1/models"));
        let back = v.caller.to_ctx().unwrap().unwrap();
        assert_eq!(back.tenant_id(), ctx.tenant_id());
        assert_eq!(back.principal(), ctx.principal());
        assert_eq!(back.scopes().to_db(), ctx.scopes().to_db());
        assert_eq!(back.limits().tokens_per_minute, 20);
    }

    #[test]
    fn wrong_secret_audience_or_expiry_is_refused() {
        let k = keys("a-secret-of-at-least-thirty-two-chars");
        let token = k.sign("billing", Caller::Operator, target("r")).unwrap();
        assert!(k.verify(&token, &["billing".into()]).is_ok());
        let other = keys("another-secret-of-thirty-two-chars!!");
        assert!(other.verify(&token, &["billing".into()]).is_err());
        let err = k.verify(&token, &["serving".into()]).unwrap_err();
        assert!(err.to_string().contains("another service"), "{err}");
        let expired = InternalKeys::new(
            b"a-secret-of-at-least-thirty-two-chars",
            Duration::from_secs(0),
        );
        let token = expired
            .sign("billing", Caller::Public, target("r"))
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let err = k.verify(&token, &["billing".into()]).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }
}
