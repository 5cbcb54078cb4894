//! Command-line interface.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use llmops_core::config::{Config, LogFormat};
use llmops_core::db::{self, Scoped};
use llmops_core::ids::{ApiKeyId, TenantId};
use llmops_core::pagination::ListParams;
use llmops_core::tenancy::store::{self, NewApiKey, NewPlan, NewTenant, TenantStatus};
use llmops_core::{ApiError, Scope};
use llmops_gateway::logwriter::LogWriter;
use llmops_gateway::{app, openapi};
use llmops_migrations::{Migrator, MigratorTrait};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "llmops", version, about = "Multi-tenant LLMOps platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway and every service in this process, or (split mode)
    /// some of them: the gateway forwards the others' routes to
    /// `service_urls`, and services answer only the gateway.
    Serve {
        /// `all`, or a comma list of `gateway`, `registry`, `serving`,
        /// `billing`, `training`, `rag`, `monitoring`.
        #[arg(long, default_value = "all")]
        services: String,
    },
    /// Run training jobs from the shared queue on this machine (no HTTP):
    /// claims CPU jobs while `llmops serve` processes elsewhere take
    /// requests; stops after the running attempts on SIGINT/SIGTERM.
    Worker {
        /// Jobs run at once.
        #[arg(long, default_value_t = 1)]
        slots: u32,
        /// This worker's name in job leases (default: host:pid).
        #[arg(long)]
        owner: Option<String>,
        /// The device type it runs: `cpu` (local processes), or a GPU type
        /// whose attempts it runs on Kubernetes (`training_kube_*`).
        #[arg(long, default_value = "cpu")]
        gpu_type: String,
        /// A GPU worker's pool (`/admin/v1/gpu_pools`): its nodes run the
        /// attempts.
        #[arg(long)]
        pool: Option<String>,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Print the effective configuration (secrets masked).
    Config,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Manage a tenant's API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Manage plans.
    #[command(subcommand)]
    Plans(PlansCmd),
    /// Billing operations.
    #[command(subcommand)]
    Billing(BillingCmd),
    /// Internal: extracts a document's text from stdin to stdout, in a
    /// process of its own so that a hostile file (a PDF that recurses
    /// forever, a decompression bomb) can only take this process down.
    #[command(hide = true)]
    Extract {
        #[arg(long)]
        content_type: String,
    },
}

#[derive(Subcommand)]
enum BillingCmd {
    /// Generate the period's invoices (idempotent): one tenant or all;
    /// the previous calendar month unless a period is given.
    ClosePeriod {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        period_start: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        period_end: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Subcommand)]
enum TenantsCmd {
    /// Create a tenant, its admin user and a first API key (printed once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        /// Plan id (default: the configured default plan).
        #[arg(long)]
        plan: Option<String>,
        /// Admin password; generated and printed once when omitted.
        #[arg(long, env = "LLMOPS_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
    List,
    Get {
        tenant_id: String,
    },
    Suspend {
        tenant_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Reactivate {
        tenant_id: String,
    },
}

#[derive(Args)]
struct TenantArg {
    /// Tenant id (`ten_…`).
    #[arg(long)]
    tenant: String,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key (its secret is printed once).
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        name: String,
        /// Comma-separated: inference, rag, training, registry, billing:read, monitoring, admin.
        #[arg(long, value_delimiter = ',', default_value = "inference")]
        scopes: Vec<String>,
        /// RFC 3339 expiry time.
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Per-key requests-per-minute cap.
        #[arg(long)]
        requests_per_minute: Option<u32>,
    },
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    Revoke {
        #[command(flatten)]
        tenant: TenantArg,
        key_id: String,
    },
}

#[derive(Subcommand)]
enum PlansCmd {
    List,
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        requests_per_minute: u32,
        #[arg(long)]
        tokens_per_minute: u32,
        #[arg(long)]
        concurrent_requests: u32,
    },
}

/// Logs to stderr through a writer thread; returns it, to flush at exit.
fn init_tracing(cfg: &Config) -> LogWriter {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&cfg.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = LogWriter::start();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    writer
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    print_out(&text)
}

/// Writes to stdout; a reader that went away (`llmops openapi | head`) is
/// not an error (`print!` would panic on the broken pipe).
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Prints an error: problem JSON for API errors, text otherwise.
fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        let problem = llmops_core::error::Problem::from_error(api);
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&problem).unwrap_or_else(|_| api.to_string())
        );
        return if api.kind().status.is_client_error() {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        };
    }
    eprintln!("error: {err:#}");
    ExitCode::FAILURE
}

pub fn main() -> ExitCode {
    // Every HTTPS client of the process (S3, Stripe, upstreams) uses ring's
    // rustls provider; install it before any command can build one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Command::Extract { content_type } = &cli.command {
        return extract(content_type);
    }
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let log = init_tracing(&cfg);
    let result = match cli.command {
        Command::Serve { services } => {
            actix_web::rt::System::new().block_on(app::serve(cfg, &services))
        }
        other => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run(other, cfg)),
            Err(e) => Err(e.into()),
        },
    };
    log.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// `llmops extract`: stdin's document as text on stdout; a document that
