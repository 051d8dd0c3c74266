//! Sanity tests of the harness itself: services boot, the provider's code flow works end to end
//! (login, consent, PKCE, tokens, userinfo, refresh, logout), the upstream routes behave.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt as _;
use rand::Rng as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::browser::parse_set_cookie;
use super::*;

fn pkce_pair() -> (String, String) {
    let verifier: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn auth_url(provider: &OidcProvider, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let mut url = url::Url::parse(&provider.authorization_endpoint()).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile groups")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("nonce", &format!("nonce-{state}"))
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.into()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn token_request(provider: &OidcProvider, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(provider.token_endpoint())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("token JSON"))
}

#[tokio::test]
async fn harness_boots_services() {
    // Redis: answers, loses data on restart, frees its port on stop.
    let mut redis = RedisServer::start().await;
    assert!(redis.url().starts_with("redis://127.0.0.1:"));
    assert!(
        redis
            .raw_command("SET k v")
            .await
            .unwrap()
            .starts_with("+OK")
    );
    redis.stop().await;
    assert!(
        !port_is_open(redis.port()).await,
        "port still open after stop"
    );
    redis.restart().await;
    assert!(
        redis
            .raw_command("PING")
            .await
            .unwrap()
            .starts_with("+PONG")
    );
    assert!(redis.raw_command("GET k").await.unwrap().starts_with("$-1"));

    // Provider: discovery and JWKS; key rotation replaces the kid.
    let upstream = Upstream::start().await;
    let cfg = ProviderConfig::standard(
        &format!("{}/echo/callback", upstream.url()),
        &format!("{}/echo/bye", upstream.url()),
    );
    let mut provider = OidcProvider::start(cfg).await;
    let browser = Browser::new();
    let discovery: Value = browser
        .get(provider.discovery_url())
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(discovery["issuer"], provider.issuer());
    assert_eq!(discovery["userinfo_endpoint"], provider.userinfo_endpoint());
    assert_eq!(
        discovery["end_session_endpoint"],
        provider.end_session_endpoint()
    );
    let jwks: Value = browser
        .get(provider.jwks_url())
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "k-initial");
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert!(jwks["keys"][0].get("d").is_none(), "private key exposed");

    let old_kid = provider.kid();
    let new_kid = provider.rotate_keys().await;
    assert_ne!(old_kid, new_kid);
    let jwks: Value = browser
        .get(provider.jwks_url())
        .await
        .unwrap()
        .json()
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.as_str()]);

    // Upstream: echo reports the request as received.
    let echo: Value = browser
        .get_with(
            format!("{}/echo/a/b?x=1&y=2", upstream.url()),
            &[("x-test", "one"), ("cookie", "c=1")],
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/echo/a/b");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["headers"]["x-test"][0], "one");
    assert_eq!(echo["headers"]["cookie"][0], "c=1");
    assert_eq!(
        upstream.requests().last().map(String::as_str),
        Some("GET /echo/a/b?x=1&y=2")
    );
}

#[tokio::test]
async fn provider_code_flow_refresh_userinfo_logout() {
    let upstream = Upstream::start().await;
    let redirect_uri = format!("{}/echo/callback", upstream.url());
    let post_logout = format!("{}/echo/bye", upstream.url());
    let provider = OidcProvider::start(ProviderConfig::standard(&redirect_uri, &post_logout)).await;
    let browser = Browser::new();

    // Login + consent, landing on the redirect_uri with a code.
    let (verifier, challenge) = pkce_pair();
    let landed = login_at_provider(
        &browser,
        auth_url(&provider, &redirect_uri, "s1", &challenge),
        "alice@example.com",
    )
    .await
    .unwrap();
    let echo: Value = landed.json().unwrap();
    assert_eq!(echo["path"], "/echo/callback");
    let query = echo["query"].as_str().unwrap();
    assert_eq!(query_param(query, "state").as_deref(), Some("s1"));
    assert_eq!(
        query_param(query, "iss").as_deref(),
        Some(provider.issuer().as_str())
    );
    let code = query_param(query, "code").expect("code in callback");
    assert!(browser.cookie(&provider.host_port(), "_session").is_some());

    // Code exchange with PKCE; a refresh token is issued without offline_access.
    let (status, tokens) = token_request(
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_part(id_token, 0)["kid"], provider.kid());
    assert_eq!(jwt_part(id_token, 0)["alg"], "RS256");
    let claims = jwt_part(id_token, 1);
    assert_eq!(claims["sub"], "sub-alice");
    assert_eq!(claims["nonce"], "nonce-s1");
    assert_eq!(claims["aud"], CLIENT_ID);
    assert!(
        claims.get("email").is_none(),
        "claims belong in userinfo: {claims}"
    );

    let userinfo: Value = reqwest::Client::new()
        .get(provider.userinfo_endpoint())
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], "sub-alice");
    assert_eq!(userinfo["email"], "alice@example.com");
    assert_eq!(userinfo["email_verified"], true);
    assert_eq!(userinfo["name"], "Alice Admitted");
    assert_eq!(userinfo["employee_type"], "employee");
    assert_eq!(userinfo["manager"], "mona@example.com");
    assert_eq!(
        userinfo["groups"],
        serde_json::json!(["staff", "engineering"])
    );

    let (status, refreshed) = token_request(
        &provider,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["access_token"].is_string());
    assert_ne!(refreshed["access_token"], tokens["access_token"]);

    // Second authorization: single sign-on, no form; a wrong PKCE verifier is refused.
    let (_, challenge2) = pkce_pair();
    let landed = login_at_provider(
        &browser,
        auth_url(&provider, &redirect_uri, "s2", &challenge2),
        "alice@example.com",
    )
    .await
    .unwrap();
    let query = landed.json::<Value>().unwrap()["query"]
        .as_str()
        .unwrap()
        .to_owned();
    let code2 = query_param(&query, "code").unwrap();
    let (status, error) = token_request(
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code2),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid_grant");

    // RP-initiated logout back to the post_logout_redirect_uri.
    let mut logout = url::Url::parse(&provider.end_session_endpoint()).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &post_logout)
        .append_pair("state", "bye-state");
    let after = logout_at_provider(&browser, logout).await.unwrap();
    let echo: Value = after.json().unwrap();
    assert_eq!(echo["path"], "/echo/bye");
    assert_eq!(
        query_param(echo["query"].as_str().unwrap(), "state").as_deref(),
        Some("bye-state")
    );
    assert!(browser.cookie(&provider.host_port(), "_session").is_none());

    // The session is gone: the next authorization shows the login form again.
    let (page, _) = browser
        .get_follow(auth_url(&provider, &redirect_uri, "s3", &challenge))
        .await
        .unwrap();
    assert!(
        page.forms()
            .iter()
            .any(|f| f.field("prompt") == Some("login")),
        "{}",
        page.body
    );
    // The refresh token died with the session.
    let (status, _) = token_request(
        &provider,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn provider_rejects_unknown_login() {
    let upstream = Upstream::start().await;
    let redirect_uri = format!("{}/echo/callback", upstream.url());
    let cfg = ProviderConfig::standard(&redirect_uri, &format!("{}/echo/bye", upstream.url()));
    let provider = OidcProvider::start(cfg).await;
    let browser = Browser::new();
    let (_, challenge) = pkce_pair();
    let err = login_at_provider(
        &browser,
        auth_url(&provider, &redirect_uri, "s", &challenge),
        "mallory@example.com",
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("rejected login"), "{err:#}");
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| !r.contains("/echo/callback"))
    );
    assert!(
        provider
            .logs()
            .iter()
            .any(|l| l.contains("rejected unknown login"))
    );
}

