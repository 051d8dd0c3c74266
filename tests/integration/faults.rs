//! Surviving faults: denials buffered while Redis cannot be written, the provider down, and
//! graceful shutdown (in-process and SIGTERM to the real binary).

use crate::gate::{World, config};
use crate::support::{Browser, RedisServer, TcpProxy, Upstream, free_port};
use crate::{complete_everything, redis, sign_in};
use clearance::denial_buffer::{Backoff, CaseCount, DenialBuffer, Refusal, StoreSink};
use clearance::domain::{DenialEvent, Principal, SubjectKey};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const DENIALS: &str = "clearance:denials";

async fn stream_request_ids(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    stream_entries(conn)
        .await
        .into_iter()
        .map(|(request_id, _)| request_id)
        .collect()
}

async fn config_set(conn: &mut redis::aio::MultiplexedConnection, key: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .expect("CONFIG SET");
}

async fn readyz(world: &World) -> Value {
    reqwest::get(format!("{}/readyz", world.gate.url()))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz JSON")
}

/// Waits until `deadline` for the gate's denial buffer to empty, and checks that nothing was
/// dropped; returns the last `/readyz` answer.
async fn buffer_emptied(world: &World, deadline: Instant) -> Value {
    let ready = loop {
        let ready = readyz(world).await;
        if ready["denial_buffer"]["buffered"] == 0 || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready["denial_buffer"]["buffered"], 0, "{ready}");
    assert_eq!(ready["denial_buffer"]["dropped"], 0, "{ready}");
    ready
}

/// Through the real denial path: the person's state can be read, but Redis refuses writes
/// (maxmemory reached), so every refusal goes into the buffer; once Redis accepts writes again
/// they are written in order, with their request ids.
#[tokio::test]
async fn refusals_that_cannot_be_written_are_buffered_and_written_in_order() {
    let world = World::start().await;
    let carl = Browser::new();
    let page = sign_in(&world, &carl, "carl@example.com", "/").await;
    assert_eq!(page.status, 403, "Carl is not compliant: {}", page.body);
    let mut conn = redis(&world).await;
    let before = stream_request_ids(&mut conn).await;
    assert!(
        !before.is_empty(),
        "the sign-in refusal was written at once"
    );

    config_set(&mut conn, "maxmemory-policy", "noeviction").await;
    config_set(&mut conn, "maxmemory", "1").await;
    let mut refused = Vec::new();
    for n in 0..4 {
        let r = carl
            .get(format!("{}/echo/during/{n}", world.gate.url()))
            .await
            .unwrap();
        assert_eq!(r.status, 403, "still a refusal, not an outage: {}", r.body);
        refused.push(r.header("x-request-id").expect("request id").to_owned());
    }
    assert_eq!(
        stream_request_ids(&mut conn).await,
        before,
        "nothing could be written meanwhile"
    );
    let ready = readyz(&world).await;
    assert_eq!(ready["denial_buffer"]["buffered"], 4);
    // Its own state, told as it is: reads work, writes are refused.
    assert_eq!(ready["status"], "read_only", "{ready}");
    assert!(
        ready["checks"]["store"].as_str().unwrap().contains("OOM"),
        "{ready}"
    );
    let r = crate::record(
        &world,
        "carl@example.com",
        "confidentiality-agreement",
        "1",
        chrono::Utc::now(),
    )
    .await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "state_read_only", "{body}");
    assert!(
        !body["message"].as_str().unwrap().contains("cannot read"),
        "{body}"
    );

    config_set(&mut conn, "maxmemory", "0").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let ids = loop {
        let ids = stream_request_ids(&mut conn).await;
        if ids.len() >= before.len() + refused.len() || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        ids[before.len()..],
        refused[..],
        "exactly the buffered refusals, oldest first"
    );
    // The last refusal leaves the buffer once its case count is written too, just after its
    // stream entry: wait for that, with a deadline.
    let ready = buffer_emptied(&world, deadline).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    // Counted into Carl's case too: the first refusal and the four buffered ones.
    let cases: redis::Value = redis::cmd("HVALS")
        .arg("clearance:{carl@example.com}:cases")
        .query_async(&mut conn)
        .await
        .expect("HVALS");
    let text = format!("{cases:?}");
    assert!(
        text.contains("\\\"count\\\":5") || text.contains("\"count\":5"),
        "{text}"
    );
}

