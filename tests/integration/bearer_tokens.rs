//! Bearer tokens from the real `oidc-provider`: JWT access tokens for the API audience (a
//! person's, through the code flow with `resource`; a machine's, through client_credentials)
//! verify; tokens forged with the provider's real private key but wrong claims, unsigned or
//! HMAC-"signed" tokens, and unknown keys do not; a key rotation is picked up by refetching.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clearance::auth::bearer::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::support::{Browser, OidcProvider, ProviderConfig};

const PERSON: &str = "alice@example.com";

async fn start_provider() -> OidcProvider {
    OidcProvider::start(
        ProviderConfig::standard("http://127.0.0.1:9/callback", "http://127.0.0.1:9/bye")
            .with_api(),
    )
    .await
}

/// A verifier set up the way Clearance does it: issuer and jwks_uri from discovery.
async fn verifier_for(provider: &OidcProvider) -> BearerVerifier {
    let discovery: Value = reqwest::get(provider.discovery_url())
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery JSON");
    let verifier = BearerVerifier::new(
        BearerConfig {
            issuer: discovery["issuer"].as_str().expect("issuer").to_owned(),
            audiences: vec![ProviderConfig::API_AUDIENCE.to_owned()],
            client_id: "clearance".into(),
            require_at_jwt: false,
            leeway: Duration::from_secs(5),
            refetch_cooldown: Duration::from_secs(60),
        },
        reqwest::Client::new(),
    );
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    verifier.set_jwks_uri(jwks_uri.parse().expect("jwks_uri is a URL"));
    verifier
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn invalid(result: Result<Map<String, Value>, BearerError>) -> String {
    match result {
        Err(err @ BearerError::InvalidToken(_)) => {
            assert!(
                err.www_authenticate().contains("error=\"invalid_token\""),
                "{}",
                err.www_authenticate()
            );
            err.to_string()
        }
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

// ---- forging with the provider's real key ----------------------------------------------------

fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_length(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from an unsigned big-endian magnitude.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len().saturating_sub(1));
    let mut content = magnitude[first..].to_vec();
    if content.is_empty() || content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    der_tlv(0x02, &content)
}

fn jwk_uint(jwk: &Value, member: &str) -> Vec<u8> {
    let text = jwk[member]
        .as_str()
        .unwrap_or_else(|| panic!("JWK member {member}"));
    der_uint(&URL_SAFE_NO_PAD.decode(text).expect("base64url"))
}

/// PKCS#1 RSAPrivateKey DER of a private RSA JWK.
fn rsa_private_der(jwk: &Value) -> Vec<u8> {
    let mut content = der_uint(&[0]);
    for member in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        content.extend(jwk_uint(jwk, member));
    }
    der_tlv(0x30, &content)
}

/// PKCS#1 RSAPublicKey PEM of an RSA JWK: what an attacker would try as an HMAC secret.
pub(crate) fn rsa_public_pem(jwk: &Value) -> String {
    let mut content = jwk_uint(jwk, "n");
    content.extend(jwk_uint(jwk, "e"));
    let der = der_tlv(0x30, &content);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// Signs tokens with the provider's current private key.
pub(crate) struct Forger {
    kid: String,
    pub(crate) key: EncodingKey,
    jwk: Value,
    issuer: String,
}

impl Forger {
    pub(crate) fn new(provider: &OidcProvider) -> Self {
        let jwks = provider.private_jwks();
        let jwk = jwks["keys"][0].clone();
        assert!(jwk["d"].is_string(), "KEYS_OUT holds the private key");
        assert_eq!(jwk["kid"], provider.kid());
        Forger {
            kid: jwk["kid"].as_str().expect("kid").to_owned(),
            key: EncodingKey::from_rsa_der(&rsa_private_der(&jwk)),
            jwk,
            issuer: provider.issuer(),
        }
    }

    /// Claims like the provider's for alice, with `changes` applied (`null` removes a claim).
    fn claims(&self, changes: Value) -> Value {
        let mut claims = json!({
            "jti": "forged",
            "sub": "sub-alice",
            "email": PERSON,
            "email_verified": true,
            "iat": now(),
            "exp": now() + 60,
            "client_id": ProviderConfig::API_CLIENT_ID,
            "iss": self.issuer,
            "aud": ProviderConfig::API_AUDIENCE,
        });
        let target = claims.as_object_mut().expect("object");
        for (name, value) in changes.as_object().expect("changes object") {
            if value.is_null() {
                target.remove(name);
            } else {
                target.insert(name.clone(), value.clone());
            }
        }
        claims
    }

    pub(crate) fn sign_with(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        claims: &Value,
        key: &EncodingKey,
    ) -> String {
        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".into());
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("forge")
    }

    pub(crate) fn forge(&self, changes: Value) -> String {
        self.sign_with(
            Algorithm::RS256,
            Some(&self.kid),
            &self.claims(changes),
            &self.key,
        )
    }
}

// ---- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_persons_jwt_access_token_verifies_and_carries_email() {
    let provider = start_provider().await;
    let verifier = verifier_for(&provider).await;

    let token = provider.user_access_token(PERSON).await;
    let header = jwt_part(&token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], provider.kid());
    let header_value = format!("Bearer {token}");
    let claims = verifier
        .verify(bearer_token(&header_value).expect("a provider token is a token68"))
        .await
        .expect("the provider's access token verifies");
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], ProviderConfig::API_AUDIENCE);
    assert_eq!(claims["sub"], "sub-alice");
    assert_eq!(claims["email"], PERSON);
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["employee_type"], "employee");
    assert_eq!(claims["groups"], json!(["staff", "engineering"]));
    assert_eq!(claims["client_id"], ProviderConfig::API_CLIENT_ID);
    assert_eq!(claims["scope"], "api");
    assert!(claims["exp"].as_i64().expect("exp") > now());

    // The same sign-in without `resource`: an opaque token (for userinfo), and an ID token
    // whose audience is the client. Neither is an API bearer token.
    let tokens = provider
        .try_user_tokens(&Browser::new(), PERSON, None)
        .await
        .expect("code flow without resource");
    let opaque = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(opaque.split('.').count(), 1, "opaque: {opaque}");
    invalid(verifier.verify(opaque).await);
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let why = invalid(verifier.verify(id_token).await);
    assert!(why.contains("aud"), "{why}");
}

