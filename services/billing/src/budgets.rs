//! Monthly spend limits: 402 once the current period's rated usage reaches
//! the limit; a webhook, once per period, when a soft threshold is crossed.

use crate::invoices::Billing;
use chrono::Utc;
use llmops_core::ids::TenantId;
use llmops_core::tenancy::store;
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "budgets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub limit_minor: i64,
        pub soft_percent: Option<i32>,
        pub webhook_url: Option<String>,
        /// `YYYY-MM` of the last soft-threshold notification.
        pub notified_period: Option<String>,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Monthly limit of rated usage, in the plan's currency's minor units.
    #[schema(minimum = 0)]
    pub limit_minor: i64,
    /// Notify once per period when spend reaches this percentage (1–100).
    #[schema(minimum = 1, maximum = 100)]
    pub soft_percent: Option<i32>,
    /// Where the notification is POSTed (JSON).
    #[schema(schema_with = llmops_core::schema::http_url_opt)]
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// Always `budget`.
    pub object: &'static str,
    pub limit_minor: i64,
    pub soft_percent: Option<i32>,
    pub webhook_url: Option<String>,
    /// Rated usage of the current calendar month so far.
    pub spend_minor: i64,
    pub currency: String,
}

/// A budget with the current spend against it.
#[derive(Debug, Clone)]
pub(crate) struct BudgetState {
    pub budget: entity::Model,
    pub spend: i64,
    pub currency: String,
}

impl Billing {
    /// The rated usage of the current billing period (no base fee), priced
    /// by the plan in effect at its start (as its invoice will be).
    pub async fn spend(&self, tenant: TenantId) -> ApiResult<(i64, String)> {
        let now = Utc::now();
        let (start, _) = self.period().containing(now);
        let plan = store::plan_at(self.db(), tenant, start).await?;
        let pricing = self.pricing(&plan).await?;
        let Some(pricing) = pricing else {
            return Ok((0, "USD".into()));
        };
        let pricing = self.with_pool_prices(pricing).await?;
        let usage = self
            .usage_between(
                tenant,
                start,
                now + chrono::Duration::days(1),
                now + chrono::Duration::days(1),
            )
            .await?;
        let rated = crate::rating::Pricing {
            base_fee_minor: 0,
            ..pricing.clone()
        }
        .rate(&usage)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
        Ok((rated.subtotal_minor, String::from(pricing.currency)))
    }

    pub(crate) async fn budget_state(&self, tenant: TenantId) -> ApiResult<Option<BudgetState>> {
        let Some(budget) = entity::Entity::find_by_id(tenant.to_string())
            .one(self.db())
            .await?
        else {
            return Ok(None);
        };
        let (spend, currency) = self.spend(tenant).await?;
        Ok(Some(BudgetState {
            budget,
            spend,
            currency,
        }))
    }

    pub async fn set_budget(&self, ctx: &TenantCtx, b: Budget) -> ApiResult<BudgetView> {
        ctx.require(Scope::Admin)?;
        if b.limit_minor < 0 {
            return Err(ApiError::validation("limit_minor", "must not be negative"));
        }
        if b.soft_percent.is_some_and(|p| !(1..=100).contains(&p)) {
            return Err(ApiError::validation("soft_percent", "1 to 100"));
        }
        let http_url = |u: &str| {
            u.strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
                && u.chars().count() <= 2048
        };
        if let Some(u) = &b.webhook_url
            && !http_url(u)
        {
            return Err(ApiError::validation(
                "webhook_url",
                "an http(s) URL without spaces, at most 2048 characters",
            ));
        }
        let tid = ctx.tenant_id().to_string();
        let now = Utc::now();
        match entity::Entity::find_by_id(tid.clone())
            .one(self.db())
            .await?
        {
            Some(m) => {
                let mut am: entity::ActiveModel = m.into();
                am.limit_minor = Set(b.limit_minor);
                am.soft_percent = Set(b.soft_percent);
                am.webhook_url = Set(b.webhook_url.clone());
                am.updated_at = Set(now);
                am.update(self.db()).await?;
            }
            None => {
                entity::ActiveModel {
                    tenant_id: Set(tid),
                    limit_minor: Set(b.limit_minor),
                    soft_percent: Set(b.soft_percent),
                    webhook_url: Set(b.webhook_url.clone()),
                    notified_period: Set(None),
                    updated_at: Set(now),
                }
                .insert(self.db())
                .await?;
            }
        }
        self.forget_spend(ctx.tenant_id());
        self.get_budget(ctx).await
    }

