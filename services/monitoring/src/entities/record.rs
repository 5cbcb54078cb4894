use sea_orm::entity::prelude::*;

/// One inference call.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitoring_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub request_id: String,
    pub actor: String,
    pub kind: String,
    pub model: Option<String>,
    pub deployment_id: Option<String>,
    pub status: i32,
    pub error_type: Option<String>,
    pub started_at: ChronoDateTimeUtc,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub embedding_tokens: i64,
    pub cost_minor: Option<f64>,
    pub currency: Option<String>,
    pub cache: Option<String>,
    pub finish_reason: Option<String>,
    pub prompt_chars: i32,
    pub output_chars: i32,
    pub prompt_lang: Option<String>,
    pub output_lang: Option<String>,
    pub empty: bool,
    pub truncated: bool,
    pub refusal: bool,
    pub repetition: f64,
    pub language_mismatch: bool,
    pub support: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
