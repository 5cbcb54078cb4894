//! Split mode: which services this process runs, which route belongs to
//! which service, the gateway's forwarding of a route to the service that
//! runs elsewhere, and a service's check of the gateway's internal token.
//!
//! `llmops serve --services all` (the default) runs everything here and
//! none of this is in the path. `--services gateway` keeps authentication,
//! limits and problem+json at the edge and forwards the routes of every
//! service not run here to `service_urls`; `--services registry,billing`
//! serves only those routes, to callers that present a token the gateway
//! signed (`llmops_core::internal`).

use crate::monitor::RecordBody;
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use anyhow::Context;
use futures_util::StreamExt;
use llmops_core::config::Config;
use llmops_core::error::{ProblemCode, REQUEST};
use llmops_core::internal::{Caller, HEADER, InternalKeys, SERVICES, Target};
use llmops_core::{ApiError, TenantCtx};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The edge's own name in `--services`.
pub const GATEWAY: &str = "gateway";

/// How long a forwarded request may take to connect to its service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `retry-after` of a route whose service is down.
const DOWN_RETRY_SECS: u64 = 5;

/// Which route belongs to which service: the first rule whose segments
/// prefix the path (`*` matches one segment) wins; the rest is the
/// gateway's (tenants, keys, login, usage, tenants and plans for the
/// operator, health). A test holds every route of each service's OpenAPI
/// document to its owner here.
const ROUTES: &[(&str, &str)] = &[
    ("/v1/chat/completions", "serving"),
    ("/v1/completions", "serving"),
    ("/v1/embeddings", "serving"),
    ("/v1/models", "serving"),
    ("/v1/deployments", "serving"),
    ("/v1/cache", "serving"),
    ("/v1/registry", "registry"),
    ("/v1/billing", "billing"),
    ("/v1/invoices", "billing"),
    ("/admin/v1/billing", "billing"),
    ("/admin/v1/invoices", "billing"),
    ("/admin/v1/plans/*/pricing", "billing"),
    ("/v1/files", "training"),
    ("/v1/fine_tuning", "training"),
    ("/v1/training", "training"),
    ("/admin/v1/gpu_pools", "training"),
    ("/admin/v1/training", "training"),
    ("/admin/v1/plans/*/training_quotas", "training"),
    ("/v1/rag", "rag"),
    ("/admin/v1/plans/*/rag_limits", "rag"),
    ("/admin/v1/tenants/*/rag", "rag"),
    ("/v1/monitoring", "monitoring"),
    ("/v1/feedback", "monitoring"),
    ("/admin/v1/monitoring", "monitoring"),
];

/// The service a path belongs to (`gateway` for the edge's own routes).
pub fn owner(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES
        .iter()
        .find(|(pattern, _)| {
            let want: Vec<&str> = pattern.split('/').collect();
            want.len() <= segments.len()
                && want.iter().zip(&segments).all(|(w, s)| *w == "*" || w == s)
        })
        .map_or(GATEWAY, |(_, service)| service)
}

/// What this process runs and where the rest is.
pub struct Topology {
    local: BTreeSet<String>,
    remote: BTreeMap<String, String>,
    keys: Option<Arc<InternalKeys>>,
    /// Forwards routes and checks remote readiness (split mode only).
    client: Option<reqwest::Client>,
}

impl Topology {
    /// Everything in this process (`--services all`).
    pub fn all() -> Self {
        Self {
            local: std::iter::once(GATEWAY)
                .chain(SERVICES.iter().copied())
                .map(str::to_string)
                .collect(),
            remote: BTreeMap::new(),
            keys: None,
            client: None,
        }
    }

