//! The Redis store against a real `redis-server`: atomic record writes, history, profiles,
//! sessions with TTLs, one-time login states, and denial-stream retention.

use crate::support::RedisServer;
use chrono::{Duration, Utc};
use clearance::config::{DenialSettings, RedisSettings, RedisTopology};
use clearance::domain::audit::{ChainId, verify_chain};
use clearance::domain::{DenialEvent, Principal, Record, RequirementId, Source, SubjectKey};
use clearance::store::redis::RedisStore;
use clearance::store::{
    AuditChain, DenialLog, FollowUpStore, Health, Outbox, RecordStore, SessionStore,
};
use redis::AsyncCommands;
use std::time::Duration as StdDuration;

fn store(redis: &RedisServer, denials: DenialSettings) -> RedisStore {
    RedisStore::new(
        &RedisSettings {
            url: redis.url(),
            topology: RedisTopology::Single,
            key_prefix: "t:".into(),
            response_timeout: StdDuration::from_millis(500),
            connect_timeout: StdDuration::from_millis(500),
        },
        denials,
        AUDIT_KEY.to_vec(),
    )
    .expect("store")
}

const AUDIT_KEY: &[u8] = b"store-test-audit-key-0123456789abcdef";

fn few_denials() -> DenialSettings {
    DenialSettings {
        max_entries: 100,
        max_age: None,
    }
}

fn record(subject: &str, requirement: &str, days_ago: i64) -> Record {
    Record {
        subject: SubjectKey::parse(subject).unwrap(),
        requirement: RequirementId(requirement.into()),
        version: "1".parse().unwrap(),
        completed_at: Utc::now() - Duration::days(days_ago),
        expires_at: None,
        source: Source::Api,
        evidence: Default::default(),
        recorded_by: "test".into(),
        recorded_at: Utc::now(),
        revoked_at: None,
    }
}

#[tokio::test]
async fn records_history_and_profiles() {
    let redis = RedisServer::start().await;
    let s = store(
        &redis,
        DenialSettings {
            max_entries: 10,
            max_age: None,
        },
    );
    s.ping().await.expect("ping");
    let alice = SubjectKey::parse("alice@example.com").unwrap();
    s.put_record(&record("alice@example.com", "a", 10))
        .await
        .unwrap();
    s.put_record(&record("alice@example.com", "a", 1))
        .await
        .unwrap();
    s.put_record(&record("alice@example.com", "b", 2))
        .await
        .unwrap();
    let mut current = s.records(&alice).await.unwrap();
    current.sort_by(|x, y| x.requirement.cmp(&y.requirement));
    assert_eq!(current.len(), 2, "one current record per requirement");
    assert_eq!(
        current[0].completed_at.date_naive(),
        (Utc::now() - Duration::days(1)).date_naive()
    );
    assert_eq!(
        s.history(&alice).await.unwrap().len(),
        3,
        "history keeps everything"
    );
    let bob = SubjectKey::parse("bob@example.com").unwrap();
    assert!(s.records(&bob).await.unwrap().is_empty());

    assert!(s.profile(&alice).await.unwrap().is_none());
    let mut p = Principal::bare(alice.clone());
    p.person_type = Some("employee".into());
    s.put_profile(&p).await.unwrap();
    assert_eq!(s.profile(&alice).await.unwrap(), Some(p));

    // Subjects are found through their index (reports), on every topology.
    let mut p2 = Principal::bare(SubjectKey::parse("profile-only@example.com").unwrap());
    p2.name = Some("Never Completed".into());
    s.put_profile(&p2).await.unwrap();
    let subjects: Vec<String> = s
        .subjects()
        .await
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        subjects,
        vec!["alice@example.com", "profile-only@example.com"]
    );
    redis::AsyncCommands::del::<_, ()>(
        &mut redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap(),
        "t:{profile-only@example.com}:profile",
    )
    .await
    .unwrap();

    // Hash-tagged keys, so that one subject's keys share a Redis Cluster slot.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, "t:*").await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "t:{/clearance}:audit:chains",
            "t:{/clearance}:subjects",
            "t:{alice@example.com}:audit:head",
            "t:{alice@example.com}:audit:log",
            "t:{alice@example.com}:history",
            "t:{alice@example.com}:profile",
            "t:{alice@example.com}:records"
        ]
    );
}

