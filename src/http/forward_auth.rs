//! Forward-auth: `/oauth2/auth` answers nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth` and Envoy `ext_authz` (HTTP service) with the same decision as the reverse proxy.
//!
//! The original request is read from forwarded headers, and only when the peer is a trusted
//! proxy; from any other peer the call is refused and nothing is evaluated.

use super::AppState;
use super::authority::check_authority;
use super::error::{AppError, HttpError, IntoHttp};
use super::forwarded::{peer_is_trusted, trusted_header};
use super::gate::{Admission, Recording, Target, admit, start_url};
use super::normalize::{PathError, canonical_target_path};
use super::oauth::checked_rd;
use super::proxy::{IDENTITY_HEADER_NAMES, each_identity_header};
use crate::config::ForwardAuthMode;
use crate::domain::Route;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use std::borrow::Cow;

/// Where Envoy's `path_prefix` points; the original path follows it.
pub const ENVOY_PREFIX: &str = "/oauth2/auth/envoy";

/// The request the proxy is asking about.
struct Original {
    scheme: String,
    /// Host with port, as the client sent it.
    host: String,
    raw_path: String,
    query: Option<String>,
}

impl Original {
    fn url(&self, path: &str) -> String {
        match &self.query {
            Some(q) => format!("{}://{}{path}?{q}", self.scheme, self.host),
            None => format!("{}://{}{path}", self.scheme, self.host),
        }
    }
}

fn missing(what: &str) -> AppError {
    AppError::bad_request(
        "forward_auth_request_incomplete",
        format!("The forward-auth request does not say {what}."),
    )
}

/// Splits an absolute URL into scheme, authority and raw path + query without normalising the
/// path (the strict normaliser does that).
fn split_url(raw: &str) -> Option<Original> {
    let (scheme, rest) = raw.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if check_authority(host).is_err() {
        return None;
    }
    let (raw_path, query) = split_query(path_query);
    Some(Original {
        scheme,
        host: host.to_owned(),
        raw_path,
        query,
    })
}

/// Splits a request target at its first `?`. A `#` stays where it is: it never belongs in a
/// request target, and the path check refuses it (the query is not judged, so a `#` there is
/// refused by [`original`]).
fn split_query(path_query: &str) -> (String, Option<String>) {
    match path_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path_query.to_owned(), None),
    }
}

fn original(
    req: &HttpRequest,
    state: &AppState,
    mode: ForwardAuthMode,
) -> Result<Original, AppError> {
    let trusted = &state.settings().trusted_proxies;
    if !peer_is_trusted(req, trusted) {
        return Err(AppError::UntrustedProxy(
            req.peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
        ));
    }
    let forwarded = |name: &str| trusted_header(req, trusted, name);
    let from_x_forwarded = || -> Result<Original, AppError> {
        let host = forwarded("x-forwarded-host").ok_or_else(|| missing("X-Forwarded-Host"))?;
        let uri = forwarded("x-forwarded-uri").ok_or_else(|| missing("X-Forwarded-Uri"))?;
        if !uri.starts_with('/') {
            return Err(missing("a path in X-Forwarded-Uri"));
        }
        check_authority(host)
            .map_err(|e| AppError::bad_request("invalid_host", format!("X-Forwarded-Host: {e}")))?;
        let (raw_path, query) = split_query(uri);
        Ok(Original {
            scheme: super::forwarded::scheme(req, trusted).to_owned(),
            host: host.to_owned(),
            raw_path,
            query,
        })
    };
    let original = match mode {
        ForwardAuthMode::Nginx => match forwarded("x-original-url") {
            Some(url) => split_url(url).ok_or_else(|| {
                AppError::bad_request(
                    "forward_auth_request_incomplete",
                    "X-Original-URL must be an absolute http(s) URL whose host is host[:port].",
                )
            }),
            None => from_x_forwarded(),
        },
        ForwardAuthMode::Traefik | ForwardAuthMode::Caddy => from_x_forwarded(),
        ForwardAuthMode::Envoy => {
            let raw_path = req
                .uri()
                .path()
                .strip_prefix(ENVOY_PREFIX)
                .filter(|p| !p.is_empty())
                .unwrap_or("/")
                .to_owned();
            let host = super::gate::request_host(req);
            if host.is_empty() {
                return Err(missing("the host"));
            }
            Ok(Original {
                scheme: super::forwarded::scheme(req, trusted).to_owned(),
                host,
                raw_path,
                query: req.uri().query().map(str::to_owned),
            })
        }
    }?;
    if original.query.as_deref().is_some_and(|q| q.contains('#')) {
        return Err(invalid_path(PathError::Fragment));
    }
    refuse_foreign_identity(req, &state.settings().identity_headers)?;
    Ok(original)
}

