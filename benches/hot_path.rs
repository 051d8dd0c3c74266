//! Criterion micro-benchmarks of the hot path: session cookie decode, policy evaluation, header rewrite.
//!
//! `session/from_json` is what every request paid before the decision cache kept sessions parsed;
//! `session/cache_hit` is what a warm cache costs instead (unpacking its packed, token-free copy).
//!
//! Policy evaluation comes with the route lookup and path normalisation before it. Everything is deterministic: fixed instants, a fixed cookie key, no network and no Redis.
//! Run with `cargo bench --bench hot_path`; the numbers are in docs/BENCHMARKS.md.

use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::test::TestRequest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use clearance::auth::session::{Session, open_sealed};
use clearance::domain::{
    Principal, Record, RequirementId, Route, RouteAccess, RouteTable, Source, SubjectKey, Version,
    evaluate,
};
use clearance::http::normalize::normalize_path;
use clearance::http::proxy::{Forwarding, upstream_request_headers};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const COOKIE: &str = "_clearance";

/// The evaluated instant.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0)
        .single()
        .expect("a valid instant")
}

/// The three-requirement policy of the unit tests (src/testutil.rs): training valid for 365
/// days, a confidentiality agreement, an acceptable-use policy at version 3.0.
fn settings() -> clearance::config::Settings {
    clearance::config::from_toml_str(include_str!("../tests/support/three_requirements.toml"))
        .expect("the benchmark configuration is valid")
}

fn subject() -> SubjectKey {
    SubjectKey::parse("alice.martin@example.com").expect("a valid subject")
}

fn principal() -> Principal {
    Principal {
        subject: subject(),
        provider_sub: "00u1a2b3c4d5e6f7g8h9".into(),
        email: Some("alice.martin@example.com".into()),
        name: Some("Alice Martin".into()),
        groups: vec![
            "staff".into(),
            "engineering".into(),
            "wiki-editors".into(),
            "vpn-users".into(),
            "on-call".into(),
        ],
        person_type: Some("employee".into()),
        manager: Some("bob.keller@example.com".into()),
    }
}

/// A JWT-shaped token of about 800 characters (header, claims, a 256-byte signature).
fn jwt(kind: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"2026-11-key-1","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"iss":"https://login.example.com","sub":"00u1a2b3c4d5e6f7g8h9","aud":"clearance","exp":1795946400,"iat":1795942800,"auth_time":1795942790,"token_use":"{kind}","email":"alice.martin@example.com","name":"Alice Martin","groups":["staff","engineering","wiki-editors","vpn-users","on-call"],"sid":"f3c9a1e2-7b4d-4e8a-9c61-2d5b8e0f4a17","nonce":"kT9vQ2mXr7LpW4sZ"}}"#
    ));
    let signature = URL_SAFE_NO_PAD.encode([0x5au8; 256]);
    format!("{header}.{claims}.{signature}")
}

fn session_json() -> String {
    let created = now() - Duration::hours(3);
    let session = Session {
        principal: principal(),
        id_token: Some(jwt("id")),
        access_token: jwt("access"),
        refresh_token: Some(URL_SAFE_NO_PAD.encode([0x3cu8; 96])),
        access_expires_at: Some(now() + Duration::minutes(40)),
        created_at: created,
        expires_at: created + Duration::hours(12),
        csrf: URL_SAFE_NO_PAD.encode([0x11u8; 32]),
        provider_sid: Some("f3c9a1e2-7b4d-4e8a-9c61-2d5b8e0f4a17".into()),
        tokens_elided: false,
    };
    serde_json::to_string(&session).expect("a session serialises")
}

/// The session cookie's value as the browser sends it: a 256-bit session id, sealed.
fn sealed_cookie(key: &Key) -> String {
    let id = URL_SAFE_NO_PAD.encode([0xa7u8; 32]);
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(Cookie::new(COOKIE, id));
    jar.get(COOKIE).expect("sealed").value().to_owned()
}

