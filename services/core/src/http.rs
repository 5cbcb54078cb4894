//! HTTP glue every service's routes share.

use crate::{ApiError, TenantCtx};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use std::future::{Ready, ready};

/// The authenticated tenant, put in the request by the gateway's auth
/// middleware. A handler that takes it cannot run unauthenticated.
pub struct Tenant(pub TenantCtx);

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<TenantCtx>()
                .cloned()
                .map(Tenant)
                .ok_or_else(|| ApiError::Unauthenticated("missing credentials".into())),
        )
    }
}
