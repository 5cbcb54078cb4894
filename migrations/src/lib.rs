//! Schema history. Each migration describes the schema at that point in
//! time with its own identifiers and never imports entity types, so later
//! changes to entities cannot rewrite history.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod columns;
mod m20261128_000001_identity;
mod m20261128_000002_registry;
mod m20261128_000003_deployments;
mod m20261128_000004_billing;
mod m20261128_000005_budgets;
mod m20261128_000006_stripe_events;
mod m20261128_000007_stripe_push;
mod m20261128_000008_plan_changes;
mod m20261201_000009_training_jobs;
mod m20261201_000010_training_files;
mod m20261201_000011_gpu_pools;
mod m20261201_000012_attempt_started;
mod m20261202_000013_evaluations;
mod m20261202_000014_training_workers;
mod m20261202_000015_job_pool;
mod m20261202_000016_rag;
mod m20261202_000017_cache;
mod m20261202_000018_monitoring;
mod m20261203_000019_sessions;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_identity::Migration),
            Box::new(m20261128_000002_registry::Migration),
            Box::new(m20261128_000003_deployments::Migration),
            Box::new(m20261128_000004_billing::Migration),
            Box::new(m20261128_000005_budgets::Migration),
            Box::new(m20261128_000006_stripe_events::Migration),
            Box::new(m20261128_000007_stripe_push::Migration),
            Box::new(m20261128_000008_plan_changes::Migration),
            Box::new(m20261201_000009_training_jobs::Migration),
            Box::new(m20261201_000010_training_files::Migration),
            Box::new(m20261201_000011_gpu_pools::Migration),
            Box::new(m20261201_000012_attempt_started::Migration),
            Box::new(m20261202_000013_evaluations::Migration),
            Box::new(m20261202_000014_training_workers::Migration),
            Box::new(m20261202_000015_job_pool::Migration),
            Box::new(m20261202_000016_rag::Migration),
            Box::new(m20261202_000017_cache::Migration),
            Box::new(m20261202_000018_monitoring::Migration),
            Box::new(m20261203_000019_sessions::Migration),
        ]
    }
}

/// Applies pending migrations. On PostgreSQL it holds an advisory lock in
/// the same transaction, so replicas starting together migrate one at a time
/// (DDL is transactional there: a failed migration leaves nothing behind).
pub async fn up(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = db.begin().await?;
    // An arbitrary constant naming "llmops schema migrations".
    txn.execute_unprepared("SELECT pg_advisory_xact_lock(7203114455)")
        .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}
