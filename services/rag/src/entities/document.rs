use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rag_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub kb_id: String,
    pub external_id: Option<String>,
    pub filename: Option<String>,
    pub content_type: String,
    /// JSON object.
    pub metadata: String,
    pub status: String,
    pub error: Option<String>,
    /// The version readers see (0: none yet).
    pub version: i32,
    /// The version being ingested.
    pub pending_version: Option<i32>,
    pub attempts: i32,
    pub next_attempt_at: ChronoDateTimeUtc,
    pub lease_owner: Option<String>,
    pub lease_until: Option<ChronoDateTimeUtc>,
    pub chunk_count: i32,
    pub token_count: i64,
    pub bytes: i64,
    pub sha256: String,
    /// JSON `[[term, chunks], …]` of the readers' version.
    pub terms: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
