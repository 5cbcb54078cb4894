use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "registry_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub model_id: String,
    pub kind: String,
    pub alias: Option<String>,
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    pub forced: bool,
    pub actor: Option<String>,
    /// JSON object with kind-specific details.
    pub details: String,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
