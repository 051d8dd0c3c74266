//! Redis topologies besides one server: the whole flow on a three-primary Redis Cluster (every
//! script's keys share a slot, the key space really spreads over the nodes), and a failover
//! behind Sentinel under load (nobody wrongly admitted, only 503s meanwhile, service resumes by
//! itself on the promoted replica).

use crate::gate::World;
use crate::support::{
    Browser, RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, sentinel_names,
};
use crate::{admin_post, blocked_items, clearance_cli, complete_everything, denials, sign_in};
use chrono::Utc;
use clearance::config::{DenialSettings, RedisSettings, RedisTopology};
use clearance::domain::audit::AuditEvent;
use clearance::domain::directory::DirectorySource;
use clearance::domain::exemption::{ExemptionLimits, ExemptionRequest};
use clearance::domain::notify::{Message, MessageKind};
use clearance::domain::{DenialEvent, Person, Principal, SubjectKey};
use clearance::store::redis::RedisStore;
use clearance::store::{FollowUpStore, OnceGuard, Outbox, OutboxBatch, RecordStore};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::time::Duration;

fn toml_list(urls: &[String]) -> String {
    let quoted: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Keys held by one server (`DBSIZE`).
async fn keys_on(server: &RedisServer) -> usize {
    let reply = server.raw_command("DBSIZE").await.unwrap_or_default();
    reply.trim().trim_start_matches(':').parse().unwrap_or(0)
}

#[tokio::test]
async fn the_whole_flow_passes_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let urls = cluster.urls();
    let mut nodes = cluster.nodes;
    let first = nodes.remove(0);
    let world = World::start_on(
        first,
        RedisTopology::Cluster {
            nodes: urls.clone(),
        },
    )
    .await;

    // Signed in, blocked on everything, the denial written to the stream.
    let people = [
        "carl@example.com",
        "alice@example.com",
        "erin@example.com",
        "mona@example.com",
    ];
    let browser = Browser::new();
    let blocked = sign_in(&world, &browser, people[0], "/echo/a").await;
    assert_eq!(blocked.status, 403, "{}", blocked.body);
    assert_eq!(blocked_items(&blocked).len(), 3, "{}", blocked.body);
    let written = denials(&world).await;
    assert!(
        written.iter().any(|d| d["event"]["subject"] == people[0]),
        "{written:?}"
    );

    // Records posted: admitted.
    for who in people {
        complete_everything(&world, who).await;
    }
    let admitted = browser
        .get(format!("{}/echo/b", world.gate.url()))
        .await
        .expect("gate");
    assert_eq!(admitted.status, 200, "{}", admitted.body);

    // A revocation: blocked again on the next request, and that denial is written too.
    let r = admin_post(
        &world,
        "revocations",
        json!({"subject": people[0], "requirement": "security-awareness",
               "reason": "completed by someone else", "evidence": {"ticket": "SEC-1"}}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let again = browser
        .get(format!("{}/echo/c", world.gate.url()))
        .await
        .expect("gate");
    assert_eq!(again.status, 403);
    assert_eq!(
        blocked_items(&again),
        vec![("security-awareness".to_owned(), "revoked".to_owned())]
    );
    let written = denials(&world).await;
    assert!(
        written
            .iter()
            .filter(|d| d["event"]["subject"] == people[0])
            .count()
            >= 2,
        "{written:?}"
    );

    // The key space really spreads over the primaries.
    let mut per_node = vec![keys_on(&world.redis).await];
    for n in &nodes {
        per_node.push(keys_on(n).await);
    }
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "keys on one node only: {per_node:?}"
    );

    // The audit chains verify, and reports find every person although no node holds them all.
    let redis = format!("mode = \"cluster\"\nnodes = {}", toml_list(&urls));
    let (code, out, err) = clearance_cli(&world, Some(&redis), &["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact: 13 entries in 4 chains"), "{out}");
    let (code, out, err) = clearance_cli(
        &world,
        Some(&redis),
        &[
            "report",
            "would-block",
            "--at",
            "2099-01-01",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let rows: Value = serde_json::from_str(&out).expect("JSON report");
    let reported: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["subject"].as_str())
        .collect();
    for who in people {
        assert!(reported.contains(&who), "{who} missing from {reported:?}");
    }
}

/// Every script and transaction of the store on a cluster: no CROSSSLOT anywhere.
#[tokio::test]
async fn every_store_operation_works_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let store = RedisStore::new(
        &RedisSettings {
            url: cluster.nodes[0].url(),
            topology: RedisTopology::Cluster {
                nodes: cluster.urls(),
            },
            key_prefix: "t:".into(),
            response_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(1000),
        },
        DenialSettings {
            max_entries: 100,
            max_age: None,
        },
        b"cluster-test-audit-key-0123456789abcdef".to_vec(),
    )
    .expect("store");
    let now = Utc::now();
    let subjects: Vec<SubjectKey> = (0..12)
        .map(|i| SubjectKey::parse(&format!("p{i}@example.com")).unwrap())
        .collect();
    for s in &subjects {
        // Directory (its own chain), profile (subjects index), a case with a dirty mark.
        let mut person = Person::new(s.clone(), DirectorySource::Scim, now);
        person.scim_id = Some(format!("scim-{s}"));
        store.put_person(&person, "test").await.expect("person");
        store
            .put_profile(&Principal::bare(s.clone()))
            .await
            .expect("profile");
        let event = DenialEvent::for_principal(&Principal::bare(s.clone()), now, vec![]);
        store
            .touch_case(&event, &format!("case-{s}"), true)
            .await
            .expect("case");
        assert!(store.standing(s).await.expect("standing").person.is_some());
    }
    assert_eq!(store.subjects().await.unwrap(), {
        let mut sorted = subjects.clone();
        sorted.sort();
        sorted
    });
    assert_eq!(store.case_subjects().await.unwrap().len(), subjects.len());
    let found = store
        .person_by_scim_id(&format!("scim-{}", subjects[3]))
        .await
        .unwrap();
    assert_eq!(found.map(|p| p.subject), Some(subjects[3].clone()));

    // Exemptions (index elsewhere), compare-and-set.
    let exemption = ExemptionRequest {
        id: "ex-1".into(),
        subject: subjects[0].clone(),
        requirements: vec![],
        reason: "cluster test".into(),
        duration: chrono::Duration::hours(24),
        requested_by: "test".into(),
    }
    .file(
        ExemptionLimits {
            max: chrono::Duration::days(7),
            break_glass_max: chrono::Duration::days(1),
        },
        now,
    )
    .expect("a valid request");
    assert!(store.put_exemption(&exemption, None, "test").await.unwrap());
    assert!(!store.put_exemption(&exemption, None, "test").await.unwrap());
    assert_eq!(store.exemption("ex-1").await.unwrap(), Some(exemption));

    // The notification worker's scripts: marks, queue, claim, complete.
    let dirty = store.dirty().await.unwrap();
    assert_eq!(dirty.len(), subjects.len());
    let message = Message {
        id: "m-1".into(),
        kind: MessageKind::Digest,
        recipient: subjects[1].clone(),
        created_at: now,
        body: "{}".into(),
        attempts: 0,
        last_error: None,
        gave_up_at: None,
    };
    assert!(
        store
            .once("digest", "token-1", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let batch = OutboxBatch {
        now,
        marks: dirty,
        rate: Some((subjects[1].to_string(), now)),
        guard: Some(OnceGuard {
            name: "digest".into(),
            token: "token-1".into(),
            keep: Duration::from_secs(60),
        }),
        messages: vec![message],
    };
    assert!(store.commit(&batch).await.unwrap());
    assert!(store.dirty().await.unwrap().is_empty());
    let claimed = store
        .claim_due(now, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store.complete("m-1").await.unwrap();
    assert_eq!(store.queued().await.unwrap(), 0);

    // Clearance's own chain, and every chain verifies.
    store
        .append_audit(&AuditEvent::new(
            now,
            "config.loaded",
            "clearance",
            None,
            json!({}),
        ))
        .await
        .unwrap();
    let chains = store.audit_chains().await.unwrap();
    assert_eq!(
        chains.iter().map(|c| c.id.name()).collect::<Vec<_>>(),
        vec!["clearance", "directory", "subject:p0@example.com"]
    );
    match clearance::evidence::check_chains(b"cluster-test-audit-key-0123456789abcdef", &chains) {
        clearance::evidence::ChainCheck::Intact { entries, chains } => {
            assert_eq!((entries, chains), (subjects.len() as u64 + 2, 3));
        }
        clearance::evidence::ChainCheck::Broken { chain, at } => panic!("{chain}: {at}"),
    }
    assert!(
        cluster.keys_per_node().await.iter().all(|n| *n > 0),
        "every primary holds keys"
    );
}

/// What the load saw while a primary was killed.
#[derive(Default)]
struct Seen {
    compliant_ok: AtomicUsize,
    compliant_unavailable: AtomicUsize,
    blocked: AtomicUsize,
    blocked_unavailable: AtomicUsize,
    wrong_admits: AtomicUsize,
    other: std::sync::Mutex<Vec<String>>,
}

/// Signed-in people hitting the gate until stopped: compliant ones (who may get 200 or 503) and
/// non-compliant ones (403 or 503; a 200 is a wrong admit).
struct Load {
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(world: &World, compliant: &[Browser], blocked: &[Browser]) -> Self {
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (browser, is_compliant) in compliant
            .iter()
            .map(|b| (b.clone(), true))
            .chain(blocked.iter().map(|b| (b.clone(), false)))
        {
            let (seen, stop, url) = (seen.clone(), stop.clone(), world.gate.url());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let status = match browser.get(format!("{url}/echo/load-{n}")).await {
                        Ok(r) => r.status,
                        Err(e) => {
                            seen.other.lock().unwrap().push(format!("transport: {e}"));
                            continue;
                        }
                    };
                    let counter = match (is_compliant, status.as_u16()) {
                        (true, 200) => &seen.compliant_ok,
                        (true, 503) => &seen.compliant_unavailable,
                        (false, 403) => &seen.blocked,
                        (false, 503) => &seen.blocked_unavailable,
                        (false, 200) => &seen.wrong_admits,
                        (_, other) => {
                            seen.other
                                .lock()
                                .unwrap()
                                .push(format!("compliant={is_compliant}: {other}"));
                            continue;
                        }
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        Self { seen, stop, tasks }
    }

    fn unavailable(&self) -> usize {
        self.seen.compliant_unavailable.load(Ordering::SeqCst)
            + self.seen.blocked_unavailable.load(Ordering::SeqCst)
    }

    /// Waits (until `deadline`) for both kinds of people to be answered normally again, many
    /// times over; then stops the load and checks what it saw: zero wrong admits, and no
    /// failure but 503.
    async fn resumes_and_stops(self, deadline: std::time::Instant) -> Seen {
        let seen = &self.seen;
        let ok_before = seen.compliant_ok.load(Ordering::SeqCst);
        let blocked_before = seen.blocked.load(Ordering::SeqCst);
        loop {
            if seen.compliant_ok.load(Ordering::SeqCst) > ok_before + 10
                && seen.blocked.load(Ordering::SeqCst) > blocked_before + 10
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "service did not resume after the failover: ok {}, 503 {}, blocked {}, other {:?}",
                seen.compliant_ok.load(Ordering::SeqCst),
                self.unavailable(),
                seen.blocked.load(Ordering::SeqCst),
                seen.other.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load task");
        }
        let seen = Arc::try_unwrap(self.seen).unwrap_or_else(|_| panic!("load tasks ended"));
        assert_eq!(seen.wrong_admits.load(Ordering::SeqCst), 0, "wrong admits");
        assert!(
            seen.other.lock().unwrap().is_empty(),
            "failures other than 503: {:?}",
            seen.other.lock().unwrap()
        );
        seen
    }
}

/// Signs in two compliant and two non-compliant people.
async fn signed_in_people(world: &World) -> (Vec<Browser>, Vec<Browser>) {
    let mut compliant = Vec::new();
    let mut blocked = Vec::new();
    for (who, done) in [
        ("alice@example.com", true),
        ("mona@example.com", true),
        ("carl@example.com", false),
        ("erin@example.com", false),
    ] {
        if done {
            complete_everything(world, who).await;
        }
        let browser = Browser::new();
        let page = sign_in(world, &browser, who, "/echo/start").await;
        assert_eq!(page.status, if done { 200 } else { 403 }, "{who}");
        if done {
            compliant.push(browser);
        } else {
            blocked.push(browser);
        }
    }
    (compliant, blocked)
}

#[tokio::test]
async fn a_sentinel_failover_under_load_admits_nobody_wrongly_and_resumes() {
    let RedisSentinel {
        primary,
        replica,
        sentinel,
    } = RedisSentinel::start().await;
    let mut world = World::start_on(
        primary,
        RedisTopology::Sentinel {
            sentinels: vec![sentinel.url()],
            master_name: SENTINEL_MASTER.into(),
        },
    )
    .await;
    let (compliant, blocked) = signed_in_people(&world).await;
    // Everything so far is on the replica too (a failover loses only unreplicated writes).
    let direct = world
        .redis
        .raw_command("WAIT 1 2000")
        .await
        .unwrap_or_default();
    assert_eq!(direct.trim(), ":1", "the replica acknowledged the writes");

    // Under load, the primary dies.
    let load = Load::start(&world, &compliant, &blocked);
    tokio::time::sleep(Duration::from_millis(300)).await;
    world.redis.stop().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);

    // Sentinel promotes the replica, and service resumes without anyone touching the gate.
    while !sentinel_names(&sentinel, &replica).await {
        assert!(
            std::time::Instant::now() < deadline,
            "sentinel did not fail over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unavailable = load.unavailable();
    load.resumes_and_stops(deadline).await;
    assert!(unavailable > 0, "the failover was seen as 503s");

    // After the failover, writes go to the promoted replica: a new record admits.
    complete_everything(&world, "carl@example.com").await;
    let admitted = blocked[0]
        .get(format!("{}/echo/after", world.gate.url()))
        .await
        .expect("gate");
    assert_eq!(admitted.status, 200, "{}", admitted.body);
}

#[tokio::test]
async fn a_cluster_primary_failing_under_load_admits_nobody_wrongly_and_resumes() {
    let cluster = RedisCluster::start_with_replicas(1).await;
    let urls = cluster.urls();
    let mut nodes = cluster.nodes;
    let first = nodes.remove(0);
    let world = World::start_on(first, RedisTopology::Cluster { nodes: urls }).await;
    let (compliant, blocked) = signed_in_people(&world).await;

    // The primary that holds a compliant person's records (the others answer MOVED).
    let key = "EXISTS clearance:{alice@example.com}:records";
    let mut owner = None;
    for (i, n) in std::iter::once(&world.redis)
        .chain(nodes.iter())
        .enumerate()
    {
        if n.raw_command(key).await.unwrap_or_default().trim() == ":1" {
            owner = Some(i);
        }
    }
    let owner = owner.expect("a primary holds alice's records");
    for n in std::iter::once(&world.redis).chain(nodes.iter()) {
        // Every primary's writes reached its replica (replicas answer WAIT with 0 at once).
        let _ = n.raw_command("WAIT 1 2000").await;
    }

    let load = Load::start(&world, &compliant, &blocked);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut world = world;
    let killed_port = if owner == 0 {
        let port = world.redis.port();
        world.redis.stop().await;
        port
    } else {
        let port = nodes[owner - 1].port();
        nodes[owner - 1].stop().await;
        port
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);

    // The cluster promotes the replica; the client follows the new slot map by itself.
    let survivor = nodes
        .iter()
        .find(|n| n.port() != killed_port)
        .expect("a surviving node");
    loop {
        let info = survivor
            .raw_command("CLUSTER INFO")
            .await
            .unwrap_or_default();
        // Answered `:1` or `MOVED <slot> <promoted replica>` once the slot has a new primary.
        let owner_now = survivor.raw_command(key).await.unwrap_or_default();
        if info.contains("cluster_state:ok") && !owner_now.contains(&format!(":{killed_port}")) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let logs: Vec<String> = nodes.iter().map(RedisServer::log).collect();
            panic!(
                "the cluster did not fail over: {info}\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unavailable = load.unavailable();
    load.resumes_and_stops(deadline).await;
    assert!(unavailable > 0, "the failover was seen as 503s");
}
