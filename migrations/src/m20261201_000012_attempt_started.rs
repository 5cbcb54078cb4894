//! When the current attempt of a training job started (Unix ms): an
//! attempt whose worker vanished is billed from it to its last heartbeat
//! when the job is claimed again or given up.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TrainingJobs {
    Table,
    AttemptStartedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TrainingJobs::Table)
                    .add_column(
                        ColumnDef::new(TrainingJobs::AttemptStartedMs)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TrainingJobs::Table)
                    .drop_column(TrainingJobs::AttemptStartedMs)
                    .to_owned(),
            )
            .await
    }
}
