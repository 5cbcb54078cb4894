use sea_orm::entity::prelude::*;

/// A rule that fired: open while `firing`, kept once `resolved`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitoring_alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub rule_id: String,
    pub open_rule_id: Option<String>,
    pub metric: String,
    pub model: Option<String>,
    pub status: String,
    pub value: f64,
    pub threshold: f64,
    /// JSON (e.g. the drift report that fired it).
    pub details: String,
    pub action_result: Option<String>,
    pub started_at: ChronoDateTimeUtc,
    pub resolved_at: Option<ChronoDateTimeUtc>,
    pub acknowledged_at: Option<ChronoDateTimeUtc>,
    pub acknowledged_by: Option<String>,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
