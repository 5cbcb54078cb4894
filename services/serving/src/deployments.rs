//! Dedicated deployments: a tenant's registered model version loaded on
//! Triton as a model of its own, callable by the deployment's name, metered
//! in GPU time while it is ready.

use crate::catalog::{CatalogModel, ModelKind};
use crate::service::Serving;
use chrono::{DateTime, TimeZone, Utc};
use llmops_core::db::{Scoped, TenantOwned, begin_write};
use llmops_core::ids::DeploymentId;
use llmops_core::pagination::{ListParams, Page};
use llmops_core::usage::{Meter, UsageEvent};
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "deployments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub model_ref: String,
        pub model_version_id: String,
        pub triton_model: String,
        pub status: String,
        pub gpu_type: String,
        pub replicas: i32,
        pub error: Option<String>,
        pub created_by: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub ready_at: Option<ChronoDateTimeUtc>,
        pub stopped_at: Option<ChronoDateTimeUtc>,
        /// GPU time is metered up to here.
        pub metered_until: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use entity as dep;

impl TenantOwned for dep::Entity {
    fn tenant_column() -> Self::Column {
        dep::Column::TenantId
    }
}

/// The model program deployments run (the local LLM's, which loads the
/// `model.gguf` shipped next to it).
const LLM_MODEL_PY: &str =
    include_str!("../../../infra/triton/models/smollm2-135m-instruct/1/model.py");

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeploymentView {
    /// Always `deployment`.
    pub object: &'static str,
    pub id: DeploymentId,
    /// The model id to call it by.
    pub name: String,
    /// The registry reference it was created from (`name@alias`, …).
    pub model: String,
    pub model_version_id: String,
    /// `pending`, `loading`, `ready`, `failed`, `stopped`.
    pub status: String,
    pub gpu_type: String,
    pub replicas: i32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

impl From<dep::Model> for DeploymentView {
    fn from(d: dep::Model) -> Self {
        DeploymentView {
            object: "deployment",
            id: d.id.parse().unwrap_or_default(),
            name: d.name,
            model: d.model_ref,
            model_version_id: d.model_version_id,
            status: d.status,
            gpu_type: d.gpu_type,
            replicas: d.replicas,
            error: d.error,
            created_at: d.created_at,
            ready_at: d.ready_at,
            stopped_at: d.stopped_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    /// The model id it will answer to: 1 to 63 of a-z, 0-9 and `-`.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,62}$")]
    pub name: String,
    /// A registry version: `name@alias`, `name@3` or `mv_…` (GGUF for the local backend).
    #[schema(
        pattern = "^(mv_[0-7][0-9a-hjkmnp-tv-z]{25}|[A-Za-z0-9][A-Za-z0-9._-]{0,127}@([a-z][a-z0-9_-]{0,63}|[1-9][0-9]{0,17}))$"
    )]
    pub model: String,
    /// GPU type billed (`cpu` on the local backend).
    #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
    pub gpu_type: Option<String>,
    /// Replicas, 1 to 16 (default 1).
    #[schema(minimum = 1, maximum = 16)]
    pub replicas: Option<u32>,
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "name",
            "deployment names are 1 to 63 of a-z, 0-9, `-`, starting with a letter",
        ))
    }
}

fn llm_config(triton_model: &str) -> String {
    let input = |name: &str, t: &str, dims: serde_json::Value, optional: bool| serde_json::json!({"name": name, "data_type": t, "dims": dims, "optional": optional});
    let output =
        |name: &str, t: &str| serde_json::json!({"name": name, "data_type": t, "dims": [1]});
    serde_json::json!({
        "name": triton_model,
        "backend": "python",
        "max_batch_size": 0,
        "model_transaction_policy": {"decoupled": true},
        "input": [
            input("PROMPT", "TYPE_STRING", serde_json::json!([1]), false),
            input("MAX_TOKENS", "TYPE_INT32", serde_json::json!([1]), true),
            input("TEMPERATURE", "TYPE_FP32", serde_json::json!([1]), true),
            input("TOP_P", "TYPE_FP32", serde_json::json!([1]), true),
            input("SEED", "TYPE_INT64", serde_json::json!([1]), true),
            input("STOP", "TYPE_STRING", serde_json::json!([-1]), true),
        ],
        "output": [
            output("TEXT", "TYPE_STRING"),
            output("FINISH_REASON", "TYPE_STRING"),
            output("PROMPT_TOKENS", "TYPE_INT32"),
            output("COMPLETION_TOKENS", "TYPE_INT32"),
        ],
        "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
    })
    .to_string()
}