#[tokio::test]
async fn a_machine_token_verifies_and_carries_client_id() {
    let provider = start_provider().await;
    let verifier = verifier_for(&provider).await;

    let token = provider
        .client_credentials_token(
            ProviderConfig::MACHINE_CLIENT_ID,
            ProviderConfig::MACHINE_CLIENT_SECRET,
        )
        .await;
    assert_eq!(jwt_part(&token, 0)["typ"], "at+jwt");
    let claims = verifier
        .verify(&token)
        .await
        .expect("machine token verifies");
    assert_eq!(claims["client_id"], ProviderConfig::MACHINE_CLIENT_ID);
    assert_eq!(claims["sub"], ProviderConfig::MACHINE_CLIENT_ID);
    assert_eq!(claims["aud"], ProviderConfig::API_AUDIENCE);
    assert!(claims.get("email").is_none(), "{claims:?}");

    // A wrong secret gets nothing; the code-flow clients may not use client_credentials.
    let (status, body) = provider
        .token_request(
            ProviderConfig::MACHINE_CLIENT_ID,
            "wrong",
            &[("grant_type", "client_credentials")],
        )
        .await
        .expect("token endpoint");
    assert_eq!(status, 401, "{body}");
    let (status, body) = provider
        .token_request(
            ProviderConfig::API_CLIENT_ID,
            ProviderConfig::API_CLIENT_SECRET,
            &[("grant_type", "client_credentials")],
        )
        .await
        .expect("token endpoint");
    assert_eq!(status, 400, "{body}");
    // Only the configured API is a valid resource.
    let (status, body) = provider
        .token_request(
            ProviderConfig::MACHINE_CLIENT_ID,
            ProviderConfig::MACHINE_CLIENT_SECRET,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://elsewhere.test"),
            ],
        )
        .await
        .expect("token endpoint");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_target");
}

#[tokio::test]
async fn tokens_forged_with_the_real_key_must_still_be_right() {
    let provider = start_provider().await;
    let verifier = verifier_for(&provider).await;
    let forger = Forger::new(&provider);

    // Control: the forging machinery produces tokens the verifier accepts.
    let claims = verifier
        .verify(&forger.forge(json!({})))
        .await
        .expect("a correct token signed with the real key verifies");
    assert_eq!(claims["email"], PERSON);

    let cases = [
        ("expired", json!({ "exp": now() - 60 }), "expired"),
        (
            "nbf in the future",
            json!({ "nbf": now() + 120 }),
            "not valid yet",
        ),
        ("no exp", json!({ "exp": null }), "exp"),
        (
            "wrong aud",
            json!({ "aud": "https://elsewhere.test" }),
            "aud",
        ),
        (
            "client as aud",
            json!({ "aud": ProviderConfig::API_CLIENT_ID }),
            "aud",
        ),
        ("no aud", json!({ "aud": null }), "aud"),
        ("wrong iss", json!({ "iss": "http://127.0.0.1:1" }), "iss"),
        ("no iss", json!({ "iss": null }), "iss"),
    ];
    for (case, changes, expected) in cases {
        let why = invalid(verifier.verify(&forger.forge(changes)).await);
        assert!(why.contains(expected), "{case}: {why}");
    }
    // Within the leeway (5 s) an expiry is tolerated.
    verifier
        .verify(&forger.forge(json!({ "exp": now() - 2 })))
        .await
        .expect("within the leeway");
}

