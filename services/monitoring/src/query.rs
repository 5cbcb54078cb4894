//! Reads over rollups and records, always through the tenant's scope
//! (the operator's cross-tenant view is the one exception, and says so).

use crate::Monitoring;
use crate::entities::{feedback, record, rollup};
use crate::sketch::{RELATIVE_ERROR, Sketch};
use crate::writer::{Acc, HOUR, MINUTE, bucket};
use chrono::{DateTime, TimeDelta, Utc};
use llmops_core::db::Scoped;
use llmops_core::{ApiError, ApiResult, TenantCtx};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use serde::Serialize;
use std::collections::BTreeMap;

/// Longest range of a summary or a series.
pub const MAX_RANGE_DAYS: i64 = 400;
/// Most points of one series.
pub const MAX_POINTS: i64 = 2_000;

/// A validated time range.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Range {
    /// `start`..`end` (default: the 24 hours before now).
    pub fn new(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> ApiResult<Self> {
        let end = end.unwrap_or_else(Utc::now);
        let start = start.unwrap_or(end - TimeDelta::hours(24));
        if start >= end || end - start > TimeDelta::days(MAX_RANGE_DAYS) {
            return Err(ApiError::validation(
                "start",
                format!("start must be before end, at most {MAX_RANGE_DAYS} days apart"),
            ));
        }
        Ok(Self { start, end })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    /// Milliseconds; `null` when nothing was measured.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(s: &Sketch) -> Self {
        Self {
            p50: s.quantile(0.50),
            p95: s.quantile(0.95),
            p99: s.quantile(0.99),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QualityCounts {
    /// Answers with no text.
    pub empty: i64,
    /// Answers cut by `max_tokens` (`finish_reason: length`).
    pub truncated: i64,
    /// Answers that open like a refusal.
    pub refusals: i64,
    /// Answers whose word trigrams repeat half the time or more.
    pub repetitive: i64,
    /// Answers in another language than their prompt.
    pub language_mismatches: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub requests: i64,
    /// Calls that failed or were refused (status 400 or more), and streams
    /// that ended with an error.
    pub errors: i64,
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
    /// Prompt and embedding tokens the models processed.
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Tokens answered from the response cache.
    pub cached_tokens: i64,
    pub cache_hits: i64,
    /// At the list prices of the tenant's plan, in minor units.
    pub cost_minor: f64,
    pub latency_ms: Percentiles,
    /// Streams only: time to the first token.
    pub ttft_ms: Percentiles,
    pub quality: QualityCounts,
}

impl Totals {
    fn of(a: &Acc) -> Self {
        Self {
            requests: a.requests,
            errors: a.errors,
            error_rate: if a.requests > 0 {
                a.errors as f64 / a.requests as f64
            } else {
                0.0
            },
            input_tokens: a.input_tokens,
            output_tokens: a.output_tokens,
            cached_tokens: a.cached_tokens,
            cache_hits: a.cache_hits,
            cost_minor: (a.cost_minor * 1e6).round() / 1e6,
            latency_ms: Percentiles::of(&a.latency),
            ttft_ms: Percentiles::of(&a.ttft),
            quality: QualityCounts {
                empty: a.empty,
                truncated: a.truncated,
                refusals: a.refusals,
                repetitive: a.repetitive,
                language_mismatches: a.language_mismatches,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelTotals {
    /// The model (`-`: calls that never reached one, e.g. refused).
    pub model: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeedbackTotals {
    pub count: i64,
    /// Mean score (0 to 1); `null` without feedback.
    pub mean_score: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// `monitoring.summary`
    pub object: &'static str,
    /// The range covered: the asked range widened to whole buckets (the
    /// feedback counted is of the same range).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The rollups read: 60 (minutes) or 3600 (hours).
    pub resolution_secs: i32,
    /// Bound on the percentiles' error, relative to the value (0.01: 1%).
    pub relative_error: f64,
    /// The plan's currency of `cost_minor` (`null` before anything was priced).
    pub currency: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
    pub models: Vec<ModelTotals>,
    /// Feedback given in the range.
    pub feedback: FeedbackTotals,
}

impl Monitoring {
    /// Minute rows for short, recent ranges; hour rows otherwise.
    fn resolution(&self, r: &Range) -> i32 {
        let recent = r.start >= Utc::now() - self.minute_retention + TimeDelta::minutes(1);
        if recent && r.end - r.start <= TimeDelta::hours(6) {
            MINUTE
        } else {
            HOUR
        }
    }

    fn rollups(
        &self,
        scope: Option<Scoped>,
        res: i32,
        r: &Range,
        model: Option<&str>,
    ) -> Select<rollup::Entity> {
        let mut q = match scope {
            Some(s) => s.find::<rollup::Entity>(),
            None => rollup::Entity::find(),
        }
        .filter(rollup::Column::ResolutionSecs.eq(res))
        .filter(rollup::Column::BucketStart.gte(bucket(r.start, res)))
        .filter(rollup::Column::BucketStart.lt(r.end));
        if let Some(m) = model {
            q = q.filter(rollup::Column::Model.eq(m));
        }
        q
    }

    /// The tenant's totals over `r`, overall and by model.
    pub async fn summary(
        &self,
        ctx: &TenantCtx,
        r: Range,
        model: Option<&str>,
    ) -> ApiResult<Summary> {
        let res = self.resolution(&r);
        // Whole buckets: the range read, as the answer states it.
        let r = Range {
            start: bucket(r.start, res),
            end: bucket(r.end - TimeDelta::microseconds(1), res)
                + TimeDelta::seconds(i64::from(res)),
        };
        let rows = self
            .rollups(Some(ctx.scoped()), res, &r, model)
            .all(self.db())
            .await?;
        let mut all = Acc::default();
        let mut by_model: BTreeMap<String, Acc> = BTreeMap::new();
        for u in &rows {
            all.add_rollup(u);
            by_model.entry(u.model.clone()).or_default().add_rollup(u);
        }
        let currency = ctx
            .scoped()
            .find::<record::Entity>()
            .filter(record::Column::Currency.is_not_null())
            .order_by_desc(record::Column::Id)
            .select_only()
            .column(record::Column::Currency)
            .into_tuple::<Option<String>>()
            .one(self.db())
            .await?
            .flatten();
        let scores: Vec<f64> = ctx
            .scoped()
            .find::<feedback::Entity>()
            .filter(feedback::Column::CreatedAt.gte(r.start))
            .filter(feedback::Column::CreatedAt.lt(r.end))
            .select_only()
            .column(feedback::Column::Score)
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(Summary {
            object: "monitoring.summary",
            start: bucket(r.start, res),
            end: r.end,
            resolution_secs: res,
            relative_error: RELATIVE_ERROR,
            currency,
            totals: Totals::of(&all),
            models: by_model
                .iter()
                .map(|(m, a)| ModelTotals {
                    model: m.clone(),
                    totals: Totals::of(a),
                })
                .collect(),
            feedback: FeedbackTotals {
                count: scores.len() as i64,
                mean_score: (!scores.is_empty())
                    .then(|| scores.iter().sum::<f64>() / scores.len() as f64),
            },
        })
    }

    /// Every tenant's totals over `r` (the operator's view).
    pub async fn tenants(&self, r: Range) -> ApiResult<Vec<(String, Totals)>> {
        let rows = self.rollups(None, HOUR, &r, None).all(self.db()).await?;
        let mut by_tenant: BTreeMap<String, Acc> = BTreeMap::new();
        for u in &rows {
            by_tenant
                .entry(u.tenant_id.clone())
                .or_default()
                .add_rollup(u);
        }
        Ok(by_tenant
            .into_iter()
            .map(|(t, a)| (t, Totals::of(&a)))
            .collect())
    }
}

/// What a series shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Requests,
    Errors,
    ErrorRate,
    InputTokens,
    OutputTokens,
    CachedTokens,
    CacheHits,
    Cost,
    LatencyP50,
    LatencyP95,
    LatencyP99,
    TtftP50,
    TtftP95,
    TtftP99,
}

impl Metric {
    /// The value of a bucket; `None` when it has no measurement (a
    /// percentile of no calls).
    fn value(self, a: &Acc) -> Option<f64> {
        let t = Totals::of(a);
        match self {
            Metric::Requests => Some(t.requests as f64),
            Metric::Errors => Some(t.errors as f64),
            Metric::ErrorRate => Some(t.error_rate),
            Metric::InputTokens => Some(t.input_tokens as f64),
            Metric::OutputTokens => Some(t.output_tokens as f64),
            Metric::CachedTokens => Some(t.cached_tokens as f64),
            Metric::CacheHits => Some(t.cache_hits as f64),
            Metric::Cost => Some(t.cost_minor),
            Metric::LatencyP50 => t.latency_ms.p50,
            Metric::LatencyP95 => t.latency_ms.p95,
            Metric::LatencyP99 => t.latency_ms.p99,
            Metric::TtftP50 => t.ttft_ms.p50,
            Metric::TtftP95 => t.ttft_ms.p95,
            Metric::TtftP99 => t.ttft_ms.p99,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Minute,
    Hour,
    Day,
}

impl Interval {
    fn secs(self) -> i64 {
        match self {
            Interval::Minute => 60,
            Interval::Hour => 3600,
            Interval::Day => 86_400,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// Start of the bucket (UTC).
    pub start: DateTime<Utc>,
    /// `null`: a percentile of a bucket without calls.
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Series {
    /// `monitoring.timeseries`
    pub object: &'static str,
    pub metric: Metric,
    pub interval: Interval,
    pub model: Option<String>,
    pub relative_error: f64,
    /// Every bucket of the range, oldest first.
    pub data: Vec<Point>,
}

impl Monitoring {
    /// One metric per bucket over `r`.
    pub async fn series(
        &self,
        ctx: &TenantCtx,
        r: Range,
        metric: Metric,
        interval: Interval,
        model: Option<&str>,
    ) -> ApiResult<Series> {
        let step = interval.secs();
        let (start, end) = (bucket(r.start, i32::try_from(step).unwrap_or(HOUR)), r.end);
        if (end - start).num_seconds() / step > MAX_POINTS {
            return Err(ApiError::validation(
                "interval",
                format!("at most {MAX_POINTS} points: choose a longer interval or a shorter range"),
            ));
        }
        let res = if interval == Interval::Minute {
            if r.start < Utc::now() - self.minute_retention {
                return Err(ApiError::validation(
                    "interval",
                    "minute rollups are kept for a limited time: choose `hour` or a more recent start",
                ));
            }
            MINUTE
        } else {
            HOUR
        };
        let rows = self
            .rollups(Some(ctx.scoped()), res, &Range { start, end }, model)
            .all(self.db())
            .await?;
        let mut buckets: BTreeMap<DateTime<Utc>, Acc> = BTreeMap::new();
        for u in &rows {
            let b = bucket(u.bucket_start, i32::try_from(step).unwrap_or(HOUR));
            buckets.entry(b).or_default().add_rollup(u);
        }
        let mut data = Vec::new();
        let mut t = start;
        let empty = Acc::default();
        while t < end {
            data.push(Point {
                start: t,
                value: metric.value(buckets.get(&t).unwrap_or(&empty)),
            });
            t += TimeDelta::seconds(step);
        }
        Ok(Series {
            object: "monitoring.timeseries",
            metric,
            interval,
            model: model.map(str::to_string),
            relative_error: RELATIVE_ERROR,
            data,
        })
    }

    /// The tenant's records, newest first.
    pub async fn records(
        &self,
        ctx: &TenantCtx,
        limit: u64,
        before: Option<&str>,
        model: Option<&str>,
    ) -> ApiResult<Vec<record::Model>> {
        let mut q = ctx.scoped().find::<record::Entity>();
        if let Some(b) = before {
            q = q.filter(record::Column::Id.lt(b));
        }
        if let Some(m) = model {
            q = q.filter(record::Column::Model.eq(m));
        }
        Ok(q.order_by_desc(record::Column::Id)
            .limit(limit)
            .all(self.db())
            .await?)
    }

    /// The tenant's latest record of `request_id`.
    pub async fn record(&self, ctx: &TenantCtx, request_id: &str) -> ApiResult<record::Model> {
        ctx.scoped()
            .find::<record::Entity>()
            .filter(record::Column::RequestId.eq(request_id))
            .order_by_desc(record::Column::Id)
            .one(self.db())
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no call with request id {} (records appear within seconds of the response)",
                    request_id.chars().take(128).collect::<String>()
                ))
            })
    }
}
