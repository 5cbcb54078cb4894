//! A request's cache directives: `Cache-Control`, and the
//! `x-llmops-cache-ttl`, `-namespace` and `-threshold` headers.

use llmops_core::{ApiError, ApiResult};

/// A request's cache directives (from its headers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    /// `Cache-Control: no-cache`: do not serve from the cache (the fresh
    /// answer is stored).
    pub no_cache: bool,
    /// `Cache-Control: no-store`: do not store the answer.
    pub no_store: bool,
    /// `x-llmops-cache-ttl`.
    pub ttl_secs: Option<u64>,
    /// `x-llmops-cache-namespace` (empty: the default namespace).
    pub namespace: String,
    /// `x-llmops-cache-threshold`.
    pub threshold: Option<f32>,
}

impl Directives {
    /// Reads the headers' values; a malformed one is a 422 naming it.
    pub fn parse(
        cache_control: Option<&str>,
        ttl: Option<&str>,
        namespace: Option<&str>,
        threshold: Option<&str>,
    ) -> ApiResult<Self> {
        let mut d = Directives::default();
        for part in cache_control.unwrap_or("").split(',') {
            match part.trim().to_ascii_lowercase().as_str() {
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                _ => {}
            }
        }
        if let Some(t) = ttl {
            d.ttl_secs = Some(
                t.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| {
                        ApiError::validation(
                            "x-llmops-cache-ttl",
                            "a whole number of seconds, at least 1",
                        )
                    })?,
            );
        }
        if let Some(n) = namespace {
            if !valid_namespace(n) {
                return Err(ApiError::validation(
                    "x-llmops-cache-namespace",
                    "1 to 64 characters of A-Z, a-z, 0-9, `-`, `_` and `.`",
                ));
            }
            d.namespace = n.to_string();
        }
        if let Some(t) = threshold {
            d.threshold = Some(
                t.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite() && (0.0..=1.0).contains(v))
                    .ok_or_else(|| {
                        ApiError::validation("x-llmops-cache-threshold", "a number between 0 and 1")
                    })?,
            );
        }
        Ok(d)
    }
}

/// 1 to 64 characters of A-Z, a-z, 0-9, `-`, `_` and `.`.
pub fn valid_namespace(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_and_refuse() {
        let d = Directives::parse(
            Some("No-Cache, max-age=0"),
            Some("60"),
            Some("docs-v2"),
            Some("0.97"),
        )
        .unwrap();
        assert!(d.no_cache && !d.no_store);
        assert_eq!(
            (d.ttl_secs, d.namespace.as_str(), d.threshold),
            (Some(60), "docs-v2", Some(0.97))
        );
        assert!(Directives::parse(None, Some("0"), None, None).is_err());
        assert!(Directives::parse(None, Some("-1"), None, None).is_err());
        assert!(Directives::parse(None, None, Some("a b"), None).is_err());
        assert!(Directives::parse(None, None, Some(&"x".repeat(65)), None).is_err());
        assert!(Directives::parse(None, None, None, Some("1.5")).is_err());
        assert!(Directives::parse(None, None, None, Some("NaN")).is_err());
        assert!(
            Directives::parse(Some("no-store"), None, None, None)
                .unwrap()
                .no_store
        );
    }
}
