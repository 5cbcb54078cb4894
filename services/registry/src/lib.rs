//! `llmops-registry`: registered models, immutable model versions with
//! artifacts, checksums and lineage, aliases with promotion gates, and their
//! audit trail.

pub mod artifacts;
pub mod domain;
pub mod entities;
pub mod openapi;
pub mod routes;
pub mod service;

pub use artifacts::ArtifactStore;
pub use domain::{NewVersion, Source, VersionView};
pub use service::Registry;

use llmops_core::{ApiResult, TenantCtx};

/// How other services use the registry (in process now; over HTTP when
/// services run as separate deployments).
#[async_trait::async_trait]
pub trait RegistryClient: Send + Sync {
    /// Resolves `name@alias`, `name@3` or `mv_…` for the calling tenant.
    async fn resolve(&self, ctx: &TenantCtx, reference: &str) -> ApiResult<VersionView>;

    /// Registers a new version of `model` (e.g. a fine-tuning job's output,
    /// with `Source::FineTuningJob` as its lineage).
    async fn register_version(
        &self,
        ctx: &TenantCtx,
        model: &str,
        version: NewVersion,
    ) -> ApiResult<VersionView>;
}

#[async_trait::async_trait]
impl RegistryClient for Registry {
    async fn resolve(&self, ctx: &TenantCtx, reference: &str) -> ApiResult<VersionView> {
        Registry::resolve(self, ctx, reference).await
    }

    async fn register_version(
        &self,
        ctx: &TenantCtx,
        model: &str,
        version: NewVersion,
    ) -> ApiResult<VersionView> {
        self.create_version(ctx, model, version).await
    }
}
