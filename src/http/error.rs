//! The one place where errors become HTTP responses: status, HTML or JSON body, and headers.

use super::pages::{self, BlockedView, Message, WarningView};
use crate::auth::oidc::AuthError;
use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use std::fmt;

/// Everything that can stop a request, in the words of the people who see it.
#[derive(Debug)]
pub enum AppError {
    /// Malformed input: 400 with a message.
    BadRequest {
        code: &'static str,
        message: String,
    },
    /// Not signed in: browsers go to sign-in, other clients get 401.
    SignInRequired {
        start_url: String,
    },
    /// A session cookie that is tampered, forged or names no live session: 401, cookie cleared.
    InvalidSession {
        start_url: String,
        clear: Vec<actix_web::cookie::Cookie<'static>>,
    },
    /// Signed in but a precondition is missing: 403 with the blocked page.
    Blocked(Box<BlockedView>),
    /// A `warn` requirement is due: 200 with the interstitial (browsers only).
    Warning(Box<WarningView>),
    /// Admin API without valid credentials.
    Unauthorized(String),
    /// xAPI statements without valid LRS credentials: 401 with a Basic challenge.
    XapiUnauthorized(String),
    /// An e-signature callback whose signature does not verify: 401, nothing written.
    WebhookRejected(String),
    /// A bearer token that is malformed or not acceptable: 401 with its `WWW-Authenticate`.
    BearerRejected {
        challenge: String,
        message: String,
    },
    /// Forwarded headers from a peer that is not a trusted proxy.
    UntrustedProxy(String),
    /// The directory marks the person inactive: denied everywhere.
    Deactivated,
    /// Signed in, but not allowed to see or do this (another team, a read-only auditor ...).
    Forbidden(String),
    /// The thing exists already (SCIM `uniqueness`) or changed meanwhile.
    Conflict(String),
    /// No route serves this host and path.
    NoRoute,
    NotFound(String),
    /// A URL document could not be fetched, or changed without a new version.
    DocumentUnavailable(String),
    /// State (Redis) could not be read or written: fail closed.
    StateUnavailable(String),
    /// State can be read but not written (Redis refuses writes): the change was not made;
    /// decisions go on.
    StateReadOnly(String),
    /// The OpenID provider could not be reached or its metadata is not loaded.
    ProviderUnavailable(String),
    /// A vendor's API Clearance asks before it writes (Dropbox Sign) could not be reached: 503,
    /// so that the caller retries.
    VendorUnavailable(String),
    /// The sign-in failed at or after the provider (bad code, invalid token ...).
    SignInFailed(String),
    /// The provider vouched for someone Clearance may not admit at all (an unverified e-mail
    /// address, a foreign domain or tenant): 401 with a page saying why.
    IdentityRefused(String),
    UpstreamUnreachable(String),
    UpstreamTimeout,
    Internal(String),
    /// Over a `[limits]` rate: 429 with `Retry-After`.
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// A request head larger than `[limits] max_header_bytes` (the limit): 431.
    HeadersTooLarge(u64),
    /// A request body larger than the endpoint accepts: 413.
    PayloadTooLarge(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ReadOnly(_) => Self::StateReadOnly(e.to_string()),
            _ => Self::StateUnavailable(e.to_string()),
        }
    }
}

