//! Built-in *development* OpenID Connect provider for `clearance demo`: a loopback-only,
//! password-less OP with fixed demo accounts, the PKCE code flow, refresh tokens, userinfo,
//! JWKS and RP-initiated logout, all kept in memory.
//!
//! It exists so that a newcomer can run the whole Clearance flow on one machine without
//! setting up a real identity provider. It signs with a fixed, publicly known key and lets
//! anyone who can reach it sign in as any account, so [`start`] refuses every bind address
//! that is not a loopback address.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

// ------------------------------------------------------------------------------------------
// !!!  DEVELOPMENT KEY — NOT A SECRET — NEVER USE OUTSIDE THE LOOPBACK DEMO PROVIDER  !!!
//
// This 2048-bit RSA key was generated once with `openssl genrsa 2048` and is committed in
// the clear. Anyone can mint tokens with it. It is used only by this development provider,
// which only ever listens on a loopback address, to sign ID tokens for `clearance demo`.
// No production configuration may ever trust tokens signed with it.
// ------------------------------------------------------------------------------------------

/// PEM (PKCS#1) of the development signing key. See the warning above.
const DEV_SIGNING_KEY_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEA6RKdDQXFY72AyBxVLXSnlRhzmEz1P0TdE0N2kAs44DxTA888
I5W7uadQcWoDDcr7Z+7+NX/rzPgC4FizwmAGjYiCyI+XLqjrvBrVvuQYU3IMuQAc
Ly+VBMvqfaTdaNqFhGrgr6pcEvdyWwhPvLqC/S+9GMKgi8oAvAz2izd9NNY13G1I
v5RKc9PQspgGFVJmstR5yLY9XE8Bey86PyP0LL3IK4hxCe2zDWOF5RKWSShpowmx
zpTPqDyLpPW7zbTwZYAU1jsSyY77RBqDWjGxzKFvQgrAmt8YzWyK3ciSRdFoCiIV
7PRfW0wK98cHZAKNSeoG7EA/yBYXv/jgcLpWuQIDAQABAoIBAGo7zTDD2iIpnJrZ
ayuSWdYX9IxNO5WQflHK9K4YJ17xsAby/N7dX1jyPbTMFMNDK09GvEDHY0OkIa9/
TsQAf8wgFjhzVn3yiaxN8PIWxk22lLz4I2CQiBRNG78UF8U0oRnnmy0GcfxFJC8A
/VMxEgZ0LXUtNP8yXh5YrEFtU9jyEWYmg1Ko9mJC6MSDx9r+/dT9nr0VkseykDxF
v9csOYhAKubj6KvrElvk6uloMD8GaD772ptb58L2fwneqY155I4MD+D+KmkzwLOf
7vel+RpXRAB8w6irtep67z3OdYg6+byeu3067vXKSoPbNsxXbZ5Ukegr7Fyj+EKc
mt7QkM8CgYEA/8tmRYT1zOPBYJ1CQZSTI2/QFaez54D31syz/bUvgeI9XT4XaQzz
n1FEZ4bedVDlUCbFfMytKb6crOmJ5bu01d0ogDsZUG11dQmQiynthI/7GtBv4h6f
JL8mwk1w4sZ/LF7vp/+fBGWjUAc6cf0FfdSORk3FltpwyFGfpCieSWsCgYEA6UKK
o95ffeHaeacGe6NXZkvYPrBf6sfGxDGf5NRXnxqefRhylyXe+wPNpRhGiBmOLwOo
zSqtPxuFdzqEe/wxxErzGgc4nK/e1mcHds9pmZS6vaJzsJxIDjoeQsQrCpHOhlE4
az63Fzlv+g+fRgauRIwxEToPplbwT9VI1SM7tWsCgYBQHTZk46XQjCzOw7IytAP5
f1We0q2H/l6hSe+9sHe2qFMr1vyiDEppRZy1CAq4l6OanOoRklFR179ecK6d41Ja
ATBkKR5ekEnPZDV/QJyBfk7ZMRs5qPmTGsNa68JFZIIENZ+98FOvnt2tfPYTKXoE
1QPShR0ziCr2sonbclVRDQKBgFVsshtbN/uA+CLvQVeMNVjYU+R5cVcpPKjjR5xl
C4XQGNTVXDnwe53QAcMBhesX+NNM8sfYZkQjTxigDJ7feFZb4HXaySfQ3LoGV1xy
j0jYiB8k3FuEkHrtW+G1t9GSHmFgY1obSLAvr8uTZxAdKDsgYGPfsJWJZ07FXHv6
AEbrAoGAbnLiAUcFY8v1iBQZPVbK92ZhTNZ2rlRBY3sC/U3orBGhCY+QIDoeaLhj
w00IC70xFaak3OTSxQ0uN1xpnhgRI1v5VMpN9Za2A45PPimzINfBmP6WV1ZbwrGK
mAYmBSBYtzFE83+I50wnMCXoWfFzB7u0hZDx2jxiZNK9ohkzTM8=
-----END RSA PRIVATE KEY-----
";

/// JWK `n` (modulus, base64url without padding) of [`DEV_SIGNING_KEY_PEM`].
const DEV_SIGNING_KEY_N: &str = "6RKdDQXFY72AyBxVLXSnlRhzmEz1P0TdE0N2kAs44DxTA888I5W7uadQcWoDDcr7Z-7-NX_rzPgC4FizwmAGjYiCyI-XLqjrvBrVvuQYU3IMuQAcLy-VBMvqfaTdaNqFhGrgr6pcEvdyWwhPvLqC_S-9GMKgi8oAvAz2izd9NNY13G1Iv5RKc9PQspgGFVJmstR5yLY9XE8Bey86PyP0LL3IK4hxCe2zDWOF5RKWSShpowmxzpTPqDyLpPW7zbTwZYAU1jsSyY77RBqDWjGxzKFvQgrAmt8YzWyK3ciSRdFoCiIV7PRfW0wK98cHZAKNSeoG7EA_yBYXv_jgcLpWuQ";

/// JWK `e` (public exponent 65537, base64url) of [`DEV_SIGNING_KEY_PEM`].
const DEV_SIGNING_KEY_E: &str = "AQAB";

/// Key id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
const DEV_SIGNING_KEY_KID: &str = "JFnFwYldjG1eVScVVpUEUSf3KUk6npYWbjSx-IGHfc8";

/// Lifetime of an authorization code.
const AUTH_CODE_TTL: Duration = Duration::from_secs(60);
/// How long a sign-in page stays usable.
const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Lifetime of a refresh token, and of the provider session it belongs to.
const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Upper bound on outstanding sign-in pages kept in memory.
const MAX_PENDING: usize = 1024;

const SCOPES_SUPPORTED: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];

/// Claims the provider sets itself; an account's claims never override them.
const PROTOCOL_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "azp",
    "sid",
];

// ------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------

/// A demo account offered on the sign-in page.
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// Short name shown on the sign-in button; also the fallback `sub`.
    pub login: String,
    /// One-line explanation of what this account demonstrates.
    pub description: String,
    /// Profile claims (`sub`, `email`, `email_verified`, `name`, `groups`, `employee_type`,
    /// `manager`, ...) put into ID tokens and returned by userinfo.
    pub claims: Map<String, Value>,
}

/// A relying party registered with the development provider.
#[derive(Clone)]
pub struct DevClient {
    pub client_id: String,
    pub client_secret: String,
    /// Exact-match allow list for `redirect_uri`.
    pub redirect_uris: Vec<String>,
    /// Exact-match allow list for `post_logout_redirect_uri`.
    pub post_logout_redirect_uris: Vec<String>,
}

impl fmt::Debug for DevClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .finish()
    }
}

/// Configuration of the development provider.
#[derive(Debug, Clone)]
pub struct DevProviderConfig {
    /// Must be a loopback address (127.0.0.0/8 or ::1). Port 0 picks a free port.
    pub bind: SocketAddr,
    pub accounts: Vec<DevAccount>,
    pub clients: Vec<DevClient>,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
}

