//! Bearer tokens for API clients: `Authorization: Bearer <JWT access token>` (RFC 6750, RFC 9068).
//!
//! [`bearer_token`] takes the token out of the header value, strictly. [`BearerVerifier`] checks
//! it against the issuer's published keys (JWKS):
//!
//! - The algorithm is pinned by the KEY, never taken from the token: a key's algorithm is its
//!   `alg` member, else derived from its type (RSA → RS256, EC P-256 → ES256, P-384 → ES384,
//!   OKP Ed25519 → EdDSA). A token whose header names another algorithm is refused; `none` and
//!   the HMAC (`HS*`) algorithms are refused outright, so neither an unsigned token nor one
//!   "signed" with the public key as an HMAC secret gets through.
//! - Only signing keys are used (no `use`, or `use` = `sig`); keys that cannot verify anything
//!   (encryption keys, symmetric keys, unknown types or curves) are skipped.
//! - The key is chosen by `kid`; a token without `kid` is accepted only while exactly one
//!   usable key exists.
//! - An unknown `kid` refetches the JWKS, at most once per `refetch_cooldown` however many
//!   requests ask at the same time; the key set is also reloaded when older than
//!   [`KEYS_MAX_AGE`], so that a key the issuer withdrew stops being trusted.
//! - `iss` must be the configured issuer (a trailing `/` more or less is tolerated), `aud` must
//!   name one of the configured audiences, `exp` is required, `nbf` is honoured when present,
//!   both with the configured leeway.
//!
//! Tokens are never logged, and never echoed in errors.

use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use url::Url;

/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "clearance";

/// A key set older than this is fetched again before use (when the fetch fails, the old keys
/// stay in use and the next attempt waits for `refetch_cooldown`).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Longest token accepted (bytes). Access tokens with a few claims are well under 4 KiB.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest JWKS document read (bytes).
const MAX_JWKS_LEN: usize = 512 * 1024;
/// Time allowed for one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What tokens must look like to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerConfig {
    /// The issuer identifier `iss` must equal (a trailing `/` difference is tolerated).
    pub issuer: String,
    /// `aud` must contain at least one of these. Empty: every token is refused.
    pub audiences: Vec<String>,
    /// The OpenID client id: a token whose `aud` names it is an ID token (OpenID Connect Core
    /// §2 requires an ID token's `aud` to contain the client id) and is refused.
    pub client_id: String,
    /// Refuse a token whose header `typ` is not `at+jwt` (RFC 9068): for providers that
    /// issue every access token that way (`bearer.require_at_jwt`).
    pub require_at_jwt: bool,
    /// Clock-skew allowance for `exp` and `nbf` (whole seconds are used).
    pub leeway: Duration,
    /// Minimum time between two JWKS refetches caused by unknown `kid`s, and between retries
    /// after a failed fetch.
    pub refetch_cooldown: Duration,
}

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// The `Authorization` header is not `Bearer <token68>`: HTTP 400 (`invalid_request`).
    #[error("malformed bearer credentials: {0}")]
    Malformed(String),
    /// The token is not acceptable (signature, algorithm, key, claims, expiry): HTTP 401
    /// (`invalid_token`).
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
    /// The issuer's keys could not be obtained, so the token could not be checked: HTTP 503.
    /// The message may name internal URLs: log it, do not send it to the client.
    #[error("token signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl BearerError {
    /// The `WWW-Authenticate` value to send with the error response, e.g.
    /// `Bearer realm="clearance", error="invalid_token", error_description="the token has expired"`.
    /// [`BearerError::KeysUnavailable`] carries no error code (none of RFC 6750's applies) and a
    /// fixed description.
    pub fn www_authenticate(&self) -> String {
        let (code, description) = match self {
            BearerError::Malformed(d) => (Some("invalid_request"), d.as_str()),
            BearerError::InvalidToken(d) => (Some("invalid_token"), d.as_str()),
            BearerError::KeysUnavailable(_) => {
                (None, "the token signing keys are temporarily unavailable")
            }
        };
        let mut value = format!("Bearer realm=\"{REALM}\"");
        if let Some(code) = code {
            value.push_str(&format!(", error=\"{code}\""));
        }
        let description = quotable(description);
        if !description.is_empty() {
            value.push_str(&format!(", error_description=\"{description}\""));
        }
        value
    }

    /// The HTTP status this error calls for: 400 for [`BearerError::Malformed`] (RFC 6750
    /// §3.1 `invalid_request`), 401 for [`BearerError::InvalidToken`], 503 for
    /// [`BearerError::KeysUnavailable`].
    pub fn status_code(&self) -> u16 {
        match self {
            BearerError::Malformed(_) => 400,
            BearerError::InvalidToken(_) => 401,
            BearerError::KeysUnavailable(_) => 503,
        }
    }
}

/// The challenge for a request that sent no credentials at all (RFC 6750 §3.1: no error code).
pub fn challenge() -> String {
    format!("Bearer realm=\"{REALM}\"")
}

