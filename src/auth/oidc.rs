//! The OpenID Connect relying party: discovery, authorization code + PKCE + state + nonce, ID-token
//! verification (with at_hash), userinfo, refresh, end-session URLs, and JWKS refetch on key rotation.

use crate::config::OidcSettings;
use arc_swap::ArcSwapOption;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreTokenResponse,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Discovery metadata beyond what `openidconnect` reads: RFC 9207's
/// `authorization_response_iss_parameter_supported`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct IssParameterMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}

impl openidconnect::AdditionalProviderMetadata for IssParameterMetadata {}

/// The provider's discovery document: the standard fields, RP-initiated logout's
/// `end_session_endpoint` and RFC 9207's `iss` support.
type ProviderMetadataWithLogout = openidconnect::ProviderMetadata<
    openidconnect::LogoutProviderMetadata<IssParameterMetadata>,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreClientAuthMethod,
    openidconnect::core::CoreClaimName,
    openidconnect::core::CoreClaimType,
    openidconnect::core::CoreGrantType,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJweKeyManagementAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreResponseMode,
    openidconnect::core::CoreResponseType,
    openidconnect::core::CoreSubjectIdentifierType,
>;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What went wrong while signing someone in. Mapped to responses in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the sign-in provider is unavailable: {0}")]
    ProviderUnavailable(String),
    #[error("the sign-in provider refused the request: {0}")]
    Rejected(String),
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
    #[error("the sign-in provider returned no {0}")]
    Missing(&'static str),
}

/// A login in progress, kept server-side (one-time) until the callback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to go after sign-in (already validated).
    pub rd: String,
    pub created_at: DateTime<Utc>,
}

/// The outcome of a successful code exchange or refresh.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// ID-token claims merged with userinfo claims.
    pub claims: Map<String, Value>,
    pub id_token: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// How long the access token lives, as the provider said (`expires_in`).
    pub access_lifetime: Option<chrono::Duration>,
}

impl SignedIn {
    /// When the access token expires, counted from `now`: the time of whoever decides when to
    /// refresh it (the gate's clock), never this module's own.
    pub fn access_expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.access_lifetime.map(|lifetime| now + lifetime)
    }
}

struct Provider {
    metadata: ProviderMetadataWithLogout,
    client: Client,
}

/// The relying party. Cheap to share behind an `Arc`.
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    provider: ArcSwapOption<Provider>,
    last_refetch: Mutex<Option<Instant>>,
}

/// How long the sign-in probe waits for the provider.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

fn http_client() -> Result<reqwest::Client, AuthError> {
    reqwest::Client::builder()
        // Never follow redirects from the provider's back channel (SSRF).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| AuthError::ProviderUnavailable(e.to_string()))
}

