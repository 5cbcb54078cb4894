//! Monitoring: one record per inference call, rollups per minute and hour
//! with mergeable latency sketches, and feedback on calls. Every row goes
//! with its tenant (cascade).

use crate::columns::{id, ts};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MonitoringRecords {
    Table,
    Id,
    TenantId,
    RequestId,
    Actor,
    Kind,
    Model,
    DeploymentId,
    Status,
    ErrorType,
    StartedAt,
    LatencyMs,
    TtftMs,
    InputTokens,
    OutputTokens,
    CachedTokens,
    EmbeddingTokens,
    CostMinor,
    Currency,
    Cache,
    FinishReason,
    PromptChars,
    OutputChars,
    PromptLang,
    OutputLang,
    Empty,
    Truncated,
    Refusal,
    Repetition,
    LanguageMismatch,
    Support,
}

#[derive(DeriveIden)]
enum MonitoringRollups {
    Table,
    Id,
    TenantId,
    Model,
    ResolutionSecs,
    BucketStart,
    Requests,
    Errors,
    InputTokens,
    OutputTokens,
    CachedTokens,
    CostMinor,
    CacheHits,
    Empty,
    Truncated,
    Refusals,
    Repetitive,
    LanguageMismatches,
    Latency,
    Ttft,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MonitoringFeedback {
    Table,
    Id,
    TenantId,
    RequestId,
    Score,
    Comment,
    Actor,
    CreatedAt,
}

fn tenant_fk<T: IntoIden>(table: T, column: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn big(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).big_integer().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use MonitoringRecords as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(id(R::Id).primary_key())
                    .col(id(R::TenantId))
                    .col(ColumnDef::new(R::RequestId).string_len(128).not_null())
                    .col(id(R::Actor))
                    .col(ColumnDef::new(R::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(R::Model).string_len(128).null())
                    .col(ColumnDef::new(R::DeploymentId).string_len(40).null())
                    .col(ColumnDef::new(R::Status).integer().not_null())
                    .col(ColumnDef::new(R::ErrorType).string_len(64).null())
                    .col(ts(R::StartedAt))
                    .col(ColumnDef::new(R::LatencyMs).double().not_null())
                    .col(ColumnDef::new(R::TtftMs).double().null())
                    .col(big(R::InputTokens))
                    .col(big(R::OutputTokens))
                    .col(big(R::CachedTokens))
                    .col(big(R::EmbeddingTokens))
                    .col(ColumnDef::new(R::CostMinor).double().null())
                    .col(ColumnDef::new(R::Currency).string_len(3).null())
                    .col(ColumnDef::new(R::Cache).string_len(16).null())
                    .col(ColumnDef::new(R::FinishReason).string_len(32).null())
                    .col(ColumnDef::new(R::PromptChars).integer().not_null())
                    .col(ColumnDef::new(R::OutputChars).integer().not_null())
                    .col(ColumnDef::new(R::PromptLang).string_len(8).null())
                    .col(ColumnDef::new(R::OutputLang).string_len(8).null())
                    .col(ColumnDef::new(R::Empty).boolean().not_null())
                    .col(ColumnDef::new(R::Truncated).boolean().not_null())
                    .col(ColumnDef::new(R::Refusal).boolean().not_null())
                    .col(ColumnDef::new(R::Repetition).double().not_null())
                    .col(ColumnDef::new(R::LanguageMismatch).boolean().not_null())
                    .col(ColumnDef::new(R::Support).double().null())
                    .foreign_key(&mut tenant_fk(R::Table, R::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_records_tenant_started")
                    .table(R::Table)
                    .col(R::TenantId)
                    .col(R::StartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_records_tenant_request")
                    .table(R::Table)
                    .col(R::TenantId)
                    .col(R::RequestId)
                    .to_owned(),
            )
            .await?;

        use MonitoringRollups as U;
        manager
            .create_table(
                Table::create()
                    .table(U::Table)
                    .col(id(U::Id).primary_key())
                    .col(id(U::TenantId))
                    .col(ColumnDef::new(U::Model).string_len(128).not_null())
                    .col(ColumnDef::new(U::ResolutionSecs).integer().not_null())
                    .col(ts(U::BucketStart))
                    .col(big(U::Requests))
                    .col(big(U::Errors))
                    .col(big(U::InputTokens))
                    .col(big(U::OutputTokens))
                    .col(big(U::CachedTokens))
                    .col(ColumnDef::new(U::CostMinor).double().not_null())
                    .col(big(U::CacheHits))
                    .col(big(U::Empty))
                    .col(big(U::Truncated))
                    .col(big(U::Refusals))
                    .col(big(U::Repetitive))
                    .col(big(U::LanguageMismatches))
                    .col(ColumnDef::new(U::Latency).text().not_null())
                    .col(ColumnDef::new(U::Ttft).text().not_null())
                    .col(ts(U::CreatedAt))
                    .foreign_key(&mut tenant_fk(U::Table, U::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_rollups_bucket")
                    .table(U::Table)
                    .col(U::TenantId)
                    .col(U::ResolutionSecs)
                    .col(U::BucketStart)
                    .to_owned(),
            )
            .await?;

        use MonitoringFeedback as F;
        manager
            .create_table(
                Table::create()
                    .table(F::Table)
                    .col(id(F::Id).primary_key())
                    .col(id(F::TenantId))
                    .col(ColumnDef::new(F::RequestId).string_len(128).not_null())
                    .col(ColumnDef::new(F::Score).double().not_null())
                    .col(ColumnDef::new(F::Comment).text().null())
                    .col(id(F::Actor))
                    .col(ts(F::CreatedAt))
                    .foreign_key(&mut tenant_fk(F::Table, F::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_feedback_tenant_request")
                    .table(F::Table)
                    .col(F::TenantId)
                    .col(F::RequestId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            MonitoringFeedback::Table.into_iden(),
            MonitoringRollups::Table.into_iden(),
            MonitoringRecords::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
