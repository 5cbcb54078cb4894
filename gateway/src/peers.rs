//! Split mode: calls between services over HTTP, behind the same typed
//! traits the single process calls in memory, with internal tokens signed
//! here under the gateway's secret (services accept nothing else):
//! - serving (and the monitoring writer next to it) reaches billing's
//!   budgets and prices through [`HttpSpendGuard`] (`SpendGuard`, against
//!   billing's `/internal/v1/billing/*` routes);
//! - serving's deployments resolve versions and stream their artifacts
//!   from the registry through [`HttpRegistry`] (`RegistryClient`, against
//!   the registry's own `/v1/registry` routes, as the calling tenant).

use actix_web::{HttpResponse, web};
use llmops_core::error::REQUEST;
use llmops_core::ids::{TenantId, new_request_id};
use llmops_core::internal::{Caller, HEADER, InternalKeys, Target};
use llmops_core::limits::{Quote, SpendGuard};
use llmops_core::{ApiError, ApiResult, TenantCtx};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

const SERVICE: &str = "billing";
const TIMEOUT: Duration = Duration::from_secs(2);

/// Billing's `SpendGuard`, over HTTP.
///
/// A budget check that cannot reach billing (no connection, a timeout, a
/// 5xx) lets the call through and counts
/// `llmops_peer_errors_total{service="billing"}`: usage still goes to the
/// ledger, budgets are already enforced a few seconds late
/// (`budget_cache_secs`), and a billing outage must not take inference
/// down with it. A refusal from billing (402) is passed on as it is; any
/// other answer (a token billing refuses: a different `internal_secret`,
/// clocks apart; a wrong URL) is a misconfiguration, and the call is
/// refused with 503 rather than let through unchecked forever.
pub struct HttpSpendGuard {
    base: String,
    keys: Arc<InternalKeys>,
    client: reqwest::Client,
}

#[derive(Serialize, Deserialize)]
struct CheckRequest {
    /// The tenant context to check, as the gateway established it.
    caller: Caller,
}

#[derive(Serialize, Deserialize)]
struct QuoteRequest {
    tenant_id: TenantId,
    model: String,
    usages: Vec<Vec<(String, u64)>>,
}

#[derive(Serialize, Deserialize)]
struct WireQuote {
    currency: String,
    minor: f64,
}

#[derive(Serialize, Deserialize)]
struct BudgetUse {
    spend_minor: i64,
    budget_minor: i64,
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant_id: TenantId,
}

impl HttpSpendGuard {
    pub fn new(base: String, keys: Arc<InternalKeys>, client: reqwest::Client) -> Self {
        Self { base, keys, client }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> ApiResult<reqwest::RequestBuilder> {
        let rid = REQUEST
            .try_with(|r| r.request_id.clone())
            .unwrap_or_else(|_| new_request_id());
        let url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let token = self.keys.sign(
            SERVICE,
            Caller::Service {
                from: "serving".into(),
            },
            Target {
                request_id: &rid,
                method: method.as_str(),
                path: url.path(),
            },
        )?;
        Ok(self
            .client
            .request(method, url)
            .header(HEADER, token)
            .header("x-request-id", rid)
            .timeout(TIMEOUT))
    }

    /// A misconfiguration (not an outage): refused, loudly.
    fn misconfigured(status: reqwest::StatusCode) -> ApiError {
        metrics::counter!("llmops_peer_errors_total", "service" => SERVICE).increment(1);
        tracing::error!(%status, "billing refused this service's call: check internal_secret, clocks and service_urls.billing");
        ApiError::Unavailable {
            dependency: "billing (misconfigured)".into(),
            retry_after_secs: 30,
        }
    }

    fn failed(what: &str, e: impl std::fmt::Display) {
        metrics::counter!("llmops_peer_errors_total", "service" => SERVICE).increment(1);
        tracing::warn!(error = %e, "billing {what} failed");
    }
}

#[async_trait::async_trait]
impl SpendGuard for HttpSpendGuard {
    async fn check(&self, ctx: &TenantCtx) -> ApiResult<()> {
        let req = self
            .request(reqwest::Method::POST, "/internal/v1/billing/check")?
            .json(&CheckRequest {
                caller: Caller::tenant(ctx),
            });
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) if r.status() == reqwest::StatusCode::PAYMENT_REQUIRED => {
                let detail = r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|p| p["detail"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "the tenant's budget is spent".into());
                Err(ApiError::BudgetExhausted(detail))
            }
            Ok(r) if r.status().is_server_error() => {
                Self::failed("budget check", r.status());
                Ok(())
            }
            Ok(r) => Err(Self::misconfigured(r.status())),
            Err(e) => {
                Self::failed("budget check", e);
                Ok(())
            }
        }
    }

    async fn budget_use(&self, tenant: TenantId) -> Option<(i64, i64)> {
        let req = self
            .request(
                reqwest::Method::GET,
                &format!("/internal/v1/billing/budget_use?tenant_id={tenant}"),
            )
            .ok()?;
        match req.send().await {
            Ok(r) if r.status().is_success() => r
                .json::<Option<BudgetUse>>()
                .await
                .ok()
                .flatten()
                .map(|b| (b.spend_minor, b.budget_minor)),
            Ok(r) => {
                Self::failed("budget lookup", r.status());
                None
            }
            Err(e) => {
                Self::failed("budget lookup", e);
                None
            }
        }
    }

    async fn quote_for(
        &self,
        tenant: TenantId,
        model: &str,
        usages: &[&[(&str, u64)]],
    ) -> Vec<Option<Quote>> {
        let none = vec![None; usages.len()];
        let body = QuoteRequest {
            tenant_id: tenant,
            model: model.to_string(),
            usages: usages
                .iter()
                .map(|set| set.iter().map(|(m, q)| ((*m).to_string(), *q)).collect())
                .collect(),
        };
        let Ok(req) = self.request(reqwest::Method::POST, "/internal/v1/billing/quote") else {
            return none;
        };
        match req.json(&body).send().await {
            Ok(r) if r.status().is_success() => match r.json::<Vec<Option<WireQuote>>>().await {
                Ok(q) if q.len() == usages.len() => q
                    .into_iter()
                    .map(|q| {
                        q.map(|q| Quote {
                            currency: q.currency,
                            minor: q.minor,
                        })
                    })
                    .collect(),
                Ok(_) => none,
                Err(e) => {
                    Self::failed("quote", e);
                    none
                }
            },
            Ok(r) => {
                Self::failed("quote", r.status());
                none
            }
            Err(e) => {
                Self::failed("quote", e);
                none
            }
        }
    }
}

