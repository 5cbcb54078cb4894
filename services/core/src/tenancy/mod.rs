//! Who is calling: the tenancy context and scopes.

pub mod store;
pub mod users;

use crate::error::ApiError;
use crate::ids::{ApiKeyId, JobId, TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A permission a credential may carry. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Inference,
    Rag,
    Training,
    Registry,
    BillingRead,
    /// Reading the tenant's monitoring (latency, spend, drift, alerts) and
    /// managing its alert rules.
    Monitoring,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Inference,
        Scope::Rag,
        Scope::Training,
        Scope::Registry,
        Scope::BillingRead,
        Scope::Monitoring,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Inference => "inference",
            Scope::Rag => "rag",
            Scope::Training => "training",
            Scope::Registry => "registry",
            Scope::BillingRead => "billing:read",
            Scope::Monitoring => "monitoring",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scope `{}` (known: inference, rag, training, registry, billing:read, monitoring, admin)",
                    s.chars().take(40).collect::<String>()
                )
            })
    }
}

/// The document lists scopes as they travel (`billing:read`, not `BillingRead`).
impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Scope::ALL.map(Scope::as_str)))
            .description(Some("A permission; `admin` implies every other"))
            .into()
    }
}

impl utoipa::ToSchema for Scope {}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Scope::Admin.bit() != 0 || self.0 & scope.bit() != 0
    }

    /// Every scope of `other` is granted by `self`.
    pub fn covers(self, other: ScopeSet) -> bool {
        other.iter().all(|s| self.contains(s))
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }

    pub fn to_vec(self) -> Vec<Scope> {
        self.iter().collect()
    }

    /// Space-separated, as stored.
    pub fn to_db(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    pub fn from_db(s: &str) -> Self {
        s.split_whitespace()
            .filter_map(|p| p.parse::<Scope>().ok())
            .collect()
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        ScopeSet(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// Limits a tenant's plan grants (and, for requests, a key may narrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
    pub concurrent_requests: u32,
}

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    ApiKey {
        id: ApiKeyId,
        requests_per_minute: Option<u32>,
    },
    User {
        id: UserId,
    },
    /// A training job acting for its tenant after the request that created
    /// it (registering its output, recording its usage).
    Job {
        id: JobId,
    },
    /// A document's ingestion (embedding its chunks) after the request
    /// that uploaded it.
    Ingestion {
        id: crate::ids::DocumentId,
    },
    /// An alert rule's action (a retraining job it starts when it fires).
    AlertRule {
        id: crate::ids::AlertRuleId,
    },
}

/// Proof that a request authenticated as a tenant. Only
/// [`crate::auth::Authenticator`] constructs it, so service code that takes a
/// `&TenantCtx` cannot be reached without authentication.
#[derive(Debug, Clone)]
pub struct TenantCtx {
    tenant_id: TenantId,
    principal: Principal,
    scopes: ScopeSet,
    limits: PlanLimits,
    /// What an inference call did, for its monitoring record (set by the
    /// gateway on inference routes; clones share it).
    probe: Option<crate::monitor::Probe>,
    /// A read-only dashboard user: the gateway refuses its changes.
    read_only: bool,
}

impl TenantCtx {
    pub(crate) fn new(
        tenant_id: TenantId,
        principal: Principal,
        scopes: ScopeSet,
        limits: PlanLimits,
    ) -> Self {
        Self {
            tenant_id,
            principal,
            scopes,
            limits,
            probe: None,
            read_only: false,
        }
    }

    pub(crate) fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    /// Whether this caller may only read (a `read_only` user).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A job's own context: the training and registry scopes of its
    /// tenant, and no request limits (its work is metered as GPU time).
    /// Only a worker holding the job's lease should build one.
    pub fn for_job(tenant_id: TenantId, job: JobId) -> Self {
        Self::new(
            tenant_id,
            Principal::Job { id: job },
            [Scope::Training, Scope::Registry, Scope::Inference]
                .into_iter()
                .collect(),
            PlanLimits {
                requests_per_minute: u32::MAX,
                tokens_per_minute: u32::MAX,
                concurrent_requests: u32::MAX,
            },
        )
    }

    /// A document's ingestion: the `rag` and `inference` scopes of its
    /// tenant and no request limits (the embedding tokens are metered).
    /// Only the worker holding the document's lease should build one.
    pub fn for_ingestion(tenant_id: TenantId, document: crate::ids::DocumentId) -> Self {
        Self::new(
            tenant_id,
            Principal::Ingestion { id: document },
            [Scope::Rag, Scope::Inference].into_iter().collect(),
            PlanLimits {
                requests_per_minute: u32::MAX,
                tokens_per_minute: u32::MAX,
                concurrent_requests: u32::MAX,
            },
        )
    }

    /// An alert rule acting for its tenant when it fires: the `training`
    /// scope (to start the rule's retraining job) and no request limits.
    /// Only the monitoring service's evaluator should build one.
    pub fn for_alert_rule(tenant_id: TenantId, rule: crate::ids::AlertRuleId) -> Self {
        Self::new(
            tenant_id,
            Principal::AlertRule { id: rule },
            [Scope::Training].into_iter().collect(),
            PlanLimits {
                requests_per_minute: u32::MAX,
                tokens_per_minute: u32::MAX,
                concurrent_requests: u32::MAX,
            },
        )
    }

    /// The same caller with `scope` added, for a call one service makes to
    /// another on the caller's behalf after checking the caller's own scope
    /// (RAG embeds and generates through serving for a `rag` key).
    pub fn delegate(&self, scope: Scope) -> Self {
        let mut ctx = self.clone();
        ctx.scopes = self.scopes.iter().chain([scope]).collect();
        ctx
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The same caller, with the probe that collects what its inference
    /// call does.
    pub fn with_probe(mut self, probe: crate::monitor::Probe) -> Self {
        self.probe = Some(probe);
        self
    }

    /// The inference call's probe, if the gateway monitors this request.
    pub fn probe(&self) -> Option<&crate::monitor::Probe> {
        self.probe.as_ref()
    }

    pub fn principal(&self) -> Principal {
        self.principal
    }

    pub fn scopes(&self) -> ScopeSet {
        self.scopes
    }

    pub fn limits(&self) -> PlanLimits {
        self.limits
    }

    /// Query helper scoped to this tenant.
    pub fn scoped(&self) -> crate::db::Scoped {
        crate::db::Scoped::new(self.tenant_id)
    }

    /// 403 unless the caller holds `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope.as_str().to_string()))
        }
    }

    /// Who did it, for audit columns (`key_…` or `usr_…`).
    pub fn actor(&self) -> String {
        match self.principal {
            Principal::ApiKey { id, .. } => id.to_string(),
            Principal::User { id } => id.to_string(),
            Principal::Job { id } => id.to_string(),
            Principal::Ingestion { id } => id.to_string(),
            Principal::AlertRule { id } => id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_everything() {
        let admin: ScopeSet = [Scope::Admin].into_iter().collect();
        assert!(Scope::ALL.iter().all(|s| admin.contains(*s)));
        let inf: ScopeSet = [Scope::Inference].into_iter().collect();
        assert!(inf.contains(Scope::Inference));
        assert!(!inf.contains(Scope::Rag));
        assert!(!inf.covers(admin));
        assert!(admin.covers(inf));
    }

    #[test]
    fn scopes_round_trip() {
        let set = ScopeSet::all();
        assert_eq!(ScopeSet::from_db(&set.to_db()), set);
        assert_eq!("billing:read".parse::<Scope>(), Ok(Scope::BillingRead));
        assert!("root".parse::<Scope>().is_err());
    }
}