    /// `--services` as given: `all`, or a comma list of `gateway` and
    /// service names.
    pub fn from_spec(spec: &str, cfg: &Config) -> anyhow::Result<Self> {
        if spec.trim() == "all" {
            return Ok(Self::all());
        }
        let mut local = BTreeSet::new();
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name != GATEWAY && !SERVICES.contains(&name) {
                anyhow::bail!(
                    "--services: `{name}` is not a service (`all`, or a comma list of gateway, {})",
                    SERVICES.join(", ")
                );
            }
            local.insert(name.to_string());
        }
        if local.is_empty() {
            anyhow::bail!("--services: name at least one service");
        }
        let secret = cfg.internal_secret.as_ref().context(
            "split mode needs internal_secret (LLMOPS_INTERNAL_SECRET, at least 32 characters, the same on the gateway and every service)",
        )?;
        // The gateway needs every service it does not run; a service needs
        // the peers it calls (billing, for serving's budget checks).
        let mut remote = BTreeMap::new();
        for service in SERVICES.iter().filter(|s| !local.contains(**s)) {
            match cfg.service_urls.get(*service) {
                Some(url) => {
                    // An origin only: forwarded paths are compared with
                    // what is sent, and a base path would shift them.
                    let parsed = reqwest::Url::parse(url)
                        .with_context(|| format!("service_urls.{service}: `{url}`"))?;
                    if !matches!(parsed.path(), "" | "/")
                        || parsed.query().is_some()
                        || parsed.host_str().is_none()
                    {
                        anyhow::bail!(
                            "service_urls.{service}: `{url}` must be an origin (scheme://host:port), without a path"
                        );
                    }
                    remote.insert(
                        (*service).to_string(),
                        url.trim_end_matches('/').to_string(),
                    );
                }
                None if local.contains(GATEWAY) => anyhow::bail!(
                    "the gateway forwards the {service} service's routes: set service_urls.{service} (LLMOPS_SERVICE_URLS='{{{service}=\"http://…\"}}')"
                ),
                None => {}
            }
        }
        // Idle connections are dropped before a service's own keep-alive
        // (actix: 5 s) closes them under a request. No overall or read
        // timeout: reqwest's would be a deadline for the answer's headers
        // from the moment the request is sent, which a large upload or a
        // long completion passes legitimately (the services bound their own
        // work: model calls, uploads).
        // reqwest's TLS needs a process-wide crypto provider (the CLI
        // installs it first; this makes the topology safe to build anywhere).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .context("building the forwarding client")?;
        Ok(Self {
            local,
            remote,
            keys: Some(Arc::new(InternalKeys::new(
                secret.expose().as_bytes(),
                Duration::from_secs(cfg.internal_token_ttl_secs),
            ))),
            client: Some(client),
        })
    }

    /// Whether this process runs `service` (or the edge, `gateway`).
    pub fn runs(&self, service: &str) -> bool {
        self.local.contains(service)
    }

    /// Whether this process is a service behind a gateway: it checks the
    /// gateway's tokens instead of tenants' credentials.
    pub fn behind_gateway(&self) -> bool {
        !self.runs(GATEWAY)
    }

    /// Whether this process runs in split mode (it holds the internal
    /// keys).
    pub fn is_split(&self) -> bool {
        self.keys.is_some()
    }

    /// Whether some routes are forwarded from here.
    pub fn forwards(&self) -> bool {
        self.runs(GATEWAY) && !self.remote.is_empty()
    }

    /// Where `service` runs, when it runs elsewhere and this process knows
    /// it, with what to call it: the base URL, the keys and the client.
    pub fn peer(&self, service: &str) -> Option<(String, Arc<InternalKeys>, reqwest::Client)> {
        Some((
            self.remote.get(service)?.clone(),
            self.keys.clone()?,
            self.client.clone()?,
        ))
    }

    /// The services this process runs, for logs.
    pub fn describe(&self) -> String {
        self.local.iter().cloned().collect::<Vec<_>>().join(",")
    }

    /// The gateway's view of the services it forwards to: `ok`, or why
    /// not (each URL asked once). A service does not ask its own peers, so
    /// one slow service does not make the others look slow.
    pub async fn remote_readiness(&self) -> BTreeMap<String, String> {
        let Some(client) = self.client.as_ref().filter(|_| self.runs(GATEWAY)) else {
            return BTreeMap::new();
        };
        let urls: BTreeSet<&String> = self.remote.values().collect();
        let checks = urls.into_iter().map(|url| async move {
            let res = client
                .get(format!("{url}/readyz"))
                .timeout(Duration::from_millis(1500))
                .send()
                .await;
            let state = match res {
                Ok(r) if r.status().is_success() => "ok".to_string(),
                Ok(r) => format!("not ready ({})", r.status().as_u16()),
                Err(e) if e.is_timeout() => "timed out".into(),
                Err(_) => "unreachable".into(),
            };
            (url, state)
        });
        let by_url: BTreeMap<&String, String> = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .collect();
        self.remote
            .iter()
            .map(|(name, url)| (name.clone(), by_url.get(url).cloned().unwrap_or_default()))
            .collect()
    }
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// The gateway's fallback for routes it does not serve itself: the route's
/// service, when it runs elsewhere, gets the request with an internal
/// token in place of the caller's credentials; request and response bodies
/// stream through as they arrive, and a client that goes away closes the
/// service's connection too. A service that cannot be reached answers 503
/// with `retry-after`, for its routes only.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match forward_inner(&req, payload, &state).await {
        Ok(res) => res,
        Err(e) => e.error_response(),
    }
}