impl From<crate::oversight::OversightError> for AppError {
    fn from(e: crate::oversight::OversightError) -> Self {
        use crate::oversight::OversightError as E;
        match e {
            E::Forbidden(m) => Self::Forbidden(m),
            E::NotFound(m) => Self::NotFound(m),
            E::Invalid(m) => Self::bad_request("invalid_request", m),
            E::Conflict(m) => Self::Conflict(m),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::auth::bearer::BearerError> for AppError {
    fn from(e: crate::auth::bearer::BearerError) -> Self {
        use crate::auth::bearer::BearerError;
        match &e {
            // Every refused bearer credential is a 401, malformed spellings included, so that
            // clients re-authenticate rather than retry.
            BearerError::Malformed(m) | BearerError::InvalidToken(m) => Self::BearerRejected {
                challenge: e.www_authenticate(),
                message: m.clone(),
            },
            BearerError::KeysUnavailable(m) => Self::ProviderUnavailable(m.clone()),
        }
    }
}

impl From<crate::auth::claims::ClaimsError> for AppError {
    fn from(e: crate::auth::claims::ClaimsError) -> Self {
        if e.names_nobody() {
            Self::SignInFailed(e.to_string())
        } else {
            Self::IdentityRefused(e.to_string())
        }
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::ProviderUnavailable(m) => Self::ProviderUnavailable(m),
            other => Self::SignInFailed(other.to_string()),
        }
    }
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::SignInRequired { .. }
            | Self::InvalidSession { .. }
            | Self::Unauthorized(_)
            | Self::XapiUnauthorized(_)
            | Self::WebhookRejected(_)
            | Self::BearerRejected { .. }
            | Self::IdentityRefused(_) => StatusCode::UNAUTHORIZED,
            Self::Blocked(_) | Self::UntrustedProxy(_) | Self::Deactivated | Self::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            Self::Warning(_) => StatusCode::OK,
            Self::NoRoute | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::SignInFailed(_) => StatusCode::BAD_REQUEST,
            Self::StateUnavailable(_)
            | Self::StateReadOnly(_)
            | Self::ProviderUnavailable(_)
            | Self::VendorUnavailable(_)
            | Self::DocumentUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::SignInRequired { .. } => "sign_in_required",
            Self::InvalidSession { .. } => "invalid_session",
            Self::Blocked(_) => "induction_incomplete",
            Self::Warning(_) => "induction_due",
            Self::Unauthorized(_) | Self::XapiUnauthorized(_) => "unauthorized",
            Self::WebhookRejected(_) => "invalid_signature",
            Self::BearerRejected { .. } => "invalid_token",
            Self::UntrustedProxy(_) => "untrusted_proxy",
            Self::Deactivated => "account_inactive",
            Self::Forbidden(_) => "forbidden",
            Self::Conflict(_) => "conflict",
            Self::NoRoute => "no_route",
            Self::NotFound(_) => "not_found",
            Self::StateUnavailable(_) => "state_unavailable",
            Self::StateReadOnly(_) => "state_read_only",
            Self::DocumentUnavailable(_) => "document_unavailable",
            Self::ProviderUnavailable(_) => "provider_unavailable",
            Self::VendorUnavailable(_) => "vendor_unavailable",
            Self::SignInFailed(_) => "sign_in_failed",
            Self::IdentityRefused(_) => "identity_not_accepted",
            Self::UpstreamUnreachable(_) => "upstream_unreachable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Internal(_) => "internal_error",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::PayloadTooLarge(_) => "body_too_large",
        }
    }

