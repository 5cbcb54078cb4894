//! The registry's logic. Every method takes a [`TenantCtx`]; every query
//! goes through its [`Scoped`] helper, so another tenant's model is simply
//! not found.

use crate::artifacts::ArtifactStore;
use crate::domain::*;
use crate::entities::{alias, event, model, version};
use chrono::Utc;
use futures_util::Stream;
use llmops_core::db::{Db, Scoped, begin_write, is_unique_violation};
use llmops_core::ids::{ModelId, ModelVersionId, RegistryEventId};
use llmops_core::pagination::{ListParams, Page};
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Deserialize;

mod aliases;
mod artifacts;
mod evaluations;
pub use evaluations::check_evaluation_name;
mod outputs;
mod versions;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Filters of `GET /v1/registry/models`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Return models after this id.
    #[param(value_type = Option<llmops_core::ids::ModelId>)]
    pub after: Option<String>,
    /// Only names starting with this.
    #[param(max_length = 128)]
    pub name_prefix: Option<String>,
    /// `key` (has the tag) or `key:value`.
    #[param(max_length = 400)]
    pub tag: Option<String>,
}

#[derive(Clone)]
pub struct Registry {
    db: Db,
    artifacts: ArtifactStore,
    live: Arc<std::sync::OnceLock<Arc<dyn LiveChecks>>>,
}

/// The gate metric that counts a model's open drift alerts: a model whose
/// gates include `open_drift_alerts == 0` is promoted to `production` only
/// while monitoring has no drift alert firing on its traffic.
pub const OPEN_DRIFT_ALERTS: &str = "open_drift_alerts";

/// What the registry asks of monitoring at promotion time.
#[async_trait::async_trait]
pub trait LiveChecks: Send + Sync {
    /// The drift alerts firing on the traffic of registry model `name`
    /// (its deployments, or the name itself) that began after `since` (the
    /// version's creation: drift found before a version was made, e.g.
    /// the drift that triggered its retraining, does not hold it back),
    /// one JSON object each.
    async fn open_drift_alerts(
        &self,
        ctx: &TenantCtx,
        name: &str,
        version_ids: &[String],
        since: chrono::DateTime<Utc>,
    ) -> ApiResult<Vec<serde_json::Value>>;
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn parse_json<T: serde::de::DeserializeOwned + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

/// Escapes LIKE wildcards (`\` is the escape character).
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Registry {
    pub fn new(db: Db, artifacts: ArtifactStore) -> Self {
        Self {
            db,
            artifacts,
            live: Arc::default(),
        }
    }

    /// Connects the promotion gate to monitoring (once).
    pub fn set_live_checks(&self, checks: Arc<dyn LiveChecks>) {
        let _ = self.live.set(checks);
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    // ------------------------------------------------------------ lookups

    async fn model_row(
        &self,
        db: &impl ConnectionTrait,
        scope: Scoped,
        name: &str,
    ) -> ApiResult<model::Model> {
        check_model_name(name)
            .map_err(|_| ApiError::not_found(format!("model `{}`", trunc(name))))?;
        scope
            .find::<model::Entity>()
            .filter(model::Column::Name.eq(name))
            .one(db)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("model `{name}`")))
    }

