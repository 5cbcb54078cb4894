//! Drift reports: queued on demand (`POST /v1/monitoring/drift_reports`)
//! or on a schedule, computed by a runner in the background (any replica;
//! a report is claimed by one), stored with the whole analysis.

use crate::Monitoring;
use crate::analysis::{Analysis, Thresholds, Window, analyze};
use crate::entities::{drift_report, record, sample};
use chrono::{DateTime, TimeDelta, Utc};
use llmops_core::ids::{DriftReportId, TenantId};
use llmops_core::{ApiError, ApiResult, TenantCtx};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most calls and embedding samples read per window (the newest).
const MAX_CALLS: u64 = 20_000;
const MAX_SAMPLES: u64 = 500;
/// The default reference window: the model's first week of traffic.
pub const REFERENCE_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    pub id: DriftReportId,
    /// `monitoring.drift_report`
    pub object: &'static str,
    pub model: String,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    /// `api` or `schedule`.
    pub trigger: String,
    pub reference: Span,
    pub current: Span,
    /// Set once completed.
    pub drifted: Option<bool>,
    /// The statistics, once completed.
    #[schema(value_type = Option<Analysis>)]
    pub analysis: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl DriftReport {
    fn from_row(r: drift_report::Model) -> ApiResult<Self> {
        Ok(Self {
            id: r
                .id
                .parse()
                .map_err(|e| ApiError::Internal(format!("stored drift report id: {e}").into()))?,
            object: "monitoring.drift_report",
            model: r.model,
            status: r.status,
            trigger: r.trigger,
            reference: Span {
                start: r.reference_start,
                end: r.reference_end,
            },
            current: Span {
                start: r.current_start,
                end: r.current_end,
            },
            drifted: r.drifted,
            analysis: r
                .result
                .as_deref()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()),
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
        })
    }
}

/// The windows a report compares, with defaults filled in.
pub struct Windows {
    pub reference: Option<Span>,
    pub current: Option<Span>,
}

impl Monitoring {
    /// Queues a report of `model`. Without windows: the last day against
    /// the model's first week of traffic.
    pub async fn request_drift_report(
        &self,
        ctx: &TenantCtx,
        model: &str,
        w: Windows,
    ) -> ApiResult<DriftReport> {
        let row = queue(self.db(), ctx.tenant_id(), model, w, "api").await?;
        DriftReport::from_row(row)
    }

    pub async fn drift_report(&self, ctx: &TenantCtx, id: &str) -> ApiResult<DriftReport> {
        let not_found = || {
            ApiError::NotFound(format!(
                "drift report {}",
                id.chars().take(64).collect::<String>()
            ))
        };
        let id: DriftReportId = id.parse().map_err(|_| not_found())?;
        let row = ctx
            .scoped()
            .find::<drift_report::Entity>()
            .filter(drift_report::Column::Id.eq(id.to_string()))
            .one(self.db())
            .await?
            .ok_or_else(not_found)?;
        DriftReport::from_row(row)
    }

    pub async fn drift_reports(
        &self,
        ctx: &TenantCtx,
        limit: u64,
        before: Option<&str>,
        model: Option<&str>,
    ) -> ApiResult<Vec<DriftReport>> {
        let mut q = ctx.scoped().find::<drift_report::Entity>();
        if let Some(b) = before {
            q = q.filter(drift_report::Column::Id.lt(b));
        }
        if let Some(m) = model {
            q = q.filter(drift_report::Column::Model.eq(m));
        }
        q.order_by_desc(drift_report::Column::Id)
            .limit(limit)
            .all(self.db())
            .await?
            .into_iter()
            .map(DriftReport::from_row)
            .collect()
    }

    /// The latest completed report of each of `models` (for alert rules
    /// and the promotion gate).
    pub async fn latest_drift(
        &self,
        tenant: TenantId,
        model: &str,
    ) -> Result<Option<drift_report::Model>, DbErr> {
        drift_report::Entity::find()
            .filter(drift_report::Column::TenantId.eq(tenant.to_string()))
            .filter(drift_report::Column::Model.eq(model))
            .filter(drift_report::Column::Status.eq("completed"))
            .order_by_desc(drift_report::Column::CompletedAt)
            .one(self.db())
            .await
    }
}

/// Most reports a tenant may have queued or running at once.
pub const MAX_IN_PROGRESS: u64 = 10;
/// A report `running` longer than this was left by a replica that stopped:
/// it is queued again.
const STUCK: TimeDelta = TimeDelta::minutes(10);

