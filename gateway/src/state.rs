//! What every handler can reach.

use crate::ratelimit::RateLimiter;
use llmops_core::auth::Authenticator;
use llmops_core::config::Config;
use llmops_core::db::Db;
use llmops_core::usage::UsageSink;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

pub struct AppState {
    pub config: Config,
    pub db: Db,
    pub auth: Arc<Authenticator>,
    pub limiter: Arc<RateLimiter>,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub usage: Arc<dyn UsageSink>,
    pub metrics: Option<PrometheusHandle>,
    pub registry: actix_web::web::Data<llmops_registry::Registry>,
    pub serving: actix_web::web::Data<llmops_serving::Serving>,
    pub billing: actix_web::web::Data<llmops_billing::Billing>,
    pub training: actix_web::web::Data<llmops_training::Training>,
    /// Knowledge bases (`llmops serve` only: it owns the embedded vector
    /// store's files).
    pub rag: Option<actix_web::web::Data<llmops_rag::Rag>>,
    /// The response cache (its routes work when caching is off, so a
    /// tenant can still read its settings).
    pub cache: actix_web::web::Data<llmops_cache::SemanticCache>,
    /// Which services this process runs, and where the others are.
    pub topology: crate::split::Topology,
    /// Records of inference calls, rollups, feedback.
    pub monitoring: actix_web::web::Data<llmops_monitoring::Monitoring>,
}
