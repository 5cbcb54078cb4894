//! An alert rule's `retrain` action: a fine-tuning job from the rule's
//! saved template, created as the rule (so drift → retrain → new version
//! → gated promotion closes without a person in the loop).

use llmops_core::TenantCtx;
use llmops_core::ids::{AlertRuleId, TenantId};
use llmops_training::api::CreateJob;

pub struct TrainingRetrainer(pub actix_web::web::Data<llmops_training::Training>);

fn template(job: &serde_json::Value) -> Result<CreateJob, String> {
    serde_json::from_value(job.clone()).map_err(|e| format!("not a fine-tuning job: {e}"))
}

#[async_trait::async_trait]
impl llmops_monitoring::alerts::Retrainer for TrainingRetrainer {
    fn check(&self, job: &serde_json::Value) -> Result<(), String> {
        template(job).map(|_| ())
    }

    async fn start(
        &self,
        tenant: TenantId,
        rule: AlertRuleId,
        job: serde_json::Value,
    ) -> Result<String, String> {
        let ctx = TenantCtx::for_alert_rule(tenant, rule);
        let created = self
            .0
            .create_job(&ctx, template(&job)?)
            .await
            .map_err(|e| llmops_core::error::Problem::from_error(&e).detail)?;
        Ok(created.id.to_string())
    }
}
