//! Tenants' plan changes (billing prices each period by the plan in effect
//! at its start).

use crate::columns::{id, ts};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantPlanChanges {
    Table,
    Id,
    TenantId,
    FromPlan,
    ToPlan,
    ChangedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TenantPlanChanges as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    // A ULID: ordered like the changes.
                    .col(id(C::Id).primary_key())
                    .col(id(C::TenantId))
                    .col(ColumnDef::new(C::FromPlan).string_len(64).not_null())
                    .col(ColumnDef::new(C::ToPlan).string_len(64).not_null())
                    .col(ts(C::ChangedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tenant_plan_changes_tenant")
                    .table(C::Table)
                    .col(C::TenantId)
                    .col(C::ChangedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TenantPlanChanges::Table).to_owned())
            .await
    }
}
