//! Dedicated model deployments of tenants.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deployments {
    Table,
    Id,
    TenantId,
    Name,
    ModelRef,
    ModelVersionId,
    TritonModel,
    Status,
    GpuType,
    Replicas,
    Error,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    ReadyAt,
    StoppedAt,
    MeteredUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Deployments as D;
        let ts_null = |c: D| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(
                        ColumnDef::new(D::Id)
                            .string_len(40)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(D::TenantId).string_len(40).not_null())
                    .col(ColumnDef::new(D::Name).string_len(64).not_null())
                    .col(ColumnDef::new(D::ModelRef).text().not_null())
                    .col(ColumnDef::new(D::ModelVersionId).string_len(40).not_null())
                    .col(ColumnDef::new(D::TritonModel).string_len(64).not_null())
                    .col(ColumnDef::new(D::Status).string_len(16).not_null())
                    .col(ColumnDef::new(D::GpuType).string_len(32).not_null())
                    .col(ColumnDef::new(D::Replicas).integer().not_null())
                    .col(ColumnDef::new(D::Error).text().null())
                    .col(ColumnDef::new(D::CreatedBy).string_len(40).null())
                    .col(
                        ColumnDef::new(D::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(D::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ts_null(D::ReadyAt))
                    .col(ts_null(D::StoppedAt))
                    .col(ts_null(D::MeteredUntil))
                    .to_owned(),
            )
            .await?;
        // A live name is unique per tenant; stopped ones keep their history.
        manager
            .create_index(
                Index::create()
                    .name("ix_deployments_tenant_name")
                    .table(D::Table)
                    .col(D::TenantId)
                    .col(D::Name)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deployments_status")
                    .table(D::Table)
                    .col(D::Status)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Deployments::Table).to_owned())
            .await
    }
}
