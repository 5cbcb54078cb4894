use sea_orm::entity::prelude::*;

/// Counters and latency sketches of one (tenant, model, bucket). Writers
/// append partial rows; compaction merges a bucket's rows into one.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitoring_rollups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub model: String,
    /// 60 (minute) or 3600 (hour).
    pub resolution_secs: i32,
    pub bucket_start: ChronoDateTimeUtc,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_minor: f64,
    pub cache_hits: i64,
    pub empty: i64,
    pub truncated: i64,
    pub refusals: i64,
    pub repetitive: i64,
    pub language_mismatches: i64,
    /// DDSketch of latencies in milliseconds (JSON).
    pub latency: String,
    /// DDSketch of stream times to first token in milliseconds (JSON).
    pub ttft: String,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