#[tokio::test]
async fn sessions_expire_and_login_states_work_once() {
    let redis = RedisServer::start().await;
    let s = store(
        &redis,
        DenialSettings {
            max_entries: 10,
            max_age: None,
        },
    );
    s.put_session("abc", "{}", StdDuration::from_millis(300), None)
        .await
        .unwrap();
    assert_eq!(s.get_session("abc").await.unwrap().as_deref(), Some("{}"));
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(s.get_session("abc").await.unwrap(), None, "TTL applied");
    s.put_session("def", "{}", StdDuration::from_secs(60), None)
        .await
        .unwrap();
    s.delete_session("def").await.unwrap();
    assert_eq!(s.get_session("def").await.unwrap(), None);

    s.put_login("state", "pending", StdDuration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        s.take_login("state").await.unwrap().as_deref(),
        Some("pending")
    );
    assert_eq!(s.take_login("state").await.unwrap(), None, "one time only");
}

fn denial(n: usize, age: Duration) -> DenialEvent {
    let p = Principal::bare(SubjectKey::parse(&format!("p{n}@example.com")).unwrap());
    let mut e = DenialEvent::for_principal(&p, Utc::now() - age, vec![]);
    e.path = format!("/{n}");
    e
}

#[tokio::test]
async fn denial_stream_is_trimmed_by_count_and_age() {
    let redis = RedisServer::start().await;
    let by_count = store(
        &redis,
        DenialSettings {
            max_entries: 3,
            max_age: None,
        },
    );
    for n in 0..5 {
        by_count
            .append_denial(&denial(n, Duration::zero()))
            .await
            .unwrap();
    }
    let recent = by_count.recent_denials(10).await.unwrap();
    let paths: Vec<_> = recent.iter().map(|(_, e)| e.path.clone()).collect();
    assert_eq!(
        paths,
        vec!["/4", "/3", "/2"],
        "newest first, only the last 3 kept"
    );
    assert_eq!(recent[0].1.subject, "p4@example.com");

    // Age: entries whose stream id is older than max_age are dropped on the next append.
    let by_age = store(
        &redis,
        DenialSettings {
            max_entries: 100,
            max_age: Some(StdDuration::from_millis(300)),
        },
    );
    by_age
        .append_denial(&denial(10, Duration::zero()))
        .await
        .unwrap();
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    by_age
        .append_denial(&denial(11, Duration::zero()))
        .await
        .unwrap();
    let paths: Vec<_> = by_age
        .recent_denials(10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.path)
        .collect();
    assert_eq!(paths, vec!["/11"]);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    let mut redis = RedisServer::start().await;
    let s = store(
        &redis,
        DenialSettings {
            max_entries: 3,
            max_age: None,
        },
    );
    s.ping().await.unwrap();
    redis.stop().await;
    let started = std::time::Instant::now();
    assert!(s.records(&SubjectKey::parse("a@b").unwrap()).await.is_err());
    assert!(s.ping().await.is_err());
    assert!(started.elapsed() < StdDuration::from_secs(5), "fails fast");
    redis.restart().await;
    let mut ok = false;
    for _ in 0..50 {
        if s.ping().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(ok, "reconnects by itself");
}

/// Every record change lands in the audit chain in the same step, and concurrent writers (two
/// stores, as two instances would) still produce one unbroken chain.
#[tokio::test]
async fn audit_chain_holds_under_concurrent_writers() {
    let redis = RedisServer::start().await;
    let a = store(&redis, few_denials());
    let b = store(&redis, few_denials());
    let mut writes = Vec::new();
    // One person's chain, written from both stores at once, plus a few other people's.
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        writes.push(tokio::spawn(async move {
            s.put_record(&record("p0@example.com", &format!("r{i}"), 1))
                .await
        }));
    }
    for i in 1..4 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        writes.push(tokio::spawn(async move {
            s.put_record(&record(&format!("p{i}@example.com"), "a", 1))
                .await
        }));
    }
    for w in writes {
        w.await.unwrap().expect("write");
    }
    let p0 = ChainId::Subject("p0@example.com".into());
    let AuditChain { lines, head, .. } = a.audit_chain(&p0).await.unwrap();
    assert_eq!(verify_chain(AUDIT_KEY, &p0, &lines, &head), Ok(40));
    let chains = b.audit_chains().await.unwrap();
    assert_eq!(
        chains.iter().map(|c| c.id.name()).collect::<Vec<_>>(),
        vec![
            "subject:p0@example.com",
            "subject:p1@example.com",
            "subject:p2@example.com",
            "subject:p3@example.com"
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("\"kind\":\"record.added\""))
    );
    // A once-only write that is refused writes no audit entry either.
    let r = record("p0@example.com", "b", 1);
    assert!(a.put_record_once(&r, "stmt-1").await.unwrap());
    assert!(!b.put_record_once(&r, "stmt-1").await.unwrap());
    let AuditChain { lines, head, .. } = a.audit_chain(&p0).await.unwrap();
    assert_eq!(verify_chain(AUDIT_KEY, &p0, &lines, &head), Ok(41));
}

