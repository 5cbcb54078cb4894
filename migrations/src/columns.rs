//! Column shapes the migrations share (plain schema vocabulary: no entity
//! types, so history never changes with the code).

use sea_orm_migration::prelude::*;

/// A prefixed id (`ten_…`, `key_…`), not null.
pub fn id<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string_len(40).not_null().to_owned()
}

/// A timestamp with time zone, not null.
pub fn ts<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

/// A timestamp with time zone, nullable.
pub fn ts_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}
