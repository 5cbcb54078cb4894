//! Plan prices and invoices: closing a period rates the ledger into one
//! finalized invoice per tenant and period.
//!
//! Which usage an invoice carries: events that happened before its period's
//! end, were recorded by its close time, and were not on the previous
//! invoice (happened before that one's period end and recorded by its close
//! time). Events recorded late for a closed period land on the next invoice
//! as adjustment lines; nothing is billed twice or dropped. The close time
//! trails the clock by a few seconds so that no still-uncommitted event
//! hides behind the watermark.

use crate::entities::{invoice, plan_price};
use crate::rating::{Line, Pricing, UsageTotal};
use chrono::{DateTime, Duration, Utc};
use llmops_core::db::{Db, Scoped, is_unique_violation};
use llmops_core::ids::{InvoiceId, TenantId};
use llmops_core::pagination::{ListParams, Page};
use llmops_core::tenancy::store;
use llmops_core::{ApiError, ApiResult};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    pub description: String,
    pub meter: Option<String>,
    pub quantity: u64,
    pub billable: u64,
    pub amount_minor: i64,
    /// Usage of an earlier, already invoiced period recorded late.
    pub adjustment: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvoiceView {
    /// Always `invoice`.
    pub object: &'static str,
    pub id: InvoiceId,
    pub tenant_id: TenantId,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// `finalized` (immutable), `paid`, `void`.
    pub status: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub total_minor: i64,
    pub lines: Vec<InvoiceLine>,
    pub plan_id: String,
    pub created_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
    /// Pushing it to Stripe (null when Stripe was not configured at close).
    pub stripe: Option<crate::stripe_push::StripePushView>,
}

impl InvoiceView {
    async fn with_push(mut self, billing: &Billing) -> ApiResult<Self> {
        self.stripe = billing
            .push_states(&[self.id.to_string()])
            .await?
            .into_values()
            .next();
        Ok(self)
    }
}

impl TryFrom<invoice::Model> for InvoiceView {
    type Error = ApiError;
    fn try_from(m: invoice::Model) -> ApiResult<Self> {
        #[derive(serde::Deserialize)]
        struct Stored {
            description: String,
            meter: Option<String>,
            quantity: u64,
            billable: u64,
            amount_minor: i64,
            adjustment: bool,
        }
        let lines: Vec<Stored> = serde_json::from_str(&m.lines).map_err(ApiError::internal)?;
        Ok(InvoiceView {
            object: "invoice",
            id: m.id.parse().map_err(ApiError::internal)?,
            tenant_id: m.tenant_id.parse().map_err(ApiError::internal)?,
            period_start: m.period_start,
            period_end: m.period_end,
            status: m.status,
            currency: m.currency,
            subtotal_minor: m.subtotal_minor,
            total_minor: m.total_minor,
            lines: lines
                .into_iter()
                .map(|l| InvoiceLine {
                    description: l.description,
                    meter: l.meter,
                    quantity: l.quantity,
                    billable: l.billable,
                    amount_minor: l.amount_minor,
                    adjustment: l.adjustment,
                })
                .collect(),
            plan_id: m.plan_id,
            created_at: m.created_at,
            finalized_at: m.finalized_at,
            stripe: None,
        })
    }
}

/// The invoice of the open period as it stands: not stored, not final.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DraftInvoice {
    /// Always `invoice`.
    pub object: &'static str,
    /// Always `draft`.
    pub status: &'static str,
    pub tenant_id: TenantId,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub currency: String,
    pub subtotal_minor: i64,
    pub total_minor: i64,
    pub lines: Vec<InvoiceLine>,
    /// The plan the period is priced by (in effect at its start).
    pub plan_id: String,
    /// Usage recorded up to here is included.
    pub usage_through: DateTime<Utc>,
}

/// Per tenant: when it was read, and its budget with the spend (none: no budget).
type SpendCache =
    std::collections::HashMap<TenantId, (std::time::Instant, Option<crate::budgets::BudgetState>)>;

#[derive(Clone)]
pub struct Billing {
    db: Db,
    spend_cache: std::sync::Arc<std::sync::Mutex<SpendCache>>,
    spend_ttl: std::time::Duration,
    http: reqwest::Client,
    tasks: tokio_util::task::TaskTracker,
    stripe_secret: Option<std::sync::Arc<Vec<u8>>>,
    pub(crate) stripe: Option<crate::stripe_push::StripeSync>,
    period: crate::periods::PeriodLength,
    /// How far the close time trails the clock: longer than any ledger
    /// transaction, so no event commits behind the watermark.
    settle: Duration,
}

