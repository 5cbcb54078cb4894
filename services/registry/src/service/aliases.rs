//! Aliases (`production`, …) and the promotion gates that guard them.

use super::*;

impl Registry {
    // ------------------------------------------------------------ aliases

    /// Points `alias` at a version, atomically (one row per model and alias,
    /// replaced in one transaction with its audit event). Moving
    /// `production` onto a version that fails the model's gates is refused
    /// unless an `admin` caller forces it.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn set_alias(
        &self,
        ctx: &TenantCtx,
        name: &str,
        alias_name: &str,
        input: SetAlias,
    ) -> ApiResult<ModelView> {
        ctx.require(Scope::Registry)?;
        check_alias(alias_name)?;
        if input.force {
            ctx.require(Scope::Admin)?;
        }
        let scope = ctx.scoped();
        let txn = begin_write(&self.db).await?;
        let m = self.model_row(&txn, scope, name).await?;
        let v = self
            .version_row(&txn, scope, &m, input.version)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(what) => {
                    ApiError::validation("version", format!("{what} does not exist"))
                }
                other => other,
            })?;
        if v.status != VersionStatus::Ready.as_str() {
            return Err(ApiError::Conflict(format!(
                "version {} is {}; only ready versions can be aliased",
                v.version, v.status
            )));
        }
        let mut forced = false;
        if alias_name == GATED_ALIAS {
            let gates: Vec<Gate> = parse_json(&m.promotion_gates);
            // The version's own metrics and, over them, what evaluations
            // measured since.
            let mut metrics: BTreeMap<String, f64> = parse_json(&v.metrics);
            if let Some(e) = self
                .evaluated(&txn, scope, std::slice::from_ref(&v.id))
                .await?
                .remove(&v.id)
            {
                metrics.extend(e);
            }
            // A live gate: monitoring's open drift alerts on the model's
            // traffic, counted now.
            let mut alerts = Vec::new();
            if gates.iter().any(|g| g.metric == OPEN_DRIFT_ALERTS) {
                let live = self.live.get().ok_or_else(|| {
                    ApiError::NotImplemented(format!(
                        "the `{OPEN_DRIFT_ALERTS}` gate needs the monitoring service"
                    ))
                })?;
                let versions: Vec<String> = scope
                    .find::<version::Entity>()
                    .filter(version::Column::ModelId.eq(m.id.clone()))
                    .select_only()
                    .column(version::Column::Id)
                    .into_tuple()
                    .all(&txn)
                    .await?;
                alerts = live
                    .open_drift_alerts(ctx, name, &versions, v.created_at)
                    .await?;
                metrics.insert(OPEN_DRIFT_ALERTS.to_string(), alerts.len() as f64);
            }
            let failed: Vec<GateFailure> = gates
                .iter()
                .filter_map(|g| g.check(&metrics))
                .map(|mut f| {
                    if f.gate.metric == OPEN_DRIFT_ALERTS {
                        f.alerts = alerts.clone();
                    }
                    f
                })
                .collect();
            if !failed.is_empty() {
                if !input.force {
                    return Err(ApiError::GateFailed {
                        detail: format!(
                            "version {} fails {} promotion gate(s) of `{name}`",
                            v.version,
                            failed.len()
                        ),
                        checks: serde_json::to_value(&failed).unwrap_or_default(),
                    });
                }
                forced = true;
            }
        }
        let previous = scope
            .find::<alias::Entity>()
            .filter(alias::Column::ModelId.eq(m.id.clone()))
            .filter(alias::Column::Alias.eq(alias_name))
            .one(&txn)
            .await?;
        let from = match &previous {
            Some(p) => scope
                .find::<version::Entity>()
                .filter(version::Column::Id.eq(p.version_id.clone()))
                .one(&txn)
                .await?
                .map(|pv| pv.version),
            None => None,
        };
        let now = Utc::now();
        match previous {
            Some(p) => {
                let mut am: alias::ActiveModel = p.into();
                am.version_id = Set(v.id.clone());
                am.updated_at = Set(now);
                am.update(&txn).await?;
            }
            None => {
                let row = alias::ActiveModel {
                    tenant_id: Set(ctx.tenant_id().to_string()),
                    model_id: Set(m.id.clone()),
                    alias: Set(alias_name.to_string()),
                    version_id: Set(v.id.clone()),
                    updated_at: Set(now),
                };
                match row.insert(&txn).await {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(ApiError::Conflict(format!(
                            "alias `{alias_name}` was set concurrently; retry"
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.record_event(
            &txn,
            ctx,
            &m.id,
            "alias_set",
            Some(alias_name),
            from,
            Some(v.version),
            forced,
            serde_json::json!({}),
        )
        .await?;
        let view = self.model_view_of(&txn, scope, m).await?;
        txn.commit().await?;
        Ok(view)
    }

    pub async fn delete_alias(
        &self,
        ctx: &TenantCtx,
        name: &str,
        alias_name: &str,
    ) -> ApiResult<ModelView> {
        ctx.require(Scope::Registry)?;
        check_alias(alias_name)?;
        let scope = ctx.scoped();
        let txn = begin_write(&self.db).await?;
        let m = self.model_row(&txn, scope, name).await?;
        let existing = scope
            .find::<alias::Entity>()
            .filter(alias::Column::ModelId.eq(m.id.clone()))
            .filter(alias::Column::Alias.eq(alias_name))
            .one(&txn)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("alias `{alias_name}`")))?;
        let from = scope
            .find::<version::Entity>()
            .filter(version::Column::Id.eq(existing.version_id.clone()))
            .one(&txn)
            .await?
            .map(|v| v.version);
        scope
            .delete_many::<alias::Entity>()
            .filter(alias::Column::ModelId.eq(m.id.clone()))
            .filter(alias::Column::Alias.eq(alias_name))
            .exec(&txn)
            .await?;
        self.record_event(
            &txn,
            ctx,
            &m.id,
            "alias_deleted",
            Some(alias_name),
            from,
            None,
            false,
            serde_json::json!({}),
        )
        .await?;
        let view = self.model_view_of(&txn, scope, m).await?;
        txn.commit().await?;
        Ok(view)
    }
}
