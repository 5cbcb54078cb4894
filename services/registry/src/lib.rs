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
pub use service::{LiveChecks, OPEN_DRIFT_ALERTS, Registry};

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

    /// The uploaded artifact of a version: its size and its bytes.
    async fn open_artifact(
        &self,
        ctx: &TenantCtx,
        version: &VersionView,
    ) -> ApiResult<ArtifactStream>;
}

/// An artifact's size and bytes.
pub type ArtifactStream = (
    u64,
    futures_util::stream::BoxStream<'static, Result<bytes::Bytes, object_store::Error>>,
);

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

    async fn open_artifact(
        &self,
        ctx: &TenantCtx,
        version: &VersionView,
    ) -> ApiResult<ArtifactStream> {
        let (size, _, stream) =
            Registry::open_artifact(self, ctx, &version.model, version.version).await?;
        Ok((size, stream))
    }
}
