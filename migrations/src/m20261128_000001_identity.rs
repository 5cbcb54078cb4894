//! Identity and metering: plans, tenants, users, API keys, usage events.

use crate::columns::{id, ts, ts_null};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Plans {
    Table,
    Id,
    DisplayName,
    RequestsPerMinute,
    TokensPerMinute,
    ConcurrentRequests,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Status,
    PlanId,
    SuspendedReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TenantId,
    Email,
    PasswordHash,
    Role,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Redacted,
    SecretHash,
    Scopes,
    RequestsPerMinute,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum UsageEvents {
    Table,
    Id,
    TenantId,
    Meter,
    Quantity,
    Dimensions,
    OccurredAt,
    RecordedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Plans::Table)
                    .col(
                        ColumnDef::new(Plans::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Plans::DisplayName)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Plans::RequestsPerMinute)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Plans::TokensPerMinute)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Plans::ConcurrentRequests)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ts(Plans::CreatedAt))
                    .col(ts(Plans::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(id(Tenants::Id).primary_key())
                    .col(
                        ColumnDef::new(Tenants::Name)
                            .string_len(100)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Tenants::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Tenants::PlanId).string_len(64).not_null())
                    .col(ColumnDef::new(Tenants::SuspendedReason).text().null())
                    .col(ts(Tenants::CreatedAt))
                    .col(ts(Tenants::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tenants::Table, Tenants::PlanId)
                            .to(Plans::Table, Plans::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id).primary_key())
                    .col(id(Users::TenantId))
                    .col(
                        ColumnDef::new(Users::Email)
                            .string_len(320)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Users::PasswordHash).text().not_null())
                    .col(ColumnDef::new(Users::Role).string_len(32).not_null())
                    .col(ts(Users::CreatedAt))
                    .col(ts_null(Users::LastLoginAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_users_tenant")
                    .table(Users::Table)
                    .col(Users::TenantId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(id(ApiKeys::Id).primary_key())
                    .col(id(ApiKeys::TenantId))
                    .col(ColumnDef::new(ApiKeys::Name).string_len(200).not_null())
                    .col(ColumnDef::new(ApiKeys::Redacted).string_len(64).not_null())
                    .col(
                        ColumnDef::new(ApiKeys::SecretHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(ApiKeys::Scopes).text().not_null())
                    .col(
                        ColumnDef::new(ApiKeys::RequestsPerMinute)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(ApiKeys::CreatedBy).string_len(40).null())
                    .col(ts(ApiKeys::CreatedAt))
                    .col(ts_null(ApiKeys::ExpiresAt))
                    .col(ts_null(ApiKeys::RevokedAt))
                    .col(ts_null(ApiKeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_tenant_id")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UsageEvents::Table)
                    .col(
                        ColumnDef::new(UsageEvents::Id)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(id(UsageEvents::TenantId))
                    .col(ColumnDef::new(UsageEvents::Meter).string_len(64).not_null())
                    .col(
                        ColumnDef::new(UsageEvents::Quantity)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(UsageEvents::Dimensions).text().not_null())
                    .col(ts(UsageEvents::OccurredAt))
                    .col(ts(UsageEvents::RecordedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_usage_events_tenant_time")
                    .table(UsageEvents::Table)
                    .col(UsageEvents::TenantId)
                    .col(UsageEvents::OccurredAt)
                    .to_owned(),
            )
            .await?;

        // The plans every installation starts with; operators add their own.
        let seed = Query::insert()
            .into_table(Plans::Table)
            .columns([
                Plans::Id,
                Plans::DisplayName,
                Plans::RequestsPerMinute,
                Plans::TokensPerMinute,
                Plans::ConcurrentRequests,
                Plans::CreatedAt,
                Plans::UpdatedAt,
            ])
            .values_panic([
                "free".into(),
                "Free".into(),
                60.into(),
                40_000.into(),
                4.into(),
                Expr::current_timestamp(),
                Expr::current_timestamp(),
            ])
            .values_panic([
                "standard".into(),
                "Standard".into(),
                3_000.into(),
                1_000_000.into(),
                64.into(),
                Expr::current_timestamp(),
                Expr::current_timestamp(),
            ])
            .to_owned();
        manager.exec_stmt(seed).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UsageEvents::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Users::Table.into_iden(),
            Tenants::Table.into_iden(),
            Plans::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
