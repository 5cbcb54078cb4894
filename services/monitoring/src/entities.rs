//! The monitoring tables.

pub mod feedback;
pub mod record;
pub mod rollup;

llmops_core::tenant_owned!(feedback, record, rollup);
