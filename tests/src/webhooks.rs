//! A local webhook receiver for the alert and billing tests.

use super::*;

/// A webhook POST a [`webhook_sink`] received.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status the sink answered.
    pub answered: u16,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Accepts webhook POSTs on a local port (a tenant's receiver): answers
/// the first `fail_first` with 500, then 204, and hands every request over.
pub async fn webhook_sink(
    fail_first: usize,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Hook>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        let mut seen = 0usize;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        seen += 1;
                        let fail = seen <= fail_first;
                        let reply: &[u8] = if fail {
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
                        };
                        let _ = sock.write_all(reply).await;
                        let _ = tx.send(Hook {
                            headers,
                            body: body[..len].to_string(),
                            answered: if fail { 500 } else { 204 },
                        });
                        break;
                    }
                }
            }
        }
    });
    (url, rx)
}
