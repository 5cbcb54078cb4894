//! The training workers that are online: each beats every few seconds
//! with the GPU type and slots it offers, so a queued job that no live
//! worker can run shows why it waits (`capacity`), and operators see the
//! fleet.

use crate::columns::ts;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TrainingWorkers {
    Table,
    Owner,
    GpuType,
    Slots,
    StartedAt,
    LastSeenMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TrainingWorkers as W;
        manager
            .create_table(
                Table::create()
                    .table(W::Table)
                    .col(
                        ColumnDef::new(W::Owner)
                            .string_len(200)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(W::GpuType).string_len(64).not_null())
                    .col(ColumnDef::new(W::Slots).integer().not_null())
                    .col(ts(W::StartedAt))
                    .col(ColumnDef::new(W::LastSeenMs).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TrainingWorkers::Table).to_owned())
            .await
    }
}
