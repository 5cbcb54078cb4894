//! Dashboard sessions on the wire: the cookie, and the checks a
//! cookie-authenticated request passes (CSRF token, origin, read-only).
//!
//! The cookie (`llmops_session`) is HttpOnly, SameSite=Strict, `Path=/`,
//! and, whenever the request reached the gateway over HTTPS (directly or
//! per `X-Forwarded-Proto` from the proxy in front), Secure and named
//! `__Host-llmops_session`: a browser takes that name only from this very
//! host over HTTPS, so a sibling subdomain cannot plant a session of its
//! own (and over HTTPS the plain name is never read). A browser attaches
//! it by itself, so every request authenticated by it that changes
//! anything must also carry the session's CSRF token in `x-csrf-token`
//! (which a page of another origin cannot read) and, when the browser
//! names the request's origin, come from this origin.

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use llmops_core::ApiError;
use llmops_core::tenancy::users::LiveSession;

pub const COOKIE: &str = "llmops_session";
/// The cookie's name over HTTPS.
pub const SECURE_COOKIE: &str = "__Host-llmops_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// The session cookie's value, if the request carries one (under the
/// name for its scheme).
pub fn cookie_value(headers: &header::HeaderMap, secure: bool) -> Option<String> {
    let wanted = cookie_name(secure);
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.trim_matches('"').to_string())
}

/// Methods that change nothing (and so need no CSRF token).
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request arrived over HTTPS (at the gateway or at the proxy
/// in front of it).
pub fn is_https(req: &actix_web::HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(secret: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={secret}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("llmops_session=; Path=/; Max-Age=0"))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("llmops_session=; Path=/; Max-Age=0"))
}

/// Refuses a request that a browser says comes from another site: an
/// `Origin` other than this one, or `Sec-Fetch-Site: cross-site`.
pub fn check_origin(req: &actix_web::HttpRequest) -> Result<(), ApiError> {
    let refused = || ApiError::CsrfRejected("the request comes from another origin".into());
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(refused());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    if origin.as_bytes().eq_ignore_ascii_case(own.as_bytes()) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The checks a cookie-authenticated change passes: same origin, and the
/// session's CSRF token in `x-csrf-token` (compared in constant time).
pub fn check_change(req: &ServiceRequest, session: &LiveSession) -> Result<(), ApiError> {
    if is_safe(req.method()) {
        return Ok(());
    }
    check_origin(req.request())?;
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if sent.is_empty() {
        return Err(ApiError::CsrfRejected(format!(
            "a change made with the session cookie must send the session's CSRF token in `{CSRF_HEADER}`"
        )));
    }
    if !crate::middleware::subtle_eq::ct_eq(sent, session.csrf_token.as_bytes()) {
        return Err(ApiError::CsrfRejected(format!(
            "`{CSRF_HEADER}` is not this session's CSRF token"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = header::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; llmops_session=abc; b=2"),
        );
        assert_eq!(cookie_value(&h, false).as_deref(), Some("abc"));
        // Over HTTPS only the __Host- name counts.
        assert_eq!(cookie_value(&h, true), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-llmops_session=def"),
        );
        assert_eq!(cookie_value(&h, true).as_deref(), Some("def"));
        let mut h = header::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("xllmops_session=abc"),
        );
        assert_eq!(cookie_value(&h, false), None);
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let c = set_cookie("s3cr3t", 60, true);
        let c = c.to_str().unwrap_or_default();
        for part in [
            "__Host-llmops_session=s3cr3t",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=60",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(
            !set_cookie("x", 1, false)
                .to_str()
                .unwrap_or_default()
                .contains("Secure")
        );
        assert!(
            clear_cookie(false)
                .to_str()
                .unwrap_or_default()
                .contains("Max-Age=0")
        );
    }
}