/// Prices of a plan without any: nothing is charged.
fn pricing_free() -> Pricing {
    Pricing {
        currency: crate::rating::Currency::usd(),
        base_fee_minor: 0,
        components: Vec::new(),
    }
}

impl Billing {
    /// `settle_secs`: how far invoice close times trail the clock;
    /// `spend_cache_secs`: how long a replica reuses a tenant's computed
    /// spend when checking its budget.
    pub fn new(db: Db, settle_secs: u64, spend_cache_secs: u64) -> Self {
        Self {
            db,
            spend_cache: Default::default(),
            spend_ttl: std::time::Duration::from_secs(spend_cache_secs),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            tasks: tokio_util::task::TaskTracker::new(),
            stripe_secret: None,
            stripe: None,
            period: crate::periods::PeriodLength::CalendarMonth,
            settle: Duration::seconds(i64::try_from(settle_secs).unwrap_or(5)),
        }
    }

    /// Billing as configured: settle time, spend cache, period length,
    /// Stripe webhook secret and Stripe push.
    pub fn from_config(db: Db, cfg: &llmops_core::config::Config) -> ApiResult<Self> {
        Self::new(db, cfg.billing_settle_secs, cfg.budget_cache_secs)
            .with_period(crate::periods::PeriodLength::from_secs(
                cfg.billing_period_secs,
            ))
            .with_stripe_webhook_secret(
                cfg.stripe_webhook_secret
                    .as_ref()
                    .map(|s| s.expose().clone()),
            )
            .with_stripe(crate::stripe_push::StripeSettings::from_config(cfg))
    }

    pub async fn set_pricing(&self, plan_id: &str, pricing: Pricing) -> ApiResult<Pricing> {
        pricing
            .validate()
            .map_err(|e| ApiError::validation("pricing", e.to_string()))?;
        store::get_plan(&self.db, plan_id).await?;
        let text = serde_json::to_string(&pricing).map_err(ApiError::internal)?;
        let now = Utc::now();
        let existing = plan_price::Entity::find_by_id(plan_id.to_string())
            .one(&self.db)
            .await?;
        match existing {
            Some(m) => {
                let mut am: plan_price::ActiveModel = m.into();
                am.pricing = Set(text);
                am.updated_at = Set(now);
                am.update(&self.db).await?;
            }
            None => {
                plan_price::ActiveModel {
                    plan_id: Set(plan_id.to_string()),
                    pricing: Set(text),
                    updated_at: Set(now),
                }
                .insert(&self.db)
                .await?;
            }
        }
        Ok(pricing)
    }

    pub async fn pricing(&self, plan_id: &str) -> ApiResult<Option<Pricing>> {
        plan_price::Entity::find_by_id(plan_id.to_string())
            .one(&self.db)
            .await?
            .map(|m| serde_json::from_str(&m.pricing).map_err(ApiError::internal))
            .transpose()
    }