fn payload_claims(raw_jwt: &str) -> Result<Map<String, Value>, AuthError> {
    let payload = raw_jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| AuthError::InvalidIdToken("not a JWS".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| AuthError::InvalidIdToken(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| AuthError::InvalidIdToken(e.to_string()))
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Self, AuthError> {
        Ok(Self {
            settings,
            http: http_client()?,
            provider: ArcSwapOption::empty(),
            last_refetch: Mutex::new(None),
        })
    }

    /// Whether the provider answers now (see [`Oidc::begin`]).
    async fn probe(&self) -> Result<(), AuthError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.as_str().trim_end_matches('/')
        );
        let answer = self
            .http
            .get(&url)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                AuthError::ProviderUnavailable(format!("the provider does not answer: {e}"))
            })?;
        if !answer.status().is_success() {
            return Err(AuthError::ProviderUnavailable(format!(
                "the provider's discovery document answers {}",
                answer.status()
            )));
        }
        Ok(())
    }

    /// True once provider metadata has been loaded.
    pub fn is_ready(&self) -> bool {
        self.provider.load().is_some()
    }

    /// Loads (or reloads) the provider's metadata and keys.
    pub async fn discover(&self) -> Result<(), AuthError> {
        let issuer = IssuerUrl::new(
            self.settings
                .issuer
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
        )
        .map_err(|e| AuthError::ProviderUnavailable(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| AuthError::ProviderUnavailable(format!("discovery failed: {e}")))?;
        self.install(metadata);
        tracing::info!(oidc.issuer = %self.settings.issuer, "provider metadata loaded");
        Ok(())
    }

    fn install(&self, metadata: ProviderMetadataWithLogout) {
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::from_url(self.settings.redirect_url.clone()));
        self.provider
            .store(Some(Arc::new(Provider { metadata, client })));
    }

    /// Keeps trying discovery in the background until it succeeds, so that the gate starts (and
    /// answers 503) while the provider is down.
    pub fn spawn_discovery(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            while !this.is_ready() {
                if let Err(e) = this.discover().await {
                    tracing::warn!(error.message = %e, retry.delay_ms = delay.as_millis() as u64, "OIDC discovery failed");
                    actix_web::rt::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        });
    }

    async fn provider(&self) -> Result<Arc<Provider>, AuthError> {
        if let Some(p) = self.provider.load_full() {
            return Ok(p);
        }
        self.discover().await?;
        self.provider
            .load_full()
            .ok_or_else(|| AuthError::ProviderUnavailable("no metadata".into()))
    }

    /// Checks the `iss` parameter of an authorization response (RFC 9207): when present it must
    /// be the issuer; when the provider advertises `authorization_response_iss_parameter_supported`
    /// it must be present. Protects against a mix-up with another provider's response.
    pub async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), AuthError> {
        let provider = self.provider().await?;
        let advertised = provider
            .metadata
            .additional_metadata()
            .additional_metadata
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        let issuer = provider.metadata.issuer().as_str();
        let same = |i: &str| i.trim_end_matches('/') == issuer.trim_end_matches('/');
        match iss {
            Some(i) if same(i) => Ok(()),
            Some(_) => Err(AuthError::Rejected(
                "the sign-in response names another issuer (iss)".into(),
            )),
            None if advertised => Err(AuthError::Rejected(
                "the sign-in response lacks the iss parameter its provider promises".into(),
            )),
            None => Ok(()),
        }
    }

    /// The provider's JWKS URL (loading the metadata first if needed).
    pub async fn jwks_uri(&self) -> Result<url::Url, AuthError> {
        let provider = self.provider().await?;
        Ok(provider.metadata.jwks_uri().url().clone())
    }

    /// Starts a login: returns the provider URL to redirect to and the state to keep.
    ///
    /// The provider is asked first (its discovery document, with a short timeout), so that a person is not sent to a provider that is down
    /// but gets Clearance's "sign-in is unavailable" page instead.
    pub async fn begin(&self, rd: String) -> Result<(url::Url, PendingLogin), AuthError> {
        let provider = self.provider().await?;
        self.probe().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = provider.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url,
            PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                rd,
                created_at: Utc::now(),
            },
        ))
    }

    /// Finishes a login: exchanges the code (with the PKCE verifier), verifies the ID token
    /// (signature, issuer, audience, expiry, nonce, at_hash) and reads userinfo.
    pub async fn complete(
        &self,
        code: String,
        pending: &PendingLogin,
    ) -> Result<SignedIn, AuthError> {
        let provider = self.provider().await?;
        let response: CoreTokenResponse = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| AuthError::ProviderUnavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                // The provider answered and said no (bad code, bad verifier ...).
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    AuthError::Rejected(format!("code exchange failed: {r}"))
                }
                // It could not be reached, or did not answer properly: an outage.
                other => AuthError::ProviderUnavailable(format!("code exchange failed: {other}")),
            })?;
        let id_token = response.id_token().ok_or(AuthError::Missing("ID token"))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let mut claims = self
            .verify_id_token(id_token, response.access_token(), Some(&nonce))
            .await?;
        self.merge_userinfo(&mut claims, response.access_token())
            .await?;
        Ok(signed_in(&response, claims, Some(id_token.to_string())))
    }

    /// Refreshes tokens. The subject must not change.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        expected_sub: &str,
    ) -> Result<SignedIn, AuthError> {
        let provider = self.provider().await?;
        let token = RefreshToken::new(refresh_token.to_owned());
        let response: CoreTokenResponse = provider
            .client
            .exchange_refresh_token(&token)
            .map_err(|e| AuthError::ProviderUnavailable(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    AuthError::Rejected(format!("refresh refused: {r}"))
                }
                other => AuthError::ProviderUnavailable(format!("refresh failed: {other}")),
            })?;
        let mut claims = match response.id_token() {
            Some(id_token) => {
                self.verify_id_token(id_token, response.access_token(), None)
                    .await?
            }
            None => {
                let mut m = Map::new();
                m.insert("sub".into(), Value::String(expected_sub.to_owned()));
                m
            }
        };
        if claims.get("sub").and_then(Value::as_str) != Some(expected_sub) {
            return Err(AuthError::InvalidIdToken(
                "subject changed on refresh".into(),
            ));
        }
        self.merge_userinfo(&mut claims, response.access_token())
            .await?;
        let mut out = signed_in(
            &response,
            claims,
            response.id_token().map(|t| t.to_string()),
        );
        if out.refresh_token.is_none() {
            out.refresh_token = Some(refresh_token.to_owned());
        }
        Ok(out)
    }

    /// Verifies a raw ID token as the callback does (signature with key refetch, issuer,
    /// audience, expiry, nonce when given, at_hash against `access_token`) and returns its claims.
    pub async fn verify(
        &self,
        id_token: &str,
        access_token: &str,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, AuthError> {
        let parsed: CoreIdToken = id_token
            .parse()
            .map_err(|e| AuthError::InvalidIdToken(format!("not an ID token: {e}")))?;
        let nonce = nonce.map(|n| Nonce::new(n.to_owned()));
        self.verify_id_token(
            &parsed,
            &AccessToken::new(access_token.to_owned()),
            nonce.as_ref(),
        )
        .await
    }

    async fn verify_id_token(
        &self,
        id_token: &CoreIdToken,
        access_token: &AccessToken,
        nonce: Option<&Nonce>,
    ) -> Result<Map<String, Value>, AuthError> {
        let provider = self.provider().await?;
        match verify_with(&provider.client, id_token, access_token, nonce) {
            Err(VerifyError::UnknownKey) => {
                // The provider may have rotated its keys: refetch once (rate-limited) and retry.
                let provider = self.refetch_jwks(&provider).await?;
                verify_with(&provider.client, id_token, access_token, nonce)
                    .map_err(VerifyError::into_auth)
            }
            other => other.map_err(VerifyError::into_auth),
        }?;
        payload_claims(&id_token.to_string())
    }

    async fn refetch_jwks(&self, current: &Provider) -> Result<Arc<Provider>, AuthError> {
        {
            let mut last = self
                .last_refetch
                .lock()
                .map_err(|_| AuthError::ProviderUnavailable("lock poisoned".into()))?;
            if last.is_some_and(|t| t.elapsed() < self.settings.jwks_refetch_cooldown) {
                return Err(AuthError::InvalidIdToken(
                    "signed with an unknown key (key set refetched recently)".into(),
                ));
            }
            *last = Some(Instant::now());
        }
        let jwks = CoreJsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| AuthError::ProviderUnavailable(format!("JWKS fetch failed: {e}")))?;
        tracing::info!(
            oidc.keys = jwks.keys().len(),
            "refetched the provider's signing keys"
        );
        let metadata = current.metadata.clone().set_jwks(jwks);
        self.install(metadata);
        self.provider
            .load_full()
            .ok_or_else(|| AuthError::ProviderUnavailable("no metadata".into()))
    }

    async fn merge_userinfo(
        &self,
        claims: &mut Map<String, Value>,
        access_token: &AccessToken,
    ) -> Result<(), AuthError> {
        let provider = self.provider().await?;
        let Some(endpoint) = provider.metadata.userinfo_endpoint() else {
            return Ok(());
        };
        let response = self
            .http
            .get(endpoint.url().clone())
            .bearer_auth(access_token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| AuthError::ProviderUnavailable(format!("userinfo failed: {e}")))?;
        if !response.status().is_success() {
            return Err(AuthError::Rejected(format!(
                "userinfo answered {}",
                response.status()
            )));
        }
        let info: Map<String, Value> = response
            .json()
            .await
            .map_err(|e| AuthError::Rejected(format!("userinfo is not JSON: {e}")))?;
        // The userinfo subject must be the ID token's (OIDC Core 5.3.2).
        if info.get("sub") != claims.get("sub") {
            return Err(AuthError::InvalidIdToken(
                "userinfo subject differs from the ID token".into(),
            ));
        }
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// The provider's end-session URL with `id_token_hint`, `post_logout_redirect_uri` and `state`,
    /// if the provider supports RP-initiated logout.
    pub fn end_session_url(&self, id_token: Option<&str>, state: &str) -> Option<url::Url> {
        let provider = self.provider.load_full()?;
        let endpoint = provider
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()?;
        let mut url = endpoint.url().clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(t) = id_token {
                q.append_pair("id_token_hint", t);
            }
            q.append_pair("client_id", &self.settings.client_id);
            q.append_pair(
                "post_logout_redirect_uri",
                self.settings.post_logout_redirect_url.as_str(),
            );
            q.append_pair("state", state);
        }
        Some(url)
    }
}