/// Why the development provider could not start.
#[derive(thiserror::Error, Debug)]
pub enum DevProviderError {
    #[error(
        "refusing to run the development OpenID Connect provider on {0}: it only binds to \
         loopback addresses (127.0.0.0/8 or ::1)"
    )]
    NotLoopback(SocketAddr),
    #[error("could not listen on {0} for the development OpenID Connect provider: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("the development OpenID Connect provider's signing key is unusable: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
}

/// A development provider serving on the current actix runtime.
///
/// Call [`RunningDevProvider::stop`] to shut it down; dropping the value leaves the server
/// running until the runtime itself stops.
pub struct RunningDevProvider {
    issuer: String,
    addr: SocketAddr,
    handle: ServerHandle,
    task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl fmt::Debug for RunningDevProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningDevProvider")
            .field("issuer", &self.issuer)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningDevProvider {
    /// The issuer identifier, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The address actually bound (with the real port when port 0 was requested).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server gracefully and waits for it to finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let issuer = self.issuer;
        match self.task.await {
            Ok(Ok(())) => tracing::debug!(%issuer, "development OIDC provider stopped"),
            Ok(Err(err)) => {
                tracing::warn!(%issuer, error.message = %err, "development OIDC provider failed");
            }
            Err(err) => {
                tracing::warn!(%issuer, error.message = %err, "development OIDC provider task failed")
            }
        }
    }
}

/// Starts the development provider on `cfg.bind`.
///
/// Must be called from within an actix system (e.g. under `#[actix_web::main]`): the server
/// future is spawned on the current thread's local task set.
pub async fn start(cfg: DevProviderConfig) -> Result<RunningDevProvider, DevProviderError> {
    let bind = cfg.bind;
    if !bind.ip().is_loopback() {
        return Err(DevProviderError::NotLoopback(bind));
    }
    let listener =
        std::net::TcpListener::bind(bind).map_err(|err| DevProviderError::Bind(bind, err))?;
    let addr = listener
        .local_addr()
        .map_err(|err| DevProviderError::Bind(bind, err))?;
    let issuer = format!("http://{addr}");
    let shared = web::Data::new(Shared::new(issuer.clone(), cfg)?);

    let server = HttpServer::new(move || App::new().configure(app_config(shared.clone())))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .listen(listener)
        .map_err(|err| DevProviderError::Bind(addr, err))?
        .run();
    let handle = server.handle();
    let task = actix_web::rt::spawn(server);
    tracing::info!(%issuer, "development OpenID Connect provider listening (demo only)");
    Ok(RunningDevProvider {
        issuer,
        addr,
        handle,
        task,
    })
}

// ------------------------------------------------------------------------------------------
// Shared state
// ------------------------------------------------------------------------------------------

struct Shared {
    issuer: String,
    accounts: Vec<DevAccount>,
    clients: Vec<DevClient>,
    access_token_ttl: Duration,
    id_token_ttl: Duration,
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Sign-in pages shown but not yet completed, by opaque request id.
    pending: HashMap<String, PendingAuthorization>,
    /// Authorization codes (kept after redemption until expiry, to detect replay).
    codes: HashMap<String, AuthorizationCode>,
    access_tokens: HashMap<String, TokenGrant>,
    refresh_tokens: HashMap<String, TokenGrant>,
    /// Provider sessions by `sid`: one per completed sign-in.
    sessions: HashMap<String, Session>,
}

struct PendingAuthorization {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    nonce: String,
    code_challenge: String,
    created: Instant,
}

struct AuthorizationCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: String,
    scope: String,
    login: String,
    sid: String,
    auth_time: i64,
    expires: Instant,
    redeemed: bool,
}

#[derive(Clone)]
struct TokenGrant {
    client_id: String,
    login: String,
    scope: String,
    sid: String,
    auth_time: i64,
    expires: Instant,
}

struct Session {
    login: String,
    expires: Instant,
}

impl State {
    fn prune(&mut self, now: Instant) {
        self.pending
            .retain(|_, p| now.saturating_duration_since(p.created) < PENDING_TTL);
        self.codes.retain(|_, c| c.expires > now);
        self.access_tokens.retain(|_, t| t.expires > now);
        self.refresh_tokens.retain(|_, t| t.expires > now);
        self.sessions.retain(|_, s| s.expires > now);
    }

    /// Ends a provider session and revokes every token issued within it.
    fn end_session(&mut self, sid: &str) {
        self.sessions.remove(sid);
        self.access_tokens.retain(|_, t| t.sid != sid);
        self.refresh_tokens.retain(|_, t| t.sid != sid);
        for code in self.codes.values_mut() {
            if code.sid == sid {
                code.redeemed = true;
            }
        }
    }

    fn add_pending(&mut self, id: String, pending: PendingAuthorization) {
        while self.pending.len() >= MAX_PENDING {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => {
                    self.pending.remove(&key);
                }
                None => break,
            }
        }
        self.pending.insert(id, pending);
    }
}

impl Shared {
    fn new(issuer: String, cfg: DevProviderConfig) -> Result<Self, DevProviderError> {
        let encoding_key = EncodingKey::from_rsa_pem(DEV_SIGNING_KEY_PEM.as_bytes())?;
        let decoding_key = DecodingKey::from_rsa_components(DEV_SIGNING_KEY_N, DEV_SIGNING_KEY_E)?;
        Ok(Self {
            issuer,
            accounts: cfg.accounts,
            clients: cfg.clients,
            access_token_ttl: cfg.access_token_ttl,
            id_token_ttl: cfg.id_token_ttl,
            encoding_key,
            decoding_key,
            state: Mutex::new(State::default()),
        })
    }

    /// Locks the state and drops expired entries.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        guard.prune(Instant::now());
        guard
    }

    fn client(&self, client_id: &str) -> Option<&DevClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    fn account(&self, login: &str) -> Option<&DevAccount> {
        self.accounts.iter().find(|a| a.login == login)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

fn subject(account: &DevAccount) -> String {
    match account.claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => account.login.clone(),
    }
}

/// The account's claims as returned by userinfo: profile claims plus `sub`.
fn profile_claims(account: &DevAccount) -> Map<String, Value> {
    let mut claims: Map<String, Value> = account
        .claims
        .iter()
        .filter(|(k, _)| !PROTOCOL_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    claims.insert("sub".into(), Value::String(subject(account)));
    claims
}

// ------------------------------------------------------------------------------------------
// Routing
// ------------------------------------------------------------------------------------------

fn app_config(shared: web::Data<Shared>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(shared)
            .route("/", web::get().to(index))
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route("/jwks", web::get().to(jwks))
            .route("/authorize", web::get().to(authorize))
            .route("/authorize/login", web::post().to(authorize_login))
            .route("/authorize/cancel", web::post().to(authorize_cancel))
            .route("/token", web::post().to(token))
            .route("/userinfo", web::get().to(userinfo))
            .route("/userinfo", web::post().to(userinfo))
            .route("/end_session", web::get().to(end_session));
    }
}

// ------------------------------------------------------------------------------------------
// Discovery and keys
// ------------------------------------------------------------------------------------------

async fn index(data: web::Data<Shared>) -> HttpResponse {
    let body = format!(
        "<p class=\"brand\">Clearance &middot; development provider</p>\
         <h1>Development OpenID Connect provider</h1>\
         <p class=\"lead\">This provider is built into <code>clearance demo</code>. \
         It has no passwords and signs tokens with a publicly known key, so it only \
         listens on a loopback address.</p>\
         <p>Issuer: <code>{issuer}</code></p>\
         <p><a href=\"/.well-known/openid-configuration\">Discovery document</a> &middot; \
         <a href=\"/jwks\">Signing keys</a></p>",
        issuer = escape_html(&data.issuer)
    );
    html_response(StatusCode::OK, "Development OpenID Connect provider", &body)
}

