//! Header hygiene for the reverse proxy: identity-header stripping, hop-by-hop removal and cookie filtering.
//!
//! Downstream applications trust identity headers (`X-Auth-Request-User`, `Remote-User`,
//! `X-Forwarded-Email`, …) because they believe only the proxy can set them.  That belief
//! holds only if the proxy removes every client-supplied copy, in every spelling the
//! application might read:
//!
//! * names are compared after [`canonical_header_name`] (ASCII-lowercase, `_` and `.` mapped
//!   to `-`), because CGI/WSGI-style stacks, PHP and some nginx setups
//!   (`underscores_in_headers`) fold `X_Auth_Request_User` or `x.auth.request.user` into the
//!   same variable as `X-Auth-Request-User`;
//! * every value of a multi-valued header is removed, not just the first;
//! * the same canonical comparison is used for hop-by-hop headers and for the names listed in
//!   `Connection`.
//!
//! The sanitisers build a **new** map by copying what is allowed (an allow-by-omission copy
//! rather than in-place deletion), so the caller must add its own identity and forwarding
//! headers *after* sanitising.  A client naming one of those headers in `Connection` can
//! therefore only remove its own copy, never the proxy's.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;

/// Exact (canonical) names of identity headers that downstream applications commonly trust:
/// those of the gatekeepers people replace with Clearance, so that an app that used to sit
/// behind one of them cannot be told who the client is by the client.
const IDENTITY_HEADERS: &[&str] = &[
    // oauth2-proxy style (and its legacy `GAP-Auth`)
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "gap-auth",
    // Authelia / Apache mod_auth style
    "remote-user",
    "remote-email",
    "remote-groups",
    "remote-name",
    "x-remote-user",
    "x-remote-email",
    "x-remote-groups",
    "x-remote-name",
    // IBM WebSEAL, CA SiteMinder, Oracle Access Manager
    "iv-user",
    "iv-user-l",
    "iv-groups",
    "iv-creds",
    "sm-user",
    "smuser",
    "sm-universalid",
    "oam-remote-user",
    // Teleport application access
    "teleport-jwt-assertion",
    // Kong
    "x-credential-identifier",
    // Generic
    "x-user",
    "x-email",
];

/// Canonical prefixes of identity header families.
const IDENTITY_PREFIXES: &[&str] = &[
    "x-auth-request-",
    "x-clearance-",
    // Generic: `x-authenticated-user`, `-userid`, `-scope`, `-groups` (Kong, Istio setups).
    "x-authenticated-",
    // Pomerium (`x-pomerium-jwt-assertion`, `x-pomerium-claim-*`) and Grafana's auth proxy
    // (`x-webauth-user`): trusted by apps that were previously behind those proxies.
    "x-pomerium-",
    "x-webauth-",
    // Google Cloud IAP: `x-goog-authenticated-user-email`, `-user-id`, `x-goog-iap-jwt-assertion`.
    "x-goog-authenticated-",
    "x-goog-iap-",
    // Cloudflare Access: `cf-access-authenticated-user-email`, `cf-access-jwt-assertion`.
    "cf-access-",
    // Apache mod_auth_openidc: `oidc-claim-*`, `oidc-access-token`, `oidc-id-token-payload`.
    "oidc-",
    // Azure App Service authentication: `x-ms-client-principal[-id|-name|-idp]`, `x-ms-token-*`.
    "x-ms-client-principal",
    "x-ms-token-",
    // AWS Application Load Balancer: `x-amzn-oidc-data`, `-identity`, `-accesstoken`.
    "x-amzn-oidc-",
    // Vouch Proxy: `x-vouch-user`, `x-vouch-idp-claims-*`.
    "x-vouch-",
    // Kong consumers: `x-consumer-id`, `x-consumer-username`, `x-consumer-custom-id`.
    "x-consumer-",
    // Tailscale Serve and ngrok's edge authentication.
    "tailscale-user-",
    "ngrok-auth-",
    // JWT assertions forwarded by API gateways (WSO2 `x-jwt-assertion`, `x-jwt-payload`).
    "x-jwt-",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1 plus the legacy `proxy-connection`, `keep-alive` and
/// `http2-settings`).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Headers the proxy sets itself, or which let a client override the path, host or client
/// address an upstream framework believes in (`X-Original-URL` / `X-Rewrite-URL` are honoured
/// by IIS and Symfony and would otherwise route around path-based rules).
const PROXY_CONTROLLED: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-envoy-original-path",
];