async fn queue(
    db: &DatabaseConnection,
    tenant: TenantId,
    model: &str,
    w: Windows,
    trigger: &str,
) -> ApiResult<drift_report::Model> {
    let now = Utc::now();
    let in_progress = drift_report::Entity::find()
        .filter(drift_report::Column::TenantId.eq(tenant.to_string()))
        .filter(drift_report::Column::Status.is_in(["queued", "running"]))
        .count(db)
        .await?;
    if in_progress >= MAX_IN_PROGRESS {
        return Err(ApiError::Conflict(format!(
            "{in_progress} drift reports are queued or running; wait for them (at most {MAX_IN_PROGRESS})"
        )));
    }
    let current = w.current.unwrap_or(Span {
        start: now - TimeDelta::days(1),
        end: now,
    });
    let reference = match w.reference {
        Some(r) => r,
        None => {
            let first: Option<DateTime<Utc>> = record::Entity::find()
                .filter(record::Column::TenantId.eq(tenant.to_string()))
                .filter(record::Column::Model.eq(model))
                .order_by_asc(record::Column::StartedAt)
                .select_only()
                .column(record::Column::StartedAt)
                .into_tuple()
                .one(db)
                .await?;
            let start = first.unwrap_or(current.start);
            Span {
                start,
                end: (start + TimeDelta::days(REFERENCE_DAYS)).min(current.start),
            }
        }
    };
    for (name, s) in [("reference", reference), ("current", current)] {
        if s.start >= s.end {
            return Err(ApiError::validation(
                name,
                format!(
                    "the {name} window is empty: give {name}_start before {name}_end (without traffic before the current window, name a reference window)"
                ),
            ));
        }
    }
    if reference.end > current.start {
        return Err(ApiError::validation(
            "reference_end",
            "the reference window must end before the current one starts",
        ));
    }
    let row = drift_report::Model {
        id: DriftReportId::new().to_string(),
        tenant_id: tenant.to_string(),
        model: model.to_string(),
        status: "queued".into(),
        trigger: trigger.into(),
        reference_start: reference.start,
        reference_end: reference.end,
        current_start: current.start,
        current_end: current.end,
        drifted: None,
        result: None,
        error: None,
        created_at: now,
        started_at: None,
        completed_at: None,
    };
    drift_report::Entity::insert(sea_orm::IntoActiveModel::into_active_model(row.clone()))
        .exec(db)
        .await?;
    Ok(row)
}

/// What a window of (tenant, model) holds.
async fn window(
    db: &DatabaseConnection,
    tenant: &str,
    model: &str,
    span: Span,
) -> Result<Window, DbErr> {
    type Row = (i32, i32, Option<String>, Option<String>, bool, bool);
    let rows: Vec<Row> = record::Entity::find()
        .filter(record::Column::TenantId.eq(tenant))
        .filter(record::Column::Model.eq(model))
        .filter(record::Column::StartedAt.gte(span.start))
        .filter(record::Column::StartedAt.lt(span.end))
        .filter(record::Column::Status.lt(400))
        .filter(record::Column::Kind.ne("embedding"))
        .order_by_desc(record::Column::StartedAt)
        .limit(MAX_CALLS)
        .select_only()
        .column(record::Column::PromptChars)
        .column(record::Column::OutputChars)
        .column(record::Column::PromptLang)
        .column(record::Column::FinishReason)
        .column(record::Column::Refusal)
        .column(record::Column::Empty)
        .into_tuple()
        .all(db)
        .await?;
    let mut w = Window::default();
    for (p, o, lang, finish, refusal, empty) in rows {
        w.prompt_chars.push(f64::from(p));
        w.output_chars.push(f64::from(o));
        w.prompt_lang.push(lang.unwrap_or_else(|| "und".into()));
        w.finish_reason
            .push(finish.unwrap_or_else(|| "none".into()));
        w.refusal.push(refusal);
        w.empty.push(empty);
    }
    let vectors: Vec<String> = sample::Entity::find()
        .filter(sample::Column::TenantId.eq(tenant))
        .filter(sample::Column::Model.eq(model))
        .filter(sample::Column::CreatedAt.gte(span.start))
        .filter(sample::Column::CreatedAt.lt(span.end))
        .order_by_desc(sample::Column::CreatedAt)
        .limit(MAX_SAMPLES)
        .select_only()
        .column(sample::Column::Vector)
        .into_tuple()
        .all(db)
        .await?;
    w.embeddings = vectors
        .iter()
        .filter_map(|v| serde_json::from_str::<Vec<f32>>(v).ok())
        .collect();
    Ok(w)
}

