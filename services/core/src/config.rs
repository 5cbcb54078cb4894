//! Typed, layered configuration: defaults, then `llmops.toml` (or the file in
//! `LLMOPS_CONFIG`), then `LLMOPS_*` environment variables. Unknown keys are
//! refused at start-up, so a typo never silently falls back to a default.

use crate::secret::Secret;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A shared model the operator publishes (`[[catalog]]` in `llmops.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// What clients pass as `model`.
    pub id: String,
    /// `chat` or `embedding`.
    pub kind: String,
    /// `triton` (the configured Triton) or `openai` (any OpenAI-compatible server).
    pub backend: String,
    /// The model's name on its backend (default: `id`).
    pub model: Option<String>,
    /// For `openai`: the base URL, ending in `/v1`.
    pub base_url: Option<String>,
    pub api_key: Option<Secret<String>>,
    pub context_tokens: Option<u32>,
    /// For `embedding`: the vector size (knowledge bases and the semantic
    /// cache need it to make their collections; without it the model cannot
    /// back a knowledge base).
    pub dimensions: Option<u32>,
    /// The model's Hugging Face `tokenizer.json`: the gateway counts tokens
    /// with it when the backend reports no usage (estimated otherwise).
    pub tokenizer: Option<PathBuf>,
    /// Models tried in order when this one's backend is unavailable.
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: String,
    /// Where embedded data lives (SQLite file, JWT secret, artifacts).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to a SQLite file under `data_dir`.
    pub database_url: Option<Secret<String>>,
    pub database_max_connections: u32,
    /// Apply pending migrations when `serve` starts.
    pub auto_migrate: bool,
    /// With a Redis URL, rate-limit state is shared by every gateway replica.
    pub redis_url: Option<Secret<String>>,
    /// Triton's gRPC URL (`http://127.0.0.1:8001`); publishes the local
    /// models (`infra/triton`) to every tenant.
    pub triton_url: Option<String>,
    /// How far an invoice's close time trails the clock (seconds): longer
    /// than any ledger transaction.
    pub billing_settle_secs: u64,
    /// Length of billing periods in seconds; 0: calendar months (UTC).
    pub billing_period_secs: u64,
    /// Close ended periods automatically (every replica may; closing is idempotent).
    pub billing_auto_close: bool,
    /// Signing secret of Stripe webhooks (`whsec_…`); webhooks are refused without it.
    pub stripe_webhook_secret: Option<Secret<String>>,
    /// How long a replica reuses a tenant's computed spend for budget checks.
    pub budget_cache_secs: u64,
    /// Stripe secret key (`sk_…`): finalized invoices are pushed to Stripe
    /// (customer and subscription per tenant, usage as invoice items).
    pub stripe_api_key: Option<Secret<String>>,
    /// Stripe's API base (a test server such as localstripe); default Stripe's.
    pub stripe_api_base: Option<String>,
    /// Attempts of a Stripe push before the invoice shows `failed` (an
    /// operator can retry it); between attempts the wait doubles from 2 s up to 1 h.
    pub stripe_max_attempts: u32,
    /// How long a replica owns an invoice's push before another may take it
    /// over (a crashed replica's push resumes after this).
    pub stripe_lease_secs: u64,
    /// Invoices a replica pushes to Stripe at once (each tenant's in order).
    pub stripe_push_workers: u32,
    /// Shared models (with a `triton_url`, the local ones are added).
    pub catalog: Vec<CatalogEntry>,
    /// Window of GPU-time metering of deployments (one usage event each).
    pub deployment_meter_window_secs: u64,
    /// Bearer token for `/admin/v1`; the operator API is closed without one.
    pub operator_token: Option<Secret<String>>,
    /// HS256 secret for dashboard JWTs; generated into `data_dir` when unset.
    pub jwt_secret: Option<Secret<String>>,
    /// Split mode: the secret the gateway signs internal tokens with and
    /// services check them with (the same on every process; at least 32
    /// characters). Required by `serve --services` other than `all`.
    pub internal_secret: Option<Secret<String>>,
    /// Split mode: the base URL of each service run elsewhere, by name
    /// (`registry`, `serving`, `billing`, `training`, `rag`, `monitoring`).
    pub service_urls: std::collections::BTreeMap<String, String>,
    /// Lifetime of an internal token (seconds).
    pub internal_token_ttl_secs: u64,
    pub jwt_ttl_secs: u64,
    /// Lifetime of a dashboard session (seconds; signing in again starts a
    /// new one).
    pub session_ttl_secs: u64,
    /// Serve the dashboard's files from this folder, read at every request,
    /// instead of the copies built into the binary (for working on them).
    pub dashboard_dir: Option<PathBuf>,
    /// How long a replica may serve a cached API key or tenant state: the
    /// bound on how late a revocation or suspension made on another replica
    /// takes effect here (the replica that made it applies it at once).
    pub auth_cache_ttl_secs: u64,
    /// How often `last_used_at` of API keys is written back.
    pub key_usage_flush_secs: u64,
    /// Largest JSON body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Where uploaded model artifacts are kept (default `data_dir/artifacts`).
    pub artifacts_dir: Option<PathBuf>,
    /// `s3://bucket/prefix` keeps artifacts in an S3-compatible store
    /// instead of `artifacts_dir`.
    pub artifacts_url: Option<String>,
    /// S3 endpoint for non-AWS stores (MinIO, Ceph, R2…).
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<Secret<String>>,
    pub s3_secret_access_key: Option<Secret<String>>,
    /// Allow a plain-HTTP `s3_endpoint` (tests, in-cluster stores).
    pub s3_allow_http: bool,
    /// Largest artifact upload, in bytes.
    pub max_artifact_bytes: u64,
    /// Plan given to tenants created without one.
    pub default_plan: String,
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,sqlx=warn`.
    pub log_level: String,
    /// HTTP worker threads; defaults to the number of CPUs.
    pub http_workers: Option<usize>,
    /// Hugging Face `tokenizer.json` files of catalog models by id (the
    /// local Triton's models too): knowledge bases chunk by the embedding
    /// model's tokens and budget answers by the chat model's.
    pub model_tokenizers: std::collections::BTreeMap<String, PathBuf>,
    /// The local Triton's model repository: a local model's
    /// `<dir>/<model>/tokenizer.json`, when there, is its tokenizer unless
    /// `model_tokenizers` names another.
    pub triton_models_dir: PathBuf,
    /// A Qdrant server's gRPC URL (`http://qdrant:6334`): vectors live
    /// there instead of the embedded engine under `data_dir/vectors`.
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<Secret<String>>,
    /// Documents a replica ingests at once.
    pub rag_ingest_workers: u32,
    /// Attempts of a document's ingestion before it shows `failed`.
    pub rag_ingest_max_attempts: u32,
    /// Largest document upload, in bytes.
    pub rag_max_document_bytes: usize,
    /// How often the `vector_storage` meter is sampled (seconds; one event
    /// per tenant and window).
    pub rag_storage_meter_secs: u64,
    /// Prometheus series per tenant on `/metrics`
    /// (`llmops_tenant_inference_requests_total`, `…_duration_seconds`,
    /// `llmops_tenant_tokens_total`); off by default, since every tenant
    /// adds series.
    pub metrics_tenant_labels: bool,
    /// A monitoring record for every inference call (latency, tokens,
    /// cost, quality signals), rolled up per minute and hour.
    pub monitoring_enabled: bool,
    /// Records waiting to be written; when full, new ones are dropped
    /// (and counted), inference never waits.
    pub monitoring_queue: usize,
    /// Most records written in one batch, and how long a batch may wait
    /// for more (milliseconds).
    pub monitoring_batch: usize,
    pub monitoring_flush_ms: u64,
    /// How often partial rollups are merged and old rows deleted (seconds).
    pub monitoring_compact_secs: u64,
    /// Share of answered prompts embedded with the served embedding model
    /// for embedding drift (0 to 1).
    pub monitoring_sample_rate: f64,
    /// How often every (tenant, model) with traffic gets a scheduled drift
    /// report of that period against the model's first week (seconds; 0:
    /// only on demand).
    pub monitoring_drift_every_secs: u64,
    /// How often queued drift reports are looked at (milliseconds).
    pub monitoring_poll_ms: u64,
    /// How often alert rules are evaluated and due webhooks sent (seconds).
    pub monitoring_alert_every_secs: u64,
    /// The first retry of a failed webhook waits this long (milliseconds),
    /// each next one twice as long (8 attempts).
    pub monitoring_webhook_backoff_ms: u64,
    /// Webhooks to private and loopback addresses (off: a tenant could
    /// make the platform call its internal network).
    pub monitoring_webhook_allow_private: bool,
    /// How long records, minute rollups and hour rollups are kept.
    pub monitoring_record_retention_days: u32,
    pub monitoring_minute_retention_hours: u32,
    pub monitoring_hour_retention_days: u32,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (e.g.
    /// `http://collector:4318`): every inference call is also sent to
    /// `{url}/v1/traces` as a span with the GenAI semantic conventions.
    pub monitoring_otlp_endpoint: Option<String>,
    /// The response cache of chat completions (exact and semantic hits).
    pub cache_enabled: bool,
    /// Least cosine of a semantic hit for every tenant; tenants and
    /// requests may only ask for more.
    pub cache_min_similarity: f32,
    /// How long an answer stays cached unless the tenant or the request
    /// says otherwise (seconds), and the longest either may ask for.
    pub cache_ttl_secs: u64,
    pub cache_max_ttl_secs: u64,
    /// Largest cached answer (bytes of its stored form).
    pub cache_max_entry_bytes: usize,
    /// Bytes the in-process cache holds (without `redis_url`; with it,
    /// Redis keeps the answers and its `maxmemory` bounds them).
    pub cache_memory_bytes: usize,
    /// all-MiniLM-L6-v2's weights (`config.json`, `model.safetensors`,
    /// `tokenizer.json`) for the semantic level's in-process embedding;
    /// without them the semantic level embeds with the served model.
    pub cache_embedding_dir: Option<PathBuf>,
    /// Training jobs `llmops serve` runs at once on this machine's CPUs
    /// (0: none; `llmops worker` processes run them elsewhere).
    pub training_cpu_slots: u32,
    /// The Python that runs training recipes (default
    /// `~/.cache/llmops/venv-train/bin/python`, which `scripts/lib.sh`
    /// `train_python` builds).
    pub training_python: Option<PathBuf>,
    /// Where the recipes are (default `infra/recipes` under the current
    /// directory).
    pub training_recipes_dir: Option<PathBuf>,
    /// Per-attempt working directories (default `data_dir/training`).
    pub training_work_dir: Option<PathBuf>,
    /// The pool (`/admin/v1/gpu_pools`, of type `cpu`) `serve`'s CPU slots
    /// are in: their metered time carries it, priced at its list price
    /// when the plan does not price `cpu_milliseconds`.
    pub training_cpu_pool: Option<String>,
    /// GPU workers (`llmops worker --gpu-type T --pool P`) run attempts in
    /// this Kubernetes namespace (kubeconfig or in-cluster credentials).
    pub training_kube_namespace: Option<String>,
    /// Their image: Python with the GPU recipe's requirements and the AWS
    /// CLI.
    pub training_kube_image: Option<String>,
    /// Kueue's LocalQueue in the namespace, if Kueue admits the jobs.
    pub training_kube_queue: Option<String>,
    /// Secret with the artifact store's credentials, for the pods.
    pub training_kube_artifacts_secret: String,
    /// Node label naming a node's GPU pool.
    pub training_kube_pool_label: String,
    /// How long a claim or heartbeat holds a job; a worker that dies is
    /// replaced after this.
    pub training_lease_secs: u64,
    /// Heartbeat period: how soon a running job learns it was cancelled.
    pub training_heartbeat_secs: u64,
    /// Longest an attempt may run before it is stopped and failed.
    pub training_wall_clock_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 16,
            auto_migrate: true,
            redis_url: None,
            operator_token: None,
            triton_url: None,
            deployment_meter_window_secs: 60,
            catalog: Vec::new(),
            billing_settle_secs: 5,
            billing_period_secs: 0,
            billing_auto_close: true,
            budget_cache_secs: 5,
            stripe_webhook_secret: None,
            stripe_api_key: None,
            stripe_api_base: None,
            stripe_max_attempts: 8,
            stripe_lease_secs: 120,
            stripe_push_workers: 4,
            jwt_secret: None,
            internal_secret: None,
            service_urls: std::collections::BTreeMap::new(),
            internal_token_ttl_secs: 60,
            jwt_ttl_secs: 3600,
            session_ttl_secs: 12 * 3600,
            dashboard_dir: None,
            auth_cache_ttl_secs: 5,
            key_usage_flush_secs: 15,
            max_body_bytes: 1024 * 1024,
            artifacts_dir: None,
            artifacts_url: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            max_artifact_bytes: 100 * 1024 * 1024 * 1024,
            default_plan: "free".into(),
            log_format: LogFormat::Text,
            log_level: "info,sqlx=warn,sea_orm=warn".into(),
            http_workers: None,
            model_tokenizers: std::collections::BTreeMap::new(),
            triton_models_dir: PathBuf::from("infra/triton/models"),
            qdrant_url: None,
            qdrant_api_key: None,
            rag_ingest_workers: 2,
            rag_ingest_max_attempts: 3,
            rag_max_document_bytes: 16 * 1024 * 1024,
            rag_storage_meter_secs: 3600,
            metrics_tenant_labels: false,
            monitoring_enabled: true,
            monitoring_queue: 10_000,
            monitoring_batch: 500,
            monitoring_flush_ms: 1000,
            monitoring_compact_secs: 30,
            monitoring_sample_rate: 0.1,
            monitoring_drift_every_secs: 86_400,
            monitoring_poll_ms: 1000,
            monitoring_alert_every_secs: 60,
            monitoring_webhook_backoff_ms: 1000,
            monitoring_webhook_allow_private: false,
            monitoring_record_retention_days: 30,
            monitoring_minute_retention_hours: 48,
            monitoring_hour_retention_days: 400,
            monitoring_otlp_endpoint: None,
            cache_enabled: true,
            cache_min_similarity: 0.8,
            cache_ttl_secs: 3600,
            cache_max_ttl_secs: 7 * 86_400,
            cache_max_entry_bytes: 256 * 1024,
            cache_memory_bytes: 64 * 1024 * 1024,
            cache_embedding_dir: None,
            training_cpu_slots: 1,
            training_python: None,
            training_recipes_dir: None,
            training_work_dir: None,
            training_cpu_pool: None,
            training_kube_namespace: None,
            training_kube_image: None,
            training_kube_queue: None,
            training_kube_artifacts_secret: "llmops-artifacts".into(),
            training_kube_pool_label: "llmops.dev/gpu-pool".into(),
            training_lease_secs: 30,
            training_heartbeat_secs: 2,
            training_wall_clock_secs: 6 * 3600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl Config {
    /// Loads defaults → file → environment and validates the result.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("LLMOPS_CONFIG").unwrap_or_else(|_| "llmops.toml".into());
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            // Variables of the scripts and the CLI, not configuration keys.
            .merge(Env::prefixed("LLMOPS_").ignore(&[
                "config",
                "profile",
                "admin_password",
                "bin",
                "cache",
                "triton_venv",
            ]))
            .extract()
            .map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("listen", format!("`{}`: {e}", self.listen)))?;
        let db = self.database_url();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if let Some(url) = &self.redis_url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            return Err(invalid(
                "redis_url",
                "must start with redis:// or rediss://",
            ));
        }
        if let Some(url) = &self.triton_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid("triton_url", "must start with http:// or https://"));
        }
        if let Some(url) = &self.qdrant_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "qdrant_url",
                "must start with http:// or https:// (Qdrant's gRPC port, 6334)",
            ));
        }
        if !(self.cache_min_similarity.is_finite()
            && (0.0..=1.0).contains(&self.cache_min_similarity))
        {
            return Err(invalid("cache_min_similarity", "must be between 0 and 1"));
        }
        if self.cache_ttl_secs == 0 || self.cache_ttl_secs > self.cache_max_ttl_secs {
            return Err(invalid(
                "cache_ttl_secs",
                "must be at least 1 and at most cache_max_ttl_secs",
            ));
        }
        if self.monitoring_queue == 0
            || self.monitoring_batch == 0
            || self.monitoring_flush_ms == 0
            || self.monitoring_compact_secs == 0
        {
            return Err(invalid(
                "monitoring_queue",
                "monitoring_queue, monitoring_batch, monitoring_flush_ms and monitoring_compact_secs must be at least 1",
            ));
        }
        if !(self.monitoring_sample_rate.is_finite()
            && (0.0..=1.0).contains(&self.monitoring_sample_rate))
        {
            return Err(invalid("monitoring_sample_rate", "must be between 0 and 1"));
        }
        if self.monitoring_poll_ms == 0
            || self.monitoring_alert_every_secs == 0
            || self.monitoring_webhook_backoff_ms == 0
        {
            return Err(invalid(
                "monitoring_poll_ms",
                "monitoring_poll_ms, monitoring_alert_every_secs and monitoring_webhook_backoff_ms must be at least 1",
            ));
        }
        if self.monitoring_record_retention_days == 0
            || self.monitoring_minute_retention_hours == 0
            || self.monitoring_hour_retention_days == 0
        {
            return Err(invalid(
                "monitoring_record_retention_days",
                "monitoring retention periods must be at least 1",
            ));
        }
        if let Some(endpoint) = &self.monitoring_otlp_endpoint {
            let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                && !endpoint.contains(['?', '#', ' '])
                && endpoint.len() > "http://".len();
            if !ok {
                return Err(invalid(
                    "monitoring_otlp_endpoint",
                    "must be an http(s) URL such as http://collector:4318",
                ));
            }
        }
        if self.rag_ingest_max_attempts == 0 || self.rag_storage_meter_secs == 0 {
            return Err(invalid(
                "rag_ingest_max_attempts",
                "rag_ingest_max_attempts and rag_storage_meter_secs must be at least 1",
            ));
        }
        if let Some(tok) = &self.operator_token
            && tok.expose().len() < 16
        {
            return Err(invalid("operator_token", "must be at least 16 characters"));
        }
        if let Some(s) = &self.jwt_secret
            && s.expose().len() < 32
        {
            return Err(invalid("jwt_secret", "must be at least 32 characters"));
        }
        if let Some(s) = &self.internal_secret
            && s.expose().len() < 32
        {
            return Err(invalid("internal_secret", "must be at least 32 characters"));
        }
        if !(1..=3600).contains(&self.internal_token_ttl_secs) {
            return Err(invalid(
                "internal_token_ttl_secs",
                "must be between 1 and 3600",
            ));
        }
        for (name, url) in &self.service_urls {
            if !crate::internal::SERVICES.contains(&name.as_str()) {
                return Err(invalid(
                    "service_urls",
                    format!(
                        "`{name}` is not a service (one of {})",
                        crate::internal::SERVICES.join(", ")
                    ),
                ));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "service_urls",
                    format!("`{name}`: `{url}` must start with http:// or https://"),
                ));
            }
        }
        if self.jwt_ttl_secs == 0 || self.jwt_ttl_secs > 7 * 24 * 3600 {
            return Err(invalid("jwt_ttl_secs", "must be between 1 and 604800"));
        }
        if !(60..=30 * 24 * 3600).contains(&self.session_ttl_secs) {
            return Err(invalid(
                "session_ttl_secs",
                "must be between 60 and 2592000",
            ));
        }
        if self.auth_cache_ttl_secs > 300 {
            return Err(invalid("auth_cache_ttl_secs", "must be at most 300"));
        }
        if self.key_usage_flush_secs == 0 {
            return Err(invalid("key_usage_flush_secs", "must be positive"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(invalid(
                "max_body_bytes",
                "must be between 1 KiB and 64 MiB",
            ));
        }
        if let Some(url) = &self.artifacts_url {
            let bucket = url
                .strip_prefix("s3://")
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("");
            if bucket.is_empty() {
                return Err(invalid("artifacts_url", "must be s3://bucket[/prefix]"));
            }
        }
        if !(1..=3600).contains(&self.deployment_meter_window_secs) {
            return Err(invalid("deployment_meter_window_secs", "must be 1 to 3600"));
        }
        if self.max_artifact_bytes == 0 {
            return Err(invalid("max_artifact_bytes", "must be positive"));
        }
        if self.database_max_connections == 0 {
            return Err(invalid("database_max_connections", "must be positive"));
        }
        if self.http_workers == Some(0) {
            return Err(invalid("http_workers", "must be positive"));
        }
        Ok(())
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.artifacts_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("artifacts"))
    }

    pub fn training_work_dir(&self) -> PathBuf {
        self.training_work_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("training"))
    }

    pub fn training_recipes_dir(&self) -> PathBuf {
        self.training_recipes_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("infra/recipes"))
    }

    pub fn training_python(&self) -> PathBuf {
        self.training_python.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/llmops/venv-train/bin/python")
        })
    }

    /// The effective database URL (the SQLite default lives under `data_dir`).
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("llmops.db").display()
            ),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    /// The configuration as JSON with every secret masked.
    pub fn to_masked_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            let db = mask_url(&self.database_url());
            obj.insert("database_url".into(), serde_json::Value::String(db));
        }
        v
    }
}

/// Hides the password of a URL (`postgres://u:****@h/db`); SQLite paths stay.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:****@{host}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        assert!(c.validate().is_ok());
        assert!(c.is_sqlite());
    }

    #[test]
    fn masks_secrets() {
        let c = Config {
            database_url: Some(Secret::new("postgres://app:s3cret@db:5432/llmops".into())),
            operator_token: Some(Secret::new("operator-token-0123456789".into())),
            ..Config::default()
        };
        let text = c.to_masked_json().to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("operator-token-0123456789"), "{text}");
        assert!(
            text.contains("postgres://app:****@db:5432/llmops"),
            "{text}"
        );
    }

    #[test]
    fn refuses_bad_values() {
        let c = Config {
            listen: "nowhere".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            database_url: Some(Secret::new("mysql://x".into())),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