/// Keeps the characters RFC 6750 allows in `error_description` (%x20-21 / %x23-5B / %x5D-7E).
fn quotable(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(*c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

/// Parses an `Authorization` header value strictly: the scheme `Bearer` (any case, RFC 7235),
/// exactly one space, then a token68 (RFC 6750 `b64token`: `A-Z a-z 0-9 - . _ ~ + /` followed
/// by any number of `=`), and nothing after it.
pub fn bearer_token(header_value: &str) -> Result<&str, BearerError> {
    let Some((scheme, token)) = header_value.split_once(' ') else {
        return Err(BearerError::Malformed(
            "expected the Bearer scheme, one space and a token".into(),
        ));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed(
            "the authorization scheme must be Bearer".into(),
        ));
    }
    if token.is_empty() {
        return Err(BearerError::Malformed("the bearer token is missing".into()));
    }
    if !is_token68(token) {
        return Err(BearerError::Malformed(
            "the bearer token must be one token68 value after exactly one space".into(),
        ));
    }
    Ok(token)
}

fn is_token68(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// A key from the JWKS that can verify signatures, with the one algorithm it may be used with.
struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys of one JWKS URI. `generation` increases with every change (URI set, keys loaded),
/// so that a fetch can tell whether someone else already replaced what it looked at.
struct KeySet {
    uri: Option<Url>,
    keys: Vec<Arc<VerifyingKey>>,
    /// `None`: not loaded (yet) from `uri`.
    fetched_at: Option<Instant>,
    generation: u64,
}

/// Fetch bookkeeping, behind the async mutex that also serializes fetches.
#[derive(Default)]
struct FetchState {
    /// The last refetch caused by an unknown `kid`.
    last_refetch: Option<Instant>,
    /// The last failed fetch: the key-set generation it was for, when, and why.
    last_failure: Option<(u64, Instant, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Nothing loaded from the current URI yet.
    Load,
    /// The loaded keys are older than [`KEYS_MAX_AGE`].
    Stale,
    /// A token names a `kid` the loaded keys do not have.
    UnknownKid,
}

/// What the token's protected header says, checked before any key is looked at.
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
}

/// Verifies JWT access tokens against the issuer's JWKS. `Send + Sync`; share it behind an
/// `Arc`. Keys are fetched lazily, on the first [`BearerVerifier::verify`] after
/// [`BearerVerifier::set_jwks_uri`].
pub struct BearerVerifier {
    config: BearerConfig,
    issuers: Vec<String>,
    http: reqwest::Client,
    /// [`KEYS_MAX_AGE`], shorter in tests.
    keys_max_age: Duration,
    keys: ArcSwap<KeySet>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl fmt::Debug for BearerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.load();
        f.debug_struct("BearerVerifier")
            .field("config", &self.config)
            .field("jwks_uri", &keys.uri.as_ref().map(Url::as_str))
            .field("keys", &keys.keys.len())
            .field("loaded", &keys.fetched_at.is_some())
            .finish()
    }
}

impl BearerVerifier {
    /// A verifier with no keys yet: set the JWKS URI (learned from discovery) before use.
    pub fn new(config: BearerConfig, http: reqwest::Client) -> Self {
        let bare = config.issuer.trim_end_matches('/');
        let mut issuers = vec![config.issuer.clone()];
        for variant in [bare.to_owned(), format!("{bare}/")] {
            if !variant.is_empty() && !issuers.contains(&variant) {
                issuers.push(variant);
            }
        }
        BearerVerifier {
            config,
            issuers,
            http,
            keys_max_age: KEYS_MAX_AGE,
            keys: ArcSwap::from_pointee(KeySet {
                uri: None,
                keys: Vec::new(),
                fetched_at: None,
                generation: 0,
            }),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    pub fn config(&self) -> &BearerConfig {
        &self.config
    }

    /// The JWKS URI in use, if set.
    pub fn jwks_uri(&self) -> Option<Url> {
        self.keys.load().uri.clone()
    }

    /// Sets the JWKS URI (from the issuer's discovery document). A different URI than before
    /// forgets the keys loaded so far; they are fetched from the new URI on the next
    /// verification. The same URI again changes nothing.
    pub fn set_jwks_uri(&self, uri: Url) {
        self.keys.rcu(|current| {
            if current.uri.as_ref() == Some(&uri) {
                Arc::clone(current)
            } else {
                Arc::new(KeySet {
                    uri: Some(uri.clone()),
                    keys: Vec::new(),
                    fetched_at: None,
                    generation: current.generation + 1,
                })
            }
        });
    }

    /// Verifies a JWT access token (as returned by [`bearer_token`]) and returns all its claims.
    ///
    /// An ID token is never an access token: one whose `aud` names the client id, that carries
    /// `nonce` or `at_hash`, whose `typ` claim says `ID` (Keycloak), or, with
    /// `require_at_jwt`, whose header `typ` is not `at+jwt`, is refused whatever else it says.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, BearerError> {
        let claims = self
            .decode(token, &self.config.audiences, &["exp", "iss", "aud"])
            .await?;
        let typ = inspect_header(token)?.typ;
        refuse_id_token(&claims, typ.as_deref(), &self.config)?;
        Ok(claims)
    }

    /// Verifies an OpenID Connect back-channel logout token: signed by the issuer (key by `kid`,
    /// algorithm pinned from the key), `iss`, `aud` containing `client_id`, `exp` and `nbf`
    /// when present. The logout-specific claims are checked by `auth::logout`.
    pub async fn verify_logout_token(
        &self,
        token: &str,
        client_id: &str,
    ) -> Result<Map<String, Value>, BearerError> {
        self.decode(token, &[client_id.to_owned()], &["iss", "aud"])
            .await
    }

    async fn decode(
        &self,
        token: &str,
        audiences: &[String],
        required: &[&str],
    ) -> Result<Map<String, Value>, BearerError> {
        let header = inspect_header(token)?;
        let key = self.key_for(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(required);
        validation.set_issuer(&self.issuers);
        validation.set_audience(audiences);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|err| BearerError::InvalidToken(describe(err.kind())))
    }

    /// The key for a token's `kid` and `alg`, loading or refetching the JWKS as needed.
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, BearerError> {
        let mut set = self.keys.load_full();
        if set.fetched_at.is_none() {
            self.refresh(set.generation, Reason::Load).await?;
            set = self.keys.load_full();
            if set.fetched_at.is_none() {
                return Err(BearerError::KeysUnavailable(
                    "the token signing keys are not loaded".into(),
                ));
            }
        } else if set
            .fetched_at
            .is_some_and(|at| at.elapsed() >= self.keys_max_age)
        {
            // Errors are logged in refresh; the keys we have stay in use meanwhile.
            let _ = self.refresh(set.generation, Reason::Stale).await;
            set = self.keys.load_full();
        }
        if let Some(key) = select(&set, kid, alg)? {
            return Ok(key);
        }
        self.refresh(set.generation, Reason::UnknownKid).await?;
        let set = self.keys.load_full();
        select(&set, kid, alg)?.ok_or_else(|| {
            BearerError::InvalidToken(match kid {
                Some(_) => "no signing key of the issuer has the token's kid".into(),
                None => "the issuer publishes no usable signing key".into(),
            })
        })
    }

    /// Fetches the JWKS unless someone else changed the key set since the caller looked at
    /// generation `seen`, or the cooldown says not yet. Concurrent callers queue on the mutex and
    /// then find the work done.
    async fn refresh(&self, seen: u64, reason: Reason) -> Result<(), BearerError> {
        let mut state = if reason == Reason::Stale {
            // Someone is already fetching: keep using the current keys rather than wait.
            match self.fetch.try_lock() {
                Ok(state) => state,
                Err(_) => return Ok(()),
            }
        } else {
            self.fetch.lock().await
        };
        let current = self.keys.load_full();
        if current.generation != seen {
            return Ok(());
        }
        let Some(uri) = current.uri.clone() else {
            return Err(BearerError::KeysUnavailable(
                "the issuer's JWKS URI is not known yet".into(),
            ));
        };
        let now = Instant::now();
        let cooling =
            |at: Instant| now.saturating_duration_since(at) < self.config.refetch_cooldown;
        if let Some((generation, at, why)) = &state.last_failure
            && *generation == current.generation
            && cooling(*at)
        {
            return match reason {
                Reason::Stale => Ok(()),
                Reason::Load | Reason::UnknownKid => Err(BearerError::KeysUnavailable(why.clone())),
            };
        }
        if reason == Reason::UnknownKid {
            if state.last_refetch.is_some_and(cooling) {
                return Ok(());
            }
            state.last_refetch = Some(now);
        }
        tracing::debug!(oidc.jwks_uri = %uri, ?reason, "fetching the token signing keys");
        match self.fetch_keys(&uri).await {
            Ok(keys) => {
                let next = Arc::new(KeySet {
                    uri: Some(uri),
                    keys,
                    fetched_at: Some(Instant::now()),
                    generation: current.generation + 1,
                });
                // Unless set_jwks_uri replaced the set meanwhile.
                self.keys.rcu(|latest| {
                    if latest.generation == current.generation {
                        Arc::clone(&next)
                    } else {
                        Arc::clone(latest)
                    }
                });
                state.last_failure = None;
                Ok(())
            }
            Err(why) => {
                tracing::warn!(oidc.jwks_uri = %uri, error.message = %why, ?reason, "fetching the token signing keys failed");
                state.last_failure = Some((current.generation, now, why.clone()));
                match reason {
                    Reason::Stale => Ok(()),
                    Reason::Load | Reason::UnknownKid => Err(BearerError::KeysUnavailable(why)),
                }
            }
        }
    }

    /// GETs the JWKS and keeps its usable signing keys. No usable key at all is an error.
    async fn fetch_keys(&self, uri: &Url) -> Result<Vec<Arc<VerifyingKey>>, String> {
        let mut response = self
            .http
            .get(uri.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {uri}: HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_LEN as u64)
        {
            return Err(format!(
                "GET {uri}: the JWKS is larger than {MAX_JWKS_LEN} bytes"
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_LEN {
                return Err(format!(
                    "GET {uri}: the JWKS is larger than {MAX_JWKS_LEN} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let document: Value =
            serde_json::from_slice(&body).map_err(|e| format!("{uri} is not JSON: {e}"))?;
        let Some(entries) = document.get("keys").and_then(Value::as_array) else {
            return Err(format!("{uri} is not a JWK set (no \"keys\" array)"));
        };
        let mut keys = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            match usable_key(entry) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(why) => {
                    let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::debug!(oidc.jwks_uri = %uri, index, kid, why, "skipping a JWKS key");
                }
            }
        }
        if keys.is_empty() {
            return Err(format!("{uri} has no usable signing key"));
        }
        Ok(keys)
    }

    #[cfg(test)]
    fn loaded_kids(&self) -> Vec<Option<String>> {
        self.keys
            .load()
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }
}

/// Chooses the key for a token: by `kid`, else the only key. `Ok(None)`: no such key (a
/// refetch may help). The token's `alg` must be the key's pinned algorithm.
fn select(
    set: &KeySet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Option<Arc<VerifyingKey>>, BearerError> {
    let candidates: Vec<&Arc<VerifyingKey>> = match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect(),
        None => match set.keys.as_slice() {
            [] => Vec::new(),
            [only] => vec![only],
            _ => {
                return Err(BearerError::InvalidToken(
                    "the token has no kid and the issuer has several keys".into(),
                ));
            }
        },
    };
    if candidates.is_empty() {
        return Ok(None);
    }
    match candidates.into_iter().find(|k| k.alg == alg) {
        Some(key) => Ok(Some(Arc::clone(key))),
        None => Err(BearerError::InvalidToken(
            "the token's alg is not the algorithm of its signing key".into(),
        )),
    }
}

/// Refuses an ID token (or anything shaped like one) presented as an access token.
fn refuse_id_token(
    claims: &Map<String, Value>,
    header_typ: Option<&str>,
    config: &BearerConfig,
) -> Result<(), BearerError> {
    let refuse = |why: &str| {
        Err(BearerError::InvalidToken(format!(
            "an ID token is not an access token ({why})"
        )))
    };
    let names_client = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.client_id,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str() == Some(config.client_id.as_str())),
        _ => false,
    };
    if !config.client_id.is_empty() && names_client {
        return refuse("its aud names the client id");
    }
    if claims.contains_key("nonce") {
        return refuse("it carries a nonce");
    }
    if claims.contains_key("at_hash") {
        return refuse("it carries at_hash");
    }
    if claims
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("id"))
    {
        return refuse("its typ claim is ID");
    }
    if config.require_at_jwt {
        let at_jwt = header_typ.is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !at_jwt {
            return refuse("its header typ is not at+jwt");
        }
    }
    Ok(())
}

/// Reads the protected header without trusting it: compact JWS only, a supported asymmetric
/// `alg`, no `crit`.
fn inspect_header(token: &str) -> Result<TokenHeader, BearerError> {
    let invalid = |why: &str| BearerError::InvalidToken(why.to_owned());
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid("the token is too long"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => return Err(invalid("encrypted tokens (JWE) are not accepted")),
        _ => return Err(invalid("the token is not a signed JWT")),
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|_| invalid("the token header is not base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| invalid("the token header is not a JSON object"))?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err(invalid("the token header has no alg")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(invalid("unsigned tokens (alg none) are not accepted"));
    }
    if alg.starts_with("HS") {
        return Err(invalid("symmetric (HMAC) signatures are not accepted"));
    }
    let alg = Algorithm::from_str(alg).map_err(|_| invalid("the token's alg is not supported"))?;
    if header.contains_key("crit") {
        return Err(invalid("critical header parameters are not supported"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(invalid("the token's kid is not a string")),
    };
    let typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    Ok(TokenHeader { alg, kid, typ })
}

/// Turns one JWKS entry into a verifying key with its pinned algorithm, or says why not.
fn usable_key(entry: &Value) -> Result<VerifyingKey, &'static str> {
    let Some(member) = entry.as_object() else {
        return Err("not a JSON object");
    };
    match member.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("not a signing key (use)"),
    }
    if let Some(ops) = member.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err("not a verification key (key_ops)");
        }
    }
    if member.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err("symmetric key");
    }
    let kid = match member.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("kid is not a string"),
    };
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "unsupported key")?;
    let derived = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
            _ => None,
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric key"),
    };
    let Some(derived) = derived else {
        return Err("unsupported curve");
    };
    let alg = match member.get("alg") {
        None => derived,
        Some(Value::String(alg)) => {
            let alg = Algorithm::from_str(alg).map_err(|_| "unsupported alg")?;
            // The alg must fit the key: the family, and for EC keys the curve.
            let fits = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => matches!(
                    alg,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ),
                _ => alg == derived,
            };
            if !fits {
                return Err("alg does not fit the key type");
            }
            alg
        }
        Some(_) => return Err("alg is not a string"),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "invalid key material")?;
    Ok(VerifyingKey { kid, alg, key })
}