fn invalid_path(e: PathError) -> AppError {
    AppError::bad_request("invalid_path", e.to_string())
}

/// Refuses a request that carries an identity header (in any spelling) that some gatekeeper
/// sets and some app trusts: the proxy in front passes the client's headers on to the app, and
/// Clearance cannot remove them there, so such a request is not judged at all. Clearance's own
/// six, spelled exactly so, are the exception: every admitted answer carries all six (empty
/// when unknown) and the proxy must replace the client's copies with them (docs/FORWARD_AUTH.md).
fn refuse_foreign_identity(req: &HttpRequest, extra: &[String]) -> Result<(), AppError> {
    match super::headers::identity_header_in(req.headers(), extra, &IDENTITY_HEADER_NAMES) {
        Some(name) => Err(AppError::bad_request(
            "identity_header_from_client",
            format!(
                "The request carries {}, an identity header that only a gatekeeper may set; \
                 requests with one are refused.",
                name.as_str()
            ),
        )),
        None => Ok(()),
    }
}

/// The route for the original request; where none matches, every requirement applies (a gap in
/// the route table never makes an app less protected).
fn route_for<'a>(
    state: &AppState,
    settings: &'a crate::config::Settings,
    host: &str,
    path: &str,
) -> Cow<'a, Route> {
    match settings.routes.find(host, path) {
        Some(route) => Cow::Borrowed(route),
        None => Cow::Owned(strictest(state)),
    }
}

fn strictest(state: &AppState) -> Route {
    super::gate::every_requirement(state, "/", None)
}

fn allowed(admission: &Admission) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    match admission.principal() {
        Some(p) => each_identity_header(p, |name, value| {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.insert_header((name, v));
            }
        }),
        // Public route: the headers are still set, empty, so that a proxy copying them
        // overwrites whatever the client sent.
        None => {
            for name in IDENTITY_HEADER_NAMES {
                response.insert_header((name, HeaderValue::from_static("")));
            }
        }
    }
    response.finish()
}

async fn decide(
    req: HttpRequest,
    state: web::Data<AppState>,
    mode: ForwardAuthMode,
) -> Result<HttpResponse, HttpError> {
    let original = match original(&req, &state, mode) {
        Ok(o) => o,
        // nginx cannot tell a 403 "untrusted proxy" from "blocked" and would send the person to
        // the block page, which admits them back: a loop. A 500 makes the misconfiguration visible.
        Err(AppError::UntrustedProxy(peer)) if mode == ForwardAuthMode::Nginx => {
            tracing::error!(
                client.address = %peer,
                "forward-auth call from a peer that is not in server.trusted_proxies"
            );
            return Ok(HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("untrusted_proxy: this proxy is not listed in server.trusted_proxies\n"));
        }
        Err(e) => return Err(e).http(&req),
    };
    // The proxy sends the upstream the raw target: judge it only when it is canonical already.
    let path = canonical_target_path(&original.raw_path)
        .map_err(invalid_path)
        .http(&req)?;
    let settings = state.settings();
    let route = route_for(&state, &settings, &original.host, path.as_str());
    let url = original.url(path.as_str());
    let target = Target {
        host: original.host,
        path,
        original: url,
        route: &route,
        interruptible: false,
    };
    let sign_in_url = || {
        format!(
            "{}oauth2/start?rd={}",
            settings.public_url,
            percent_encoding::utf8_percent_encode(
                &target.original,
                percent_encoding::NON_ALPHANUMERIC
            )
        )
    };
    match admit(&req, &state, &target, &sign_in_url, Recording::Record).await {
        Ok(admission) => Ok(allowed(&admission)),
        Err(e) if mode == ForwardAuthMode::Nginx => match e {
            // nginx turns these into its error_page redirects; bodies are never shown.
            AppError::SignInRequired { .. } | AppError::InvalidSession { .. } => {
                Ok(HttpResponse::Unauthorized().finish())
            }
            AppError::Blocked(_) => Ok(HttpResponse::Forbidden().finish()),
            other => Err(other).http(&req),
        },
        Err(e) => Err(e).http(&req),
    }
}

