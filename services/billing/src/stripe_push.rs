//! Pushing finalized invoices to Stripe.
//!
//! The shape is the one Stripe usage billing commonly has: each tenant is a
//! Stripe customer with one subscription carrying its plan's base fee; the
//! invoice's usage lines become invoice items, and the Stripe invoice is
//! created for the subscription (pulling those items in) and finalized.
//!
//! Exactly-once on our side, whatever the server does with idempotency
//! keys: every call carries a key derived from our ids, every object
//! created is recorded (`stripe_customers`, `stripe_objects`) before the
//! next step, and before creating anything a push looks for an object a
//! crashed attempt may have created without recording it (customers,
//! subscriptions and invoice items by metadata, invoices by metadata or
//! description). A tenant's invoices are pushed in period order, one at a
//! time (a lease in `stripe_pushes`), so one invoice never pulls in another
//! one's items. Failures are retried with exponential backoff; the state
//! (`pending`, `retrying`, `pushed`, `failed`, attempts, last error) is part
//! of the invoice's JSON.

mod objects;

use crate::entities::{invoice, stripe_customer, stripe_object, stripe_push};
use crate::invoices::{Billing, InvoiceView};
use chrono::{DateTime, Duration, Utc};
use llmops_core::db::is_unique_violation;
use llmops_core::ids::TenantId;
use llmops_core::tenancy::store;
use llmops_core::{ApiError, ApiResult};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, ExprTrait as _, QueryFilter,
    QueryOrder, QuerySelect,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::invoice::{
    CreateInvoice, CreateInvoicePendingInvoiceItemsBehavior, FinalizeInvoiceInvoice, ListInvoice,
};
use stripe_billing::invoice_item::{CreateInvoiceItem, ListInvoiceItem};
use stripe_billing::plan::{
    CreatePlan, CreatePlanInlineProductParams, CreatePlanProduct, RetrievePlan,
};
use stripe_billing::subscription::{
    CancelSubscription, CreateSubscription, CreateSubscriptionItems, CreateSubscriptionTrialEnd,
    ListSubscription,
};
use stripe_core::customer::{CreateCustomer, ListCustomer, SearchCustomer};

/// Per Stripe call.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// How often an idle pusher looks for due pushes (it is also woken when
/// this replica closes a period).
const POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// How to reach Stripe.
#[derive(Clone, Debug)]
pub struct StripeSettings {
    pub api_key: String,
    /// `https://api.stripe.com/` unless set (a test server).
    pub api_base: Option<String>,
    pub max_attempts: u32,
    /// How long a replica owns an invoice's push.
    pub lease_secs: u64,
    /// Pushes a replica runs at once.
    pub workers: u32,
}

impl StripeSettings {
    /// From `stripe_api_key` / `stripe_api_base`; none without a key.
    pub fn from_config(cfg: &llmops_core::config::Config) -> Option<Self> {
        cfg.stripe_api_key.as_ref().map(|k| Self {
            api_key: k.expose().clone(),
            api_base: cfg.stripe_api_base.clone(),
            max_attempts: cfg.stripe_max_attempts,
            lease_secs: cfg.stripe_lease_secs,
            workers: cfg.stripe_push_workers,
        })
    }
}

#[derive(Clone)]
pub(crate) struct StripeSync {
    client: stripe::Client,
    max_attempts: u32,
    lease: Duration,
    workers: u32,
    wake: Arc<tokio::sync::Notify>,
}

