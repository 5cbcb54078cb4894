//! Tables the registry owns.

pub mod alias;
pub mod evaluation;
pub mod event;
pub mod model;
pub mod version;

llmops_core::tenant_owned!(alias, evaluation, event, model, version);
