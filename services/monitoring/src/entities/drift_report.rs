use sea_orm::entity::prelude::*;

/// A drift report: queued, computed by a runner, kept.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitoring_drift_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub model: String,
    /// `queued`, `running`, `completed`, `failed`.
    pub status: String,
    /// `api` or `schedule`.
    pub trigger: String,
    pub reference_start: ChronoDateTimeUtc,
    pub reference_end: ChronoDateTimeUtc,
    pub current_start: ChronoDateTimeUtc,
    pub current_end: ChronoDateTimeUtc,
    pub drifted: Option<bool>,
    /// The analysis (JSON).
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub started_at: Option<ChronoDateTimeUtc>,
    pub completed_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
