//! Builds the application state and runs the HTTP server.

use crate::extract::{path_config, query_config};
use crate::middleware::{authenticate, not_found, operator_only, request_context};
use crate::openapi;
use crate::ratelimit::{RateLimiter, RedisStore};
use crate::routes;
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use llmops_core::auth::{Authenticator, JwtKeys, random_alnum};
use llmops_core::config::Config;
use llmops_core::db;
use llmops_core::usage::GroupCommitSink;
use llmops_registry::artifacts::S3Settings;
use llmops_registry::{ArtifactStore, Registry};
use llmops_serving::triton::Triton;
use llmops_serving::{Serving, ServingParts};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa_swagger_ui::SwaggerUi;

/// How often histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(1);

/// Installs the Prometheus recorder (once per process).
fn install_metrics() -> Option<PrometheusHandle> {
    let buckets = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
        .ok()?
        .install_recorder()
        .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
        .ok()
}

/// The configured JWT secret, or one kept in `data_dir/jwt-secret`.
fn jwt_secret(cfg: &Config) -> anyhow::Result<String> {
    if let Some(s) = &cfg.jwt_secret {
        return Ok(s.expose().clone());
    }
    let path = cfg.data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let s = existing.trim().to_string();
        if s.len() >= 32 {
            return Ok(s);
        }
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let secret = random_alnum(64);
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?
    };
    f.write_all(secret.as_bytes())?;
    Ok(secret)
}

pub async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).context("parsing redis_url")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    tokio::time::timeout(
        Duration::from_secs(5),
        redis::aio::ConnectionManager::new_with_config(client, config),
    )
    .await
    .context("connecting to redis timed out")?
    .context("connecting to redis")
}

/// The application state, and the ledger's group-commit flusher to run
/// until `stop`.
pub async fn build_state(
    cfg: Config,
    stop: CancellationToken,
) -> anyhow::Result<(
    AppState,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    build_state_for(cfg, stop, crate::split::Topology::all()).await
}

