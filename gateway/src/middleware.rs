//! The request pipeline: request id, problem bodies, metrics and logs
//! (outermost); authentication and rate limits (for `/v1`); the operator
//! token (for `/admin/v1`).

use crate::monitor::{RecordBody, Watch};
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use llmops_core::error::{PROBLEM_JSON, ProblemCode, REQUEST, RequestInfo};
use llmops_core::ids::new_request_id;
use llmops_core::monitor::CallKind;
use llmops_core::{ApiError, TenantCtx};
use std::time::Instant;
use subtle_eq::ct_eq;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes under `/v1` that need no credentials.
const PUBLIC_V1: &[&str] = &[
    "/v1/auth/login",
    "/v1/auth/sessions",
    "/v1/auth/invitations/accept",
    "/v1/billing/stripe/webhook",
];

/// Whether a `/v1` route needs no credentials.
pub fn is_public(path: &str) -> bool {
    PUBLIC_V1.contains(&path)
}

/// A monitoring watch for an inference call (none for other routes or
/// with monitoring off). Routing matches the percent-decoded path: so
/// does monitoring.
pub fn watch_for(state: &AppState, req: &ServiceRequest) -> Option<Watch> {
    let path = percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy();
    CallKind::of_route(req.method().as_str(), &path)
        .filter(|_| state.config.monitoring_enabled)
        .map(|kind| {
            Watch::new(
                state.monitoring.sink(),
                kind,
                state.config.metrics_tenant_labels,
            )
        })
}

/// Accepts a caller's request id if it is short and printable.
fn propagated_id(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

/// The problem a bare error status stands for (actix's own 404/405, …).
fn problem_for_status(status: StatusCode, method: &str, path: &str) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::RouteNotFound(format!("{method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(method.to_string()),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: 0 },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("unsupported content type".into())
        }
        s if s.is_client_error() => ApiError::BadRequest(
            s.canonical_reason()
                .unwrap_or("the request could not be processed")
                .to_string(),
        ),
        _ => ApiError::Internal(format!("bare {status} response").into()),
    }
}

/// Outermost middleware.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let start = Instant::now();
    let request_id = propagated_id(&req).unwrap_or_else(new_request_id);
    let method = req.method().to_string();
    let path = req.path().to_string();
    let info = RequestInfo {
        request_id: request_id.clone(),
        path: path.clone(),
    };
    let (method2, path2) = (method.clone(), path.clone());
    let res: Result<ServiceResponse<BoxBody>, Error> = REQUEST
        .scope(info, async move {
            // Inner middlewares answer errors themselves (so their bodies
            // name the request); an `Err` here comes from the framework.
            let res = next.call(req).await?.map_into_boxed_body();
            let status = res.status();
            let is_problem = res
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
            Ok(
                if (status.is_client_error() || status.is_server_error()) && !is_problem {
                    let err = problem_for_status(status, &method2, &path2);
                    let mut fresh = err.error_response();
                    *fresh.status_mut() = status;
                    for (k, v) in res.headers() {
                        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                            fresh.headers_mut().insert(k.clone(), v.clone());
                        }
                    }
                    res.into_response(fresh)
                } else {
                    res
                },
            )
        })
        .await;
    let mut res: ServiceResponse<BoxBody> = res?;

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let status = res.status().as_u16();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let elapsed = start.elapsed();
    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    let tenant_id = res
        .request()
        .extensions()
        .get::<llmops_core::TenantCtx>()
        .map(|c| c.tenant_id().to_string());
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        tenant_id = tenant_id.as_deref().unwrap_or("-"),
        "request"
    );
    Ok(res)
}

