//! GPU pools and plan quotas (operator API, `/admin/v1/gpu_pools` and
//! `/admin/v1/plans/{plan_id}/training_quotas`), and the admission snapshot
//! workers claim under: quotas and fair-share weights per tenant from its
//! plan, and the tenants whose budget is spent (they start no job).

use crate::policy::StaticQuotas;
use chrono::Utc;
use llmops_core::db::Db;
use llmops_core::ids::{JobId, TenantId};
use llmops_core::limits::SpendGuard;
use llmops_core::{ApiError, ApiResult, TenantCtx};
use sea_orm::{ConnectionTrait, Statement, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A pool of identical nodes.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuPool {
    /// The pool's name: lower-case letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub id: String,
    /// What jobs ask for in `resources.gpu_type` (`a100-80gb`, `h100`, …).
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub gpu_type: String,
    #[schema(minimum = 1, maximum = 64)]
    pub gpus_per_node: u32,
    #[schema(minimum = 1, maximum = 4096)]
    pub nodes: u32,
    /// Spot (preemptible) or on-demand capacity.
    #[serde(default)]
    pub spot: bool,
    /// Price of one GPU-hour in the currency's minor unit (cents).
    #[schema(minimum = 0, maximum = 100000000)]
    pub price_per_gpu_hour_minor: i64,
    /// ISO 4217, upper case.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

/// A plan's training quotas.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingQuotas {
    /// Weight in fair sharing between tenants (1 to 1000).
    #[schema(minimum = 1, maximum = 1000)]
    pub weight: u32,
    /// GPU type → most devices a tenant of the plan holds at once; types
    /// not listed are limited by capacity only.
    #[schema(value_type = BTreeMap<String, u32>)]
    pub max_gpus: BTreeMap<String, u32>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn check_pool(p: &GpuPool) -> ApiResult<()> {
    if !valid_name(&p.id) {
        return Err(ApiError::validation(
            "id",
            "id is lower-case letters, digits, `.`, `_`, `-` (at most 64)",
        ));
    }
    // `cpu` pools price CPU workers' time; CPU jobs need no pool to be
    // accepted.
    if !valid_name(&p.gpu_type) {
        return Err(ApiError::validation(
            "gpu_type",
            "gpu_type is lower-case letters, digits, `.`, `_`, `-` (at most 64)",
        ));
    }
    if !(1..=64).contains(&p.gpus_per_node) || !(1..=4096).contains(&p.nodes) {
        return Err(ApiError::validation(
            "nodes",
            "gpus_per_node must be 1 to 64 and nodes 1 to 4096",
        ));
    }
    if !(0..=100_000_000).contains(&p.price_per_gpu_hour_minor) {
        return Err(ApiError::validation(
            "price_per_gpu_hour_minor",
            "must be 0 to 100000000",
        ));
    }
    if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::validation(
            "currency",
            "currency is three upper-case letters",
        ));
    }
    Ok(())
}

#[derive(Clone)]
pub struct Pools {
    db: Db,
}

