//! Benchmark for `bench/drain`: how fast the denial buffer writes a backlog to a real Redis.
//! Buffers N refusals (the sink refuses while it fills), then times how long the buffer takes
//! to write them all, appends and case counts, and prints the rate. Never used by `serve`.
//!
//!     cargo run --release --example denial_drain -- CONFIG N
//!
//! CONFIG names the Redis to write to (only `[redis]` and `[denials]` matter); the refusals are
//! spread over 1,000 people so that case counts go to many keys, as in a real outage.

use anyhow::Context;
use async_trait::async_trait;
use clearance::denial_buffer::{CaseCount, DenialBuffer, DenialSink, StoreSink};
use clearance::domain::{DenialEvent, Principal, SubjectKey};
use clearance::store::StoreError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The store's sink, refusing every write while `closed` is set.
struct Gated {
    inner: StoreSink,
    closed: AtomicBool,
}

#[async_trait]
impl DenialSink for Gated {
    async fn append(&self, event: &DenialEvent) -> Result<Option<String>, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("closed for the benchmark".into()));
        }
        self.inner.append(event).await
    }

    async fn count(&self, event: &DenialEvent, case: &CaseCount) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("closed for the benchmark".into()));
        }
        self.inner.count(event, case).await
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(config), Some(n)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: denial_drain CONFIG N");
    };
    let n: usize = n.parse().context("N must be a number")?;
    let settings = clearance::config::load(std::path::Path::new(config))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = clearance::redis_store(&settings)?;
    let sink = Arc::new(Gated {
        inner: StoreSink(store),
        closed: AtomicBool::new(true),
    });
    let buffer = DenialBuffer::new(sink.clone(), n);
    let now = chrono::Utc::now();
    for i in 0..n {
        let subject = SubjectKey::parse(&format!("person-{}@example.com", i % 1000))?;
        let mut event = DenialEvent::for_principal(&Principal::bare(subject), now, Vec::new());
        event.denial_id = format!("drain-{i}-{}", now.timestamp_millis());
        event.request_id = event.denial_id.clone();
        event.host = "app.example.test".into();
        event.path = format!("/drain/{i}");
        let count = CaseCount {
            case_id: format!("case-{i}"),
            mark_dirty: false,
        };
        buffer.refuse(&event, Some(count)).await;
    }
    anyhow::ensure!(buffer.len() == n, "{} of {n} buffered", buffer.len());
    sink.closed.store(false, Ordering::SeqCst);
    let started = Instant::now();
    let written = buffer.flush().await?;
    let took = started.elapsed();
    anyhow::ensure!(
        written == n && buffer.is_empty(),
        "{written} of {n} written"
    );
    let per_second = n as f64 / took.as_secs_f64().max(f64::EPSILON);
    println!(
        "{{\"refusals\": {n}, \"seconds\": {:.3}, \"per_second\": {per_second:.0}}}",
        took.as_secs_f64()
    );
    Ok(())
}