    async fn version_row(
        &self,
        db: &impl ConnectionTrait,
        scope: Scoped,
        model: &model::Model,
        number: i64,
    ) -> ApiResult<version::Model> {
        scope
            .find::<version::Entity>()
            .filter(version::Column::ModelId.eq(model.id.clone()))
            .filter(version::Column::Version.eq(number))
            .one(db)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("version {number} of model `{}`", model.name))
            })
    }

    /// Aliases of these models as `model_id → alias → version number`.
    async fn aliases_of(
        &self,
        db: &impl ConnectionTrait,
        scope: Scoped,
        model_ids: &[String],
    ) -> ApiResult<HashMap<String, BTreeMap<String, i64>>> {
        if model_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = scope
            .find::<alias::Entity>()
            .filter(alias::Column::ModelId.is_in(model_ids.to_vec()))
            .all(db)
            .await?;
        let version_ids: Vec<String> = rows.iter().map(|a| a.version_id.clone()).collect();
        let numbers: HashMap<String, i64> = if version_ids.is_empty() {
            HashMap::new()
        } else {
            scope
                .find::<version::Entity>()
                .filter(version::Column::Id.is_in(version_ids))
                .all(db)
                .await?
                .into_iter()
                .map(|v| (v.id, v.version))
                .collect()
        };
        let mut out: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
        for a in rows {
            if let Some(n) = numbers.get(&a.version_id) {
                out.entry(a.model_id).or_default().insert(a.alias, *n);
            }
        }
        Ok(out)
    }

    fn model_view(m: model::Model, aliases: BTreeMap<String, i64>) -> ApiResult<ModelView> {
        Ok(ModelView {
            object: "registry.model",
            id: m.id.parse().map_err(ApiError::internal)?,
            latest_version: (m.next_version > 1).then_some(m.next_version - 1),
            name: m.name,
            description: m.description,
            tags: parse_json(&m.tags),
            promotion_gates: parse_json(&m.promotion_gates),
            aliases,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }

    async fn model_view_of(
        &self,
        db: &impl ConnectionTrait,
        scope: Scoped,
        m: model::Model,
    ) -> ApiResult<ModelView> {
        let mut aliases = self
            .aliases_of(db, scope, std::slice::from_ref(&m.id))
            .await?;
        let a = aliases.remove(&m.id).unwrap_or_default();
        Self::model_view(m, a)
    }

    fn version_view(
        m: &model::Model,
        v: version::Model,
        aliases: Vec<String>,
        evaluated: BTreeMap<String, f64>,
    ) -> ApiResult<VersionView> {
        let source = match v.source_type.as_str() {
            "fine_tuning_job" => Source::FineTuningJob {
                job_id: v.source_job_id.clone().unwrap_or_default(),
            },
            "import" => Source::Import,
            _ => Source::Upload,
        };
        let artifact_uri = match (&v.artifact_uri, &v.artifact_key) {
            (Some(uri), _) => Some(uri.clone()),
            (None, Some(_)) => Some(format!(
                "/v1/registry/models/{}/versions/{}/artifact",
                m.name, v.version
            )),
            (None, None) => None,
        };
        let bad = |what: &str| ApiError::Internal(format!("stored {what} is invalid").into());
        Ok(VersionView {
            object: crate::domain::VersionObject,
            id: v.id.parse().map_err(ApiError::internal)?,
            model: m.name.clone(),
            model_id: m.id.parse().map_err(ApiError::internal)?,
            version: v.version,
            status: VersionStatus::parse(&v.status).ok_or_else(|| bad("status"))?,
            description: v.description,
            artifact_uri,
            format: Format::parse(&v.format).ok_or_else(|| bad("format"))?,
            quantization: Quantization::parse(&v.quantization)
                .ok_or_else(|| bad("quantization"))?,
            parameter_count: v.parameter_count,
            base_model: v.base_model,
            is_adapter: v.adapter_of.is_some(),
            adapter_of: v
                .adapter_of
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(ApiError::internal)?,
            size_bytes: v.size_bytes,
            sha256: v.sha256,
            source,
            metrics: parse_json(&v.metrics),
            evaluated_metrics: evaluated,
            tags: parse_json(&v.tags),
            aliases,
            created_by: v.created_by,
            created_at: v.created_at,
            updated_at: v.updated_at,
            ready_at: v.ready_at,
        })
    }

    async fn version_view_of(
        &self,
        db: &impl ConnectionTrait,
        scope: Scoped,
        m: &model::Model,
        v: version::Model,
    ) -> ApiResult<VersionView> {
        let aliases = scope
            .find::<alias::Entity>()
            .filter(alias::Column::VersionId.eq(v.id.clone()))
            .order_by_asc(alias::Column::Alias)
            .all(db)
            .await?
            .into_iter()
            .map(|a| a.alias)
            .collect();
        let evaluated = self
            .evaluated(db, scope, std::slice::from_ref(&v.id))
            .await?
            .remove(&v.id)
            .unwrap_or_default();
        Self::version_view(m, v, aliases, evaluated)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_event(
        &self,
        db: &impl ConnectionTrait,
        ctx: &TenantCtx,
        model_id: &str,
        kind: &str,
        alias: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
        forced: bool,
        details: serde_json::Value,
    ) -> ApiResult<()> {
        event::ActiveModel {
            id: Set(RegistryEventId::new().to_string()),
            tenant_id: Set(ctx.tenant_id().to_string()),
            model_id: Set(model_id.to_string()),
            kind: Set(kind.to_string()),
            alias: Set(alias.map(String::from)),
            from_version: Set(from),
            to_version: Set(to),
            forced: Set(forced),
            actor: Set(Some(ctx.actor())),
            details: Set(details.to_string()),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------ models

    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn create_model(&self, ctx: &TenantCtx, input: NewModel) -> ApiResult<ModelView> {
        ctx.require(Scope::Registry)?;
        check_model_name(&input.name)?;
        if let Some(d) = &input.description {
            check_text("description", d, 10_000)?;
        }
        check_tags("tags", &input.tags)?;
        check_gates(&input.promotion_gates)?;
        let now = Utc::now();
        let txn = begin_write(&self.db).await?;
        let row = model::ActiveModel {
            id: Set(ModelId::new().to_string()),
            tenant_id: Set(ctx.tenant_id().to_string()),
            name: Set(input.name.clone()),
            description: Set(input.description),
            tags: Set(json(&input.tags)),
            promotion_gates: Set(json(&input.promotion_gates)),
            next_version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let m = match row.insert(&txn).await {
            Ok(m) => m,
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiError::Conflict(format!(
                    "a model named `{}` already exists",
                    input.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.record_event(
            &txn,
            ctx,
            &m.id,
            "model_created",
            None,
            None,
            None,
            false,
            serde_json::json!({}),
        )
        .await?;
        txn.commit().await?;
        Self::model_view(m, BTreeMap::new())
    }

    pub async fn list_models(
        &self,
        ctx: &TenantCtx,
        params: &ModelListParams,
    ) -> ApiResult<Page<ModelView>> {
        ctx.require(Scope::Registry)?;
        let limit = ListParams {
            limit: params.limit,
            after: None,
        }
        .limit()?;
        let scope = ctx.scoped();
        let mut q = scope
            .find::<model::Entity>()
            .order_by_asc(model::Column::Id);
        if let Some(after) = &params.after {
            let after: ModelId = after.parse()?;
            q = q.filter(model::Column::Id.gt(after.to_string()));
        }
        if let Some(prefix) = &params.name_prefix {
            check_text("name_prefix", prefix, 128)?;
            q = q.filter(
                Expr::col(model::Column::Name)
                    .like(LikeExpr::new(format!("{}%", like_escape(prefix))).escape('\\')),
            );
        }
        if let Some(tag) = &params.tag {
            check_text("tag", tag, 400)?;
            let pattern = match tag.split_once(':') {
                Some((k, v)) => format!("{}:{}", json(&k), json(&v)),
                None => format!("{}:", json(&tag)),
            };
            q = q.filter(
                Expr::col(model::Column::Tags)
                    .like(LikeExpr::new(format!("%{}%", like_escape(&pattern))).escape('\\')),
            );
        }
        let rows = q.limit(limit + 1).all(&self.db).await?;
        let ids: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
        let mut aliases = self.aliases_of(&self.db, scope, &ids).await?;
        let views = rows
            .into_iter()
            .map(|m| {
                let a = aliases.remove(&m.id).unwrap_or_default();
                Self::model_view(m, a)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Page::from_rows(views, limit, |m| m.id.to_string()))
    }

    pub async fn get_model(&self, ctx: &TenantCtx, name: &str) -> ApiResult<ModelView> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let m = self.model_row(&self.db, scope, name).await?;
        self.model_view_of(&self.db, scope, m).await
    }

    pub async fn update_model(
        &self,
        ctx: &TenantCtx,
        name: &str,
        patch: ModelPatch,
    ) -> ApiResult<ModelView> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let m = self.model_row(&self.db, scope, name).await?;
        let mut am: model::ActiveModel = m.into();
        if let Some(d) = patch.description {
            check_text("description", &d, 10_000)?;
            am.description = Set(Some(d));
        }
        if let Some(t) = patch.tags {
            check_tags("tags", &t)?;
            am.tags = Set(json(&t));
        }
        if let Some(g) = patch.promotion_gates {
            check_gates(&g)?;
            am.promotion_gates = Set(json(&g));
        }
        am.updated_at = Set(Utc::now());
        let m = am.update(&self.db).await?;
        self.model_view_of(&self.db, scope, m).await
    }

    /// Deletes a model, its versions, history and uploaded artifacts;
    /// refused while an alias points at a version that is not archived.
    pub async fn delete_model(&self, ctx: &TenantCtx, name: &str) -> ApiResult<()> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let txn = begin_write(&self.db).await?;
        let m = self.model_row(&txn, scope, name).await?;
        let aliases = scope
            .find::<alias::Entity>()
            .filter(alias::Column::ModelId.eq(m.id.clone()))
            .all(&txn)
            .await?;
        if !aliases.is_empty() {
            let names: Vec<String> = aliases.iter().map(|a| a.alias.clone()).collect();
            return Err(ApiError::Conflict(format!(
                "model `{name}` has live aliases ({}); delete them first",
                names.join(", ")
            )));
        }
        let keys: Vec<String> = scope
            .find::<version::Entity>()
            .filter(version::Column::ModelId.eq(m.id.clone()))
            .all(&txn)
            .await?
            .into_iter()
            .filter_map(|v| v.artifact_key)
            .collect();
        scope
            .delete_many::<event::Entity>()
            .filter(event::Column::ModelId.eq(m.id.clone()))
            .exec(&txn)
            .await?;
        scope
            .delete_many::<alias::Entity>()
            .filter(alias::Column::ModelId.eq(m.id.clone()))
            .exec(&txn)
            .await?;
        scope
            .delete_many::<version::Entity>()
            .filter(version::Column::ModelId.eq(m.id.clone()))
            .exec(&txn)
            .await?;
        scope
            .delete_many::<model::Entity>()
            .filter(model::Column::Id.eq(m.id.clone()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        for key in keys {
            if let Err(e) = self.artifacts.delete(&key).await {
                tracing::warn!(error = %e, key, "artifact of a deleted model left behind");
            }
        }
        Ok(())
    }

    pub async fn list_events(
        &self,
        ctx: &TenantCtx,
        name: &str,
        params: &ListParams,
    ) -> ApiResult<Page<EventView>> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let limit = params.limit()?;
        let m = self.model_row(&self.db, scope, name).await?;
        let mut q = scope
            .find::<event::Entity>()
            .filter(event::Column::ModelId.eq(m.id.clone()))
            .order_by_asc(event::Column::Id);
        if let Some(after) = &params.after {
            let after: RegistryEventId = after.parse()?;
            q = q.filter(event::Column::Id.gt(after.to_string()));
        }
        let rows = q.limit(limit + 1).all(&self.db).await?;
        let views = rows
            .into_iter()
            .map(|e| {
                Ok(EventView {
                    object: "registry.event",
                    id: e.id.parse().map_err(ApiError::internal)?,
                    kind: e.kind,
                    alias: e.alias,
                    from_version: e.from_version,
                    to_version: e.to_version,
                    forced: e.forced,
                    actor: e.actor,
                    details: serde_json::from_str(&e.details).unwrap_or_default(),
                    created_at: e.created_at,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Page::from_rows(views, limit, |e| e.id.to_string()))
    }

    // ------------------------------------------------------------ resolution

    /// Resolves `name@alias`, `name@3` or `mv_…` to a version of this tenant.
    pub async fn resolve(&self, ctx: &TenantCtx, reference: &str) -> ApiResult<VersionView> {
        ctx.require(Scope::Registry)
            .or_else(|_| ctx.require(Scope::Inference))
            .or_else(|_| ctx.require(Scope::Training))?;
        let scope = ctx.scoped();
        match VersionRef::parse(reference)? {
            VersionRef::Id(id) => {
                let v = scope
                    .find::<version::Entity>()
                    .filter(version::Column::Id.eq(id.to_string()))
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("model version `{id}`")))?;
                let m = scope
                    .find::<model::Entity>()
                    .filter(model::Column::Id.eq(v.model_id.clone()))
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("model version `{id}`")))?;
                self.version_view_of(&self.db, scope, &m, v).await
            }
            VersionRef::Number { model, version } => {
                let m = self.model_row(&self.db, scope, &model).await?;
                let v = self.version_row(&self.db, scope, &m, version).await?;
                self.version_view_of(&self.db, scope, &m, v).await
            }
            VersionRef::Alias { model, alias: a } => {
                let m = self.model_row(&self.db, scope, &model).await?;
                let row = scope
                    .find::<alias::Entity>()
                    .filter(alias::Column::ModelId.eq(m.id.clone()))
                    .filter(alias::Column::Alias.eq(a.clone()))
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("alias `{model}@{a}`")))?;
                let v = scope
                    .find::<version::Entity>()
                    .filter(version::Column::Id.eq(row.version_id))
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("alias `{model}@{a}`")))?;
                self.version_view_of(&self.db, scope, &m, v).await
            }
        }
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}
