//! Evaluations: metrics measured on a version after it was made ready,
//! kept beside it (its own metrics stay fixed) and read by promotion gates.

use super::*;
use crate::entities::evaluation;
use llmops_core::ids::EvaluationId;

/// An evaluation's prefix: a lowercase word (`eval`, `heldout`, `qa_v2`).
pub fn check_evaluation_name(name: &str) -> ApiResult<()> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "name",
            "an evaluation's name is 1 to 32 lowercase letters, digits or `_`, starting with a letter",
        ))
    }
}

impl Registry {
    /// The latest evaluated value of each `name.metric`, per version id.
    pub(super) async fn evaluated(
        &self,
        db: &impl ConnectionTrait,
        scope: Scoped,
        version_ids: &[String],
    ) -> ApiResult<HashMap<String, BTreeMap<String, f64>>> {
        let mut out: HashMap<String, BTreeMap<String, f64>> = HashMap::new();
        if version_ids.is_empty() {
            return Ok(out);
        }
        let rows = scope
            .find::<evaluation::Entity>()
            .filter(evaluation::Column::VersionId.is_in(version_ids.iter().cloned()))
            .order_by_asc(evaluation::Column::Id)
            .all(db)
            .await?;
        // Ids grow with time: a later evaluation overwrites an earlier one.
        for r in rows {
            let metrics: BTreeMap<String, f64> = parse_json(&r.metrics);
            let into = out.entry(r.version_id.clone()).or_default();
            for (k, v) in metrics {
                into.insert(format!("{}.{k}", r.name), v);
            }
        }
        Ok(out)
    }

    fn evaluation_view(
        m: &model::Model,
        v: &version::Model,
        e: evaluation::Model,
    ) -> ApiResult<EvaluationView> {
        Ok(EvaluationView {
            object: "registry.evaluation",
            id: e.id.parse().map_err(ApiError::internal)?,
            model: m.name.clone(),
            version: v.version,
            version_id: v.id.parse().map_err(ApiError::internal)?,
            name: e.name,
            metrics: parse_json(&e.metrics),
            dataset_sha256: e.dataset_sha256,
            job_id: e.source_job_id,
            created_at: e.created_at,
        })
    }

    /// Records an evaluation of a ready version, once per job: a second
    /// call for the same job returns the first.
    pub async fn record_evaluation(
        &self,
        ctx: &TenantCtx,
        version_id: &str,
        input: NewEvaluation,
    ) -> ApiResult<EvaluationView> {
        ctx.require(Scope::Registry)?;
        check_evaluation_name(&input.name)?;
        if input.metrics.len() > 50
            || input
                .metrics
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 64 || !v.is_finite())
        {
            return Err(ApiError::validation(
                "metrics",
                "at most 50 metrics, named by 1 to 64 characters, with finite values",
            ));
        }
        let scope = ctx.scoped();
        let v = scope
            .find::<version::Entity>()
            .filter(version::Column::Id.eq(version_id))
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("model version `{}`", trunc(version_id))))?;
        let m = scope
            .find::<model::Entity>()
            .filter(model::Column::Id.eq(v.model_id.clone()))
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("model version `{}`", trunc(version_id))))?;
        // A job's evaluation stands once recorded (a retry finds it, even
        // if the version was archived since).
        if let Some(e) = self.evaluation_of_job(scope, &input.job_id).await? {
            return Self::evaluation_view(&m, &v, e);
        }
        if v.status != VersionStatus::Ready.as_str() {
            return Err(ApiError::Conflict(format!(
                "version {} of `{}` is {}; only ready versions are evaluated",
                v.version, m.name, v.status
            )));
        }
        let txn = begin_write(&self.db).await?;
        let row = evaluation::ActiveModel {
            id: Set(EvaluationId::new().to_string()),
            tenant_id: Set(ctx.tenant_id().to_string()),
            version_id: Set(v.id.clone()),
            name: Set(input.name.clone()),
            metrics: Set(json(&input.metrics)),
            dataset_sha256: Set(input.dataset_sha256.clone()),
            source_job_id: Set(Some(input.job_id.clone())),
            created_at: Set(Utc::now()),
        };
        let e = match row.insert(&txn).await {
            Ok(e) => e,
            Err(err) if is_unique_violation(&err) => {
                drop(txn);
                return match self.evaluation_of_job(scope, &input.job_id).await? {
                    Some(e) => Self::evaluation_view(&m, &v, e),
                    None => Err(ApiError::Conflict(
                        "the evaluation was recorded concurrently; retry".into(),
                    )),
                };
            }
            Err(err) => return Err(err.into()),
        };
        self.record_event(
            &txn,
            ctx,
            &m.id,
            "version_evaluated",
            None,
            None,
            Some(v.version),
            false,
            serde_json::json!({
                "name": input.name,
                "metrics": input.metrics,
                "dataset_sha256": input.dataset_sha256,
                "job_id": input.job_id,
            }),
        )
        .await?;
        txn.commit().await?;
        Self::evaluation_view(&m, &v, e)
    }

    async fn evaluation_of_job(
        &self,
        scope: Scoped,
        job: &str,
    ) -> ApiResult<Option<evaluation::Model>> {
        Ok(scope
            .find::<evaluation::Entity>()
            .filter(evaluation::Column::SourceJobId.eq(job))
            .one(&self.db)
            .await?)
    }

    /// A version's evaluations, oldest first.
    pub async fn list_evaluations(
        &self,
        ctx: &TenantCtx,
        name: &str,
        n: i64,
        params: &ListParams,
    ) -> ApiResult<Page<EvaluationView>> {
        ctx.require(Scope::Registry)?;
        let scope = ctx.scoped();
        let limit = params.limit()?;
        let m = self.model_row(&self.db, scope, name).await?;
        let v = self.version_row(&self.db, scope, &m, n).await?;
        let mut q = scope
            .find::<evaluation::Entity>()
            .filter(evaluation::Column::VersionId.eq(v.id.clone()))
            .order_by_asc(evaluation::Column::Id);
        if let Some(after) = &params.after {
            let after: EvaluationId = after.parse().map_err(|_| {
                ApiError::validation("after", "after is an evaluation id (`meval_…`)")
            })?;
            q = q.filter(evaluation::Column::Id.gt(after.to_string()));
        }
        let rows = q.limit(limit + 1).all(&self.db).await?;
        let views = rows
            .into_iter()
            .map(|e| Self::evaluation_view(&m, &v, e))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Page::from_rows(views, limit, |e| e.id.to_string()))
    }
}
