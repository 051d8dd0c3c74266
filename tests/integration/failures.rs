//! Outages and lifecycle: Redis stopped and restarted, provider key rotation, token refresh, sign-out.

use crate::gate::World;
use crate::support::{Browser, logout_at_provider};
use crate::{complete_everything, redis, sign_in, userinfo};
use redis::AsyncCommands;
use serde_json::Value;

/// For tests that edit Redis directly without publishing what changed.
const NO_CACHE: &str = "\n[cache]\nenabled = false\n";

#[tokio::test]
async fn redis_outage_fails_closed_and_recovers() {
    let mut world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/").await;
    complete_everything(&world, "alice@example.com").await;
    let ok = browser
        .get(format!("{}/echo/1", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);

    world.redis.stop().await;
    // The decision cache is bypassed once its invalidation subscription sees Redis go (at once
    // for a stopped server, within the 2 s ping timeout otherwise). Until then a person it holds
    // is still judged on what was read before the outage; a busy machine can show that window.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = browser
            .get(format!("{}/echo/2", world.gate.url()))
            .await
            .unwrap();
        if r.status == 503 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "the outage was not noticed within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let before = world.upstream.request_count();
    for accept in ["text/html", "application/json"] {
        let down = browser
            .get_with(
                format!("{}/echo/2", world.gate.url()),
                &[("accept", accept)],
            )
            .await
            .unwrap();
        assert_eq!(down.status, 503, "{}", down.body);
        assert!(down.body.contains("state_unavailable"), "{}", down.body);
    }
    let page = browser
        .get(format!("{}/echo/2", world.gate.url()))
        .await
        .unwrap();
    assert!(
        page.body.contains("temporarily unavailable"),
        "the page says it is an outage"
    );
    assert_eq!(
        world.upstream.request_count(),
        before,
        "nobody admitted while state is unreadable"
    );
    let records = reqwest::Client::new()
        .post(format!("{}/.clearance/api/v1/records", world.gate.url()))
        .bearer_auth(crate::gate::ADMIN_TOKEN)
        .json(&serde_json::json!({"subject": "a@b", "requirement": "security-awareness", "version": "1", "completed_at": "2026-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(records.status(), 503, "writes fail closed too");
    let ready = reqwest::get(format!("{}/readyz", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let alive = reqwest::get(format!("{}/healthz", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(alive.status(), 200, "the process stays up");

    // Redis comes back (empty: it keeps nothing on disk). The gate recovers by itself.
    world.redis.restart().await;
    let mut recovered = None;
    for _ in 0..50 {
        let r = browser
            .get(format!("{}/echo/3", world.gate.url()))
            .await
            .unwrap();
        if r.status != 503 {
            recovered = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("the gate recovered without a restart");
    // The session was lost with Redis' memory, so the person signs in again.
    assert!(
        recovered.status == 401 || recovered.status == 302,
        "got {} {}",
        recovered.status,
        recovered.body
    );
    let ready = reqwest::get(format!("{}/readyz", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn provider_key_rotation_is_survived() {
    let mut world = World::start().await;
    let first = Browser::new();
    let page = sign_in(&world, &first, "alice@example.com", "/").await;
    assert_eq!(page.status, 403);
    let old_kid = world.provider.kid();
    let new_kid = world.provider.rotate_keys().await;
    assert_ne!(old_kid, new_kid);
    // A fresh sign-in gets an ID token signed by a key Clearance has never seen.
    let second = Browser::new();
    let page = sign_in(&world, &second, "alice@example.com", "/").await;
    assert_eq!(
        page.status, 403,
        "signed in with the rotated key: {}",
        page.body
    );
    assert_eq!(page.url.path(), "/");
}

async fn session_keys(world: &World) -> Vec<String> {
    let mut conn = redis(world).await;
    conn.keys("clearance:sess:*").await.expect("KEYS")
}

async fn stored_session(world: &World) -> (String, Value) {
    let keys = session_keys(world).await;
    assert_eq!(keys.len(), 1, "one session: {keys:?}");
    let mut conn = redis(world).await;
    let json: String = conn.get(&keys[0]).await.expect("GET session");
    (
        keys[0].clone(),
        serde_json::from_str(&json).expect("session JSON"),
    )
}

/// Asks the gate to sign out: its answer (a 302), where it sends the browser, and that
/// address's query.
async fn sign_out(
    world: &World,
    browser: &Browser,
) -> (
    crate::support::Response,
    url::Url,
    std::collections::HashMap<String, String>,
) {
    let out = browser
        .get(format!("{}/oauth2/sign_out", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(out.status, 302);
    let end = out.location().unwrap();
    let query = end.query_pairs().into_owned().collect();
    (out, end, query)
}

#[tokio::test]
async fn tokens_refresh_before_expiry_and_sign_out_ends_both_sessions() {
    // Access tokens live 60 s; asking to refresh 3600 s early makes every request refresh.
    // The test edits the stored session behind the gate's back (nothing published), so the
    // gate must read Redis every time.
    let world = World::start_with(|p| p, "", NO_CACHE).await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/").await;
    let (_, before) = stored_session(&world).await;
    let info = userinfo(&world, &browser).await;
    assert_eq!(info["email"], "alice@example.com");
    let (key, after) = stored_session(&world).await;
    assert_eq!(before["access_token"], after["access_token"], "not due yet");

    // Make the stored access token due: it expires "now".
    let mut due = after.clone();
    due["access_expires_at"] = Value::String(chrono::Utc::now().to_rfc3339());
    let mut conn = redis(&world).await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(due.to_string())
        .arg("KEEPTTL")
        .query_async(&mut conn)
        .await
        .expect("SET");
    userinfo(&world, &browser).await;
    let (_, refreshed) = stored_session(&world).await;
    assert_ne!(
        refreshed["access_token"], after["access_token"],
        "refreshed"
    );
    assert!(
        refreshed["access_expires_at"].as_str() > due["access_expires_at"].as_str(),
        "new expiry"
    );

    // Sign out: local session gone, provider's end_session called with id_token_hint.
    let (out, end, query) = sign_out(&world, &browser).await;
    assert!(
        end.as_str()
            .starts_with(&world.provider.end_session_endpoint()),
        "{end}"
    );
    assert!(query.contains_key("id_token_hint"));
    assert!(query.contains_key("state"));
    assert_eq!(
        query["post_logout_redirect_uri"],
        format!("{}/oauth2/signed_out", world.gate.url())
    );
    let landed = logout_at_provider(&browser, out).await.unwrap();
    assert_eq!(landed.status, 200, "{}", landed.body);
    assert_eq!(landed.url.path(), "/oauth2/signed_out");
    assert!(session_keys(&world).await.is_empty(), "session deleted");
    let again = browser
        .get(format!("{}/echo/x", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(again.status, 302, "signed out means sign in again");
    // The provider session ended too: signing in shows the login form again.
    let page = sign_in(&world, &browser, "carl@example.com", "/").await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("Carl"),
        "signed in as someone else: {}",
        page.body
    );
}

/// The decision cache keeps sessions without their tokens: a session served from it must still
/// be refreshed when its access token is due, and sign-out must still send the ID token hint.
#[tokio::test]
async fn a_cached_session_still_refreshes_and_signs_out_with_its_tokens() {
    let clock = crate::gate::TestClock::new();
    let world = World::start_clocked(|p| p, "", "", Some(clock.clone())).await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/").await;
    let info_url = format!("{}/oauth2/userinfo", world.gate.url());
    for _ in 0..2 {
        let info = browser.get(&info_url).await.unwrap();
        assert_eq!(info.status, 200, "{}", info.body);
    }
    let (_, before) = stored_session(&world).await;
    // Served from the cache now: no round trip to Redis.
    let trips = world.gate.round_trips.count();
    assert_eq!(browser.get(&info_url).await.unwrap().status, 200);
    assert_eq!(
        world.gate.round_trips.count(),
        trips,
        "the session was cached"
    );

    // Access tokens live 60 s and are refreshed 10 s early.
    clock.advance(chrono::Duration::seconds(55));
    let info = browser.get(&info_url).await.unwrap();
    assert_eq!(info.status, 200, "{}", info.body);
    let (_, refreshed) = stored_session(&world).await;
    assert_ne!(
        refreshed["access_token"], before["access_token"],
        "refreshed although the cached copy has no refresh token"
    );
    assert!(refreshed["refresh_token"].is_string(), "{refreshed}");

    // Cache it again, then sign out: the hint comes from the stored tokens.
    for _ in 0..2 {
        assert_eq!(browser.get(&info_url).await.unwrap().status, 200);
    }
    // The new token's lifetime counts from the gate's clock, so it is not due again at once.
    let (_, after) = stored_session(&world).await;
    assert_eq!(
        after["access_token"], refreshed["access_token"],
        "refreshed once, not on every request"
    );
    let (_, end, query) = sign_out(&world, &browser).await;
    assert_eq!(
        query.get("id_token_hint").map(String::as_str),
        refreshed["id_token"].as_str(),
        "{end}"
    );
    assert!(session_keys(&world).await.is_empty(), "session deleted");
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    // The stored session is edited behind the gate's back: no decision cache.
    let world = World::start_with(|p| p, "", NO_CACHE).await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/").await;
    // The person signs out at the provider directly: their refresh token dies with that session.
    logout_at_provider(&browser, world.provider.end_session_endpoint())
        .await
        .expect("provider logout");
    let (key, mut session) = stored_session(&world).await;
    session["access_expires_at"] = Value::String(chrono::Utc::now().to_rfc3339());
    let mut conn = redis(&world).await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(session.to_string())
        .arg("KEEPTTL")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let r = browser
        .get(format!("{}/echo/x", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(r.status, 302, "sent to sign in again: {}", r.body);
    assert_eq!(r.location().unwrap().path(), "/oauth2/start");
    assert!(
        session_keys(&world).await.is_empty(),
        "the dead session was deleted"
    );
}
