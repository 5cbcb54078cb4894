use sea_orm::entity::prelude::*;

/// A sampled prompt's embedding (for embedding drift).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitoring_samples")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub model: String,
    pub created_at: ChronoDateTimeUtc,
    /// JSON array of floats.
    pub vector: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
