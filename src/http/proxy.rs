//! The reverse proxy: streams an admitted request to its upstream and the answer back, with
//! hop-by-hop and client identity headers removed and Clearance's identity headers added.
//!
//! Phases: request filter (sanitise headers, add identity) -> upstream request (streamed body) ->
//! response filter (drop hop-by-hop) -> streamed response. Upstream faults map to 502 / 504.

use super::error::AppError;
use super::forwarded;
use super::headers::{sanitize_request_headers, sanitize_response_headers, strip_cookies};
use super::normalize::NormalizedPath;
use crate::config::Settings;
use crate::domain::Principal;
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use awc::error::SendRequestError;

/// The upstream HTTP client of one worker.
pub struct Upstreams {
    client: awc::Client,
    max_body: Option<u64>,
    own_cookies: Vec<String>,
}

impl Upstreams {
    pub fn new(settings: &Settings) -> Self {
        let connector = awc::Connector::new().timeout(settings.upstream_connect_timeout);
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .no_default_headers()
            .timeout(settings.upstream_timeout)
            .finish();
        Self {
            client,
            max_body: settings.max_request_body,
            own_cookies: vec![
                settings.session.cookie_name.clone(),
                format!("{}_login", settings.session.cookie_name),
            ],
        }
    }
}

fn content_length(headers: &header::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// An upstream must not set (and so fix or overwrite) Clearance's own cookies.
fn sets_own_cookie(value: &HeaderValue, own: &[String]) -> bool {
    let name = value
        .to_str()
        .ok()
        .and_then(|v| v.split('=').next())
        .map(str::trim)
        .unwrap_or("");
    let blocked = own.iter().any(|o| o == name);
    if blocked {
        tracing::warn!(
            http.cookie_name = name,
            "upstream tried to set Clearance's cookie; dropped"
        );
    }
    blocked
}

/// Calls `set` with every identity header Clearance sets and the person's value for it, `""`
/// where they have none (forward-auth sends those empty, so that proxies overwrite, never keep,
/// a client's copy; the reverse proxy leaves them out).
pub fn each_identity_header(principal: &Principal, mut set: impl FnMut(HeaderName, &str)) {
    let subject = principal.subject.as_str();
    let email = principal.email.as_deref().unwrap_or_default();
    let groups = groups_header_value(&principal.groups);
    let name = principal.name.as_deref().unwrap_or_default();
    set(X_AUTH_REQUEST_USER, subject);
    set(X_AUTH_REQUEST_EMAIL, email);
    set(X_AUTH_REQUEST_GROUPS, &groups);
    set(X_AUTH_REQUEST_PREFERRED_USERNAME, name);
    set(X_FORWARDED_USER, subject);
    set(X_FORWARDED_EMAIL, email);
}

/// The groups header's value: the groups joined with `,`, each with `%` written `%25` and `,`
/// written `%2C`, so that a group whose name holds a comma is never read as two groups (and
/// a reader that percent-decodes each item gets the names back exactly).
pub fn groups_header_value(groups: &[String]) -> String {
    let mut out = String::new();
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for c in group.chars() {
            match c {
                '%' => out.push_str("%25"),
                ',' => out.push_str("%2C"),
                c => out.push(c),
            }
        }
    }
    out
}

/// The names [`each_identity_header`] sets.
pub const IDENTITY_HEADER_NAMES: [HeaderName; 6] = [
    X_AUTH_REQUEST_USER,
    X_AUTH_REQUEST_EMAIL,
    X_AUTH_REQUEST_GROUPS,
    X_AUTH_REQUEST_PREFERRED_USERNAME,
    X_FORWARDED_USER,
    X_FORWARDED_EMAIL,
];

/// Where and as whom one admitted request goes.
pub struct Hop<'a> {
    pub upstream: &'a str,
    pub preserve_host: bool,
    /// The normalised path: what was matched is what is forwarded.
    pub path: &'a NormalizedPath,
    /// `None` on public routes: no identity headers are added (client ones are still removed).
    pub principal: Option<&'a Principal>,
    pub request_id: &'a str,
    pub trusted: &'a [ipnet::IpNet],
    /// `server.extra_identity_headers`: removed from the client's request like the built-in ones.
    pub extra_identity: &'a [String],
}

