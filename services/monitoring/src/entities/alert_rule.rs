use sea_orm::entity::prelude::*;

/// A tenant's alert rule.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitoring_alert_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub metric: String,
    pub model: Option<String>,
    pub threshold: f64,
    pub window_secs: i64,
    pub min_requests: i64,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// JSON: `{"type": "retrain", "job": {…}}`.
    pub action: Option<String>,
    pub enabled: bool,
    pub silenced_until: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