#[tokio::test]
async fn unsigned_hmac_and_unknown_key_tokens_are_refused() {
    let provider = start_provider().await;
    let verifier = verifier_for(&provider).await;
    let forger = Forger::new(&provider);
    let claims = forger.claims(json!({}));

    // alg none, with and without the real kid.
    for header in [
        json!({ "alg": "none", "typ": "at+jwt", "kid": forger.kid }),
        json!({ "alg": "none" }),
    ] {
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let why = invalid(verifier.verify(&token).await);
        assert!(why.contains("alg none"), "{why}");
    }

    // HS256 "signed" with the public key, in every form an attacker might try.
    let public_jwk = {
        let mut jwk = forger.jwk.clone();
        let members = jwk.as_object_mut().expect("object");
        members.retain(|k, _| matches!(k.as_str(), "kty" | "n" | "e" | "kid" | "alg" | "use"));
        jwk
    };
    let published: Value = reqwest::get(provider.jwks_url())
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks JSON");
    let secrets = [
        rsa_public_pem(&forger.jwk).into_bytes(),
        public_jwk.to_string().into_bytes(),
        published.to_string().into_bytes(),
        forger.jwk["n"].as_str().expect("n").as_bytes().to_vec(),
    ];
    for secret in &secrets {
        let token = forger.sign_with(
            Algorithm::HS256,
            Some(&forger.kid),
            &claims,
            &EncodingKey::from_secret(secret),
        );
        let why = invalid(verifier.verify(&token).await);
        assert!(why.contains("HMAC"), "{why}");
    }

    // The real key under another algorithm than the one it is pinned to.
    let token = forger.sign_with(Algorithm::PS256, Some(&forger.kid), &claims, &forger.key);
    let why = invalid(verifier.verify(&token).await);
    assert!(why.contains("algorithm of its signing key"), "{why}");

    // The real key under a kid the provider does not publish.
    let token = forger.sign_with(Algorithm::RS256, Some("k-unknown"), &claims, &forger.key);
    let why = invalid(verifier.verify(&token).await);
    assert!(why.contains("kid"), "{why}");

    // A key the provider never had, under the real kid.
    let other = Forger::new(&start_provider().await);
    let token = other.sign_with(Algorithm::RS256, Some(&forger.kid), &claims, &other.key);
    let why = invalid(verifier.verify(&token).await);
    assert!(why.contains("signature"), "{why}");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_the_old_one_dropped() {
    let mut provider = start_provider().await;
    let verifier = verifier_for(&provider).await;
    let old = Forger::new(&provider);
    let before = provider
        .client_credentials_token(
            ProviderConfig::MACHINE_CLIENT_ID,
            ProviderConfig::MACHINE_CLIENT_SECRET,
        )
        .await;
    verifier.verify(&before).await.expect("before the rotation");

    let new_kid = provider.rotate_keys().await;
    assert_ne!(new_kid, old.kid);
    let new = Forger::new(&provider);
    assert_eq!(new.kid, new_kid);
    assert_ne!(new.jwk["n"], old.jwk["n"], "a new key, not just a new kid");

    // Tokens from the new key: the unknown kid makes the verifier refetch the JWKS.
    let machine = provider
        .client_credentials_token(
            ProviderConfig::MACHINE_CLIENT_ID,
            ProviderConfig::MACHINE_CLIENT_SECRET,
        )
        .await;
    assert_eq!(jwt_part(&machine, 0)["kid"], new_kid);
    let claims = verifier.verify(&machine).await.expect("after the rotation");
    assert_eq!(claims["client_id"], ProviderConfig::MACHINE_CLIENT_ID);
    let person = provider.user_access_token(PERSON).await;
    assert_eq!(
        verifier
            .verify(&person)
            .await
            .expect("person after rotation")["email"],
        PERSON
    );
    verifier
        .verify(&new.forge(json!({})))
        .await
        .expect("forged with the new key");

    // The old key is gone from the JWKS, so its tokens no longer verify.
    let why = invalid(verifier.verify(&before).await);
    assert!(why.contains("kid"), "{why}");
    invalid(verifier.verify(&old.forge(json!({}))).await);
}
