//! nginx (Debian's, installed by the test command) answering fixed bodies:
//! the upstream that misbehaves in exactly one way, as real OpenAI-compatible
//! servers and proxies do (ignoring `stream`, omitting `usage`, cutting a
//! stream short). Each `location` is a path prefix with a fixed answer.

use anyhow::{Context, Result, anyhow, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::TempDir;

/// One fixed answer: every request under `prefix` gets `body` with `content_type`.
pub struct Fixed {
    pub prefix: String,
    pub content_type: String,
    pub body: String,
    /// More directives for this location (e.g. `limit_rate 100` for a slow answer).
    pub extra: String,
}

impl Fixed {
    pub fn json(prefix: &str, body: &serde_json::Value) -> Self {
        Self {
            prefix: prefix.into(),
            content_type: "application/json".into(),
            body: body.to_string(),
            extra: String::new(),
        }
    }

    /// Sends the answer at `bytes_per_sec` (an upstream that takes its time).
    pub fn slow(mut self, bytes_per_sec: u32) -> Self {
        self.extra = format!("limit_rate {bytes_per_sec}; ");
        self
    }

    /// An event stream of `events` (each a `data:` line), as written.
    pub fn sse(prefix: &str, events: &[String]) -> Self {
        Self {
            prefix: prefix.into(),
            content_type: "text/event-stream".into(),
            body: events.iter().map(|e| format!("data: {e}\n\n")).collect(),
            extra: String::new(),
        }
    }
}

pub struct Nginx {
    child: Child,
    pub base: String,
    _dir: TempDir,
}

fn nginx_binary() -> Result<PathBuf> {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!(
        "nginx not found: run the tests with the README's test command (scripts/test.sh), which installs it"
    )
}

/// nginx's string literal: single-quoted, with `'` and `\` escaped.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Nginx {
    pub async fn start(answers: &[Fixed]) -> Result<Self> {
        let dir = TempDir::new("nginx")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut locations = String::new();
        for a in answers {
            locations.push_str(&format!(
                "    location {} {{ default_type {}; {}return 200 {}; }}\n",
                a.prefix,
                a.content_type,
                a.extra,
                quoted(&a.body)
            ));
        }
        let d = dir.0.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_buffer_size 1m;\n  client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n{locations}  }}\n}}\n"
        );
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(nginx_binary()?)
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let me = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(anyhow!("nginx did not listen on port {port}"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