impl StripeSync {
    pub(crate) fn new(s: StripeSettings) -> ApiResult<Self> {
        let mut b = stripe::ClientBuilder::new(s.api_key).app_info(
            "llmops",
            Some(env!("CARGO_PKG_VERSION").into()),
            None,
        );
        if let Some(base) = s.api_base {
            let base = if base.ends_with('/') {
                base
            } else {
                format!("{base}/")
            };
            b = b.url(base);
        }
        Ok(Self {
            client: b.build().map_err(ApiError::internal)?,
            max_attempts: std::cmp::max(s.max_attempts, 1),
            lease: Duration::seconds(i64::try_from(s.lease_secs).unwrap_or(120)),
            workers: s.workers.clamp(1, 64),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }
}

/// The push state shown on an invoice.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct StripePushView {
    /// `pending`, `retrying` (an attempt failed; another is due at
    /// `next_attempt_at`), `pushed`, `failed` (attempts exhausted or refused
    /// by Stripe; an operator can retry), `canceled` (voided before it was
    /// pushed), `voided` (voided at Stripe too).
    pub status: String,
    pub stripe_invoice_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub pushed_at: Option<DateTime<Utc>>,
}

impl From<stripe_push::Model> for StripePushView {
    fn from(m: stripe_push::Model) -> Self {
        let due = matches!(m.status.as_str(), "pending" | "retrying");
        Self {
            status: m.status,
            stripe_invoice_id: m.stripe_invoice_id,
            attempts: m.attempts,
            last_error: m.last_error,
            next_attempt_at: m.next_attempt_at.filter(|_| due),
            pushed_at: m.pushed_at,
        }
    }
}

// What we read of Stripe's objects. The generated types of async-stripe
// follow today's API and require fields an older server (localstripe) does
// not send, so responses are read into these lenient views; requests use
// async-stripe's typed builders.

/// Any Stripe object: the fields we read (invoices have them all).
#[derive(miniserde::Deserialize, Debug)]
struct Obj {
    id: String,
    metadata: Option<BTreeMap<String, String>>,
    status: Option<String>,
    total: Option<i64>,
    description: Option<String>,
    lines: Option<LineList>,
}

#[derive(miniserde::Deserialize, Debug)]
struct LineList {
    data: Vec<LineObj>,
}

/// An invoice line: `type` in older API versions (and localstripe),
/// `parent.type` in current ones.
#[derive(miniserde::Deserialize, Debug)]
struct LineObj {
    #[serde(rename = "type")]
    kind: Option<String>,
    parent: Option<LineParent>,
}

#[derive(miniserde::Deserialize, Debug)]
struct LineParent {
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Obj {
    /// Whether an invoice carries its subscription's fee as a line.
    fn has_subscription_line(&self) -> bool {
        self.lines.iter().flat_map(|l| &l.data).any(|l| {
            l.kind.as_deref() == Some("subscription")
                || l.parent.as_ref().and_then(|p| p.kind.as_deref())
                    == Some("subscription_item_details")
        })
    }

    fn meta_is(&self, key: &str, value: &str) -> bool {
        self.metadata
            .as_ref()
            .and_then(|m| m.get(key))
            .is_some_and(|v| v == value)
    }
}

#[derive(miniserde::Deserialize, Debug)]
struct ObjList {
    data: Vec<Obj>,
    has_more: bool,
}

/// Walks a Stripe list page by page until `visit` says stop (true) or the
/// list ends; `page(after)` builds the request for the page after `after`.
async fn walk_list(
    sync: &StripeSync,
    page: impl Fn(Option<String>) -> stripe_client_core::RequestBuilder,
    mut visit: impl FnMut(Obj) -> bool,
) -> Result<(), PushError> {
    let mut after: Option<String> = None;
    loop {
        let list: ObjList = page(after.take())
            .customize()
            .timeout(CALL_TIMEOUT)
            .send(&sync.client)
            .await?;
        let has_more = list.has_more;
        let mut last = None;
        for o in list.data {
            last = Some(o.id.clone());
            if visit(o) {
                return Ok(());
            }
        }
        match last {
            Some(l) if has_more => after = Some(l),
            _ => return Ok(()),
        }
    }
}

/// The first object of a Stripe list that `pick` accepts.
async fn find_in_list(
    sync: &StripeSync,
    page: impl Fn(Option<String>) -> stripe_client_core::RequestBuilder,
    pick: impl Fn(&Obj) -> bool,
) -> Result<Option<Obj>, PushError> {
    let mut found = None;
    walk_list(sync, page, |o| {
        let hit = pick(&o);
        if hit {
            found = Some(o);
        }
        hit
    })
    .await?;
    Ok(found)
}

/// Why a push attempt stopped.
#[derive(Debug)]
pub(crate) enum PushError {
    /// Worth another attempt later (network, 5xx, 429, our database).
    Retry(String),
    /// Refused by Stripe or inconsistent: retrying unchanged will not help.
    Fail(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Retry(m) | PushError::Fail(m) => f.write_str(m),
        }
    }
}

impl From<StripeError> for PushError {
    fn from(e: StripeError) -> Self {
        match &e {
            StripeError::Stripe(err, status)
                if (400..500).contains(status) && *status != 409 && *status != 429 =>
            {
                PushError::Fail(format!(
                    "Stripe refused the request ({status}): {}",
                    err.message.as_deref().unwrap_or("no message")
                ))
            }
            StripeError::Stripe(err, status) => PushError::Retry(format!(
                "Stripe answered {status}: {}",
                err.message.as_deref().unwrap_or("no message")
            )),
            other => PushError::Retry(format!("Stripe unreachable: {other}")),
        }
    }
}

impl From<ApiError> for PushError {
    fn from(e: ApiError) -> Self {
        PushError::Retry(format!("internal: {e}"))
    }
}

impl From<sea_orm::DbErr> for PushError {
    fn from(e: sea_orm::DbErr) -> Self {
        PushError::Retry(format!("database: {e}"))
    }
}

fn key(k: String) -> Result<RequestStrategy, PushError> {
    IdempotencyKey::new(k)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| PushError::Fail(e.to_string()))
}

fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Test hook: `FAILPOINTS=name[,name]` aborts the process at that point,
/// the way a crash or a kill would (the naming follows the `fail` crate).
fn failpoint(name: &str) {
    if std::env::var("FAILPOINTS")
        .map(|v| v.split(',').any(|p| p.trim() == name))
        .unwrap_or(false)
    {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}

/// A queued push of an invoice, due now.
pub(crate) fn push_row(inv: &invoice::Model) -> stripe_push::ActiveModel {
    let now = Utc::now();
    stripe_push::ActiveModel {
        invoice_id: Set(inv.id.clone()),
        tenant_id: Set(inv.tenant_id.clone()),
        period_start: Set(inv.period_start),
        status: Set("pending".into()),
        stripe_invoice_id: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        next_attempt_at: Set(Some(now)),
        lease_until: Set(None),
        pushed_at: Set(None),
        updated_at: Set(now),
    }
}

fn backoff(attempts: u32) -> Duration {
    let secs = std::cmp::min(2u64.saturating_pow(std::cmp::min(attempts, 12)), 3_600);
    Duration::seconds(i64::try_from(secs).unwrap_or(3_600))
}

impl Billing {
    /// Pushes finalized invoices to Stripe (a secret key is required).
    pub fn with_stripe(mut self, settings: Option<StripeSettings>) -> ApiResult<Self> {
        self.stripe = settings.map(StripeSync::new).transpose()?;
        Ok(self)
    }

    /// Wakes this replica's pusher (work was queued).
    pub(crate) fn wake_pusher(&self) {
        if let Some(sync) = &self.stripe {
            sync.wake.notify_waiters();
            sync.wake.notify_one();
        }
    }

    /// The push state of invoices, by invoice id.
    pub(crate) async fn push_states(
        &self,
        ids: &[String],
    ) -> ApiResult<HashMap<String, StripePushView>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(stripe_push::Entity::find()
            .filter(stripe_push::Column::InvoiceId.is_in(ids.iter().cloned()))
            .all(self.db())
            .await?
            .into_iter()
            .map(|m| (m.invoice_id.clone(), m.into()))
            .collect())
    }

    /// Queues (again) an invoice's push: a `failed` one starts over with
    /// fresh attempts; a pushed one is left alone; a void one is refused.
    pub async fn retry_push(&self, id: &str) -> ApiResult<InvoiceView> {
        if self.stripe.is_none() {
            return Err(ApiError::NotConfigured(
                "Stripe is not configured on this server (set stripe_api_key / LLMOPS_STRIPE_API_KEY)"
                    .into(),
            ));
        }
        let id: llmops_core::ids::InvoiceId = id.parse()?;
        let inv = invoice::Entity::find_by_id(id.to_string())
            .one(self.db())
            .await?
            .ok_or_else(|| ApiError::not_found("invoice"))?;
        if inv.status == "void" {
            return Err(ApiError::Conflict("a void invoice is not pushed".into()));
        }
        let existing = stripe_push::Entity::find_by_id(inv.id.clone())
            .one(self.db())
            .await?;
        match existing {
            None => match push_row(&inv).insert(self.db()).await {
                Ok(_) => self.wake_pusher(),
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(e.into()),
            },
            Some(p) if p.status == "pushed" => {}
            Some(_) => {
                stripe_push::Entity::update_many()
                    .col_expr(stripe_push::Column::Status, Expr::value("pending"))
                    .col_expr(stripe_push::Column::Attempts, Expr::value(0))
                    .col_expr(stripe_push::Column::NextAttemptAt, Expr::value(Utc::now()))
                    .col_expr(stripe_push::Column::UpdatedAt, Expr::value(Utc::now()))
                    .filter(stripe_push::Column::InvoiceId.eq(inv.id.clone()))
                    .filter(stripe_push::Column::Status.is_in(["pending", "retrying", "failed"]))
                    .exec(self.db())
                    .await?;
                self.wake_pusher();
            }
        }
        self.view(inv).await
    }

    /// Before voiding an invoice: a push not done yet is canceled (and
    /// what an earlier attempt created at Stripe is removed); a pushed one
    /// is voided at Stripe first. Refused (409) while a push runs or when
    /// Stripe has it paid; 503 while Stripe cannot be reached.
    pub(crate) async fn void_at_stripe(&self, inv: &invoice::Model) -> ApiResult<()> {
        let Some(p) = stripe_push::Entity::find_by_id(inv.id.clone())
            .one(self.db())
            .await?
        else {
            return Ok(());
        };
        if matches!(p.status.as_str(), "canceled" | "voided") {
            return Ok(());
        }
        let Some(sync) = self.stripe.clone() else {
            return Err(ApiError::Conflict(
                "the invoice went to Stripe, which is no longer configured: it cannot be voided there".into(),
            ));
        };
        let unavailable = |e: PushError| {
            tracing::warn!(error = %e, invoice = %inv.id, "voiding at Stripe failed");
            match e {
                PushError::Fail(m) => ApiError::Conflict(m),
                PushError::Retry(_) => ApiError::Unavailable {
                    dependency: "Stripe".into(),
                    retry_after_secs: 5,
                },
            }
        };
        // Take the push over first, so no pusher starts on it meanwhile.
        if !self.take_lease(&sync, &inv.id, None).await? {
            return Err(ApiError::Conflict(
                "the invoice is being pushed to Stripe right now; try again in a moment".into(),
            ));
        }
        let result = self.undo_at_stripe(&sync, inv).await;
        let status = if p.status == "pushed" {
            "voided"
        } else {
            "canceled"
        };
        let mut update = stripe_push::Entity::update_many()
            .col_expr(
                stripe_push::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(stripe_push::Column::UpdatedAt, Expr::value(Utc::now()));
        if result.is_ok() {
            update = update.col_expr(stripe_push::Column::Status, Expr::value(status));
        }
        update
            .filter(stripe_push::Column::InvoiceId.eq(inv.id.clone()))
            .exec(self.db())
            .await?;
        result.map_err(unavailable)
    }

    /// Takes an invoice's push lease unless a live one is held elsewhere
    /// (and, with `statuses`, only while the push is in one of them).
    async fn take_lease(
        &self,
        sync: &StripeSync,
        invoice_id: &str,
        statuses: Option<&[&str]>,
    ) -> ApiResult<bool> {
        let now = Utc::now();
        let mut q = stripe_push::Entity::update_many()
            .col_expr(
                stripe_push::Column::LeaseUntil,
                Expr::value(now + sync.lease),
            )
            .filter(stripe_push::Column::InvoiceId.eq(invoice_id))
            .filter(
                stripe_push::Column::LeaseUntil
                    .is_null()
                    .or(stripe_push::Column::LeaseUntil.lt(now)),
            );
        if let Some(st) = statuses {
            q = q.filter(stripe_push::Column::Status.is_in(st.iter().copied()));
        }
        Ok(q.exec(self.db()).await?.rows_affected == 1)
    }

    /// Voids the Stripe invoice a push created, or deletes its pending items.
    async fn undo_at_stripe(
        &self,
        sync: &StripeSync,
        inv: &invoice::Model,
    ) -> Result<(), PushError> {
        let recorded = stripe_object::Entity::find()
            .filter(stripe_object::Column::InvoiceId.eq(inv.id.clone()))
            .all(self.db())
            .await?;
        if let Some(si) = recorded.iter().find(|o| o.key == "invoice") {
            let current: Obj = stripe_billing::invoice::RetrieveInvoice::new(si.stripe_id.clone())
                .build()
                .customize()
                .timeout(CALL_TIMEOUT)
                .send(&sync.client)
                .await?;
            return match current.status.as_deref() {
                Some("void") => Ok(()),
                Some("paid") => Err(PushError::Fail(format!(
                    "Stripe invoice {} is paid: refund it at Stripe instead",
                    si.stripe_id
                ))),
                _ => {
                    let _: Obj =
                        stripe_billing::invoice::VoidInvoiceInvoice::new(si.stripe_id.clone())
                            .build()
                            .customize()
                            .request_strategy(key(format!("llmops-{}-void", inv.id))?)
                            .timeout(CALL_TIMEOUT)
                            .send(&sync.client)
                            .await?;
                    Ok(())
                }
            };
        }
        // Not invoiced at Stripe: remove the items an attempt left pending.
        for item in recorded.iter().filter(|o| o.key.starts_with("line:")) {
            match stripe_billing::invoice_item::DeleteInvoiceItem::new(item.stripe_id.clone())
                .build()
                .customize::<Obj>()
                .timeout(CALL_TIMEOUT)
                .send(&sync.client)
                .await
            {
                Ok(_) | Err(StripeError::Stripe(_, 404)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Runs pushes until `stop`: woken by closes on this replica, and
    /// polling for work queued elsewhere or due for a retry.
    pub async fn run_stripe_pusher(&self, stop: tokio_util::sync::CancellationToken) {
        let Some(sync) = self.stripe.clone() else {
            return;
        };
        // Workers claim pushes independently (the lease decides); a
        // tenant's next invoice only becomes due once its previous one is
        // through, so no two workers ever push for one tenant at once.
        let workers = (0..sync.workers).map(|_| self.push_loop(&sync, stop.clone()));
        futures_util::future::join_all(workers).await;
    }

    async fn push_loop(&self, sync: &StripeSync, stop: tokio_util::sync::CancellationToken) {
        loop {
            match self.push_next(sync).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "stripe pusher: looking for work failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = sync.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Claims and pushes one due invoice; false when none is due.
    pub(crate) async fn push_next(&self, sync: &StripeSync) -> ApiResult<bool> {
        let now = Utc::now();
        // A tenant's invoices go in period order: an earlier one still on
        // its way (or failed) holds the later ones back. Held ones are not
        // selected at all, so they never crowd out other tenants' work.
        let due = stripe_push::Entity::find()
            .filter(stripe_push::Column::Status.is_in(["pending", "retrying"]))
            .filter(stripe_push::Column::NextAttemptAt.lte(now))
            .filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM stripe_pushes e \
                 WHERE e.tenant_id = stripe_pushes.tenant_id \
                 AND e.period_start < stripe_pushes.period_start \
                 AND e.status IN ('pending', 'retrying', 'failed'))",
            ))
            .order_by_asc(stripe_push::Column::NextAttemptAt)
            .limit(20)
            .all(self.db())
            .await?;
        for p in due {
            if !self
                .take_lease(sync, &p.invoice_id, Some(&["pending", "retrying"]))
                .await?
            {
                continue;
            }
            let attempts = u32::try_from(p.attempts).unwrap_or(0) + 1;
            let outcome = match invoice::Entity::find_by_id(p.invoice_id.clone())
                .one(self.db())
                .await?
            {
                Some(inv) => self.push(sync, &inv).await,
                None => Err(PushError::Fail("the invoice is gone".into())),
            };
            let now = Utc::now();
            let mut am: stripe_push::ActiveModel = p.into();
            am.attempts = Set(i32::try_from(attempts).unwrap_or(i32::MAX));
            am.lease_until = Set(None);
            am.updated_at = Set(now);
            match outcome {
                Ok(stripe_id) => {
                    tracing::info!(stripe_invoice = %stripe_id, "invoice pushed to Stripe");
                    am.status = Set("pushed".into());
                    am.stripe_invoice_id = Set(Some(stripe_id));
                    am.last_error = Set(None);
                    am.pushed_at = Set(Some(now));
                }
                Err(e) => {
                    let give_up = matches!(e, PushError::Fail(_)) || attempts >= sync.max_attempts;
                    tracing::warn!(error = %e, attempts, give_up, "Stripe push failed");
                    am.status = Set(if give_up { "failed" } else { "retrying" }.into());
                    am.last_error = Set(Some(e.to_string()));
                    am.next_attempt_at = Set(Some(now + backoff(attempts)));
                }
            }
            am.update(self.db()).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn record(&self, invoice_id: &str, key: &str, stripe_id: &str) -> Result<(), PushError> {
        let row = stripe_object::ActiveModel {
            invoice_id: Set(invoice_id.to_string()),
            key: Set(key.to_string()),
            stripe_id: Set(stripe_id.to_string()),
            created_at: Set(Utc::now()),
        };
        match row.insert(self.db()).await {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_lines_are_found_in_old_and_current_api_shapes() {
        let old: Obj = miniserde::json::from_str(
            r#"{"id":"in_1","total":2100,"lines":{"data":[{"type":"subscription","amount":2000},{"type":"invoiceitem","amount":100}]}}"#,
        )
        .unwrap();
        assert!(old.has_subscription_line());
        let current: Obj = miniserde::json::from_str(
            r#"{"id":"in_2","lines":{"data":[{"parent":{"type":"subscription_item_details"}}]},"metadata":{}}"#,
        )
        .unwrap();
        assert!(current.has_subscription_line());
        let usage_only: Obj = miniserde::json::from_str(
            r#"{"id":"in_3","lines":{"data":[{"parent":{"type":"invoice_item_details"},"type":null}]}}"#,
        )
        .unwrap();
        assert!(!usage_only.has_subscription_line());
        assert!(usage_only.metadata.is_none());
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::seconds(2));
        assert_eq!(backoff(2), Duration::seconds(4));
        assert_eq!(backoff(11), Duration::seconds(2048));
        assert_eq!(backoff(12), Duration::seconds(3600));
        assert_eq!(backoff(40), Duration::seconds(3600));
    }
}