async fn discovery(data: web::Data<Shared>) -> HttpResponse {
    let mut claims: BTreeSet<String> = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "sid",
        "email",
        "email_verified",
        "name",
        "groups",
        "employee_type",
        "manager",
    ]
    .iter()
    .map(|c| (*c).to_string())
    .collect();
    for account in &data.accounts {
        claims.extend(account.claims.keys().cloned());
    }
    HttpResponse::Ok().json(json!({
        "issuer": data.issuer,
        "authorization_endpoint": data.endpoint("/authorize"),
        "token_endpoint": data.endpoint("/token"),
        "userinfo_endpoint": data.endpoint("/userinfo"),
        "jwks_uri": data.endpoint("/jwks"),
        "end_session_endpoint": data.endpoint("/end_session"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES_SUPPORTED,
        "claims_supported": claims,
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": DEV_SIGNING_KEY_KID,
            "n": DEV_SIGNING_KEY_N,
            "e": DEV_SIGNING_KEY_E,
        }]
    }))
}

// ------------------------------------------------------------------------------------------
// Authorization endpoint
// ------------------------------------------------------------------------------------------

async fn authorize(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let params = match parse_params(req.query_string().as_bytes()) {
        Ok(params) => params,
        Err(msg) => return error_page(StatusCode::BAD_REQUEST, &msg),
    };
    let Some(client_id) = param(&params, "client_id") else {
        return error_page(StatusCode::BAD_REQUEST, "The request has no client_id.");
    };
    let Some(client) = data.client(client_id) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("Unknown client_id \u{201c}{client_id}\u{201d}."),
        );
    };
    let Some(redirect_uri) = param(&params, "redirect_uri") else {
        return error_page(StatusCode::BAD_REQUEST, "The request has no redirect_uri.");
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!(
                "The redirect_uri \u{201c}{redirect_uri}\u{201d} is not registered for client \
                 \u{201c}{client_id}\u{201d}."
            ),
        );
    }

    // From here on the redirect URI is trusted, so errors go back to the client.
    let state = param(&params, "state");
    let fail = |error: &str, description: &str| {
        error_redirect(&data.issuer, redirect_uri, state, error, description)
    };

    if param(&params, "response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    if param(&params, "request").is_some() || param(&params, "request_uri").is_some() {
        return fail("request_not_supported", "request objects are not supported");
    }
    let requested_scope = param(&params, "scope").unwrap_or("");
    if !requested_scope.split(' ').any(|s| s == "openid") {
        return fail("invalid_scope", "the scope must include openid");
    }
    let Some(state) = state else {
        return fail("invalid_request", "the state parameter is required");
    };
    let Some(nonce) = param(&params, "nonce") else {
        return fail("invalid_request", "the nonce parameter is required");
    };
    let Some(code_challenge) = param(&params, "code_challenge") else {
        return fail(
            "invalid_request",
            "PKCE is required: code_challenge is missing",
        );
    };
    if param(&params, "code_challenge_method") != Some("S256") {
        return fail("invalid_request", "PKCE code_challenge_method must be S256");
    }
    if code_challenge.len() != 43 || !code_challenge.bytes().all(is_base64url_byte) {
        return fail(
            "invalid_request",
            "code_challenge must be a base64url SHA-256 digest (43 characters)",
        );
    }
    if param(&params, "prompt").is_some_and(|p| p.split(' ').any(|v| v == "none")) {
        return fail(
            "login_required",
            "the development provider always asks which account to use",
        );
    }

    let scope = normalize_scope(requested_scope);
    let request_id = random_token();
    data.lock().add_pending(
        request_id.clone(),
        PendingAuthorization {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            scope,
            state: state.to_string(),
            nonce: nonce.to_string(),
            code_challenge: code_challenge.to_string(),
            created: Instant::now(),
        },
    );
    sign_in_page(&data, client_id, &request_id)
}

async fn authorize_login(data: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let params = match parse_params(&body) {
        Ok(params) => params,
        Err(msg) => return error_page(StatusCode::BAD_REQUEST, &msg),
    };
    let (Some(request_id), Some(login)) = (param(&params, "request"), param(&params, "login"))
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in form is missing the request or the account.",
        );
    };
    let Some(account) = data.account(login) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("There is no demo account \u{201c}{login}\u{201d}."),
        );
    };

    let code = random_token();
    let sid = random_token();
    let auth_time = chrono::Utc::now().timestamp();
    let pending = {
        let mut st = data.lock();
        let Some(pending) = st.pending.remove(request_id) else {
            drop(st);
            return expired_request_page();
        };
        st.sessions.insert(
            sid.clone(),
            Session {
                login: account.login.clone(),
                expires: deadline(REFRESH_TOKEN_TTL),
            },
        );
        st.codes.insert(
            code.clone(),
            AuthorizationCode {
                client_id: pending.client_id.clone(),
                redirect_uri: pending.redirect_uri.clone(),
                code_challenge: pending.code_challenge.clone(),
                nonce: pending.nonce.clone(),
                scope: pending.scope.clone(),
                login: account.login.clone(),
                sid: sid.clone(),
                auth_time,
                expires: deadline(AUTH_CODE_TTL),
                redeemed: false,
            },
        );
        pending
    };
    tracing::info!(
        user.login = %account.login,
        oauth.client_id = %pending.client_id,
        "development provider: demo account signed in"
    );
    match url_with_query(
        &pending.redirect_uri,
        &[
            ("code", code.as_str()),
            ("state", pending.state.as_str()),
            ("iss", data.issuer.as_str()),
        ],
    ) {
        Some(location) => redirect(StatusCode::SEE_OTHER, &location),
        None => error_page(
            StatusCode::BAD_REQUEST,
            "The client's redirect_uri is not a valid URL.",
        ),
    }
}

async fn authorize_cancel(data: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let params = match parse_params(&body) {
        Ok(params) => params,
        Err(msg) => return error_page(StatusCode::BAD_REQUEST, &msg),
    };
    let Some(request_id) = param(&params, "request") else {
        return error_page(StatusCode::BAD_REQUEST, "The form is missing the request.");
    };
    let Some(pending) = data.lock().pending.remove(request_id) else {
        return expired_request_page();
    };
    error_redirect_with(
        StatusCode::SEE_OTHER,
        &data.issuer,
        &pending.redirect_uri,
        Some(&pending.state),
        "access_denied",
        "the user cancelled the sign-in",
    )
}

fn expired_request_page() -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired or was already used. Go back to the application \
         and sign in again.",
    )
}

fn normalize_scope(requested: &str) -> String {
    let mut scopes: Vec<&str> = Vec::new();
    for scope in requested.split(' ') {
        if SCOPES_SUPPORTED.contains(&scope) && !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.join(" ")
}

fn error_redirect(
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> HttpResponse {
    error_redirect_with(
        StatusCode::FOUND,
        issuer,
        redirect_uri,
        state,
        error,
        description,
    )
}

fn error_redirect_with(
    status: StatusCode,
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> HttpResponse {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    match url_with_query(redirect_uri, &pairs) {
        Some(location) => redirect(status, &location),
        None => error_page(
            StatusCode::BAD_REQUEST,
            &format!("The sign-in request was rejected ({error}: {description})."),
        ),
    }
}

// ------------------------------------------------------------------------------------------
// Token endpoint
// ------------------------------------------------------------------------------------------

async fn token(req: HttpRequest, data: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let params = match parse_params(&body) {
        Ok(params) => params,
        Err(msg) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &msg),
    };
    let client = match authenticate_client(&req, &params, &data) {
        Ok(client) => client,
        Err(ClientAuthError::InvalidRequest(msg)) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg);
        }
        Err(ClientAuthError::InvalidClient(msg)) => return invalid_client(msg),
    };
    match param(&params, "grant_type") {
        Some("authorization_code") => code_grant(&data, client, &params),
        Some("refresh_token") => refresh_grant(&data, client, &params),
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "supported grant types: authorization_code, refresh_token",
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
    }
}

