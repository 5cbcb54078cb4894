//! Tables the registry owns.

pub mod alias;
pub mod event;
pub mod model;
pub mod version;

llmops_core::tenant_owned!(alias, event, model, version);
