use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rag_terms")]
pub struct Model {
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub kb_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub term: i64,
    pub df: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