    /// Generates (or returns) the tenant's invoice for `[start, end)`.
    /// Safe to run concurrently on any number of replicas.
    pub async fn close_period(
        &self,
        tenant: TenantId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> ApiResult<InvoiceView> {
        if start >= end {
            return Err(ApiError::validation(
                "period_start",
                "the period must end after it starts",
            ));
        }
        let scope = Scoped::new(tenant);
        if let Some(existing) = scope
            .find::<invoice::Entity>()
            .filter(invoice::Column::PeriodStart.eq(start))
            .one(&self.db)
            .await?
        {
            return self.view(existing).await;
        }
        // Periods close in order and never overlap: usage before an
        // invoice's end is on it or on a later one (as an adjustment), so an
        // earlier or overlapping period would bill some of it twice.
        if let Some(later) = scope
            .find::<invoice::Entity>()
            .filter(invoice::Column::PeriodEnd.gt(start))
            // The same period committed meanwhile by a concurrent close is
            // not a conflict: the insert below returns it.
            .filter(invoice::Column::PeriodStart.ne(start))
            .order_by_desc(invoice::Column::PeriodEnd)
            .one(&self.db)
            .await?
        {
            return Err(ApiError::Conflict(format!(
                "the tenant's invoices already cover up to {}; a period must start there or later",
                later.period_end.to_rfc3339()
            )));
        }
        let close = Utc::now() - self.settle;
        let draft = self.rate_period(tenant, start, end, close).await?;
        let stored: Vec<serde_json::Value> = draft
            .lines
            .iter()
            .map(|l| {
                serde_json::json!({
                    "description": l.description, "meter": l.meter, "quantity": l.quantity,
                    "billable": l.billable, "amount_minor": l.amount_minor, "adjustment": l.adjustment,
                })
            })
            .collect();
        let now = Utc::now();
        let row = invoice::ActiveModel {
            id: Set(InvoiceId::new().to_string()),
            tenant_id: Set(tenant.to_string()),
            period_start: Set(start),
            period_end: Set(end),
            status: Set("finalized".into()),
            currency: Set(draft.currency),
            subtotal_minor: Set(draft.subtotal_minor),
            total_minor: Set(draft.total_minor),
            lines: Set(serde_json::Value::Array(stored).to_string()),
            plan_id: Set(draft.plan_id),
            recorded_through: Set(close),
            created_at: Set(now),
            finalized_at: Set(Some(now)),
        };
        // The invoice and its queued Stripe push commit together.
        let txn = llmops_core::db::begin_write(&self.db).await?;
        match row.insert(&txn).await {
            Ok(m) => {
                // Nothing to collect, nothing to push (free tenants never
                // become Stripe customers).
                if self.stripe.is_some() && m.total_minor != 0 {
                    crate::stripe_push::push_row(&m).insert(&txn).await?;
                }
                txn.commit().await?;
                self.wake_pusher();
                self.view(m).await
            }
            Err(e) if is_unique_violation(&e) => {
                // Give the connection back before reading the winner's
                // invoice: holding it while asking the pool for another
                // starves the pool when many closes race.
                txn.rollback().await?;
                scope
                    .find::<invoice::Entity>()
                    .filter(invoice::Column::PeriodStart.eq(start))
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| ApiError::Internal("invoice vanished".into()))
                    .map(InvoiceView::try_from)??
                    .with_push(self)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What the invoice of `[start, end)` holds with the usage recorded by
    /// `close`: the period's usage priced by the plan in effect at its
    /// start, plus late usage of earlier periods as adjustments.
    async fn rate_period(
        &self,
        tenant: TenantId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        close: DateTime<Utc>,
    ) -> ApiResult<DraftInvoice> {
        // The plan in effect when the period started: a change takes
        // effect at the next boundary.
        let plan_id = store::plan_at(&self.db, tenant, start).await?;
        // A plan with prices also pays its pools' list prices for the
        // training time it does not price itself; a plan without is free.
        let pricing = match self.pricing(&plan_id).await? {
            Some(p) => self.with_pool_prices(p).await?,
            None => pricing_free(),
        };
        let previous = Scoped::new(tenant)
            .find::<invoice::Entity>()
            .filter(invoice::Column::PeriodStart.lt(start))
            .order_by_desc(invoice::Column::PeriodStart)
            .one(&self.db)
            .await?;
        let (current, late) = self
            .usage(tenant, start, end, close, previous.as_ref())
            .await?;
        let rated = pricing
            .rate(&current)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let mut lines: Vec<(Line, bool)> = rated.lines.into_iter().map(|l| (l, false)).collect();
        if !late.is_empty() {
            lines.extend(
                self.adjustments(tenant, &pricing, previous.as_ref(), &late)
                    .await?,
            );
        }
        let subtotal: i64 = lines.iter().map(|(l, _)| l.amount_minor).sum();
        Ok(DraftInvoice {
            object: "invoice",
            status: "draft",
            tenant_id: tenant,
            period_start: start,
            period_end: end,
            currency: String::from(pricing.currency),
            subtotal_minor: subtotal,
            total_minor: subtotal,
            lines: lines
                .into_iter()
                .map(|(l, adjustment)| InvoiceLine {
                    description: l.description,
                    meter: l.meter,
                    quantity: l.quantity,
                    billable: l.billable,
                    amount_minor: l.amount_minor,
                    adjustment,
                })
                .collect(),
            plan_id,
            usage_through: close,
        })
    }

    /// The open period's invoice as it stands (a preview, not stored):
    /// what closing the period now would bill.
    pub async fn upcoming(&self, scope: Scoped) -> ApiResult<DraftInvoice> {
        let tenant = scope.tenant_id();
        let (mut start, end) = self.period.containing(Utc::now());
        // The open period begins where the last invoice ended.
        if let Some(last) = scope
            .find::<invoice::Entity>()
            .order_by_desc(invoice::Column::PeriodStart)
            .one(&self.db)
            .await?
        {
            if last.period_end >= end {
                return Err(ApiError::not_found("upcoming invoice"));
            }
            start = std::cmp::max(start, last.period_end);
        }
        self.rate_period(tenant, start, end, Utc::now()).await
    }

    /// Late usage priced at the margin: what the previous invoice's usage
    /// plus the late usage costs, minus what the previous invoice charged
    /// for its usage, per price component (so included units and tiers are
    /// not applied twice).
    async fn adjustments(
        &self,
        tenant: TenantId,
        pricing: &Pricing,
        previous: Option<&invoice::Model>,
        late: &[UsageTotal],
    ) -> ApiResult<Vec<(Line, bool)>> {
        let billed = match previous {
            Some(p) => {
                self.usage_between(tenant, p.period_start, p.period_end, p.recorded_through)
                    .await?
            }
            None => Vec::new(),
        };
        let no_base = Pricing {
            base_fee_minor: 0,
            ..pricing.clone()
        };
        let mut with_late = billed.clone();
        with_late.extend(late.iter().cloned());
        let before = no_base
            .rate(&billed)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let after = no_base
            .rate(&with_late)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let mut out = Vec::new();
        for mut line in after.lines {
            let prior = before
                .lines
                .iter()
                .find(|l| l.description == line.description && l.meter == line.meter);
            let (q0, b0, a0) =
                prior.map_or((0, 0, 0), |l| (l.quantity, l.billable, l.amount_minor));
            line.quantity -= q0;
            line.billable -= b0;
            line.amount_minor -= a0;
            if line.quantity == 0 {
                continue;
            }
            line.description = format!("Adjustment, usage recorded late: {}", line.description);
            out.push((line, true));
        }
        Ok(out)
    }

    /// Usage that happened in `[start, end)` and was recorded by `through`.
    pub(crate) async fn usage_between(
        &self,
        tenant: TenantId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        through: DateTime<Utc>,
    ) -> ApiResult<Vec<UsageTotal>> {
        let backend = self.db.get_database_backend();
        let sql = "SELECT meter, dimensions, CAST(SUM(quantity) AS BIGINT) AS quantity FROM usage_events \
                   WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND recorded_at <= $4 \
                   GROUP BY meter, dimensions";
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    tenant.to_string().into(),
                    start.into(),
                    end.into(),
                    through.into(),
                ],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                let dims: String = r.try_get("", "dimensions")?;
                Ok(UsageTotal {
                    meter: r.try_get("", "meter")?,
                    dimensions: serde_json::from_str::<BTreeMap<String, String>>(&dims)
                        .unwrap_or_default(),
                    quantity: u64::try_from(r.try_get::<i64>("", "quantity")?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// `(this period's usage, late usage of earlier periods)` for an invoice.
    async fn usage(
        &self,
        tenant: TenantId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        close: DateTime<Utc>,
        previous: Option<&invoice::Model>,
    ) -> ApiResult<(Vec<UsageTotal>, Vec<UsageTotal>)> {
        let backend = self.db.get_database_backend();
        let mut sql = String::from(
            "SELECT meter, dimensions, CASE WHEN occurred_at < $2 THEN 1 ELSE 0 END AS late, \
             CAST(SUM(quantity) AS BIGINT) AS quantity FROM usage_events \
             WHERE tenant_id = $1 AND occurred_at < $3 AND recorded_at <= $4",
        );
        let mut values: Vec<sea_orm::Value> = vec![
            tenant.to_string().into(),
            start.into(),
            end.into(),
            close.into(),
        ];
        if let Some(p) = previous {
            sql.push_str(" AND NOT (occurred_at < $5 AND recorded_at <= $6)");
            values.push(p.period_end.into());
            values.push(p.recorded_through.into());
        }
        sql.push_str(" GROUP BY meter, dimensions, 3");
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let (mut current, mut late) = (Vec::new(), Vec::new());
        for r in rows {
            let dims: String = r.try_get("", "dimensions")?;
            let total = UsageTotal {
                meter: r.try_get("", "meter")?,
                dimensions: serde_json::from_str::<BTreeMap<String, String>>(&dims)
                    .unwrap_or_default(),
                quantity: u64::try_from(r.try_get::<i64>("", "quantity")?).unwrap_or(0),
            };
            let is_late: i64 = r
                .try_get::<i32>("", "late")
                .map(i64::from)
                .or_else(|_| r.try_get::<i64>("", "late"))?;
            if is_late == 1 {
                late.push(total);
            } else {
                current.push(total);
            }
        }
        Ok((current, late))
    }

    pub async fn list_invoices(
        &self,
        scope: Scoped,
        params: &ListParams,
    ) -> ApiResult<Page<InvoiceView>> {
        let limit = params.limit()?;
        let mut q = scope
            .find::<invoice::Entity>()
            .order_by_asc(invoice::Column::Id);
        if let Some(after) = &params.after {
            let after: InvoiceId = after.parse()?;
            q = q.filter(invoice::Column::Id.gt(after.to_string()));
        }
        let rows = q.limit(limit + 1).all(&self.db).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut pushes = self.push_states(&ids).await?;
        let views = rows
            .into_iter()
            .map(|r| {
                let push = pushes.remove(&r.id);
                InvoiceView::try_from(r).map(|mut v| {
                    v.stripe = push;
                    v
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Page::from_rows(views, limit, |i| i.id.to_string()))
    }

    pub async fn get_invoice(&self, scope: Scoped, id: &str) -> ApiResult<InvoiceView> {
        let id: InvoiceId = id.parse()?;
        scope
            .find::<invoice::Entity>()
            .filter(invoice::Column::Id.eq(id.to_string()))
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::not_found("invoice"))
            .map(|m| self.view(m))?
            .await
    }

    /// An invoice's view with its Stripe push state.
    pub(crate) async fn view(&self, m: invoice::Model) -> ApiResult<InvoiceView> {
        InvoiceView::try_from(m)?.with_push(self).await
    }

    /// Accepts Stripe webhooks signed with this secret.
    pub fn with_stripe_webhook_secret(mut self, secret: Option<String>) -> Self {
        self.stripe_secret = secret.map(|s| std::sync::Arc::new(s.into_bytes()));
        self
    }

    pub(crate) fn stripe_secret(&self) -> Option<&[u8]> {
        self.stripe_secret.as_deref().map(Vec::as_slice)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The tenant's budget and spend, reused for `spend_ttl`: inference
    /// calls of tenants without a budget cost no database read meanwhile.
    pub(crate) async fn cached_budget(
        &self,
        tenant: TenantId,
    ) -> ApiResult<Option<crate::budgets::BudgetState>> {
        if let Ok(c) = self.spend_cache.lock()
            && let Some((at, v)) = c.get(&tenant)
            && at.elapsed() < self.spend_ttl
        {
            return Ok(v.clone());
        }
        let v = self.budget_state(tenant).await?;
        if let Ok(mut c) = self.spend_cache.lock() {
            c.insert(tenant, (std::time::Instant::now(), v.clone()));
        }
        Ok(v)
    }

    /// The cached budget of `tenant` was notified for `period`.
    pub(crate) fn remember_notified(&self, tenant: TenantId, period: &str) {
        if let Ok(mut c) = self.spend_cache.lock()
            && let Some((_, Some(state))) = c.get_mut(&tenant)
        {
            state.budget.notified_period = Some(period.to_string());
        }
    }

    pub(crate) fn forget_spend(&self, tenant: TenantId) {
        if let Ok(mut c) = self.spend_cache.lock() {
            c.remove(&tenant);
        }
    }

    /// POSTs a notification in the background, retried 3 times.
    pub(crate) fn notify(&self, url: String, body: serde_json::Value) {
        let http = self.http.clone();
        self.tasks.spawn(async move {
            for attempt in 0..3u32 {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => tracing::warn!(status = %r.status(), "budget webhook refused"),
                    Err(e) => tracing::warn!(error = %e, "budget webhook failed"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(500 * 2u64.pow(attempt))).await;
            }
        });
    }

    /// Waits for pending notifications (at shutdown).
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub async fn tenant_name(&self, id: TenantId) -> ApiResult<String> {
        Ok(store::get_tenant(&self.db, id).await?.name)
    }

    /// Voids an unpaid invoice (operator). A paid one is refused (409).
    pub async fn void_invoice(&self, id: &str) -> ApiResult<InvoiceView> {
        let id: InvoiceId = id.parse()?;
        let row = invoice::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::not_found("invoice"))?;
        if row.status == "void" {
            return self.view(row).await;
        }
        if row.status == "paid" {
            return Err(ApiError::Conflict("a paid invoice cannot be voided".into()));
        }
        // Stripe first: the invoice stays collectible there until voided.
        self.void_at_stripe(&row).await?;
        let changed = self.settle_unpaid(&id.to_string(), "void").await?;
        let row = invoice::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::not_found("invoice"))?;
        if changed == 0 && row.status != "void" {
            return Err(ApiError::Conflict(format!(
                "a {} invoice cannot be voided",
                row.status
            )));
        }
        self.view(row).await
    }

    /// Moves an unpaid invoice (`finalized` or `payment_failed`) to
    /// `status`; 0 when it is not unpaid (a paid invoice stays paid).
    pub(crate) async fn settle_unpaid(&self, id: &str, status: &str) -> ApiResult<u64> {
        Ok(invoice::Entity::update_many()
            .col_expr(
                invoice::Column::Status,
                sea_orm::sea_query::Expr::value(status),
            )
            .filter(invoice::Column::Id.eq(id))
            .filter(invoice::Column::Status.is_in(["finalized", "payment_failed"]))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Sets the length of billing periods.
    pub fn with_period(mut self, period: crate::periods::PeriodLength) -> Self {
        self.period = period;
        self
    }

    pub fn period(&self) -> crate::periods::PeriodLength {
        self.period
    }

    /// Closes every ended period not invoiced yet, per tenant in order from
    /// its last invoice (or its creation); at most 24 periods per tenant per
    /// call, so a long outage catches up over a few rounds.
    pub async fn close_ended_periods(&self) -> ApiResult<usize> {
        let (current, _) = self.period.containing(Utc::now() - self.settle);
        let mut closed = 0;
        // Where each tenant's invoices end, in one query.
        let backend = self.db.get_database_backend();
        let ends: std::collections::HashMap<String, DateTime<Utc>> = self
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT tenant_id, MAX(period_end) AS period_end FROM invoices GROUP BY tenant_id",
            ))
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String>("", "tenant_id")?,
                    r.try_get::<DateTime<Utc>>("", "period_end")?,
                ))
            })
            .collect::<Result<_, sea_orm::DbErr>>()?;
        for (tenant, created) in self.tenants_created().await? {
            let mut start = match ends.get(&tenant.to_string()) {
                Some(end) => *end,
                None => self.period.containing(created).0,
            };
            for _ in 0..24 {
                if start >= current {
                    break;
                }
                let (_, end) = self.period.containing(start);
                self.close_period(tenant, start, end).await?;
                closed += 1;
                start = end;
            }
        }
        Ok(closed)
    }

    /// Runs [`Self::close_ended_periods`] until `stop`.
    pub async fn run_period_closer(&self, stop: tokio_util::sync::CancellationToken) {
        let every = self.period.check_every();
        loop {
            match self.close_ended_periods().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(invoices = n, "closed ended billing periods"),
                Err(e) => {
                    tracing::warn!(error = %e, "closing ended billing periods failed; will retry")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn tenants_created(&self) -> ApiResult<Vec<(TenantId, DateTime<Utc>)>> {
        let mut out = Vec::new();
        let mut params = ListParams {
            limit: Some(100),
            after: None,
        };
        loop {
            let page = store::list_tenants(&self.db, &params).await?;
            out.extend(page.data.iter().map(|t| (t.id, t.created_at)));
            if !page.has_more {
                return Ok(out);
            }
            params.after = page.last_id;
        }
    }

    /// Every tenant's id (for closing a period for all).
    pub async fn tenants(&self) -> ApiResult<Vec<TenantId>> {
        Ok(self
            .tenants_created()
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02} {}", m / 100, m % 100, escape(currency))
}

/// A printable HTML rendering of an invoice.
pub fn render_html(inv: &InvoiceView, tenant_name: &str) -> String {
    let rows: String = inv
        .lines
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                escape(&l.description),
                l.quantity,
                l.billable,
                money(l.amount_minor, &inv.currency)
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Invoice {id}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 12px;border-bottom:1px solid #ddd}}.n{{text-align:right}}</style></head>\
         <body><h1>Invoice {id}</h1><p>{tenant}<br>Period {start} to {end}<br>Status: {status}</p>\
         <table><tr><th>Item</th><th class=n>Quantity</th><th class=n>Billable</th><th class=n>Amount</th></tr>{rows}\
         <tr><th colspan=3>Total</th><th class=n>{total}</th></tr></table></body></html>",
        id = inv.id,
        tenant = escape(tenant_name),
        start = inv.period_start.format("%Y-%m-%d"),
        end = inv.period_end.format("%Y-%m-%d"),
        status = escape(&inv.status),
        total = money(inv.total_minor, &inv.currency),
    )
}
