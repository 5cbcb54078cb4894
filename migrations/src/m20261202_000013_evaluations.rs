//! Evaluations of registry versions: metrics measured after a version was
//! made ready (a held-out file's loss, perplexity and task metrics), kept
//! beside the version instead of changing it, so its own metrics stay
//! fixed. At most one per evaluating job, whatever its attempts.

use crate::columns::{id, ts};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RegistryEvaluations {
    Table,
    Id,
    TenantId,
    VersionId,
    Name,
    Metrics,
    DatasetSha256,
    SourceJobId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use RegistryEvaluations as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(id(E::Id).primary_key())
                    .col(id(E::TenantId))
                    .col(id(E::VersionId))
                    .col(ColumnDef::new(E::Name).string_len(32).not_null())
                    .col(ColumnDef::new(E::Metrics).text().not_null())
                    .col(ColumnDef::new(E::DatasetSha256).string_len(64).null())
                    .col(ColumnDef::new(E::SourceJobId).string_len(40).null())
                    .col(ts(E::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_registry_evaluations_version")
                    .table(E::Table)
                    .col(E::TenantId)
                    .col(E::VersionId)
                    .col(E::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_registry_evaluations_job")
                    .table(E::Table)
                    .col(E::TenantId)
                    .col(E::SourceJobId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RegistryEvaluations::Table).to_owned())
            .await
    }
}
