//! A version's artifact: streamed in, verified, streamed out.

use super::*;

impl Registry {
    // ------------------------------------------------------------ artifacts

    /// Streams an upload into the artifact store. The version becomes
    /// `ready` only if the bytes match its declared checksum (when it has
    /// one) and it is still `pending`; otherwise the upload is deleted.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn upload_artifact<S, E>(
        &self,
        ctx: &TenantCtx,
        name: &str,
        n: i64,
        body: S,
    ) -> ApiResult<VersionView>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let m = self.model_row(&self.db, scope, name).await?;
        let v = self.version_row(&self.db, scope, &m, n).await?;
        if v.status != VersionStatus::Pending.as_str() {
            return Err(ApiError::Conflict(format!(
                "version {n} is {}: its artifact can no longer change",
                v.status
            )));
        }
        if v.source_type == "import" {
            return Err(ApiError::Conflict(
                "an imported version's artifact lives at its artifact_uri".into(),
            ));
        }
        let key = format!(
            "tenants/{}/models/{}/versions/{}/{}",
            ctx.tenant_id(),
            m.id,
            n,
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let stored = self.artifacts.put_stream(&key, body).await?;
        let discard = |why: ApiError| async {
            if let Err(e) = self.artifacts.delete(&key).await {
                tracing::warn!(error = %e, key, "could not delete a refused upload");
            }
            Err(why)
        };
        if let Some(declared) = &v.sha256
            && *declared != stored.sha256
        {
            return discard(ApiError::Validation {
                detail: format!(
                    "checksum mismatch: declared sha256 {declared}, received {}",
                    stored.sha256
                ),
                errors: vec![llmops_core::error::FieldError {
                    field: "sha256".into(),
                    message: "the uploaded bytes do not match the declared sha256".into(),
                }],
            })
            .await;
        }
        if let Some(size) = v.size_bytes
            && u64::try_from(size).ok() != Some(stored.size)
        {
            return discard(ApiError::validation(
                "size_bytes",
                format!("declared {size} bytes, received {}", stored.size),
            ))
            .await;
        }
        let now = Utc::now();
        let txn = begin_write(&self.db).await?;
        let done = scope
            .update_many::<version::Entity>()
            .col_expr(
                version::Column::Status,
                Expr::value(VersionStatus::Ready.as_str()),
            )
            .col_expr(version::Column::ArtifactKey, Expr::value(key.clone()))
            .col_expr(version::Column::Sha256, Expr::value(stored.sha256.clone()))
            .col_expr(
                version::Column::SizeBytes,
                Expr::value(i64::try_from(stored.size).unwrap_or(i64::MAX)),
            )
            .col_expr(version::Column::ReadyAt, Expr::value(now))
            .col_expr(version::Column::UpdatedAt, Expr::value(now))
            .filter(version::Column::Id.eq(v.id.clone()))
            .filter(version::Column::Status.eq(VersionStatus::Pending.as_str()))
            .exec(&txn)
            .await?;
        if done.rows_affected != 1 {
            drop(txn);
            return discard(ApiError::Conflict(format!(
                "version {n} changed during the upload"
            )))
            .await;
        }
        self.record_event(
            &txn,
            ctx,
            &m.id,
            "version_ready",
            None,
            None,
            Some(n),
            false,
            serde_json::json!({ "sha256": stored.sha256, "size_bytes": stored.size }),
        )
        .await?;
        txn.commit().await?;
        self.get_version(ctx, name, n).await
    }

    /// The uploaded artifact of a version: `(size, sha256, stream)`.
    pub async fn open_artifact(
        &self,
        ctx: &TenantCtx,
        name: &str,
        n: i64,
    ) -> ApiResult<(
        u64,
        Option<String>,
        futures_util::stream::BoxStream<'static, Result<bytes::Bytes, object_store::Error>>,
    )> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let m = self.model_row(&self.db, scope, name).await?;
        let v = self.version_row(&self.db, scope, &m, n).await?;
        let Some(key) = v.artifact_key else {
            return Err(ApiError::not_found(match v.artifact_uri {
                Some(_) => "artifact (this version's artifact is at its artifact_uri)",
                None => "artifact (not uploaded yet)",
            }));
        };
        let (size, stream) = self.artifacts.get_stream(&key).await?;
        Ok((size, v.sha256, stream))
    }
}
