//! Versions: registered with the next number of their model, listed,
//! read and updated (status, metadata; the artifact fields are immutable).

use super::*;

impl Registry {
    // ------------------------------------------------------------ versions

    /// Registers a version with the next number of its model. The number is
    /// taken with an atomic increment in the same transaction as the insert:
    /// concurrent creations get distinct numbers and a failed one leaves no gap.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn create_version(
        &self,
        ctx: &TenantCtx,
        name: &str,
        input: NewVersion,
    ) -> ApiResult<VersionView> {
        self.create_version_keyed(ctx, name, input, None).await
    }

    /// [`Registry::create_version`], optionally under a `source_key` that
    /// no other version of the tenant may have (a unique violation then).
    pub(super) async fn create_version_keyed(
        &self,
        ctx: &TenantCtx,
        name: &str,
        input: NewVersion,
        source_key: Option<String>,
    ) -> ApiResult<VersionView> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        check_metrics(&input.metrics)?;
        check_tags("tags", &input.tags)?;
        if let Some(d) = &input.description {
            check_text("description", d, 10_000)?;
        }
        if let Some(b) = &input.base_model {
            check_text("base_model", b, 256)?;
        }
        if input.parameter_count.is_some_and(|n| n <= 0) {
            return Err(ApiError::validation("parameter_count", "must be positive"));
        }
        if input.size_bytes.is_some_and(|n| n < 0) {
            return Err(ApiError::validation("size_bytes", "must not be negative"));
        }
        let sha256 = input.sha256.as_deref().map(check_sha256).transpose()?;
        if let Source::FineTuningJob { job_id } = &input.source
            && (job_id.is_empty() || job_id.len() > 64)
        {
            return Err(ApiError::validation(
                "source.job_id",
                "job_id must be 1 to 64 characters",
            ));
        }
        let uri = match (&input.source, &input.artifact_uri) {
            (Source::Import, None) => {
                return Err(ApiError::validation(
                    "artifact_uri",
                    "an import needs artifact_uri and sha256",
                ));
            }
            (Source::Upload, Some(_)) => {
                return Err(ApiError::validation(
                    "artifact_uri",
                    "an upload's artifact is sent to PUT …/artifact, not given as a URI",
                ));
            }
            (_, Some(uri)) => {
                check_text("artifact_uri", uri, 2048)?;
                if !uri.contains("://") {
                    return Err(ApiError::validation(
                        "artifact_uri",
                        "artifact_uri must be an absolute URI (s3://…, https://…)",
                    ));
                }
                if sha256.is_none() {
                    return Err(ApiError::validation(
                        "sha256",
                        "an artifact_uri needs its declared sha256",
                    ));
                }
                Some(uri.clone())
            }
            (_, None) => None,
        };
        let adapter_of = match &input.adapter_of {
            Some(r) => {
                let base = self.resolve(ctx, r).await.map_err(|e| match e {
                    ApiError::NotFound(what) => {
                        ApiError::validation("adapter_of", format!("{what} does not exist"))
                    }
                    other => other,
                })?;
                Some(base.id.to_string())
            }
            None => None,
        };

        let now = Utc::now();
        let txn = begin_write(&self.db).await?;
        let m = self.model_row(&txn, scope, name).await?;
        let bumped = scope
            .update_many::<model::Entity>()
            .col_expr(
                model::Column::NextVersion,
                Expr::col(model::Column::NextVersion).add(1),
            )
            .col_expr(model::Column::UpdatedAt, Expr::value(now))
            .filter(model::Column::Id.eq(m.id.clone()))
            .exec_with_returning(&txn)
            .await?;
        let number = bumped
            .first()
            .map(|b| b.next_version - 1)
            .ok_or_else(|| ApiError::not_found(format!("model `{name}`")))?;
        let ready = uri.is_some();
        let row = version::ActiveModel {
            id: Set(ModelVersionId::new().to_string()),
            tenant_id: Set(ctx.tenant_id().to_string()),
            model_id: Set(m.id.clone()),
            version: Set(number),
            status: Set(if ready {
                VersionStatus::Ready
            } else {
                VersionStatus::Pending
            }
            .as_str()
            .into()),
            description: Set(input.description),
            artifact_uri: Set(uri),
            artifact_key: Set(None),
            format: Set(input.format.as_str().into()),
            quantization: Set(input.quantization.as_str().into()),
            parameter_count: Set(input.parameter_count),
            base_model: Set(input.base_model),
            adapter_of: Set(adapter_of),
            size_bytes: Set(input.size_bytes),
            sha256: Set(sha256),
            source_type: Set(input.source.type_str().into()),
            source_job_id: Set(match &input.source {
                Source::FineTuningJob { job_id } => Some(job_id.clone()),
                _ => None,
            }),
            source_key: Set(source_key),
            metrics: Set(json(&input.metrics)),
            tags: Set(json(&input.tags)),
            created_by: Set(Some(ctx.actor())),
            created_at: Set(now),
            updated_at: Set(now),
            ready_at: Set(ready.then_some(now)),
        };
        let v = match row.insert(&txn).await {
            Ok(v) => v,
            // Only a keyed version can collide (its id is new).
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiError::Conflict(
                    "this job output is already registered".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.record_event(
            &txn,
            ctx,
            &m.id,
            "version_created",
            None,
            None,
            Some(number),
            false,
            serde_json::json!({ "source": input.source }),
        )
        .await?;
        txn.commit().await?;
        Self::version_view(&m, v, Vec::new(), BTreeMap::new())
    }

    pub async fn list_versions(
        &self,
        ctx: &TenantCtx,
        name: &str,
        params: &ListParams,
    ) -> ApiResult<Page<VersionView>> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let limit = params.limit()?;
        let m = self.model_row(&self.db, scope, name).await?;
        let mut q = scope
            .find::<version::Entity>()
            .filter(version::Column::ModelId.eq(m.id.clone()))
            .order_by_asc(version::Column::Version);
        if let Some(after) = &params.after {
            let after: i64 = after
                .parse()
                .map_err(|_| ApiError::validation("after", "after is a version number here"))?;
            q = q.filter(version::Column::Version.gt(after));
        }
        let rows = q.limit(limit + 1).all(&self.db).await?;
        let aliases = self
            .aliases_of(&self.db, scope, std::slice::from_ref(&m.id))
            .await?;
        let by_number: HashMap<i64, Vec<String>> =
            aliases
                .get(&m.id)
                .into_iter()
                .flatten()
                .fold(HashMap::new(), |mut acc, (a, n)| {
                    acc.entry(*n).or_default().push(a.clone());
                    acc
                });
        let ids: Vec<String> = rows.iter().map(|v| v.id.clone()).collect();
        let mut evaluated = self.evaluated(&self.db, scope, &ids).await?;
        let views = rows
            .into_iter()
            .map(|v| {
                let a = by_number.get(&v.version).cloned().unwrap_or_default();
                let e = evaluated.remove(&v.id).unwrap_or_default();
                Self::version_view(&m, v, a, e)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Page::from_rows(views, limit, |v| v.version.to_string()))
    }

    pub async fn get_version(&self, ctx: &TenantCtx, name: &str, n: i64) -> ApiResult<VersionView> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let m = self.model_row(&self.db, scope, name).await?;
        let v = self.version_row(&self.db, scope, &m, n).await?;
        self.version_view_of(&self.db, scope, &m, v).await
    }

    pub async fn update_version(
        &self,
        ctx: &TenantCtx,
        name: &str,
        n: i64,
        patch: VersionPatch,
    ) -> ApiResult<VersionView> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let txn = begin_write(&self.db).await?;
        let m = self.model_row(&txn, scope, name).await?;
        let v = self.version_row(&txn, scope, &m, n).await?;
        let status = VersionStatus::parse(&v.status)
            .ok_or_else(|| ApiError::Internal("stored status is invalid".into()))?;
        let mut am: version::ActiveModel = v.clone().into();
        if let Some(d) = patch.description {
            check_text("description", &d, 10_000)?;
            am.description = Set(Some(d));
        }
        if let Some(t) = patch.tags {
            check_tags("tags", &t)?;
            am.tags = Set(json(&t));
        }
        if let Some(new) = patch.metrics {
            check_metrics(&new)?;
            if status != VersionStatus::Pending {
                return Err(ApiError::Conflict(format!(
                    "metrics of a {} version are fixed",
                    status.as_str()
                )));
            }
            let mut merged: BTreeMap<String, f64> = parse_json(&v.metrics);
            merged.extend(new);
            check_metrics(&merged)?;
            am.metrics = Set(json(&merged));
        }
        let mut archived = false;
        if let Some(target) = patch.status
            && target != status
        {
            let allowed = matches!(
                (status, target),
                (
                    VersionStatus::Ready | VersionStatus::Failed,
                    VersionStatus::Archived
                ) | (VersionStatus::Pending, VersionStatus::Failed)
            );
            if !allowed {
                return Err(ApiError::Conflict(format!(
                    "a {} version cannot become {}",
                    status.as_str(),
                    target.as_str()
                )));
            }
            if target == VersionStatus::Archived {
                let live = scope
                    .find::<alias::Entity>()
                    .filter(alias::Column::VersionId.eq(v.id.clone()))
                    .all(&txn)
                    .await?;
                if !live.is_empty() {
                    return Err(ApiError::Conflict(format!(
                        "version {n} is behind alias `{}`; move it first",
                        live[0].alias
                    )));
                }
                archived = true;
            }
            am.status = Set(target.as_str().into());
        }
        am.updated_at = Set(Utc::now());
        let v = am.update(&txn).await?;
        if archived {
            self.record_event(
                &txn,
                ctx,
                &m.id,
                "version_archived",
                None,
                None,
                Some(n),
                false,
                serde_json::json!({}),
            )
            .await?;
        }
        let view = self.version_view_of(&txn, scope, &m, v).await?;
        txn.commit().await?;
        Ok(view)
    }
}
