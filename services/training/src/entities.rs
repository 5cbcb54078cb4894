//! Tables of the training service besides the queue (which reads and
//! writes `training_jobs` with its own SQL).

pub mod checkpoint;
pub mod event;
pub mod file;

llmops_core::tenant_owned!(checkpoint, event, file);
