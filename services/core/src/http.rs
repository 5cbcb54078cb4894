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

/// A JSON request body, read up to the app's [`JsonLimit`].
///
/// Like actix's `web::Json`, with errors as problems (400 malformed, 413 too
/// large, 415 not JSON, 422 invalid fields) and one difference: a number
/// with no fractional part written as a float (`81.0`, `1e2`) is accepted
/// where an integer is expected, as JSON Schema's `integer` allows.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// `application/json` or any `…+json` type.
fn is_json(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(m)) => m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"),
        _ => false,
    }
}

/// Rewrites floats without a fractional part into integers, everywhere in
/// the value (floats that need one stay as they are).
fn integral_floats_to_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.2e18
            {
                *v = if f < 0.0 {
                    Value::from(f as i64)
                } else {
                    Value::from(f as u64)
                };
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(o) => o.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Parses a JSON body into `T`.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    let data_error = |e: serde_json::Error| ApiError::Validation {
        detail: e.to_string(),
        errors: vec![],
    };
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        Err(e) if e.classify() == Category::Data => {
            // Perhaps only an integer written as a float: try once more.
            let mut value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|_| data_error(e))?;
            integral_floats_to_integers(&mut value);
            serde_json::from_value(value).map_err(data_error)
        }
        Err(e) => Err(ApiError::BadRequest(format!("malformed JSON: {e}"))),
    }
}

/// The largest JSON body the app accepts (registered as app data; 1 MiB
/// when absent).
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        use futures_util::StreamExt;
        let json = is_json(req);
        let limit = req.app_data::<JsonLimit>().map_or(1 << 20, |l| l.0);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as JSON with `Content-Type: application/json`".into(),
                ));
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::BadRequest(format!("reading the body failed: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(Json)
        })
    }
}
