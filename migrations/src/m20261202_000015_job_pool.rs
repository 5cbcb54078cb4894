//! The GPU pool a job's current attempt runs in (its worker's `--pool`):
//! the attempt's metered time carries it, so invoices price it per pool.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TrainingJobs {
    Table,
    Pool,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TrainingJobs::Table)
                    .add_column(ColumnDef::new(TrainingJobs::Pool).string_len(64).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TrainingJobs::Table)
                    .drop_column(TrainingJobs::Pool)
                    .to_owned(),
            )
            .await
    }
}
