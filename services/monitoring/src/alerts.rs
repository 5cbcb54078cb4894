//! Alert rules, evaluated on a schedule over the minute rollups and the
//! latest drift reports; alerts with their history; signed webhooks,
//! retried with backoff; a retraining job started when a rule fires.
//!
//! Several replicas may evaluate at once: one open alert per rule is
//! enforced by a unique index, and a delivery is claimed before it is sent.

use crate::Monitoring;
use crate::entities::{alert, alert_rule, delivery, drift_report, rollup};
use crate::writer::{Acc, MINUTE, bucket};
use chrono::{DateTime, TimeDelta, Utc};
use llmops_core::ids::{AlertId, AlertRuleId, DeliveryId, TenantId};
use llmops_core::{ApiError, ApiResult, TenantCtx};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Most alert rules of one tenant.
pub const MAX_RULES: u64 = 100;
/// A rule starts at most one retraining job in this long.
const RETRAIN_COOLDOWN: TimeDelta = TimeDelta::hours(24);

/// What a rule watches; it fires while the value is above its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    /// p95 latency over the window, in milliseconds.
    LatencyP95Ms,
    /// Share of calls that failed (0 to 1).
    ErrorRate,
    /// 1 when the model's latest completed drift report says `drifted`,
    /// else 0 (threshold 0).
    Drift,
    EmptyRate,
    TruncationRate,
    RefusalRate,
    RepetitionRate,
    LanguageMismatchRate,
    /// Spend over the window at the plan's list prices, in minor units.
    SpendMinor,
    /// This billing period's rated spend as a percentage of the tenant's
    /// budget (`PUT /v1/billing/budget`); no value without a budget.
    BudgetPercent,
}

impl AlertMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertMetric::LatencyP95Ms => "latency_p95_ms",
            AlertMetric::ErrorRate => "error_rate",
            AlertMetric::Drift => "drift",
            AlertMetric::EmptyRate => "empty_rate",
            AlertMetric::TruncationRate => "truncation_rate",
            AlertMetric::RefusalRate => "refusal_rate",
            AlertMetric::RepetitionRate => "repetition_rate",
            AlertMetric::LanguageMismatchRate => "language_mismatch_rate",
            AlertMetric::SpendMinor => "spend_minor",
            AlertMetric::BudgetPercent => "budget_percent",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.into())).ok()
    }

    /// The value over a window's rollups (`None`: no measurement).
    fn of(self, a: &Acc) -> Option<f64> {
        let rate = |n: i64| (a.requests > 0).then(|| n as f64 / a.requests as f64);
        match self {
            AlertMetric::LatencyP95Ms => a.latency.quantile(0.95),
            AlertMetric::ErrorRate => rate(a.errors),
            AlertMetric::EmptyRate => rate(a.empty),
            AlertMetric::TruncationRate => rate(a.truncated),
            AlertMetric::RefusalRate => rate(a.refusals),
            AlertMetric::RepetitionRate => rate(a.repetitive),
            AlertMetric::LanguageMismatchRate => rate(a.language_mismatches),
            AlertMetric::SpendMinor => Some(a.cost_minor),
            AlertMetric::Drift | AlertMetric::BudgetPercent => None,
        }
    }
}

/// Starts the fine-tuning job a rule's `retrain` action names.
#[async_trait::async_trait]
pub trait Retrainer: Send + Sync {
    /// Checks a job template when the rule is created.
    fn check(&self, job: &serde_json::Value) -> Result<(), String>;
    /// Starts the job for the tenant; returns its id.
    async fn start(
        &self,
        tenant: TenantId,
        rule: AlertRuleId,
        job: serde_json::Value,
    ) -> Result<String, String>;
}

