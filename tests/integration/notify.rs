//! Notifications against the real services: managers' digests and people's reminders reach a
//! local webhook receiver (JSON and Slack), survive the receiver being down and a Clearance
//! restart (the outbox lives in Redis), respect the per-manager rate limit; and the Redis outbox
//! itself (atomic commits, leases, retries, the dead list).

use crate::gate::{Gate, World, config};
use crate::redis;
use crate::sign_in;
use crate::support::{Browser, RedisServer, free_port};
use ::redis::AsyncCommands;
use chrono::Utc;
use clearance::config::{DenialSettings, RedisSettings};
use clearance::domain::SubjectKey;
use clearance::domain::notify::{Message, MessageKind, signature};
use clearance::store::redis::RedisStore;
use clearance::store::{Outbox, OutboxBatch};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCIM_TOKEN: &str = "test-scim-token-0123456789";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const SECRET: &str = "test-notify-secret";

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    headers: HashMap<String, String>,
    raw: String,
    body: Value,
}

/// A webhook receiver on a fixed port that records what it gets; it can be stopped and started
/// again on the same port (what it got is kept).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Delivery>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver that is not listening yet.
    fn down() -> Self {
        Self {
            port: free_port(),
            got: Arc::new(Mutex::new(Vec::new())),
            task: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn start(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket
            .bind(([127, 0, 0, 1], self.port).into())
            .expect("bind the receiver's port");
        let listener = socket.listen(64).expect("listen");
        let got = self.got.clone();
        self.task = Some(tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve_one(conn, got.clone()));
            }
        }));
    }

    fn all(&self) -> Vec<Delivery> {
        self.got.lock().expect("lock").clone()
    }

    fn of_type(&self, kind: &str) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| d.body["type"] == kind)
            .collect()
    }

    /// Polls until `check` holds for what was received, or fails after `secs`.
    async fn wait_for(&self, secs: u64, what: &str, check: impl Fn(&[Delivery]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let all = self.all();
            if check(&all) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; received: {:#?}",
                all.iter().map(|d| &d.body).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Reads one HTTP/1.1 request (with Content-Length), records it, answers 200 and closes.
async fn serve_one(mut conn: tokio::net::TcpStream, got: Arc<Mutex<Vec<Delivery>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let raw = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    got.lock()
        .expect("lock")
        .push(Delivery { headers, raw, body });
    let _ = conn
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
    let _ = conn.shutdown().await;
}

/// `[notifications]` (short retries and ticks) and a SCIM token.
fn notify_config(url: &str, format: &str, min_interval_minutes: u32) -> String {
    format!(
        r#"
[[scim.tokens]]
name = "entra"
sha256 = "{}"

[notifications]
url = "{url}"
format = "{format}"
mode = "immediate"
min_interval_minutes = {min_interval_minutes}
secret = "{SECRET}"
remind_people = true
retry_initial_ms = 200
retry_max_seconds = 1
tick_ms = 200
"#,
        hex::encode(Sha256::digest(SCIM_TOKEN.as_bytes()))
    )
}

/// Puts a person in the directory over SCIM, with a manager.
async fn scim_person(world: &World, user: &str, manager: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/.clearance/scim/v2/Users", world.gate.url()))
        .bearer_auth(SCIM_TOKEN)
        .header("content-type", "application/scim+json")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": user,
                "active": true,
                "userType": "Employee",
                ENTERPRISE: {"manager": {"value": manager}}
            })
            .to_string(),
        )
        .send()
        .await
        .expect("scim");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// Signs `login` in on a fresh browser; they are refused.
async fn denied(world: &World, login: &str) -> Browser {
    let browser = Browser::new();
    let page = sign_in(world, &browser, login, "/echo/app").await;
    assert_eq!(page.status, 403, "{login} is refused: {}", page.body);
    browser
}

/// (manager, report) pairs named by the digests received.
fn digest_pairs(deliveries: &[Delivery]) -> BTreeSet<(String, String)> {
    deliveries
        .iter()
        .filter(|d| d.body["type"] == "clearance.digest")
        .flat_map(|d| {
            let to = d.body["to"]["subject"].as_str().unwrap_or("").to_owned();
            d.body["reports"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| {
                    (
                        to.clone(),
                        r["person"]["subject"].as_str().unwrap_or("").to_owned(),
                    )
                })
        })
        .collect()
}

/// Stored outbox messages (id -> JSON), straight from Redis.
async fn stored_messages(conn: &mut ::redis::aio::MultiplexedConnection) -> Vec<Value> {
    let all: Vec<String> = conn
        .hvals("clearance:{/notify}:messages")
        .await
        .expect("hvals");
    all.iter()
        .map(|j| serde_json::from_str(j).expect("message JSON"))
        .collect()
}

/// Waits until every queued message failed at least once (the receiver is down).
async fn wait_until_failed(conn: &mut ::redis::aio::MultiplexedConnection, at_least: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let messages = stored_messages(conn).await;
        if messages.len() >= at_least
            && messages
                .iter()
                .all(|m| m["attempts"].as_u64().unwrap_or(0) >= 1)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages were not queued and tried: {messages:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn notify_digest_to_the_manager_and_reminder_to_the_person() {
    let mut receiver = Receiver::down();
    receiver.start();
    let world = World::start_with(|p| p, "", &notify_config(&receiver.url(), "json", 0)).await;
    scim_person(&world, "alice@example.com", "mona@example.com").await;
    let _alice = denied(&world, "alice@example.com").await;

    receiver
        .wait_for(30, "mona's digest naming alice", |all| {
            digest_pairs(all).contains(&("mona@example.com".into(), "alice@example.com".into()))
        })
        .await;
    receiver
        .wait_for(30, "alice's reminder", |all| {
            all.iter().any(|d| {
                d.body["type"] == "clearance.reminder"
                    && d.body["to"]["subject"] == "alice@example.com"
            })
        })
        .await;

    let digest = receiver
        .of_type("clearance.digest")
        .into_iter()
        .next()
        .expect("digest");
    let report = &digest.body["reports"][0];
    assert_eq!(report["person"]["subject"], "alice@example.com");
    assert!(
        report["case"]["count"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    assert!(
        report["case"]["apps"]
            .as_object()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(report["case"]["opened_at"].is_string());
    // Headers: content type, delivery id (= the payload's id), signature over the exact body.
    assert_eq!(digest.headers["content-type"], "application/json");
    assert_eq!(
        digest.headers["x-clearance-delivery"].as_str(),
        digest.body["id"].as_str().unwrap_or("-")
    );
    assert_eq!(
        digest.headers["x-clearance-signature"],
        signature(SECRET.as_bytes(), digest.raw.as_bytes())
    );

    let reminder = receiver
        .of_type("clearance.reminder")
        .into_iter()
        .find(|d| d.body["to"]["subject"] == "alice@example.com")
        .expect("reminder");
    let items: Vec<(String, String, String)> = reminder.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["requirement"].as_str().unwrap_or("").to_owned(),
                i["reason"].as_str().unwrap_or("").to_owned(),
                i["url"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (
                "security-awareness".into(),
                "never_completed".into(),
                "https://lms.example.com/courses/security".into()
            ),
            (
                "confidentiality-agreement".into(),
                "never_completed".into(),
                "https://sign.example.com/nda".into()
            ),
            (
                "acceptable-use-policy".into(),
                "never_completed".into(),
                "https://intranet.example.com/aup".into()
            ),
        ]
    );
    assert_eq!(
        reminder.body["items"][0]["title"],
        "Security awareness training"
    );

    // Delivered messages leave the queue.
    let mut conn = redis(&world).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let queued: usize = conn.zcard("clearance:{/notify}:queue").await.unwrap();
        if queued == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queued} still queued"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn notify_nothing_is_lost_while_the_receiver_is_down() {
    let mut receiver = Receiver::down();
    let world = World::start_with(|p| p, "", &notify_config(&receiver.url(), "json", 0)).await;
    scim_person(&world, "alice@example.com", "mona@example.com").await;
    scim_person(&world, "erin@example.com", "boss@example.com").await;
    // Carl is known from his claims only (manager mona).
    let alice = denied(&world, "alice@example.com").await;
    let _erin = denied(&world, "erin@example.com").await;
    let _carl = denied(&world, "carl@example.com").await;
    for _ in 0..3 {
        let r = alice
            .get(format!("{}/echo/other", world.gate.url()))
            .await
            .expect("gate");
        assert_eq!(r.status, 403);
    }
    let mut conn = redis(&world).await;
    // Two digests at least (mona, boss) and three reminders, all tried and failed.
    wait_until_failed(&mut conn, 5).await;
    let queued: BTreeSet<String> = stored_messages(&mut conn)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap_or("").to_owned())
        .collect();

    receiver.start();
    let expected: BTreeSet<(String, String)> = [
        ("mona@example.com", "alice@example.com"),
        ("mona@example.com", "carl@example.com"),
        ("boss@example.com", "erin@example.com"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    receiver
        .wait_for(40, "every digest and every queued message", |all| {
            let ids: BTreeSet<String> = all
                .iter()
                .filter_map(|d| d.headers.get("x-clearance-delivery").cloned())
                .collect();
            digest_pairs(all).is_superset(&expected) && queued.is_subset(&ids)
        })
        .await;
    receiver
        .wait_for(10, "the three reminders", |all| {
            let to: BTreeSet<&str> = all
                .iter()
                .filter(|d| d.body["type"] == "clearance.reminder")
                .filter_map(|d| d.body["to"]["subject"].as_str())
                .collect();
            ["alice@example.com", "erin@example.com", "carl@example.com"]
                .iter()
                .all(|s| to.contains(s))
        })
        .await;
    let dead: usize = conn.llen("clearance:{/notify}:dead").await.unwrap();
    assert_eq!(dead, 0, "nothing given up on");
}

#[tokio::test]
async fn notify_the_queue_survives_a_restart() {
    let mut receiver = Receiver::down();
    let extra = notify_config(&receiver.url(), "json", 0);
    let world = World::start_with(|p| p, "", &extra).await;
    let _alice = denied(&world, "alice@example.com").await;
    let mut conn = redis(&world).await;
    wait_until_failed(&mut conn, 2).await;
    let digest_id = stored_messages(&mut conn)
        .await
        .into_iter()
        .find(|m| m["kind"] == "digest")
        .and_then(|m| m["id"].as_str().map(str::to_owned))
        .expect("a queued digest");

    // Clearance stops before anything was delivered ...
    let World {
        redis: redis_server,
        provider,
        upstream,
        gate,
    } = world;
    drop(gate);
    // ... and a new instance starts on the same Redis; then the receiver comes up.
    let port = free_port();
    let gate = Gate::start_with(
        port,
        config(
            port,
            &redis_server.url(),
            &provider.issuer(),
            &upstream.url(),
            "",
            &extra,
        ),
    );
    gate.wait_ready().await;
    receiver.start();
    receiver
        .wait_for(30, "the digest queued before the restart", |all| {
            all.iter().any(|d| {
                d.headers.get("x-clearance-delivery") == Some(&digest_id)
                    && d.body["to"]["subject"] == "mona@example.com"
                    && d.body["reports"][0]["person"]["subject"] == "alice@example.com"
            })
        })
        .await;
}

#[tokio::test]
async fn notify_slack_format_has_text_and_blocks() {
    let mut receiver = Receiver::down();
    receiver.start();
    let world = World::start_with(|p| p, "", &notify_config(&receiver.url(), "slack", 0)).await;
    let _alice = denied(&world, "alice@example.com").await;
    receiver
        .wait_for(30, "a Slack digest and reminder", |all| {
            all.iter().filter(|d| d.body["text"].is_string()).count() >= 2
        })
        .await;
    for d in receiver.all() {
        let text = d.body["text"].as_str().expect("text");
        assert!(
            text.contains("Security awareness training"),
            "lists what is missing: {text}"
        );
        assert!(d.body["blocks"].as_array().is_some_and(|b| !b.is_empty()));
        assert!(d.headers.contains_key("x-clearance-delivery"));
    }
    assert!(
        receiver
            .all()
            .iter()
            .any(|d| d.body["text"].as_str().unwrap_or("").contains("Mona")
                || d.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("mona@example.com")),
        "the digest names the manager"
    );
}

#[tokio::test]
async fn notify_rate_limit_holds_the_second_digest_back() {
    let mut receiver = Receiver::down();
    receiver.start();
    let world = World::start_with(|p| p, "", &notify_config(&receiver.url(), "json", 60)).await;
    let _alice = denied(&world, "alice@example.com").await;
    receiver
        .wait_for(30, "the first digest", |all| {
            digest_pairs(all).contains(&("mona@example.com".into(), "alice@example.com".into()))
        })
        .await;
    // Carl reports to mona too: his refusal waits for mona's next interval.
    let _carl = denied(&world, "carl@example.com").await;
    let mut conn = redis(&world).await;
    // Many worker ticks (200 ms each) pass; carl stays marked, nothing more goes to mona.
    for _ in 0..15 {
        let marked: Option<f64> = conn
            .zscore("clearance:{/notify}:dirty", "carl@example.com")
            .await
            .unwrap();
        assert!(marked.is_some(), "carl's refusal stays pending");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let digests = receiver.of_type("clearance.digest");
    assert_eq!(digests.len(), 1, "one digest per interval: {digests:#?}");
    assert!(
        !digest_pairs(&receiver.all())
            .contains(&("mona@example.com".into(), "carl@example.com".into()))
    );
}

fn outbox_store(redis: &RedisServer) -> RedisStore {
    RedisStore::new(
        &RedisSettings {
            url: redis.url(),
            topology: clearance::config::RedisTopology::Single,
            key_prefix: "t:".into(),
            response_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
        },
        DenialSettings {
            max_entries: 100,
            max_age: None,
        },
        b"notify-test-audit-key-0123456789abcdef".to_vec(),
    )
    .expect("store")
}

fn message(id: &str) -> Message {
    Message {
        id: id.into(),
        kind: MessageKind::Digest,
        recipient: SubjectKey::parse("mona@example.com").unwrap(),
        created_at: Utc::now(),
        body: "{}".into(),
        attempts: 0,
        last_error: None,
        gave_up_at: None,
    }
}

#[tokio::test]
async fn notify_redis_outbox_commits_once_leases_and_keeps_the_dead() {
    let redis = RedisServer::start().await;
    let a = outbox_store(&redis);
    let b = outbox_store(&redis);
    let alice = SubjectKey::parse("alice@example.com").unwrap();
    let t0 = Utc::now();
    a.mark_dirty(&alice, t0).await.unwrap();
    b.mark_dirty(&alice, t0 + chrono::Duration::seconds(3))
        .await
        .unwrap();
    let marks = a.dirty().await.unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        marks[0].1.timestamp_millis(),
        t0.timestamp_millis(),
        "first mark kept"
    );

    // Two instances build from the same marks: only one batch is written.
    let batch = |id: &str| OutboxBatch {
        marks: marks.clone(),
        rate: Some(("manager:mona@example.com".into(), t0)),
        messages: vec![message(id)],
        now: t0,
        guard: None,
    };
    let (b1, b2) = (batch("m1"), batch("m2"));
    let (x, y) = tokio::join!(a.commit(&b1), b.commit(&b2));
    assert!(x.unwrap() ^ y.unwrap(), "exactly one commit wins");
    assert_eq!(a.queued().await.unwrap(), 1);
    assert!(a.dirty().await.unwrap().is_empty());
    let sent = a
        .last_sent(&["manager:mona@example.com".into(), "nobody".into()])
        .await
        .unwrap();
    assert_eq!(
        sent[0].map(|t| t.timestamp_millis()),
        Some(t0.timestamp_millis())
    );
    assert_eq!(sent[1], None);

    // Rate limit: a send after t0 - 1 s is refused, the mark stays.
    a.mark_dirty(&alice, t0).await.unwrap();
    let limited = OutboxBatch {
        marks: a.dirty().await.unwrap(),
        rate: Some((
            "manager:mona@example.com".into(),
            t0 - chrono::Duration::seconds(1),
        )),
        messages: vec![message("m3")],
        now: t0,
        guard: None,
    };
    assert!(!a.commit(&limited).await.unwrap());
    assert_eq!(a.dirty().await.unwrap().len(), 1);

    // Claims are exclusive until the lease runs out.
    let lease = Duration::from_secs(30);
    let (c1, c2) = tokio::join!(a.claim_due(t0, lease, 10), b.claim_due(t0, lease, 10));
    let (c1, c2) = (c1.unwrap(), c2.unwrap());
    assert_eq!(c1.len() + c2.len(), 1, "one instance claims it");
    let mut claimed = c1.into_iter().chain(c2).next().unwrap();
    assert!(a.claim_due(t0, lease, 10).await.unwrap().is_empty());
    let after_lease = t0 + chrono::Duration::seconds(31);
    assert_eq!(a.claim_due(after_lease, lease, 10).await.unwrap().len(), 1);

    // Retry keeps attempts and error; due again at next_at.
    claimed.attempts = 1;
    claimed.last_error = Some("HTTP 503".into());
    a.retry(&claimed, t0 + chrono::Duration::seconds(100))
        .await
        .unwrap();
    let later = t0 + chrono::Duration::seconds(100);
    let again = a.claim_due(later, lease, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));

    // Given up: out of the queue, into the dead list.
    a.dead(&again[0]).await.unwrap();
    assert_eq!(a.queued().await.unwrap(), 0);
    assert_eq!(a.dead_letters().await.unwrap()[0].id, again[0].id);

    // Once a day, across instances; only the holder gives it back.
    assert!(a.once("daily:2026-01-01", "a", lease).await.unwrap());
    assert!(!b.once("daily:2026-01-01", "b", lease).await.unwrap());
    b.release_once("daily:2026-01-01", "b").await.unwrap();
    assert!(!b.once("daily:2026-01-01", "b", lease).await.unwrap());
    a.release_once("daily:2026-01-01", "a").await.unwrap();
    assert!(b.once("daily:2026-01-01", "b", lease).await.unwrap());

    // The guard is a short lease that the commit queuing the work makes lasting; a commit
    // whose lease ran out (another instance took over) writes nothing.
    let short = Duration::from_millis(300);
    assert!(a.once("daily:2026-01-02", "a", short).await.unwrap());
    let guarded = |id: &str, token: &str| OutboxBatch {
        messages: vec![message(id)],
        now: t0,
        guard: Some(clearance::store::OnceGuard {
            name: "daily:2026-01-02".into(),
            token: token.into(),
            keep: Duration::from_secs(3600),
        }),
        ..OutboxBatch::default()
    };
    assert!(
        !a.commit(&guarded("m7", "b")).await.unwrap(),
        "not the holder"
    );
    assert!(a.commit(&guarded("m8", "a")).await.unwrap());
    tokio::time::sleep(short * 2).await;
    assert!(
        !b.once("daily:2026-01-02", "b", short).await.unwrap(),
        "kept past the lease"
    );
    assert!(a.once("daily:2026-01-03", "a", short).await.unwrap());
    tokio::time::sleep(short * 2).await;
    let late = OutboxBatch {
        guard: Some(clearance::store::OnceGuard {
            name: "daily:2026-01-03".into(),
            token: "a".into(),
            keep: Duration::from_secs(3600),
        }),
        ..guarded("m6", "a")
    };
    assert!(!a.commit(&late).await.unwrap(), "the lease ran out");
    a.complete("m8").await.unwrap();

    // Delivered: gone.
    a.commit(&OutboxBatch {
        marks: Vec::new(),
        rate: None,
        messages: vec![message("m9")],
        now: t0,
        guard: None,
    })
    .await
    .unwrap();
    a.complete("m9").await.unwrap();
    assert_eq!(a.queued().await.unwrap(), 0);

    // A message that cannot be read goes to the dead list as stored; the others are delivered.
    a.commit(&OutboxBatch {
        messages: vec![message("g1"), message("g2")],
        now: t0,
        ..OutboxBatch::default()
    })
    .await
    .unwrap();
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = conn
        .hset("t:{/notify}:messages", "bad", "{not json")
        .await
        .unwrap();
    let _: () = conn
        .zadd("t:{/notify}:queue", "bad", t0.timestamp_millis() - 1)
        .await
        .unwrap();
    let claimed = a.claim_due(t0, lease, 10).await.unwrap();
    let ids: BTreeSet<String> = claimed.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, BTreeSet::from(["g1".to_string(), "g2".to_string()]));
    let dead: Vec<String> = conn.lrange("t:{/notify}:dead", 0, -1).await.unwrap();
    assert_eq!(dead.last().map(String::as_str), Some("{not json"));
    let in_queue: Option<f64> = conn.zscore("t:{/notify}:queue", "bad").await.unwrap();
    assert_eq!(in_queue, None);
    assert_eq!(a.queued().await.unwrap(), 2);
    assert_eq!(
        a.dead_letters().await.unwrap().len(),
        1,
        "the unreadable one is left out"
    );
}