enum ClientAuthError {
    InvalidRequest(&'static str),
    InvalidClient(&'static str),
}

fn authenticate_client<'a>(
    req: &HttpRequest,
    params: &HashMap<String, String>,
    data: &'a Shared,
) -> Result<&'a DevClient, ClientAuthError> {
    let basic = basic_credentials(req).map_err(ClientAuthError::InvalidClient)?;
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if param(params, "client_secret").is_some() {
                return Err(ClientAuthError::InvalidRequest(
                    "use only one client authentication method",
                ));
            }
            if param(params, "client_id").is_some_and(|body_id| body_id != id) {
                return Err(ClientAuthError::InvalidRequest(
                    "client_id does not match the authenticated client",
                ));
            }
            (id, secret)
        }
        None => match (param(params, "client_id"), param(params, "client_secret")) {
            (Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
            _ => {
                return Err(ClientAuthError::InvalidClient(
                    "client authentication is required",
                ));
            }
        },
    };
    match data.client(&client_id) {
        Some(client) if constant_time_eq(client.client_secret.as_bytes(), secret.as_bytes()) => {
            Ok(client)
        }
        _ => Err(ClientAuthError::InvalidClient(
            "client authentication failed",
        )),
    }
}

/// Parses `Authorization: Basic` credentials (RFC 6749 §2.3.1: both parts form-urlencoded).
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, &'static str> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "malformed Authorization header")?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err("malformed Authorization header");
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("unsupported Authorization scheme");
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| "malformed Basic credentials")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "malformed Basic credentials")?;
    let Some((id, secret)) = decoded.split_once(':') else {
        return Err("malformed Basic credentials");
    };
    let unescape = |s: &str| -> Result<String, &'static str> {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "malformed Basic credentials")
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

fn code_grant(data: &Shared, client: &DevClient, params: &HashMap<String, String>) -> HttpResponse {
    let Some(code) = param(params, "code") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is required",
        );
    };
    let redirect_uri = param(params, "redirect_uri");
    let verifier = param(params, "code_verifier");

    let mut st = data.lock();
    let Some(entry) = st.codes.get_mut(code) else {
        drop(st);
        return invalid_grant("unknown or expired authorization code");
    };
    if entry.redeemed {
        let sid = entry.sid.clone();
        st.end_session(&sid);
        drop(st);
        tracing::warn!(
            oauth.client_id = %client.client_id,
            "development provider: authorization code replayed; revoked its tokens"
        );
        return invalid_grant("authorization code was already used");
    }
    // One attempt per code: a failed attempt burns it too.
    entry.redeemed = true;
    if entry.client_id != client.client_id {
        return invalid_grant("authorization code was issued to another client");
    }
    if redirect_uri != Some(entry.redirect_uri.as_str()) {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    let Some(verifier) = verifier else {
        return invalid_grant("PKCE code_verifier is required");
    };
    if !pkce_matches(verifier, &entry.code_challenge) {
        return invalid_grant("PKCE verification failed");
    }
    let grant = TokenGrant {
        client_id: entry.client_id.clone(),
        login: entry.login.clone(),
        scope: entry.scope.clone(),
        sid: entry.sid.clone(),
        auth_time: entry.auth_time,
        expires: Instant::now(),
    };
    let nonce = entry.nonce.clone();
    issue_tokens(data, st, grant, Some(&nonce))
}

fn refresh_grant(
    data: &Shared,
    client: &DevClient,
    params: &HashMap<String, String>,
) -> HttpResponse {
    let Some(refresh_token) = param(params, "refresh_token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is required",
        );
    };
    let mut st = data.lock();
    let Some(grant) = st.refresh_tokens.get(refresh_token).cloned() else {
        drop(st);
        return invalid_grant("unknown, expired or already used refresh token");
    };
    if grant.client_id != client.client_id {
        drop(st);
        return invalid_grant("refresh token was issued to another client");
    }
    if !st.sessions.contains_key(&grant.sid) {
        st.refresh_tokens.remove(refresh_token);
        drop(st);
        return invalid_grant("the session of this refresh token has ended");
    }
    let mut grant = grant;
    if let Some(requested) = param(params, "scope") {
        let granted: Vec<&str> = grant.scope.split(' ').collect();
        if !requested.split(' ').all(|s| granted.contains(&s)) {
            drop(st);
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "the requested scope exceeds the original grant",
            );
        }
        grant.scope = normalize_scope(requested);
    }
    // Rotation: the presented refresh token is spent.
    st.refresh_tokens.remove(refresh_token);
    issue_tokens(data, st, grant, None)
}

/// Issues an access token, a rotated refresh token and an ID token for `grant`.
fn issue_tokens(
    data: &Shared,
    mut st: MutexGuard<'_, State>,
    grant: TokenGrant,
    nonce: Option<&str>,
) -> HttpResponse {
    let Some(account) = data.account(&grant.login) else {
        drop(st);
        return invalid_grant("the account no longer exists");
    };
    let access_token = random_token();
    let refresh_token = random_token();
    if let Some(session) = st.sessions.get_mut(&grant.sid) {
        session.expires = deadline(REFRESH_TOKEN_TTL);
    }
    st.access_tokens.insert(
        access_token.clone(),
        TokenGrant {
            expires: deadline(data.access_token_ttl),
            ..grant.clone()
        },
    );
    st.refresh_tokens.insert(
        refresh_token.clone(),
        TokenGrant {
            expires: deadline(REFRESH_TOKEN_TTL),
            ..grant.clone()
        },
    );
    drop(st);

    let id_token = match sign_id_token(
        data,
        account,
        &IdTokenContext {
            client_id: &grant.client_id,
            nonce,
            auth_time: grant.auth_time,
            sid: &grant.sid,
            access_token: &access_token,
        },
    ) {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(error.message = %err, "development provider could not sign an ID token");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "could not sign the ID token",
            );
        }
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": data.access_token_ttl.as_secs().max(1),
            "refresh_token": refresh_token,
            "id_token": id_token,
            "scope": grant.scope,
        }))
}

struct IdTokenContext<'a> {
    client_id: &'a str,
    nonce: Option<&'a str>,
    auth_time: i64,
    sid: &'a str,
    access_token: &'a str,
}

fn sign_id_token(
    data: &Shared,
    account: &DevAccount,
    ctx: &IdTokenContext<'_>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(data.id_token_ttl.as_secs())
        .unwrap_or(i64::MAX)
        .max(1);
    let mut claims = profile_claims(account);
    claims.insert("iss".into(), json!(data.issuer));
    claims.insert("aud".into(), json!(ctx.client_id));
    claims.insert("azp".into(), json!(ctx.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(ttl)));
    claims.insert("auth_time".into(), json!(ctx.auth_time));
    claims.insert("sid".into(), json!(ctx.sid));
    claims.insert("at_hash".into(), json!(at_hash(ctx.access_token)));
    if let Some(nonce) = ctx.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEV_SIGNING_KEY_KID.to_string());
    jsonwebtoken::encode(&header, &Value::Object(claims), &data.encoding_key)
}

/// `at_hash`: base64url of the left-most 128 bits of SHA-256 of the access token.
fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

fn invalid_grant(description: &str) -> HttpResponse {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client(description: &str) -> HttpResponse {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"clearance-dev-provider\""),
    );
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({ "error": error, "error_description": description }))
}

// ------------------------------------------------------------------------------------------
// Userinfo
// ------------------------------------------------------------------------------------------

