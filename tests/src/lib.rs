//! Test harness: starts the real `llmops` binary against a fresh database
//! (PostgreSQL or SQLite) and talks HTTP to it like a client would.
//!
//! Needs `TEST_PG_URL` (an admin URL of a PostgreSQL server the tests may
//! create databases on) and, for Redis tests, `TEST_REDIS_URL`; the README's
//! test command provides both.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod localstripe;
pub mod nginx;
mod webhooks;

pub use localstripe::{LocalStripe, STRIPE_KEY};
pub use webhooks::{Hook, webhook_sink};

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789-0123456789-abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Runs a test body once per database backend, PostgreSQL first.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
        }
    )*};
}

/// Removes what `cargo test` put in this process's environment for the test
/// binary (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, …) and `LLMOPS_*`, from a
/// command that runs cargo or the project's scripts: build scripts that
/// watch those variables would otherwise see them change and rebuild half
/// the dependency tree.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        let cargo_set = (k.starts_with("CARGO_") || k == "CARGO" || k == "OUT_DIR")
            && k != "CARGO_HOME"
            && k != "CARGO_TARGET_DIR";
        if cargo_set || k.starts_with("LLMOPS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self> {
        let p = std::env::temp_dir().join("llmops-tests").join(format!(
            "{tag}-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn pg_admin_url() -> Result<String> {
    std::env::var("TEST_PG_URL").map_err(|_| {
        anyhow!(
            "TEST_PG_URL is not set: run the tests with the README's test command (scripts/test.sh)"
        )
    })
}

pub fn redis_url() -> Result<String> {
    std::env::var("TEST_REDIS_URL").map_err(|_| {
        anyhow!("TEST_REDIS_URL is not set: run the tests with the README's test command (scripts/test.sh)")
    })
}

pub fn triton_url() -> Result<String> {
    std::env::var("TEST_TRITON_URL").map_err(|_| {
        anyhow!("TEST_TRITON_URL is not set: run the tests with the README's test command (scripts/test.sh)")
    })
}

/// Options for an app whose serving talks to the test Triton.
pub fn with_triton() -> Result<Options> {
    Ok(Options {
        env: vec![("LLMOPS_TRITON_URL".into(), triton_url()?)],
        ..Default::default()
    })
}

pub fn s3_endpoint() -> Result<String> {
    std::env::var("TEST_S3_ENDPOINT").map_err(|_| {
        anyhow!("TEST_S3_ENDPOINT is not set: run the tests with the README's test command (scripts/test.sh)")
    })
}

/// Replaces the database name of a PostgreSQL URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let prefix = match base.rfind('/') {
        Some(i) if base[..i].contains("://") && i > base.find("://").unwrap_or(0) + 2 => &base[..i],
        _ => base,
    };
    format!("{prefix}/{db}{query}")
}

