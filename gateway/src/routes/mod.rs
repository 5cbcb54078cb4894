//! HTTP routes, one file per resource.

pub mod admin_plans;
pub mod admin_tenants;
pub mod admin_usage;
pub mod api_keys;
pub mod auth;
pub mod health;
pub mod tenant;
pub mod usage;
pub mod users;

use actix_web::web;

/// `/v1` routes (behind authentication, except login).
pub fn v1(cfg: &mut web::ServiceConfig) {
    auth::configure(cfg);
    tenant::configure(cfg);
    api_keys::configure(cfg);
    usage::configure(cfg);
    users::configure(cfg);
}

/// `/admin/v1` routes (behind the operator token).
pub fn admin(cfg: &mut web::ServiceConfig) {
    admin_tenants::configure(cfg);
    admin_plans::configure(cfg);
    admin_usage::configure(cfg);
}
