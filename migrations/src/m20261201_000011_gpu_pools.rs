//! GPU pools the operator defines (what training can run on, and at what
//! price), and each plan's training quotas: most devices per GPU type a
//! tenant may hold at once, and its weight in fair sharing.

use crate::columns::ts;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GpuPools {
    Table,
    Id,
    GpuType,
    GpusPerNode,
    Nodes,
    Spot,
    PricePerGpuHourMinor,
    Currency,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PlanTrainingQuotas {
    Table,
    PlanId,
    Weight,
    MaxGpus,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use GpuPools as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(
                        ColumnDef::new(P::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(P::GpuType).string_len(64).not_null())
                    .col(ColumnDef::new(P::GpusPerNode).integer().not_null())
                    .col(ColumnDef::new(P::Nodes).integer().not_null())
                    .col(ColumnDef::new(P::Spot).boolean().not_null())
                    .col(
                        ColumnDef::new(P::PricePerGpuHourMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(P::Currency).string_len(3).not_null())
                    .col(ts(P::CreatedAt))
                    .col(ts(P::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        use PlanTrainingQuotas as Q;
        manager
            .create_table(
                Table::create()
                    .table(Q::Table)
                    .col(
                        ColumnDef::new(Q::PlanId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Q::Weight).integer().not_null())
                    // JSON object: GPU type → most devices at once.
                    .col(ColumnDef::new(Q::MaxGpus).text().not_null())
                    .col(ts(Q::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PlanTrainingQuotas::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(GpuPools::Table).to_owned())
            .await
    }
}
