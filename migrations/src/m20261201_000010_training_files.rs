//! What fine-tuning reads and writes besides the queue: uploaded training
//! files, each job's events (log lines and metrics) and checkpoints; and a
//! key that makes a job's registry versions unique, so an output registered
//! by one attempt is never registered again by another.

use crate::columns::{id, ts};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TrainingFiles {
    Table,
    Id,
    TenantId,
    Purpose,
    Filename,
    Bytes,
    Sha256,
    ArtifactKey,
    Stats,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TrainingEvents {
    Table,
    Id,
    TenantId,
    JobId,
    Attempt,
    Level,
    Kind,
    Message,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TrainingCheckpoints {
    Table,
    Id,
    TenantId,
    JobId,
    Attempt,
    Step,
    Metrics,
    ArtifactKey,
    VersionRef,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RegistryVersions {
    Table,
    TenantId,
    SourceKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TrainingFiles as F;
        manager
            .create_table(
                Table::create()
                    .table(F::Table)
                    .col(id(F::Id).primary_key())
                    .col(id(F::TenantId))
                    .col(ColumnDef::new(F::Purpose).string_len(32).not_null())
                    .col(ColumnDef::new(F::Filename).string_len(256).not_null())
                    .col(ColumnDef::new(F::Bytes).big_integer().not_null())
                    .col(ColumnDef::new(F::Sha256).string_len(64).not_null())
                    .col(ColumnDef::new(F::ArtifactKey).string_len(512).not_null())
                    // What validation counted: lines, examples, messages, tokens.
                    .col(ColumnDef::new(F::Stats).text().not_null())
                    .col(ts(F::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_training_files_tenant_created")
                    .table(F::Table)
                    .col(F::TenantId)
                    .col(F::CreatedAt)
                    .to_owned(),
            )
            .await?;

        use TrainingEvents as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(id(E::Id).primary_key())
                    .col(id(E::TenantId))
                    .col(id(E::JobId))
                    .col(ColumnDef::new(E::Attempt).integer().not_null())
                    // info, warn, error
                    .col(ColumnDef::new(E::Level).string_len(8).not_null())
                    // message, metrics
                    .col(ColumnDef::new(E::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(E::Message).text().not_null())
                    .col(ColumnDef::new(E::Data).text().null())
                    .col(ts(E::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_training_events_job")
                    .table(E::Table)
                    .col(E::JobId)
                    .col(E::Id)
                    .to_owned(),
            )
            .await?;

        use TrainingCheckpoints as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(id(C::Id).primary_key())
                    .col(id(C::TenantId))
                    .col(id(C::JobId))
                    .col(ColumnDef::new(C::Attempt).integer().not_null())
                    .col(ColumnDef::new(C::Step).big_integer().not_null())
                    .col(ColumnDef::new(C::Metrics).text().not_null())
                    .col(ColumnDef::new(C::ArtifactKey).string_len(512).not_null())
                    // The registry version (`name@N`) once registered.
                    .col(ColumnDef::new(C::VersionRef).string_len(200).null())
                    .col(ts(C::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_training_checkpoints_job_step")
                    .table(C::Table)
                    .col(C::JobId)
                    .col(C::Step)
                    .unique()
                    .to_owned(),
            )
            .await?;

        // `ftjob_…` for a job's output, `ftjob_…#step-N` for a checkpoint;
        // NULL (never equal) for everything else.
        manager
            .alter_table(
                Table::alter()
                    .table(RegistryVersions::Table)
                    .add_column(
                        ColumnDef::new(RegistryVersions::SourceKey)
                            .string_len(100)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_registry_versions_source_key")
                    .table(RegistryVersions::Table)
                    .col(RegistryVersions::TenantId)
                    .col(RegistryVersions::SourceKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_registry_versions_source_key")
                    .table(RegistryVersions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RegistryVersions::Table)
                    .drop_column(RegistryVersions::SourceKey)
                    .to_owned(),
            )
            .await?;
        for t in [
            TrainingCheckpoints::Table.into_iden(),
            TrainingEvents::Table.into_iden(),
            TrainingFiles::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
