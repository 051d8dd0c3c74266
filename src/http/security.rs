//! Security headers on the responses Clearance makes itself (its pages, its JSON, its redirects
//! and error pages), never on what an upstream app answers through the proxy.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Put on a response Clearance rendered itself (error and block pages) wherever it was asked.
#[derive(Clone, Copy, Debug)]
pub struct OwnResponse;

/// The one inline script (templates/requirement.html) is static, so it is allowed by its hash.
fn script_hashes() -> String {
    let source = include_str!("../../templates/requirement.html");
    let mut hashes = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("<script>") {
        let after = &rest[start + "<script>".len()..];
        let Some(end) = after.find("</script>") else {
            break;
        };
        let digest = Sha256::digest(&after.as_bytes()[..end]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &after[end..];
    }
    hashes.join(" ")
}

/// No plugins, no frames, no foreign scripts or styles; forms may post on to wherever the
/// checked `rd` leads, so `form-action` is left to the redirect checks.
static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        script_hashes()
    )
});

/// Clearance's own endpoints (everything else is the proxied app).
pub fn is_own_path(path: &str) -> bool {
    path.starts_with("/oauth2/")
        || path.starts_with("/.clearance/")
        || path == "/.clearance"
        || path == "/healthz"
        || path == "/readyz"
}

/// Whether a response gets the headers: Clearance's own pages and answers, except the allowed
/// answers of forward-auth, whose headers a proxy may copy towards the app.
pub fn applies(path: &str, status: StatusCode, own_marker: bool) -> bool {
    if own_marker {
        return true;
    }
    is_own_path(path) && !(path.starts_with("/oauth2/auth") && status.is_success())
}

/// Adds the headers, leaving any a handler set deliberately.
pub fn protect(headers: &mut HeaderMap) {
    let fixed: [(&'static str, &str); 6] = [
        ("content-security-policy", CSP.as_str()),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cache-control", "no-store"),
    ];
    for (name, value) in fixed {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name)
            && let Ok(v) = HeaderValue::from_str(value)
        {
            headers.insert(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_script_is_allowed_by_hash_and_nothing_else() {
        assert!(CSP.contains("script-src 'sha256-"), "{}", *CSP);
        assert!(!CSP.contains("unsafe-eval") && !CSP.contains("script-src 'unsafe-inline'"));
        assert!(CSP.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn only_own_responses_are_protected() {
        assert!(applies("/.clearance/manage", StatusCode::OK, false));
        assert!(applies("/oauth2/start", StatusCode::FOUND, false));
        assert!(applies("/oauth2/auth", StatusCode::FORBIDDEN, false));
        assert!(!applies("/oauth2/auth", StatusCode::OK, false));
        assert!(!applies("/echo/app", StatusCode::OK, false));
        assert!(applies("/echo/app", StatusCode::FORBIDDEN, true));
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("private"),
        );
        protect(&mut h);
        assert_eq!(h.get("cache-control").unwrap(), "private");
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
    }
}
