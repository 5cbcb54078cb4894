//! Serving as the teacher of distillation jobs: the teacher's answers are
//! chat completions of the tenant's, greedy, metered and budgeted like any
//! other.

use llmops_core::{ApiError, ApiResult, TenantCtx};
use llmops_serving::Serving;
use llmops_serving::openai::ChatCompletionRequest;
use llmops_serving::service::Reply;

pub struct ServingTeacher(pub actix_web::web::Data<Serving>);

#[async_trait::async_trait]
impl llmops_training::distill::Teacher for ServingTeacher {
    async fn check(&self, ctx: &TenantCtx, model: &str) -> ApiResult<()> {
        let models = self.0.models(ctx).await?;
        if models.data.iter().any(|m| m.id == model) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "model `{}`",
                model.chars().take(128).collect::<String>()
            )))
        }
    }

    async fn answer(
        &self,
        ctx: &TenantCtx,
        model: &str,
        messages: &[(String, String)],
        max_tokens: u32,
        seed: i64,
    ) -> ApiResult<String> {
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
            .collect();
        let req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": max_tokens,
            "seed": seed,
        }))
        .map_err(ApiError::internal)?;
        match self.0.chat(ctx, req).await? {
            Reply::Full(c, _) => Ok(c
                .choices
                .into_iter()
                .next()
                .map(|c| c.message.content)
                .unwrap_or_default()),
            Reply::Stream(..) => Err(ApiError::Internal(
                "serving streamed a request that did not ask for a stream".into(),
            )),
        }
    }
}