/// Largest artifact a deployment ships to Triton in its load request.
const MAX_DEPLOY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or_else(Utc::now)
}

impl Serving {
    fn db(&self) -> ApiResult<&llmops_core::db::Db> {
        self.inner()
            .db
            .as_ref()
            .ok_or_else(|| ApiError::NotImplemented("deployments need a database".into()))
    }

    async fn dep_row(&self, scope: Scoped, id: &str) -> ApiResult<dep::Model> {
        let id: DeploymentId = id.parse()?;
        scope
            .find::<dep::Entity>()
            .filter(dep::Column::Id.eq(id.to_string()))
            .one(self.db()?)
            .await?
            .ok_or_else(|| ApiError::not_found("deployment"))
    }

    /// Creates a deployment (202: it loads in the background).
    pub async fn create_deployment(
        &self,
        ctx: &TenantCtx,
        input: NewDeployment,
    ) -> ApiResult<DeploymentView> {
        ctx.require(Scope::Inference)?;
        check_name(&input.name)?;
        let replicas = input.replicas.unwrap_or(1);
        if !(1..=16).contains(&replicas) {
            return Err(ApiError::validation("replicas", "replicas must be 1 to 16"));
        }
        let gpu_type = input.gpu_type.clone().unwrap_or_else(|| "cpu".into());
        if gpu_type.is_empty()
            || gpu_type.len() > 32
            || !gpu_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(ApiError::validation(
                "gpu_type",
                "gpu_type is 1 to 32 of a-z, 0-9, `-`, `_`",
            ));
        }
        if self.catalog().iter().any(|m| m.id == input.name) {
            return Err(ApiError::Conflict(format!(
                "`{}` is a shared model's name",
                input.name
            )));
        }
        let triton = self.triton().cloned().ok_or_else(|| {
            ApiError::NotConfigured(
                "deployments need a Triton, and this server has none (set triton_url)".into(),
            )
        })?;
        let registry = self.registry()?;
        let version = registry
            .resolve(ctx, &input.model)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(what) => {
                    ApiError::validation("model", format!("{what} does not exist"))
                }
                other => other,
            })?;
        if version.status != llmops_registry::domain::VersionStatus::Ready {
            return Err(ApiError::validation(
                "model",
                "only a ready version can be deployed",
            ));
        }
        if version.format != llmops_registry::domain::Format::Gguf {
            return Err(ApiError::validation(
                "model",
                format!(
                    "the local backend serves GGUF chat models; this version is {}",
                    version.format.as_str()
                ),
            ));
        }
        let scope = ctx.scoped();
        let db = self.db()?;
        let txn = begin_write(db).await?;
        let live = scope
            .find::<dep::Entity>()
            .filter(dep::Column::Name.eq(input.name.clone()))
            .filter(dep::Column::Status.ne("stopped"))
            .one(&txn)
            .await?;
        if live.is_some() {
            return Err(ApiError::Conflict(format!(
                "a deployment named `{}` is already live",
                input.name
            )));
        }
        let id = DeploymentId::new();
        let now = Utc::now();
        let row = dep::ActiveModel {
            id: Set(id.to_string()),
            tenant_id: Set(ctx.tenant_id().to_string()),
            name: Set(input.name.clone()),
            model_ref: Set(input.model.clone()),
            model_version_id: Set(version.id.to_string()),
            triton_model: Set(id.to_string()),
            status: Set("pending".into()),
            gpu_type: Set(gpu_type),
            replicas: Set(i32::try_from(replicas).unwrap_or(1)),
            error: Set(None),
            created_by: Set(Some(ctx.actor())),
            created_at: Set(now),
            updated_at: Set(now),
            ready_at: Set(None),
            stopped_at: Set(None),
            metered_until: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        let s = self.clone();
        let ctx2 = ctx.clone();
        self.tasks().spawn(async move {
            if let Err(e) = s.load_deployment(&ctx2, id, &version, &triton).await {
                let _ = s
                    .set_status(id, &["pending", "loading"], "failed", Some(e.to_string()))
                    .await;
                tracing::warn!(deployment = %id, error = %e, "deployment failed to load");
            }
        });
        Ok(row.into())
    }

    async fn set_status(
        &self,
        id: DeploymentId,
        from: &[&str],
        to: &str,
        error: Option<String>,
    ) -> ApiResult<bool> {
        let now = Utc::now();
        let mut q = dep::Entity::update_many()
            .col_expr(dep::Column::Status, Expr::value(to))
            .col_expr(dep::Column::UpdatedAt, Expr::value(now))
            .col_expr(dep::Column::Error, Expr::value(error))
            .filter(dep::Column::Id.eq(id.to_string()))
            .filter(dep::Column::Status.is_in(from.iter().map(|s| s.to_string())));
        if to == "ready" {
            let at = from_ms(ms(now));
            q = q
                .col_expr(dep::Column::ReadyAt, Expr::value(at))
                .col_expr(dep::Column::MeteredUntil, Expr::value(at));
        }
        Ok(q.exec(self.db()?).await?.rows_affected == 1)
    }

    async fn load_deployment(
        &self,
        ctx: &TenantCtx,
        id: DeploymentId,
        version: &llmops_registry::VersionView,
        triton: &crate::triton::Triton,
    ) -> ApiResult<()> {
        use futures_util::StreamExt;
        if !self.set_status(id, &["pending"], "loading", None).await? {
            return Ok(());
        }
        let (size, mut stream) = self.registry()?.open_artifact(ctx, version).await?;
        if size > MAX_DEPLOY_BYTES {
            return Err(ApiError::validation("model", "artifact larger than 4 GiB"));
        }
        let mut gguf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            gguf.extend_from_slice(&chunk.map_err(|e| ApiError::Internal(Box::new(e)))?);
        }
        let name = id.to_string();
        triton
            .load_files(
                &name,
                llm_config(&name),
                vec![
                    ("1/model.py".into(), LLM_MODEL_PY.as_bytes().to_vec()),
                    ("1/model.gguf".into(), gguf),
                ],
            )
            .await
            .map_err(|s| {
                ApiError::validation(
                    "model",
                    format!("Triton refused the model: {}", s.message()),
                )
            })?;
        if !self.set_status(id, &["loading"], "ready", None).await? {
            // Deleted while loading.
            let _ = triton.unload(&name).await;
        }
        Ok(())
    }

    pub async fn list_deployments(
        &self,
        ctx: &TenantCtx,
        params: &ListParams,
    ) -> ApiResult<Page<DeploymentView>> {
        ctx.require(Scope::Inference)?;
        let limit = params.limit()?;
        let mut q = ctx
            .scoped()
            .find::<dep::Entity>()
            .order_by_asc(dep::Column::Id);
        if let Some(after) = &params.after {
            let after: DeploymentId = after.parse()?;
            q = q.filter(dep::Column::Id.gt(after.to_string()));
        }
        let rows = q.limit(limit + 1).all(self.db()?).await?;
        let views: Vec<DeploymentView> = rows.into_iter().map(Into::into).collect();
        Ok(Page::from_rows(views, limit, |d| d.id.to_string()))
    }

    pub async fn get_deployment(&self, ctx: &TenantCtx, id: &str) -> ApiResult<DeploymentView> {
        ctx.require(Scope::Inference)?;
        Ok(self.dep_row(ctx.scoped(), id).await?.into())
    }

    /// Stops a deployment: unloads it and meters its GPU time to the end.
    pub async fn delete_deployment(&self, ctx: &TenantCtx, id: &str) -> ApiResult<DeploymentView> {
        ctx.require(Scope::Inference)?;
        let row = self.dep_row(ctx.scoped(), id).await?;
        if row.status == "stopped" {
            return Ok(row.into());
        }
        let now = from_ms(ms(Utc::now()));
        dep::Entity::update_many()
            .col_expr(dep::Column::Status, Expr::value("stopped"))
            .col_expr(dep::Column::StoppedAt, Expr::value(now))
            .col_expr(dep::Column::UpdatedAt, Expr::value(now))
            .filter(dep::Column::Id.eq(row.id.clone()))
            .filter(dep::Column::Status.ne("stopped"))
            .exec(self.db()?)
            .await?;
        if let Some(t) = self.triton()
            && let Err(e) = t.unload(&row.triton_model).await
        {
            tracing::warn!(deployment = %row.id, error = %e, "unloading a stopped deployment failed");
        }
        self.meter_deployments(Utc::now()).await?;
        Ok(self.dep_row(ctx.scoped(), id).await?.into())
    }

    /// A tenant's deployment as a callable model.
    pub(crate) async fn deployment_target(
        &self,
        ctx: &TenantCtx,
        name: &str,
    ) -> ApiResult<Option<CatalogModel>> {
        let Some(db) = self.inner().db.as_ref() else {
            return Ok(None);
        };
        if check_name(name).is_err() {
            return Ok(None);
        }
        let row = ctx
            .scoped()
            .find::<dep::Entity>()
            .filter(dep::Column::Name.eq(name))
            .filter(dep::Column::Status.ne("stopped"))
            .one(db)
            .await?;
        if let (Some(d), Some(p)) = (&row, ctx.probe()) {
            p.deployment(&d.id);
        }
        match row {
            None => Ok(None),
            Some(d) if d.status == "ready" => Ok(Some(CatalogModel {
                id: d.name,
                kind: ModelKind::Chat,
                backend: crate::catalog::ModelBackend::Triton {
                    model: d.triton_model,
                },
                context_tokens: 2048,
                dimensions: None,
                fallbacks: Vec::new(),
                counter: crate::tokens::TokenCounter::estimate(),
            })),
            Some(d) if d.status == "failed" => Err(ApiError::Conflict(format!(
                "deployment `{name}` failed: {}",
                d.error.unwrap_or_default()
            ))),
            Some(_) => Err(ApiError::Unavailable {
                dependency: format!("deployment `{name}` (still loading)"),
                retry_after_secs: 5,
            }),
        }
    }

    /// Names of the tenant's ready deployments.
    pub(crate) async fn ready_deployments(&self, ctx: &TenantCtx) -> ApiResult<Vec<String>> {
        let Some(db) = self.inner().db.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(ctx
            .scoped()
            .find::<dep::Entity>()
            .filter(dep::Column::Status.eq("ready"))
            .order_by_asc(dep::Column::Name)
            .all(db)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect())
    }

    /// Books GPU time of ready (and just stopped) deployments in fixed
    /// windows: one usage event per deployment and window, its id naming
    /// both, its quantity fixed by the window and the deployment's ready and
    /// stop times, so a rerun after a crash books nothing twice.
    pub async fn meter_deployments(&self, now: DateTime<Utc>) -> ApiResult<usize> {
        let Some(db) = self.inner().db.as_ref() else {
            return Ok(0);
        };
        let window = i64::try_from(self.inner().meter_window.as_millis())
            .unwrap_or(60_000)
            .max(1);
        let rows = dep::Entity::find()
            .filter(dep::Column::MeteredUntil.is_not_null())
            .filter(dep::Column::Status.is_in(["ready", "stopped"]))
            .all(db)
            .await?;
        let mut booked = 0;
        for d in rows {
            let Some(until) = d.metered_until else {
                continue;
            };
            let end = d.stopped_at.map_or(ms(now), ms);
            let mut from = ms(until);
            if from >= end {
                continue;
            }
            let Ok(tenant_id) = d.tenant_id.parse() else {
                continue;
            };
            let Ok(meter) = Meter::new(Meter::GPU_MILLISECONDS) else {
                continue;
            };
            let mut events = Vec::new();
            loop {
                let w_start = from.div_euclid(window) * window;
                let w_end = w_start + window;
                let to = if w_end <= end {
                    w_end
                } else if d.stopped_at.is_some() {
                    end
                } else {
                    break;
                };
                events.push(UsageEvent {
                    id: format!("{}:gpu:{w_start}", d.id),
                    tenant_id,
                    meter: meter.clone(),
                    quantity: i64::from(d.replicas) * (to - from),
                    dimensions: BTreeMap::from([
                        ("deployment".to_string(), d.name.clone()),
                        ("gpu_type".to_string(), d.gpu_type.clone()),
                    ]),
                    occurred_at: from_ms(to),
                });
                from = to;
                if from >= end {
                    break;
                }
            }
            if events.is_empty() {
                continue;
            }
            self.inner()
                .usage
                .record(&events)
                .await
                .map_err(|e| ApiError::Internal(Box::new(e)))?;
            dep::Entity::update_many()
                .col_expr(dep::Column::MeteredUntil, Expr::value(from_ms(from)))
                .filter(dep::Column::Id.eq(d.id.clone()))
                .filter(dep::Column::MeteredUntil.eq(until))
                .exec(db)
                .await?;
            booked += events.len();
        }
        Ok(booked)
    }

    /// Meters deployments every window until `stop`.
    pub async fn watch_deployments(&self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(self.inner().meter_window);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.meter_deployments(Utc::now()).await {
                        tracing::warn!(error = %e, "metering deployments failed; will retry");
                    }
                }
            }
        }
    }
}
