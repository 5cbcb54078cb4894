//! Models every tenant may call.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Chat and text completions.
    Chat,
    Embedding,
}

/// A shared model published by the operator.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogModel {
    /// What clients pass as `model`.
    pub id: String,
    pub kind: ModelKind,
    /// The Triton model serving it.
    pub triton_model: String,
    /// Upper bound of prompt + completion tokens.
    pub context_tokens: u32,
}

/// The catalog of the local Triton repository (`infra/triton`).
pub fn local_models() -> Vec<CatalogModel> {
    vec![
        CatalogModel {
            id: "smollm2-135m-instruct".into(),
            kind: ModelKind::Chat,
            triton_model: "smollm2-135m-instruct".into(),
            context_tokens: 2048,
        },
        CatalogModel {
            id: "all-minilm-l6-v2".into(),
            kind: ModelKind::Embedding,
            triton_model: "all-minilm-l6-v2".into(),
            context_tokens: 256,
        },
    ]
}