/// Lowercases ASCII letters and maps `_` and `.` to `-`, so that every spelling a backend
/// might fold together compares equal.
pub fn canonical_header_name(name: &str) -> String {
    canonical(name).into_owned()
}

/// [`canonical_header_name`] without a copy when `name` is canonical already, as every name of
/// a parsed `HeaderMap` is unless it holds `_`, `.` or (never in a parsed map) capitals.
fn canonical(name: &str) -> Cow<'_, str> {
    if name
        .bytes()
        .all(|b| !matches!(b, b'_' | b'.') && !b.is_ascii_uppercase())
    {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .map(|c| match c {
                '_' | '.' => '-',
                other => other.to_ascii_lowercase(),
            })
            .collect(),
    )
}

/// [`IDENTITY_HEADERS`] and [`IDENTITY_PREFIXES`] by their first byte, so that a header is
/// compared only with the entries that start like it (a browser's `accept`, `user-agent` or
/// `priority` with none at all): this runs for every header of every request.
static IDENTITY_BY_FIRST_BYTE: std::sync::LazyLock<Vec<(Vec<&'static str>, Vec<&'static str>)>> =
    std::sync::LazyLock::new(|| {
        let mut table = vec![(Vec::new(), Vec::new()); 256];
        for name in IDENTITY_HEADERS {
            if let Some(slot) = name
                .bytes()
                .next()
                .and_then(|b| table.get_mut(usize::from(b)))
            {
                slot.0.push(*name);
            }
        }
        for prefix in IDENTITY_PREFIXES {
            if let Some(slot) = prefix
                .bytes()
                .next()
                .and_then(|b| table.get_mut(usize::from(b)))
            {
                slot.1.push(*prefix);
            }
        }
        table
    });

fn canonical_is_identity(canonical: &str) -> bool {
    let Some(&first) = canonical.as_bytes().first() else {
        return false;
    };
    IDENTITY_BY_FIRST_BYTE
        .get(usize::from(first))
        .is_some_and(|(names, prefixes)| {
            names.contains(&canonical) || prefixes.iter().any(|p| canonical.starts_with(p))
        })
}

/// Whether `name` (in any spelling) is an identity header that a downstream app might trust.
///
/// `authorization` is deliberately *not* an identity header: whether to forward it is the
/// caller's decision.
pub fn is_identity_header(name: &str) -> bool {
    canonical_is_identity(&canonical(name))
}

/// Like [`is_identity_header`], additionally matching the configured `extra` names (also
/// compared in canonical form).  Empty entries are ignored.
pub fn is_identity_header_with(name: &str, extra: &[String]) -> bool {
    let name = canonical(name);
    canonical_is_identity(&name) || canonical_extra(extra).contains(&name)
}

/// The configured extra identity names in canonical form, empty ones left out.
fn canonical_extra(extra: &[String]) -> Vec<Cow<'_, str>> {
    extra
        .iter()
        .map(|e| canonical(e.trim()))
        .filter(|e| !e.is_empty())
        .collect()
}

/// The first header of `headers` that is an identity header in any spelling (built-in or one of
/// `extra`), other than those named in `allowed` exactly (lowercase, as a parsed map holds them).
pub fn identity_header_in<'a>(
    headers: &'a HeaderMap,
    extra: &[String],
    allowed: &[HeaderName],
) -> Option<&'a HeaderName> {
    let extra = canonical_extra(extra);
    headers.keys().find(|name| {
        if allowed.contains(name) {
            return false;
        }
        let canonical = canonical(name.as_str());
        canonical_is_identity(&canonical) || extra.contains(&canonical)
    })
}

