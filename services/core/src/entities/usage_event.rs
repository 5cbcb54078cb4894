use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_events")]
pub struct Model {
    /// The producer's idempotency key; a second event with the same id is ignored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub meter: String,
    /// Quantity in the meter's base unit (tokens, GPU-milliseconds, byte-hours).
    pub quantity: i64,
    /// JSON object of string dimensions (model, deployment, gpu_type…).
    pub dimensions: String,
    pub occurred_at: ChronoDateTimeUtc,
    pub recorded_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
