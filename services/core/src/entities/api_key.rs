use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// What humans see: `sk-llmops-AbCd…wxyz`.
    pub redacted: String,
    /// Hex SHA-256 of the whole secret; the secret itself is never stored.
    #[sea_orm(unique)]
    pub secret_hash: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Optional per-key requests-per-minute cap (below the plan's).
    pub requests_per_minute: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub expires_at: Option<ChronoDateTimeUtc>,
    pub revoked_at: Option<ChronoDateTimeUtc>,
    pub last_used_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