    /// (title, message shown to people). Internal details stay in the logs.
    fn words(&self) -> (&'static str, String) {
        match self {
            Self::BadRequest { message, .. } => ("Bad request", message.clone()),
            Self::SignInRequired { .. } => ("Sign-in required", "Please sign in to continue.".into()),
            Self::InvalidSession { .. } => (
                "Your session is not valid",
                "Your session cookie could not be verified or your session has ended. Please sign in again.".into(),
            ),
            Self::Blocked(_) => ("Access blocked", "Your security induction is not complete.".into()),
            Self::Warning(_) => ("Action needed soon", "Part of your induction is due soon.".into()),
            Self::Unauthorized(m) | Self::XapiUnauthorized(m) => ("Unauthorized", m.clone()),
            Self::WebhookRejected(m) => ("Signature not valid", format!("The callback was refused: {m}.")),
            Self::BearerRejected { message, .. } => (
                "The access token was refused",
                format!("The bearer token was refused: {message}."),
            ),
            Self::UntrustedProxy(peer) => (
                "Not a trusted proxy",
                format!("Forward-auth requests are accepted only from the proxies listed in server.trusted_proxies; this one came from {peer}."),
            ),
            Self::Deactivated => (
                "Your account is not active",
                "The company directory marks your account as inactive, so Clearance admits you nowhere. If this is a mistake, contact your manager or the IAM team.".into(),
            ),
            Self::Forbidden(m) => ("Not allowed", m.clone()),
            Self::Conflict(m) => ("Conflict", m.clone()),
            Self::NoRoute => (
                "Nothing here",
                "Clearance has no application configured for this address.".into(),
            ),
            Self::NotFound(m) => ("Not found", m.clone()),
            Self::StateReadOnly(_) => (
                "Changes cannot be saved right now",
                "Clearance's state store refuses writes right now, so this change was not made. Access decisions go on from the state it holds. Please send this again later.".into(),
            ),
            Self::StateUnavailable(_) => (
                "The gate is temporarily unavailable",
                "Clearance cannot read compliance state right now, so it admits nobody. This is an outage, not a problem with your induction. Please try again in a minute.".into(),
            ),
            Self::ProviderUnavailable(_) => (
                "Sign-in is temporarily unavailable",
                "Sign-in is unavailable right now: Clearance cannot reach the sign-in provider. This is an outage, not a problem with your account. If you are already signed in, you can keep working. Please try again in a few minutes.".into(),
            ),
            Self::VendorUnavailable(m) => (
                "A service Clearance relies on is unavailable",
                format!("{m}. Nothing was recorded; please send this again later."),
            ),
            Self::SignInFailed(m) => ("Sign-in failed", format!("{m}. Please start again.")),
            Self::IdentityRefused(m) => (
                "Your sign-in cannot be accepted",
                format!("You signed in at the provider, but Clearance cannot admit this identity: {m}."),
            ),
            Self::UpstreamUnreachable(_) => (
                "The application is not responding",
                "Clearance admitted you, but the application behind it could not be reached. This is an outage of the application.".into(),
            ),
            Self::UpstreamTimeout => (
                "The application took too long",
                "Clearance admitted you, but the application behind it did not answer in time.".into(),
            ),
            Self::Internal(_) => ("Something went wrong", "Clearance hit an internal error.".into()),
            Self::TooManyRequests { retry_after_secs } => (
                "Too many requests",
                format!("Too many requests came from you in a short time. Please wait {retry_after_secs} seconds and try again."),
            ),
            Self::HeadersTooLarge(max) => (
                "Request headers too large",
                format!("The request's headers (cookies included) are larger than the {max} bytes accepted. Clearing this site's cookies usually helps."),
            ),
            Self::PayloadTooLarge(m) => ("Request body too large", m.clone()),
            Self::DocumentUnavailable(title) => (
                "The document cannot be shown right now",
                format!("\u{201c}{title}\u{201d} cannot be shown right now (it is being fetched, or it changed and is waiting for its new version). Please try again later."),
            ),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.words().1)
    }
}