async fn forward_inner(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let topology = &state.topology;
    // Actix routed on the percent-decoded path: so does the table.
    let decoded = percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy();
    let service = owner(&decoded);
    let (Some(base), Some(keys), Some(client)) = (
        topology.remote.get(service),
        topology.keys.as_ref(),
        topology.client.as_ref(),
    ) else {
        return Err(ApiError::RouteNotFound(format!(
            "{} {}",
            req.method(),
            req.path()
        )));
    };
    // What the service will route must be what was checked here: a path
    // that URL parsing would change (dot segments, `%2e%2e`, characters
    // it escapes) is refused, not normalised into another route.
    let url = reqwest::Url::parse(&match req.uri().query() {
        Some(q) => format!("{base}{}?{q}", req.path()),
        None => format!("{base}{}", req.path()),
    })
    .map_err(|_| ApiError::BadRequest("the request path is not a valid URL path".into()))?;
    if url.path() != req.path()
        || decoded
            .split('/')
            .any(|seg| seg == "." || seg == ".." || seg.eq_ignore_ascii_case("%2e"))
    {
        return Err(ApiError::BadRequest(
            "the request path must not contain dot segments or unescaped characters".into(),
        ));
    }
    let caller = if decoded.starts_with("/admin/") {
        // `operator_only` let it through.
        Caller::Operator
    } else {
        match req.extensions().get::<TenantCtx>() {
            Some(ctx) => Caller::tenant(ctx),
            None => Caller::Public,
        }
    };
    let request_id = REQUEST
        .try_with(|r| r.request_id.clone())
        .unwrap_or_default();
    let token = keys.sign(
        service,
        caller,
        Target {
            request_id: &request_id,
            method: req.method().as_str(),
            path: url.path(),
        },
    )?;
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::MethodNotAllowed(req.method().to_string()))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in req.headers() {
        // Credentials stay at the edge: the service gets the internal token.
        if hop_by_hop(name)
            || name == header::AUTHORIZATION
            || name == header::COOKIE
            || name.as_str() == crate::session::CSRF_HEADER
            || name.as_str() == HEADER
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&token) {
        headers.insert(HEADER, v);
    }
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    // The request body streams through a channel: actix's payload stays on
    // this task while the client's sender reads the other end.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    // The pump says whether the client's body failed (an aborted upload,
    // bad chunked encoding): then the failure is the client's.
    let pump = async move {
        while let Some(chunk) = payload.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() {
                break;
            }
            if failed {
                return true;
            }
        }
        false
    };
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let send = client
        .request(method, url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let (client_failed, sent) = futures_util::future::join(pump, send).await;
    let upstream = sent.map_err(|e| {
        if client_failed {
            return ApiError::BadRequest("the request body could not be read".into());
        }
        tracing::warn!(service, error = %e, "forwarding failed");
        if e.is_connect() {
            ApiError::Unavailable {
                dependency: format!("the {service} service"),
                retry_after_secs: DOWN_RETRY_SECS,
            }
        } else {
            // The connection broke with the request under way: whether the
            // service acted on it is unknown.
            ApiError::UpstreamFailed(format!(
                "the {service} service closed the connection before answering"
            ))
        }
    })?;
    let status = StatusCode::from_u16(upstream.status().as_u16())
        .map_err(|_| ApiError::Internal("a service answered an invalid status".into()))?;
    let mut res = HttpResponse::build(status);
    let mut length = None;
    for (name, value) in upstream.headers() {
        let Ok(n) = HeaderName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        if hop_by_hop(&n) {
            continue;
        }
        if n == header::CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            res.append_header((n, v));
        }
    }
    let body = upstream.bytes_stream();
    Ok(match length {
        Some(n) => res.no_chunking(n).streaming(body),
        None => res.streaming(body),
    })
}

