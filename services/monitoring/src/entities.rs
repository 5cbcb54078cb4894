//! The monitoring tables.

pub mod alert;
pub mod alert_rule;
pub mod delivery;
pub mod drift_report;
pub mod feedback;
pub mod record;
pub mod rollup;
pub mod sample;

llmops_core::tenant_owned!(
    alert,
    alert_rule,
    delivery,
    drift_report,
    feedback,
    record,
    rollup,
    sample
);
