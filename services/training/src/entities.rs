//! Tables of the training service besides the queue (which reads and
//! writes `training_jobs` with its own SQL).

pub mod checkpoint;
pub mod event;
pub mod file;

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

tenant_owned!(checkpoint, event, file);
