//! Hostile and malformed input: forged cookies, replayed login state, open redirects, bad JSON.

use crate::gate::{ADMIN_TOKEN, World};
use crate::support::{Browser, login_at_provider};
use crate::{complete_everything, sign_in};
use serde_json::Value;

#[tokio::test]
async fn tampered_and_forged_session_cookies_are_refused() {
    let world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/").await;
    complete_everything(&world, "alice@example.com").await;
    let good = browser
        .get(format!("{}/echo/ok", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(good.status, 200);
    let admitted = world.upstream.request_count();

    let host = world.gate.host_port();
    let cookie = browser.cookie(&host, "_clearance").expect("session cookie");
    // Flip one character in the middle of the sealed value.
    let mut bytes = cookie.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    for (label, value) in [
        ("tampered", tampered.as_str()),
        ("forged", "alice@example.com"),
        ("empty", ""),
        ("garbage", "%%%not-base64%%%"),
    ] {
        let evil = Browser::new();
        evil.set_cookie(&host, "_clearance", value);
        let r = evil
            .get(format!("{}/echo/evil", world.gate.url()))
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{label} cookie: {}", r.body);
        assert!(r.body.contains("invalid_session"), "{label}: {}", r.body);
        assert!(
            r.header_all("set-cookie")
                .iter()
                .any(|c| c.starts_with("_clearance=;")
                    || c.starts_with("_clearance=\"\"")
                    || c.contains("Max-Age=0")),
            "{label}: the bad cookie is cleared"
        );
        let json = evil
            .get_with(
                format!("{}/echo/evil", world.gate.url()),
                &[("accept", "application/json")],
            )
            .await
            .unwrap();
        assert_eq!(json.status, 401, "{label}");
    }
    assert_eq!(
        world.upstream.request_count(),
        admitted,
        "nothing admitted on a bad cookie"
    );
}

#[tokio::test]
async fn login_state_is_one_time_and_bound_to_the_browser() {
    let world = World::start().await;
    let host = world.gate.host_port();
    let browser = Browser::new();
    let start = browser
        .get(format!("{}/oauth2/start?rd=/echo/after", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(start.status, 302);
    let auth_url = start.location().unwrap();
    let query: std::collections::HashMap<_, _> = auth_url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256", "PKCE always on");
    assert!(query.contains_key("nonce") && query.contains_key("state"));
    let state = query["state"].clone();
    let login_cookie = browser
        .cookie(&host, "_clearance_login")
        .expect("login cookie");
    let done = login_at_provider(&browser, start, "alice@example.com")
        .await
        .unwrap();
    assert_eq!(done.url.path(), "/echo/after");

    // Replay: same browser binding, same state, state already used.
    browser.set_cookie(&host, "_clearance_login", &login_cookie);
    let replay = browser
        .get(format!(
            "{}/oauth2/callback?code=whatever&state={state}",
            world.gate.url()
        ))
        .await
        .unwrap();
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(
        replay.body.contains("login_state_unknown"),
        "{}",
        replay.body
    );

    // Unknown state with a valid binding cookie for another state.
    let other = Browser::new();
    let started = other
        .get(format!("{}/oauth2/start", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(started.status, 302);
    let unknown = other
        .get(format!(
            "{}/oauth2/callback?code=x&state=not-the-state",
            world.gate.url()
        ))
        .await
        .unwrap();
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.body.contains("login_state_mismatch"),
        "{}",
        unknown.body
    );

    // No binding cookie at all (the state was started in someone else's browser).
    let stranger = Browser::new();
    let r = stranger
        .get(format!(
            "{}/oauth2/callback?code=x&state={state}",
            world.gate.url()
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("login_state_missing"), "{}", r.body);
    // Missing parameters and provider errors.
    let r = stranger
        .get(format!("{}/oauth2/callback", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = stranger
        .get(format!(
            "{}/oauth2/callback?error=access_denied&state=x",
            world.gate.url()
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("access_denied"));
    assert!(
        stranger.cookie(&host, "_clearance").is_none(),
        "no session from a failed callback"
    );
}

#[tokio::test]
async fn open_redirects_are_refused() {
    let world = World::start().await;
    let browser = Browser::new();
    for rd in [
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "/\t/evil.example",
        "/%09/evil.example",
        "https://evil.example/",
        "http://evil.example",
        "https://127.0.0.1.evil.example/",
        "javascript:alert(1)",
        "\\\\evil.example",
    ] {
        let url = format!(
            "{}/oauth2/start?rd={}",
            world.gate.url(),
            percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let r = browser.get(&url).await.unwrap();
        assert_eq!(r.status, 400, "rd={rd:?} must be refused: {}", r.body);
        assert!(r.body.contains("invalid_redirect"), "{rd:?}");
        assert!(r.header("location").is_none());
    }
    // Relative paths and the gate's own host are fine.
    for rd in ["/", "/docs?a=b", &format!("{}/x", world.gate.url())] {
        let url = format!(
            "{}/oauth2/start?rd={}",
            world.gate.url(),
            percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let r = browser.get(&url).await.unwrap();
        assert_eq!(r.status, 302, "rd={rd:?} is allowed: {}", r.body);
    }
}

async fn post_raw(
    world: &World,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/.clearance/api/v1/records", world.gate.url()))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_records_are_refused_and_nothing_is_written() {
    let world = World::start().await;
    let json = "application/json";
    let valid = r#"{"subject":"alice@example.com","requirement":"security-awareness","version":"2026.1","completed_at":"2026-01-01T00:00:00Z"}"#;
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{not json".into(), "invalid_json"),
        ("empty", String::new(), "invalid_json"),
        ("array", "[1,2]".into(), "invalid_json"),
        (
            "unknown field",
            valid.replace("\"version\"", "\"colour\":\"red\",\"version\""),
            "invalid_json",
        ),
        (
            "missing field",
            r#"{"subject":"alice@example.com","requirement":"security-awareness"}"#.into(),
            "invalid_json",
        ),
        (
            "bad date",
            valid.replace("2026-01-01T00:00:00Z", "yesterday"),
            "invalid_json",
        ),
        (
            "bad version",
            valid.replace("2026.1", "one"),
            "invalid_json",
        ),
        (
            "unknown requirement",
            valid.replace("security-awareness", "karate"),
            "invalid_record",
        ),
        (
            "future completion",
            valid.replace("2026-01-01", "2999-01-01"),
            "invalid_record",
        ),
        (
            "newer version than current",
            valid.replace("2026.1", "2027"),
            "invalid_record",
        ),
        (
            "bad subject",
            valid.replace("alice@example.com", "a {b}"),
            "invalid_record",
        ),
        (
            "self-service source",
            valid.replace("\"version\"", "\"source\":\"self-service\",\"version\""),
            "invalid_record",
        ),
        (
            "unknown source",
            valid.replace("\"version\"", "\"source\":\"fax\",\"version\""),
            "invalid_json",
        ),
    ];
    for (label, body, code) in cases {
        let (status, answer) = post_raw(&world, Some(ADMIN_TOKEN), json, &body).await;
        assert_eq!(status, 400, "{label}: {answer}");
        assert_eq!(answer["error"], code, "{label}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| m.len() > 10),
            "{label}: a message says what is wrong: {answer}"
        );
    }
    let (status, answer) = post_raw(&world, Some(ADMIN_TOKEN), "text/plain", valid).await;
    assert_eq!(status, 400, "wrong content type: {answer}");
    let (status, _) = post_raw(&world, None, json, valid).await;
    assert_eq!(status, 401, "no token");
    let (status, _) = post_raw(&world, Some("wrong-token"), json, valid).await;
    assert_eq!(status, 401, "wrong token");

    let mut conn = crate::redis(&world).await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, "clearance:{*")
        .await
        .unwrap();
    assert!(keys.is_empty(), "nothing partial was written: {keys:?}");

    let (status, _) = post_raw(&world, Some(ADMIN_TOKEN), json, valid).await;
    assert_eq!(status, 201, "the valid record is accepted");
}