/// A client-safe description of a verification failure.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "the token is not meant for this service (aud)".into(),
        ErrorKind::InvalidIssuer => "the token comes from another issuer (iss)".into(),
        ErrorKind::InvalidSignature => "the token signature is invalid".into(),
        ErrorKind::InvalidAlgorithm => "the token's alg is not allowed for its key".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        ErrorKind::Json(_) => "the token claims are not a JSON object".into(),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            "the token is not a well-formed JWT".into()
        }
        _ => "the token cannot be verified".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const ISSUER: &str = "https://idp.example.test";
    const AUDIENCE: &str = "https://api.clearance.test";

    // Test-only keys (openssl genpkey), used nowhere else.
    const RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDeLMCuzitsnXbp
QYICR4bTD7WPIHvj6e+7qDleN0ZkGQKdicklHeVaGivewoOnMdxKdASO8gkCl6qN
RQR0vOr5F6t1FhbFSc33QUMSIOmkbfzU5a4wCgAj52CKyJ35SqFEM0oVskKtnF4J
WcNARoORciTPiIgtpm7FN7FuBiy702SalcoyifhmzXFMZrBHCnN/8gZQISLRitoT
8PACYk3quDD2V6iQ3AWZeUOV3a1D8jUukYavZQbCkKyXd7SEWZ37LxcNS5G9TEp5
6HM/3mA8QrvnPTkQ1+LyzbNRlRigbb42lbcwzWnVDmepthUZ7HaDHFaP4MdyO3iO
YPKvTOB/AgMBAAECggEAQFMntFS3yNosR+tx9zP7SpdlQxuuEvYztRrHBUqupCOD
mNYAOTFXKoeiRPv/PwSWGa5OdY6I4knEFOOzHxNlWpoqR5uOGy+7pMct4o1J6BP6
HC+lh34VvU9rqbLc3gTn/QV2gSKb4IUByuZEvBLOW+l20+ldOA5USuBNjCPYhsZq
op/ZacMN4y/Q3l8S0jpjwjFWzO1BdhzpJruQbp11rFBBsPVczg3aPb6Du4PrEoaV
fUL5jBSaToK/9tZTZqsPGkhzwU4zMeHOUvvEkfT4gd/T44RZRRpIhfaLMK02auf8
ahduWkYUPed3w6aIxYKzb+dnfTpY9uV18/ps5zFn/QKBgQD9g6FKQinQAxJ5albd
BHH0+HyYz6MFta+1yauH5dscUD+UNZfMtuo6EgKxUCg+lEIORUneHcPc2A1ZMvhf
FfinHCNKvOhgnah/AS8adEdHHFrx4Yi4u3WIyPLxDyFKfhYoSVwSO7H2nYRM9Y7W
9uM+Eppyb0u+l1KhNvPl1EaHKwKBgQDgWnRofte2mLdz83eN5Q+dC+SPSd0VfNtj
Rk03WYTqoEs2XhjEIkdUOgfDe7NqBo9D+zzr7QcVDmTGICabxUzYLD7RGaGzCPJV
oV+gLx5eCTpa+TOk4inftWthzAr/7It/a9q+bVxI34lThda0W6sOInIubnj0oKxY
lIgtVCZh/QKBgQCczMh63JduAChyDnKxeylcwkCWZ37GbkzCnHzKrkGqrnvUmJ1O
UihnSHJ/5zstEZgVqYd5qWFWfA8th5gVf8pu2bl+ZX85Gup3u2y96QOZGRGrH7rn
v5J/ywJwVNJbd8cOnekjoeZ9yYll7E+v574/y1PZybrIpGHIMuwB0BzbRwKBgGMe
U3OfJnpbeiFWHSmpW36MtIvBnFVT9jEj7BVaDWkDLHd2lwaABndls+xfiGJ9R2pH
YyDwdUKOO2N07NnBDzQqSA5lfpT0jOvcAb1pU8dD2G48zt43tTxKkIiCdxGeVfsT
kW60LiNb7vXhmXvRS/9QpJVy5SlemwX/iTJNjS+ZAoGADOWTmnMmetz0fyM3zz63
tSlzcyuBDKtl58HVoaYeWLGwACbjTivg8vaqHI0OnGqsv7QoYQgcHfEnwh0QA2E6
5hXNc2D+yaH3fOl5Pwia30mXxFsX4oL95OHMNgv7NYGc8G29LAiDBUaHZFtzOxfM
8f2Mmk5DxRyofUc8yjLV068=
-----END PRIVATE KEY-----
";
    const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3izArs4rbJ126UGCAkeG