#[tokio::test]
async fn upstream_streams_and_statuses() {
    let upstream = Upstream::start().await;
    let client = reqwest::Client::new();

    let n = 1_000_003;
    let resp = client
        .get(format!("{}/download?bytes={n}", upstream.url()))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let announced = resp.headers()["x-sha256"].to_str().unwrap().to_owned();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), n);
    assert_eq!(body.as_ref(), Upstream::pattern(n).as_slice());
    assert_eq!(announced, Upstream::sha256_hex(&body));

    let data = Upstream::pattern(3 * 1024 * 1024 + 7);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(100_000).map(|c| Ok(c.to_vec())).collect();
    let answer: Value = client
        .post(format!("{}/upload", upstream.url()))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["bytes"], data.len());
    assert_eq!(answer["sha256"], Upstream::sha256_hex(&data));

    let started = Instant::now();
    let resp = client
        .get(format!("{}/sse", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut first_at = None;
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        first_at.get_or_insert_with(|| started.elapsed());
    }
    let expected: String = (1..=5).map(|n| format!("data: tick {n}\n\n")).collect();
    assert_eq!(text, expected);
    assert!(
        first_at.unwrap() < Duration::from_millis(500),
        "first tick late"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));

    let started = Instant::now();
    let resp = client
        .get(format!("{}/slow?ms=300", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "slow");
    assert!(started.elapsed() >= Duration::from_millis(300));

    for code in [204, 404, 418, 503] {
        let resp = client
            .get(format!("{}/status/{code}", upstream.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code);
    }
}

#[tokio::test]
async fn browser_jar_and_redirects() {
    let upstream = Upstream::start().await;
    let browser = Browser::new();
    let hp = format!("127.0.0.1:{}", upstream.port());
    browser.set_cookie(&hp, "a", "1");
    browser.set_cookie("127.0.0.1:1", "other", "x");
    let echo: Value = browser
        .get(format!("{}/echo", upstream.url()))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(echo["headers"]["cookie"][0], "a=1");
    assert_eq!(browser.cookie(&hp, "a").as_deref(), Some("1"));
    browser.clear_cookies();
    assert!(browser.cookie(&hp, "a").is_none());

    // A redirect is returned as is, and follow() reports the hops.
    let resp = browser
        .get(format!("{}/status/302", upstream.url()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 302);
    assert!(!resp.is_redirect(), "no Location, nothing to follow");
    let resp = browser
        .post_form(format!("{}/echo/form", upstream.url()), &[("a", "1 2")])
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["body"], "a=1+2");
}

#[test]
fn set_cookie_parsing() {
    let c =
        parse_set_cookie("_session=abc; path=/; expires=Fri, 01 Jan 2100 00:00:00 GMT; httponly")
            .unwrap();
    assert_eq!(
        (c.name.as_str(), c.value.as_str(), c.expired),
        ("_session", "abc", false)
    );
    let c = parse_set_cookie("s=; Max-Age=0; Path=/; Secure").unwrap();
    assert!(c.expired);
    let c = parse_set_cookie("s=x; Max-Age=3600; expires=Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
    assert!(!c.expired, "Max-Age wins over Expires");
    let c = parse_set_cookie("_interaction=; path=/interaction/x; expires=Thu, 01 Jan 1970 00:00:00 GMT; samesite=lax; httponly").unwrap();
    assert!(c.expired);
    let c = parse_set_cookie("t=\"q\"; expires=Thu, 01-Jan-1970 00:00:00 GMT").unwrap();
    assert_eq!(c.value, "q");
    assert!(c.expired);
    let c = parse_set_cookie("k=v=w; Domain=example.com; Secure").unwrap();
    assert_eq!((c.value.as_str(), c.expired), ("v=w", false));
    assert!(parse_set_cookie("novalue").is_none());
}