/// What a scope of a service in split mode accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `/v1`: a tenant, or anyone on a route that needs no credentials.
    Tenant,
    /// `/admin/v1`: the operator.
    Operator,
    /// `/internal/v1`: another service.
    Service,
}

/// A service's guard in split mode, in place of `authenticate` and
/// `operator_only`: the request must carry a token the gateway (or a peer)
/// signed for a service this process runs, for this very request (method,
/// path as received, request id), with the caller this scope expects (the
/// scope is the one actix routed to, so no path string decides it). `/v1`
/// acts as the tenant the token names; inference calls get their
/// monitoring record here, where the service fills it.
pub async fn guard(
    expect: Expect,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = match crate::middleware::app_state(&req) {
        Ok(s) => s,
        Err(e) => return Ok(req.error_response(e).map_into_boxed_body()),
    };
    let ctx = match check_token(&state, &req, expect) {
        Ok(ctx) => ctx,
        Err(e) => return Ok(req.error_response(e).map_into_boxed_body()),
    };
    let Some(ctx) = ctx else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let watch = crate::middleware::watch_for(&state, &req);
    let ctx = match &watch {
        Some(w) => ctx.with_probe(w.probe.clone()),
        None => ctx,
    };
    req.extensions_mut().insert(ctx.clone());
    let res = next.call(req).await?.map_into_boxed_body();
    let Some(watch) = watch else {
        return Ok(res);
    };
    let status = res.status().as_u16();
    let error = res
        .response()
        .extensions()
        .get::<ProblemCode>()
        .map(|c| c.0.clone());
    Ok(res.map_body(move |_, body| BoxBody::new(RecordBody::new(body, watch, ctx, status, error))))
}

