use llmops_tests::{Backend, Options, TempDir, TestApp, eventually, on_both_backends};
use std::process::Command;
use std::time::Duration;

on_both_backends!(health_metrics_and_docs);

async fn health_metrics_and_docs(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let c = &app.client;
    let health: serde_json::Value = app.get_public_json("/healthz").await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready: serde_json::Value = app.get_public_json("/readyz").await.unwrap();
    assert_eq!(ready["checks"]["database"], "ok");

    let t = app.create_tenant("acme").unwrap();
    let res = app
        .get("/v1/tenant", t["api_key"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let metrics = c
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/v1/tenant",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );

    // Swagger UI is served from the binary.
    let docs = c.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    let js = c
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
}

/// The served OpenAPI document is the checked-in one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_checked_in_file() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let served: serde_json::Value = app.get_public_json("/openapi.json").await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        served == file,
        "openapi/openapi.json is stale: regenerate it with `scripts/llmops openapi > openapi/openapi.json`"
    );
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
    // Every route the API serves is described, with its errors.
    for (path, method) in [
        ("/v1/tenant", "get"),
        ("/v1/api_keys", "post"),
        ("/v1/api_keys/{key_id}", "delete"),
        ("/v1/auth/login", "post"),
        ("/admin/v1/tenants", "post"),
        ("/admin/v1/plans/{plan_id}", "patch"),
        ("/readyz", "get"),
    ] {
        let op = &served["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"].as_object().unwrap().len() >= 2, "{path}");
    }
    let op = &served["paths"]["/v1/tenant"]["get"];
    assert!(op["responses"]["429"]["content"]["application/problem+json"].is_object());
    assert!(served["components"]["securitySchemes"]["bearer"].is_object());
}

/// A throw-away PostgreSQL cluster this test may stop and start.
struct PrivatePg {
    dir: TempDir,
    port: u16,
}

impl PrivatePg {
    fn pg_bin(tool: &str) -> String {
        let dir = std::env::var("TEST_PG_BIN").expect("TEST_PG_BIN (set by scripts/test.sh)");
        format!("{dir}/{tool}")
    }

    /// Runs a PostgreSQL tool, as TEST_PG_USER when set (PostgreSQL refuses root).
    fn run(args: &[&str]) -> std::process::Output {
        let mut cmd = match std::env::var("TEST_PG_USER") {
            Ok(user) if !user.is_empty() => {
                let mut c = Command::new("runuser");
                c.args(["-u", &user, "--"]);
                c.args(args);
                c
            }
            _ => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        cmd.output().expect("running a PostgreSQL tool")
    }

    fn start_new() -> Self {
        let dir = TempDir::new("pg").unwrap();
        if let Ok(user) = std::env::var("TEST_PG_USER")
            && !user.is_empty()
        {
            let st = Command::new("chown")
                .args(["-R", &user, dir.0.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.0.join("data");
        let out = Self::run(&[
            &Self::pg_bin("initdb"),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ]);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Self { dir, port };
        pg.start();
        pg
    }

    fn ctl(&self, action: &[&str]) -> std::process::Output {
        let data = self.dir.0.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.0.display()
        );
        let mut args = vec![
            Self::pg_bin("pg_ctl"),
            "-D".into(),
            data.display().to_string(),
        ];
        args.extend(action.iter().map(|s| s.to_string()));
        if action[0] == "start" {
            args.extend([
                "-o".into(),
                opts,
                "-l".into(),
                self.dir.0.join("pg.log").display().to_string(),
            ]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::run(&refs)
    }

    fn start(&self) {
        let out = self.ctl(&["start", "-w"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let out = self.ctl(&["stop", "-m", "immediate", "-w"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop", "-m", "immediate"]);
    }
}

/// `/readyz` turns 503 when PostgreSQL stops, and ready again when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_postgres() {
    let pg = PrivatePg::start_new();
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            database_url: Some(pg.url()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ready = || async {
        Ok::<u16, anyhow::Error>(
            app.client
                .get(app.url("/readyz"))
                .send()
                .await?
                .status()
                .as_u16(),
        )
    };
    assert_eq!(ready().await.unwrap(), 200);

    pg.stop();
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    assert_ne!(body["checks"]["database"], "ok");
    assert!(!body.to_string().contains("postgres://"), "{body}");
    // Liveness is unaffected.
    let live = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    pg.start();
    eventually(Duration::from_secs(15), || async {
        Ok(ready().await? == 200)
    })
    .await
    .unwrap();
}

/// A reader that stops early (`llmops openapi | head`) ends the command
/// quietly: no panic on the broken pipe.
#[test]
fn cli_output_into_a_closed_pipe_is_not_a_crash() {
    use std::io::Read;
    let mut child = std::process::Command::new(llmops_tests::binary().unwrap())
        .arg("openapi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    let mut out = child.stdout.take().unwrap();
    out.read_exact(&mut first).unwrap();
    drop(out);
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{:?} {stderr}", done.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