/// Billing's side: `/internal/v1/billing/*` (in split mode only, behind
/// `split::internal_only`).
pub fn configure_billing(cfg: &mut web::ServiceConfig) {
    cfg.route("/billing/check", web::post().to(check))
        .route("/billing/quote", web::post().to(quote))
        .route("/billing/budget_use", web::get().to(budget_use));
}

async fn check(
    billing: web::Data<llmops_billing::Billing>,
    body: web::Json<CheckRequest>,
) -> ApiResult<HttpResponse> {
    let ctx = body
        .caller
        .to_ctx()?
        .ok_or_else(|| ApiError::BadRequest("a budget check names a tenant".into()))?;
    billing.check(&ctx).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn quote(
    billing: web::Data<llmops_billing::Billing>,
    body: web::Json<QuoteRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let sets: Vec<Vec<(&str, u64)>> = body
        .usages
        .iter()
        .map(|set| set.iter().map(|(m, q)| (m.as_str(), *q)).collect())
        .collect();
    let refs: Vec<&[(&str, u64)]> = sets.iter().map(Vec::as_slice).collect();
    let quotes = billing.quote_for(body.tenant_id, &body.model, &refs).await;
    let wire: Vec<Option<WireQuote>> = quotes
        .into_iter()
        .map(|q| {
            q.map(|q| WireQuote {
                currency: q.currency,
                minor: q.minor,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(wire))
}

async fn budget_use(
    billing: web::Data<llmops_billing::Billing>,
    query: web::Query<TenantQuery>,
) -> ApiResult<HttpResponse> {
    let found = billing
        .budget_use(query.tenant_id)
        .await
        .map(|(spend_minor, budget_minor)| BudgetUse {
            spend_minor,
            budget_minor,
        });
    Ok(HttpResponse::Ok().json(found))
}

/// The registry's `RegistryClient`, over HTTP, as the calling tenant: what
/// serving needs for deployments (resolving a reference, streaming the
/// artifact). Registering versions is the training service's call, which
/// runs the registry library over the shared database and store.
pub struct HttpRegistry {
    base: String,
    keys: Arc<InternalKeys>,
    client: reqwest::Client,
}

impl HttpRegistry {
    pub fn new(base: String, keys: Arc<InternalKeys>, client: reqwest::Client) -> Self {
        Self { base, keys, client }
    }

    fn get(&self, ctx: &TenantCtx, path: &str) -> ApiResult<reqwest::RequestBuilder> {
        let rid = REQUEST
            .try_with(|r| r.request_id.clone())
            .unwrap_or_else(|_| new_request_id());
        let url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let token = self.keys.sign(
            "registry",
            Caller::tenant(ctx),
            Target {
                request_id: &rid,
                method: "GET",
                path: url.path(),
            },
        )?;
        Ok(self
            .client
            .get(url)
            .header(HEADER, token)
            .header("x-request-id", rid))
    }

    /// The registry's answer as this process's own error: the problem the
    /// tenant would have had from the registry, by its `code`. What only a
    /// misconfiguration causes (a token the registry refuses, a route it
    /// does not have) is logged and shown as an internal error, without
    /// the registry's words.
    async fn refused(res: reqwest::Response) -> ApiError {
        let status = res.status().as_u16();
        let problem = res.json::<serde_json::Value>().await.unwrap_or_default();
        let code = problem["code"].as_str().unwrap_or_default().to_string();
        let detail = problem["detail"].as_str().unwrap_or_default().to_string();
        match code.as_str() {
            "not_found" => ApiError::NotFound(
                detail
                    .strip_suffix(" not found")
                    .unwrap_or("version")
                    .to_string(),
            ),
            "conflict" => ApiError::Conflict(detail),
            "tenant_suspended" => ApiError::TenantSuspended,
            "insufficient_scope" => ApiError::MissingScope("registry".into()),
            "quota_exceeded" => ApiError::QuotaExceeded(detail),
            "service_unavailable" => ApiError::Unavailable {
                dependency: "the registry service".into(),
                retry_after_secs: 5,
            },
            "route_not_found" | "unauthenticated" => {
                metrics::counter!("llmops_peer_errors_total", "service" => "registry").increment(1);
                tracing::error!(
                    status,
                    code,
                    "the registry refused this service's call: check internal_secret, clocks and service_urls.registry"
                );
                ApiError::Internal("the registry refused a call between services".into())
            }
            _ if (400..500).contains(&status) => ApiError::BadRequest(detail),
            _ => {
                metrics::counter!("llmops_peer_errors_total", "service" => "registry").increment(1);
                tracing::warn!(status, code, "the registry failed a call between services");
                ApiError::UpstreamFailed("the registry service failed".into())
            }
        }
    }

    fn unreachable(e: reqwest::Error) -> ApiError {
        metrics::counter!("llmops_peer_errors_total", "service" => "registry").increment(1);
        tracing::warn!(error = %e, "registry call failed");
        ApiError::Unavailable {
            dependency: "the registry service".into(),
            retry_after_secs: 5,
        }
    }
}

fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[async_trait::async_trait]
impl llmops_registry::RegistryClient for HttpRegistry {
    async fn resolve(
        &self,
        ctx: &TenantCtx,
        reference: &str,
    ) -> ApiResult<llmops_registry::domain::VersionView> {
        // `.`, `..` or nothing would be a dot segment (or no segment) in
        // the URL: no model has such a name.
        if reference.is_empty() || reference.chars().all(|c| c == '.') {
            return Err(ApiError::not_found("model"));
        }
        let res = self
            .get(ctx, &format!("/v1/registry/resolve/{}", segment(reference)))?
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(Self::unreachable)?;
        if !res.status().is_success() {
            return Err(Self::refused(res).await);
        }
        res.json().await.map_err(Self::unreachable)
    }

    async fn register_version(
        &self,
        _ctx: &TenantCtx,
        _model: &str,
        _version: llmops_registry::domain::NewVersion,
    ) -> ApiResult<llmops_registry::domain::VersionView> {
        Err(ApiError::NotImplemented(
            "registering versions over HTTP: the training service registers them in process".into(),
        ))
    }

    async fn open_artifact(
        &self,
        ctx: &TenantCtx,
        version: &llmops_registry::domain::VersionView,
    ) -> ApiResult<llmops_registry::ArtifactStream> {
        use futures_util::StreamExt;
        let path = format!(
            "/v1/registry/models/{}/versions/{}/artifact",
            segment(&version.model),
            version.version
        );
        let res = self
            .get(ctx, &path)?
            .send()
            .await
            .map_err(Self::unreachable)?;
        if !res.status().is_success() {
            return Err(Self::refused(res).await);
        }
        let size = res
            .content_length()
            .ok_or_else(|| ApiError::UpstreamFailed("the registry sent no artifact size".into()))?;
        let stream = res
            .bytes_stream()
            .map(|r| {
                r.map_err(|e| object_store::Error::Generic {
                    store: "registry",
                    source: Box::new(e),
                })
            })
            .boxed();
        Ok((size, stream))
    }
}
