//! Per-tenant settings of the response cache (the cached answers live in
//! the entry store and the vector store, not here).

use crate::columns::{id, ts};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CacheSettings {
    Table,
    TenantId,
    Enabled,
    Semantic,
    SimilarityThreshold,
    TtlSecs,
    CacheNondeterministic,
    CacheTruncated,
    DisabledModels,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use CacheSettings as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(id(C::TenantId).primary_key())
                    .col(ColumnDef::new(C::Enabled).boolean().not_null())
                    .col(ColumnDef::new(C::Semantic).boolean().not_null())
                    .col(ColumnDef::new(C::SimilarityThreshold).double().null())
                    .col(ColumnDef::new(C::TtlSecs).big_integer().null())
                    .col(
                        ColumnDef::new(C::CacheNondeterministic)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(C::CacheTruncated).boolean().not_null())
                    .col(ColumnDef::new(C::DisabledModels).text().not_null())
                    .col(ts(C::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CacheSettings::Table).to_owned())
            .await
    }
}
