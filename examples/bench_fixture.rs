//! Benchmark fixture for `bench/rss`: writes N people who have completed every requirement of a
//! configuration, each with a live session, into that configuration's Redis, and prints one
//! `Cookie` header value per person (their sealed session cookie). Never used by `serve`.
//!
//!     cargo run --release --example bench_fixture -- CONFIG N > cookies.txt
//!
//! Sessions look like real ones (ID, access and refresh tokens of the usual sizes), so that what
//! an instance keeps per person is what it would keep in production.

use anyhow::{Context, bail};
use chrono::{Duration, Utc};
use clearance::auth::session::{Session, Sessions, random_token};
use clearance::domain::{Record, Source};
use futures_util::StreamExt;
use std::io::Write;

#[path = "support/people.rs"]
mod people;
use people::principal;

/// How many people are written at the same time.
const AT_ONCE: usize = 64;

/// A token-like string of `len` characters (base64url alphabet), different per person.
fn token(seed: usize, len: usize) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|i| char::from(alphabet[(seed.wrapping_mul(31).wrapping_add(i * 7)) % 64]))
        .collect()
}

async fn person(
    i: usize,
    settings: &clearance::config::Settings,
    store: &clearance::store::SharedStore,
    sessions: &Sessions,
) -> anyhow::Result<String> {
    let now = Utc::now();
    let principal = principal(i)?;
    for requirement in &settings.policy.requirements {
        let record = Record {
            subject: principal.subject.clone(),
            requirement: requirement.id.clone(),
            version: requirement.version,
            completed_at: now - Duration::days(30),
            expires_at: None,
            source: Source::Api,
            evidence: serde_json::Map::from_iter([(
                "ticket".to_owned(),
                serde_json::Value::String(format!("BENCH-{i}")),
            )]),
            recorded_by: "bench".into(),
            recorded_at: now,
            revoked_at: None,
        };
        store.put_record(&record).await?;
    }
    let session = Session {
        principal,
        id_token: Some(token(i, 900)),
        access_token: token(i + 1, 900),
        refresh_token: Some(token(i + 2, 120)),
        access_expires_at: Some(now + Duration::hours(8)),
        created_at: now,
        expires_at: now + Duration::hours(8),
        csrf: random_token(),
        provider_sid: Some(token(i + 3, 36)),
        tokens_elided: false,
    };
    let (_, cookie) = sessions.create(&session).await?;
    Ok(format!("{}={}", cookie.name(), cookie.value()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(count), None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: bench_fixture CONFIG N");
    };
    let count: usize = count.parse().context("N must be a number")?;
    let settings = clearance::config::load(std::path::Path::new(&config))?;
    let store = clearance::redis_store(&settings)?;
    let sessions = Sessions::new(store.clone(), settings.session.clone());
    let mut cookies = futures_util::stream::iter(0..count)
        .map(|i| {
            let (settings, store, sessions) = (&settings, &store, &sessions);
            async move { person(i, settings, store, sessions).await }
        })
        .buffer_unordered(AT_ONCE);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut written = 0usize;
    while let Some(cookie) = cookies.next().await {
        writeln!(out, "{}", cookie?)?;
        written += 1;
        if written.is_multiple_of(10_000) {
            eprintln!("bench_fixture: {written} of {count}");
        }
    }
    out.flush()?;
    Ok(())
}