/// Whether `name` (in any spelling) is a hop-by-hop header that must not be forwarded.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&canonical(name).as_ref())
}

/// Whether `name` is a forwarding header the proxy sets itself (`forwarded`, `x-forwarded-*`,
/// `x-real-ip`, …) or one that overrides the URL/host seen by the upstream.
pub fn is_proxy_controlled(name: &str) -> bool {
    let name = canonical(name);
    name.starts_with("x-forwarded-") || PROXY_CONTROLLED.contains(&name.as_ref())
}

/// The header names listed in all `Connection` headers, lowercased, without duplicates, in
/// order of first appearance.  Tokens that are not valid header-name text are ignored.
pub fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    let mut listed: Vec<String> = Vec::new();
    for value in headers.get_all(actix_web::http::header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() || !token.iter().all(|&b| is_tchar(b)) {
                continue;
            }
            let token = String::from_utf8_lossy(token).to_ascii_lowercase();
            if !listed.contains(&token) {
                listed.push(token);
            }
        }
    }
    listed
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn canonical_connection_listed(headers: &HeaderMap) -> Vec<String> {
    if !headers.contains_key(actix_web::http::header::CONNECTION) {
        return Vec::new();
    }
    connection_listed(headers)
        .iter()
        .map(|t| canonical_header_name(t))
        .collect()
}

