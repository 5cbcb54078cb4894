//! localstripe (PyPI, the well-known Stripe fake) for the billing tests.

use super::*;

/// A private localstripe (PyPI, the well-known Stripe fake) on a free port,
/// started through `infra/stripe/localstripe_serve.py`; killed on drop.
pub struct LocalStripe {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

/// The secret key tests give llmops and use themselves (localstripe accepts any `sk_test_…`).
pub const STRIPE_KEY: &str = "sk_test_llmops";

impl LocalStripe {
    pub async fn start() -> Result<Self> {
        let python = std::env::var("TEST_STRIPE_PYTHON").map_err(|_| {
            anyhow!("TEST_STRIPE_PYTHON is not set: run the tests with the README's test command (scripts/test.sh)")
        })?;
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/stripe/localstripe_serve.py");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting localstripe")?;
        let me = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        for _ in 0..200 {
            if me.get("/v1/customers").await.is_ok() {
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("localstripe did not start on port {port}")
    }

    /// `GET` with the test key; the JSON body of a 2xx answer.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let res = self
            .http
            .get(format!("{}{path}", self.url))
            .basic_auth(STRIPE_KEY, Some(""))
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() {
            bail!("localstripe GET {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Form-encoded `POST` with the test key; the JSON body of a 2xx answer.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value> {
        fn enc(s: &str) -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth(STRIPE_KEY, Some(""))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        // Its `/_config` routes answer with an empty body.
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        if !status.is_success() {
            bail!("localstripe POST {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Options pointing llmops at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LLMOPS_STRIPE_API_KEY".into(), STRIPE_KEY.into()),
            ("LLMOPS_STRIPE_API_BASE".into(), self.url.clone()),
        ]
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
