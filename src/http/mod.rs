//! The HTTP surface: application state, the route table of Clearance's own endpoints, and the
//! catch-all gate that admits or refuses requests to upstreams.

pub mod api;
pub mod authority;
pub mod documents;
pub mod error;
pub mod evidence;
pub mod expect;
pub mod followup;
pub mod forward_auth;
pub mod forwarded;
pub mod gate;
pub mod headers;
pub mod health;
pub mod limits;
pub mod manage;
pub mod normalize;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod proxy;
pub mod scim;
pub mod security;
pub mod selfservice;
pub mod server;
pub mod warnings;
pub mod webhooks;
pub mod xapi;

use crate::auth::oidc::Oidc;
use crate::auth::session::Sessions;
use crate::config::Settings;
use crate::store::SharedStore;
use actix_web::dev::Service as _;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, web};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tracing::Instrument as _;

/// The source of "now"; injected so that evaluation stays testable.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Shared by every worker.
#[derive(Clone)]
pub struct AppState {
    /// The settings in force; swapped as a whole by a hot reload (read with [`AppState::settings`]).
    pub live: Arc<arc_swap::ArcSwap<Settings>>,
    pub store: SharedStore,
    pub sessions: Sessions,
    pub oidc: Arc<Oidc>,
    /// Texts of documents published at a URL.
    pub documents: Arc<documents::Documents>,
    /// Verifies `Authorization: Bearer` access tokens against the provider's keys.
    pub bearer: Arc<crate::auth::bearer::BearerVerifier>,
    pub clock: Arc<dyn Clock>,
    /// People known from sign-in or records, for the manager pages' directory.
    pub known_subjects: Arc<crate::oversight::KnownSubjects>,
    /// Refusals waiting to be written while the denial log does not answer.
    pub denials: Arc<crate::denial_buffer::DenialBuffer>,
    /// `[limits]` rate limiters, shared by every worker.
    pub limits: Arc<limits::RateLimits>,
    /// For calls to vendors' APIs (Dropbox Sign): 10 s timeout, no redirects.
    pub outbound: reqwest::Client,
}

impl AppState {
    /// The settings in force now. Take it once per request and use that copy throughout, so that
    /// a reload in the middle of a request cannot mix two policies.
    pub fn settings(&self) -> Arc<Settings> {
        self.live.load_full()
    }
}

/// The id of one request, echoed as `X-Request-Id`, sent upstream, written into denial
/// records and carried by every log line of the request (its span's `request.id`).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id for a request: the `X-Request-Id` a trusted proxy sent when it is a safe token
    /// (1-128 characters of `A-Z a-z 0-9 . _ : -`), so that one id follows the request through
    /// every hop; otherwise (any client, or an unsafe value) a new random UUID. A client can
    /// therefore never choose the id that lands in the denial log and the audit evidence.
    pub fn for_request(req: &actix_web::HttpRequest, trusted: &[ipnet::IpNet]) -> Self {
        forwarded::trusted_header(req, trusted, "x-request-id")
            .filter(|v| is_safe_request_id(v))
            .map_or_else(Self::random, |v| Self(v.to_owned()))
    }

    /// A new random (version 4) UUID, from the thread's cryptographic generator (`rand`'s,
    /// seeded from the operating system) rather than a `getrandom` system call per request.
    fn random() -> Self {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Self(uuid.hyphenated().encode_lower(&mut text).to_owned())
    }
}

fn is_safe_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Which listener an application serves: each listener has its own, so nothing of one is
/// reachable through the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `server.listen`: the gate and Clearance's own endpoints.
    Public,
    /// `[admin] listen`: `/metrics`, `/healthz` and `/readyz` only.
    Admin,
}

/// The admin listener's endpoints; every other path there is a 404, so nothing else of
/// Clearance (and no upstream) is reachable through it, and `/metrics` is served nowhere else.
fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(health::metrics))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(api::not_found));
}

