//! The tenant dashboard's files, built into the binary (see `build.rs`)
//! and served under `/dashboard/`. The page is a client of the public API
//! (same handlers, same tenant scoping) signed in with a session cookie;
//! nothing here reads tenant data.
//!
//! Every file goes out with a strict Content-Security-Policy (scripts,
//! styles, images and connections from this origin only; no inline
//! script; no framing), `no-referrer`, `nosniff`, and `no-cache` with an
//! ETag, so a new binary's files are picked up at once.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use llmops_core::ApiError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));
}

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Where the files come from: the built-in copies, or a folder read at
/// every request (`dashboard_dir`, for working on the dashboard).
#[derive(Clone)]
pub struct Assets {
    dir: Option<PathBuf>,
}

impl Assets {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    fn get(&self, path: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
        if path.split('/').any(|s| s.is_empty() || s.starts_with('.')) {
            return None;
        }
        match &self.dir {
            Some(dir) => std::fs::read(dir.join(path)).ok().map(Into::into),
            None => embedded::ASSETS
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, bytes)| (*bytes).into()),
        }
    }
}

/// The built-in files' paths (for tests and the startup log).
pub fn embedded_paths() -> impl Iterator<Item = &'static str> {
    embedded::ASSETS.iter().map(|(p, _)| *p)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn etag(path: &str, bytes: &[u8], embedded: bool) -> String {
    static TAGS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    let compute = |b: &[u8]| {
        let d = Sha256::digest(b);
        format!(
            "\"{}\"",
            d[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    if !embedded {
        return compute(bytes);
    }
    TAGS.get_or_init(|| {
        embedded::ASSETS
            .iter()
            .map(|(p, b)| (*p, compute(b)))
            .collect()
    })
    .get(path)
    .cloned()
    .unwrap_or_else(|| compute(bytes))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/dashboard",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/dashboard/"))
                .finish()
        }),
    )
    .service(
        web::resource("/dashboard/{path:.*}")
            .route(web::get().to(asset))
            .route(web::head().to(asset)),
    );
}

async fn asset(
    req: HttpRequest,
    assets: web::Data<Assets>,
    path: web::Path<String>,
) -> HttpResponse {
    let path = match path.as_str() {
        "" => "index.html",
        p => p,
    };
    let Some(bytes) = assets.get(path) else {
        return ApiError::RouteNotFound(format!("GET {}", req.path())).error_response();
    };
    let tag = etag(path, &bytes, assets.dir.is_none());
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CONTENT_TYPE, content_type(path)))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, tag))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    if fresh {
        res.finish()
    } else {
        res.body(bytes.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_built_in() {
        let paths: Vec<&str> = embedded_paths().collect();
        assert!(paths.contains(&"index.html"), "{paths:?}");
        assert!(paths.iter().any(|p| p.ends_with(".js")), "{paths:?}");
        assert!(!paths.iter().any(|p| p.ends_with(".md")), "{paths:?}");
        let assets = Assets::new(None);
        assert!(assets.get("index.html").is_some());
        for bad in [
            "../Cargo.toml",
            "",
            "js/../index.html",
            ".hidden",
            "js//api.js",
        ] {
            assert!(assets.get(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_folder_never_serves_outside_itself() {
        let dir = std::env::temp_dir().join(format!("llmops-dash-{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("js"));
        let _ = std::fs::write(dir.join("index.html"), "<!doctype html>");
        let assets = Assets::new(Some(dir.join("js")));
        assert!(assets.get("../index.html").is_none());
        let assets = Assets::new(Some(dir.clone()));
        assert!(assets.get("index.html").is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
