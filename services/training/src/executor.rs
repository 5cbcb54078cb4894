//! The local process executor: runs a recipe from `infra/recipes/` as its
//! own process in its own working directory, reads its structured stdout
//! (one JSON object a line), and stops it when asked: cancel (at once),
//! pause (at its next step boundary), the wall-clock limit, a lost lease.
//!
//! The recipe contract (also in `infra/recipes/llamacpp-cpu/README.md`):
//! `python <recipe>/train.py --spec spec.json`; stdout lines of type
//! `message`, `metrics`, `checkpoint` and, last, `result`; exit 0 on
//! success, 2 for input it refuses, 75 for a retryable failure, 143 after
//! SIGTERM.

use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// One line a recipe writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecipeLine {
    Message {
        #[serde(default = "info")]
        level: String,
        message: String,
    },
    Metrics {
        step: i64,
        #[serde(default)]
        epoch: Option<serde_json::Value>,
        data: serde_json::Map<String, serde_json::Value>,
    },
    Checkpoint {
        step: i64,
        #[serde(default)]
        epoch: Option<serde_json::Value>,
        path: PathBuf,
        #[serde(default)]
        metrics: serde_json::Map<String, serde_json::Value>,
    },
    Result(RecipeResult),
}

fn info() -> String {
    "info".into()
}

/// The recipe's last line on success.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct RecipeResult {
    /// The output model (none for an evaluation).
    #[serde(default)]
    pub artifact: Option<PathBuf>,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub quantization: String,
    #[serde(default)]
    pub method: serde_json::Value,
    #[serde(default)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub sha256: Option<String>,
}

impl RecipeLine {
    /// A line that is not the protocol's becomes a plain message.
    pub fn parse(line: &str) -> Self {
        serde_json::from_str(line).unwrap_or_else(|_| RecipeLine::Message {
            level: "info".into(),
            message: line.chars().take(2000).collect(),
        })
    }
}

/// How the recipe process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal.
    Signal,
}

impl Exit {
    /// How `child.wait()` said the process ended.
    pub fn of(status: std::io::Result<std::process::ExitStatus>) -> Self {
        match status {
            Ok(s) => s.code().map_or(Exit::Signal, Exit::Code),
            Err(_) => Exit::Signal,
        }
    }

    /// Exit status 2: the recipe refused its input (no retry helps).
    pub fn is_refusal(self) -> bool {
        self == Exit::Code(2)
    }
}

/// A running recipe.
pub struct Running {
    pub child: Child,
    pub lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub stderr_log: PathBuf,
}

/// Starts `python recipe/train.py --spec spec.json` in `dir`; its stderr
/// goes to `dir/stderr.log`.
pub fn start(python: &Path, script: &Path, spec: &Path, dir: &Path) -> std::io::Result<Running> {
    let stderr_log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&stderr_log)?;
    let mut child = Command::new(python)
        .arg(script)
        .arg("--spec")
        .arg(spec)
        .current_dir(dir)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("the recipe's stdout was not captured"))?;
    Ok(Running {
        child,
        lines: BufReader::new(stdout).lines(),
        stderr_log,
    })
}

impl Running {
    /// Asks the recipe to stop at its next step boundary (SIGTERM).
    pub async fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            // `kill(1)`: the workspace allows no unsafe code for libc::kill.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
    }

    /// Stops the recipe now (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// The last lines of the recipe's stderr (from its last 64 KiB), for
    /// an error message.
    pub async fn stderr_tail(&self, lines: usize) -> String {
        use tokio::io::AsyncSeekExt;
        let mut bytes = Vec::new();
        if let Ok(mut f) = tokio::fs::File::open(&self.stderr_log).await {
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            let _ = f
                .seek(std::io::SeekFrom::Start(len.saturating_sub(64 * 1024)))
                .await;
            let _ = f.read_to_end(&mut bytes).await;
        }
        let text = String::from_utf8_lossy(&bytes);
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

/// A file's bytes as a stream of chunks (for uploads to the artifact store).
pub fn file_stream(
    path: PathBuf,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    Box::pin(futures_util::stream::try_unfold(
        (path, None::<tokio::fs::File>),
        |(path, file)| async move {
            let mut file = match file {
                Some(f) => f,
                None => tokio::fs::File::open(&path).await?,
            };
            let mut buf = vec![0u8; 1 << 20];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), (path, Some(file)))))
        },
    ))
}

/// Writes a stream to `path` (through a temporary file, renamed at the end).
pub async fn download<S, E>(mut body: S, path: &Path) -> std::io::Result<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    // A name of its own: two slots fetching the same file never share one.
    let tmp = path.with_extension(format!("part-{}", ulid::Ulid::new()));
    let mut f = tokio::fs::File::create(&tmp).await?;
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
        n += chunk.len() as u64;
        f.write_all(&chunk).await?;
    }
    f.flush().await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await?;
    Ok(n)
}

/// How long a stopping recipe gets before it is killed.
pub const TERM_GRACE: Duration = Duration::from_secs(30);