fn signed_in(
    response: &CoreTokenResponse,
    claims: Map<String, Value>,
    id_token: Option<String>,
) -> SignedIn {
    SignedIn {
        claims,
        id_token,
        access_token: response.access_token().secret().clone(),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        access_lifetime: response
            .expires_in()
            .and_then(|d| chrono::Duration::from_std(d).ok()),
    }
}

enum VerifyError {
    UnknownKey,
    Other(String),
}

impl VerifyError {
    fn into_auth(self) -> AuthError {
        match self {
            Self::UnknownKey => AuthError::InvalidIdToken("signed with an unknown key".into()),
            Self::Other(m) => AuthError::InvalidIdToken(m),
        }
    }
}

fn verify_with(
    client: &Client,
    id_token: &CoreIdToken,
    access_token: &AccessToken,
    nonce: Option<&Nonce>,
) -> Result<(), VerifyError> {
    let verifier = client.id_token_verifier();
    let result = match nonce {
        Some(n) => id_token.claims(&verifier, n),
        None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
    };
    let claims = result.map_err(|e| match e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => VerifyError::UnknownKey,
        other => VerifyError::Other(other.to_string()),
    })?;
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token
            .signing_alg()
            .map_err(|e| VerifyError::Other(e.to_string()))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(|e| VerifyError::Other(e.to_string()))?;
        let actual = AccessTokenHash::from_token(access_token, alg, key)
            .map_err(|e| VerifyError::Other(e.to_string()))?;
        if actual != *expected {
            return Err(VerifyError::Other(
                "at_hash does not match the access token".into(),
            ));
        }
    }
    Ok(())
}
