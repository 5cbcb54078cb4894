use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "registry_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub model_id: String,
    pub version: i64,
    pub status: String,
    pub description: Option<String>,
    /// External location (imports, job outputs).
    pub artifact_uri: Option<String>,
    /// Object-store key of an uploaded artifact.
    pub artifact_key: Option<String>,
    pub format: String,
    pub quantization: String,
    pub parameter_count: Option<i64>,
    pub base_model: Option<String>,
    /// Version id of the base this adapter applies to.
    pub adapter_of: Option<String>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub source_type: String,
    pub source_job_id: Option<String>,
    /// Unique per tenant when set: a training job's output or checkpoint.
    pub source_key: Option<String>,
    /// JSON object of named numbers.
    pub metrics: String,
    /// JSON object of string tags.
    pub tags: String,
    pub created_by: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    pub ready_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