/// Registers Clearance's endpoints and the gate. `proxy::Upstreams` must be added as app data by
/// the caller, once per worker.
///
/// Clearance's own endpoints sit under two scopes, `/oauth2` and `/.clearance`, so that a request
/// for an upstream (the hot path) is matched against four static prefixes before it reaches the
/// gate, instead of against every route and its pattern. A path under `/oauth2` that names no
/// endpoint still goes to the gate (the scope falls back to the app's default service); one
/// under `/.clearance` is a 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(
            web::scope("/oauth2")
                .route("/start", web::get().to(oauth::start))
                .route("/callback", web::get().to(oauth::callback))
                .route("/sign_out", web::get().to(oauth::sign_out))
                .route("/sign_out", web::post().to(oauth::sign_out))
                .route("/signed_out", web::get().to(oauth::signed_out))
                .route("/userinfo", web::get().to(oauth::userinfo))
                .route(
                    "/backchannel_logout",
                    web::post().to(oauth::backchannel_logout),
                )
                .route("/auth", web::route().to(forward_auth::auth))
                .route(
                    "/auth/envoy{tail:(/.*)?}",
                    web::route().to(forward_auth::auth_envoy),
                )
                .route("/auth/{mode}", web::route().to(forward_auth::auth_in_mode)),
        )
        .service(
            web::scope("/.clearance")
                .route("/blocked", web::get().to(forward_auth::blocked))
                .route("/requirements/{id}", web::get().to(selfservice::page))
                .route("/requirements/{id}", web::post().to(selfservice::decide))
                .route("/requirements/{id}/read", web::post().to(selfservice::read))
                .route(
                    "/warnings/acknowledge",
                    web::post().to(warnings::acknowledge),
                )
                .route("/xapi/statements", web::post().to(xapi::post_statements))
                .route("/webhooks/docusign", web::post().to(webhooks::docusign))
                .route(
                    "/webhooks/dropbox-sign",
                    web::post().to(webhooks::dropbox_sign),
                )
                .service(
                    web::scope("/scim/v2")
                        .route("/Users", web::get().to(scim::list))
                        .route("/Users", web::post().to(scim::create))
                        .route("/Users/{id}", web::get().to(scim::get))
                        .route("/Users/{id}", web::put().to(scim::replace))
                        .route("/Users/{id}", web::patch().to(scim::patch))
                        .route("/Users/{id}", web::delete().to(scim::delete)),
                )
                .route("/manage", web::get().to(manage::team_page))
                .route(
                    "/manage/people/{subject}",
                    web::get().to(manage::person_page),
                )
                .route(
                    "/manage/people/{subject}/actions",
                    web::post().to(manage::action_form),
                )
                .route(
                    "/manage/people/{subject}/exemptions",
                    web::post().to(manage::exemption_form),
                )
                .route("/manage/exemptions", web::get().to(manage::exemptions_page))
                .route(
                    "/manage/exemptions/{id}",
                    web::post().to(manage::decide_form),
                )
                .service(
                    web::scope("/api/v1")
                        .route("/openapi.json", web::get().to(openapi::serve))
                        .route("/team", web::get().to(manage::team_api))
                        .route("/people/{subject}", web::get().to(manage::person_api))
                        .route(
                            "/people/{subject}/actions",
                            web::post().to(manage::action_api),
                        )
                        .route(
                            "/people/{subject}/exemptions",
                            web::post().to(manage::exemption_api),
                        )
                        .route("/exemptions", web::get().to(manage::exemptions_api))
                        .route("/exemptions/{id}", web::post().to(manage::decide_api))
                        .route("/records", web::post().to(api::post_record))
                        .route("/subjects/{subject}", web::get().to(api::get_subject))
                        .route(
                            "/subjects/{subject}/history",
                            web::get().to(api::get_history),
                        )
                        .route(
                            "/subjects/{subject}/sign-out",
                            web::post().to(api::sign_out_everywhere),
                        )
                        .route("/revocations", web::post().to(api::post_revocation))
                        .route("/denials", web::get().to(api::get_denials))
                        .route("/evidence/at", web::get().to(evidence::at))
                        .route("/evidence/export", web::get().to(evidence::export)),
                )
                .default_service(web::to(api::not_found)),
        )
        .default_service(web::to(gate::gate));
}

