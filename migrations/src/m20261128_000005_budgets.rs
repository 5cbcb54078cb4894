//! Tenants' monthly spend limits.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Budgets {
    Table,
    TenantId,
    LimitMinor,
    SoftPercent,
    WebhookUrl,
    NotifiedPeriod,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Budgets as B;
        manager
            .create_table(
                Table::create()
                    .table(B::Table)
                    .col(
                        ColumnDef::new(B::TenantId)
                            .string_len(40)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(B::LimitMinor).big_integer().not_null())
                    .col(ColumnDef::new(B::SoftPercent).integer().null())
                    .col(ColumnDef::new(B::WebhookUrl).text().null())
                    .col(ColumnDef::new(B::NotifiedPeriod).string_len(16).null())
                    .col(
                        ColumnDef::new(B::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Budgets::Table).to_owned())
            .await
    }
}