/// cannot be read is exit code 2 with the reason on stderr.
fn extract(content_type: &str) -> ExitCode {
    use std::io::{Read, Write};
    let Some(kind) = llmops_rag::extract::ContentType::from_mime(content_type) else {
        eprintln!("unknown content type {content_type}");
        return ExitCode::from(2);
    };
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    match llmops_rag::extract::text(kind, &bytes) {
        Ok(text) => match std::io::stdout().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn connect(cfg: &Config) -> anyhow::Result<db::Db> {
    let db = db::connect(cfg)
        .await
        .context("connecting to the database")?;
    llmops_migrations::up(&db)
        .await
        .context("applying migrations")?;
    Ok(db)
}

fn parse_scopes(raw: &[String]) -> anyhow::Result<Vec<Scope>> {
    raw.iter()
        .map(|s| {
            s.trim()
                .parse::<Scope>()
                .map_err(|e| ApiError::validation("scopes", e).into())
        })
        .collect()
}

async fn run(cmd: Command, cfg: Config) -> anyhow::Result<()> {
    match cmd {
        Command::Serve { .. } | Command::Extract { .. } => unreachable_serve(),
        Command::Worker {
            slots,
            owner,
            gpu_type,
            pool,
        } => app::run_worker(cfg, slots, owner, &gpu_type, pool.as_deref()).await,
        Command::Config => print_json(&cfg.to_masked_json()),
        Command::Openapi => {
            print_out(&openapi::document_json())?;
            Ok(())
        }
        Command::Migrate => {
            let db = db::connect(&cfg)
                .await
                .context("connecting to the database")?;
            llmops_migrations::up(&db)
                .await
                .context("applying migrations")?;
            let applied = Migrator::get_applied_migrations(&db).await?.len();
            print_json(
                &serde_json::json!({ "status": "up to date", "applied_migrations": applied }),
            )
        }
        Command::Tenants(t) => {
            let db = connect(&cfg).await?;
            match t {
                TenantsCmd::Create {
                    name,
                    admin_email,
                    plan,
                    admin_password,
                } => {
                    let created = store::create_tenant(
                        &db,
                        NewTenant {
                            name,
                            admin_email,
                            admin_password,
                            plan,
                        },
                        &cfg.default_plan,
                    )
                    .await?;
                    print_json(&created)
                }
                TenantsCmd::List => {
                    let mut all = Vec::new();
                    let mut params = ListParams {
                        limit: Some(100),
                        after: None,
                    };
                    loop {
                        let page = store::list_tenants(&db, &params).await?;
                        let more = page.has_more;
                        params.after = page.last_id.clone();
                        all.extend(page.data);
                        if !more {
                            break;
                        }
                    }
                    print_json(&all)
                }
                TenantsCmd::Get { tenant_id } => {
                    let id: TenantId = tenant_id.parse().map_err(ApiError::from)?;
                    print_json(&store::get_tenant(&db, id).await?)
                }
                TenantsCmd::Suspend { tenant_id, reason } => {
                    let id: TenantId = tenant_id.parse().map_err(ApiError::from)?;
                    print_json(
                        &store::set_tenant_status(&db, id, TenantStatus::Suspended, reason).await?,
                    )
                }
                TenantsCmd::Reactivate { tenant_id } => {
                    let id: TenantId = tenant_id.parse().map_err(ApiError::from)?;
                    print_json(
                        &store::set_tenant_status(&db, id, TenantStatus::Active, None).await?,
                    )
                }
            }
        }
        Command::Keys(k) => {
            let db = connect(&cfg).await?;
            match k {
                KeysCmd::Create {
                    tenant,
                    name,
                    scopes,
                    expires_at,
                    requests_per_minute,
                } => {
                    let id: TenantId = tenant.tenant.parse().map_err(ApiError::from)?;
                    store::get_tenant(&db, id).await?;
                    let created = store::create_key(
                        &db,
                        Scoped::new(id),
                        NewApiKey {
                            name,
                            scopes: parse_scopes(&scopes)?,
                            expires_at,
                            requests_per_minute,
                        },
                        None,
                        None,
                    )
                    .await?;
                    print_json(&created)
                }
                KeysCmd::List { tenant } => {
                    let id: TenantId = tenant.tenant.parse().map_err(ApiError::from)?;
                    store::get_tenant(&db, id).await?;
                    let params = ListParams {
                        limit: Some(100),
                        after: None,
                    };
                    print_json(&store::list_keys(&db, Scoped::new(id), &params).await?)
                }
                KeysCmd::Revoke { tenant, key_id } => {
                    let id: TenantId = tenant.tenant.parse().map_err(ApiError::from)?;
                    let key: ApiKeyId = key_id.parse().map_err(ApiError::from)?;
                    print_json(&store::revoke_key(&db, Scoped::new(id), key).await?)
                }
            }
        }
        Command::Billing(BillingCmd::ClosePeriod {
            tenant,
            period_start,
            period_end,
        }) => {
            let db = connect(&cfg).await?;
            // With Stripe configured, closing queues the pushes (a running
            // server's pusher sends them).
            let billing = llmops_billing::Billing::from_config(db, &cfg)?;
            let (d_start, d_end) = billing.period().previous(chrono::Utc::now());
            let (start, end) = (period_start.unwrap_or(d_start), period_end.unwrap_or(d_end));
            let tenants = match tenant {
                Some(t) => vec![t.parse::<TenantId>().map_err(ApiError::from)?],
                None => billing.tenants().await?,
            };
            let mut out = Vec::new();
            for t in tenants {
                out.push(billing.close_period(t, start, end).await?);
            }
            print_json(&out)
        }
        Command::Plans(p) => {
            let db = connect(&cfg).await?;
            match p {
                PlansCmd::List => print_json(&store::list_plans(&db).await?),
                PlansCmd::Create {
                    id,
                    display_name,
                    requests_per_minute,
                    tokens_per_minute,
                    concurrent_requests,
                } => print_json(
                    &store::create_plan(
                        &db,
                        NewPlan {
                            id,
                            display_name,
                            requests_per_minute,
                            tokens_per_minute,
                            concurrent_requests,
                        },
                    )
                    .await?,
                ),
            }
        }
    }
}

fn unreachable_serve() -> anyhow::Result<()> {
    anyhow::bail!("serve and extract are handled before the runtime starts")
}