/// What the proxy tells the upstream about one request, already resolved against the trusted
/// proxies (see [`forwarded`]).
pub struct Forwarding<'a> {
    /// The `X-Forwarded-For` value: the trusted chain plus the peer, or just the peer.
    pub forwarded_for: &'a str,
    /// `"http"` or `"https"`: the scheme the client used.
    pub proto: &'a str,
    /// The host the client asked for (`X-Forwarded-Host`, and `Host` with `preserve_host`).
    pub host: &'a str,
    pub request_id: &'a str,
    /// `server.extra_identity_headers`: removed like the built-in identity headers.
    pub extra_identity: &'a [String],
}

/// The request filter: the headers sent upstream, built from the client's `incoming` headers.
///
/// Hop-by-hop, identity (in every spelling), forwarding and URL-override headers and `Host`
/// are left out ([`sanitize_request_headers`]), as are Clearance's own cookies (`own_cookies`,
/// [`strip_cookies`]); then `X-Forwarded-For/-Proto/-Host` and `X-Request-Id` are set, the
/// person's identity headers with a value are added when there is a `principal`, and `Host` is
/// the client's when `preserve_host`. A value that cannot be a header value is omitted (and
/// logged). No I/O: everything about the connection comes in through `forwarding`.
pub fn upstream_request_headers(
    incoming: &header::HeaderMap,
    own_cookies: &[&str],
    forwarding: &Forwarding<'_>,
    principal: Option<&Principal>,
    preserve_host: bool,
) -> header::HeaderMap {
    let mut headers = sanitize_request_headers(incoming, forwarding.extra_identity);
    strip_cookies(&mut headers, own_cookies);
    let mut set = |name: HeaderName, value: &str| match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => tracing::warn!(
            http.header = name.as_str(),
            "value not representable as a header; omitted"
        ),
    };
    set(X_FORWARDED_FOR, forwarding.forwarded_for);
    set(X_FORWARDED_PROTO, forwarding.proto);
    set(X_FORWARDED_HOST, forwarding.host);
    set(X_REQUEST_ID, forwarding.request_id);
    if let Some(p) = principal {
        each_identity_header(p, |header, value| {
            if !value.is_empty() {
                set(header, value);
            }
        });
    }
    if preserve_host {
        set(header::HOST, forwarding.host);
    }
    headers
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_AUTH_REQUEST_USER: HeaderName = HeaderName::from_static("x-auth-request-user");
const X_AUTH_REQUEST_EMAIL: HeaderName = HeaderName::from_static("x-auth-request-email");
const X_AUTH_REQUEST_GROUPS: HeaderName = HeaderName::from_static("x-auth-request-groups");
const X_AUTH_REQUEST_PREFERRED_USERNAME: HeaderName =
    HeaderName::from_static("x-auth-request-preferred-username");
const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
const X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");

