//! A Triton of its own that this test stops and starts: inference answers
//! 503 with `retry-after` while it is down and recovers without restarting
//! llmops.

use llmops_tests::{Backend, Options, TempDir, TestApp, eventually, problem, s};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

struct PrivateTriton {
    dir: TempDir,
    ports: [u16; 3],
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateTriton {
    fn ctl(&self, action: &str) -> std::process::Output {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/triton/local.sh"
        ))
        .arg(action)
        .env("TRITON_STATE_DIR", &self.dir.0)
        .env("TRITON_GRPC_PORT", self.ports[0].to_string())
        .env("TRITON_HTTP_PORT", self.ports[1].to_string())
        .env("TRITON_METRICS_PORT", self.ports[2].to_string())
        .output()
        .unwrap()
    }

    fn start(&self) {
        // Under the whole suite's load a start can miss its readiness
        // deadline once: stop what it left and try again.
        let mut out = self.ctl("start");
        if !out.status.success() {
            self.ctl("stop");
            out = self.ctl("start");
        }
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        assert!(self.ctl("stop").status.success());
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[0])
    }
}

impl Drop for PrivateTriton {
    fn drop(&mut self) {
        let _ = self.ctl("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triton_down_is_503_and_recovers_without_a_restart() {
    let triton = PrivateTriton {
        dir: TempDir::new("triton").unwrap(),
        ports: [free_port(), free_port(), free_port()],
    };
    triton.start();
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env: vec![("LLMOPS_TRITON_URL".into(), triton.url())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let t = app.create_tenant_on("outage", "standard").unwrap();
    let key = s(&t["api_key"]);
    let chat = json!({"model": "smollm2-135m-instruct", "max_tokens": 3,
                      "messages": [{"role": "user", "content": "Hi"}]});
    let answered = || async {
        Ok(app
            .post("/v1/chat/completions", &key, &chat)
            .await?
            .status()
            == 200)
    };
    // A Triton reported ready may still be loading under the whole
    // suite's load: the outage starts from a chat that was answered.
    eventually(Duration::from_secs(60), &answered)
        .await
        .unwrap();

    triton.stop();
    // Within a readiness poll the gateway knows; until then the call itself fails over gRPC.
    let res = app.post("/v1/chat/completions", &key, &chat).await.unwrap();
    assert!(res.headers().get("retry-after").is_some());
    problem(res, 503, "service_unavailable").await.unwrap();
    let res = app
        .post(
            "/v1/embeddings",
            &key,
            &json!({"model": "all-minilm-l6-v2", "input": "x"}),
        )
        .await
        .unwrap();
    problem(res, 503, "service_unavailable").await.unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    eventually(Duration::from_secs(10), || async {
        let models = app.get_json("/v1/models", &key).await?;
        Ok(models["data"].as_array().is_some_and(|d| d.is_empty()))
    })
    .await
    .unwrap();

    triton.start();
    eventually(Duration::from_secs(30), &answered)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), || async {
        let models = app.get_json("/v1/models", &key).await?;
        Ok(models["data"].as_array().map(Vec::len) == Some(2))
    })
    .await
    .unwrap();
}
