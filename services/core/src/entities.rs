//! sea-orm entities of the tables the shared kernel owns (identity, plans,
//! usage events). Each service owns its own entities in its own crate.

pub mod api_key;
pub mod plan;
pub mod tenant;
pub mod tenant_plan_change;
pub mod usage_event;
pub mod user;
pub mod user_invitation;
pub mod user_session;
