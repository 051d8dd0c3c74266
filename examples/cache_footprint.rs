//! Memory of the decision cache alone: fills one `DecisionCache` with N standings and N sessions
//! shaped like `bench_fixture`'s people and prints the heap bytes live per person and at the peak
//! (counted by a wrapping allocator, so the figures do not drift with the machine), and the
//! resident set size. Used to find what `bench/rss` spends per person; never used by `serve`.
//!
//!     cargo run --release --example cache_footprint -- [N]     (default 100000)

use chrono::{Duration, Utc};
use clearance::auth::session::Session;
use clearance::config::CacheSettings;
use clearance::domain::{Record, RequirementId, Source, Version};
use clearance::store::Standing;
use clearance::store::cache::DecisionCache;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

#[path = "support/people.rs"]
mod people;

/// The system allocator, counting the bytes it has handed out and not had back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; only counters are kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let people: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    let room = people + people / 10 + 100;
    let cache = DecisionCache::new(&CacheSettings {
        enabled: true,
        max_subjects: room,
        max_sessions: room,
        ttl: std::time::Duration::from_secs(3600),
    });
    cache.resume();
    let now = Utc::now();
    let requirements = [
        ("security-awareness", "2026.1"),
        ("confidentiality-agreement", "1"),
        ("acceptable-use-policy", "3.0"),
    ];
    let (live_before, rss_before) = (LIVE.load(Ordering::Relaxed), rss_kib());
    PEAK.store(live_before, Ordering::Relaxed);
    let blocks_before = BLOCKS.load(Ordering::Relaxed);
    for i in 0..people {
        let principal = people::principal(i)?;
        let subject = principal.subject.clone();
        let records = requirements
            .iter()
            .map(|(id, version)| {
                Ok(Record {
                    subject: subject.clone(),
                    requirement: RequirementId((*id).into()),
                    version: version.parse::<Version>()?,
                    completed_at: now - Duration::days(30),
                    expires_at: None,
                    source: Source::Api,
                    evidence: serde_json::Map::new(),
                    recorded_by: "bench".into(),
                    recorded_at: now,
                    revoked_at: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let standing = Standing {
            records,
            ..Standing::default()
        };
        let session = Session {
            principal,
            id_token: Some("i".repeat(900)),
            access_token: "a".repeat(900),
            refresh_token: Some("r".repeat(120)),
            access_expires_at: Some(now + Duration::hours(8)),
            created_at: now,
            expires_at: now + Duration::hours(8),
            csrf: clearance::auth::session::random_token(),
            provider_sid: Some("s".repeat(36)),
            tokens_elided: false,
        };
        // A storage id, as the session store makes them: the hex SHA-256 of the cookie's id.
        let id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes()));
        if i == 0 {
            println!(
                "packed standing, session   {} B, {} B",
                clearance::store::packed::pack_standing(&subject, &standing, now)?.len(),
                clearance::store::packed::pack_session(&session, now)?.len()
            );
        }
        if let Some(ticket) = cache.ticket() {
            cache.keep_standing(&subject, &standing, now, ticket);
            cache.keep_session(&id, &session, Some(session.expires_at), now, ticket);
        }
    }
    let (standings, sessions) = cache.len();
    let live = LIVE.load(Ordering::Relaxed) - live_before;
    let peak = PEAK.load(Ordering::Relaxed) - live_before;
    let blocks = BLOCKS.load(Ordering::Relaxed) - blocks_before;
    let per = |bytes: usize| bytes as f64 / people.max(1) as f64;
    println!("people                     {people}");
    println!("standings, sessions kept   {standings}, {sessions}");
    println!(
        "heap live                  {:.1} MiB ({:.0} B per person, {:.1} blocks per person)",
        live as f64 / 1_048_576.0,
        per(live),
        blocks as f64 / people.max(1) as f64
    );
    println!(
        "heap peak                  {:.1} MiB ({:.0} B per person)",
        peak as f64 / 1_048_576.0,
        per(peak)
    );
    println!(
        "RSS                        {:.1} MiB (grew {:.1} MiB)",
        rss_kib() as f64 / 1024.0,
        rss_kib().saturating_sub(rss_before) as f64 / 1024.0
    );
    Ok(())
}
