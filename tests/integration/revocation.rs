//! Revocation across instances: two gates on one Redis see each other's changes within a second
//! (a revocation, a new record, a directory deactivation, sign out everywhere) although both keep
//! a decision cache; a gate that lost its invalidation subscription does not serve from its
//! cache; OpenID Connect back-channel logout from the real provider, and the logout tokens the
//! gate must refuse.

use crate::bearer_tokens::{Forger, now};
use crate::gate::{ADMIN_TOKEN, Gate, World, config};
use crate::support::{Browser, TcpProxy, free_port, logout_at_provider};
use crate::{complete_everything, record, sign_in};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.com";
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A second gate on the world's Redis, provider and upstream (same cookie secret, so the
/// browser's session cookie works on both).
pub async fn second_gate(world: &World) -> Gate {
    second_gate_with(world, "").await
}

/// [`second_gate`] with `extra` at the end of its configuration.
pub async fn second_gate_with(world: &World, extra: &str) -> Gate {
    let port = free_port();
    let toml = config(
        port,
        &world.redis.url(),
        &world.provider.issuer(),
        &world.upstream.url(),
        "",
        extra,
    );
    let gate = Gate::start_with(port, toml);
    gate.wait_ready().await;
    gate
}

/// Polls `url` until its status satisfies `wanted`; fails after `limit`.
async fn poll_until(
    browser: &Browser,
    url: &str,
    limit: Duration,
    what: &str,
    wanted: impl Fn(u16) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let r = browser.get(url).await.expect("gate answers");
        if wanted(r.status.as_u16()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} after {limit:?}: {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Gives gate `b` the browser's cookies for the world's gate (a browser would send the same
/// cookie to both behind one host name).
pub fn share_cookies(browser: &Browser, world: &World, b: &Gate) {
    for (name, value) in browser.cookies(&world.gate.host_port()) {
        browser.set_cookie(&b.host_port(), &name, &value);
    }
}

/// A store on the world's Redis of its own, as another instance or a command-line tool has:
/// what it changes, the gates learn only through Redis.
fn store_elsewhere(world: &World) -> clearance::store::SharedStore {
    let settings = clearance::config::from_toml_str(&config(
        free_port(),
        &world.redis.url(),
        &world.provider.issuer(),
        &world.upstream.url(),
        "",
        "",
    ))
    .unwrap();
    clearance::redis_store(&settings).unwrap()
}

/// Alice, compliant and signed in, admitted (from the cache once it has proof of delivery):
/// her browser and a gated URL.
async fn alice_admitted(world: &World) -> (Browser, String) {
    let browser = Browser::new();
    sign_in(world, &browser, ALICE, "/").await;
    complete_everything(world, ALICE).await;
    let url = format!("{}/echo/x", world.gate.url());
    poll_until(&browser, &url, Duration::from_secs(5), "admitted", |s| {
        s == 200
    })
    .await;
    (browser, url)
}

async fn within_a_second(browser: &Browser, url: &str, what: &str, status: u16) {
    poll_until(browser, url, Duration::from_secs(1), what, |s| s == status).await;
}

async fn status(browser: &Browser, url: &str) -> u16 {
    browser
        .get(url)
        .await
        .expect("gate answers")
        .status
        .as_u16()
}

fn admin_post(gate_url: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{gate_url}/.clearance/api/v1/{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
}

#[tokio::test]
async fn revocation_two_instances_see_each_others_changes_within_a_second() {
    let world = World::start().await;
    let b = second_gate(&world).await;
    let browser = Browser::new();
    sign_in(&world, &browser, ALICE, "/").await;
    complete_everything(&world, ALICE).await;
    share_cookies(&browser, &world, &b);
    let at_a = format!("{}/echo/a", world.gate.url());
    let at_b = format!("{}/echo/b", b.url());
    // Both caches warm.
    for url in [&at_a, &at_b, &at_a, &at_b] {
        assert_eq!(status(&browser, url).await, 200, "{url}");
    }

    // A revocation through A.
    let r = admin_post(
        &world.gate.url(),
        "revocations",
        json!({"subject": ALICE, "requirement": "security-awareness", "reason": "test"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    within_a_second(&browser, &at_b, "B refuses after a revocation on A", 403).await;
    assert_eq!(status(&browser, &at_a).await, 403);

    // A new record through A: B's cached denial does not outlive it.
    let r = record(
        &world,
        ALICE,
        "security-awareness",
        "2026.1",
        chrono::Utc::now(),
    )
    .await;
    assert_eq!(r.status(), 201);
    within_a_second(&browser, &at_b, "B admits after a new record on A", 200).await;

    // A directory deactivation written through the store, as SCIM and `directory import` do
    // (not through either gate).
    let store = store_elsewhere(&world);
    let person: clearance::domain::Person = serde_json::from_value(json!({
        "subject": ALICE, "user_name": ALICE, "active": false, "source": "csv",
        "updated_at": chrono::Utc::now(),
    }))
    .unwrap();
    store.put_person(&person, "csv:test").await.unwrap();
    within_a_second(&browser, &at_b, "B refuses a deactivated person", 403).await;
    within_a_second(&browser, &at_a, "A refuses a deactivated person", 403).await;

    // Sign out everywhere through A: the session stops working on both.
    let r = admin_post(
        &world.gate.url(),
        &format!("subjects/{ALICE}/sign-out"),
        json!({}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 1, "{body}");
    within_a_second(&browser, &at_b, "B: signed out everywhere", 302).await;
    assert_eq!(
        status(&browser, &at_a).await,
        302,
        "A: signed out everywhere"
    );
    let chain: Vec<String> = store
        .audit_chains()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.lines)
        .collect();
    assert!(
        chain
            .iter()
            .any(|l| l.contains("sessions.ended") && l.contains("sign_out_everywhere")),
        "audited"
    );
    // Nobody left to sign out.
    let r = admin_post(&b.url(), &format!("subjects/{ALICE}/sign-out"), json!({}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 0, "{body}");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/.clearance/api/v1/subjects/{ALICE}/sign-out",
            world.gate.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "admin token required");
}

/// Commands Redis has processed so far.
async fn commands_processed(world: &World) -> u64 {
    let info = world.redis.raw_command("INFO stats").await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_commands_processed in INFO stats")
}

#[tokio::test]
async fn revocation_a_cache_hit_reads_nothing_from_redis() {
    let world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, ALICE, "/").await;
    complete_everything(&world, ALICE).await;
    let url = format!("{}/echo/x", world.gate.url());
    assert_eq!(status(&browser, &url).await, 200);
    assert_eq!(status(&browser, &url).await, 200);
    let before = commands_processed(&world).await;
    for _ in 0..20 {
        assert_eq!(status(&browser, &url).await, 200);
    }
    let spent = commands_processed(&world).await - before;
    // INFO itself, and perhaps a ping of the invalidation subscription; without the cache it
    // would be at least 6 commands a request (session GET + PTTL, the standing's four reads).
    assert!(spent <= 4, "{spent} Redis commands for 20 cached requests");
}

#[tokio::test]
async fn revocation_cache_is_not_served_while_invalidations_are_lost() {
    let mut world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, ALICE, "/").await;
    complete_everything(&world, ALICE).await;
    let url = format!("{}/echo/x", world.gate.url());
    assert_eq!(status(&browser, &url).await, 200);
    assert_eq!(status(&browser, &url).await, 200, "served from the cache");

    // The gate's subscription is cut, and the records change behind its back (nothing is
    // published): the cache must not keep admitting.
    world
        .redis
        .raw_command("CLIENT KILL TYPE pubsub")
        .await
        .unwrap();
    world
        .redis
        .raw_command("DEL clearance:{alice@example.com}:records")
        .await
        .unwrap();
    within_a_second(&browser, &url, "refused once the records are gone", 403).await;

    // It subscribes again by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = world
            .redis
            .raw_command("PUBSUB NUMSUB clearance:invalidate")
            .await
            .unwrap();
        if reply.contains(":1\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "not resubscribed: {reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    complete_everything(&world, ALICE).await;
    within_a_second(&browser, &url, "admitted again", 200).await;

    // A real Redis restart (it keeps nothing): nothing is admitted from the cache afterwards.
    world.redis.restart().await;
    poll_until(
        &browser,
        &url,
        Duration::from_secs(10),
        "after the restart the session is gone with Redis' memory",
        |s| {
            assert_ne!(s, 200, "admitted from a stale cache after a restart");
            s == 302
        },
    )
    .await;
}

#[tokio::test]
async fn revocation_cache_serves_nothing_while_it_cannot_subscribe() {
    let world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, ALICE, "/").await;
    complete_everything(&world, ALICE).await;
    let url = format!("{}/echo/x", world.gate.url());
    // Warm: a request costs no round trip.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = world.gate.round_trips.count();
        assert_eq!(status(&browser, &url).await, 200);
        if world.gate.round_trips.count() == before {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never served");
    }

    // The subscription is cut, and Redis refuses a new one from now on (the connection for
    // everything else keeps working): invalidations cannot be received at all.
    world
        .redis
        .raw_command("ACL SETUSER default -subscribe -psubscribe -ssubscribe")
        .await
        .unwrap();
    world
        .redis
        .raw_command("CLIENT KILL TYPE pubsub")
        .await
        .unwrap();
    // Once the gate has noticed, every request reads Redis: nothing is served from the cache,
    // and nothing read meanwhile is kept for the next request.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = world.gate.round_trips.count();
        assert_eq!(status(&browser, &url).await, 200);
        if world.gate.round_trips.count() > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache kept serving without invalidations"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..5 {
        let before = world.gate.round_trips.count();
        assert_eq!(status(&browser, &url).await, 200);
        assert!(
            world.gate.round_trips.count() > before,
            "a request was served from the cache while it cannot hear invalidations"
        );
    }
    // A change nobody announces (nothing can be published to it) is seen at once.
    world
        .redis
        .raw_command("DEL clearance:{alice@example.com}:records")
        .await
        .unwrap();
    assert_eq!(status(&browser, &url).await, 403, "refused at once");
    world
        .redis
        .raw_command("ACL SETUSER default +@all")
        .await
        .unwrap();
}

/// Logout tokens signed with the provider's real key.
struct LogoutTokens {
    forger: Forger,
    kid: String,
    issuer: String,
}

impl LogoutTokens {
    fn new(world: &World) -> Self {
        Self {
            forger: Forger::new(&world.provider),
            kid: world.provider.kid(),
            issuer: world.provider.issuer(),
        }
    }

    /// A valid token for alice's `sub` with `changes` applied (`null` removes a claim).
    fn claims(&self, changes: Value) -> Value {
        let mut claims = json!({
            "iss": self.issuer, "aud": "clearance", "iat": now(), "exp": now() + 120,
            "jti": format!("jti-{}", rand_suffix()), "sub": "sub-alice",
            "events": { LOGOUT_EVENT: {} },
        });
        let target = claims.as_object_mut().unwrap();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                target.remove(name);
            } else {
                target.insert(name.clone(), value.clone());
            }
        }
        claims
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("logout+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.forger.key).unwrap()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    (now() as u64) * 1000 + N.fetch_add(1, Ordering::SeqCst)
}

async fn post_logout(gate_url: &str, token: Option<&str>) -> reqwest::Response {
    let form: Vec<(&str, &str)> = token.map(|t| vec![("logout_token", t)]).unwrap_or_default();
    reqwest::Client::new()
        .post(format!("{gate_url}/oauth2/backchannel_logout"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn revocation_backchannel_logout_from_the_real_provider_ends_the_session_everywhere() {
    let bearer = format!(
        "[bearer]\naudiences = [\"{}\"]\n",
        crate::support::ProviderConfig::API_AUDIENCE
    );
    let world = World::start_with(|p| p.with_backchannel_logout().with_api(), "", &bearer).await;
    let b = second_gate_with(&world, &bearer).await;
    let browser = Browser::new();
    sign_in(&world, &browser, ALICE, "/").await;
    complete_everything(&world, ALICE).await;
    share_cookies(&browser, &world, &b);
    let at_a = format!("{}/echo/a", world.gate.url());
    let at_b = format!("{}/echo/b", b.url());
    for url in [&at_a, &at_b, &at_a, &at_b] {
        assert_eq!(status(&browser, url).await, 200, "{url}");
    }
    // An API token of hers, issued before she signs out.
    let token = world.provider.user_access_token(ALICE).await;
    let with_token = |url: String| {
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(with_token(at_b.clone()).await, 200);

    // The person signs out at the provider itself (not through the gate): the provider POSTs
    // a logout token to /oauth2/backchannel_logout.
    let end = format!(
        "{}/session/end?client_id=clearance&post_logout_redirect_uri={}",
        world.provider.issuer(),
        percent_encode(&format!("{}/oauth2/signed_out", world.gate.url()))
    );
    let landed = logout_at_provider(&browser, end.as_str()).await.unwrap();
    assert_eq!(landed.url.path(), "/oauth2/signed_out", "{}", landed.body);
    within_a_second(&browser, &at_b, "B: ended by back-channel logout", 302).await;
    assert_eq!(status(&browser, &at_a).await, 302);
    // Her bearer tokens end with her sessions, on both gates.
    let deadline = Instant::now() + Duration::from_secs(1);
    while with_token(at_b.clone()).await != 401 {
        assert!(Instant::now() < deadline, "B still admits her token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(with_token(at_a.clone()).await, 401);
    let store = store_elsewhere(&world);
    let chain: Vec<String> = store
        .audit_chains()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.lines)
        .collect();
    let entry = chain
        .iter()
        .find(|l| l.contains("backchannel_logout"))
        .expect("audited");
    assert!(entry.contains("\"ended\":1"), "{entry}");
}

#[tokio::test]
async fn revocation_backchannel_logout_refuses_bad_logout_tokens() {
    let world = World::start_with(|p| p.with_backchannel_logout(), "", "").await;
    let browser = Browser::new();
    sign_in(&world, &browser, ALICE, "/").await;
    complete_everything(&world, ALICE).await;
    let url = format!("{}/echo/a", world.gate.url());
    assert_eq!(status(&browser, &url).await, 200);
    let tokens = LogoutTokens::new(&world);
    let gate = world.gate.url();

    let refused = |what: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status(), 400, "{what}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "invalid_request", "{what}: {body}");
            body["message"].as_str().unwrap_or_default().to_owned()
        }
    };
    refused("no token")(post_logout(&gate, None).await).await;
    let hmac = jsonwebtoken::encode(
        &{
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some(tokens.kid.clone());
            h
        },
        &tokens.claims(json!({})),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    refused("bad signature")(post_logout(&gate, Some(&hmac)).await).await;
    let cases = [
        ("wrong aud", json!({"aud": "someone-else"})),
        ("wrong iss", json!({"iss": "http://127.0.0.1:9"})),
        ("nonce present", json!({"nonce": "n"})),
        ("missing events", json!({"events": null})),
        (
            "other events",
            json!({"events": {"http://example.com/x": {}}}),
        ),
        ("neither sub nor sid", json!({"sub": null})),
        ("no jti", json!({"jti": null})),
        ("no iat", json!({"iat": null})),
        ("old iat", json!({"iat": now() - 3600})),
    ];
    for (what, changes) in cases {
        let token = tokens.sign(&tokens.claims(changes));
        refused(what)(post_logout(&gate, Some(&token)).await).await;
    }
    assert_eq!(
        status(&browser, &url).await,
        200,
        "no refused token ended anything"
    );

    // A valid one (by sub) ends the session; the same token again is a replay.
    let token = tokens.sign(&tokens.claims(json!({})));
    let r = post_logout(&gate, Some(&token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(status(&browser, &url).await, 302, "session ended");
    let message = refused("replayed jti")(post_logout(&gate, Some(&token)).await).await;
    assert!(message.contains("already used"), "{message}");
}

fn percent_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The gate's subscription stays connected but delivers nothing (the relay in front of Redis
/// holds that connection): a revocation made elsewhere is still honoured within a second,
/// because the cache serves only while its own heartbeats come back through the channel.
#[tokio::test]
async fn revocation_is_honoured_within_a_second_when_the_subscription_delivers_nothing() {
    let relay = TcpProxy::start(0).await;
    let world = World::start_tuned(|p| p, "", |s| relay.interpose(s)).await;
    let (browser, url) = alice_admitted(&world).await;
    assert_eq!(status(&browser, &url).await, 200);

    relay.freeze_subscriptions(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elsewhere = store_elsewhere(&world);
    let revoked = clearance::domain::Revocation {
        subject: clearance::domain::SubjectKey::parse(ALICE).unwrap(),
        requirement: clearance::domain::RequirementId("security-awareness".into()),
        revoked_at: chrono::Utc::now(),
        revoked_by: "test".into(),
        reason: "revoked while the subscription delivers nothing".into(),
        source: clearance::domain::Source::Api,
        evidence: serde_json::Map::new(),
    };
    let started = Instant::now();
    assert!(elsewhere.revoke(&revoked).await.unwrap());
    within_a_second(&browser, &url, "refused after a revocation elsewhere", 403).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");

    // Delivery resumes (or the subscription is made again): the cache serves again.
    relay.freeze_subscriptions(false);
    complete_everything(&world, ALICE).await;
    poll_until(
        &browser,
        &url,
        Duration::from_secs(5),
        "admitted again",
        |s| s == 200,
    )
    .await;
}

/// Redis hangs: the cache stops serving within its lease (no heartbeat comes back), so nobody
/// is admitted on what was read before the hang for longer than a second.
#[tokio::test]
async fn revocation_a_hung_redis_stops_the_cache_within_a_second() {
    let world = World::start().await;
    let (browser, url) = alice_admitted(&world).await;
    world.redis.pause();
    let hung = Instant::now();
    let mut last_admit = None;
    while hung.elapsed() < Duration::from_secs(2) {
        let sent = Instant::now();
        if status(&browser, &url).await == 200 {
            last_admit = Some(sent - hung);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.redis.resume();
    let last = last_admit.expect("served from the cache at first");
    assert!(
        last < Duration::from_secs(1),
        "admitted from the cache {last:?} into the hang"
    );
}