/// Claims and computes queued reports until `stop`.
pub(crate) async fn run(
    db: DatabaseConnection,
    every: Duration,
    schedule: Option<Duration>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_schedule = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Some(period) = schedule
            && last_schedule.elapsed() >= period
        {
            last_schedule = tokio::time::Instant::now();
            if let Err(e) = schedule_reports(&db, period).await {
                tracing::warn!(error = %e, "scheduling drift reports failed");
            }
        }
        let stuck = drift_report::Entity::update_many()
            .col_expr(drift_report::Column::Status, "queued".into())
            .col_expr(
                drift_report::Column::StartedAt,
                Option::<DateTime<Utc>>::None.into(),
            )
            .filter(drift_report::Column::Status.eq("running"))
            .filter(drift_report::Column::StartedAt.lt(Utc::now() - STUCK))
            .exec(&db)
            .await;
        if let Err(e) = stuck {
            tracing::warn!(error = %e, "requeueing stuck drift reports");
        }
        loop {
            match run_one(&db).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "drift report runner");
                    break;
                }
            }
        }
    }
}

/// Runs the oldest queued report; `false` when none is queued.
async fn run_one(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let Some(r) = drift_report::Entity::find()
        .filter(drift_report::Column::Status.eq("queued"))
        .order_by_asc(drift_report::Column::CreatedAt)
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let claimed = drift_report::Entity::update_many()
        .col_expr(drift_report::Column::Status, "running".into())
        .col_expr(drift_report::Column::StartedAt, Utc::now().into())
        .filter(drift_report::Column::Id.eq(r.id.as_str()))
        .filter(drift_report::Column::Status.eq("queued"))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if !claimed {
        return Ok(true);
    }
    let started = std::time::Instant::now();
    let outcome = compute(db, &r).await;
    let mut done = drift_report::ActiveModel {
        id: Set(r.id.clone()),
        completed_at: Set(Some(Utc::now())),
        ..Default::default()
    };
    match outcome {
        Ok(a) => {
            done.status = Set("completed".into());
            done.drifted = Set(Some(a.drifted));
            done.result = Set(serde_json::to_string(&a).ok());
            metrics::counter!("llmops_monitoring_drift_reports_total", "drifted" => a.drifted.to_string())
                .increment(1);
        }
        Err(e) => {
            done.status = Set("failed".into());
            done.error = Set(Some(e));
        }
    }
    drift_report::Entity::update(done).exec(db).await?;
    metrics::histogram!("llmops_monitoring_drift_report_seconds")
        .record(started.elapsed().as_secs_f64());
    Ok(true)
}

async fn compute(db: &DatabaseConnection, r: &drift_report::Model) -> Result<Analysis, String> {
    let span = |s, e| Span { start: s, end: e };
    let reference = window(
        db,
        &r.tenant_id,
        &r.model,
        span(r.reference_start, r.reference_end),
    )
    .await
    .map_err(|e| format!("reading the reference window: {e}"))?;
    let current = window(
        db,
        &r.tenant_id,
        &r.model,
        span(r.current_start, r.current_end),
    )
    .await
    .map_err(|e| format!("reading the current window: {e}"))?;
    // A seed from the report id: the same report computes the same result.
    let seed = r.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
    });
    tokio::task::spawn_blocking(move || analyze(&reference, &current, &Thresholds::default(), seed))
        .await
        .map_err(|e| format!("the analysis stopped: {e}"))
}

/// Queues a scheduled report for every (tenant, model) with traffic in the
/// last `period` and no scheduled report younger than `period`.
async fn schedule_reports(db: &DatabaseConnection, period: Duration) -> Result<(), DbErr> {
    let now = Utc::now();
    let since = now - TimeDelta::from_std(period).unwrap_or(TimeDelta::days(1));
    let active: Vec<(String, Option<String>)> = record::Entity::find()
        .filter(record::Column::StartedAt.gte(since))
        .filter(record::Column::Model.is_not_null())
        .filter(record::Column::Kind.ne("embedding"))
        .select_only()
        .column(record::Column::TenantId)
        .column(record::Column::Model)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    for (tenant, model) in active {
        let Some(model) = model else { continue };
        let Ok(tenant_id) = tenant.parse::<TenantId>() else {
            continue;
        };
        let recent = drift_report::Entity::find()
            .filter(drift_report::Column::TenantId.eq(tenant.as_str()))
            .filter(drift_report::Column::Model.eq(model.as_str()))
            .filter(drift_report::Column::Trigger.eq("schedule"))
            .filter(drift_report::Column::CreatedAt.gte(since))
            .one(db)
            .await?
            .is_some();
        if recent {
            continue;
        }
        let w = Windows {
            reference: None,
            current: Some(Span {
                start: since,
                end: now,
            }),
        };
        match queue(db, tenant_id, &model, w, "schedule").await {
            Ok(_) => {}
            // No traffic before the window yet: nothing to compare with.
            Err(ApiError::Validation { .. }) => {}
            Err(e) => tracing::warn!(error = %e, tenant, model, "scheduling a drift report"),
        }
    }
    Ok(())
}
