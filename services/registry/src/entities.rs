//! Tables the registry owns.

pub mod alias;
pub mod event;
pub mod model;
pub mod version;

use llmops_core::db::TenantOwned;

macro_rules! tenant_owned {
    ($($m:ident),*) => {$(
        impl TenantOwned for $m::Entity {
            fn tenant_column() -> Self::Column {
                $m::Column::TenantId
            }
        }
    )*};
}

tenant_owned!(alias, event, model, version);