/// [`build_state`] for a process that runs the services `topology` names
/// (the libraries of every service are there; their schedules run only
/// where the service does).
pub async fn build_state_for(
    cfg: Config,
    stop: CancellationToken,
    topology: crate::split::Topology,
) -> anyhow::Result<(
    AppState,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    let db = db::connect(&cfg)
        .await
        .context("connecting to the database")?;
    if cfg.auto_migrate {
        llmops_migrations::up(&db)
            .await
            .context("applying migrations")?;
    }
    let jwt = Arc::new(JwtKeys::new(
        jwt_secret(&cfg)?.as_bytes(),
        Duration::from_secs(cfg.jwt_ttl_secs),
    ));
    let auth = Arc::new(Authenticator::new(
        db.clone(),
        jwt,
        Duration::from_secs(cfg.auth_cache_ttl_secs),
    ));
    let redis = match &cfg.redis_url {
        Some(url) => Some(connect_redis(url.expose()).await?),
        None => None,
    };
    let limiter = Arc::new(RateLimiter::new(redis.clone().map(RedisStore::new)));
    let artifacts = match &cfg.artifacts_url {
        Some(url) => ArtifactStore::s3(
            &S3Settings {
                url: url.clone(),
                endpoint: cfg.s3_endpoint.clone(),
                region: cfg.s3_region.clone(),
                access_key_id: cfg.s3_access_key_id.as_ref().map(|s| s.expose().clone()),
                secret_access_key: cfg
                    .s3_secret_access_key
                    .as_ref()
                    .map(|s| s.expose().clone()),
                allow_http: cfg.s3_allow_http,
            },
            cfg.max_artifact_bytes,
        ),
        None => ArtifactStore::local(&cfg.artifacts_dir(), cfg.max_artifact_bytes),
    }
    .context("opening the artifact store")?;
    let registry = web::Data::new(Registry::new(db.clone(), artifacts.clone()));
    let training = web::Data::new(llmops_training::Training::new(
        db.clone(),
        llmops_training::Queue::new(db.clone(), training_queue_config(&cfg)),
        llmops_training::files::Files::new(db.clone(), artifacts),
        registry.clone().into_inner(),
    ));
    let (ledger, flusher) =
        GroupCommitSink::new(db.clone(), 2_000, Duration::from_millis(5), stop.clone());
    let usage: Arc<dyn llmops_core::usage::UsageSink> = Arc::new(ledger);
    let triton = cfg.triton_url.as_deref().map(Triton::new).transpose()?;
    let mut tokenizers = cfg.model_tokenizers.clone();
    if triton.is_some() {
        for m in llmops_serving::catalog::local_models() {
            let shipped = cfg.triton_models_dir.join(&m.id).join("tokenizer.json");
            if shipped.is_file() && !cfg.catalog.iter().any(|c| c.id == m.id) {
                tokenizers.entry(m.id).or_insert(shipped);
            }
        }
    }
    let catalog = llmops_serving::catalog::build(&cfg.catalog, triton.is_some(), &tokenizers)
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let registry_client: Arc<dyn llmops_registry::RegistryClient> = match topology
        .peer("registry")
        .filter(|_| !topology.runs("registry"))
    {
        Some((base, keys, client)) => Arc::new(crate::peers::HttpRegistry::new(base, keys, client)),
        None => registry.clone().into_inner(),
    };
    let billing = web::Data::new(llmops_billing::Billing::from_config(db.clone(), &cfg)?);
    // Split mode: a process without billing reaches it over HTTP when it
    // knows where it runs.
    let spend_guard: Arc<dyn llmops_core::limits::SpendGuard> = match topology
        .peer("billing")
        .filter(|_| !topology.runs("billing"))
    {
        Some((base, keys, client)) => {
            Arc::new(crate::peers::HttpSpendGuard::new(base, keys, client))
        }
        None => billing.clone().into_inner(),
    };
    let cache = build_cache(&cfg, &db, redis.as_ref());
    let serving = web::Data::new(Serving::new(ServingParts {
        triton,
        catalog,
        budget: limiter.clone(),
        usage: usage.clone(),
        db: Some(db.clone()),
        registry: Some(registry_client),
        spend_guard: Some(spend_guard.clone()),
        meter_window: Duration::from_secs(cfg.deployment_meter_window_secs),
        cache: cfg.cache_enabled.then(|| cache.get_ref().clone()),
    }));
    training.set_teacher(Arc::new(crate::teacher::ServingTeacher(serving.clone())));
    // Monitoring's writer and compaction stop with the ledger's flusher:
    // records still queued are written before the process ends.
    let monitoring_tasks = TaskTracker::new();
    let monitoring = web::Data::new(llmops_monitoring::Monitoring::start(
        &cfg,
        db.clone(),
        llmops_monitoring::Hooks {
            pricer: Some(spend_guard),
            embedder: crate::cache_models::ServedEmbedder::new(&serving)
                .map(|e| Arc::new(e) as Arc<dyn llmops_monitoring::PromptEmbedder>),
            retrainer: Some(Arc::new(crate::retrain::TrainingRetrainer(
                training.clone(),
            ))),
            schedules: topology.runs("monitoring"),
        },
        &monitoring_tasks,
        stop,
    ));
    monitoring_tasks.close();
    registry.set_live_checks(Arc::new(crate::monitor::DriftGate {
        monitoring: monitoring.clone(),
        serving: serving.clone(),
    }));
    let flusher = async move {
        flusher.await;
        monitoring_tasks.wait().await;
    };
    let state = AppState {
        monitoring,
        billing,
        training,
        registry,
        serving,
        usage,
        metrics: install_metrics(),
        rag: None,
        cache,
        topology,
        config: cfg,
        db,
        auth,
        limiter,
        redis,
    };
    Ok((state, flusher))
}

