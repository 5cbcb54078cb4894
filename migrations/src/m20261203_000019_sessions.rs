//! Dashboard sign-in: browser sessions and invitations of users by a
//! tenant's admins.

use crate::columns::{id, ts, ts_null};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserSessions {
    Table,
    /// SHA-256 (hex) of the session cookie's secret.
    Id,
    TenantId,
    UserId,
    CsrfToken,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum UserInvitations {
    Table,
    Id,
    TenantId,
    Email,
    Role,
    /// SHA-256 (hex) of the one-time token.
    TokenHash,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use UserInvitations as I;
        use UserSessions as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(
                        ColumnDef::new(S::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(id(S::TenantId))
                    .col(id(S::UserId))
                    .col(ColumnDef::new(S::CsrfToken).string_len(64).not_null())
                    .col(ts(S::CreatedAt))
                    .col(ts(S::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_user_sessions_user")
                    .table(S::Table)
                    .col(S::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_user_sessions_expires")
                    .table(S::Table)
                    .col(S::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(I::Table)
                    .col(id(I::Id).primary_key())
                    .col(id(I::TenantId))
                    .col(ColumnDef::new(I::Email).string_len(320).not_null())
                    .col(ColumnDef::new(I::Role).string_len(16).not_null())
                    .col(
                        ColumnDef::new(I::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(I::CreatedBy).string_len(200).null())
                    .col(ts(I::CreatedAt))
                    .col(ts(I::ExpiresAt))
                    .col(ts_null(I::AcceptedAt))
                    .col(ts_null(I::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_user_invitations_tenant")
                    .table(I::Table)
                    .col(I::TenantId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserInvitations::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserSessions::Table).to_owned())
            .await
    }
}
