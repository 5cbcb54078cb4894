//! `POST /v1/embeddings`.

use crate::catalog::ModelBackend;
use crate::catalog::ModelKind;
use crate::openai::{Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage, EmbeddingVector};
use crate::service::{Serving, estimate_tokens, http};
use crate::tokens::UsageSource;
use llmops_core::error::LimitHeaders;
use llmops_core::usage::Meter;
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use std::time::Instant;

impl Serving {
    pub async fn embed(
        &self,
        ctx: &TenantCtx,
        req: EmbeddingRequest,
    ) -> ApiResult<(EmbeddingList, LimitHeaders)> {
        ctx.require(Scope::Inference)?;
        let model = &self.target(ctx, &req.model, ModelKind::Embedding).await?;
        let texts = req.input.into_vec();
        if texts.is_empty() || texts.len() > 2048 {
            return Err(ApiError::validation("input", "give 1 to 2048 inputs"));
        }
        if texts.iter().any(String::is_empty) {
            return Err(ApiError::validation(
                "input",
                "inputs must not be empty strings",
            ));
        }
        if let (Some(asked), Some(has)) = (req.dimensions, model.dimensions)
            && asked != has
        {
            return Err(ApiError::validation(
                "dimensions",
                format!("this model has {has} dimensions"),
            ));
        }
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(_) => return Err(ApiError::validation("encoding_format", "float or base64")),
        };
        self.check_budget(ctx).await?;
        let reserved = texts
            .iter()
            .map(|t| estimate_tokens(t))
            .fold(0u32, u32::saturating_add);
        let headers = self.0.budget.reserve(ctx, reserved).await?;
        let started = Instant::now();
        let result = match &model.backend {
            ModelBackend::Triton { model: name } => match self.triton_for(model) {
                Ok(t) => t
                    .embed(name, &texts)
                    .await
                    .map(|(v, counts)| (v, counts, UsageSource::Backend)),
                Err(e) => Err(e),
            },
            ModelBackend::OpenAi {
                embeddings_url,
                api_key,
                model: up,
                ..
            } => crate::upstream::embed(
                &http(),
                embeddings_url,
                api_key.as_ref().map(|k| k.expose().as_str()),
                &model.id,
                up,
                &texts,
                &model.counter,
            )
            .await
            .map(|(v, total, source)| {
                // Upstreams report one total; spread is not needed for billing.
                let mut counts = vec![0i64; v.len()];
                if let Some(first) = counts.first_mut() {
                    *first = i64::from(total);
                }
                (v, counts, source)
            }),
        };
        let (vectors, counts, source) = match result {
            Ok(v) => v,
            Err(e) => {
                self.0.budget.refund(ctx, reserved).await;
                return Err(e);
            }
        };
        metrics::histogram!("llm_request_duration_seconds", "model" => model.id.clone())
            .record(started.elapsed().as_secs_f64());
        let tokens: u32 = counts.iter().map(|c| u32::try_from(*c).unwrap_or(0)).sum();
        self.0.budget.settle(ctx, reserved, tokens).await;
        let id = format!("emb-{}", ulid::Ulid::new().to_string().to_lowercase());
        self.record(
            ctx,
            &id,
            &model.id,
            source,
            &[(Meter::EMBEDDING_TOKENS, tokens), (Meter::REQUESTS, 1)],
        )
        .await;
        let data = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding",
                index: i as u32,
                embedding: if base64 {
                    use base64::Engine;
                    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                    EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    EmbeddingVector::Float(v)
                },
            })
            .collect();
        Ok((
            EmbeddingList {
                object: "list",
                data,
                model: model.id.clone(),
                usage: EmbeddingUsage {
                    prompt_tokens: tokens,
                    total_tokens: tokens,
                },
            },
            headers,
        ))
    }
}