/// The configured vector store: a Qdrant server, or the embedded engine
/// under `data_dir/vectors` (one per process: RAG and the cache share it).
pub fn open_vectors(cfg: &Config) -> anyhow::Result<llmops_vectors::VectorStore> {
    let backend = match &cfg.qdrant_url {
        Some(url) => llmops_vectors::Backend::Server {
            url: url.clone(),
            api_key: cfg.qdrant_api_key.as_ref().map(|k| k.expose().clone()),
        },
        None => llmops_vectors::Backend::Edge(cfg.data_dir.join("vectors")),
    };
    llmops_vectors::VectorStore::open(&backend).context("opening the vector store")
}

/// The response cache: answers in Redis when `redis_url` is set (every
/// replica shares them), else in this process.
fn build_cache(
    cfg: &Config,
    db: &llmops_core::db::Db,
    redis: Option<&redis::aio::ConnectionManager>,
) -> web::Data<llmops_cache::SemanticCache> {
    let store: Arc<dyn llmops_cache::store::EntryStore> = match redis {
        Some(c) => Arc::new(llmops_cache::store::RedisStore::new(c.clone())),
        None => Arc::new(llmops_cache::store::MemoryStore::new(
            cfg.cache_memory_bytes,
        )),
    };
    web::Data::new(llmops_cache::SemanticCache::new(
        llmops_cache::CacheConfig {
            min_similarity: cfg.cache_min_similarity,
            default_ttl_secs: cfg.cache_ttl_secs,
            max_ttl_secs: cfg.cache_max_ttl_secs,
            max_entry_bytes: cfg.cache_max_entry_bytes,
            settings_ttl: Duration::from_secs(cfg.auth_cache_ttl_secs.max(1)),
            ..Default::default()
        },
        db.clone(),
        store,
    ))
}