async fn userinfo(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let Some(token) = bearer_token(&req) else {
        return bearer_challenge("Bearer realm=\"clearance-dev-provider\"");
    };
    let login = data
        .lock()
        .access_tokens
        .get(token)
        .map(|g| g.login.clone());
    match login.as_deref().and_then(|login| data.account(login)) {
        Some(account) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Value::Object(profile_claims(account))),
        None => bearer_challenge(
            "Bearer realm=\"clearance-dev-provider\", error=\"invalid_token\", \
             error_description=\"the access token is unknown or expired\"",
        ),
    }
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn bearer_challenge(challenge: &'static str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

// ------------------------------------------------------------------------------------------
// RP-initiated logout
// ------------------------------------------------------------------------------------------

async fn end_session(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let params = match parse_params(req.query_string().as_bytes()) {
        Ok(params) => params,
        Err(msg) => return error_page(StatusCode::BAD_REQUEST, &msg),
    };
    let hint = param(&params, "id_token_hint").map(|hint| verify_id_token_hint(&data, hint));
    let hint = match hint {
        Some(Ok(claims)) => Some(claims),
        Some(Err(err)) => {
            tracing::debug!(error.message = %err, "development provider: rejected id_token_hint");
            None
        }
        None => None,
    };

    let mut ended_for = None;
    if let Some(sid) = hint
        .as_ref()
        .and_then(|claims| claims.get("sid"))
        .and_then(Value::as_str)
    {
        let mut st = data.lock();
        if let Some(session) = st.sessions.get(sid) {
            ended_for = Some(session.login.clone());
        }
        st.end_session(sid);
    }
    if let Some(login) = &ended_for {
        tracing::info!(%login, "development provider: session ended");
    }

    let mut notes = Vec::new();
    if param(&params, "id_token_hint").is_some() && hint.is_none() {
        notes.push("The id_token_hint was not a valid ID token from this provider.".to_string());
    }
    if let Some(target) = param(&params, "post_logout_redirect_uri") {
        let hinted_client = hint.as_ref().and_then(audience);
        let requested_client = param(&params, "client_id");
        let client = hinted_client
            .filter(|id| requested_client.is_none_or(|requested| requested == id))
            .and_then(|id| data.client(&id));
        match client {
            Some(client) if client.post_logout_redirect_uris.iter().any(|u| u == target) => {
                let state = param(&params, "state");
                let pairs: Vec<(&str, &str)> = state.map(|s| ("state", s)).into_iter().collect();
                if let Some(location) = url_with_query(target, &pairs) {
                    return redirect(StatusCode::FOUND, &location);
                }
                notes.push("The post_logout_redirect_uri is not a valid URL.".to_string());
            }
            Some(client) => notes.push(format!(
                "The post_logout_redirect_uri \u{201c}{target}\u{201d} is not registered for \
                 client \u{201c}{}\u{201d}, so you were not sent back.",
                client.client_id
            )),
            None => notes.push(
                "A post_logout_redirect_uri was given without a valid id_token_hint for its \
                 client, so you were not sent back."
                    .to_string(),
            ),
        }
    }
    signed_out_page(&notes)
}

fn verify_id_token_hint(
    data: &Shared,
    hint: &str,
) -> Result<Map<String, Value>, jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(Algorithm::RS256);
    // An expired ID token is still a fine hint for logging out.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[data.issuer.as_str()]);
    jsonwebtoken::decode::<Map<String, Value>>(hint, &data.decoding_key, &validation)
        .map(|decoded| decoded.claims)
}

fn audience(claims: &Map<String, Value>) -> Option<String> {
    match claims.get("aud")? {
        Value::String(aud) => Some(aud.clone()),
        Value::Array(auds) => auds.first()?.as_str().map(str::to_string),
        _ => None,
    }
}

