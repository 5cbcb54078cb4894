//! Schema history. Each migration describes the schema at that point in
//! time with its own identifiers and never imports entity types, so later
//! changes to entities cannot rewrite history.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261128_000001_identity;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261128_000001_identity::Migration)]
    }
}