/// What a rule does when it fires, besides its webhook.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertAction {
    /// Starts a fine-tuning job from `job` (the body of
    /// `POST /v1/fine_tuning/jobs`), once per firing.
    Retrain {
        #[schema(value_type = Object)]
        job: serde_json::Value,
    },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlertRule {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub metric: AlertMetric,
    /// Only this model's calls (required for `drift`).
    #[schema(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub model: Option<String>,
    /// Fires while the value is above this (`drift`: 0).
    pub threshold: f64,
    /// The window the value is computed over, 60 to 86400 seconds (default
    /// 300); not used by `drift` and `budget_percent`.
    #[schema(minimum = 60, maximum = 86400)]
    pub window_secs: Option<i64>,
    /// Fewest calls in the window for a value (default 10); not used by
    /// `drift`, `spend_minor` and `budget_percent`.
    #[schema(minimum = 1, maximum = 1000000)]
    pub min_requests: Option<i64>,
    /// Where `alert.firing` and `alert.resolved` events are POSTed, signed
    /// (`llmops-signature: t=…,v1=…`, HMAC-SHA256 of `t.body` with the
    /// rule's secret).
    #[schema(max_length = 2048)]
    pub webhook_url: Option<String>,
    pub action: Option<AlertAction>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertRule {
    pub id: AlertRuleId,
    /// `monitoring.alert_rule`
    pub object: &'static str,
    pub name: String,
    pub metric: String,
    pub model: Option<String>,
    pub threshold: f64,
    pub window_secs: i64,
    pub min_requests: i64,
    pub webhook_url: Option<String>,
    /// The webhook signing secret: in the create response only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[schema(value_type = Option<AlertAction>)]
    pub action: Option<serde_json::Value>,
    pub enabled: bool,
    /// No webhooks before this time (alerts are still recorded).
    pub silenced_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl AlertRule {
    fn from_row(r: alert_rule::Model, with_secret: bool) -> ApiResult<Self> {
        Ok(Self {
            id: r
                .id
                .parse()
                .map_err(|e| ApiError::Internal(format!("stored rule id: {e}").into()))?,
            object: "monitoring.alert_rule",
            name: r.name,
            metric: r.metric,
            model: r.model,
            threshold: r.threshold,
            window_secs: r.window_secs,
            min_requests: r.min_requests,
            webhook_url: r.webhook_url,
            webhook_secret: r.webhook_secret.filter(|_| with_secret),
            action: r.action.and_then(|a| serde_json::from_str(&a).ok()),
            enabled: r.enabled,
            silenced_until: r.silenced_until,
            created_at: r.created_at,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: DeliveryId,
    /// `alert.firing` or `alert.resolved`.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// The receiver's last HTTP status.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: AlertId,
    /// `monitoring.alert`
    pub object: &'static str,
    pub rule_id: String,
    pub metric: String,
    pub model: Option<String>,
    /// `firing` or `resolved`.
    pub status: String,
    /// The latest value measured (while firing) or the last one.
    pub value: f64,
    pub threshold: f64,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// What the rule's action did (e.g. the job it started, or why not).
    #[schema(value_type = Option<Object>)]
    pub action_result: Option<serde_json::Value>,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub deliveries: Vec<DeliveryView>,
}

fn parse_id<T: std::str::FromStr>(kind: &str, id: &str) -> ApiResult<T> {
    id.parse().map_err(|_| {
        ApiError::NotFound(format!(
            "{kind} {}",
            id.chars().take(64).collect::<String>()
        ))
    })
}

impl Monitoring {
    pub async fn create_rule(&self, ctx: &TenantCtx, r: NewAlertRule) -> ApiResult<AlertRule> {
        let name = r.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::validation("name", "must be 1 to 100 characters"));
        }
        if !r.threshold.is_finite() {
            return Err(ApiError::validation("threshold", "must be a finite number"));
        }
        crate::routes::check_model(r.model.as_deref())?;
        if r.metric == AlertMetric::Drift && r.model.is_none() {
            return Err(ApiError::validation(
                "model",
                "a drift rule names its model",
            ));
        }
        let window = r.window_secs.unwrap_or(300);
        if !(60..=86_400).contains(&window) {
            return Err(ApiError::validation("window_secs", "must be 60 to 86400"));
        }
        let min_requests = r.min_requests.unwrap_or(10);
        if !(1..=1_000_000).contains(&min_requests) {
            return Err(ApiError::validation("min_requests", "must be 1 to 1000000"));
        }
        if let Some(u) = &r.webhook_url {
            if u.len() > 2048 {
                return Err(ApiError::validation(
                    "webhook_url",
                    "at most 2048 characters",
                ));
            }
            crate::webhooks::check_webhook(u, self.allow_private_webhooks)?;
        }
        if let Some(AlertAction::Retrain { job }) = &r.action {
            ctx.require(llmops_core::Scope::Training)?;
            let Some(t) = &self.retrainer else {
                return Err(ApiError::NotImplemented(
                    "retraining needs the training service".into(),
                ));
            };
            t.check(job)
                .map_err(|e| ApiError::validation("action.job", e))?;
        }
        let rules = ctx
            .scoped()
            .find::<alert_rule::Entity>()
            .count(self.db())
            .await?;
        if rules >= MAX_RULES {
            return Err(ApiError::Conflict(format!(
                "the tenant has {rules} alert rules (at most {MAX_RULES}); delete one first"
            )));
        }
        let now = Utc::now();
        let secret = r.webhook_url.as_ref().map(|_| {
            let bytes: [u8; 24] = rand::random();
            format!(
                "whsec_{}",
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        });
        let row = alert_rule::Model {
            id: AlertRuleId::new().to_string(),
            tenant_id: ctx.tenant_id().to_string(),
            name: name.to_string(),
            metric: r.metric.as_str().to_string(),
            model: r.model,
            threshold: r.threshold,
            window_secs: window,
            min_requests,
            webhook_url: r.webhook_url,
            webhook_secret: secret,
            action: r
                .action
                .as_ref()
                .and_then(|a| serde_json::to_string(a).ok()),
            enabled: true,
            silenced_until: None,
            created_at: now,
            updated_at: now,
        };
        alert_rule::Entity::insert(sea_orm::IntoActiveModel::into_active_model(row.clone()))
            .exec(self.db())
            .await?;
        AlertRule::from_row(row, true)
    }

    async fn rule_row(&self, ctx: &TenantCtx, id: &str) -> ApiResult<alert_rule::Model> {
        let id: AlertRuleId = parse_id("alert rule", id)?;
        ctx.scoped()
            .find::<alert_rule::Entity>()
            .filter(alert_rule::Column::Id.eq(id.to_string()))
            .one(self.db())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("alert rule {id}")))
    }

    pub async fn rule(&self, ctx: &TenantCtx, id: &str) -> ApiResult<AlertRule> {
        AlertRule::from_row(self.rule_row(ctx, id).await?, false)
    }

    pub async fn rules(&self, ctx: &TenantCtx) -> ApiResult<Vec<AlertRule>> {
        ctx.scoped()
            .find::<alert_rule::Entity>()
            .order_by_asc(alert_rule::Column::Id)
            .limit(1000)
            .all(self.db())
            .await?
            .into_iter()
            .map(|r| AlertRule::from_row(r, false))
            .collect()
    }

    /// Deletes a rule and its alerts' history.
    pub async fn delete_rule(&self, ctx: &TenantCtx, id: &str) -> ApiResult<()> {
        let r = self.rule_row(ctx, id).await?;
        ctx.scoped()
            .delete_many::<alert_rule::Entity>()
            .filter(alert_rule::Column::Id.eq(r.id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// No webhooks until `until` (`None`: from now on again).
    pub async fn silence_rule(
        &self,
        ctx: &TenantCtx,
        id: &str,
        until: Option<DateTime<Utc>>,
    ) -> ApiResult<AlertRule> {
        let r = self.rule_row(ctx, id).await?;
        let mut am: alert_rule::ActiveModel = r.into();
        am.silenced_until = Set(until);
        am.updated_at = Set(Utc::now());
        let saved = alert_rule::Entity::update(am).exec(self.db()).await?;
        AlertRule::from_row(saved, false)
    }

    async fn alert_view(&self, a: alert::Model) -> ApiResult<Alert> {
        let deliveries = delivery::Entity::find()
            .filter(delivery::Column::AlertId.eq(a.id.as_str()))
            .order_by_asc(delivery::Column::Id)
            .all(self.db())
            .await?
            .into_iter()
            .filter_map(|d| {
                Some(DeliveryView {
                    id: d.id.parse().ok()?,
                    event: d.event,
                    status: d.status,
                    attempts: d.attempts,
                    last_status: d.last_status,
                    last_error: d.last_error,
                    delivered_at: d.delivered_at,
                })
            })
            .collect();
        Ok(Alert {
            id: a
                .id
                .parse()
                .map_err(|e| ApiError::Internal(format!("stored alert id: {e}").into()))?,
            object: "monitoring.alert",
            rule_id: a.rule_id,
            metric: a.metric,
            model: a.model,
            status: a.status,
            value: a.value,
            threshold: a.threshold,
            details: serde_json::from_str(&a.details).unwrap_or_default(),
            action_result: a.action_result.and_then(|s| serde_json::from_str(&s).ok()),
            started_at: a.started_at,
            resolved_at: a.resolved_at,
            acknowledged_at: a.acknowledged_at,
            acknowledged_by: a.acknowledged_by,
            deliveries,
        })
    }

    pub async fn alerts(
        &self,
        ctx: &TenantCtx,
        status: Option<&str>,
        limit: u64,
    ) -> ApiResult<Vec<Alert>> {
        let mut q = ctx.scoped().find::<alert::Entity>();
        if let Some(s) = status {
            q = q.filter(alert::Column::Status.eq(s));
        }
        let rows = q
            .order_by_desc(alert::Column::Id)
            .limit(limit)
            .all(self.db())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for a in rows {
            out.push(self.alert_view(a).await?);
        }
        Ok(out)
    }

    async fn alert_row(&self, ctx: &TenantCtx, id: &str) -> ApiResult<alert::Model> {
        let id: AlertId = parse_id("alert", id)?;
        ctx.scoped()
            .find::<alert::Entity>()
            .filter(alert::Column::Id.eq(id.to_string()))
            .one(self.db())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("alert {id}")))
    }

    pub async fn alert(&self, ctx: &TenantCtx, id: &str) -> ApiResult<Alert> {
        let a = self.alert_row(ctx, id).await?;
        self.alert_view(a).await
    }

    /// Marks an alert seen (idempotent: the first acknowledgement stays).
    pub async fn acknowledge(&self, ctx: &TenantCtx, id: &str) -> ApiResult<Alert> {
        let a = self.alert_row(ctx, id).await?;
        if a.acknowledged_at.is_none() {
            ctx.scoped()
                .update_many::<alert::Entity>()
                .col_expr(alert::Column::AcknowledgedAt, Utc::now().into())
                .col_expr(alert::Column::AcknowledgedBy, ctx.actor().into())
                .filter(alert::Column::Id.eq(a.id.as_str()))
                .filter(alert::Column::AcknowledgedAt.is_null())
                .exec(self.db())
                .await?;
        }
        self.alert(ctx, id).await
    }

    /// Drift alerts of any of `models` that fire and started after
    /// `since` (the registry's promotion gate: a version made after the
    /// drift began, e.g. by the retraining it triggered, is not held back
    /// by it; an older one is).
    pub async fn open_drift_alerts(
        &self,
        tenant: TenantId,
        models: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<alert::Model>, DbErr> {
        if models.is_empty() {
            return Ok(Vec::new());
        }
        alert::Entity::find()
            .filter(alert::Column::TenantId.eq(tenant.to_string()))
            .filter(alert::Column::Status.eq("firing"))
            .filter(alert::Column::StartedAt.gt(since))
            .filter(alert::Column::Metric.eq(AlertMetric::Drift.as_str()))
            .filter(alert::Column::Model.is_in(models.iter().cloned()))
            .all(self.db())
            .await
    }
}

async fn evaluate_all(m: &Monitoring) -> Result<(), DbErr> {
    let rules = alert_rule::Entity::find()
        .filter(alert_rule::Column::Enabled.eq(true))
        .all(m.db())
        .await?;
    for rule in rules {
        if let Err(e) = evaluate(m, &rule).await {
            tracing::warn!(error = %e, rule = rule.id, "alert rule not evaluated");
        }
    }
    Ok(())
}

/// The rule's value now and what it was computed from; `None` when there
/// is nothing to judge (too few calls, no drift report yet).
async fn measure(
    m: &Monitoring,
    rule: &alert_rule::Model,
    metric: AlertMetric,
) -> Result<Option<(f64, serde_json::Value)>, DbErr> {
    if metric == AlertMetric::Drift {
        let (Some(model), Ok(tenant)) = (&rule.model, rule.tenant_id.parse::<TenantId>()) else {
            return Ok(None);
        };
        let report: Option<drift_report::Model> = m.latest_drift(tenant, model).await?;
        return Ok(report.map(|r| {
            (
                if r.drifted == Some(true) { 1.0 } else { 0.0 },
                serde_json::json!({"drift_report_id": r.id, "completed_at": r.completed_at}),
            )
        }));
    }
    if metric == AlertMetric::BudgetPercent {
        let (Some(spend), Ok(tenant)) = (&m.spend, rule.tenant_id.parse::<TenantId>()) else {
            return Ok(None);
        };
        return Ok(spend.budget_use(tenant).await.and_then(|(spent, limit)| {
            (limit > 0).then(|| {
                (
                    spent as f64 * 100.0 / limit as f64,
                    serde_json::json!({"spend_minor": spent, "budget_minor": limit}),
                )
            })
        }));
    }
    let now = Utc::now();
    let start = now - TimeDelta::seconds(rule.window_secs);
    let mut q = rollup::Entity::find()
        .filter(rollup::Column::TenantId.eq(rule.tenant_id.as_str()))
        .filter(rollup::Column::ResolutionSecs.eq(MINUTE))
        .filter(rollup::Column::BucketStart.gte(bucket(start, MINUTE)));
    if let Some(model) = &rule.model {
        q = q.filter(rollup::Column::Model.eq(model.as_str()));
    }
    let mut acc = Acc::default();
    for u in q.all(m.db()).await? {
        acc.add_rollup(&u);
    }
    if metric != AlertMetric::SpendMinor && acc.requests < rule.min_requests {
        return Ok(None);
    }
    Ok(metric.of(&acc).map(|v| {
        (
            v,
            serde_json::json!({"requests": acc.requests, "window_start": bucket(start, MINUTE), "window_end": now}),
        )
    }))
}

async fn evaluate(m: &Monitoring, rule: &alert_rule::Model) -> Result<(), DbErr> {
    let Some(metric) = AlertMetric::parse(&rule.metric) else {
        return Ok(());
    };
    let Some((value, details)) = measure(m, rule, metric).await? else {
        return Ok(());
    };
    let open = alert::Entity::find()
        .filter(alert::Column::OpenRuleId.eq(rule.id.as_str()))
        .one(m.db())
        .await?;
    let now = Utc::now();
    match (open, value > rule.threshold) {
        (None, true) => {
            let a = alert::Model {
                id: AlertId::new().to_string(),
                tenant_id: rule.tenant_id.clone(),
                rule_id: rule.id.clone(),
                open_rule_id: Some(rule.id.clone()),
                metric: rule.metric.clone(),
                model: rule.model.clone(),
                status: "firing".into(),
                value,
                threshold: rule.threshold,
                details: details.to_string(),
                action_result: None,
                started_at: now,
                resolved_at: None,
                acknowledged_at: None,
                acknowledged_by: None,
                updated_at: now,
            };
            match alert::Entity::insert(sea_orm::IntoActiveModel::into_active_model(a.clone()))
                .exec(m.db())
                .await
            {
                Ok(_) => {}
                // Another replica opened it first.
                Err(e) if llmops_core::db::is_unique_violation(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
            metrics::counter!("llmops_monitoring_alerts_fired_total", "metric" => rule.metric.clone())
                .increment(1);
            crate::webhooks::notify(m.db(), rule, &a, "alert.firing").await?;
            act(m, rule, &a).await?;
        }
        (Some(a), true) => {
            let mut am: alert::ActiveModel = a.into();
            am.value = Set(value);
            am.details = Set(details.to_string());
            am.updated_at = Set(now);
            alert::Entity::update(am).exec(m.db()).await?;
        }
        (Some(a), false) => {
            let resolved = alert::Entity::update_many()
                .col_expr(alert::Column::Status, "resolved".into())
                .col_expr(alert::Column::OpenRuleId, Option::<String>::None.into())
                .col_expr(alert::Column::ResolvedAt, now.into())
                .col_expr(alert::Column::Value, value.into())
                .col_expr(alert::Column::UpdatedAt, now.into())
                .filter(alert::Column::Id.eq(a.id.as_str()))
                .filter(alert::Column::Status.eq("firing"))
                .exec(m.db())
                .await?
                .rows_affected
                == 1;
            if resolved {
                let mut done = a;
                done.status = "resolved".into();
                done.value = value;
                done.resolved_at = Some(now);
                crate::webhooks::notify(m.db(), rule, &done, "alert.resolved").await?;
            }
        }
        (None, false) => {}
    }
    Ok(())
}

/// Runs the rule's action on a new alert; records what happened.
async fn act(m: &Monitoring, rule: &alert_rule::Model, a: &alert::Model) -> Result<(), DbErr> {
    let Some(action) = rule
        .action
        .as_deref()
        .and_then(|s| serde_json::from_str::<AlertAction>(s).ok())
    else {
        return Ok(());
    };
    let AlertAction::Retrain { job } = action;
    // A rule that flaps does not start a job each time it fires.
    let recent = alert::Entity::find()
        .filter(alert::Column::RuleId.eq(rule.id.as_str()))
        .filter(alert::Column::Id.ne(a.id.as_str()))
        .filter(alert::Column::StartedAt.gt(Utc::now() - RETRAIN_COOLDOWN))
        .filter(alert::Column::ActionResult.contains("\"status\":\"started\""))
        .count(m.db())
        .await?;
    let result = if recent > 0 {
        serde_json::json!({"type": "retrain", "status": "skipped",
            "error": "this rule started a retraining job in the last 24 hours"})
    } else {
        match (&m.retrainer, rule.tenant_id.parse(), rule.id.parse()) {
            (Some(t), Ok(tenant), Ok(rule_id)) => match t.start(tenant, rule_id, job).await {
                Ok(id) => serde_json::json!({"type": "retrain", "status": "started", "job_id": id}),
                Err(e) => serde_json::json!({"type": "retrain", "status": "refused", "error": e}),
            },
            (None, ..) => serde_json::json!({"type": "retrain", "status": "refused",
            "error": "retraining needs the training service"}),
            _ => {
                serde_json::json!({"type": "retrain", "status": "refused", "error": "stored ids unreadable"})
            }
        }
    };
    alert::Entity::update_many()
        .col_expr(alert::Column::ActionResult, result.to_string().into())
        .filter(alert::Column::Id.eq(a.id.as_str()))
        .exec(m.db())
        .await?;
    Ok(())
}

/// Evaluates rules every `every`, until `stop`.
pub(crate) async fn run(m: Monitoring, every: Duration, stop: tokio_util::sync::CancellationToken) {
    let mut tick_at = tokio::time::interval(every);
    tick_at.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick_at.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = evaluate_all(&m).await {
            tracing::warn!(error = %e, "alert evaluation failed");
        }
    }
}

/// For the gateway: a retrainer with the tenant's training service.
pub type SharedRetrainer = Arc<dyn Retrainer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip_their_wire_names() {
        for m in [
            AlertMetric::LatencyP95Ms,
            AlertMetric::Drift,
            AlertMetric::SpendMinor,
            AlertMetric::LanguageMismatchRate,
        ] {
            assert_eq!(AlertMetric::parse(m.as_str()), Some(m));
        }
    }
}