fn check_token(
    state: &AppState,
    req: &ServiceRequest,
    expect: Expect,
) -> Result<Option<TenantCtx>, ApiError> {
    let refused = |why: &str| ApiError::Unauthenticated(why.into());
    let keys = state
        .topology
        .keys
        .as_ref()
        .ok_or_else(|| refused("no internal routes here"))?;
    let token = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refused("this service answers only requests forwarded by the gateway"))?;
    let local: Vec<String> = state.topology.local.iter().cloned().collect();
    let verified = keys.verify(token, &local)?;
    // The token was issued for this request: its id, method and path.
    let request_id = REQUEST
        .try_with(|r| r.request_id.clone())
        .unwrap_or_default();
    if verified.request_id != request_id
        || verified.method != req.method().as_str()
        || verified.path != req.path()
    {
        return Err(refused("internal token was issued for another request"));
    }
    match (&verified.caller, expect) {
        (Caller::Operator, Expect::Operator) | (Caller::Service { .. }, Expect::Service) => {
            Ok(None)
        }
        (Caller::Public, Expect::Tenant) if crate::middleware::is_public(req.path()) => Ok(None),
        (Caller::Tenant { .. }, Expect::Tenant) => verified.caller.to_ctx(),
        _ => Err(refused("internal token does not grant this route")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_belong_to_their_services() {
        assert_eq!(owner("/v1/chat/completions"), "serving");
        assert_eq!(owner("/v1/models/smol"), "serving");
        assert_eq!(owner("/v1/registry/models/x/versions/1"), "registry");
        assert_eq!(owner("/admin/v1/plans/free/pricing"), "billing");
        assert_eq!(owner("/admin/v1/plans/free"), GATEWAY);
        assert_eq!(owner("/admin/v1/tenants/t/rag"), "rag");
        assert_eq!(owner("/admin/v1/tenants/t"), GATEWAY);
        assert_eq!(owner("/v1/modelsx"), GATEWAY);
        assert_eq!(owner("/v1/tenant"), GATEWAY);
    }

    #[test]
    fn the_spec_and_service_urls_are_checked() {
        let mut cfg = Config::default();
        assert!(Topology::from_spec("all", &cfg).is_ok_and(|t| !t.is_split()));
        let err = Topology::from_spec("serving", &cfg).err().unwrap();
        assert!(err.to_string().contains("internal_secret"), "{err}");
        cfg.internal_secret = Some(llmops_core::secret::Secret::new("s".repeat(40)));
        assert!(Topology::from_spec("serving,billing", &cfg).is_ok_and(|t| t.is_split()));
        let err = Topology::from_spec("serving,payments", &cfg).err().unwrap();
        assert!(err.to_string().contains("`payments`"), "{err}");
        // The gateway needs every service it does not run, as an origin.
        let err = Topology::from_spec("gateway", &cfg).err().unwrap();
        assert!(err.to_string().contains("service_urls."), "{err}");
        for s in SERVICES {
            cfg.service_urls
                .insert((*s).to_string(), format!("http://{s}:8080"));
        }
        assert!(Topology::from_spec("gateway", &cfg).is_ok_and(|t| t.forwards()));
        cfg.service_urls
            .insert("registry".into(), "http://registry:8080/llmops".into());
        let err = Topology::from_spec("gateway", &cfg).err().unwrap();
        assert!(err.to_string().contains("origin"), "{err}");
    }

    /// Every route in each service's OpenAPI document is forwarded to that
    /// service, and the gateway's own stay at the edge.
    #[test]
    fn every_documented_route_has_its_owner() {
        use utoipa::OpenApi;
        let docs: Vec<(&str, utoipa::openapi::OpenApi)> = vec![
            (GATEWAY, crate::openapi::ApiDoc::openapi()),
            ("registry", llmops_registry::openapi::RegistryDoc::openapi()),
            ("serving", llmops_serving::routes::ServingDoc::openapi()),
            ("serving", llmops_cache::routes::CacheDoc::openapi()),
            ("billing", llmops_billing::routes::BillingDoc::openapi()),
            ("training", llmops_training::routes::TrainingDoc::openapi()),
            (
                "training",
                llmops_training::admin::TrainingAdminDoc::openapi(),
            ),
            ("rag", llmops_rag::routes::RagDoc::openapi()),
            (
                "monitoring",
                llmops_monitoring::routes::MonitoringDoc::openapi(),
            ),
            (
                "monitoring",
                llmops_monitoring::alert_routes::AlertsDoc::openapi(),
            ),
        ];
        let mut seen = 0;
        for (service, doc) in docs {
            for path in doc.paths.paths.keys() {
                let concrete = path.replace(['{', '}'], "");
                assert_eq!(owner(&concrete), service, "{path}");
                seen += 1;
            }
        }
        assert!(seen > 80, "{seen} routes");
    }
}
