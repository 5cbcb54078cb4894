//! An OpenAI-compatible HTTP upstream as a backend: a second llmops (itself
//! on the real Triton) is the upstream of the gateway under test, which has
//! no Triton of its own. Retries and fallbacks on an unreachable upstream.

use llmops_tests::{Backend, Options, TempDir, TestApp, eventually, s, with_triton};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_compatible_upstreams_with_retries_and_fallbacks() {
    let upstream = TestApp::spawn_with(Backend::Postgres, with_triton().unwrap())
        .await
        .unwrap();
    let u = upstream.create_tenant_on("provider", "standard").unwrap();
    let ukey = s(&u["api_key"]);
    let base = upstream.url("/v1");

    let dir = TempDir::new("config").unwrap();
    let config = dir.0.join("llmops.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[catalog]]
id = "proxy-smol"
kind = "chat"
backend = "openai"
base_url = "{base}"
api_key = "{ukey}"
model = "smollm2-135m-instruct"
context_tokens = 2048

[[catalog]]
id = "proxy-minilm"
kind = "embedding"
backend = "openai"
base_url = "{base}"
api_key = "{ukey}"
model = "all-minilm-l6-v2"

[[catalog]]
id = "flaky"
kind = "chat"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "anything"
context_tokens = 2048
fallbacks = ["proxy-smol"]
"#
        ),
    )
    .unwrap();
    let gateway = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            // Retries, fallbacks and usage of every call: answered by the
            // upstreams, not by the response cache.
            env: vec![
                ("LLMOPS_CONFIG".into(), config.display().to_string()),
                ("LLMOPS_CACHE_ENABLED".into(), "false".into()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let g = gateway.create_tenant_on("customer", "standard").unwrap();
    let gkey = s(&g["api_key"]);

    let models = gateway.get_json("/v1/models", &gkey).await.unwrap();
    let ids: Vec<String> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["id"]))
        .collect();
    assert_eq!(ids, vec!["proxy-smol", "proxy-minilm", "flaky"]);
    // The upstream's key never shows.
    let cfg = gateway.cli(&["config"]).unwrap();
    assert!(!cfg.to_string().contains(&ukey));

    let chat = |model: &str, stream: bool| {
        json!({"model": model, "max_tokens": 12, "temperature": 0, "seed": 3, "stream": stream,
               "messages": [{"role": "user", "content": "Name a fruit."}]})
    };
    let direct: Value = upstream
        .post(
            "/v1/chat/completions",
            &ukey,
            &chat("smollm2-135m-instruct", false),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let proxied: Value = gateway
        .post("/v1/chat/completions", &gkey, &chat("proxy-smol", false))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(proxied["model"], "proxy-smol");
    assert_eq!(
        proxied["choices"][0]["message"]["content"],
        direct["choices"][0]["message"]["content"]
    );
    assert_eq!(
        proxied["usage"], direct["usage"],
        "the upstream's own counts"
    );

    let mut streamed = chat("proxy-smol", true);
    streamed["stream_options"] = json!({"include_usage": true});
    let body = gateway
        .post("/v1/chat/completions", &gkey, &streamed)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, s(&direct["choices"][0]["message"]["content"]));
    let usage = events
        .iter()
        .find(|e| e["usage"].is_object())
        .expect("usage chunk");
    assert_eq!(usage["usage"], direct["usage"]);

    // Embeddings through the upstream are the upstream's.
    let input = json!({"model": "proxy-minilm", "input": ["a red apple"]});
    let via: Value = gateway
        .post("/v1/embeddings", &gkey, &input)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut direct_in = input.clone();
    direct_in["model"] = json!("all-minilm-l6-v2");
    let own: Value = upstream
        .post("/v1/embeddings", &ukey, &direct_in)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (a, b) = (
        via["data"][0]["embedding"].as_array().unwrap(),
        own["data"][0]["embedding"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 384);
    let max_diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs())
        .fold(0.0, f64::max);
    assert!(max_diff < 1e-6, "{max_diff}");

    // An unreachable upstream is retried, then its fallback serves.
    let res = gateway
        .post("/v1/chat/completions", &gkey, &chat("flaky", false))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fell: Value = res.json().await.unwrap();
    assert_eq!(
        fell["choices"][0]["message"]["content"],
        direct["choices"][0]["message"]["content"]
    );
    let metrics = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"upstream_retries_total{model="flaky"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"llm_fallbacks_total{model="flaky",to="proxy-smol"} 1"#),
        "{metrics}"
    );

    // The gateway's tenant is billed with the upstream's counts.
    let db = sea_orm::Database::connect(&gateway.db.as_ref().unwrap().url)
        .await
        .unwrap();
    let tid = s(&g["tenant_id"]);
    use sea_orm::{ConnectionTrait, Statement};
    eventually(Duration::from_secs(10), || async {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT CAST(SUM(quantity) AS BIGINT) AS q FROM usage_events WHERE tenant_id = $1 AND meter = 'output_tokens'",
                [tid.clone().into()],
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        let q: Option<i64> = row.try_get("", "q")?;
        Ok(q == Some(3 * direct["usage"]["completion_tokens"].as_i64().unwrap_or(0)))
    })
    .await
    .unwrap();
}
