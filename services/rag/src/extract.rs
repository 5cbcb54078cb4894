//! Text out of an uploaded document: plain text and Markdown as they are,
//! HTML rendered to text (html2text; headings become Markdown headings, so
//! the chunker sees the sections), PDF through its text layer (pdf-extract).

use llmops_core::ApiError;
use serde::{Deserialize, Serialize};

/// The formats a knowledge base takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ContentType {
    #[serde(rename = "text/plain")]
    Text,
    #[serde(rename = "text/markdown")]
    Markdown,
    #[serde(rename = "text/html")]
    Html,
    #[serde(rename = "application/pdf")]
    Pdf,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text/plain",
            ContentType::Markdown => "text/markdown",
            ContentType::Html => "text/html",
            ContentType::Pdf => "application/pdf",
        }
    }

    /// From a media type (parameters such as `charset` ignored).
    pub fn from_mime(mime: &str) -> Option<Self> {
        let base = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "text/plain" => Some(Self::Text),
            "text/markdown" | "text/x-markdown" => Some(Self::Markdown),
            "text/html" | "application/xhtml+xml" => Some(Self::Html),
            "application/pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// From a file name's extension.
    pub fn from_filename(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "text" => Some(Self::Text),
            "md" | "markdown" => Some(Self::Markdown),
            "html" | "htm" | "xhtml" => Some(Self::Html),
            "pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// What `bytes` starts with, when it says.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"%PDF-") {
            return Some(Self::Pdf);
        }
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
        let head = head.trim_start();
        (head.starts_with("<!doctype html") || head.starts_with("<html")).then_some(Self::Html)
    }
}

fn unreadable(detail: impl Into<String>) -> ApiError {
    ApiError::validation("file", detail)
}

/// The document's text. Blocking (PDF parsing): call it off the async
/// threads. A PDF that cannot be parsed, or that has no text layer, is a
/// 422 naming that; a parser panic on a hostile file is caught the same way
/// by the caller's blocking task.
pub fn text(kind: ContentType, bytes: &[u8]) -> Result<String, ApiError> {
    let text = match kind {
        ContentType::Text | ContentType::Markdown => std::str::from_utf8(bytes)
            .map_err(|e| unreadable(format!("the document is not UTF-8 text: {e}")))?
            .to_string(),
        ContentType::Html => html2text::config::plain_no_decorate()
            .string_from_read(bytes, 100_000)
            .map_err(|e| unreadable(format!("the HTML could not be read: {e}")))?,
        ContentType::Pdf => {
            let pages = pdf_extract::extract_text_from_mem_by_pages(bytes)
                .map_err(|e| unreadable(format!("the PDF could not be read: {e}")))?;
            let text = pages.join("\n\n");
            if text.trim().is_empty() {
                return Err(unreadable(format!(
                    "the PDF ({} pages) has no text layer (a scan?): run OCR on it first",
                    pages.len()
                )));
            }
            text
        }
    };
    let text = text.replace("\r\n", "\n").replace('\0', "");
    if text.trim().is_empty() {
        return Err(unreadable("the document has no text"));
    }
    Ok(text)
}

/// Limits of the extraction process: address space and CPU time.
const EXTRACT_MEMORY_KIB: u64 = 4 * 1024 * 1024;
const EXTRACT_CPU_SECS: u64 = 60;

/// [`text`] in a child process (`<exe> extract --content-type T`) under
/// memory and CPU limits, for the formats whose parsers a hostile file can
/// drive into unbounded recursion or memory (HTML, PDF): whatever the file
/// does, it can only end that process. Plain text and Markdown are read
/// here.
pub async fn isolated(
    exe: Option<&std::path::Path>,
    kind: ContentType,
    bytes: Vec<u8>,
) -> Result<String, ApiError> {
    let exe = match (kind, exe) {
        (ContentType::Html | ContentType::Pdf, Some(exe)) => exe.to_path_buf(),
        _ => {
            return tokio::task::spawn_blocking(move || text(kind, &bytes))
                .await
                .map_err(|_| unreadable(format!("the {} could not be read", kind.as_str())))?;
        }
    };
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {EXTRACT_MEMORY_KIB} 2>/dev/null; ulimit -t {EXTRACT_CPU_SECS} 2>/dev/null; exec \"$0\" extract --content-type \"$1\""
        ))
        .arg(&exe)
        .arg(kind.as_str())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ApiError::internal)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ApiError::Internal("the extractor has no stdin".into()))?;
    let write = async move {
        // A reader that stops early closes the pipe: not our error.
        let _ = stdin.write_all(&bytes).await;
        drop(stdin);
    };
    let run = async {
        tokio::time::timeout(
            std::time::Duration::from_secs(EXTRACT_CPU_SECS * 2),
            child.wait_with_output(),
        )
        .await
    };
    let ((), out) = tokio::join!(write, run);
    let out = match out {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(ApiError::internal(e)),
        Err(_) => {
            return Err(unreadable(format!(
                "reading the {} took too long",
                kind.as_str()
            )));
        }
    };
    match out.status.code() {
        Some(0) => String::from_utf8(out.stdout)
            .map_err(|_| ApiError::Internal("the extractor wrote text that is not UTF-8".into())),
        Some(2) => Err(unreadable(
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(500)
                .collect::<String>(),
        )),
        _ => Err(unreadable(format!(
            "the {} could not be read: its reader failed or ran out of its limits",
            kind.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_headings_become_markdown_headings() {
        let html = b"<html><body><h1>Ferns</h1><p>Ferns reproduce by <b>spores</b>.</p><h2>Care</h2><p>Keep moist.</p></body></html>";
        let t = text(ContentType::Html, html).expect("html");
        assert!(t.contains("# Ferns"), "{t}");
        assert!(t.contains("## Care"), "{t}");
        assert!(t.contains("Ferns reproduce by spores."), "{t}");
    }

    #[test]
    fn types_from_names_mimes_and_bytes() {
        assert_eq!(
            ContentType::from_filename("a.MD"),
            Some(ContentType::Markdown)
        );
        assert_eq!(
            ContentType::from_mime("text/html; charset=utf-8"),
            Some(ContentType::Html)
        );
        assert_eq!(ContentType::sniff(b"%PDF-1.7 ..."), Some(ContentType::Pdf));
        assert_eq!(ContentType::from_mime("image/png"), None);
    }

    #[test]
    fn garbage_pdf_is_a_clear_error() {
        let e = text(ContentType::Pdf, b"%PDF-1.4 not really").expect_err("refused");
        assert!(e.to_string().contains("PDF"), "{e}");
    }
}