/// A fresh database, dropped afterwards.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pg: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Result<Self> {
        match backend {
            Backend::Postgres => {
                let admin = pg_admin_url()?;
                let name = format!(
                    "llmops_test_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                let conn = sea_orm::Database::connect(&admin)
                    .await
                    .context("connecting to TEST_PG_URL")?;
                use sea_orm::ConnectionTrait;
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                conn.close().await?;
                Ok(Self {
                    backend,
                    url: with_database(&admin, &name),
                    pg: Some((admin, name)),
                    _dir: None,
                })
            }
            Backend::Sqlite => {
                let dir = TempDir::new("sqlite")?;
                let url = format!("sqlite://{}?mode=rwc", dir.0.join("llmops.db").display());
                Ok(Self {
                    backend,
                    url,
                    pg: None,
                    _dir: Some(dir),
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs outside async context: use a private runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        use sea_orm::ConnectionTrait;
                        if let Ok(conn) = sea_orm::Database::connect(&admin).await {
                            let _ = conn
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                            let _ = conn.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// The `llmops` binary built next to this test binary.
pub fn binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("LLMOPS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or_else(|| anyhow!("no target dir"))?;
    let bin = dir.join("llmops");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (`cargo build --bin llmops`, done by scripts/test.sh)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `llmops serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server logged, for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident memory of the server process so far, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options for a test application.
#[derive(Default, Clone)]
pub struct Options {
    pub redis: bool,
    pub env: Vec<(String, String)>,
    /// Use this database URL instead of a fresh one (readiness tests).
    pub database_url: Option<String>,
    /// Start no server (the test starts its own with `start_server_with`).
    pub no_server: bool,
}

pub struct TestApp {
    pub servers: Vec<Server>,
    pub client: reqwest::Client,
    env: Vec<(String, String)>,
    pub data: TempDir,
    pub db: Option<TestDb>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Result<Self> {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, opts: Options) -> Result<Self> {
        let (db, url) = match &opts.database_url {
            Some(u) => (None, u.clone()),
            None => {
                let db = TestDb::create(backend).await?;
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let data = TempDir::new("data")?;
        let mut env = vec![
            ("LLMOPS_DATABASE_URL".to_string(), url),
            ("LLMOPS_DATABASE_MAX_CONNECTIONS".into(), "5".into()),
            ("LLMOPS_DATA_DIR".into(), data.0.display().to_string()),
            ("LLMOPS_LISTEN".into(), "127.0.0.1:0".into()),
            ("LLMOPS_OPERATOR_TOKEN".into(), OPERATOR_TOKEN.into()),
            ("LLMOPS_JWT_SECRET".into(), JWT_SECRET.into()),
            ("LLMOPS_LOG_FORMAT".into(), "json".into()),
            ("LLMOPS_AUTH_CACHE_TTL_SECS".into(), "1".into()),
            ("LLMOPS_KEY_USAGE_FLUSH_SECS".into(), "1".into()),
            ("LLMOPS_HTTP_WORKERS".into(), "2".into()),
            ("LLMOPS_AUTO_MIGRATE".into(), "false".into()),
            // Training tests turn the in-process worker on.
            ("LLMOPS_TRAINING_CPU_SLOTS".into(), "0".into()),
        ];
        if opts.redis {
            env.push(("LLMOPS_REDIS_URL".into(), redis_url()?));
        }
        for (k, v) in &opts.env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut app = Self {
            servers: Vec::new(),
            client,
            env,
            data,
            db,
        };
        let out = app.cli(&["migrate"])?;
        if out.get("status").and_then(Value::as_str) != Some("up to date") {
            bail!("migrate said {out}");
        }
        if !opts.no_server {
            app.start_server()?;
        }
        Ok(app)
    }

    fn command(&self, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new(binary()?);
        for (k, _) in std::env::vars() {
            if k.starts_with("LLMOPS_") && k != "LLMOPS_BIN" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args);
        Ok(cmd)
    }

    /// Runs a CLI command; returns its stdout as JSON, or its failure.
    pub fn cli(&self, args: &[&str]) -> Result<Value> {
        let out = self.cli_raw(args)?;
        if !out.status.success() {
            bail!(
                "llmops {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "stdout of {args:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn cli_raw(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(self.command(args)?.output()?)
    }

    /// Registers SmolLM2's GGUF (the file the local Triton model ships,
    /// `TEST_SMOLLM_GGUF`) as version 1 of a new model `smol`, uploaded and
    /// verified.
    /// Deploys `model` (a registry version) as `name` on one CPU replica
    /// and waits until it is ready; returns the deployment's id.
    pub async fn deploy_ready(&self, key: &str, name: &str, model: &str) -> Result<String> {
        let res = self
            .post(
                "/v1/deployments",
                key,
                &serde_json::json!({"name": name, "model": model, "gpu_type": "cpu", "replicas": 1}),
            )
            .await?;
        if res.status() != 202 {
            bail!("deploying {model}: {} {}", res.status(), res.text().await?);
        }
        let id = s(&res.json::<Value>().await?["id"]);
        eventually(Duration::from_secs(120), || async {
            let d = self.get_json(&format!("/v1/deployments/{id}"), key).await?;
            if d["status"] == "failed" {
                bail!("deployment {id} failed: {d}");
            }
            Ok(d["status"] == "ready")
        })
        .await?;
        Ok(id)
    }

    pub async fn register_smollm(&self, key: &str) -> Result<()> {
        use sha2::{Digest, Sha256};
        let path = std::env::var("TEST_SMOLLM_GGUF")
            .context("TEST_SMOLLM_GGUF (set by scripts/test.sh)")?;
        let gguf = std::fs::read(&path)?;
        let sha = hex::encode(Sha256::digest(&gguf));
        let res = self
            .post(
                "/v1/registry/models",
                key,
                &serde_json::json!({"name": "smol"}),
            )
            .await?;
        if res.status() != 201 {
            bail!("creating model smol: {}", res.status());
        }
        let res = self
            .post(
                "/v1/registry/models/smol/versions",
                key,
                &serde_json::json!({"format": "gguf", "quantization": "gguf_q4_1", "sha256": sha}),
            )
            .await?;
        if res.status() != 201 {
            bail!("creating smol@1: {}", res.status());
        }
        let res = self
            .client
            .put(self.url("/v1/registry/models/smol/versions/1/artifact"))
            .bearer_auth(key)
            .body(gguf)
            .send()
            .await?;
        if res.status() != 200 {
            bail!("uploading smol@1: {} {}", res.status(), res.text().await?);
        }
        Ok(())
    }

    /// Starts `llmops worker` on the same database (stderr to
    /// `data/worker-<owner>.log`); waits until it says it runs.
    pub fn start_worker(&self, owner: &str) -> Result<std::process::Child> {
        let log = self.data.0.join(format!("worker-{owner}.log"));
        let mut child = self
            .command(&["worker", "--slots", "1", "--owner", owner])?
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawning llmops worker")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(l)) if l.starts_with("llmops worker running") => {
                std::thread::spawn(move || for _ in lines {});
                Ok(child)
            }
            other => {
                let _ = child.kill();
                bail!(
                    "worker did not start ({other:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }
        }
    }

    /// Starts one more replica on the same database; returns its index.
    pub fn start_server(&mut self) -> Result<usize> {
        self.start_server_with(&["serve"], &[])
    }

    /// Starts `llmops ARGS` (a server) with `env` added to the app's;
    /// returns its index once it listens.
    pub fn start_server_with(&mut self, args: &[&str], env: &[(&str, &str)]) -> Result<usize> {
        let log = self
            .data
            .0
            .join(format!("server-{}.log", self.servers.len()));
        let log_file = std::fs::File::create(&log)?;
        let mut child = self
            .command(args)?
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .context("spawning llmops serve")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("llmops listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "server did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        self.servers.push(Server { child, base, log });
        Ok(self.servers.len() - 1)
    }

    pub fn url(&self, path: &str) -> String {
        self.servers[0].url(path)
    }

    /// Sets (or with `None` removes) an environment variable for servers
    /// and CLI commands started from now on.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.into(), v.into()));
        }
    }

    /// Kills replica `i` with SIGKILL (no graceful shutdown).
    pub fn kill_server(&mut self, i: usize) {
        let _ = self.servers[i].child.kill();
        let _ = self.servers[i].child.wait();
    }

    /// Creates a tenant on the default (`free`) plan through the CLI.
    pub fn create_tenant(&self, name: &str) -> Result<Value> {
        self.create_tenant_on(name, "free")
    }

    /// Creates a tenant on a plan through the CLI; returns its JSON.
    pub fn create_tenant_on(&self, name: &str, plan: &str) -> Result<Value> {
        self.cli(&[
            "tenants",
            "create",
            "--name",
            name,
            "--admin-email",
            &format!("admin@{name}.test"),
            "--plan",
            plan,
            "--admin-password",
            "correct horse battery staple",
        ])
    }

    /// Creates a tenant on a new plan with the given limits; returns
    /// `(tenant_id, admin api key)`.
    pub async fn tenant_on_plan(
        &self,
        name: &str,
        rpm: u32,
        tpm: u32,
        concurrency: u32,
    ) -> Result<(String, String)> {
        let plan = format!("plan-{name}");
        let res = self
            .admin_post(
                "/admin/v1/plans",
                &serde_json::json!({
                    "id": plan,
                    "requests_per_minute": rpm,
                    "tokens_per_minute": tpm,
                    "concurrent_requests": concurrency,
                }),
            )
            .await?;
        if res.status() != 201 {
            bail!("creating plan: {} {}", res.status(), res.text().await?);
        }
        let created = self.cli(&[
            "tenants",
            "create",
            "--name",
            name,
            "--admin-email",
            &format!("admin@{name}.test"),
            "--plan",
            &plan,
            "--admin-password",
            "correct horse battery staple",
        ])?;
        Ok((s(&created["tenant_id"]), s(&created["api_key"])))
    }

    /// Prices `plan`'s tokens: 0.05 minor units per input token, 0.1 per
    /// output token, a tenth of that for tokens answered from the cache.
    pub async fn price_tokens(&self, plan: &str) -> Result<()> {
        let m = 1_000_000;
        let component = |meter: &str, amount: i64| {
            serde_json::json!({"meter": meter, "mode": "graduated", "description": meter,
                   "tiers": [{"up_to": null, "rate": {"amount_minor": amount, "per": m}}]})
        };
        let res = self
            .client
            .put(self.url(&format!("/admin/v1/plans/{plan}/pricing")))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&serde_json::json!({"currency": "USD", "components": [
                component("input_tokens", 50_000), component("output_tokens", 100_000),
                component("cached_input_tokens", 5_000), component("cached_output_tokens", 10_000)]}))
            .send()
            .await?;
        if res.status() != 200 {
            bail!("pricing {plan}: {} {}", res.status(), res.text().await?);
        }
        Ok(())
    }

    /// Creates an API key named after, and holding only, `scope` with the
    /// tenant admin's key; returns its secret.
    pub async fn key_with_scope(&self, admin: &str, scope: &str) -> Result<String> {
        let res = self
            .post(
                "/v1/api_keys",
                admin,
                &serde_json::json!({"name": scope, "scopes": [scope]}),
            )
            .await?;
        if res.status() != 201 {
            bail!("creating a key: {} {}", res.status(), res.text().await?);
        }
        Ok(s(&res.json::<Value>().await?["secret"]))
    }

    pub async fn get(&self, path: &str, bearer: &str) -> Result<reqwest::Response> {
        Ok(self
            .client
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await?)
    }

    /// GET and parse the JSON body (any status).
    pub async fn get_json(&self, path: &str, bearer: &str) -> Result<Value> {
        Ok(self.get(path, bearer).await?.json().await?)
    }

    /// GET without credentials and parse the JSON body (any status).
    pub async fn get_public_json(&self, path: &str) -> Result<Value> {
        Ok(self.client.get(self.url(path)).send().await?.json().await?)
    }

    pub async fn post(&self, path: &str, bearer: &str, body: &Value) -> Result<reqwest::Response> {
        Ok(self
            .client
            .post(self.url(path))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await?)
    }

    pub async fn put(&self, path: &str, bearer: &str, body: &Value) -> Result<reqwest::Response> {
        Ok(self
            .client
            .put(self.url(path))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await?)
    }

    pub async fn patch(&self, path: &str, bearer: &str, body: &Value) -> Result<reqwest::Response> {
        Ok(self
            .client
            .patch(self.url(path))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await?)
    }

    pub async fn delete(&self, path: &str, bearer: &str) -> Result<reqwest::Response> {
        Ok(self
            .client
            .delete(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await?)
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Result<reqwest::Response> {
        self.post(path, OPERATOR_TOKEN, body).await
    }
}

/// A response header as text (empty when absent).
pub fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A JSON string field as `String` (empty when absent).
pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Reads a problem+json response and checks its shape.
pub async fn problem(res: reqwest::Response, status: u16, code: &str) -> Result<Value> {
    let got = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let rid = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body: Value = res.json().await.context("problem body is not JSON")?;
    if got != status {
        bail!("expected {status} {code}, got {got}: {body}");
    }
    if ctype != "application/problem+json" {
        bail!("content-type was {ctype:?}: {body}");
    }
    if body["code"] != code
        || body["status"] != status
        || body["type"] != format!("https://llmops.dev/problems/{code}")
    {
        bail!("expected code {code}: {body}");
    }
    if body["title"].as_str().is_none_or(str::is_empty) || body["detail"].as_str().is_none() {
        bail!("problem lacks title/detail: {body}");
    }
    if rid.is_none() || body["request_id"].as_str() != rid.as_deref() {
        bail!("request id header {rid:?} missing from body {body}");
    }
    Ok(body)
}

/// Runs a Python check script (the `openai` SDK checks) with `env`; fails
/// unless it exits 0 and prints `all SDK checks passed`.
pub async fn run_sdk_checks(python_var: &str, script: &str, env: &[(&str, &str)]) -> Result<()> {
    let python = std::env::var(python_var)
        .with_context(|| format!("{python_var} (set by scripts/test.sh)"))?;
    let out = tokio::process::Command::new(python)
        .arg(script)
        .envs(env.iter().copied())
        .output()
        .await?;
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !report.contains("all SDK checks passed") {
        bail!("SDK checks failed:\n{report}");
    }
    Ok(())
}

/// Waits until `f` holds, polling every 100 ms, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = std::time::Instant::now();
    loop {
        if f().await? {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("condition not met within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