impl Pools {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        crate::queue::stmt(&self.db, sql, values)
    }

    /// Creates or replaces a pool.
    pub async fn put(&self, pool: GpuPool) -> ApiResult<GpuPool> {
        check_pool(&pool)?;
        let now = Utc::now();
        let sql = "INSERT INTO gpu_pools (id, gpu_type, gpus_per_node, nodes, spot, price_per_gpu_hour_minor, currency, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO UPDATE SET gpu_type = $2, \
             gpus_per_node = $3, nodes = $4, spot = $5, price_per_gpu_hour_minor = $6, currency = $7, updated_at = $8";
        self.db
            .execute_raw(self.stmt(
                sql,
                vec![
                    pool.id.clone().into(),
                    pool.gpu_type.clone().into(),
                    i64::from(pool.gpus_per_node).into(),
                    i64::from(pool.nodes).into(),
                    pool.spot.into(),
                    pool.price_per_gpu_hour_minor.into(),
                    pool.currency.clone().into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(pool)
    }

    /// The pools matching `filter` (SQL after `WHERE`), by id.
    async fn select(&self, filter: &str, values: Vec<Value>) -> ApiResult<Vec<GpuPool>> {
        let rows = self
            .db
            .query_all_raw(self.stmt(
                &format!(
                    "SELECT id, gpu_type, gpus_per_node, nodes, spot, price_per_gpu_hour_minor, currency \
                     FROM gpu_pools WHERE {filter} ORDER BY id"
                ),
                values,
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GpuPool {
                    id: r.try_get("", "id")?,
                    gpu_type: r.try_get("", "gpu_type")?,
                    gpus_per_node: u32::try_from(r.try_get::<i32>("", "gpus_per_node")?)
                        .unwrap_or(0),
                    nodes: u32::try_from(r.try_get::<i32>("", "nodes")?).unwrap_or(0),
                    spot: r.try_get("", "spot")?,
                    price_per_gpu_hour_minor: r.try_get("", "price_per_gpu_hour_minor")?,
                    currency: r.try_get("", "currency")?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(Into::into)
    }

    pub async fn list(&self) -> ApiResult<Vec<GpuPool>> {
        self.select("1 = 1", vec![]).await
    }

    pub async fn get(&self, id: &str) -> ApiResult<GpuPool> {
        self.select("id = $1", vec![id.into()])
            .await?
            .pop()
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "GPU pool `{}`",
                    id.chars().take(64).collect::<String>()
                ))
            })
    }

    pub async fn delete(&self, id: &str) -> ApiResult<()> {
        let r = self
            .db
            .execute_raw(self.stmt("DELETE FROM gpu_pools WHERE id = $1", vec![id.into()]))
            .await?;
        if r.rows_affected() == 0 {
            return Err(ApiError::not_found(format!(
                "GPU pool `{}`",
                id.chars().take(64).collect::<String>()
            )));
        }
        Ok(())
    }

    /// The shape `(devices per node, nodes)` of a pool of `gpu_type` that
    /// can hold a job of `per_node` × `nodes` devices, or, when none can,
    /// of the one with the most devices (the job can never fit); `None`
    /// when no pool has the type.
    pub async fn shape_for(
        &self,
        gpu_type: &str,
        per_node: u32,
        nodes: u32,
    ) -> ApiResult<Option<(u32, u32)>> {
        let pools = self.select("gpu_type = $1", vec![gpu_type.into()]).await?;
        let shapes = pools.iter().map(|p| (p.gpus_per_node, p.nodes));
        Ok(shapes
            .clone()
            .find(|&(g, n)| g >= per_node && n >= nodes)
            .or_else(|| shapes.max_by_key(|&(g, n)| u64::from(g) * u64::from(n))))
    }

    pub async fn put_quotas(&self, plan: &str, q: TrainingQuotas) -> ApiResult<TrainingQuotas> {
        if !(1..=1000).contains(&q.weight) {
            return Err(ApiError::validation("weight", "weight must be 1 to 1000"));
        }
        if q.max_gpus.len() > 64 || q.max_gpus.keys().any(|k| !valid_name(k)) {
            return Err(ApiError::validation(
                "max_gpus",
                "at most 64 GPU types, each a valid gpu_type",
            ));
        }
        let exists = self
            .db
            .query_one_raw(self.stmt("SELECT id FROM plans WHERE id = $1", vec![plan.into()]))
            .await?
            .is_some();
        if !exists {
            return Err(ApiError::not_found(format!(
                "plan `{}`",
                plan.chars().take(64).collect::<String>()
            )));
        }
        let max = serde_json::to_string(&q.max_gpus).unwrap_or_else(|_| "{}".into());
        let sql = "INSERT INTO plan_training_quotas (plan_id, weight, max_gpus, updated_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (plan_id) DO UPDATE SET weight = $2, max_gpus = $3, updated_at = $4";
        self.db
            .execute_raw(self.stmt(
                sql,
                vec![
                    plan.into(),
                    i64::from(q.weight).into(),
                    max.into(),
                    Utc::now().into(),
                ],
            ))
            .await?;
        Ok(q)
    }

    /// Quotas and weights per tenant (from their plans), and the tenants
    /// with queued jobs whose budget is spent.
    pub async fn admission(&self, spend: Option<&Arc<dyn SpendGuard>>) -> ApiResult<StaticQuotas> {
        let mut quotas = StaticQuotas::default();
        let rows = self
            .db
            .query_all_raw(self.stmt(
                "SELECT t.id AS tenant_id, q.weight, q.max_gpus FROM tenants t \
                 JOIN plan_training_quotas q ON q.plan_id = t.plan_id",
                vec![],
            ))
            .await?;
        for r in rows {
            let tenant: String = r.try_get("", "tenant_id")?;
            let weight: i32 = r.try_get("", "weight")?;
            let max: BTreeMap<String, u32> =
                serde_json::from_str(&r.try_get::<String>("", "max_gpus")?).unwrap_or_default();
            quotas
                .weights
                .insert(tenant.clone(), u32::try_from(weight).unwrap_or(1));
            for (t, n) in max {
                quotas.max.insert((tenant.clone(), t), n);
            }
        }
        if let Some(spend) = spend {
            let waiting = self
                .db
                .query_all_raw(self.stmt(
                    "SELECT tenant_id, MIN(id) AS job FROM training_jobs WHERE status = 'queued' GROUP BY tenant_id",
                    vec![],
                ))
                .await?;
            for r in waiting {
                let (Ok(tenant), Ok(job)) = (
                    r.try_get::<String>("", "tenant_id")?.parse::<TenantId>(),
                    r.try_get::<String>("", "job")?.parse::<JobId>(),
                ) else {
                    continue;
                };
                if let Err(ApiError::BudgetExhausted(_)) =
                    spend.check(&TenantCtx::for_job(tenant, job)).await
                {
                    quotas.blocked.insert(tenant.to_string(), "budget");
                }
            }
        }
        Ok(quotas)
    }
}