/// Copies `incoming` for forwarding upstream, leaving out:
///
/// * hop-by-hop headers and every header named in `Connection`;
/// * identity headers in any spelling (see [`is_identity_header_with`]);
/// * forwarding headers the proxy sets itself and URL/host override headers
///   (see [`is_proxy_controlled`]);
/// * `host` (the HTTP client sets the upstream's);
/// * `expect`: Clearance met the client's expectation itself (a `100 Continue` is sent only
///   once the gate admits the request, see `http::expect`), so the body is sent upstream at
///   once, as nginx does, and an upstream that ignores the header cannot hold the body back.
///
/// All values of a multi-valued header are kept in order.  `authorization` and `cookie` are
/// kept; use [`strip_cookies`] to remove the proxy's own cookies.
pub fn sanitize_request_headers(incoming: &HeaderMap, extra_identity: &[String]) -> HeaderMap {
    let listed = canonical_connection_listed(incoming);
    let extra = canonical_extra(extra_identity);
    let mut out = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        let canonical = canonical(name.as_str());
        let canonical = canonical.as_ref();
        let drop = HOP_BY_HOP.contains(&canonical)
            || listed.iter().any(|l| l == canonical)
            || canonical == "host"
            || canonical == "expect"
            || canonical_is_identity(canonical)
            || extra.iter().any(|e| e == canonical)
            || is_proxy_controlled(canonical);
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Copies an upstream response for returning to the client, leaving out hop-by-hop headers
/// and every header named in the response's `Connection` headers.
pub fn sanitize_response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = canonical_connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let canonical = canonical(name.as_str());
        let canonical = canonical.as_ref();
        if !HOP_BY_HOP.contains(&canonical) && !listed.iter().any(|l| l == canonical) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Removes the cookies called `names` (exact, case-sensitive cookie names) from every
/// `Cookie` header, keeping all other cookies.
///
/// The remaining cookies are merged into a single `Cookie` header joined with `"; "` (as
/// RFC 9113 §8.2.3 requires when forwarding to HTTP/1.1, and because some backends read only
/// the first `Cookie` header).  When no cookie remains the header is removed.  Should the
/// rebuilt value somehow be invalid, all cookies are dropped rather than risk forwarding one
/// that was meant to be removed.
pub fn strip_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let cookie = actix_web::http::header::COOKIE;
    if !headers.contains_key(&cookie) {
        return;
    }
    let mut kept: Vec<&[u8]> = Vec::new();
    let values: Vec<HeaderValue> = headers.get_all(&cookie).cloned().collect();
    for value in &values {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            // The cookie name is everything before the first '=' (the whole pair if none).
            let name = pair
                .split(|&b| b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            // Also a name that percent-decodes to one of ours: some app frameworks decode
            // cookie names, and must never see a copy of Clearance's cookies.
            let ours = |n: &&str| {
                n.as_bytes() == name
                    || (name.contains(&b'%')
                        && percent_encoding::percent_decode(name).eq(n.bytes()))
            };
            if !names.iter().any(ours) {
                kept.push(pair);
            }
        }
    }
    let rebuilt = kept.join(&b"; "[..]);
    headers.remove(&cookie);
    if rebuilt.is_empty() {
        return;
    }
    if let Ok(mut value) = HeaderValue::from_bytes(&rebuilt) {
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static("cookie"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{header_map as map, header_values as values};

    fn names(headers: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = headers.keys().map(|n| n.as_str().to_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn canonical_names() {
        assert_eq!(
            canonical_header_name("X_Auth_Request_User"),
            "x-auth-request-user"
        );
        assert_eq!(
            canonical_header_name("x.auth.request.user"),
            "x-auth-request-user"
        );
        assert_eq!(
            canonical_header_name("X-AUTH-REQUEST-USER"),
            "x-auth-request-user"
        );
        assert_eq!(
            canonical_header_name("x-Auth_request.USER"),
            "x-auth-request-user"
        );
        assert_eq!(canonical_header_name("Content-Type"), "content-type");
        assert_eq!(canonical_header_name(""), "");
    }

    #[test]
    fn identity_headers_in_every_spelling() {
        let bases = [
            "x-auth-request-user",
            "x-auth-request-email",
            "x-auth-request-groups",
            "x-auth-request-preferred-username",
            "x-auth-request-access-token",
            "x-auth-request-anything-new",
            "x-forwarded-user",
            "x-forwarded-email",
            "x-forwarded-groups",
            "x-forwarded-preferred-username",
            "x-forwarded-access-token",
            "remote-user",
            "remote-email",
            "remote-groups",
            "remote-name",
            "x-remote-user",
            "x-remote-email",
            "x-remote-groups",
            "x-user",
            "x-email",
            "x-clearance-user",
            "x-clearance-induction-expires",
            "x-pomerium-jwt-assertion",
            "x-pomerium-claim-email",
            "x-webauth-user",
            "x-goog-authenticated-user-email",
            "x-goog-authenticated-user-id",
            "x-goog-iap-jwt-assertion",
            "cf-access-authenticated-user-email",
            "cf-access-jwt-assertion",
            "oidc-claim-email",
            "oidc-claim-sub",
            "oidc-access-token",
            "x-ms-client-principal",
            "x-ms-client-principal-name",
            "x-ms-client-principal-id",
            "x-ms-token-aad-id-token",
            "x-amzn-oidc-identity",
            "x-amzn-oidc-data",
            "x-vouch-user",
            "x-consumer-username",
            "x-authenticated-userid",
            "x-authenticated-scope",
            "tailscale-user-login",
            "ngrok-auth-user-email",
            "iv-user",
            "sm-user",
            "gap-auth",
            "x-jwt-assertion",
            "teleport-jwt-assertion",
        ];
        for base in bases {
            let spellings = [
                base.to_owned(),
                base.to_ascii_uppercase(),
                base.replace('-', "_"),
                base.replace('-', "."),
                base.to_ascii_uppercase().replace('-', "_"),
                base.chars()
                    .enumerate()
                    .map(|(i, c)| match (i % 3, c) {
                        (0, '-') => '_',
                        (1, '-') => '.',
                        (_, c) if i % 2 == 0 => c.to_ascii_uppercase(),
                        (_, c) => c,
                    })
                    .collect(),
            ];
            for spelling in spellings {
                assert!(is_identity_header(&spelling), "{spelling}");
                assert!(is_identity_header_with(&spelling, &[]), "{spelling}");
            }
        }
    }

    #[test]
    fn non_identity_headers() {
        for name in [
            "authorization",
            "Authorization",
            "cookie",
            "content-type",
            "accept",
            "user-agent",
            "x-request-id",
            "x-auth-request",
            "x-clearance",
            "x-forwarded-for",
            "x-users",
            "x-emails",
            "x-user-agent",
            "remote-users",
            "xx-auth-request-user",
        ] {
            assert!(!is_identity_header(name), "{name}");
        }
    }

    #[test]
    fn extra_identity_headers_are_canonicalised() {
        let extra = vec![
            "X-Employee_ID".to_owned(),
            String::new(),
            " x.tenant ".to_owned(),
        ];
        assert!(is_identity_header_with("x-employee-id", &extra));
        assert!(is_identity_header_with("X_EMPLOYEE_ID", &extra));
        assert!(is_identity_header_with("x.employee.id", &extra));
        assert!(is_identity_header_with("X-Tenant", &extra));
        assert!(is_identity_header_with("x-forwarded-user", &extra));
        assert!(!is_identity_header_with("x-employee", &extra));
        assert!(!is_identity_header_with("content-type", &extra));
        assert!(!is_identity_header_with("", &extra));
    }

    #[test]
    fn an_identity_header_is_found_in_any_spelling_but_the_allowed_ones() {
        let own = [HeaderName::from_static("x-auth-request-user")];
        let found = |pairs: &[(&str, &str)]| {
            identity_header_in(&map(pairs), &["X-Corp-User".to_owned()], &own)
                .map(|n| n.as_str().to_owned())
        };
        assert_eq!(
            found(&[("accept", "*/*"), ("x-auth-request-user", "a")]),
            None
        );
        assert_eq!(
            found(&[("x_auth_request_user", "a")]).as_deref(),
            Some("x_auth_request_user")
        );
        assert_eq!(
            found(&[("cf-access-authenticated-user-email", "a")]).as_deref(),
            Some("cf-access-authenticated-user-email")
        );
        assert_eq!(
            found(&[("x.corp.user", "a")]).as_deref(),
            Some("x.corp.user")
        );
        assert_eq!(found(&[("cookie", "a"), ("authorization", "b")]), None);
    }

    #[test]
    fn the_lists_are_written_in_canonical_form() {
        for entry in IDENTITY_HEADERS.iter().chain(IDENTITY_PREFIXES) {
            assert!(!entry.is_empty());
            assert_eq!(canonical(entry), *entry, "{entry}");
        }
    }

    #[test]
    fn hop_by_hop_headers() {
        for name in [
            "connection",
            "Connection",
            "keep-alive",
            "Keep_Alive",
            "proxy-authenticate",
            "proxy-authorization",
            "Proxy-Connection",
            "te",
            "TE",
            "trailer",
            "transfer-encoding",
            "Transfer_Encoding",
            "upgrade",
            "http2-settings",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["content-length", "trailers", "host", "authorization", "tee"] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    #[test]
    fn proxy_controlled_headers() {
        for name in [
            "x-forwarded-for",
            "X-Forwarded-Host",
            "x_forwarded_proto",
            "x.forwarded.port",
            "x-forwarded-prefix",
            "x-forwarded-uri",
            "forwarded",
            "Forwarded",
            "x-real-ip",
            "X_Real_IP",
            "true-client-ip",
            "x-original-url",
            "X-Rewrite-URL",
            "x-original-uri",
        ] {
            assert!(is_proxy_controlled(name), "{name}");
        }
        for name in ["x-forwarded", "forwarded-for", "x-request-id", "accept"] {
            assert!(!is_proxy_controlled(name), "{name}");
        }
    }

    #[test]
    fn connection_tokens_from_all_headers() {
        let headers = map(&[
            ("connection", "keep-alive, X-Custom"),
            ("connection", " Upgrade ,,x-custom,  x-other "),
            ("connection", "bad token, \"quoted\""),
        ]);
        assert_eq!(
            connection_listed(&headers),
            vec!["keep-alive", "x-custom", "upgrade", "x-other"]
        );
        assert!(connection_listed(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn connection_tokens_ignore_non_ascii_values() {
        let mut headers = HeaderMap::new();
        headers.append(
            HeaderName::from_static("connection"),
            HeaderValue::from_bytes(b"x-a, \xffbad, x-b").expect("obs-text is allowed"),
        );
        assert_eq!(connection_listed(&headers), vec!["x-a", "x-b"]);
    }

    #[test]
    fn request_sanitising_removes_every_spelling() {
        let incoming = map(&[
            ("host", "clearance.example"),
            ("accept", "text/html"),
            ("accept", "application/json"),
            ("authorization", "Bearer abc"),
            ("cookie", "a=1"),
            ("x-auth-request-user", "mallory"),
            ("X_Auth_Request_User", "mallory"),
            ("x.auth.request.email", "mallory@evil.example"),
            ("X-AUTH-REQUEST-GROUPS", "admins"),
            ("x-forwarded-user", "mallory"),
            ("x_forwarded_email", "mallory@evil.example"),
            ("X-Forwarded-Groups", "admins"),
            ("x-forwarded-groups", "root"),
            ("x-forwarded-preferred-username", "root"),
            ("x-forwarded-access-token", "tok"),
            ("remote-user", "root"),
            ("Remote_User", "root"),
            ("x-remote-user", "root"),
            ("x-remote-email", "root@x"),
            ("x-remote-groups", "admins"),
            ("x-user", "root"),
            ("x-email", "root@x"),
            ("x-clearance-user", "root"),
            ("x_clearance_induction", "valid"),
            ("x-employee-id", "1"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-original-url", "/admin"),
            ("connection", "keep-alive, x-drop-me"),
            ("keep-alive", "timeout=5"),
            ("x-drop-me", "1"),
            ("X_Drop_Me", "2"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("trailer", "x-checksum"),
            ("x-request-id", "r1"),
        ]);
        let out = sanitize_request_headers(&incoming, &["X_Employee_Id".to_owned()]);
        assert_eq!(
            names(&out),
            vec!["accept", "authorization", "cookie", "x-request-id"]
        );
        assert_eq!(
            values(&out, "accept"),
            vec!["text/html", "application/json"]
        );
        assert_eq!(values(&out, "authorization"), vec!["Bearer abc"]);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn connection_cannot_remove_the_proxys_own_headers() {
        // The sanitiser returns a copy; identity headers are added afterwards by the caller
        // and are not subject to the client's Connection list.
        let incoming = map(&[("connection", "x-auth-request-user, x-forwarded-for")]);
        let mut out = sanitize_request_headers(&incoming, &[]);
        out.insert(
            HeaderName::from_static("x-auth-request-user"),
            HeaderValue::from_static("alice"),
        );
        assert_eq!(values(&out, "x-auth-request-user"), vec!["alice"]);
        assert!(!out.contains_key("connection"));
    }

    #[test]
    fn connection_can_remove_end_to_end_headers_the_client_sent() {
        let incoming = map(&[
            ("connection", "X-Debug"),
            ("x-debug", "1"),
            ("x-debug", "2"),
            ("x-keep", "1"),
        ]);
        let out = sanitize_request_headers(&incoming, &[]);
        assert_eq!(names(&out), vec!["x-keep"]);
    }

    #[test]
    fn request_sanitising_keeps_ordinary_multi_valued_headers() {
        let incoming = map(&[
            ("accept-language", "en"),
            ("accept-language", "fr"),
            ("x-custom", "a"),
            ("x-custom", "b"),
            ("x-custom", "c"),
        ]);
        let out = sanitize_request_headers(&incoming, &[]);
        assert_eq!(values(&out, "x-custom"), vec!["a", "b", "c"]);
        assert_eq!(values(&out, "accept-language"), vec!["en", "fr"]);
    }

    #[test]
    fn response_sanitising() {
        let upstream = map(&[
            ("content-type", "text/html"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("connection", "close, x-internal"),
            ("connection", "x-other"),
            ("x-internal", "secret"),
            ("X_Other", "secret"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("upgrade", "h2c"),
            ("trailer", "x-sum"),
            ("x-upstream", "ok"),
        ]);
        let out = sanitize_response_headers(&upstream);
        assert_eq!(
            names(&out),
            vec!["content-type", "set-cookie", "x-upstream"]
        );
        assert_eq!(values(&out, "set-cookie"), vec!["a=1", "b=2"]);
    }

    #[test]
    fn strip_cookies_removes_encoded_spellings_of_the_names() {
        let mut headers = map(&[(
            "cookie",
            "%5Fclearance=x; _clearanc%65=y; keep=1; %5F%63learance_login=z",
        )]);
        strip_cookies(&mut headers, &["_clearance", "_clearance_login"]);
        assert_eq!(values(&headers, "cookie"), vec!["keep=1"]);
    }

    #[test]
    fn strip_cookies_keeps_others() {
        let mut headers = map(&[("cookie", "_clearance=secret; theme=dark; lang=en")]);
        strip_cookies(&mut headers, &["_clearance"]);
        assert_eq!(values(&headers, "cookie"), vec!["theme=dark; lang=en"]);
        assert!(headers.get("cookie").expect("present").is_sensitive());
    }

    #[test]
    fn strip_cookies_across_multiple_headers_and_duplicates() {
        let mut headers = map(&[
            ("cookie", "a=1; _clearance=x"),
            ("cookie", "_clearance=y;b=2"),
            ("cookie", "  _clearance  = z ;c=3;;"),
            ("x-other", "1"),
        ]);
        strip_cookies(&mut headers, &["_clearance"]);
        assert_eq!(values(&headers, "cookie"), vec!["a=1; b=2; c=3"]);
        assert_eq!(values(&headers, "x-other"), vec!["1"]);
    }

    #[test]
    fn strip_cookies_removes_header_when_empty() {
        let mut headers = map(&[("cookie", "_clearance=x"), ("cookie", "_csrf=y; ")]);
        strip_cookies(&mut headers, &["_clearance", "_csrf"]);
        assert!(!headers.contains_key("cookie"));
        assert!(headers.is_empty());
    }

    #[test]
    fn strip_cookies_is_exact_on_names() {
        let mut headers = map(&[(
            "cookie",
            "_clearance=1; _clearance_0=2; x_clearance=3; _CLEARANCE=4; _clearance",
        )]);
        strip_cookies(&mut headers, &["_clearance"]);
        assert_eq!(
            values(&headers, "cookie"),
            vec!["_clearance_0=2; x_clearance=3; _CLEARANCE=4"]
        );
    }

    #[test]
    fn strip_cookies_without_cookie_header_or_names() {
        let mut headers = map(&[("accept", "*/*")]);
        strip_cookies(&mut headers, &["_clearance"]);
        assert_eq!(names(&headers), vec!["accept"]);

        let mut headers = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        strip_cookies(&mut headers, &[]);
        assert_eq!(values(&headers, "cookie"), vec!["a=1; b=2"]);
    }

    #[test]
    fn strip_cookies_preserves_values_with_equals_and_non_ascii_bytes() {
        let mut headers = HeaderMap::new();
        headers.append(
            HeaderName::from_static("cookie"),
            HeaderValue::from_bytes(b"tok=a=b==; _clearance=s; raw=\xe9t\xe9").expect("valid"),
        );
        strip_cookies(&mut headers, &["_clearance"]);
        let value = headers.get("cookie").expect("present");
        assert_eq!(value.as_bytes(), b"tok=a=b==; raw=\xe9t\xe9");
    }
}