    pub async fn get_budget(&self, ctx: &TenantCtx) -> ApiResult<BudgetView> {
        ctx.require(Scope::BillingRead)?;
        let BudgetState {
            budget: b,
            spend,
            currency,
        } = self
            .budget_state(ctx.tenant_id())
            .await?
            .ok_or_else(|| ApiError::not_found("budget"))?;
        Ok(BudgetView {
            object: "budget",
            limit_minor: b.limit_minor,
            soft_percent: b.soft_percent,
            webhook_url: b.webhook_url,
            spend_minor: spend,
            currency,
        })
    }

    /// 402 when the budget is spent; the soft-threshold webhook once per period.
    pub async fn check_budget(&self, ctx: &TenantCtx) -> ApiResult<()> {
        let tenant = ctx.tenant_id();
        let Some(BudgetState {
            budget: b,
            spend,
            currency,
        }) = self.cached_budget(tenant).await?
        else {
            return Ok(());
        };
        if spend >= b.limit_minor {
            return Err(ApiError::BudgetExhausted(format!(
                "this month's spend ({spend} {currency} minor units) reached the budget of {}; raise it or wait for the next period",
                b.limit_minor
            )));
        }
        if let (Some(pct), Some(url)) = (b.soft_percent, b.webhook_url.clone())
            && i128::from(spend) * 100 >= i128::from(b.limit_minor) * i128::from(pct)
        {
            // The period's start as Unix seconds (fits the 16-char marker).
            let period = self
                .period()
                .containing(Utc::now())
                .0
                .timestamp()
                .to_string();
            // Known to be notified for this period (here or by another
            // replica): nothing to do, and no write on every request.
            if b.notified_period.as_deref() == Some(period.as_str()) {
                return Ok(());
            }
            // One notification per period across replicas: whoever flips the marker sends it.
            let claimed = entity::Entity::update_many()
                .col_expr(entity::Column::NotifiedPeriod, Expr::value(period.clone()))
                .filter(entity::Column::TenantId.eq(tenant.to_string()))
                .filter(
                    sea_orm::Condition::any()
                        .add(entity::Column::NotifiedPeriod.is_null())
                        .add(entity::Column::NotifiedPeriod.ne(period.clone())),
                )
                .exec(self.db())
                .await?
                .rows_affected
                == 1;
            self.remember_notified(tenant, &period);
            if claimed {
                let body = serde_json::json!({
                    "type": "budget.threshold_reached", "tenant_id": tenant.to_string(), "period": period,
                    "spend_minor": spend, "limit_minor": b.limit_minor, "soft_percent": pct, "currency": currency,
                });
                self.notify(url, body);
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl llmops_core::limits::SpendGuard for Billing {
    async fn check(&self, ctx: &TenantCtx) -> ApiResult<()> {
        self.check_budget(ctx).await
    }

    async fn budget_use(&self, tenant: llmops_core::ids::TenantId) -> Option<(i64, i64)> {
        match self.budget_state(tenant).await {
            Ok(Some(s)) => Some((s.spend, s.budget.limit_minor)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "budget use not read");
                None
            }
        }
    }

    async fn quote_for(
        &self,
        tenant: llmops_core::ids::TenantId,
        model: &str,
        usages: &[&[(&str, u64)]],
    ) -> Vec<Option<llmops_core::limits::Quote>> {
        let pricing = match store::plan_at(self.db(), tenant, Utc::now()).await {
            Ok(plan) => self.pricing(&plan).await.ok().flatten(),
            Err(_) => None,
        };
        let dims = std::collections::BTreeMap::from([("model".to_string(), model.to_string())]);
        usages
            .iter()
            .map(|usage| {
                let p = pricing.as_ref()?;
                let nano = p.list_price_nano(&dims, usage)?;
                Some(llmops_core::limits::Quote {
                    currency: String::from(p.currency.clone()),
                    minor: nano as f64 / 1e9,
                })
            })
            .collect()
    }
}
