//! Monitoring: one record per inference call, rollups per minute and hour
//! with mergeable latency sketches, feedback on calls, sampled prompt
//! embeddings and drift reports. Every row goes with its tenant (cascade).

use crate::columns::{id, ts, ts_null};
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
enum MonitoringSamples {
    Table,
    Id,
    TenantId,
    Model,
    CreatedAt,
    Vector,
}

#[derive(DeriveIden)]
enum MonitoringDriftReports {
    Table,
    Id,
    TenantId,
    Model,
    Status,
    Trigger,
    ReferenceStart,
    ReferenceEnd,
    CurrentStart,
    CurrentEnd,
    Drifted,
    Result,
    Error,
    CreatedAt,
    StartedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum MonitoringAlertRules {
    Table,
    Id,
    TenantId,
    Name,
    Metric,
    Model,
    Threshold,
    WindowSecs,
    MinRequests,
    WebhookUrl,
    WebhookSecret,
    Action,
    Enabled,
    SilencedUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MonitoringAlerts {
    Table,
    Id,
    TenantId,
    RuleId,
    OpenRuleId,
    Metric,
    Model,
    Status,
    Value,
    Threshold,
    Details,
    ActionResult,
    StartedAt,
    ResolvedAt,
    AcknowledgedAt,
    AcknowledgedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MonitoringDeliveries {
    Table,
    Id,
    TenantId,
    AlertId,
    Event,
    Url,
    Payload,
    Attempts,
    Status,
    NextAttemptAt,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
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
                    .name("ix_monitoring_records_started")
                    .table(R::Table)
                    .col(R::StartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_records_tenant_id")
                    .table(R::Table)
                    .col(R::TenantId)
                    .col(R::Id)
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

        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_rollups_resolution_bucket")
                    .table(U::Table)
                    .col(U::ResolutionSecs)
                    .col(U::BucketStart)
                    .to_owned(),
            )
            .await?;

        use MonitoringSamples as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(id(S::Id).primary_key())
                    .col(id(S::TenantId))
                    .col(ColumnDef::new(S::Model).string_len(128).not_null())
                    .col(ts(S::CreatedAt))
                    .col(ColumnDef::new(S::Vector).text().not_null())
                    .foreign_key(&mut tenant_fk(S::Table, S::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_samples_tenant_model_created")
                    .table(S::Table)
                    .col(S::TenantId)
                    .col(S::Model)
                    .col(S::CreatedAt)
                    .to_owned(),
            )
            .await?;

        use MonitoringDriftReports as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(id(D::Id).primary_key())
                    .col(id(D::TenantId))
                    .col(ColumnDef::new(D::Model).string_len(128).not_null())
                    .col(ColumnDef::new(D::Status).string_len(16).not_null())
                    .col(ColumnDef::new(D::Trigger).string_len(16).not_null())
                    .col(ts(D::ReferenceStart))
                    .col(ts(D::ReferenceEnd))
                    .col(ts(D::CurrentStart))
                    .col(ts(D::CurrentEnd))
                    .col(ColumnDef::new(D::Drifted).boolean().null())
                    .col(ColumnDef::new(D::Result).text().null())
                    .col(ColumnDef::new(D::Error).text().null())
                    .col(ts(D::CreatedAt))
                    .col(ts_null(D::StartedAt))
                    .col(ts_null(D::CompletedAt))
                    .foreign_key(&mut tenant_fk(D::Table, D::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_drift_reports_status")
                    .table(D::Table)
                    .col(D::Status)
                    .col(D::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_drift_reports_tenant_model")
                    .table(D::Table)
                    .col(D::TenantId)
                    .col(D::Model)
                    .col(D::CreatedAt)
                    .to_owned(),
            )
            .await?;

        use MonitoringAlertRules as AR;
        manager
            .create_table(
                Table::create()
                    .table(AR::Table)
                    .col(id(AR::Id).primary_key())
                    .col(id(AR::TenantId))
                    .col(ColumnDef::new(AR::Name).string_len(100).not_null())
                    .col(ColumnDef::new(AR::Metric).string_len(32).not_null())
                    .col(ColumnDef::new(AR::Model).string_len(128).null())
                    .col(ColumnDef::new(AR::Threshold).double().not_null())
                    .col(ColumnDef::new(AR::WindowSecs).big_integer().not_null())
                    .col(ColumnDef::new(AR::MinRequests).big_integer().not_null())
                    .col(ColumnDef::new(AR::WebhookUrl).text().null())
                    .col(ColumnDef::new(AR::WebhookSecret).string_len(80).null())
                    .col(ColumnDef::new(AR::Action).text().null())
                    .col(ColumnDef::new(AR::Enabled).boolean().not_null())
                    .col(ts_null(AR::SilencedUntil))
                    .col(ts(AR::CreatedAt))
                    .col(ts(AR::UpdatedAt))
                    .foreign_key(&mut tenant_fk(AR::Table, AR::TenantId))
                    .to_owned(),
            )
            .await?;

        use MonitoringAlerts as A;
        manager
            .create_table(
                Table::create()
                    .table(A::Table)
                    .col(id(A::Id).primary_key())
                    .col(id(A::TenantId))
                    .col(id(A::RuleId))
                    // The rule's id while the alert fires, null once
                    // resolved: one open alert per rule, by a unique index.
                    .col(ColumnDef::new(A::OpenRuleId).string_len(40).null())
                    .col(ColumnDef::new(A::Metric).string_len(32).not_null())
                    .col(ColumnDef::new(A::Model).string_len(128).null())
                    .col(ColumnDef::new(A::Status).string_len(16).not_null())
                    .col(ColumnDef::new(A::Value).double().not_null())
                    .col(ColumnDef::new(A::Threshold).double().not_null())
                    .col(ColumnDef::new(A::Details).text().not_null())
                    .col(ColumnDef::new(A::ActionResult).text().null())
                    .col(ts(A::StartedAt))
                    .col(ts_null(A::ResolvedAt))
                    .col(ts_null(A::AcknowledgedAt))
                    .col(ColumnDef::new(A::AcknowledgedBy).string_len(40).null())
                    .col(ts(A::UpdatedAt))
                    .foreign_key(&mut tenant_fk(A::Table, A::TenantId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(A::Table, A::RuleId)
                            .to(AR::Table, AR::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_monitoring_alerts_open_rule")
                    .table(A::Table)
                    .col(A::OpenRuleId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_alerts_tenant_started")
                    .table(A::Table)
                    .col(A::TenantId)
                    .col(A::StartedAt)
                    .to_owned(),
            )
            .await?;

        use MonitoringDeliveries as W;
        manager
            .create_table(
                Table::create()
                    .table(W::Table)
                    .col(id(W::Id).primary_key())
                    .col(id(W::TenantId))
                    .col(id(W::AlertId))
                    .col(ColumnDef::new(W::Event).string_len(32).not_null())
                    .col(ColumnDef::new(W::Url).text().not_null())
                    .col(ColumnDef::new(W::Payload).text().not_null())
                    .col(ColumnDef::new(W::Attempts).integer().not_null())
                    .col(ColumnDef::new(W::Status).string_len(16).not_null())
                    .col(ts(W::NextAttemptAt))
                    .col(ColumnDef::new(W::LastStatus).integer().null())
                    .col(ColumnDef::new(W::LastError).text().null())
                    .col(ts(W::CreatedAt))
                    .col(ts_null(W::DeliveredAt))
                    .foreign_key(&mut tenant_fk(W::Table, W::TenantId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(W::Table, W::AlertId)
                            .to(A::Table, A::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_monitoring_deliveries_due")
                    .table(W::Table)
                    .col(W::Status)
                    .col(W::NextAttemptAt)
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
            MonitoringDeliveries::Table.into_iden(),
            MonitoringAlerts::Table.into_iden(),
            MonitoringAlertRules::Table.into_iden(),
            MonitoringFeedback::Table.into_iden(),
            MonitoringDriftReports::Table.into_iden(),
            MonitoringSamples::Table.into_iden(),
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