0w+1jyB74+nvu6g5XjdGZBkCnYnJJR3lWhor3sKDpzHcSnQEjvIJApeqjUUEdLzq
+RerdRYWxUnN90FDEiDppG381OWuMAoAI+dgisid+UqhRDNKFbJCrZxeCVnDQEaD
kXIkz4iILaZuxTexbgYsu9NkmpXKMon4Zs1xTGawRwpzf/IGUCEi0YraE/DwAmJN
6rgw9leokNwFmXlDld2tQ/I1LpGGr2UGwpCsl3e0hFmd+y8XDUuRvUxKeehzP95g
PEK75z05ENfi8s2zUZUYoG2+NpW3MM1p1Q5nqbYVGex2gxxWj+DHcjt4jmDyr0zg
fwIDAQAB
-----END PUBLIC KEY-----
";
    const RSA_N: &str = "3izArs4rbJ126UGCAkeG0w-1jyB74-nvu6g5XjdGZBkCnYnJJR3lWhor3sKDpzHcSnQEjvIJApeqjUUEdLzq-RerdRYWxUnN90FDEiDppG381OWuMAoAI-dgisid-UqhRDNKFbJCrZxeCVnDQEaDkXIkz4iILaZuxTexbgYsu9NkmpXKMon4Zs1xTGawRwpzf_IGUCEi0YraE_DwAmJN6rgw9leokNwFmXlDld2tQ_I1LpGGr2UGwpCsl3e0hFmd-y8XDUuRvUxKeehzP95gPEK75z05ENfi8s2zUZUYoG2-NpW3MM1p1Q5nqbYVGex2gxxWj-DHcjt4jmDyr0zgfw";
    const RSA_E: &str = "AQAB";
    const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgL22tpBhDCQm3t0mZ
