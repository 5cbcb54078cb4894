//! Registering what a training job produced, exactly once per output.
//!
//! A job's attempts can overlap (a worker that stalled past its lease may
//! still be uploading when the next attempt finishes), so registration is
//! keyed: a version carries the job's `source_key` (`ftjob_…` for the
//! output, `ftjob_…#step-N` for a checkpoint) under a unique index, and a
//! second registration of the same key finds the first instead of adding a
//! version.

use super::Registry;
use crate::domain::{NewModel, NewVersion, VersionStatus, VersionView};
use crate::entities::{model, version};
use futures_util::Stream;
use llmops_core::{ApiError, ApiResult, TenantCtx};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, QueryFilter};
use std::collections::BTreeMap;

impl Registry {
    /// Registers `input` as a version of `model_name` (created if missing)
    /// under `source_key`, and uploads its artifact from `body`, unless a
    /// version with that key is ready already: then that one is returned
    /// and `body` is not read. A version left pending by an attempt that
    /// died mid-upload gets the upload.
    pub async fn register_output<S, E>(
        &self,
        ctx: &TenantCtx,
        model_name: &str,
        input: NewVersion,
        source_key: &str,
        body: S,
    ) -> ApiResult<VersionView>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        match self
            .create_model(
                ctx,
                NewModel {
                    name: model_name.to_string(),
                    description: Some("Fine-tuned by llmops training jobs".into()),
                    tags: BTreeMap::new(),
                    promotion_gates: Vec::new(),
                },
            )
            .await
        {
            Ok(_) | Err(ApiError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        let existing = match self.keyed_version(ctx, source_key).await? {
            Some(v) => v,
            None => {
                match self
                    .create_version_keyed(
                        ctx,
                        model_name,
                        input.clone(),
                        Some(source_key.to_string()),
                    )
                    .await
                {
                    Ok(v) => v,
                    Err(ApiError::Conflict(_)) => self
                        .keyed_version(ctx, source_key)
                        .await?
                        .ok_or_else(|| ApiError::not_found("the registered output"))?,
                    Err(e) => return Err(e),
                }
            }
        };
        if existing.status != VersionStatus::Pending {
            return Ok(existing);
        }
        // Left pending by an attempt that died mid-upload: this attempt's
        // output (other bytes: a retrain is not bit-identical) takes its
        // place, declared checksum, size, metrics and tags included.
        if existing.sha256 != input.sha256 || existing.size_bytes != input.size_bytes {
            let now = chrono::Utc::now();
            ctx.scoped()
                .update_many::<version::Entity>()
                .col_expr(version::Column::Sha256, Expr::value(input.sha256.clone()))
                .col_expr(version::Column::SizeBytes, Expr::value(input.size_bytes))
                .col_expr(
                    version::Column::Metrics,
                    Expr::value(serde_json::to_string(&input.metrics).unwrap_or_default()),
                )
                .col_expr(
                    version::Column::Tags,
                    Expr::value(serde_json::to_string(&input.tags).unwrap_or_default()),
                )
                .col_expr(version::Column::UpdatedAt, Expr::value(now))
                .filter(version::Column::Id.eq(existing.id.to_string()))
                .filter(version::Column::Status.eq(VersionStatus::Pending.as_str()))
                .exec(&self.db)
                .await?;
        }
        match self
            .upload_artifact(ctx, &existing.model, existing.version, body)
            .await
        {
            Ok(v) => Ok(v),
            // Another attempt's upload completed first.
            Err(ApiError::Conflict(_)) => self
                .keyed_version(ctx, source_key)
                .await?
                .ok_or_else(|| ApiError::not_found("the registered output")),
            Err(e) => Err(e),
        }
    }

    /// The version registered under `source_key`, if any.
    pub async fn keyed_version(
        &self,
        ctx: &TenantCtx,
        source_key: &str,
    ) -> ApiResult<Option<VersionView>> {
        let scope = ctx.scoped();
        let Some(v) = scope
            .find::<version::Entity>()
            .filter(version::Column::SourceKey.eq(source_key))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let m = scope
            .find::<model::Entity>()
            .filter(model::Column::Id.eq(v.model_id.clone()))
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::not_found("the registered output's model"))?;
        self.version_view_of(&self.db, scope, &m, v).await.map(Some)
    }
}
