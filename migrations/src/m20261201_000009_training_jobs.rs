//! The training job queue: one row per job (fine-tune, quantize, distill,
//! evaluate), claimed by workers under an expiring lease and fenced by its
//! attempt number.
//!
//! Lease and back-off times are integer Unix milliseconds: compared on every
//! claim, they must order the same on every database (SQLite keeps
//! timestamps as text).

use crate::columns::{id, ts, ts_null};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TrainingJobs {
    Table,
    Id,
    TenantId,
    Kind,
    Status,
    Priority,
    GpuType,
    Gpus,
    Spec,
    Attempt,
    MaxAttempts,
    LeaseOwner,
    LeaseUntilMs,
    NotBeforeMs,
    Control,
    WaitReason,
    Error,
    Result,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TrainingJobs as J;
        manager
            .create_table(
                Table::create()
                    .table(J::Table)
                    .col(id(J::Id).primary_key())
                    .col(id(J::TenantId))
                    // fine_tune, quantize, distill, evaluate
                    .col(ColumnDef::new(J::Kind).string_len(16).not_null())
                    // validating_files, queued, running, paused, succeeded, failed, cancelled
                    .col(ColumnDef::new(J::Status).string_len(24).not_null())
                    .col(ColumnDef::new(J::Priority).integer().not_null().default(0))
                    // A pool's GPU type (`cpu` for CPU workers).
                    .col(ColumnDef::new(J::GpuType).string_len(64).not_null())
                    // All the job's devices: per node × nodes.
                    .col(ColumnDef::new(J::Gpus).integer().not_null())
                    .col(ColumnDef::new(J::Spec).text().not_null())
                    .col(ColumnDef::new(J::Attempt).integer().not_null().default(0))
                    .col(ColumnDef::new(J::MaxAttempts).integer().not_null())
                    .col(ColumnDef::new(J::LeaseOwner).string_len(128).null())
                    .col(ColumnDef::new(J::LeaseUntilMs).big_integer().null())
                    .col(
                        ColumnDef::new(J::NotBeforeMs)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    // cancel or pause, asked of a running attempt.
                    .col(ColumnDef::new(J::Control).string_len(16).null())
                    // quota, capacity, budget: why a queued job waits.
                    .col(ColumnDef::new(J::WaitReason).string_len(16).null())
                    .col(ColumnDef::new(J::Error).text().null())
                    .col(ColumnDef::new(J::Result).text().null())
                    .col(ts(J::CreatedAt))
                    .col(ts(J::UpdatedAt))
                    .col(ts_null(J::StartedAt))
                    .col(ts_null(J::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_training_jobs_tenant_created")
                    .table(J::Table)
                    .col(J::TenantId)
                    .col(J::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_training_jobs_claimable")
                    .table(J::Table)
                    .col(J::Status)
                    .col(J::GpuType)
                    .col(J::Priority)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TrainingJobs::Table).to_owned())
            .await
    }
}
