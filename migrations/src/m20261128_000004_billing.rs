//! Billing: plan prices and invoices.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PlanPrices {
    Table,
    PlanId,
    Pricing,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Invoices {
    Table,
    Id,
    TenantId,
    PeriodStart,
    PeriodEnd,
    Status,
    Currency,
    SubtotalMinor,
    TotalMinor,
    Lines,
    PlanId,
    RecordedThrough,
    CreatedAt,
    FinalizedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PlanPrices::Table)
                    .col(
                        ColumnDef::new(PlanPrices::PlanId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PlanPrices::Pricing).text().not_null())
                    .col(
                        ColumnDef::new(PlanPrices::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        use Invoices as I;
        manager
            .create_table(
                Table::create()
                    .table(I::Table)
                    .col(
                        ColumnDef::new(I::Id)
                            .string_len(40)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(I::TenantId).string_len(40).not_null())
                    .col(
                        ColumnDef::new(I::PeriodStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(I::PeriodEnd)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(I::Status).string_len(16).not_null())
                    .col(ColumnDef::new(I::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(I::SubtotalMinor).big_integer().not_null())
                    .col(ColumnDef::new(I::TotalMinor).big_integer().not_null())
                    .col(ColumnDef::new(I::Lines).text().not_null())
                    .col(ColumnDef::new(I::PlanId).string_len(64).not_null())
                    .col(
                        ColumnDef::new(I::RecordedThrough)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(I::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(I::FinalizedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Exactly one invoice per tenant and period, whoever generates it.
        manager
            .create_index(
                Index::create()
                    .name("ux_invoices_tenant_period")
                    .table(I::Table)
                    .col(I::TenantId)
                    .col(I::PeriodStart)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Invoices::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PlanPrices::Table).to_owned())
            .await
    }
}