/// Authenticates `/v1` calls and applies the tenant's rate limits.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if is_public(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let state = match app_state(&req) {
        Ok(s) => s,
        Err(e) => return Ok(req.error_response(e).map_into_boxed_body()),
    };
    let ctx = match authenticated(&state, &req).await {
        Ok(ctx) => ctx,
        Err(e) => return Ok(req.error_response(e).map_into_boxed_body()),
    };
    // Inference calls get a monitoring record, refused ones included. A
    // call forwarded to a service elsewhere is recorded there (where the
    // service fills the record); only the edge's refusals are recorded here.
    let mut watch = watch_for(&state, &req);
    let decoded = percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy();
    let forwarded =
        state.topology.forwards() && !state.topology.runs(crate::split::owner(&decoded));
    let ctx = match &watch {
        Some(w) => ctx.with_probe(w.probe.clone()),
        None => ctx,
    };
    let admission = match state.limiter.admit(&ctx).await {
        Ok(a) => a,
        Err(e) => {
            if let Some(w) = watch {
                let code = llmops_core::error::Problem::from_error(&e).code;
                w.finish(&ctx, e.status_code().as_u16(), Some(code), true);
            }
            return Ok(req.error_response(e).map_into_boxed_body());
        }
    };
    if forwarded {
        watch = None;
    }
    req.extensions_mut().insert(ctx.clone());
    let mut res = next.call(req).await?.map_into_boxed_body();
    for h in &admission.headers {
        for (k, v) in h.to_headers() {
            // A handler that spent tokens has set fresher token headers.
            if !res.headers().contains_key(&k) {
                res.headers_mut().insert(k, v);
            }
        }
    }
    // The concurrency slot is held until the body is sent (or the client
    // goes away), so a long stream counts as in flight throughout.
    let slot = admission.slot;
    let status = res.status().as_u16();
    let error = res
        .response()
        .extensions()
        .get::<ProblemCode>()
        .map(|c| c.0.clone());
    Ok(res.map_body(move |_, body| {
        let body = BoxBody::new(SlotBody::new(body, slot));
        match watch {
            Some(w) => BoxBody::new(RecordBody::new(body, w, ctx, status, error)),
            None => body,
        }
    }))
}

/// The caller: from `Authorization` (an API key or a JWT) or, without
/// one, from the dashboard's session cookie, whose changes must carry the
/// session's CSRF token. A read-only user's changes are refused here, at
/// the edge, for every service behind it (signing out excepted).
async fn authenticated(state: &AppState, req: &ServiceRequest) -> Result<TenantCtx, ApiError> {
    let authorization = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::Unauthenticated("Authorization header is not valid text".into())
        })?),
    };
    let secure = crate::session::is_https(req.request());
    let ctx = match (
        authorization,
        crate::session::cookie_value(req.headers(), secure),
    ) {
        (None, Some(secret)) => {
            let (ctx, session) = state.auth.authenticate_session(&secret).await?;
            crate::session::check_change(req, &session)?;
            req.extensions_mut().insert(session);
            ctx
        }
        _ => state.auth.authenticate(authorization).await?,
    };
    if ctx.is_read_only()
        && !crate::session::is_safe(req.method())
        && req.path() != "/v1/auth/session"
    {
        return Err(ApiError::ReadOnly);
    }
    Ok(ctx)
}

pub(crate) fn app_state(req: &ServiceRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("app state missing".into()))
}

fn check_operator(req: &ServiceRequest) -> Result<(), ApiError> {
    let state = app_state(req)?;
    let Some(expected) = &state.config.operator_token else {
        return Err(ApiError::OperatorOnly);
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthenticated("operator token required".into()))?;
    if !ct_eq(given.as_bytes(), expected.expose().as_bytes()) {
        return Err(ApiError::Unauthenticated("operator token is wrong".into()));
    }
    Ok(())
}

/// Guards `/admin/v1` with the operator token.
pub async fn operator_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let Err(e) = check_operator(&req) {
        return Ok(req.error_response(e).map_into_boxed_body());
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

pub(crate) mod subtle_eq {
    /// Constant-time equality of two byte strings (length may leak).
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Fallback for unknown routes.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::RouteNotFound(format!("{} {}", req.method(), req.path())).error_response()
}

/// A response body that holds a concurrency slot while it is sent, and
/// frees it before its last chunk goes out: a client that sends its next
/// request as soon as this one ends finds the slot free. It looks one chunk
/// ahead only when the next chunk is already there, so streams are not
/// delayed. Dropped early (the client went away), the slot frees itself.
struct SlotBody {
    body: BoxBody,
    slot: Option<crate::ratelimit::ConcurrencySlot>,
    /// A chunk held back until we know whether it is the last.
    held: Option<actix_web::web::Bytes>,
    releasing: Option<futures_util::future::BoxFuture<'static, ()>>,
    ended: bool,
}

impl SlotBody {
    fn new(body: BoxBody, slot: crate::ratelimit::ConcurrencySlot) -> Self {
        Self {
            body,
            slot: Some(slot),
            held: None,
            releasing: None,
            ended: false,
        }
    }
}

impl MessageBody for SlotBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(fut) = this.releasing.as_mut() {
                if fut.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.releasing = None;
            }
            if this.ended {
                return Poll::Ready(this.held.take().map(Ok));
            }
            match std::pin::Pin::new(&mut this.body).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(prev) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(prev)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.slot = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    if let Some(slot) = this.slot.take() {
                        this.releasing = slot.release();
                    }
                }
                Poll::Pending => {
                    return match this.held.take() {
                        Some(prev) => Poll::Ready(Some(Ok(prev))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
