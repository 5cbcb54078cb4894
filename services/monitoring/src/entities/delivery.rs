use sea_orm::entity::prelude::*;

/// A signed webhook POST of an alert event, retried with backoff.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitoring_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub alert_id: String,
    /// `alert.firing` or `alert.resolved`.
    pub event: String,
    pub url: String,
    pub payload: String,
    pub attempts: i32,
    /// `pending`, `delivered`, `failed`.
    pub status: String,
    pub next_attempt_at: ChronoDateTimeUtc,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub delivered_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