/// Does the client want JSON rather than a page?
pub fn wants_json(req: &HttpRequest) -> bool {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

/// Is the client a browser that can follow a redirect to sign in?
pub fn is_browser(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The JSON body of every error answer outside SCIM (and the API's OpenAPI `Error` schema).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A stable, machine-readable code (`invalid_json`, `unauthorized`, `state_unavailable` ...).
    pub error: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Where to sign in, when signing in would help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_url: Option<String>,
    /// The request's id (also in `X-Request-Id`), to quote to support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An [`AppError`] with what is needed to render it for this request.
#[derive(Debug)]
pub struct HttpError {
    pub error: AppError,
    json: bool,
    /// SCIM clients get SCIM error bodies (RFC 7644 section 3.12).
    scim: bool,
    browser: bool,
    request_id: Option<String>,
}

impl HttpError {
    pub fn new(error: AppError, req: &HttpRequest) -> Self {
        Self {
            error,
            // The API always answers JSON, whatever the client accepts.
            json: wants_json(req)
                || req.path().starts_with("/.clearance/api/")
                || req.path().starts_with("/.clearance/xapi/")
                || req.path().starts_with("/.clearance/webhooks/")
                || req.path() == "/oauth2/backchannel_logout",
            scim: req.path().starts_with("/.clearance/scim/"),
            browser: is_browser(req),
            request_id: req
                .extensions()
                .get::<super::RequestId>()
                .map(|r| r.0.clone()),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// Lets handlers write `result.http(&req)?`.
pub trait IntoHttp<T> {
    fn http(self, req: &HttpRequest) -> Result<T, HttpError>;
}

impl<T, E: Into<AppError>> IntoHttp<T> for Result<T, E> {
    fn http(self, req: &HttpRequest) -> Result<T, HttpError> {
        self.map_err(|e| HttpError::new(e.into(), req))
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match &self.error {
            AppError::StateUnavailable(m)
            | AppError::StateReadOnly(m)
            | AppError::ProviderUnavailable(m)
            | AppError::Internal(m) => {
                tracing::error!(error.code = self.error.code(), error.detail = %m, "request failed");
            }
            AppError::UpstreamUnreachable(m) => {
                tracing::warn!(error.code = self.error.code(), error.detail = %m, "upstream failed");
            }
            AppError::SignInFailed(m) => {
                tracing::warn!(error.code = self.error.code(), error.detail = %m, "sign-in failed");
            }
            _ => {}
        }
        let mut builder = HttpResponse::build(status);
        builder
            .extensions_mut()
            .insert(super::security::OwnResponse);
        builder.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Some(id) = &self.request_id {
            builder.insert_header(("x-request-id", id.as_str()));
        }
        match &self.error {
            AppError::SignInRequired { start_url } if self.browser => {
                return builder
                    .status(StatusCode::FOUND)
                    .insert_header((header::LOCATION, start_url.as_str()))
                    .finish();
            }
            AppError::InvalidSession { clear, .. } => {
                for cookie in clear {
                    builder.cookie(cookie.clone());
                }
            }
            AppError::Unauthorized(_) => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"clearance\""));
            }
            AppError::XapiUnauthorized(_) => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"clearance-xapi\""));
            }
            AppError::BearerRejected { challenge, .. } => {
                builder.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
            }
            AppError::SignInRequired { .. } => {
                builder.insert_header((header::WWW_AUTHENTICATE, crate::auth::bearer::challenge()));
            }
            AppError::StateUnavailable(_)
            | AppError::StateReadOnly(_)
            | AppError::ProviderUnavailable(_) => {
                builder.insert_header((header::RETRY_AFTER, "30"));
            }
            AppError::TooManyRequests { retry_after_secs } => {
                builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        let (title, message) = self.error.words();
        if self.scim {
            let scim_type = match &self.error {
                AppError::BadRequest { code, .. } => Some(*code),
                AppError::Conflict(_) => Some("uniqueness"),
                _ => None,
            };
            let mut body = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": status.as_u16().to_string(),
                "detail": message,
            });
            if let Some(t) = scim_type {
                body["scimType"] = json!(t);
            }
            return builder
                .content_type("application/scim+json")
                .body(body.to_string());
        }
        if let AppError::Warning(view) = &self.error {
            return builder
                .content_type("text/html; charset=utf-8")
                .body(pages::render("warning.html", view.as_ref()));
        }
        if let AppError::Blocked(view) = &self.error {
            if self.json {
                return builder.json(json!({
                    "error": self.error.code(),
                    "message": message,
                    "subject": view.person.subject,
                    "missing": view.items,
                    "request_id": view.request_id,
                }));
            }
            return builder
                .content_type("text/html; charset=utf-8")
                .body(pages::render("blocked.html", view.as_ref()));
        }
        let start_url = match &self.error {
            AppError::SignInRequired { start_url } | AppError::InvalidSession { start_url, .. } => {
                Some(start_url.as_str())
            }
            AppError::SignInFailed(_) => Some("/oauth2/start"),
            _ => None,
        };
        if self.json {
            return builder.json(ErrorBody {
                error: self.error.code(),
                message,
                sign_in_url: start_url.map(str::to_owned),
                request_id: self.request_id.clone(),
            });
        }
        let page = Message {
            title,
            message: &message,
            detail: None,
            action_url: start_url,
            action_label: start_url.map(|_| "Sign in"),
            code: self.error.code(),
            status: status.as_u16(),
            request_id: self.request_id.as_deref(),
        };
        builder
            .content_type("text/html; charset=utf-8")
            .body(pages::render("message.html", page))
    }
}
