use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "registry_evaluations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub version_id: String,
    /// The metrics' prefix (`eval` → `eval.loss`).
    pub name: String,
    /// JSON object of named numbers, without the prefix.
    pub metrics: String,
    pub dataset_sha256: Option<String>,
    /// The evaluating job; unique per tenant when set.
    pub source_job_id: Option<String>,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