fn session_cookie(c: &mut Criterion) {
    let key = Key::from(&[7u8; 64]);
    let value = sealed_cookie(&key);
    assert!(open_sealed(&key, COOKIE, &value).is_some());
    c.bench_function("session/open_sealed", |b| {
        b.iter(|| open_sealed(black_box(&key), COOKIE, black_box(&value)))
    });
    let json = session_json();
    assert!(Session::from_json(&json).is_ok());
    c.bench_function("session/from_json", |b| {
        b.iter(|| Session::from_json(black_box(&json)))
    });
    // What a warm decision cache does instead of parsing JSON: find and unpack the kept bytes.
    let cache = clearance::store::cache::DecisionCache::new(&settings().cache);
    cache.resume();
    cache.delivered(std::time::Instant::now() + std::time::Duration::from_secs(3600));
    let session = Session::from_json(&json).expect("the session reads");
    let id = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let ticket = cache.ticket().expect("a live cache");
    cache.keep_session(id, &session, None, now(), ticket);
    assert!(cache.session(id, now()).is_some());
    let packed =
        clearance::store::packed::pack_session(&session, chrono::Utc::now()).expect("packs");
    c.bench_function("session/unpack", |b| {
        b.iter(|| clearance::store::packed::unpack_session(black_box(&packed)))
    });
    c.bench_function("session/cache_hit", |b| {
        b.iter(|| cache.session(black_box(id), now()))
    });
}

fn record(requirement: &str, version: Version, completed_days_ago: i64) -> Record {
    let completed_at = now() - Duration::days(completed_days_ago);
    let mut evidence = serde_json::Map::new();
    evidence.insert(
        "statement_id".into(),
        "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f".into(),
    );
    evidence.insert("client_address".into(), "198.51.100.7".into());
    Record {
        subject: subject(),
        requirement: RequirementId(requirement.into()),
        version,
        completed_at,
        expires_at: None,
        source: Source::Xapi,
        evidence,
        recorded_by: "xapi".into(),
        recorded_at: completed_at + Duration::seconds(5),
        revoked_at: None,
    }
}

/// A realistic history: two training completions (the newer one counts), the agreement, and
/// the acceptable-use policy at the old and the current version. `training_days_ago` is when
/// the newer training was completed (over 365 days ago, it has expired).
fn records(training_days_ago: i64) -> Vec<Record> {
    let v = |major, minor| Version { major, minor };
    vec![
        record("security-awareness", v(2025, 1), training_days_ago + 365),
        record("security-awareness", v(2026, 1), training_days_ago),
        record("confidentiality-agreement", v(1, 0), 900),
        record("acceptable-use-policy", v(2, 0), 700),
        record("acceptable-use-policy", v(3, 0), 60),
    ]
}

fn route(host: Option<&str>, prefix: &str, access: RouteAccess) -> Route {
    Route {
        host: host.map(str::to_owned),
        path_prefix: prefix.into(),
        upstream: Some("http://10.0.0.12:8080".into()),
        access,
        requirements: vec![RequirementId("security-awareness".into())],
        preserve_host: false,
    }
}

/// Twenty routes: a few hosts with several path prefixes each, and wildcard-host routes.
fn routes() -> RouteTable {
    let mut routes = Vec::new();
    for host in ["wiki.example.com", "git.example.com", "hr.example.com"] {
        for prefix in ["/", "/api", "/admin", "/spaces", "/static"] {
            routes.push(route(Some(host), prefix, RouteAccess::Gated));
        }
    }
    routes.push(route(Some("lms.example.com"), "/", RouteAccess::Induction));
    routes.push(route(Some("status.example.com"), "/", RouteAccess::Public));
    routes.push(route(None, "/healthz", RouteAccess::Public));
    routes.push(route(None, "/assets", RouteAccess::Public));
    routes.push(route(None, "/", RouteAccess::Gated));
    RouteTable::new(routes)
}

fn policy(c: &mut Criterion) {
    let settings = settings();
    let requirements = &settings.policy.requirements;
    assert_eq!(requirements.len(), 3);
    let person = principal();
    let at = now();
    let met = records(100);
    let unmet = records(400);
    assert!(
        evaluate(requirements, &person, &met, at)
            .decision()
            .is_allow()
    );
    assert!(
        !evaluate(requirements, &person, &unmet, at)
            .decision()
            .is_allow()
    );
    c.bench_function("policy/evaluate_all_met", |b| {
        b.iter(|| evaluate(requirements, black_box(&person), black_box(&met), at).decision())
    });
    c.bench_function("policy/evaluate_one_unmet", |b| {
        b.iter(|| evaluate(requirements, black_box(&person), black_box(&unmet), at).decision())
    });

    let table = routes();
    assert_eq!(table.routes().len(), 20);
    let path = "/spaces/engineering/pages/4242";
    assert!(table.find("Wiki.Example.com:443", path).is_some());
    c.bench_function("route/find_20_routes", |b| {
        b.iter(|| table.find(black_box("Wiki.Example.com:443"), black_box(path)))
    });

    let raw = "/spaces/engineering/pages/4242/Release%20notes%202026/./edit";
    assert!(normalize_path(raw).is_ok());
    c.bench_function("path/normalize_path", |b| {
        b.iter(|| normalize_path(black_box(raw)))
    });
    // What forward-auth judges: a target that is canonical already.
    let canonical = "/spaces/engineering/pages/4242/Release%20notes%202026/edit";
    assert!(clearance::http::normalize::canonical_target_path(canonical).is_ok());
    c.bench_function("path/canonical_target_path", |b| {
        b.iter(|| clearance::http::normalize::canonical_target_path(black_box(canonical)))
    });
    c.bench_function("host/check_authority", |b| {
        b.iter(|| clearance::http::authority::check_authority(black_box("wiki.example.com:443")))
    });
}