fn refusal(n: usize) -> DenialEvent {
    let principal = Principal::bare(SubjectKey::parse("dora@example.com").expect("subject"));
    let time = chrono::Utc::now() - chrono::Duration::seconds(60 - n as i64);
    let mut event = DenialEvent::for_principal(&principal, time, Vec::new());
    event.request_id = format!("outage-{n}");
    event.host = "app.example.test".into();
    event.path = format!("/during/{n}");
    event
}

/// The component against a real redis-server that is stopped, then restarted on the same port.
#[tokio::test]
async fn denials_buffered_while_redis_is_stopped_are_written_after_it_restarts() {
    let mut server = RedisServer::start().await;
    let toml = config(
        free_port(),
        &server.url(),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "",
        "",
    );
    let settings = clearance::config::from_toml_str(&toml).expect("config");
    let store = clearance::redis_store(&settings).expect("store");
    let buffer = Arc::new(DenialBuffer::with_backoff(
        Arc::new(StoreSink(store.clone())),
        100,
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
    ));
    let writer = buffer.spawn();

    server.stop().await;
    const N: usize = 5;
    let events: Vec<DenialEvent> = (0..N).map(refusal).collect();
    for (n, event) in events.iter().enumerate() {
        let outcome = buffer
            .refuse(
                event,
                Some(CaseCount {
                    case_id: format!("case-{n}"),
                    mark_dirty: false,
                }),
            )
            .await;
        assert!(matches!(outcome, Refusal::Buffered { .. }), "{outcome:?}");
    }
    assert_eq!(buffer.len(), N);

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = loop {
        let written = store.recent_denials(100).await.unwrap_or_default();
        if written.len() >= N || Instant::now() > deadline {
            break written;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut written: Vec<DenialEvent> = written.into_iter().map(|(_, e)| e).collect();
    written.reverse();
    assert_eq!(
        written, events,
        "exactly N, oldest first, original times kept"
    );
    assert!(buffer.is_empty());
    let subject = SubjectKey::parse("dora@example.com").expect("subject");
    let deadline = Instant::now() + Duration::from_secs(10);
    let cases = loop {
        let cases = store.cases(&subject).await.unwrap_or_default();
        if cases.first().is_some_and(|c| c.count as usize == N) || Instant::now() > deadline {
            break cases;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].id, "case-0");
    assert_eq!(cases[0].count as usize, N, "every refusal counted once");
    writer.abort();
}

/// Makes the single stored session's access token due for refresh now.
async fn make_session_due(world: &World) -> Value {
    let mut conn = redis(world).await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, "clearance:sess:*")
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let json: String = redis::AsyncCommands::get(&mut conn, &keys[0])
        .await
        .expect("GET");
    let mut session: Value = serde_json::from_str(&json).expect("session JSON");
    session["access_expires_at"] = Value::String(chrono::Utc::now().to_rfc3339());
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg(session.to_string())
        .arg("KEEPTTL")
        .query_async(&mut conn)
        .await
        .expect("SET");
    session
}

#[tokio::test]
async fn provider_down_keeps_sessions_and_explains_new_sign_ins() {
    let mut world = World::start().await;
    let alice = Browser::new();
    sign_in(&world, &alice, "alice@example.com", "/").await;
    complete_everything(&world, "alice@example.com").await;
    let ok = alice
        .get(format!("{}/echo/1", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);

    world.provider.stop().await;
    let ok = alice
        .get(format!("{}/echo/2", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "an existing session keeps working");
    let due = make_session_due(&world).await;
    let ok = alice
        .get(format!("{}/echo/3", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(
        ok.status, 200,
        "refresh postponed, not signed out: {}",
        ok.body
    );
    let echo: Value = ok.json().unwrap();
    assert_eq!(
        echo["headers"]["x-auth-request-user"][0],
        "alice@example.com"
    );
    let mut conn = redis(&world).await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, "clearance:sess:*")
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "the session was kept");
    let json: String = redis::AsyncCommands::get(&mut conn, &keys[0])
        .await
        .expect("GET");
    let kept: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(kept["access_token"], due["access_token"], "not refreshed");

    // A new browser: sent to sign in, and sign-in explains the outage instead of sending the
    // person to a provider that does not answer.
    let bob = Browser::new();
    let first = bob
        .get(format!("{}/echo/4", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(first.status, 302);
    let start = first.location().expect("Location");
    assert_eq!(start.path(), "/oauth2/start");
    let page = bob
        .get_with(start.as_str(), &[("accept", "text/html")])
        .await
        .unwrap();
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(
        page.body.contains("Sign-in is unavailable right now"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("try again in a few minutes"),
        "{}",
        page.body
    );
    let provider_port = world.provider.port().to_string();
    for internal in [
        "error sending request",
        "reqwest",
        "discovery",
        provider_port.as_str(),
    ] {
        assert!(
            !page.body.contains(internal),
            "{internal} leaked: {}",
            page.body
        );
    }
    let api = bob
        .get_with(start.as_str(), &[("accept", "application/json")])
        .await
        .unwrap();
    assert_eq!(api.status, 503);
    let body: Value = api.json().expect("JSON for API clients");
    assert!(body.to_string().contains("provider_unavailable"), "{body}");

    // The provider comes back on the same port with the same keys: sign-in works again
    // without restarting Clearance.
    world.provider.restart_same_keys().await;
    let carol = Browser::new();
    let page = sign_in(&world, &carol, "alice@example.com", "/echo/5").await;
    assert_eq!(page.status, 200, "{}", page.body);
}

/// A request in flight when the server is told to stop gracefully finishes with its whole
/// body; afterwards the port refuses connections.
#[tokio::test]
async fn graceful_stop_drains_requests_in_flight() {
    let world = World::start_with(|p| p, "shutdown_timeout_secs = 20", "").await;
    let alice = Browser::new();
    sign_in(&world, &alice, "alice@example.com", "/").await;
    complete_everything(&world, "alice@example.com").await;
    // /sse streams five ticks 200 ms apart.
    let cookie = alice
        .cookie(&world.gate.host_port(), "_clearance")
        .expect("session cookie");
    let streaming = reqwest::Client::new()
        .get(format!("{}/sse", world.gate.url()))
        .header("cookie", format!("_clearance={cookie}"))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(streaming.status(), 200);
    let stopping = tokio::spawn(world.gate.stop_gracefully());
    let body = streaming.text().await.expect("the whole body");
    for n in 1..=5 {
        assert!(body.contains(&format!("data: tick {n}")), "{body}");
    }
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("stopped within the shutdown timeout")
        .expect("stop task");
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", world.gate.port)).await;
    assert!(
        refused.is_err(),
        "new connections are refused after the stop"
    );
}

/// SIGTERM to the real binary: the request in flight completes, the process exits 0.
#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let redis_server = RedisServer::start().await;
    let upstream = Upstream::start().await;
    let port = free_port();
    let route = format!(
        "\n[[routes]]\npath_prefix = \"/sse\"\nupstream = \"{}\"\naccess = \"public\"\n",
        upstream.url()
    );
    let toml = config(
        port,
        &redis_server.url(),
        "http://127.0.0.1:9",
        &upstream.url(),
        "shutdown_timeout_secs = 20",
        &route,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clearance.toml");
    std::fs::write(&path, toml).expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clearance"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env_remove("CLEARANCE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start clearance");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "clearance did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streaming = client
        .get(format!("{url}/sse"))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(streaming.status(), 200);
    let pid = child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let body = streaming.text().await.expect("the whole body");
    assert!(body.contains("data: tick 5"), "{body}");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within the shutdown timeout")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "nothing listens any more"
    );
}

/// Redis stopped and restarted while requests keep coming: a non-compliant person is never
/// admitted, the process stays up, and the gate recovers by itself.
#[tokio::test]
async fn redis_killed_under_load_admits_nobody_wrongly() {
    let mut world = World::start().await;
    let carl = Browser::new();
    let page = sign_in(&world, &carl, "carl@example.com", "/").await;
    assert_eq!(page.status, 403);
    let cookie = carl
        .cookie(&world.gate.host_port(), "_clearance")
        .expect("session cookie");
    let before = world.upstream.request_count();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let statuses = Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
    let load: Vec<_> = (0..4)
        .map(|worker| {
            let (running, statuses) = (running.clone(), statuses.clone());
            let url = format!("{}/echo/load/{worker}", world.gate.url());
            let cookie = format!("_clearance={cookie}");
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                while running.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(r) = client
                        .get(&url)
                        .header("cookie", &cookie)
                        .header("accept", "text/html")
                        .send()
                        .await
                    {
                        statuses.lock().unwrap().push(r.status().as_u16());
                    }
                }
            })
        })
        .collect();
    let seen = |code: u16| statuses.lock().unwrap().contains(&code);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen(403) {
        assert!(Instant::now() < deadline, "no refusal under load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.redis.stop().await;
    while !seen(503) {
        assert!(Instant::now() < deadline, "no 503 while Redis is down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.redis.restart().await;
    let restarted_at = statuses.lock().unwrap().len();
    // Redis came back empty: Carl's session is gone, so he is sent to sign in again.
    while !statuses.lock().unwrap()[restarted_at..].contains(&302) {
        assert!(Instant::now() < deadline, "the gate did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for task in load {
        task.await.expect("no panic in the load");
    }
    let statuses = statuses.lock().unwrap().clone();
    let unexpected: Vec<_> = statuses
        .iter()
        .filter(|s| !matches!(s, 302 | 403 | 503))
        .collect();
    assert!(
        unexpected.is_empty(),
        "only refusals, outages and sign-in redirects: {unexpected:?}"
    );
    assert_eq!(
        world.upstream.request_count(),
        before,
        "nothing reached the application: {statuses:?}"
    );
    let alive = reqwest::get(format!("{}/healthz", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(alive.status(), 200, "the process stayed up");
}

/// One answer seen by the load: who asked, when the request was sent, its status and id.
#[derive(Clone, Debug)]
struct Seen {
    who: &'static str,
    sent: Instant,
    status: u16,
    request_id: String,
}

/// The outage test, in one run under load: while Redis refuses writes, state can still
/// be read, so people get their real answers (never a 503) and the refusals are buffered; while
/// Redis is down, only 503s; after it comes back (empty: a restart without persistence), every
/// refusal that could not be written is in the stream, and the count matches the 403s answered.
#[tokio::test]
async fn redis_outage_under_load_admits_nobody_wrongly_and_writes_every_denial_afterwards() {
    let mut world = World::start().await;
    complete_everything(&world, "alice@example.com").await;
    let alice = Browser::new();
    assert_eq!(
        sign_in(&world, &alice, "alice@example.com", "/echo/a")
            .await
            .status,
        200
    );
    let carl = Browser::new();
    assert_eq!(
        sign_in(&world, &carl, "carl@example.com", "/echo/c")
            .await
            .status,
        403
    );
    let host = world.gate.host_port();
    let cookies = [
        ("alice", alice.cookie(&host, "_clearance").expect("cookie")),
        ("carl", carl.cookie(&host, "_clearance").expect("cookie")),
    ];
    let upstream_before = world.upstream.request_count();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
    let load: Vec<_> = (0..4)
        .map(|n| {
            let (who, cookie) = cookies[n % 2].clone();
            let (running, seen) = (running.clone(), seen.clone());
            let url = format!("{}/echo/load/{n}", world.gate.url());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                while running.load(std::sync::atomic::Ordering::SeqCst) {
                    let sent = Instant::now();
                    if let Ok(r) = client
                        .get(&url)
                        .header("cookie", format!("_clearance={cookie}"))
                        .header("accept", "text/html")
                        .send()
                        .await
                    {
                        let request_id = r
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        seen.lock().unwrap().push(Seen {
                            who,
                            sent,
                            status: r.status().as_u16(),
                            request_id,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    let wait_for = |what: &'static str, test: &dyn Fn(&[Seen]) -> bool| {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        test(&seen.lock().unwrap())
    };
    let count = |s: &[Seen], who: &str, status: u16, after: Instant| {
        s.iter()
            .filter(|x| x.who == who && x.status == status && x.sent > after)
            .count()
    };

    // Phase 1: writes refused, reads fine.
    let start = Instant::now();
    while !wait_for("answers under load", &|s| {
        count(s, "alice", 200, start) > 0 && count(s, "carl", 403, start) > 0
    }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut conn = redis(&world).await;
    config_set(&mut conn, "maxmemory-policy", "noeviction").await;
    config_set(&mut conn, "maxmemory", "1").await;
    let writes_refused = Instant::now();
    while !wait_for("refusals while writes are refused", &|s| {
        count(s, "carl", 403, writes_refused) >= 10 && count(s, "alice", 200, writes_refused) >= 5
    }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Phase 2: Redis down.
    let stopping = Instant::now();
    world.redis.stop().await;
    let down = Instant::now();
    while !wait_for("503s while Redis is down", &|s| {
        count(s, "alice", 503, down) > 0 && count(s, "carl", 503, down) > 0
    }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Phase 3: back, empty: sessions are gone, so both are sent to sign in again.
    world.redis.restart().await;
    let back = Instant::now();
    while !wait_for("recovery", &|s| {
        count(s, "alice", 302, back) > 0 && count(s, "carl", 302, back) > 0
    }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for task in load {
        task.await.expect("no panic in the load");
    }
    let seen = seen.lock().unwrap().clone();

    // Nobody wrongly admitted; Carl never reached the application.
    for s in &seen {
        let allowed: &[u16] = if s.who == "alice" {
            &[200, 302, 503]
        } else {
            &[302, 403, 503]
        };
        assert!(allowed.contains(&s.status), "{s:?}");
    }
    let alice_admitted = seen
        .iter()
        .filter(|s| s.who == "alice" && s.status == 200)
        .count();
    assert_eq!(
        world.upstream.request_count() - upstream_before,
        alice_admitted,
        "only Alice's admitted requests reached the application"
    );
    // While state could be read, no 503: an outage answer only for state that cannot be read.
    let phase1: Vec<_> = seen
        .iter()
        .filter(|s| s.sent > writes_refused && s.sent < stopping && s.status == 503)
        .collect();
    assert!(phase1.is_empty(), "503 while reads worked: {phase1:?}");

    // Every refusal sent after writes were refused is in the stream of the restarted Redis
    // (refusals sent just before may or may not have been written to the old one).
    let must: std::collections::BTreeSet<String> = seen
        .iter()
        .filter(|s| s.who == "carl" && s.status == 403 && s.sent > writes_refused)
        .map(|s| s.request_id.clone())
        .collect();
    let may: std::collections::BTreeSet<String> = seen
        .iter()
        .filter(|s| s.who == "carl" && s.status == 403)
        .map(|s| s.request_id.clone())
        .collect();
    assert!(must.len() >= 10);
    let mut conn = redis(&world).await;
    let written = loop {
        let ids: std::collections::BTreeSet<String> =
            stream_request_ids(&mut conn).await.into_iter().collect();
        if ids.is_superset(&must) {
            break ids;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(20),
            "{} of {} buffered refusals written",
            ids.intersection(&must).count(),
            must.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        written.is_subset(&may),
        "only refusals that happened are written: {:?}",
        written.difference(&may).collect::<Vec<_>>()
    );
    // The last refusals leave the buffer once their case counts are written too, just after
    // their stream entries.
    buffer_emptied(&world, deadline + Duration::from_secs(20)).await;
}

/// Every entry of the denial log: its request id and subject.
async fn stream_entries(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, String)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(DENIALS)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .iter()
        .map(|e| {
            (
                e.get::<String>("request_id").unwrap_or_default(),
                e.get::<String>("subject").unwrap_or_default(),
            )
        })
        .collect()
}

/// The sum of the counts of every case of `subject`.
async fn case_count(conn: &mut redis::aio::MultiplexedConnection, subject: &str) -> u64 {
    let cases: Vec<String> = redis::cmd("HVALS")
        .arg(format!("clearance:{{{subject}}}:cases"))
        .query_async(conn)
        .await
        .expect("HVALS");
    cases
        .iter()
        .map(|json| {
            serde_json::from_str::<Value>(json).expect("case JSON")["count"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

/// Redis hangs (SIGSTOP) for six response timeouts under refusals, then wakes up (SIGCONT) and
/// runs every command that waited meanwhile: each refusal is in the log exactly once, under its
/// request id, and counted into the case exactly once.
#[tokio::test]
async fn a_hung_redis_writes_every_refusal_exactly_once() {
    let world = World::start_tuned(|p| p, "", |s| s.denials.max_entries = 1_000_000).await;
    each_refusal_once_through(world, 200, async |world| {
        world.redis.pause();
        tokio::time::sleep(Duration::from_secs(3)).await;
        world.redis.resume();
    })
    .await;
}

/// Redis runs the gate's writes but its replies never arrive (held on the way back), then it is
/// killed, with every write on disk before it would have answered, and restarted from its
/// append-only file: the writes that ran are there once, the retried ones are not written again,
/// and no refusal is lost.
#[tokio::test]
async fn a_redis_killed_and_restarted_from_its_aof_loses_no_refusal_and_writes_none_twice() {
    let redis =
        RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let relay = TcpProxy::start(0).await;
    let world = World::start_on_tuned(redis, |s| {
        relay.interpose(s);
        s.denials.max_entries = 1_000_000;
    })
    .await;
    each_refusal_once_through(world, 200, async |world| {
        relay.hold_replies(true);
        tokio::time::sleep(Duration::from_millis(800)).await;
        world.redis.stop().await;
        relay.hold_replies(false);
        tokio::time::sleep(Duration::from_millis(500)).await;
        world.redis.restart().await;
    })
    .await;
}

/// What an open-loop load saw: each answer's status and request id.
type Answers = Arc<std::sync::Mutex<Vec<(u16, String)>>>;

/// Requests `url` as the holder of `cookie` (as JSON) `per_second` times a second however fast
/// they are answered, as people arrive, until `running` is cleared; every answer goes to the
/// returned list. A request that gets no answer at all fails the load.
fn open_loop(
    url: String,
    cookie: String,
    per_second: u64,
    running: Arc<std::sync::atomic::AtomicBool>,
) -> (Answers, tokio::task::JoinHandle<()>) {
    let seen: Answers = Arc::default();
    let answers = seen.clone();
    let task = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
        let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
        let mut sent = Vec::new();
        while running.load(std::sync::atomic::Ordering::SeqCst) {
            ticks.tick().await;
            let permit = in_flight.clone().acquire_owned().await.expect("open");
            let (client, url, cookie, answers) =
                (client.clone(), url.clone(), cookie.clone(), answers.clone());
            sent.push(tokio::spawn(async move {
                let r = client
                    .get(&url)
                    .header("cookie", format!("_clearance={cookie}"))
                    .header("accept", "application/json")
                    .send()
                    .await
                    .expect("the gate answers");
                let id = r
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                answers.lock().unwrap().push((r.status().as_u16(), id));
                drop(permit);
            }));
        }
        for request in sent {
            request.await.expect("every request answered");
        }
    });
    (seen, task)
}

/// Carl (blocked) signs in, refused once: his session cookie.
async fn carl_refused(world: &World) -> String {
    let carl = Browser::new();
    assert_eq!(
        sign_in(world, &carl, "carl@example.com", "/echo/c")
            .await
            .status,
        403
    );
    carl.cookie(&world.gate.host_port(), "_clearance")
        .expect("cookie")
}

/// Refusals of a blocked person under `fault`: every refused request id is in the log exactly
/// once, and every refusal is counted into the case exactly once.
async fn each_refusal_once_through(
    mut world: World,
    per_second: u64,
    fault: impl AsyncFnOnce(&mut World),
) {
    let cookie = carl_refused(&world).await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (seen, load) = open_loop(
        format!("{}/echo/fault", world.gate.url()),
        cookie,
        per_second,
        running.clone(),
    );
    let refusals = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == 403)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while refusals() < 100 {
        assert!(Instant::now() < deadline, "no refusals under load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fault(&mut world).await;
    let during = refusals();
    while refusals() < during + 100 {
        assert!(Instant::now() < deadline, "no refusals after the fault");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    load.await.expect("every request answered");
    let seen = seen.lock().unwrap().clone();
    let odd: Vec<_> = seen
        .iter()
        .filter(|(s, _)| !matches!(s, 403 | 503))
        .collect();
    assert!(
        odd.is_empty(),
        "only refusals and outages: {:?}",
        &odd[..odd.len().min(5)]
    );
    let refused: Vec<String> = seen
        .iter()
        .filter(|(s, _)| *s == 403)
        .map(|(_, id)| id.clone())
        .collect();
    buffer_emptied(&world, deadline).await;

    let mut conn = redis(&world).await;
    let entries = stream_entries(&mut conn).await;
    let mut logged: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (request_id, subject) in &entries {
        assert_eq!(subject, "carl@example.com");
        *logged.entry(request_id).or_default() += 1;
    }
    let twice: Vec<_> = logged.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} of {} refusals logged more than once, such as {:?}",
        twice.len(),
        logged.len(),
        &twice[..twice.len().min(3)]
    );
    let missing: Vec<_> = refused
        .iter()
        .filter(|id| !logged.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} refusals never logged, such as {:?}",
        missing.len(),
        refused.len(),
        &missing[..missing.len().min(3)]
    );
    assert_eq!(
        entries.len(),
        refused.len() + 1,
        "the sign-in's refusal and every 403 of the load"
    );
    assert_eq!(
        case_count(&mut conn, "carl@example.com").await,
        entries.len() as u64,
        "every refusal counted into the case exactly once"
    );
}

/// Redis refuses writes for half a second under at least 400 refusals a second, with 2 ms
/// added to every round trip: the buffer fills, then empties within a few seconds although the
/// refusals keep coming, and nothing is dropped or written twice.
#[tokio::test]
async fn the_denial_buffer_catches_up_with_refusals_that_keep_coming() {
    let relay = TcpProxy::start(0).await;
    let world = World::start_tuned(
        |p| p,
        "",
        |s| {
            relay.interpose(s);
            s.denials.max_entries = 1_000_000;
        },
    )
    .await;
    let cookie = carl_refused(&world).await;
    relay.set_delay(Duration::from_millis(1));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // 600 a second are sent, so that at least 400 are answered while the machine is busy.
    let (seen, load) = open_loop(
        format!("{}/echo/flood", world.gate.url()),
        cookie,
        600,
        running.clone(),
    );
    let answered = || seen.lock().unwrap().len();
    let rate = || async {
        let before = answered();
        tokio::time::sleep(Duration::from_secs(1)).await;
        answered() - before
    };
    let per_second = rate().await;
    assert!(per_second >= 400, "{per_second} refusals a second");

    let mut conn = redis(&world).await;
    config_set(&mut conn, "maxmemory-policy", "noeviction").await;
    config_set(&mut conn, "maxmemory", "1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    config_set(&mut conn, "maxmemory", "0").await;
    let filled = readyz(&world).await["denial_buffer"]["buffered"]
        .as_u64()
        .unwrap_or(0);
    assert!(filled >= 100, "the buffer held {filled} refusals");
    let writable = Instant::now();
    let emptied = loop {
        let ready = readyz(&world).await;
        if ready["denial_buffer"]["buffered"] == 0 {
            break writable.elapsed();
        }
        assert!(
            writable.elapsed() < Duration::from_secs(2),
            "still {} buffered after 2 s",
            ready["denial_buffer"]["buffered"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let still = rate().await;
    assert!(still >= 400, "the load went on: {still} refusals a second");
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    load.await.expect("every request answered");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|(status, _)| *status == 403),
        "only refusals, never a 503"
    );
    // Every refusal in the log once: the sign-in's and each of the load's.
    buffer_emptied(&world, Instant::now() + Duration::from_secs(10)).await;
    let total = answered() + 1;
    let logged: u64 = redis::cmd("XLEN")
        .arg(DENIALS)
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(logged as usize, total, "each refusal logged once");
    eprintln!(
        "{per_second} refusals a second; {filled} buffered after 0.5 s of refused writes; empty {emptied:?} after writes were taken again"
    );
}
