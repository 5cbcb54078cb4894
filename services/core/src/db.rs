//! Database connection and the one place where tenant scoping happens.

use crate::config::Config;
use crate::ids::TenantId;
use sea_orm::{
    ColumnTrait, ConnectOptions, Database, DatabaseConnection, DbErr, DeleteMany, EntityTrait,
    QueryFilter, Select, UpdateMany,
};
use std::time::Duration;

pub type Db = DatabaseConnection;

/// Opens the pool the configuration names, creating the SQLite directory.
pub async fn connect(cfg: &Config) -> Result<Db, DbErr> {
    let url = cfg.database_url();
    if cfg.is_sqlite() {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            DbErr::Custom(format!(
                "cannot create data dir {}: {e}",
                cfg.data_dir.display()
            ))
        })?;
    }
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(cfg.database_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    let db = Database::connect(opts).await?;
    if cfg.is_sqlite() {
        use sea_orm::ConnectionTrait;
        // WAL lets readers run beside the single writer; the busy timeout
        // turns lock contention into waiting instead of `database is locked`.
        for pragma in [
            "PRAGMA journal_mode=WAL",
            "PRAGMA busy_timeout=5000",
            "PRAGMA foreign_keys=ON",
        ] {
            db.execute_unprepared(pragma).await?;
        }
    }
    Ok(db)
}

/// An entity whose rows belong to one tenant.
pub trait TenantOwned: EntityTrait {
    fn tenant_column() -> Self::Column;
}

/// Every query on tenant-owned rows goes through this: it cannot be built
/// without a tenant id, which HTTP handlers only get from a `TenantCtx`.
#[derive(Debug, Clone, Copy)]
pub struct Scoped {
    tenant_id: TenantId,
}

impl Scoped {
    pub fn new(tenant_id: TenantId) -> Self {
        Self { tenant_id }
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn find<E: TenantOwned>(&self) -> Select<E> {
        E::find().filter(E::tenant_column().eq(self.tenant_id.to_string()))
    }

    pub fn update_many<E: TenantOwned>(&self) -> UpdateMany<E> {
        E::update_many().filter(E::tenant_column().eq(self.tenant_id.to_string()))
    }

    pub fn delete_many<E: TenantOwned>(&self) -> DeleteMany<E> {
        E::delete_many().filter(E::tenant_column().eq(self.tenant_id.to_string()))
    }
}

/// Implements [`TenantOwned`] for entity modules (in scope by name)
/// whose table keeps the owner in `tenant_id`.
#[macro_export]
macro_rules! tenant_owned {
    ($($m:ident),* $(,)?) => {$(
        impl $crate::db::TenantOwned for $m::Entity {
            fn tenant_column() -> Self::Column {
                $m::Column::TenantId
            }
        }
    )*};
}

use crate::entities::{api_key, usage_event, user, user_invitation, user_session};
crate::tenant_owned!(api_key, user, usage_event, user_invitation, user_session);

/// Is this error a unique-constraint violation?
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Begins a transaction that will write. On SQLite it takes the write lock
/// up front (`BEGIN IMMEDIATE`), so concurrent writers wait on the busy
/// timeout instead of failing when a read lock would have to be upgraded.
pub async fn begin_write<C: sea_orm::TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
