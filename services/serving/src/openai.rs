//! OpenAI's request and response shapes (the subset this API serves).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

/// Message content: a string, or text parts.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPart {
    /// Only `text` is supported.
    #[serde(rename = "type")]
    #[schema(schema_with = text_part_type)]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (`developer` is treated as `system`).
    #[schema(schema_with = role)]
    pub role: String,
    pub content: Option<Content>,
    pub name: Option<String>,
}

// The constraints the server checks, as OpenAI documents them (a subset
// where this server supports less: one choice, text parts, four roles).
llmops_core::schema_fns! {
    role => llmops_core::schema::string(false).enum_values(Some(["system", "developer", "user", "assistant"]));
    text_part_type => llmops_core::schema::string(false).enum_values(Some(["text"]));
    /// Up to four stop sequences of 1 to 100 characters.
    stop => string_or_list(llmops_core::schema::string(false).min_length(Some(1)).max_length(Some(100)), 1, 4, true);
    /// Exactly one prompt.
    prompt => string_or_list(llmops_core::schema::string(false), 1, 1, false);
    /// 1 to 2048 non-empty inputs.
    embedding_input => string_or_list(llmops_core::schema::string(false).min_length(Some(1)), 1, 2048, false);
    encoding_format => llmops_core::schema::string(true).enum_values(Some(["float", "base64"]));
}

/// A string of `item`, or a list of `min..=max` of them; or null.
fn string_or_list(
    item: utoipa::openapi::schema::ObjectBuilder,
    min: usize,
    max: usize,
    nullable: bool,
) -> utoipa::openapi::schema::OneOfBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let one = item.build();
    let both = OneOfBuilder::new().item(one.clone()).item(
        ArrayBuilder::new()
            .items(one)
            .min_items(Some(min))
            .max_items(Some(max)),
    );
    if nullable {
        both.item(ObjectBuilder::new().schema_type(Type::Null))
    } else {
        both
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionRequest {
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    /// At most the model's context less one.
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f32>,
    #[schema(minimum = 0)]
    pub seed: Option<i64>,
    #[schema(schema_with = stop)]
    pub stop: Option<StringOrList>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// Only 1.
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    pub user: Option<String>,
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: Option<f32>,
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<f32>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    #[schema(schema_with = prompt)]
    pub prompt: StringOrList,
    /// At most the model's context less one.
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f32>,
    #[schema(minimum = 0)]
    pub seed: Option<i64>,
    #[schema(schema_with = stop)]
    pub stop: Option<StringOrList>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// Only 1.
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    pub user: Option<String>,
    /// Not supported: only `false`.
    #[schema(value_type = Option<bool>, schema_with = no_echo)]
    pub echo: Option<bool>,
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: Option<f32>,
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<f32>,
}

llmops_core::schema_fns! {
    no_echo => utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::Boolean,
            utoipa::openapi::schema::Type::Null,
        ]))
        .enum_values(Some([serde_json::Value::Bool(false), serde_json::Value::Null]));
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    #[schema(example = "all-minilm-l6-v2")]
    pub model: String,
    #[schema(schema_with = embedding_input)]
    pub input: StringOrList,
    /// `float` (default) or `base64` (little-endian f32).
    #[schema(schema_with = encoding_format)]
    pub encoding_format: Option<String>,
    /// Only the model's own (384 for all-MiniLM-L6-v2).
    #[schema(minimum = 1)]
    pub dimensions: Option<u32>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    /// On an answer from the response cache: the prompt's tokens, all cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// On an answer from the response cache: what it replayed, what it
    /// cost and what it saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llmops_cache: Option<CacheUsage>,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
}

/// A cached answer's accounting. Token counts are those of the answer
/// replayed; the amounts are the plan's list prices (first tier, before
/// included units), fractional minor units for display; invoices are
/// rated from the ledger's `cached_input_tokens` / `cached_output_tokens`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheUsage {
    /// `hit` or `semantic-hit`
    pub status: String,
    /// The cached prompt's cosine (semantic hits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    pub cached_input_tokens: u32,
    pub cached_output_tokens: u32,
    /// Absent when the tenant's plan prices none of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// What the call would have cost at the model's token prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_cost_minor: Option<f64>,
    /// What the cached answer costs at the cached prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charged_minor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_minor: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: String,
    pub logprobs: Option<()>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub finish_reason: Option<String>,
    pub logprobs: Option<()>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Completion {
    pub id: String,
    /// `text_completion`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Embedding {
    /// `embedding`.
    pub object: &'static str,
    pub index: u32,
    pub embedding: EmbeddingVector,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmbeddingList {
    /// `list`.
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// `model`.
    pub object: &'static str,
    pub created: i64,
    pub owned_by: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}