/// Forwards the request to the route's upstream and streams the response back.
pub async fn forward(
    req: &HttpRequest,
    payload: web::Payload,
    hop: Hop<'_>,
    upstreams: &Upstreams,
) -> Result<HttpResponse, AppError> {
    let Hop {
        upstream,
        preserve_host,
        path,
        principal,
        request_id,
        trusted,
        extra_identity,
    } = hop;
    let declared_length = content_length(req.headers());
    if let (Some(max), Some(len)) = (upstreams.max_body, declared_length)
        && len > max
    {
        return Err(AppError::PayloadTooLarge(format!(
            "The request body is larger than the {max} bytes allowed."
        )));
    }
    let mut url = format!("{upstream}{}", path.as_str());
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }

    // Request filter.
    let own: Vec<&str> = upstreams.own_cookies.iter().map(String::as_str).collect();
    let host = super::gate::request_host(req);
    let forwarded_for = forwarded::forwarded_for(req, trusted);
    let forwarding = Forwarding {
        forwarded_for: &forwarded_for,
        proto: forwarded::scheme(req, trusted),
        host: &host,
        request_id,
        extra_identity,
    };
    let headers =
        upstream_request_headers(req.headers(), &own, &forwarding, principal, preserve_host);

    let mut upstream_req = upstreams.client.request(req.method().clone(), url.as_str());
    // The client adds no headers of its own (`no_default_headers`): the filtered map is all.
    *upstream_req.headers_mut() = headers;

    // Upstream request, body streamed as it arrives.
    let has_body = declared_length.is_some_and(|l| l > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let started = std::time::Instant::now();
    let sent = if !has_body {
        upstream_req.send().await
    } else if let Some(len) = declared_length {
        upstream_req.send_body(SizedStream::new(len, payload)).await
    } else {
        upstream_req.send_stream(payload).await
    };
    crate::metrics::upstream(
        upstream,
        match &sent {
            Ok(r) => Ok(r.status().as_u16()),
            Err(SendRequestError::Timeout) => Err("timeout"),
            Err(_) => Err("error"),
        },
        started.elapsed(),
    );
    let response = sent.map_err(|e| match e {
        SendRequestError::Timeout => AppError::UpstreamTimeout,
        SendRequestError::Connect(c) => {
            AppError::UpstreamUnreachable(format!("connect to {upstream}: {c}"))
        }
        other => AppError::UpstreamUnreachable(format!("{upstream}: {other}")),
    })?;

    // Response filter.
    let headers = response_headers(response.headers(), &upstreams.own_cookies);
    let length = content_length(response.headers());
    let mut builder = HttpResponse::build(response.status());
    let mut answer = if req.method() == actix_web::http::Method::HEAD {
        builder.finish()
    } else {
        // awc bounds only the wait for the response head; the body (downloads, server-sent
        // events) streams for as long as the upstream keeps it open.
        match length {
            Some(len) => builder.body(SizedStream::new(len, response)),
            None => builder.streaming(response),
        }
    };
    // The answer's body sets its own length (or chunking): the upstream's headers, filtered,
    // are all the rest.
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// The response filter: the upstream's headers as returned to the client, without hop-by-hop
/// headers ([`sanitize_response_headers`]), `Content-Length` (the body sets it) and any
/// `Set-Cookie` for one of Clearance's own cookies.
fn response_headers(upstream: &header::HeaderMap, own_cookies: &[String]) -> header::HeaderMap {
    let mut headers = sanitize_response_headers(upstream);
    headers.remove(header::CONTENT_LENGTH);
    if headers.contains_key(header::SET_COOKIE) {
        let kept: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .filter(|v| !sets_own_cookie(v, own_cookies))
            .cloned()
            .collect();
        headers.remove(header::SET_COOKIE);
        for value in kept {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SubjectKey;
    use crate::testutil::{header_map as map, header_values as values};

    const FORWARDING: Forwarding<'static> = Forwarding {
        forwarded_for: "198.51.100.7",
        proto: "https",
        host: "wiki.example.com",
        request_id: "req-1",
        extra_identity: &[],
    };

    fn alice() -> Principal {
        Principal {
            email: Some("alice@example.com".into()),
            name: Some("Alice".into()),
            groups: vec!["staff".into(), "wiki-editors".into()],
            ..Principal::bare(SubjectKey::parse("alice@example.com").expect("valid subject"))
        }
    }

    fn client_headers() -> header::HeaderMap {
        map(&[
            ("host", "wiki.example.com"),
            ("accept", "text/html"),
            ("cookie", "_clearance=sealed; theme=dark"),
            ("cookie", "_clearance_login=state; lang=en"),
            ("x-forwarded-user", "mallory"),
            ("X_Auth_Request_Email", "mallory@evil.example"),
            ("x.forwarded.email", "mallory@evil.example"),
            ("remote-user", "root"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("x-request-id", "client-chosen"),
            ("connection", "keep-alive"),
        ])
    }

    #[test]
    fn upstream_answers_lose_hop_by_hop_headers_length_and_clearances_cookies() {
        let own = vec!["_clearance".to_owned(), "_clearance_login".to_owned()];
        let out = response_headers(
            &map(&[
                ("content-type", "text/html"),
                ("content-length", "42"),
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "internal"),
                ("keep-alive", "timeout=5"),
                ("set-cookie", "app=1; Path=/"),
                ("set-cookie", "_clearance=forged; Path=/"),
                ("set-cookie", " _clearance_login = x"),
                ("set-cookie", "theme=dark"),
            ]),
            &own,
        );
        assert_eq!(values(&out, "content-type"), vec!["text/html"]);
        assert_eq!(
            values(&out, "set-cookie"),
            vec!["app=1; Path=/", "theme=dark"]
        );
        for gone in ["content-length", "connection", "x-secret", "keep-alive"] {
            assert!(!out.contains_key(gone), "{gone} kept");
        }
    }

    /// The reverse proxy sends the same identity headers as forward-auth answers with.
    #[test]
    fn a_group_with_a_comma_stays_one_group() {
        let groups = [
            "staff".to_owned(),
            "r&d, europe".to_owned(),
            "100%".to_owned(),
        ];
        let value = groups_header_value(&groups);
        assert_eq!(value, "staff,r&d%2C europe,100%25");
        let back: Vec<String> = value
            .split(',')
            .map(|g| {
                percent_encoding::percent_decode_str(g)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(back, groups);
        assert_eq!(groups_header_value(&[]), "");
    }

    #[test]
    fn the_proxy_sets_every_identity_header_forward_auth_sets() {
        let out = upstream_request_headers(&map(&[]), &[], &FORWARDING, Some(&alice()), false);
        let mut sent = Vec::new();
        each_identity_header(&alice(), |name, value| sent.push((name, value.to_owned())));
        assert_eq!(sent.len(), IDENTITY_HEADER_NAMES.len());
        for (name, value) in sent {
            assert!(IDENTITY_HEADER_NAMES.contains(&name));
            assert_eq!(values(&out, name.as_str()), vec![value], "{name}");
        }
    }

    #[test]
    fn spoofed_identity_and_own_cookies_are_replaced_by_the_proxys_own() {
        let out = upstream_request_headers(
            &client_headers(),
            &["_clearance", "_clearance_login"],
            &FORWARDING,
            Some(&alice()),
            false,
        );
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec![
                "accept",
                "cookie",
                "x-auth-request-email",
                "x-auth-request-groups",
                "x-auth-request-preferred-username",
                "x-auth-request-user",
                "x-forwarded-email",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-forwarded-user",
                "x-request-id",
            ]
        );
        assert_eq!(values(&out, "cookie"), vec!["theme=dark; lang=en"]);
        assert_eq!(values(&out, "x-forwarded-user"), vec!["alice@example.com"]);
        assert_eq!(
            values(&out, "x-auth-request-user"),
            vec!["alice@example.com"]
        );
        assert_eq!(values(&out, "x-forwarded-email"), vec!["alice@example.com"]);
        assert_eq!(
            values(&out, "x-auth-request-groups"),
            vec!["staff,wiki-editors"]
        );
        assert_eq!(values(&out, "x-forwarded-for"), vec!["198.51.100.7"]);
        assert_eq!(values(&out, "x-forwarded-proto"), vec!["https"]);
        assert_eq!(values(&out, "x-forwarded-host"), vec!["wiki.example.com"]);
        assert_eq!(values(&out, "x-request-id"), vec!["req-1"]);
    }

    #[test]
    fn public_routes_get_no_identity_and_keep_no_client_copy() {
        let out = upstream_request_headers(&client_headers(), &[], &FORWARDING, None, false);
        for name in [
            "x-forwarded-user",
            "x-auth-request-email",
            "x-forwarded-email",
            "remote-user",
            "x-auth-request-user",
        ] {
            assert!(!out.contains_key(name), "{name}");
        }
        assert_eq!(
            values(&out, "cookie"),
            vec!["_clearance=sealed; theme=dark; _clearance_login=state; lang=en"]
        );
    }

    #[test]
    fn host_is_the_clients_only_with_preserve_host() {
        let incoming = map(&[("host", "wiki.example.com:8443")]);
        let out = upstream_request_headers(&incoming, &[], &FORWARDING, None, false);
        assert!(!out.contains_key(header::HOST));
        let out = upstream_request_headers(&incoming, &[], &FORWARDING, None, true);
        assert_eq!(values(&out, "host"), vec!["wiki.example.com"]);
    }

    #[test]
    fn empty_and_unrepresentable_identity_values_are_omitted() {
        let principal = Principal {
            name: Some("Alice\nX-Injected: 1".into()),
            ..Principal::bare(SubjectKey::parse("alice@example.com").expect("valid subject"))
        };
        let out = upstream_request_headers(
            &header::HeaderMap::new(),
            &[],
            &FORWARDING,
            Some(&principal),
            false,
        );
        assert!(!out.contains_key("x-auth-request-preferred-username"));
        assert!(!out.contains_key("x-auth-request-email"));
        assert!(!out.contains_key("x-auth-request-groups"));
        assert!(!out.contains_key("x-injected"));
        assert_eq!(values(&out, "x-forwarded-user"), vec!["alice@example.com"]);
    }
}