/// Fifteen headers as a browser sends them through a load balancer, with Clearance's cookies
/// among others and a spoofed identity.
fn client_headers() -> HeaderMap {
    let cookie = format!(
        "{COOKIE}={}; theme=dark; lang=en-GB; _ga=GA1.2.1234567890.1795942800",
        URL_SAFE_NO_PAD.encode([0xa7u8; 80])
    );
    let pairs: [(&str, &str); 15] = [
        ("host", "wiki.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://wiki.example.com/spaces/engineering"),
        ("cookie", &cookie),
        ("cookie", "_clearance_login=abc; wiki_session=8f2e1d"),
        ("x-forwarded-user", "mallory@example.com"),
        ("X_Auth_Request_Email", "mallory@example.com"),
        ("x-forwarded-for", "203.0.113.66"),
        ("connection", "keep-alive"),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-mode", "navigate"),
        ("priority", "u=0, i"),
    ];
    pairs
        .into_iter()
        .fold(TestRequest::default(), |req, pair| req.append_header(pair))
        .to_http_request()
        .headers()
        .clone()
}

fn header_rewrite(c: &mut Criterion) {
    let incoming = client_headers();
    assert_eq!(incoming.len(), 15);
    let own = [COOKIE, "_clearance_login"];
    let forwarding = Forwarding {
        forwarded_for: "198.51.100.7",
        proto: "https",
        host: "wiki.example.com",
        request_id: "3f2a9c1e-5d7b-4a08-b6e4-0c1d2e3f4a5b",
        extra_identity: &[],
    };
    let person = principal();
    let out = upstream_request_headers(&incoming, &own, &forwarding, Some(&person), false);
    assert_eq!(
        out.get("x-forwarded-user").map(HeaderValue::as_bytes),
        Some(&b"alice.martin@example.com"[..])
    );
    // Forward-auth's look for another gatekeeper's identity header among a browser's headers.
    let browser: HeaderMap = incoming
        .iter()
        .filter(|(name, _)| !name.as_str().contains('_') && !name.as_str().starts_with("x-"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    assert!(clearance::http::headers::identity_header_in(&browser, &[], &[]).is_none());
    c.bench_function("headers/identity_header_in", |b| {
        b.iter(|| clearance::http::headers::identity_header_in(black_box(&browser), &[], &[]))
    });
    c.bench_function("headers/upstream_request_headers", |b| {
        b.iter(|| {
            upstream_request_headers(
                black_box(&incoming),
                &own,
                &forwarding,
                Some(black_box(&person)),
                false,
            )
        })
    });
}

/// A person's standing on a cache hit: what the cache did before it packed entries (clone the
/// whole kept standing, evidence included) and what it does now (unpack the kept bytes).
fn standing(c: &mut Criterion) {
    let standing = clearance::store::Standing {
        records: records(30),
        ..Default::default()
    };
    c.bench_function("standing/clone", |b| {
        b.iter(|| black_box(&standing).clone())
    });
    let who = subject();
    let packed = clearance::store::packed::pack_standing(&who, &standing, chrono::Utc::now())
        .expect("packs");
    c.bench_function("standing/unpack", |b| {
        b.iter(|| clearance::store::packed::unpack_standing(&who, black_box(&packed)))
    });
    let cache = clearance::store::cache::DecisionCache::new(&settings().cache);
    cache.resume();
    cache.delivered(std::time::Instant::now() + std::time::Duration::from_secs(3600));
    let ticket = cache.ticket().expect("a live cache");
    cache.keep_standing(&who, &standing, now(), ticket);
    assert!(cache.standing(&who, now()).is_some());
    c.bench_function("standing/cache_hit", |b| {
        b.iter(|| cache.standing(black_box(&who), now()))
    });
}

criterion_group!(hot_path, session_cookie, standing, policy, header_rewrite);
criterion_main!(hot_path);