ysMt1Qevvco/TSIp0cLVvUAhXTqhRANCAATxqDFHNeAP/4oF+3Jas60SyBxfBhSt
+gG+bPYuR4f/v6OY0pAYAi59iCpVhYgN1qxnC9ui3+GjaylSs8RBbcqV
-----END PRIVATE KEY-----
";
    const EC_X: &str = "8agxRzXgD_-KBftyWrOtEsgcXwYUrfoBvmz2LkeH_78";
    const EC_Y: &str = "o5jSkBgCLn2IKlWFiA3WrGcL26Lf4aNrKVKzxEFtypU";

    fn rsa_jwk(kid: &str) -> Value {
        json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": RSA_N, "e": RSA_E })
    }

    /// No `alg` member: ES256 is derived from the P-256 curve.
    fn ec_jwk(kid: &str) -> Value {
        json!({ "kty": "EC", "kid": kid, "crv": "P-256", "x": EC_X, "y": EC_Y })
    }

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("test RSA key")
    }

    fn ec_key() -> EncodingKey {
        EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("test EC key")
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
    }

    /// Valid claims, with `changes` applied (a `null` removes the claim).
    fn claims(changes: Value) -> Value {
        let mut claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "sub-alice",
            "email": "alice@example.com",
            "iat": now(),
            "exp": now() + 300,
        });
        if let (Some(target), Some(changes)) = (claims.as_object_mut(), changes.as_object()) {
            for (name, value) in changes {
                if value.is_null() {
                    target.remove(name);
                } else {
                    target.insert(name.clone(), value.clone());
                }
            }
        }
        claims
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("sign test token")
    }

    fn rs256(kid: &str, claims: &Value) -> String {
        sign(Algorithm::RS256, Some(kid), claims, &rsa_key())
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    /// A tiny HTTP server answering every request with the current JWKS (or an error status).
    struct JwksServer {
        url: Url,
        hits: Arc<AtomicUsize>,
        jwks: Arc<Mutex<Value>>,
        status: Arc<AtomicU16>,
        task: tokio::task::JoinHandle<()>,
    }

    impl JwksServer {
        async fn start(jwks: Value) -> Self {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let hits = Arc::new(AtomicUsize::new(0));
            let jwks = Arc::new(Mutex::new(jwks));
            let status = Arc::new(AtomicU16::new(200));
            let (h, j, s) = (hits.clone(), jwks.clone(), status.clone());
            let task = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let (h, j, s) = (h.clone(), j.clone(), s.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        h.fetch_add(1, Ordering::SeqCst);
                        let body = j.lock().expect("jwks").to_string();
                        let status = s.load(Ordering::SeqCst);
                        let response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
            let url = Url::parse(&format!("http://127.0.0.1:{port}/jwks")).expect("url");
            JwksServer {
                url,
                hits,
                jwks,
                status,
                task,
            }
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        fn serve(&self, jwks: Value) {
            *self.jwks.lock().expect("jwks") = jwks;
        }
    }

    impl Drop for JwksServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn config() -> BearerConfig {
        BearerConfig {
            issuer: ISSUER.into(),
            audiences: vec!["https://other.test".into(), AUDIENCE.into()],
            client_id: "clearance-web".into(),
            require_at_jwt: false,
            leeway: Duration::ZERO,
            refetch_cooldown: Duration::from_secs(60),
        }
    }

    fn verifier_with(config: BearerConfig, server: &JwksServer) -> BearerVerifier {
        let verifier = BearerVerifier::new(config, reqwest::Client::new());
        verifier.set_jwks_uri(server.url.clone());
        verifier
    }

    async fn setup(jwks: Value) -> (JwksServer, BearerVerifier) {
        let server = JwksServer::start(jwks).await;
        let verifier = verifier_with(config(), &server);
        (server, verifier)
    }

    fn invalid(result: Result<Map<String, Value>, BearerError>) -> String {
        match result {
            Err(BearerError::InvalidToken(why)) => why,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    // ---- bearer_token ------------------------------------------------------------------------

    #[test]
    fn bearer_token_takes_the_token68() {
        assert_eq!(
            bearer_token("Bearer abc.DEF-123_~+/==").unwrap(),
            "abc.DEF-123_~+/=="
        );
        assert_eq!(bearer_token("bearer x").unwrap(), "x");
        assert_eq!(bearer_token("BEARER x").unwrap(), "x");
        assert_eq!(bearer_token("bEaReR eyJ.eyJ.sig").unwrap(), "eyJ.eyJ.sig");
    }

    #[test]
    fn bearer_token_refuses_everything_else() {
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer  x",
            "Bearer: x",
            "Bearerx",
            "Token x",
            "Bearer x y",
            "Basic dXNlcjpwYXNz",
            "Bearer x ",
            " Bearer x",
            "Bearer\tx",
            "Bearer \tx",
            "Bearer x\n",
            "Bearer ===",
            "Bearer =abc",
            "Bearer a=b",
            "Bearer a,b",
            "Bearer \"x\"",
            "Bearer é",
            "Bearer x, Basic y",
        ] {
            match bearer_token(bad) {
                Err(BearerError::Malformed(_)) => {}
                other => panic!("{bad:?} should be malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let malformed = bearer_token("Basic abc").unwrap_err();
        assert_eq!(malformed.status_code(), 400);
        assert_eq!(
            malformed.www_authenticate(),
            "Bearer realm=\"clearance\", error=\"invalid_request\", \
             error_description=\"the authorization scheme must be Bearer\""
        );
        let invalid = BearerError::InvalidToken("say \"no\" \\ now\n".into());
        assert_eq!(invalid.status_code(), 401);
        assert_eq!(
            invalid.www_authenticate(),
            "Bearer realm=\"clearance\", error=\"invalid_token\", error_description=\"say no  now\""
        );
        let unavailable = BearerError::KeysUnavailable("GET http://internal/jwks: refused".into());
        assert_eq!(unavailable.status_code(), 503);
        let value = unavailable.www_authenticate();
        assert!(value.starts_with("Bearer realm=\"clearance\""), "{value}");
        assert!(!value.contains("error="), "{value}");
        assert!(
            !value.contains("internal"),
            "internal details leak: {value}"
        );
        assert_eq!(challenge(), "Bearer realm=\"clearance\"");
    }

    // ---- verification ------------------------------------------------------------------------

    #[tokio::test]
    async fn a_valid_token_verifies_and_yields_its_claims() {
        let (server, verifier) = setup(json!({ "keys": [rsa_jwk("k1"), ec_jwk("k2")] })).await;
        let token = rs256("k1", &claims(json!({ "groups": ["staff"] })));
        let got = verifier.verify(&token).await.unwrap();
        assert_eq!(got["sub"], "sub-alice");
        assert_eq!(got["email"], "alice@example.com");
        assert_eq!(got["groups"], json!(["staff"]));
        assert_eq!(got["iss"], ISSUER);
        // EC key without alg member: ES256 derived from the curve.
        let token = sign(Algorithm::ES256, Some("k2"), &claims(json!({})), &ec_key());
        assert_eq!(verifier.verify(&token).await.unwrap()["sub"], "sub-alice");
        // One fetch for both.
        assert_eq!(server.hits(), 1);
        // An audience array with one of ours is fine.
        let token = rs256(
            "k1",
            &claims(json!({ "aud": ["https://x.test", AUDIENCE] })),
        );
        verifier.verify(&token).await.unwrap();
    }

    #[tokio::test]
    async fn id_tokens_are_not_access_tokens() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        // Only the client id: not for this service at all.
        let id_token = rs256("k1", &claims(json!({ "aud": "clearance-web" })));
        assert!(invalid(verifier.verify(&id_token).await).contains("aud"));
        for (changes, why) in [
            (json!({ "aud": [AUDIENCE, "clearance-web"] }), "aud"),
            (json!({ "nonce": "n-1" }), "nonce"),
            (json!({ "at_hash": "abc" }), "at_hash"),
            (json!({ "typ": "ID" }), "typ"),
        ] {
            let token = rs256("k1", &claims(changes.clone()));
            let message = invalid(verifier.verify(&token).await);
            assert!(
                message.contains("ID token") && message.contains(why),
                "{changes}: {message}"
            );
        }
        verifier
            .verify(&rs256("k1", &claims(json!({ "typ": "Bearer" }))))
            .await
            .expect("an access token");
        // With require_at_jwt, the header's typ must say at+jwt.
        let server = JwksServer::start(json!({ "keys": [rsa_jwk("k1")] })).await;
        let strict = verifier_with(
            BearerConfig {
                require_at_jwt: true,
                ..config()
            },
            &server,
        );
        let plain = rs256("k1", &claims(json!({})));
        assert!(invalid(strict.verify(&plain).await).contains("at+jwt"));
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        header.typ = Some("at+jwt".into());
        let at_jwt = jsonwebtoken::encode(&header, &claims(json!({})), &rsa_key()).unwrap();
        strict
            .verify(&at_jwt)
            .await
            .expect("an at+jwt access token");
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        for alg in ["none", "None", "NONE"] {
            let token = format!(
                "{}.{}.",
                b64(&json!({ "alg": alg, "kid": "k1", "typ": "JWT" })),
                b64(&claims(json!({})))
            );
            let why = invalid(verifier.verify(&token).await);
            assert!(why.contains("alg none"), "{why}");
        }
        // Also with a bogus signature part, and without kid.
        let token = format!(
            "{}.{}.c2ln",
            b64(&json!({ "alg": "none" })),
            b64(&claims(json!({})))
        );
        invalid(verifier.verify(&token).await);
    }

    #[tokio::test]
    async fn hs256_signed_with_the_public_key_is_refused() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        let claims = claims(json!({}));
        for secret in [RSA_PUBLIC_PEM.as_bytes(), RSA_N.as_bytes()] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                for kid in [Some("k1"), None] {
                    let token = sign(alg, kid, &claims, &EncodingKey::from_secret(secret));
                    let why = invalid(verifier.verify(&token).await);
                    assert!(why.contains("HMAC"), "{why}");
                }
            }
        }
    }

    #[tokio::test]
    async fn the_algorithm_is_pinned_by_the_key() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1"), ec_jwk("k2")] })).await;
        // Signed correctly by the right RSA key, but with an algorithm the key is not pinned to.
        for alg in [Algorithm::RS384, Algorithm::PS256] {
            let token = sign(alg, Some("k1"), &claims(json!({})), &rsa_key());
            let why = invalid(verifier.verify(&token).await);
            assert!(
                why.contains("not the algorithm of its signing key"),
                "{why}"
            );
        }
        // The EC key derived ES256; ES384 is not it.
        let forged = format!(
            "{}.{}.c2ln",
            b64(&json!({ "alg": "ES384", "kid": "k2" })),
            b64(&claims(json!({})))
        );
        invalid(verifier.verify(&forged).await);
        // The RSA key's id with the EC key's signature.
        let token = sign(Algorithm::ES256, Some("k1"), &claims(json!({})), &ec_key());
        invalid(verifier.verify(&token).await);
    }

    #[tokio::test]
    async fn unknown_kid_refetches_at_most_once_per_cooldown() {
        let (server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        verifier
            .verify(&rs256("k1", &claims(json!({}))))
            .await
            .unwrap();
        assert_eq!(server.hits(), 1);

        let stranger = rs256("k-unknown", &claims(json!({})));
        let why = invalid(verifier.verify(&stranger).await);
        assert!(why.contains("kid"), "{why}");
        assert_eq!(server.hits(), 2, "an unknown kid refetches the JWKS once");

        let why = invalid(verifier.verify(&stranger).await);
        assert!(why.contains("kid"), "{why}");
        let other = rs256("k-other", &claims(json!({})));
        invalid(verifier.verify(&other).await);
        assert_eq!(server.hits(), 2, "no refetch within the cooldown");

        // Known keys keep working without fetching.
        verifier
            .verify(&rs256("k1", &claims(json!({}))))
            .await
            .unwrap();
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn concurrent_unknown_kids_do_not_stampede() {
        let (server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        verifier
            .verify(&rs256("k1", &claims(json!({}))))
            .await
            .unwrap();
        let verifier = Arc::new(verifier);
        let mut tasks = Vec::new();
        for n in 0..20 {
            let verifier = Arc::clone(&verifier);
            let token = rs256(&format!("k-new-{n}"), &claims(json!({})));
            tasks.push(tokio::spawn(async move { verifier.verify(&token).await }));
        }
        for task in tasks {
            invalid(task.await.unwrap());
        }
        assert_eq!(server.hits(), 2, "twenty unknown kids, one refetch");
    }

    #[tokio::test]
    async fn a_new_key_is_found_by_refetching() {
        let (server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        verifier
            .verify(&rs256("k1", &claims(json!({}))))
            .await
            .unwrap();
        // The issuer rotates to an EC key.
        server.serve(json!({ "keys": [ec_jwk("k2")] }));
        let token = sign(Algorithm::ES256, Some("k2"), &claims(json!({})), &ec_key());
        assert_eq!(verifier.verify(&token).await.unwrap()["sub"], "sub-alice");
        assert_eq!(server.hits(), 2);
        assert_eq!(verifier.loaded_kids(), [Some("k2".to_owned())]);
        // The withdrawn key is no longer trusted (and the cooldown forbids another refetch).
        invalid(verifier.verify(&rs256("k1", &claims(json!({})))).await);
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn the_cooldown_allows_a_later_refetch() {
        let server = JwksServer::start(json!({ "keys": [rsa_jwk("k1")] })).await;
        let verifier = verifier_with(
            BearerConfig {
                refetch_cooldown: Duration::from_millis(200),
                ..config()
            },
            &server,
        );
        let stranger = rs256("k-late", &claims(json!({})));
        invalid(verifier.verify(&stranger).await);
        assert_eq!(server.hits(), 2, "load, then one refetch");
        invalid(verifier.verify(&stranger).await);
        assert_eq!(server.hits(), 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        server.serve(json!({ "keys": [rsa_jwk("k1"), rsa_jwk("k-late")] }));
        verifier.verify(&stranger).await.unwrap();
        assert_eq!(server.hits(), 3);
    }

    #[tokio::test]
    async fn old_keys_are_reloaded() {
        let (server, mut verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        verifier.keys_max_age = Duration::from_millis(100);
        let token = rs256("k1", &claims(json!({})));
        verifier.verify(&token).await.unwrap();
        assert_eq!(server.hits(), 1);

        // Stale, and the JWKS endpoint fails: the old keys stay in use.
        tokio::time::sleep(Duration::from_millis(150)).await;
        server.status.store(503, Ordering::SeqCst);
        verifier.verify(&token).await.unwrap();
        assert_eq!(server.hits(), 2);
        // The failure is not retried within the cooldown.
        verifier.verify(&token).await.unwrap();
        assert_eq!(server.hits(), 2);

        // Once the cooldown is over, the issuer has withdrawn k1: it is no longer trusted.
        verifier.config.refetch_cooldown = Duration::ZERO;
        server.status.store(200, Ordering::SeqCst);
        server.serve(json!({ "keys": [ec_jwk("k2")] }));
        let why = invalid(verifier.verify(&token).await);
        assert!(why.contains("kid"), "{why}");
        assert_eq!(verifier.loaded_kids(), [Some("k2".to_owned())]);
    }

    #[tokio::test]
    async fn expired_and_not_yet_valid_tokens_are_refused() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        let why = invalid(
            verifier
                .verify(&rs256("k1", &claims(json!({ "exp": now() - 5 }))))
                .await,
        );
        assert!(why.contains("expired"), "{why}");
        let why = invalid(
            verifier
                .verify(&rs256("k1", &claims(json!({ "nbf": now() + 30 }))))
                .await,
        );
        assert!(why.contains("not valid yet"), "{why}");
        let why = invalid(
            verifier
                .verify(&rs256("k1", &claims(json!({ "exp": null }))))
                .await,
        );
        assert!(why.contains("exp"), "{why}");
        let why = invalid(
            verifier
                .verify(&rs256("k1", &claims(json!({ "exp": "tomorrow" }))))
                .await,
        );
        assert!(why.contains("exp"), "{why}");
        // nbf in the past is fine.
        verifier
            .verify(&rs256("k1", &claims(json!({ "nbf": now() - 30 }))))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn leeway_is_honoured() {
        let server = JwksServer::start(json!({ "keys": [rsa_jwk("k1")] })).await;
        let lenient = verifier_with(
            BearerConfig {
                leeway: Duration::from_secs(60),
                ..config()
            },
            &server,
        );
        let strict = verifier_with(config(), &server);
        let expired_lately = rs256("k1", &claims(json!({ "exp": now() - 30 })));
        let valid_soon = rs256("k1", &claims(json!({ "nbf": now() + 30 })));
        lenient.verify(&expired_lately).await.unwrap();
        lenient.verify(&valid_soon).await.unwrap();
        invalid(strict.verify(&expired_lately).await);
        invalid(strict.verify(&valid_soon).await);
        // Beyond the leeway.
        invalid(
            lenient
                .verify(&rs256("k1", &claims(json!({ "exp": now() - 90 }))))
                .await,
        );
        invalid(
            lenient
                .verify(&rs256("k1", &claims(json!({ "nbf": now() + 90 }))))
                .await,
        );
    }

    #[tokio::test]
    async fn audience_is_checked() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        for aud in [
            json!("https://elsewhere.test"),
            json!(["https://elsewhere.test", "clearance"]),
            json!([]),
            json!(null),
        ] {
            let token = rs256("k1", &claims(json!({ "aud": aud.clone() })));
            let why = invalid(verifier.verify(&token).await);
            assert!(why.contains("aud"), "{aud}: {why}");
        }
        // No audiences configured: nothing is for us.
        let server = JwksServer::start(json!({ "keys": [rsa_jwk("k1")] })).await;
        let nobody = verifier_with(
            BearerConfig {
                audiences: Vec::new(),
                ..config()
            },
            &server,
        );
        invalid(nobody.verify(&rs256("k1", &claims(json!({})))).await);
    }

    #[tokio::test]
    async fn issuer_is_checked_with_trailing_slash_tolerance() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        for iss in [
            json!("https://evil.example.test"),
            json!("https://idp.example.test/other"),
            json!("https://idp.example.test//"),
            json!(null),
        ] {
            let token = rs256("k1", &claims(json!({ "iss": iss.clone() })));
            let why = invalid(verifier.verify(&token).await);
            assert!(why.contains("iss"), "{iss}: {why}");
        }
        let slash = rs256("k1", &claims(json!({ "iss": format!("{ISSUER}/") })));
        verifier.verify(&slash).await.unwrap();

        let server = JwksServer::start(json!({ "keys": [rsa_jwk("k1")] })).await;
        let configured_with_slash = verifier_with(
            BearerConfig {
                issuer: format!("{ISSUER}/"),
                ..config()
            },
            &server,
        );
        configured_with_slash
            .verify(&rs256("k1", &claims(json!({}))))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_token_without_kid_needs_a_single_key() {
        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        let token = sign(Algorithm::RS256, None, &claims(json!({})), &rsa_key());
        verifier.verify(&token).await.unwrap();

        let (_server, verifier) = setup(json!({ "keys": [rsa_jwk("k1"), ec_jwk("k2")] })).await;
        let why = invalid(verifier.verify(&token).await);
        assert!(why.contains("no kid"), "{why}");
    }

    #[tokio::test]
    async fn unusable_keys_are_skipped() {
        let enc = json!({ "kty": "RSA", "kid": "enc", "use": "enc", "n": RSA_N, "e": RSA_E });
        let ops =
            json!({ "kty": "RSA", "kid": "ops", "key_ops": ["encrypt"], "n": RSA_N, "e": RSA_E });
        let misfit =
            json!({ "kty": "RSA", "kid": "misfit", "alg": "ES256", "n": RSA_N, "e": RSA_E });
        let hmac = json!({ "kty": "RSA", "kid": "hmac", "alg": "HS256", "n": RSA_N, "e": RSA_E });
        let oct = json!({ "kty": "oct", "kid": "oct", "k": "c2VjcmV0" });
        let p521 = json!({ "kty": "EC", "kid": "p521", "crv": "P-521", "x": EC_X, "y": EC_Y });
        let x25519 = json!({ "kty": "OKP", "kid": "x25519", "crv": "X25519", "x": EC_X });
        let garbage = json!({ "kty": "RSA", "kid": "garbage" });
        let no_use = json!({ "kty": "RSA", "kid": "plain", "n": RSA_N, "e": RSA_E });
        let (server, verifier) = setup(json!({ "keys": [
            enc, ops, misfit, hmac, oct, p521, x25519, garbage, "not a key", no_use, rsa_jwk("k1")
        ] }))
        .await;
        verifier
            .verify(&rs256("plain", &claims(json!({}))))
            .await
            .unwrap();
        assert_eq!(
            verifier.loaded_kids(),
            [Some("plain".to_owned()), Some("k1".to_owned())]
        );
        for kid in ["enc", "ops", "misfit", "hmac", "oct"] {
            invalid(verifier.verify(&rs256(kid, &claims(json!({})))).await);
        }
        assert_eq!(server.hits(), 2);
        // The symmetric key cannot be abused either.
        let token = sign(
            Algorithm::HS256,
            Some("oct"),
            &claims(json!({})),
            &EncodingKey::from_secret(b"secret"),
        );
        invalid(verifier.verify(&token).await);
    }

    #[tokio::test]
    async fn unavailable_keys_are_not_an_invalid_token() {
        let verifier = BearerVerifier::new(config(), reqwest::Client::new());
        let token = rs256("k1", &claims(json!({})));
        assert!(matches!(
            verifier.verify(&token).await,
            Err(BearerError::KeysUnavailable(_))
        ));

        let server = JwksServer::start(json!({ "keys": [rsa_jwk("k1")] })).await;
        server.status.store(500, Ordering::SeqCst);
        let verifier = verifier_with(config(), &server);
        assert!(matches!(
            verifier.verify(&token).await,
            Err(BearerError::KeysUnavailable(_))
        ));
        assert_eq!(server.hits(), 1);
        // Within the cooldown the failure is remembered, not retried.
        assert!(matches!(
            verifier.verify(&token).await,
            Err(BearerError::KeysUnavailable(_))
        ));
        assert_eq!(server.hits(), 1);

        // A JWKS without usable keys is a failure too.
        let server =
            JwksServer::start(json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] })).await;
        let verifier = verifier_with(config(), &server);
        assert!(matches!(
            verifier.verify(&token).await,
            Err(BearerError::KeysUnavailable(_))
        ));
        let server = JwksServer::start(json!({ "no": "keys" })).await;
        let verifier = verifier_with(config(), &server);
        assert!(matches!(
            verifier.verify(&token).await,
            Err(BearerError::KeysUnavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_new_jwks_uri_replaces_the_keys() {
        let (first, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        verifier
            .verify(&rs256("k1", &claims(json!({}))))
            .await
            .unwrap();
        verifier.set_jwks_uri(first.url.clone());
        verifier
            .verify(&rs256("k1", &claims(json!({}))))
            .await
            .unwrap();
        assert_eq!(first.hits(), 1, "the same URI again changes nothing");

        let second = JwksServer::start(json!({ "keys": [ec_jwk("k2")] })).await;
        verifier.set_jwks_uri(second.url.clone());
        assert_eq!(verifier.jwks_uri(), Some(second.url.clone()));
        let token = sign(Algorithm::ES256, Some("k2"), &claims(json!({})), &ec_key());
        verifier.verify(&token).await.unwrap();
        assert_eq!(second.hits(), 1);
        assert_eq!(verifier.loaded_kids(), [Some("k2".to_owned())]);
    }

    #[tokio::test]
    async fn malformed_tokens_are_invalid_without_fetching() {
        let (server, verifier) = setup(json!({ "keys": [rsa_jwk("k1")] })).await;
        let good = rs256("k1", &claims(json!({})));
        let mut parts = good.split('.');
        let (header, payload) = (parts.next().unwrap(), parts.next().unwrap());
        for bad in [
            String::new(),
            "garbage".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d.e".to_owned(),
            format!("{header}.{payload}"),
            format!("!!.{payload}.sig"),
            format!(
                "{}.{payload}.sig",
                b64(&json!({ "alg": "RS256", "kid": "k1", "crit": ["exp"] }))
            ),
            format!(
                "{}.{payload}.sig",
                b64(&json!({ "alg": "RS256", "kid": 7 }))
            ),
            format!("{}.{payload}.sig", b64(&json!({ "kid": "k1" }))),
            format!(
                "{}.{payload}.sig",
                b64(&json!({ "alg": "XX999", "kid": "k1" }))
            ),
            format!("{}.{payload}.sig", b64(&json!("not an object"))),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            invalid(verifier.verify(&bad).await);
        }
        assert_eq!(server.hits(), 0);
        // A tampered payload fails the signature check.
        let tampered = format!(
            "{header}.{}.{}",
            b64(&claims(json!({ "sub": "sub-mallory" }))),
            good.rsplit('.').next().unwrap()
        );
        let why = invalid(verifier.verify(&tampered).await);
        assert!(why.contains("signature"), "{why}");
    }
}
