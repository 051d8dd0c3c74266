//! ID-token verification on real tokens from the built-in development provider: signature,
//! nonce, audience and at_hash are all enforced.

use base64::Engine as _;
use clearance::auth::oidc::Oidc;
use clearance::config::{ClaimNames, OidcSettings};
use clearance::demo::provider::{self, DevAccount, DevClient, DevProviderConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:1/oauth2/callback";

fn settings(issuer: &str, client_id: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.parse().unwrap(),
        client_id: client_id.into(),
        client_secret: "secret".into(),
        scopes: vec!["openid".into()],
        redirect_url: REDIRECT.parse().unwrap(),
        post_logout_redirect_url: "http://127.0.0.1:1/".parse().unwrap(),
        claims: ClaimNames {
            subject: "email".into(),
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
            person_type: "employee_type".into(),
            manager: "manager".into(),
        },
        identity: Default::default(),
        refresh_before: Duration::from_secs(60),
        jwks_refetch_cooldown: Duration::from_secs(30),
    }
}

/// Runs the authorization code flow by hand and returns (id_token, access_token).
async fn tokens(issuer: &str, nonce: &str) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let verifier = "a-code-verifier-that-is-long-enough-for-pkce-0123456789";
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
    let page = http
        .get(format!("{issuer}/authorize"))
        .query(&[
            ("client_id", "clearance"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st"),
            ("nonce", nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let html = scraper::Html::parse_document(&page);
    let form_sel = scraper::Selector::parse("form").unwrap();
    let input_sel = scraper::Selector::parse("input[name]").unwrap();
    let form = html
        .select(&form_sel)
        .find(|f| {
            f.select(&input_sel)
                .any(|i| i.value().attr("value") == Some("alice@example.com"))
        })
        .expect("account form");
    let action = form.value().attr("action").unwrap();
    let fields: Vec<(String, String)> = form
        .select(&input_sel)
        .map(|i| {
            (
                i.value().attr("name").unwrap().to_owned(),
                i.value().attr("value").unwrap_or("").to_owned(),
            )
        })
        .collect();
    let url = url::Url::parse(issuer).unwrap().join(action).unwrap();
    let redirect = http.post(url).form(&fields).send().await.unwrap();
    let location = url::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth("clearance", Some("secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        token["id_token"].as_str().unwrap().to_owned(),
        token["access_token"].as_str().unwrap().to_owned(),
    )
}

#[actix_web::test]
async fn id_tokens_are_verified_with_nonce_audience_and_at_hash() {
    let claims = json!({"sub": "sub-alice", "email": "alice@example.com"});
    let idp = provider::start(DevProviderConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        accounts: vec![DevAccount {
            login: "alice@example.com".into(),
            description: String::new(),
            claims: claims.as_object().cloned().unwrap(),
        }],
        clients: vec![DevClient {
            client_id: "clearance".into(),
            client_secret: "secret".into(),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![],
        }],
        access_token_ttl: Duration::from_secs(60),
        id_token_ttl: Duration::from_secs(60),
    })
    .await
    .unwrap();
    let issuer = idp.issuer().to_owned();
    let oidc = Oidc::new(settings(&issuer, "clearance")).unwrap();
    oidc.discover().await.unwrap();

    let (id_token, access_token) = tokens(&issuer, "the-nonce").await;
    let verified = oidc
        .verify(&id_token, &access_token, Some("the-nonce"))
        .await
        .unwrap();
    assert_eq!(verified["sub"], "sub-alice");

    let wrong_at = oidc
        .verify(&id_token, "another-access-token", Some("the-nonce"))
        .await;
    assert!(
        format!("{:?}", wrong_at.unwrap_err()).contains("at_hash"),
        "at_hash is checked"
    );

    let wrong_nonce = oidc
        .verify(&id_token, &access_token, Some("other-nonce"))
        .await;
    assert!(wrong_nonce.is_err(), "nonce is checked");

    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap(),
    )
    .unwrap();
    payload["sub"] = json!("sub-mallory");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let forged = parts.join(".");
    assert!(
        oidc.verify(&forged, &access_token, Some("the-nonce"))
            .await
            .is_err(),
        "signature is checked"
    );

    let other_client = Oidc::new(settings(&issuer, "someone-else")).unwrap();
    other_client.discover().await.unwrap();
    assert!(
        other_client
            .verify(&id_token, &access_token, Some("the-nonce"))
            .await
            .is_err(),
        "audience is checked"
    );
    idp.stop().await;
}
