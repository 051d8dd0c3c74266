//! Bearer tokens through the gate: API clients with real JWT access tokens from the real
//! provider are held to the same requirements as people in browsers; every kind of bad token is
//! a 401 with `WWW-Authenticate` and admits nothing; machine clients are exempt or inherit a
//! responsible person's compliance.

use crate::bearer_tokens::{Forger, now, rsa_public_pem};
use crate::gate::World;
use crate::support::ProviderConfig;
use crate::{complete_everything, record};
use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const BEARER: &str = r#"
[bearer]
audiences = ["https://api.clearance.test"]
leeway_secs = 5

[[bearer.machine_clients]]
client_id = "clearance-robot"
acts_for = "carl@example.com"
"#;

async fn call(world: &World, authorization: &str) -> (u16, Option<String>, String) {
    let r = reqwest::Client::new()
        .get(format!("{}/echo/api", world.gate.url()))
        .header("authorization", authorization)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, r.text().await.unwrap())
}

#[tokio::test]
async fn api_clients_are_gated_like_people() {
    let world = World::start_with(ProviderConfig::with_api, "", BEARER).await;
    let token = world.provider.user_access_token("alice@example.com").await;
    let auth = format!("Bearer {token}");
    let (status, _, body) = call(&world, &auth).await;
    assert_eq!(
        status, 403,
        "the person in the token is not compliant: {body}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["missing"].as_array().map(Vec::len), Some(3));
    assert_eq!(world.upstream.request_count(), 0);

    complete_everything(&world, "alice@example.com").await;
    let (status, _, body) = call(&world, &auth).await;
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echo["headers"]["x-auth-request-user"][0],
        "alice@example.com"
    );
    assert_eq!(
        echo["headers"]["authorization"][0],
        auth.as_str(),
        "APIs still get their token"
    );
    // Lowercase scheme is standard (RFC 7235) and accepted.
    let (status, _, _) = call(&world, &format!("bearer {token}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_tokens_get_401_and_admit_nothing() {
    let world = World::start_with(ProviderConfig::with_api, "", BEARER).await;
    complete_everything(&world, "alice@example.com").await;
    let forger = Forger::new(&world.provider);
    // A correct forgery (same key, right claims) passes: the refusals below are for their flaw.
    let (status, _, body) = call(&world, &format!("Bearer {}", forger.forge(json!({})))).await;
    assert_eq!(status, 200, "control: {body}");
    let before = world.upstream.request_count();

    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"sub": "sub-alice", "email": "alice@example.com", "iss": world.provider.issuer(),
                        "aud": ProviderConfig::API_AUDIENCE, "iat": now(), "exp": now() + 60});
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let jwks = world.provider.private_jwks();
    let public_pem = rsa_public_pem(&jwks["keys"][0]);
    let hs256 = forger.sign_with(
        Algorithm::HS256,
        Some(&world.provider.kid()),
        &claims,
        &EncodingKey::from_secret(public_pem.as_bytes()),
    );
    let unknown_kid = forger.sign_with(Algorithm::RS256, Some("no-such-key"), &claims, &forger.key);
    let cases = [
        ("alg none", format!("Bearer {alg_none}")),
        ("HS256 with the RSA public key", format!("Bearer {hs256}")),
        ("unknown kid", format!("Bearer {unknown_kid}")),
        (
            "expired",
            format!(
                "Bearer {}",
                forger.forge(json!({"exp": now() - 120, "iat": now() - 600}))
            ),
        ),
        (
            "not yet valid",
            format!("Bearer {}", forger.forge(json!({"nbf": now() + 600}))),
        ),
        (
            "wrong aud",
            format!(
                "Bearer {}",
                forger.forge(json!({"aud": "https://other.example"}))
            ),
        ),
        (
            "wrong iss",
            format!(
                "Bearer {}",
                forger.forge(json!({"iss": "https://evil.example"}))
            ),
        ),
        ("garbage", "Bearer not.a.jwt".to_owned()),
        ("no token", "Bearer".to_owned()),
        ("two spaces", format!("Bearer  {}", forger.forge(json!({})))),
        ("colon", format!("Bearer: {}", forger.forge(json!({})))),
        ("glued", format!("Bearer{}", forger.forge(json!({})))),
        (
            "trailing junk",
            format!("Bearer {} x", forger.forge(json!({}))),
        ),
    ];
    for (label, authorization) in cases {
        let (status, challenge, body) = call(&world, &authorization).await;
        assert_eq!(status, 401, "{label}: {body}");
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error="),
            "{label}: {challenge}"
        );
    }
    assert_eq!(world.upstream.request_count(), before, "nothing admitted");
    let log = crate::denials(&world).await;
    assert!(
        log.is_empty(),
        "bad credentials are not denials of a person: {log:?}"
    );
}

#[tokio::test]
async fn machine_clients_inherit_or_are_exempt() {
    let world = World::start_with(ProviderConfig::with_api, "", BEARER).await;
    let token = world
        .provider
        .client_credentials_token(
            ProviderConfig::MACHINE_CLIENT_ID,
            ProviderConfig::MACHINE_CLIENT_SECRET,
        )
        .await;
    // It acts for Carl, who has done nothing yet.
    let (status, _, body) = call(&world, &format!("Bearer {token}")).await;
    assert_eq!(status, 403, "{body}");
    for (req, version) in [
        ("security-awareness", "2026.1"),
        ("confidentiality-agreement", "1"),
        ("acceptable-use-policy", "3.0"),
    ] {
        record(&world, "carl@example.com", req, version, Utc::now()).await;
    }
    let (status, _, body) = call(&world, &format!("Bearer {token}")).await;
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echo["headers"]["x-auth-request-user"][0],
        "carl@example.com"
    );
    // Acting for a person never lends it their oversight role on the manager API.
    let r = reqwest::Client::new()
        .get(format!("{}/.clearance/api/v1/team", world.gate.url()))
        .bearer_auth(&token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("Machine clients"),
        "{body}"
    );

    // Named exempt: admitted without any requirement, and marked as a machine upstream.
    drop(world);
    let exempt = r#"
[bearer]
audiences = ["https://api.clearance.test"]

[[bearer.machine_clients]]
client_id = "clearance-robot"
exempt = true
"#;
    let world = World::start_with(ProviderConfig::with_api, "", exempt).await;
    let token = world
        .provider
        .client_credentials_token(
            ProviderConfig::MACHINE_CLIENT_ID,
            ProviderConfig::MACHINE_CLIENT_SECRET,
        )
        .await;
    let (status, _, body) = call(&world, &format!("Bearer {token}")).await;
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echo["headers"]["x-auth-request-user"][0],
        "client:clearance-robot"
    );

    // A token with no person from a client that is not configured is refused.
    let stranger = Forger::new(&world.provider).forge(json!({
        "email": null, "sub": "stranger", "client_id": "stranger"
    }));
    let (status, challenge, _) = call(&world, &format!("Bearer {stranger}")).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
}