/// Turns the cache's semantic level on: all-MiniLM-L6-v2 in-process when
/// `cache_embedding_dir` has its weights, else the served model; without
/// either, the cache matches exactly only.
pub async fn enable_semantic_cache(
    state: &AppState,
    store: &llmops_vectors::VectorStore,
) -> anyhow::Result<()> {
    use crate::cache_models::{CACHE_EMBEDDING_MODEL, ServedEmbedder};
    if !state.config.cache_enabled {
        return Ok(());
    }
    let embedder: Arc<dyn llmops_cache::Embedder> = match &state.config.cache_embedding_dir {
        Some(dir) => {
            let dir = dir.clone();
            let model = tokio::task::spawn_blocking(move || {
                llmops_cache::MiniLm::load(CACHE_EMBEDDING_MODEL, &dir)
            })
            .await?
            .context("loading cache_embedding_dir")?;
            Arc::new(model)
        }
        None => match ServedEmbedder::new(&state.serving) {
            Some(e) => Arc::new(e),
            None => {
                tracing::info!("response cache: exact matches only (no embedding model)");
                return Ok(());
            }
        },
    };
    // A vector store another process owns (a second replica on the same
    // data directory) leaves this replica matching exactly only.
    match state.cache.enable_semantic(store, embedder).await {
        Err(e @ llmops_cache::CacheError::Vectors(llmops_vectors::VectorError::Schema { .. })) => {
            Err(anyhow::Error::new(e).context("the response cache's vector collection"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "response cache: exact matches only (the vector store is unavailable)");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// The RAG service on the vector store. Collections of the
/// catalog's embedding models are created or checked now: a mismatch
/// stops start-up.
pub async fn build_rag(
    state: &AppState,
    store: llmops_vectors::VectorStore,
) -> anyhow::Result<web::Data<llmops_rag::Rag>> {
    let cfg = &state.config;
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let rag = llmops_rag::Rag::new(llmops_rag::RagParts {
        db: state.db.clone(),
        store,
        models: Arc::new(crate::rag_models::ServingModels(state.serving.clone())),
        usage: state.usage.clone(),
        config: llmops_rag::RagConfig {
            ingest_workers: cfg.rag_ingest_workers,
            max_attempts: cfg.rag_ingest_max_attempts,
            max_document_bytes: cfg.rag_max_document_bytes,
            storage_meter_secs: cfg.rag_storage_meter_secs,
            owner: format!("{host}:{}", std::process::id()),
            extractor: std::env::current_exe().ok(),
        },
    })
    .await
    .context("opening the knowledge bases' vector collections")?;
    Ok(web::Data::new(rag))
}

/// The training queue's timing from the configuration.
pub fn training_queue_config(cfg: &Config) -> llmops_training::QueueConfig {
    llmops_training::QueueConfig {
        lease: Duration::from_secs(cfg.training_lease_secs.max(1)),
        ..Default::default()
    }
}

/// A training worker with `slots` CPU slots, named `owner` (default: host
/// name and process id); tenants over budget start no job.
pub fn training_worker(
    state: &AppState,
    slots: u32,
    owner: Option<String>,
    gpu_type: &str,
    pool: Option<&str>,
) -> llmops_training::worker::Worker {
    let cfg = &state.config;
    let spend: Arc<dyn llmops_core::limits::SpendGuard> = state.billing.clone().into_inner();
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    llmops_training::worker::Worker::new(
        state.training.get_ref().clone(),
        llmops_training::worker::WorkerConfig {
            owner: owner.unwrap_or_else(|| format!("{host}:{}", std::process::id())),
            gpu_type: gpu_type.into(),
            pool: pool.map(str::to_string),
            slots,
            python: cfg.training_python(),
            recipes_dir: cfg.training_recipes_dir(),
            work_dir: cfg.training_work_dir(),
            heartbeat: Duration::from_secs(cfg.training_heartbeat_secs.max(1)),
            wall_clock: Duration::from_secs(cfg.training_wall_clock_secs.max(1)),
            poll: Duration::from_secs(1),
            threads: u32::try_from(threads / usize::try_from(slots.max(1)).unwrap_or(1))
                .unwrap_or(1)
                .max(1),
        },
        Some(spend),
    )
}

/// Checks that `pool` exists and holds `gpu_type` devices.
async fn check_pool(state: &AppState, gpu_type: &str, pool: &str) -> anyhow::Result<()> {
    let found = state
        .training
        .pools()
        .get(pool)
        .await
        .map_err(|e| anyhow::anyhow!("--pool {pool}: {e}"))?;
    if found.gpu_type != gpu_type {
        anyhow::bail!(
            "pool {pool} holds {} devices, not {gpu_type}",
            found.gpu_type
        );
    }
    Ok(())
}

/// What a GPU worker needs to run attempts on Kubernetes: its pool (which
/// must exist and be of `gpu_type`), the namespace and image, and an S3
/// artifact store the pods can reach.
async fn kube_target(
    state: &AppState,
    pool: Option<&str>,
) -> anyhow::Result<llmops_training::worker::KubeTarget> {
    let cfg = &state.config;
    let pool = pool.context("a GPU worker names its pool: --pool ID")?;
    let namespace = cfg.training_kube_namespace.as_deref().context(
        "a GPU worker runs attempts on Kubernetes: set training_kube_namespace (LLMOPS_TRAINING_KUBE_NAMESPACE)",
    )?;
    let image = cfg
        .training_kube_image
        .clone()
        .context("set training_kube_image (LLMOPS_TRAINING_KUBE_IMAGE): the GPU recipe's image")?;
    let store_uri = cfg.artifacts_url.clone().context(
        "pods read inputs from and write outputs to the artifact store: set artifacts_url to an s3:// bucket",
    )?;
    let cluster = llmops_training::kube_exec::Cluster::connect(namespace)
        .await
        .context("connecting to Kubernetes (kubeconfig or in-cluster service account)")?;
    Ok(llmops_training::worker::KubeTarget {
        cluster,
        image,
        queue_name: cfg.training_kube_queue.clone(),
        artifacts_secret: cfg.training_kube_artifacts_secret.clone(),
        pool_label: cfg.training_kube_pool_label.clone(),
        pool: pool.to_string(),
        store_uri: store_uri.trim_end_matches('/').to_string(),
        s3_endpoint: cfg.s3_endpoint.clone(),
    })
}

/// `llmops worker`: runs training jobs until SIGINT/SIGTERM: CPU jobs as
/// local processes, or (`--gpu-type`) GPU jobs on Kubernetes.
pub async fn run_worker(
    cfg: Config,
    slots: u32,
    owner: Option<String>,
    gpu_type: &str,
    pool: Option<&str>,
) -> anyhow::Result<()> {
    if !(1..=64).contains(&slots) {
        anyhow::bail!("--slots must be 1 to 64");
    }
    // Listening from the start: a SIGTERM or SIGINT while it connects
    // stops it cleanly once started, instead of killing it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let (state, flusher) = build_state(cfg, stop.clone()).await?;
    tracker.spawn(flusher);
    if let Some(p) = pool {
        check_pool(&state, gpu_type, p).await?;
    }
    let mut worker = training_worker(&state, slots, owner, gpu_type, pool);
    if gpu_type != "cpu" {
        worker = worker.on_kubernetes(kube_target(&state, pool).await?);
    }
    worker.check().map_err(anyhow::Error::msg)?;
    println!("llmops worker running {slots} slot(s)");
    let _ = std::io::stdout().flush();
    {
        let stop = stop.clone();
        tracker.spawn(async move { worker.run(stop).await });
    }
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: running attempts are stopped and re-queued");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Registers every route on an actix `App`.
pub fn configure_app(cfg: &mut web::ServiceConfig, state: &AppState) {
    let max_body = state.config.max_body_bytes;
    if let Some(rag) = &state.rag {
        cfg.app_data(rag.clone());
    }
    cfg.app_data(state.registry.clone())
        .app_data(state.cache.clone())
        .app_data(state.serving.clone())
        .app_data(state.billing.clone())
        .app_data(state.training.clone())
        .app_data(state.monitoring.clone())
        .app_data(llmops_core::http::JsonLimit(max_body))
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(query_config())
        .app_data(path_config())
        .service(scope_of(
            "/v1",
            &state.topology,
            V1_ROUTES,
            (guard_tenant, guard_forwarded_tenant),
        ))
        .service(scope_of(
            "/admin/v1",
            &state.topology,
            ADMIN_ROUTES,
            (guard_operator, guard_forwarded_operator),
        ))
        .configure(routes::health::configure)
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("location", "/docs/"))
                    .finish()
            }),
        )
        .service(
            SwaggerUi::new("/docs/{_:.*}")
                .external_url_unchecked("/openapi.json", openapi::document()),
        );
    if state.topology.runs(crate::split::GATEWAY) {
        cfg.app_data(web::Data::new(crate::dashboard::Assets::new(
            state.config.dashboard_dir.clone(),
        )))
        .configure(crate::dashboard::configure);
    }
    if state.topology.is_split() && state.topology.runs("billing") {
        cfg.service(scope_of(
            "/internal/v1",
            &state.topology,
            INTERNAL_ROUTES,
            (guard_service, guard_service),
        ));
    }
}

/// A service's route registration.
type Routes = fn(&mut web::ServiceConfig);

/// A scope's guard: authentication at the edge, or the internal token.
type Guard =
    fn(actix_web::dev::ServiceRequest, actix_web::middleware::Next<BoxBody>) -> GuardFuture;

/// `prefix` with the routes of the services this process runs (in the
/// order given: routes are tried in order and a pattern with parameters
/// costs a regex match, so static inference routes come first), behind
/// `edge` at the gateway or the internal token in a service (split mode);
/// a gateway forwards the rest to the services that run elsewhere.
fn scope_of(
    prefix: &str,
    topology: &crate::split::Topology,
    routes: &[(&str, Routes)],
    (edge, internal): (Guard, Guard),
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    > + use<>,
> {
    let mut scope = web::scope(prefix);
    for (service, configure) in routes {
        if topology.runs(service) {
            scope = scope.configure(*configure);
        }
    }
    if topology.forwards() {
        scope = scope.default_service(web::to(crate::split::forward));
    }
    let guard: Guard = if topology.behind_gateway() {
        internal
    } else {
        edge
    };
    scope.wrap(from_fn(guard))
}

const V1_ROUTES: &[(&str, Routes)] = &[
    ("serving", llmops_serving::routes::configure),
    (crate::split::GATEWAY, routes::v1),
    ("billing", llmops_billing::routes::configure),
    ("registry", llmops_registry::routes::configure),
    ("training", llmops_training::routes::configure),
    ("rag", llmops_rag::routes::configure),
    ("serving", llmops_cache::routes::configure),
    ("monitoring", llmops_monitoring::routes::configure),
    ("monitoring", llmops_monitoring::alert_routes::configure),
];

const ADMIN_ROUTES: &[(&str, Routes)] = &[
    (crate::split::GATEWAY, routes::admin),
    ("billing", llmops_billing::routes::configure_admin),
    ("training", llmops_training::admin::configure_admin),
    ("rag", llmops_rag::routes::configure_admin),
    ("monitoring", llmops_monitoring::routes::configure_admin),
];

/// What services call each other for in split mode (billing's budgets and
/// prices): wherever billing runs in split mode, for other services only.
const INTERNAL_ROUTES: &[(&str, Routes)] = &[("billing", crate::peers::configure_billing)];

type Guarded = Result<actix_web::dev::ServiceResponse<BoxBody>, actix_web::Error>;
type GuardFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Guarded>>>;

/// A tenant's credentials; or, in split mode, a peer service's call with
/// an internal token (serving resolving a version from a registry that
/// runs next to the gateway), checked as a service checks it.
fn guard_tenant(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> GuardFuture {
    let from_peer = req.headers().contains_key(llmops_core::internal::HEADER)
        && crate::middleware::app_state(&req).is_ok_and(|s| s.topology.is_split());
    if from_peer {
        Box::pin(crate::split::guard(crate::split::Expect::Tenant, req, next))
    } else {
        Box::pin(authenticate(req, next))
    }
}

fn guard_operator(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> GuardFuture {
    Box::pin(operator_only(req, next))
}

fn guard_forwarded_tenant(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> GuardFuture {
    Box::pin(crate::split::guard(crate::split::Expect::Tenant, req, next))
}

fn guard_forwarded_operator(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> GuardFuture {
    Box::pin(crate::split::guard(
        crate::split::Expect::Operator,
        req,
        next,
    ))
}

fn guard_service(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> GuardFuture {
    Box::pin(crate::split::guard(
        crate::split::Expect::Service,
        req,
        next,
    ))
}

/// Runs the server until SIGINT/SIGTERM, then drains and flushes.
pub async fn serve(cfg: Config, services: &str) -> anyhow::Result<()> {
    let topology = crate::split::Topology::from_spec(services, &cfg)?;
    let workers = cfg.http_workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let listen = cfg.listen.clone();
    let flush_every = Duration::from_secs(cfg.key_usage_flush_secs);
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let (mut state, flusher) = build_state_for(cfg, stop.clone(), topology).await?;
    let runs_serving = state.topology.runs("serving");
    let runs_rag = state.topology.runs("rag");
    let runs_billing = state.topology.runs("billing");
    let runs_gateway = state.topology.runs(crate::split::GATEWAY);
    // The vector store: knowledge bases and the cache's semantic level.
    if runs_serving || runs_rag {
        let vectors = open_vectors(&state.config)?;
        if runs_rag {
            state.rag = Some(build_rag(&state, vectors.clone()).await?);
        }
        if runs_serving {
            enable_semantic_cache(&state, &vectors).await?;
        }
    }
    tracing::info!(services = %state.topology.describe(), "starting");
    let state = web::Data::new(state);
    tracker.spawn(flusher);
    if runs_serving {
        let cache = state.cache.clone();
        let stop = stop.clone();
        tracker.spawn(async move { cache.run_sweeper(Duration::from_secs(30), stop).await });
    }
    if let Some(rag) = state.rag.clone() {
        for _ in 0..state.config.rag_ingest_workers {
            let rag = rag.clone();
            let stop = stop.clone();
            tracker.spawn(async move { rag.run_ingest_worker(stop).await });
        }
        let stop = stop.clone();
        tracker.spawn(async move { rag.run_storage_meter(stop).await });
    }
    // Know which models are ready before the first request: serving, and
    // RAG and training, which call models through this process's serving
    // library (embeddings, answers, a distillation's teacher).
    let infers = runs_serving || runs_rag || state.topology.runs("training");
    if infers {
        state.serving.poll_readiness().await;
    }

    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(request_context))
            .configure(|c| configure_app(c, &app_state))
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .shutdown_timeout(10)
    .bind(&listen)
    .with_context(|| format!("binding {listen}"))?;

    for addr in server.addrs() {
        tracing::info!(%addr, "listening");
        // Machine-readable line on stdout (tests and scripts wait for it).
        println!("llmops listening on http://{addr}");
    }
    let _ = std::io::stdout().flush();

    if runs_gateway {
        let state = state.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(flush_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = state.auth.flush_key_usage().await {
                            tracing::warn!(error = %e, "flushing key usage failed; will retry");
                        }
                        // Ended sessions and dead invitations (idempotent on
                        // every replica; a handful of rows per tick).
                        if let Err(e) = llmops_core::tenancy::users::sweep(&state.db).await {
                            tracing::warn!(error = %e, "sweeping ended sessions failed; will retry");
                        }
                    }
                }
            }
        });
    }

    if let Some(handle) = state.metrics.clone() {
        // The recorder keeps every histogram sample until upkeep folds it
        // into the buckets; without a scrape nothing else does, and memory
        // would grow with every request.
        let stop = stop.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => handle.run_upkeep(),
                }
            }
        });
    }
    if infers {
        // Which models are ready decides what /v1/models lists and whether
        // calls go through (503 with retry-after otherwise).
        let serving = state.serving.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            serving.watch_readiness(Duration::from_secs(2), stop).await;
        });
    }
    if runs_serving {
        let serving = state.serving.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            serving.watch_deployments(stop).await;
        });
    }
    {
        // Shared concurrency slots: lease renewal and late releases.
        let limiter = state.limiter.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            limiter.run_background(stop).await;
        });
    }
    if runs_billing {
        // Finalized invoices to Stripe (when configured).
        let billing = state.billing.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            billing.run_stripe_pusher(stop).await;
        });
    }
    if state.config.training_cpu_slots > 0 && state.topology.runs("training") {
        // Training jobs on this machine's CPUs.
        let pool = state.config.training_cpu_pool.clone();
        let worker = training_worker(
            &state,
            state.config.training_cpu_slots,
            None,
            "cpu",
            pool.as_deref(),
        );
        let stop = stop.clone();
        tracker.spawn(async move { worker.run(stop).await });
    }
    if state.config.billing_auto_close && runs_billing {
        let billing = state.billing.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            billing.run_period_closer(stop).await;
        });
    }

    let result = server.run().await;
    // Settle in-flight usage first (it needs the ledger), then stop the
    // background work; the ledger flusher commits what is queued.
    state.serving.drain().await;
    state.billing.drain().await;
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    if let Err(e) = state.auth.flush_key_usage().await {
        tracing::warn!(error = %e, "final key-usage flush failed");
    }
    tracing::info!("stopped");
    result.context("http server")
}