/// Builds the actix `App` of one listener for one worker: the admin listener's sees only
/// [`configure_admin`]'s endpoints.
pub fn app(
    state: AppState,
    listener: Listener,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let upstreams = proxy::Upstreams::new(&state.settings());
    let live = state.live.clone();
    actix_web::App::new()
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(upstreams))
        .app_data(
            web::JsonConfig::default()
                .limit(64 * 1024)
                .error_handler(api::json_error),
        )
        .configure(|cfg| match listener {
            Listener::Public => configure(cfg),
            Listener::Admin => configure_admin(cfg),
        })
        .wrap_fn(|req, srv| {
            use actix_web::ResponseError as _;
            use futures_util::future::{Either, FutureExt as _};
            // The authority, then limits, come first: a refused request costs no store or
            // provider round trip, and nothing routes on a Host that could be read two ways.
            // A request whose probe passed them (`Expect: 100-continue`) was charged then.
            let refused = authority::check_request(req.request())
                .map_err(|e| error::AppError::bad_request("invalid_host", e.to_string()))
                .err()
                .or_else(|| {
                    if req.extensions().contains::<expect::ContinueSent>() {
                        None
                    } else {
                        limits::refusal(&req)
                    }
                });
            // A probe for one of Clearance's own endpoints never runs the handler: it may send
            // its body, and the handler judges it then.
            let own_endpoint = || req.resource_map().has_resource(req.match_info().as_str());
            match refused {
                None if expect::is_probe(&req) && own_endpoint() => {
                    Either::Right(std::future::ready(Ok(req
                        .into_response(expect::continue_allowed())
                        .map_into_right_body())))
                }
                None => Either::Left(srv.call(req).map(|r| r.map(|res| res.map_into_left_body()))),
                Some(e) => {
                    let response = error::HttpError::new(e, req.request()).error_response();
                    Either::Right(std::future::ready(Ok(req
                        .into_response(response)
                        .map_into_right_body())))
                }
            }
        })
        .wrap_fn(move |req, srv| {
            let on_admin = listener == Listener::Admin;
            let id = RequestId::for_request(req.request(), &live.load().trusted_proxies);
            let handler = if on_admin {
                "admin"
            } else {
                crate::metrics::handler(req.path())
            };
            req.extensions_mut().insert(id.clone());
            let RequestId(id) = id;
            let path = req.path().to_owned();
            let span = tracing::info_span!(
                "request",
                request.id = %id,
                http.method = %req.method(),
                http.path = %path,
                http.handler = handler,
            );
            let started = std::time::Instant::now();
            let fut = {
                let _entered = span.enter();
                srv.call(req)
            };
            async move {
                let mut res = fut.await?;
                if res.response().extensions().contains::<expect::ContinueAllowed>() {
                    // Not an answer: the request itself follows, and is counted and logged.
                    return Ok(res);
                }
                let status = res.status().as_u16();
                let took = started.elapsed();
                if !on_admin {
                    crate::metrics::request(handler, status, took);
                }
                tracing::info!(
                    target: "clearance::access",
                    { http.status_code = status, http.duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX) },
                    "request answered"
                );
                if let Ok(v) = HeaderValue::from_str(&id) {
                    res.headers_mut()
                        .insert(HeaderName::from_static("x-request-id"), v);
                }
                let own = res
                    .response()
                    .extensions()
                    .contains::<security::OwnResponse>();
                if security::applies(&path, res.status(), own) {
                    security::protect(res.headers_mut());
                }
                Ok(res)
            }
            .instrument(span)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_ids_are_distinct_version_4_uuids() {
        let a = RequestId::random().0;
        let b = RequestId::random().0;
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id.len(), 36);
            assert_eq!(id, &id.to_lowercase());
            assert!(is_safe_request_id(id));
        }
    }
}