/// Denials are counted into one open case per person until it is closed.
#[tokio::test]
async fn cases_count_denials_until_closed() {
    let redis = RedisServer::start().await;
    let s = store(&redis, few_denials());
    let alice = SubjectKey::parse("alice@example.com").unwrap();
    let mut event = DenialEvent::for_principal(&Principal::bare(alice.clone()), Utc::now(), vec![]);
    event.host = "wiki.example.com".into();
    let first = s
        .touch_case(&event, "case-1", false)
        .await
        .unwrap()
        .unwrap();
    event.host = "git.example.com".into();
    event.time += Duration::minutes(5);
    let second = s
        .touch_case(&event, "case-2", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, "case-1");
    assert_eq!(second.id, "case-1", "the open case is reused");
    assert_eq!(second.count, 2);
    assert_eq!(second.apps.len(), 2);
    assert_eq!(second.last_seen.timestamp(), event.time.timestamp());
    let closed = s.close_case(&alice, Utc::now()).await.unwrap().unwrap();
    assert!(closed.closed_at.is_some());
    assert!(s.close_case(&alice, Utc::now()).await.unwrap().is_none());
    let third = s
        .touch_case(&event, "case-3", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((third.id.as_str(), third.count), ("case-3", 1));
    let cases = s.cases(&alice).await.unwrap();
    assert_eq!(cases.len(), 2);
    assert!(!cases[0].is_open() && cases[1].is_open());
    assert_eq!(s.case_subjects().await.unwrap(), vec![alice.clone()]);
    // With notifications (immediate), the count marks the person as news in the same step; the
    // first mark's time is kept.
    assert!(s.dirty().await.unwrap().is_empty(), "no mark unless asked");
    let marked = event.time;
    s.touch_case(&event, "case-4", true).await.unwrap();
    event.time += Duration::minutes(1);
    let fourth = s.touch_case(&event, "case-4", true).await.unwrap().unwrap();
    assert_eq!((fourth.id.as_str(), fourth.count), ("case-3", 3));
    let dirty = s.dirty().await.unwrap();
    assert_eq!(dirty.len(), 1);
    assert_eq!(dirty[0].0, alice);
    assert_eq!(dirty[0].1.timestamp_millis(), marked.timestamp_millis());
    // A denial with an id is counted once, however often the count is retried, and appended
    // to the log once; denials without an id (written before ids existed) are not deduplicated.
    event.denial_id = "denial-1".into();
    let once = s
        .touch_case(&event, "case-5", false)
        .await
        .unwrap()
        .unwrap();
    let again = s
        .touch_case(&event, "case-5", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((once.count, again.count), (4, 4), "counted once");
    assert_eq!(once.id, again.id);
    let before = s.recent_denials(100).await.unwrap().len();
    let appended = s.append_denial(&event).await.unwrap();
    assert!(appended.is_some());
    assert_eq!(
        s.append_denial(&event).await.unwrap(),
        None,
        "appended once"
    );
    event.denial_id = "denial-2".into();
    assert!(
        s.append_denial(&event).await.unwrap().is_some(),
        "another denial"
    );
    assert_eq!(s.recent_denials(100).await.unwrap().len(), before + 2);
    // Counted before, and its case closed since: nothing to count into, nothing reopened.
    event.denial_id = "denial-1".into();
    s.close_case(&alice, Utc::now()).await.unwrap();
    assert_eq!(s.touch_case(&event, "case-6", false).await.unwrap(), None);
    assert!(s.cases(&alice).await.unwrap().iter().all(|c| !c.is_open()));
    // The raw stored entries are what the chain says: a direct edit breaks it.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    s.put_record(&record("alice@example.com", "a", 1))
        .await
        .unwrap();
    let key = "t:{alice@example.com}:audit:log";
    let line: String = conn.lindex(key, 0).await.unwrap();
    let _: () = conn
        .lset(key, 0, line.replace("alice@", "mallory@"))
        .await
        .unwrap();
    let alice_chain = ChainId::Subject("alice@example.com".into());
    let AuditChain { lines, head, .. } = s.audit_chain(&alice_chain).await.unwrap();
    assert_eq!(
        verify_chain(AUDIT_KEY, &alice_chain, &lines, &head)
            .unwrap_err()
            .position,
        1
    );
}

/// Keys an older version wrote (one audit chain, untagged directory and notification keys, no
/// subjects index) are moved to today's layout at start, once, and the old chain still
/// verifies as the `legacy` chain.
#[tokio::test]
async fn an_older_layout_is_moved_and_its_audit_chain_kept() {
    use clearance::domain::audit::{AuditEvent, ChainHead, seal};
    use clearance::domain::{DirectorySource, Person};
    let redis = RedisServer::start().await;
    let s = store(&redis, few_denials());
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let old = SubjectKey::parse("old@example.com").unwrap();
    let mut person = Person::new(old.clone(), DirectorySource::Scim, Utc::now());
    person.active = false;
    person.scim_id = Some("scim-old".into());
    let _: () = conn
        .hset(
            "t:directory",
            old.as_str(),
            serde_json::to_string(&person).unwrap(),
        )
        .await
        .unwrap();
    let _: () = conn
        .hset("t:directory:scim", "scim-old", old.as_str())
        .await
        .unwrap();
    let _: () = conn
        .zadd("t:notify:dirty", old.as_str(), 1_700_000_000_000i64)
        .await
        .unwrap();
    let _: () = conn
        .set(
            "t:{old@example.com}:profile",
            "{\"subject\":\"old@example.com\"}",
        )
        .await
        .unwrap();
    let mut head = ChainHead::default();
    for kind in ["record.added", "directory.changed"] {
        let event = AuditEvent::new(
            Utc::now(),
            kind,
            "test",
            Some(old.as_str()),
            serde_json::json!({}),
        );
        let (line, next) = seal(AUDIT_KEY, &head, &event).unwrap();
        let _: () = conn.rpush("t:audit:log", line).await.unwrap();
        head = next;
    }
    let _: () = conn.set("t:audit:head", head.encode()).await.unwrap();

    // More people with records than one batch of the move holds.
    let mut pipe = redis::pipe();
    for n in 0..2_500 {
        pipe.set(format!("t:{{p{n}@example.com}}:records"), "{}")
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();

    // The directory, the 5 notification keys absent but one, 2,501 subjects and the chain.
    assert_eq!(s.migrate_legacy_layout().await.unwrap(), 3 + 2_501 + 1);
    let marker: String = conn.get("t:{/clearance}:layout").await.unwrap();
    assert_eq!(marker, "2", "the move is marked as done");
    // Later starts read only the marker, even if an older version wrote again meanwhile.
    let _: () = conn
        .set("t:{late@example.com}:profile", "{}")
        .await
        .unwrap();
    assert_eq!(s.migrate_legacy_layout().await.unwrap(), 0, "once");
    let indexed: usize = conn.scard("t:{/clearance}:subjects").await.unwrap();
    assert_eq!(indexed, 2_501);
    // Removing the marker asks for the move again; what is done already is not counted.
    let _: () = conn.del("t:{/clearance}:layout").await.unwrap();
    assert_eq!(
        s.migrate_legacy_layout().await.unwrap(),
        1,
        "only the late subject"
    );
    let _: () = conn
        .del(&["t:{late@example.com}:profile", "t:{/clearance}:layout"][..])
        .await
        .unwrap();
    let others: Vec<String> = (0..2_500)
        .map(|n| format!("p{n}@example.com"))
        .chain(["late@example.com".to_string()])
        .collect();
    let _: () = conn.srem("t:{/clearance}:subjects", others).await.unwrap();
    let moved = s
        .person(&old)
        .await
        .unwrap()
        .expect("directory entry moved");
    assert!(!moved.active, "a deactivation survives the move");
    assert_eq!(
        s.person_by_scim_id("scim-old")
            .await
            .unwrap()
            .map(|p| p.subject),
        Some(old.clone())
    );
    assert_eq!(s.dirty().await.unwrap().len(), 1);
    assert_eq!(s.subjects().await.unwrap(), vec![old.clone()]);
    let chains = s.audit_chains().await.unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0].id, ChainId::Legacy);
    match clearance::evidence::check_chains(AUDIT_KEY, &chains) {
        clearance::evidence::ChainCheck::Intact { entries, chains } => {
            assert_eq!((entries, chains), (2, 1));
        }
        clearance::evidence::ChainCheck::Broken { chain, at } => panic!("{chain}: {at}"),
    }
    // New changes go to the per-subject chains beside it.
    s.put_record(&record("old@example.com", "a", 1))
        .await
        .unwrap();
    assert_eq!(s.audit_chains().await.unwrap().len(), 2);
}