/// `/oauth2/auth`: the configured default mode.
pub async fn auth(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let mode = state.settings().forward_auth_mode;
    decide(req, state, mode).await
}

/// `/oauth2/auth/{nginx|traefik|caddy}`.
pub async fn auth_in_mode(
    req: HttpRequest,
    state: web::Data<AppState>,
    mode: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    match ForwardAuthMode::parse(&mode) {
        Some(mode) if mode != ForwardAuthMode::Envoy => decide(req, state, mode).await,
        _ => Err(AppError::NotFound(format!(
            "There is no forward-auth mode {:?}.",
            mode.as_str()
        )))
        .http(&req),
    }
}

/// `/oauth2/auth/envoy/<original path>`: Envoy's `ext_authz` HTTP service.
pub async fn auth_envoy(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    decide(req, state, ForwardAuthMode::Envoy).await
}

#[derive(serde::Deserialize)]
pub struct BlockedQuery {
    rd: Option<String>,
}

/// `/.clearance/blocked?rd=`: the block page for proxies that cannot show one themselves (nginx).
/// Nothing is recorded here: the forward-auth call already recorded the denial.
pub async fn blocked(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<BlockedQuery>,
) -> Result<HttpResponse, HttpError> {
    let rd = checked_rd(query.rd.as_deref(), &state).http(&req)?;
    let original = if rd.starts_with('/') {
        let (raw_path, query) = split_query(&rd);
        Original {
            scheme: "http".into(),
            host: super::gate::request_host(&req),
            raw_path,
            query,
        }
    } else {
        split_url(&rd)
            .ok_or_else(|| {
                AppError::bad_request("invalid_redirect", "The rd parameter is not a URL.")
            })
            .http(&req)?
    };
    let path = canonical_target_path(&original.raw_path)
        .map_err(invalid_path)
        .http(&req)?;
    let settings = state.settings();
    let route = route_for(&state, &settings, &original.host, path.as_str());
    let target = Target {
        host: original.host.clone(),
        path,
        original: rd.clone(),
        route: &route,
        interruptible: false,
    };
    admit(&req, &state, &target, &|| start_url(&rd), Recording::Skip)
        .await
        .http(&req)?;
    // Compliant by now (or the route never needed anything): back to where they were going.
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, rd))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_without_normalising() {
        let o = split_url("https://App.example.com:8443/a/%2e%2e/b?x=/public#frag").unwrap();
        assert_eq!(o.scheme, "https");
        assert_eq!(o.host, "App.example.com:8443");
        assert_eq!(o.raw_path, "/a/%2e%2e/b");
        // A fragment is kept, to be refused (a request target never has one).
        assert_eq!(o.query.as_deref(), Some("x=/public#frag"));
        assert!(split_url("ftp://x/").is_none());
        assert!(split_url("https://user@evil/").is_none());
        assert!(split_url("/relative").is_none());
        let o = split_url("http://h").unwrap();
        assert_eq!(o.raw_path, "/");
    }

    #[test]
    fn query_smuggling_stays_in_the_query() {
        let (path, query) = split_query("/private?x=/public");
        assert_eq!(path, "/private");
        assert_eq!(query.as_deref(), Some("x=/public"));
        let (path, query) = split_query("/private%3Fx=/public");
        assert_eq!(path, "/private%3Fx=/public");
        assert_eq!(query, None);
    }
}