// ------------------------------------------------------------------------------------------
// HTML
// ------------------------------------------------------------------------------------------

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
padding:24px;background:#f1f5f9;color:#0f172a;\
font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif}\
main{width:100%;max-width:460px;background:#fff;border-radius:16px;padding:32px;\
box-shadow:0 12px 32px rgba(15,23,42,.08),0 1px 3px rgba(15,23,42,.06)}\
.brand{margin:0 0 8px;font-size:12px;font-weight:600;letter-spacing:.08em;\
text-transform:uppercase;color:#64748b}\
h1{margin:0 0 6px;font-size:22px;line-height:1.3}\
.lead{margin:0 0 20px;color:#475569}\
.notice{margin:0 0 20px;padding:12px 14px;border-radius:10px;font-size:14px;\
background:#fffbeb;border:1px solid #fcd34d;color:#78350f}\
.problem{margin:0 0 16px;padding:12px 14px;border-radius:10px;\
background:#fef2f2;border:1px solid #fca5a5;color:#7f1d1d}\
.accounts{display:flex;flex-direction:column;gap:10px;margin:0 0 20px}\
form{margin:0}\
.account button{display:block;width:100%;padding:12px 16px;text-align:left;cursor:pointer;\
font:inherit;color:inherit;background:#fff;border:1px solid #cbd5e1;border-radius:10px;\
transition:border-color .15s,box-shadow .15s}\
.account button:hover,.account button:focus-visible{outline:none;border-color:#2563eb;\
box-shadow:0 0 0 3px rgba(37,99,235,.18)}\
.login{display:block;font-weight:600}\
.desc{display:block;font-size:14px;color:#64748b}\
.link{padding:0;border:0;background:none;cursor:pointer;font:inherit;font-size:14px;\
color:#475569;text-decoration:underline}\
.empty{color:#64748b;font-style:italic}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;\
background:#f1f5f9;padding:1px 5px;border-radius:4px;word-break:break-all}\
a{color:#2563eb}\
footer{margin-top:20px;font-size:13px;color:#94a3b8}";

/// Escapes text for use in HTML element content and quoted attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Wraps `body` (already escaped HTML) in a page; `title` is escaped here.
fn html_response(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main>{body}<footer>Development provider built into \
         <code>clearance demo</code>. Not for real users.</footer></main></body></html>",
        title = escape_html(title)
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .body(page)
}

fn sign_in_page(data: &Shared, client_id: &str, request_id: &str) -> HttpResponse {
    let request_id = escape_html(request_id);
    let mut accounts = String::new();
    for account in &data.accounts {
        accounts.push_str(&format!(
            "<form class=\"account\" method=\"post\" action=\"/authorize/login\">\
             <input type=\"hidden\" name=\"request\" value=\"{request_id}\">\
             <input type=\"hidden\" name=\"login\" value=\"{login}\">\
             <button type=\"submit\"><span class=\"login\">{login}</span>\
             <span class=\"desc\">{description}</span></button></form>",
            login = escape_html(&account.login),
            description = escape_html(&account.description),
        ));
    }
    if accounts.is_empty() {
        accounts.push_str("<p class=\"empty\">No demo accounts are configured.</p>");
    }
    let body = format!(
        "<p class=\"brand\">Clearance &middot; development sign-in</p>\
         <h1>Choose a demo account</h1>\
         <p class=\"lead\"><code>{client}</code> wants you to sign in.</p>\
         <p class=\"notice\"><strong>Development provider, no passwords.</strong> \
         Anyone who can reach this loopback address can sign in as any account below. \
         Pick one to see how Clearance treats that kind of person.</p>\
         <div class=\"accounts\">{accounts}</div>\
         <form method=\"post\" action=\"/authorize/cancel\">\
         <input type=\"hidden\" name=\"request\" value=\"{request_id}\">\
         <button class=\"link\" type=\"submit\">Cancel and return to the application</button>\
         </form>",
        client = escape_html(client_id),
    );
    html_response(StatusCode::OK, "Sign in \u{b7} Clearance demo", &body)
}

fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!(
        "<p class=\"brand\">Clearance &middot; development sign-in</p>\
         <h1>This sign-in request cannot be completed</h1>\
         <p class=\"problem\">{}</p>\
         <p class=\"lead\">Start again from the application. If this keeps happening, check \
         the client registration of the demo provider.</p>",
        escape_html(message)
    );
    html_response(status, "Sign-in problem \u{b7} Clearance demo", &body)
}

fn signed_out_page(notes: &[String]) -> HttpResponse {
    let notes: String = notes
        .iter()
        .map(|note| format!("<p class=\"problem\">{}</p>", escape_html(note)))
        .collect();
    let body = format!(
        "<p class=\"brand\">Clearance &middot; development provider</p>\
         <h1>You are signed out</h1>\
         <p class=\"lead\">Your session with the development provider has ended. You can \
         close this tab or go back to the application to sign in again.</p>{notes}"
    );
    html_response(StatusCode::OK, "Signed out \u{b7} Clearance demo", &body)
}

// ------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------

/// Parses `application/x-www-form-urlencoded` data, rejecting repeated parameters.
fn parse_params(input: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(input) {
        if params
            .insert(key.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(format!("The parameter {key} was given more than once."));
        }
    }
    Ok(params)
}

/// A parameter's value, treating an empty value as absent.
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

fn url_with_query(base: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(base).ok()?;
    if !pairs.is_empty() {
        let mut query = url.query_pairs_mut();
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
    }
    Some(url.into())
}

fn redirect(status: StatusCode, location: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn random_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn deadline(ttl: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(ttl)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 60 * 60)))
        .unwrap_or(now)
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::dev::ServiceResponse;
    use actix_web::test as actix_test;

    const ISSUER: &str = "http://127.0.0.1:9999";
    const CLIENT_ID: &str = "clearance-demo";
    const CLIENT_SECRET: &str = "demo-secret";
    const REDIRECT_URI: &str = "http://127.0.0.1:8080/oidc/callback";
    const POST_LOGOUT_URI: &str = "http://127.0.0.1:8080/signed-out";

    fn config(bind: SocketAddr) -> DevProviderConfig {
        let claims = json!({
            "sub": "alice-0001",
            "email": "alice@example.test",
            "email_verified": true,
            "name": "Alice Example",
            "groups": ["staff", "lab"],
            "employee_type": "employee",
            "manager": "bob",
        });
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        DevProviderConfig {
            bind,
            accounts: vec![
                DevAccount {
                    login: "alice".into(),
                    description: "Induction current <b>&</b> \"quoted\"".into(),
                    claims,
                },
                DevAccount {
                    login: "nobody".into(),
                    description: "Only a login".into(),
                    claims: Map::new(),
                },
            ],
            clients: vec![DevClient {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                redirect_uris: vec![REDIRECT_URI.into()],
                post_logout_redirect_uris: vec![POST_LOGOUT_URI.into()],
            }],
            access_token_ttl: Duration::from_secs(300),
            id_token_ttl: Duration::from_secs(600),
        }
    }

    fn shared() -> web::Data<Shared> {
        let cfg = config("127.0.0.1:0".parse().expect("addr"));
        web::Data::new(Shared::new(ISSUER.into(), cfg).expect("shared"))
    }

    // actix-http's `Request` type cannot be named here (no direct dependency), so the
    // helpers that drive an app are macros.
    macro_rules! app {
        ($data:expr) => {
            actix_test::init_service(App::new().configure(app_config($data))).await
        };
    }

    fn pkce() -> (String, String) {
        let verifier = random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        (verifier, challenge)
    }

    fn form(pairs: &[(&str, &str)]) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    }

    fn authorize_uri(pairs: &[(&str, &str)]) -> String {
        format!("/authorize?{}", form(pairs))
    }

    fn standard_authorize(challenge: &str) -> String {
        authorize_uri(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid email profile groups"),
            ("state", "state-123"),
            ("nonce", "nonce-456"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
    }

    fn basic_auth() -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        )
    }

    async fn body_string<B: MessageBody>(resp: ServiceResponse<B>) -> String {
        String::from_utf8(actix_test::read_body(resp).await.to_vec()).expect("utf8")
    }

    fn location(resp: &ServiceResponse) -> url::Url {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .expect("location")
            .to_str()
            .expect("ascii");
        url::Url::parse(loc).expect("url")
    }

    fn query(url: &url::Url) -> HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    fn extract_request_id(html: &str) -> String {
        let marker = "name=\"request\" value=\"";
        let start = html.find(marker).expect("request id") + marker.len();
        let end = html[start..].find('"').expect("quote") + start;
        html[start..end].to_string()
    }

    /// Runs authorize + login; evaluates to the authorization code.
    macro_rules! obtain_code {
        ($app:expr, $challenge:expr) => {{
            let req = actix_test::TestRequest::get()
                .uri(&standard_authorize($challenge))
                .to_request();
            let resp = actix_test::call_service($app, req).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let html = body_string(resp).await;
            let request_id = extract_request_id(&html);
            let req = actix_test::TestRequest::post()
                .uri("/authorize/login")
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(form(&[("request", &request_id), ("login", "alice")]))
                .to_request();
            let resp = actix_test::call_service($app, req).await;
            assert_eq!(resp.status(), StatusCode::SEE_OTHER);
            let loc = location(&resp);
            assert!(loc.as_str().starts_with(REDIRECT_URI));
            let q = query(&loc);
            assert_eq!(q.get("state").map(String::as_str), Some("state-123"));
            assert_eq!(q.get("iss").map(String::as_str), Some(ISSUER));
            q.get("code").expect("code").clone()
        }};
    }

    fn token_request(pairs: &[(&str, &str)]) -> actix_test::TestRequest {
        actix_test::TestRequest::post()
            .uri("/token")
            .insert_header((header::AUTHORIZATION, basic_auth()))
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form(pairs))
    }

    /// Posts to the token endpoint with Basic auth; evaluates to (status, JSON body).
    macro_rules! token_call {
        ($app:expr, $pairs:expr) => {
            json_body(actix_test::call_service($app, token_request($pairs).to_request()).await)
                .await
        };
    }

    async fn json_body(resp: ServiceResponse) -> (StatusCode, Value) {
        let status = resp.status();
        let body = actix_test::read_body(resp).await;
        (status, serde_json::from_slice(&body).expect("json"))
    }

    fn verify_id_token(id_token: &str) -> Map<String, Value> {
        let header = jsonwebtoken::decode_header(id_token).expect("header");
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(DEV_SIGNING_KEY_KID));
        let key = DecodingKey::from_rsa_components(DEV_SIGNING_KEY_N, DEV_SIGNING_KEY_E)
            .expect("jwk key");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
            .expect("valid id token")
            .claims
    }

    /// Authorize, sign in and redeem the code; evaluates to the token response.
    macro_rules! full_code_flow {
        ($app:expr) => {{
            let (verifier, challenge) = pkce();
            let code = obtain_code!($app, &challenge);
            let (status, body) = token_call!(
                $app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                ]
            );
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }};
    }

    #[test]
    fn embedded_jwk_matches_pem() {
        let encoding = EncodingKey::from_rsa_pem(DEV_SIGNING_KEY_PEM.as_bytes()).expect("pem");
        let decoding = DecodingKey::from_rsa_components(DEV_SIGNING_KEY_N, DEV_SIGNING_KEY_E)
            .expect("components");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &json!({ "sub": "probe", "exp": chrono::Utc::now().timestamp() + 60 }),
            &encoding,
        )
        .expect("sign");
        let decoded = jsonwebtoken::decode::<Map<String, Value>>(
            &token,
            &decoding,
            &Validation::new(Algorithm::RS256),
        )
        .expect("the embedded n/e must verify signatures made with the embedded PEM");
        assert_eq!(decoded.claims["sub"], "probe");

        // A token signed with another key must not verify (the check above is meaningful).
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(
            jsonwebtoken::decode::<Map<String, Value>>(
                &tampered,
                &decoding,
                &Validation::new(Algorithm::RS256)
            )
            .is_err()
        );
    }

    #[test]
    fn kid_is_rfc7638_thumbprint() {
        let canonical = format!(
            "{{\"e\":\"{DEV_SIGNING_KEY_E}\",\"kty\":\"RSA\",\"n\":\"{DEV_SIGNING_KEY_N}\"}}"
        );
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        assert_eq!(thumbprint, DEV_SIGNING_KEY_KID);
    }

    #[test]
    fn escape_html_escapes_everything_dangerous() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn at_hash_matches_spec_example_shape() {
        // Left-most 128 bits => 16 bytes => 22 base64url characters without padding.
        let hash = at_hash("some-access-token");
        assert_eq!(hash.len(), 22);
        let digest = Sha256::digest(b"some-access-token");
        assert_eq!(URL_SAFE_NO_PAD.decode(&hash).expect("b64"), &digest[..16]);
    }

    #[actix_web::test]
    async fn discovery_document() {
        let app = app!(shared());
        let req = actix_test::TestRequest::get()
            .uri("/.well-known/openid-configuration")
            .to_request();
        let (status, doc) = json_body(actix_test::call_service(&app, req).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["authorization_endpoint"], format!("{ISSUER}/authorize"));
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
        assert_eq!(doc["userinfo_endpoint"], format!("{ISSUER}/userinfo"));
        assert_eq!(doc["jwks_uri"], format!("{ISSUER}/jwks"));
        assert_eq!(doc["end_session_endpoint"], format!("{ISSUER}/end_session"));
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["subject_types_supported"], json!(["public"]));
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post"])
        );
        let claims = doc["claims_supported"].as_array().expect("claims");
        for claim in ["employee_type", "manager", "groups", "email"] {
            assert!(claims.contains(&json!(claim)), "{claim}");
        }

        let req = actix_test::TestRequest::get().uri("/jwks").to_request();
        let (status, jwks) = json_body(actix_test::call_service(&app, req).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
        assert_eq!(jwks["keys"][0]["use"], "sig");
        assert_eq!(jwks["keys"][0]["alg"], "RS256");
        assert_eq!(jwks["keys"][0]["kid"], DEV_SIGNING_KEY_KID);
        assert_eq!(jwks["keys"][0]["n"], DEV_SIGNING_KEY_N);
        assert_eq!(jwks["keys"][0]["e"], DEV_SIGNING_KEY_E);
    }

    #[actix_web::test]
    async fn sign_in_page_lists_accounts_escaped() {
        let app = app!(shared());
        let (_, challenge) = pkce();
        let req = actix_test::TestRequest::get()
            .uri(&standard_authorize(&challenge))
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = body_string(resp).await;
        assert!(html.contains("alice"));
        assert!(html.contains("Induction current &lt;b&gt;&amp;&lt;/b&gt; &quot;quoted&quot;"));
        assert!(!html.contains("<b>&</b>"));
        assert!(html.contains("no passwords"));
        assert!(html.contains("action=\"/authorize/login\""));
        // The request itself is not re-posted: only the opaque id.
        assert!(!html.contains("nonce-456"));
        assert!(!html.contains(&challenge));
    }

    #[actix_web::test]
    async fn full_code_flow_with_pkce() {
        let app = app!(shared());
        let tokens = full_code_flow!(&app);
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 300);
        let access_token = tokens["access_token"].as_str().expect("access token");
        assert!(tokens["refresh_token"].as_str().is_some());
        let claims = verify_id_token(tokens["id_token"].as_str().expect("id token"));
        assert_eq!(claims["nonce"], "nonce-456");
        assert_eq!(claims["at_hash"], json!(at_hash(access_token)));
        let digest = Sha256::digest(access_token.as_bytes());
        assert_eq!(
            claims["at_hash"],
            json!(URL_SAFE_NO_PAD.encode(&digest[..16]))
        );
        assert_eq!(claims["sub"], "alice-0001");
        assert_eq!(claims["aud"], CLIENT_ID);
        assert_eq!(claims["email"], "alice@example.test");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Alice Example");
        assert_eq!(claims["groups"], json!(["staff", "lab"]));
        assert_eq!(claims["employee_type"], "employee");
        assert_eq!(claims["manager"], "bob");
        for claim in ["iat", "exp", "auth_time"] {
            assert!(claims[claim].is_i64(), "{claim}");
        }
        let iat = claims["iat"].as_i64().unwrap_or_default();
        assert_eq!(claims["exp"].as_i64().unwrap_or_default() - iat, 600);
    }

    #[actix_web::test]
    async fn client_secret_post_is_accepted_and_bad_secret_rejected() {
        let app = app!(shared());
        let (verifier, challenge) = pkce();
        let code = obtain_code!(&app, &challenge);
        let bad = actix_test::TestRequest::post()
            .uri("/token")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
            ]))
            .to_request();
        let resp = actix_test::call_service(&app, bad).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
        let (_, body) = json_body(resp).await;
        assert_eq!(body["error"], "invalid_client");

        let good = actix_test::TestRequest::post()
            .uri("/token")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ]))
            .to_request();
        let (status, body) = json_body(actix_test::call_service(&app, good).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[actix_web::test]
    async fn code_replay_is_rejected_and_revokes_tokens() {
        let app = app!(shared());
        let (verifier, challenge) = pkce();
        let code = obtain_code!(&app, &challenge);
        let pairs = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ];
        let (status, first) =
            json_body(actix_test::call_service(&app, token_request(&pairs).to_request()).await)
                .await;
        assert_eq!(status, StatusCode::OK);
        let (status, second) =
            json_body(actix_test::call_service(&app, token_request(&pairs).to_request()).await)
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(second["error"], "invalid_grant");

        // The tokens from the first redemption were revoked.
        let access = first["access_token"].as_str().expect("access");
        let req = actix_test::TestRequest::get()
            .uri("/userinfo")
            .insert_header((header::AUTHORIZATION, format!("Bearer {access}")))
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }

    #[actix_web::test]
    async fn bad_pkce_verifier_is_rejected() {
        let app = app!(shared());
        let (_, challenge) = pkce();
        let code = obtain_code!(&app, &challenge);
        let (other_verifier, _) = pkce();
        let (status, body) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &other_verifier),
                ])
                .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");

        // A missing verifier fails too.
        let (_, challenge) = pkce();
        let code = obtain_code!(&app, &challenge);
        let (status, body) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                ])
                .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }

    #[actix_web::test]
    async fn wrong_redirect_uri_is_rejected() {
        let app = app!(shared());

        // At the token endpoint.
        let (verifier, challenge) = pkce();
        let code = obtain_code!(&app, &challenge);
        let (status, body) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "http://127.0.0.1:8080/other"),
                    ("code_verifier", &verifier),
                ])
                .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");

        // At the authorization endpoint: an error page, never a redirect.
        let req = actix_test::TestRequest::get()
            .uri(&authorize_uri(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", "http://evil.test/cb"),
                ("scope", "openid"),
                ("state", "s"),
                ("nonce", "n"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ]))
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(!resp.headers().contains_key(header::LOCATION));
        let html = body_string(resp).await;
        assert!(html.contains("not registered"));
    }

    #[actix_web::test]
    async fn authorize_rejects_bad_requests() {
        let app = app!(shared());
        let (_, challenge) = pkce();

        // Unknown client: 400 page.
        let req = actix_test::TestRequest::get()
            .uri(&authorize_uri(&[
                ("client_id", "<script>"),
                ("redirect_uri", REDIRECT_URI),
            ]))
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let html = body_string(resp).await;
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));

        // Malformed / duplicated parameters: 400 page.
        let req = actix_test::TestRequest::get()
            .uri("/authorize?client_id=a&client_id=b")
            .to_request();
        assert_eq!(
            actix_test::call_service(&app, req).await.status(),
            StatusCode::BAD_REQUEST
        );

        // Valid client and redirect: errors come back as redirects.
        let base = [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid"),
            ("state", "s1"),
            ("nonce", "n1"),
        ];
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "invalid_request"), // no PKCE
            (
                vec![
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "plain"),
                ],
                "invalid_request",
            ),
            (
                vec![("code_challenge", challenge.as_str())],
                "invalid_request",
            ),
        ];
        for (extra, expected) in cases {
            let mut pairs = base.to_vec();
            pairs.extend(extra);
            let req = actix_test::TestRequest::get()
                .uri(&authorize_uri(&pairs))
                .to_request();
            let resp = actix_test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::FOUND);
            let q = query(&location(&resp));
            assert_eq!(q.get("error").map(String::as_str), Some(expected));
            assert_eq!(q.get("state").map(String::as_str), Some("s1"));
            assert_eq!(q.get("iss").map(String::as_str), Some(ISSUER));
        }

        let with = |key: &'static str, value: &'static str| {
            let mut pairs: Vec<(&str, &str)> =
                base.iter().copied().filter(|(k, _)| *k != key).collect();
            if !value.is_empty() {
                pairs.push((key, value));
            }
            pairs.push(("code_challenge", challenge.as_str()));
            pairs.push(("code_challenge_method", "S256"));
            authorize_uri(&pairs)
        };
        for (uri, expected) in [
            (with("response_type", "token"), "unsupported_response_type"),
            (with("scope", "email"), "invalid_scope"),
            (with("nonce", ""), "invalid_request"),
            (with("state", ""), "invalid_request"),
        ] {
            let req = actix_test::TestRequest::get().uri(&uri).to_request();
            let resp = actix_test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::FOUND, "{uri}");
            let q = query(&location(&resp));
            assert_eq!(q.get("error").map(String::as_str), Some(expected), "{uri}");
        }
    }

    #[actix_web::test]
    async fn login_with_unknown_request_is_a_400_page() {
        let app = app!(shared());
        let req = actix_test::TestRequest::post()
            .uri("/authorize/login")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form(&[("request", "nope"), ("login", "alice")]))
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(body_string(resp).await.contains("expired"));
    }

    #[actix_web::test]
    async fn cancel_redirects_with_access_denied() {
        let app = app!(shared());
        let (_, challenge) = pkce();
        let req = actix_test::TestRequest::get()
            .uri(&standard_authorize(&challenge))
            .to_request();
        let html = body_string(actix_test::call_service(&app, req).await).await;
        let request_id = extract_request_id(&html);
        let req = actix_test::TestRequest::post()
            .uri("/authorize/cancel")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form(&[("request", &request_id)]))
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let q = query(&location(&resp));
        assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
        assert_eq!(q.get("state").map(String::as_str), Some("state-123"));
    }

    #[actix_web::test]
    async fn refresh_grant_rotates_refresh_token() {
        let app = app!(shared());
        let tokens = full_code_flow!(&app);
        let refresh = tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_string();
        let (status, refreshed) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{refreshed}");
        let new_refresh = refreshed["refresh_token"].as_str().expect("new refresh");
        assert_ne!(new_refresh, refresh);
        let new_access = refreshed["access_token"].as_str().expect("new access");
        assert_ne!(new_access, tokens["access_token"].as_str().expect("access"));
        let claims = verify_id_token(refreshed["id_token"].as_str().expect("id token"));
        assert!(claims.get("nonce").is_none());
        assert_eq!(claims["at_hash"], json!(at_hash(new_access)));
        assert_eq!(claims["sub"], "alice-0001");

        // The old refresh token is spent.
        let (status, body) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");

        // The rotated one works.
        let (status, _) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", new_refresh),
                ])
                .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[actix_web::test]
    async fn unsupported_grant_type_and_missing_auth() {
        let app = app!(shared());
        let (status, body) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[("grant_type", "password")]).to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "unsupported_grant_type");

        let req = actix_test::TestRequest::post()
            .uri("/token")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
            ]))
            .to_request();
        let (status, body) = json_body(actix_test::call_service(&app, req).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "invalid_client");
    }

    #[actix_web::test]
    async fn userinfo_good_and_bad_token() {
        let app = app!(shared());
        let tokens = full_code_flow!(&app);
        let access = tokens["access_token"].as_str().expect("access");

        for method in [
            actix_test::TestRequest::get(),
            actix_test::TestRequest::post(),
        ] {
            let req = method
                .uri("/userinfo")
                .insert_header((header::AUTHORIZATION, format!("Bearer {access}")))
                .to_request();
            let (status, info) = json_body(actix_test::call_service(&app, req).await).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(info["sub"], "alice-0001");
            assert_eq!(info["email"], "alice@example.test");
            assert_eq!(info["employee_type"], "employee");
            assert_eq!(info["manager"], "bob");
            assert_eq!(info["groups"], json!(["staff", "lab"]));
        }

        let req = actix_test::TestRequest::get()
            .uri("/userinfo")
            .insert_header((header::AUTHORIZATION, "Bearer not-a-token"))
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .expect("www-authenticate")
            .to_str()
            .expect("ascii");
        assert!(challenge.starts_with("Bearer"));
        assert!(challenge.contains("invalid_token"));

        let req = actix_test::TestRequest::get().uri("/userinfo").to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[actix_web::test]
    async fn end_session_redirects_with_state_and_ends_session() {
        let app = app!(shared());
        let tokens = full_code_flow!(&app);
        let id_token = tokens["id_token"].as_str().expect("id token");
        let refresh = tokens["refresh_token"].as_str().expect("refresh");

        let uri = format!(
            "/end_session?{}",
            form(&[
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "bye-1"),
            ])
        );
        let resp =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(&uri).to_request())
                .await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let loc = location(&resp);
        assert!(loc.as_str().starts_with(POST_LOGOUT_URI));
        assert_eq!(query(&loc).get("state").map(String::as_str), Some("bye-1"));

        // The provider session is over: its refresh token no longer works.
        let (status, body) = json_body(
            actix_test::call_service(
                &app,
                token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }

    #[actix_web::test]
    async fn end_session_without_valid_redirect_shows_page() {
        let app = app!(shared());
        let tokens = full_code_flow!(&app);
        let id_token = tokens["id_token"].as_str().expect("id token");

        // Unregistered redirect: no redirect, signed-out page.
        let uri = format!(
            "/end_session?{}",
            form(&[
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", "http://evil.test/"),
                ("state", "x"),
            ])
        );
        let resp =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(&uri).to_request())
                .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(!resp.headers().contains_key(header::LOCATION));
        assert!(body_string(resp).await.contains("signed out"));

        // Forged hint: no redirect either.
        let forged = format!("{}x", &id_token[..id_token.len() - 1]);
        let uri = format!(
            "/end_session?{}",
            form(&[
                ("id_token_hint", &forged),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ])
        );
        let resp =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(&uri).to_request())
                .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(!resp.headers().contains_key(header::LOCATION));

        // No parameters at all.
        let resp = actix_test::call_service(
            &app,
            actix_test::TestRequest::get()
                .uri("/end_session")
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn expired_id_token_hint_still_accepted() {
        let data = shared();
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(DEV_SIGNING_KEY_KID.into());
        let hint = jsonwebtoken::encode(
            &header,
            &json!({
                "iss": ISSUER, "aud": CLIENT_ID, "sub": "alice-0001",
                "iat": now - 7200, "exp": now - 3600,
            }),
            &data.encoding_key,
        )
        .expect("sign");
        let app = app!(data);
        let uri = format!(
            "/end_session?{}",
            form(&[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ])
        );
        let resp =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(&uri).to_request())
                .await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(location(&resp).as_str(), POST_LOGOUT_URI);
    }

    #[actix_web::test]
    async fn non_loopback_bind_is_refused() {
        for addr in [
            "0.0.0.0:0",
            "192.0.2.10:8080",
            "[::]:0",
            "[::ffff:127.0.0.1]:0",
        ] {
            let cfg = config(addr.parse().expect("addr"));
            match start(cfg).await {
                Err(DevProviderError::NotLoopback(refused)) => {
                    assert_eq!(refused.to_string(), addr);
                }
                other => panic!("{addr}: expected NotLoopback, got {other:?}"),
            }
        }
    }

    #[actix_web::test]
    async fn starts_on_port_zero_serves_and_stops() {
        let provider = start(config("127.0.0.1:0".parse().expect("addr")))
            .await
            .expect("start");
        let addr = provider.addr();
        assert_ne!(addr.port(), 0);
        assert_eq!(
            provider.issuer(),
            format!("http://127.0.0.1:{}", addr.port())
        );

        let response = actix_web::rt::task::spawn_blocking(move || {
            use std::io::{Read as _, Write as _};
            let mut stream = std::net::TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(
                b"GET /.well-known/openid-configuration HTTP/1.1\r\n\
                  Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )?;
            let mut out = String::new();
            stream.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })
        .await
        .expect("join")
        .expect("http");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains(&format!("\"issuer\":\"{}\"", provider.issuer())));

        provider.stop().await;
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
