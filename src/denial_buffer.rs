//! The denial buffer: refusals whose write to the denial log (or whose count into the person's
//! case) failed wait here, in order and bounded, until the store answers again; a background
//! task writes them, oldest first, with their original time and request id.
//!
//! One buffer per instance, in memory. While the store does not answer, new refusals queue
//! behind what is buffered, so that the log keeps the order in which they happened; once it
//! answers again, new refusals are written at once beside the backlog (the log's order is then
//! kept by batch, and every entry carries its own time), so the backlog empties although
//! refusals keep coming. The writer sends up to [`BATCH`] entries at once (pipelined on the one
//! connection, in order), so it drains far faster than refusals arrive, and it tries again soon
//! after new refusals show that the store answers reads.
//! Every write is idempotent (each refusal has its own [`DenialEvent::denial_id`]), so a write
//! whose outcome was unknown (a timeout) is simply sent again: nothing is written twice. When
//! the buffer is full the oldest entry is dropped (logged in full at error level and counted).
//! At shutdown [`DenialBuffer::drain`] makes a last attempt and logs whatever is still unwritten.

use crate::domain::DenialEvent;
use crate::store::{SharedStore, StoreError};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Where refusals are written: the denial log and the follow-up cases.
#[async_trait]
pub trait DenialSink: Send + Sync {
    /// Appends the event to the denial log; returns its id, or `None` when an earlier attempt
    /// already appended it.
    async fn append(&self, event: &DenialEvent) -> Result<Option<String>, StoreError>;
    /// Counts the refusal into the person's open case (once, however often it is called).
    async fn count(&self, event: &DenialEvent, case: &CaseCount) -> Result<(), StoreError>;
}

/// The production sink: the configured store.
pub struct StoreSink(pub SharedStore);

#[async_trait]
impl DenialSink for StoreSink {
    async fn append(&self, event: &DenialEvent) -> Result<Option<String>, StoreError> {
        self.0.append_denial(event).await
    }

    async fn count(&self, event: &DenialEvent, case: &CaseCount) -> Result<(), StoreError> {
        self.0
            .touch_case(event, &case.case_id, case.mark_dirty)
            .await
            .map(|_| ())
    }
}

/// A real refusal is also counted into the person's case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseCount {
    /// The id of the case opened if none is open (chosen at refusal time, so a retry cannot
    /// open two).
    pub case_id: String,
    /// Also mark the person as news for their manager (immediate notifications).
    pub mark_dirty: bool,
}

/// A refusal not yet fully written.
#[derive(Clone, Debug)]
struct Pending {
    /// Order of arrival; identifies the entry while it is being written.
    seq: u64,
    event: DenialEvent,
    /// Not yet in the denial log.
    append: bool,
    /// Not yet counted into the case.
    count: Option<CaseCount>,
}

/// What became of a refusal handed to [`DenialBuffer::refuse`].
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// In the denial log under this id (its case count may still be buffered).
    Written { id: String },
    /// Waiting in the buffer; `error` says why it was not written now.
    Buffered { error: String },
}

/// How many buffered refusals the writer sends at once.
pub const BATCH: usize = 256;

/// The shortest wait between two attempts while the store does not answer, when new refusals
/// arrive (they were decided on state just read, so the store may answer writes again).
pub const RETRY_SOONEST: Duration = Duration::from_millis(50);

/// How long the writer waits between attempts while the store does not answer.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

struct Queue {
    entries: VecDeque<Pending>,
    next_seq: u64,
}

/// The bounded, ordered buffer of refusals waiting to be written.
pub struct DenialBuffer {
    sink: Arc<dyn DenialSink>,
    queue: Mutex<Queue>,
    max: usize,
    dropped: AtomicU64,
    /// Whether the last write (of a new refusal or a batch) went through.
    answering: AtomicBool,
    wake: tokio::sync::Notify,
    /// One writer at a time (the background task, or the last flush at shutdown).
    writing: tokio::sync::Mutex<()>,
    backoff: Backoff,
}

impl DenialBuffer {
    /// A buffer holding at most `max` refusals (at least one).
    pub fn new(sink: Arc<dyn DenialSink>, max: usize) -> Self {
        Self::with_backoff(sink, max, Backoff::default())
    }

    pub fn with_backoff(sink: Arc<dyn DenialSink>, max: usize, backoff: Backoff) -> Self {
        Self {
            sink,
            queue: Mutex::new(Queue {
                entries: VecDeque::new(),
                next_seq: 0,
            }),
            max: max.max(1),
            dropped: AtomicU64::new(0),
            answering: AtomicBool::new(true),
            wake: tokio::sync::Notify::new(),
            writing: tokio::sync::Mutex::new(()),
            backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned lock still holds valid entries.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refusals waiting to be written.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refusals dropped because the buffer was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes a refusal (and counts it into the case when `count` is given). If the store does
    /// not answer, or did not answer the last write while refusals are waiting, it is buffered
    /// instead.
    pub async fn refuse(&self, event: &DenialEvent, count: Option<CaseCount>) -> Refusal {
        if !self.answering.load(Ordering::SeqCst) && !self.is_empty() {
            self.push(event.clone(), true, count);
            return Refusal::Buffered {
                error: "earlier denials are still waiting to be written".into(),
            };
        }
        let id = match self.sink.append(event).await {
            Ok(id) => {
                self.answering.store(true, Ordering::SeqCst);
                id.unwrap_or_default()
            }
            Err(e) => {
                self.answering.store(false, Ordering::SeqCst);
                self.push(event.clone(), true, count);
                return Refusal::Buffered {
                    error: e.to_string(),
                };
            }
        };
        if let Some(count) = count
            && let Err(e) = self.sink.count(event, &count).await
        {
            tracing::warn!(
                user.subject = %event.subject,
                request.id = %event.request_id,
                error = %e,
                "the denial could not be counted into a case now; buffered"
            );
            self.push(event.clone(), false, Some(count));
        }
        Refusal::Written { id }
    }

    fn push(&self, event: DenialEvent, append: bool, count: Option<CaseCount>) {
        let overflow = {
            let mut queue = self.lock();
            let overflow = if queue.entries.len() >= self.max {
                queue.entries.pop_front()
            } else {
                None
            };
            let seq = queue.next_seq;
            queue.next_seq += 1;
            queue.entries.push_back(Pending {
                seq,
                event,
                append,
                count,
            });
            overflow
        };
        if let Some(lost) = overflow {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                target: "clearance::denial",
                denial = %serde_json::to_string(&lost.event).unwrap_or_default(),
                denial.logged = !lost.append,
                buffer.max = self.max,
                buffer.dropped = self.dropped(),
                "the denial buffer is full: the oldest buffered denial is dropped and kept only in this log line"
            );
        }
        self.wake.notify_one();
    }

    /// Writes buffered refusals, [`BATCH`] at a time and oldest first, until the buffer is empty
    /// (returns how many were written) or a write fails (what failed stays buffered, in order).
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let _writer = self.writing.lock().await;
        let mut written = 0;
        loop {
            // While the store did not answer the last write, one entry tests whether it does.
            let size = if self.answering.load(Ordering::SeqCst) {
                BATCH
            } else {
                1
            };
            let batch: Vec<Pending> = self.lock().entries.iter().take(size).cloned().collect();
            if batch.is_empty() {
                return Ok(written);
            }
            // Sent together, in order: on one connection they share round trips.
            let appended = futures_util::future::join_all(batch.iter().map(|p| async move {
                if p.append {
                    Some(self.sink.append(&p.event).await)
                } else {
                    None
                }
            }))
            .await;
            // A refusal is counted into its case once it is in the log.
            let counted = futures_util::future::join_all(batch.iter().zip(&appended).map(
                |(p, appended)| async move {
                    match (&p.count, appended) {
                        (Some(count), None | Some(Ok(_))) => {
                            Some(self.sink.count(&p.event, count).await)
                        }
                        _ => None,
                    }
                },
            ))
            .await;
            let mut failure = None;
            let mut done = 0;
            {
                let mut queue = self.lock();
                for ((pending, appended), counted) in batch.iter().zip(appended).zip(counted) {
                    // The entry may have been dropped meanwhile (the buffer was full).
                    let Some(entry) = queue.entries.iter_mut().find(|e| e.seq == pending.seq)
                    else {
                        continue;
                    };
                    match appended {
                        Some(Ok(id)) => {
                            entry.append = false;
                            tracing::info!(
                                target: "clearance::denial",
                                buffered = true,
                                denial.id = id.as_deref().unwrap_or("(written before)"),
                                denial.time = %pending.event.time.to_rfc3339(),
                                user.subject = %pending.event.subject,
                                request.id = %pending.event.request_id,
                                "buffered denial written"
                            );
                        }
                        Some(Err(e)) => {
                            failure.get_or_insert(e);
                        }
                        None => {}
                    }
                    match counted {
                        Some(Ok(())) => entry.count = None,
                        Some(Err(e)) => {
                            failure.get_or_insert(e);
                        }
                        None => {}
                    }
                    if !entry.append && entry.count.is_none() {
                        done += 1;
                    }
                }
                queue.entries.retain(|e| e.append || e.count.is_some());
            }
            written += done;
            self.answering.store(failure.is_none(), Ordering::SeqCst);
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }

    /// The background writer: sleeps until something is buffered, then writes it, retrying
    /// with exponential backoff while the store does not answer, and sooner when new refusals
    /// arrive (they were decided on state just read, so the store answers again). Runs until
    /// the runtime stops.
    pub async fn run(self: Arc<Self>) {
        let mut delay = self.backoff.initial;
        loop {
            if self.is_empty() {
                self.wake.notified().await;
                continue;
            }
            match self.flush().await {
                Ok(written) => {
                    delay = self.backoff.initial;
                    if written > 0 {
                        tracing::info!(denials = written, "buffered denials written");
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        buffer.len = self.len(),
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %e,
                        "buffered denials cannot be written yet"
                    );
                    let soonest = RETRY_SOONEST.min(delay);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = async {
                            tokio::time::sleep(soonest).await;
                            self.wake.notified().await;
                        } => {}
                    }
                    delay = (delay * 2).min(self.backoff.max);
                }
            }
        }
    }

    /// Starts [`DenialBuffer::run`] on the current tokio runtime.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::clone(self).run())
    }

    /// The last attempt at shutdown: keeps trying to write for up to `within`, then logs every
    /// refusal still unwritten in full at error level. Returns how many were left.
    pub async fn drain(&self, within: Duration) -> usize {
        if self.is_empty() {
            return 0;
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut delay = self.backoff.initial;
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.flush()).await;
            match attempt {
                Ok(Ok(_)) => return 0,
                Ok(Err(_)) if tokio::time::Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.backoff.max);
                }
                _ => break,
            }
        }
        let left: Vec<Pending> = self.lock().entries.drain(..).collect();
        for lost in &left {
            tracing::error!(
                target: "clearance::denial",
                denial = %serde_json::to_string(&lost.event).unwrap_or_default(),
                denial.logged = !lost.append,
                case.counted = lost.count.is_none(),
                "shutting down: a buffered denial could not be written and is kept only in this log line"
            );
        }
        left.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Principal, SubjectKey};
    use std::sync::atomic::AtomicUsize;

    /// A sink that fails while `down` is set, and remembers what it wrote.
    #[derive(Default)]
    struct Flaky {
        down: std::sync::atomic::AtomicBool,
        /// Only case counts fail.
        count_down: std::sync::atomic::AtomicBool,
        /// Only appends fail.
        append_down: std::sync::atomic::AtomicBool,
        /// Fail this many more calls, then answer.
        fail_next: AtomicUsize,
        appended: Mutex<Vec<DenialEvent>>,
        counted: Mutex<Vec<(String, String)>>,
    }

    impl Flaky {
        fn failing(&self) -> bool {
            if self.down.load(Ordering::SeqCst) {
                return true;
            }
            self.fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        }
        fn appended_ids(&self) -> Vec<String> {
            self.appended
                .lock()
                .unwrap()
                .iter()
                .map(|e| e.request_id.clone())
                .collect()
        }
    }

    #[async_trait]
    impl DenialSink for Flaky {
        async fn append(&self, event: &DenialEvent) -> Result<Option<String>, StoreError> {
            if self.append_down.load(Ordering::SeqCst) || self.failing() {
                return Err(StoreError::Unavailable("down".into()));
            }
            let mut log = self.appended.lock().unwrap();
            log.push(event.clone());
            Ok(Some(format!("{}-0", log.len())))
        }
        async fn count(&self, event: &DenialEvent, case: &CaseCount) -> Result<(), StoreError> {
            if self.count_down.load(Ordering::SeqCst) || self.failing() {
                return Err(StoreError::Unavailable("down".into()));
            }
            self.counted
                .lock()
                .unwrap()
                .push((event.request_id.clone(), case.case_id.clone()));
            Ok(())
        }
    }

    fn event(n: usize) -> DenialEvent {
        let principal = Principal::bare(SubjectKey::parse("alice@example.com").unwrap());
        let time = chrono::DateTime::from_timestamp(1_700_000_000 + n as i64, 0).unwrap();
        let mut e = DenialEvent::for_principal(&principal, time, Vec::new());
        e.request_id = format!("req-{n}");
        e
    }

    fn case(n: usize) -> Option<CaseCount> {
        Some(CaseCount {
            case_id: format!("case-{n}"),
            mark_dirty: false,
        })
    }

    fn fast() -> Backoff {
        Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn writes_at_once_while_the_store_answers() {
        let sink = Arc::new(Flaky::default());
        let buffer = DenialBuffer::new(sink.clone(), 10);
        let outcome = buffer.refuse(&event(1), case(1)).await;
        assert_eq!(outcome, Refusal::Written { id: "1-0".into() });
        assert!(buffer.is_empty());
        assert_eq!(sink.counted.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn buffers_in_order_and_writes_oldest_first_with_original_times() {
        let sink = Arc::new(Flaky::default());
        sink.down.store(true, Ordering::SeqCst);
        let buffer = DenialBuffer::new(sink.clone(), 10);
        for n in 0..5 {
            assert!(matches!(
                buffer.refuse(&event(n), case(n)).await,
                Refusal::Buffered { .. }
            ));
        }
        assert_eq!(buffer.len(), 5);
        assert!(buffer.flush().await.is_err(), "still down");
        assert_eq!(buffer.len(), 5, "nothing lost by a failed attempt");
        sink.down.store(false, Ordering::SeqCst);
        // A refusal arriving now queues behind the older ones.
        assert!(matches!(
            buffer.refuse(&event(5), None).await,
            Refusal::Buffered { .. }
        ));
        assert_eq!(buffer.flush().await.unwrap(), 6);
        assert!(buffer.is_empty());
        assert_eq!(
            sink.appended_ids(),
            ["req-0", "req-1", "req-2", "req-3", "req-4", "req-5"]
        );
        let times: Vec<_> = sink
            .appended
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.time)
            .collect();
        assert_eq!(times, (0..6).map(|n| event(n).time).collect::<Vec<_>>());
        let cases: Vec<_> = sink.counted.lock().unwrap().clone();
        assert_eq!(cases.len(), 5, "every buffered case count written once");
        assert_eq!(cases[0], ("req-0".into(), "case-0".into()));
    }

    #[tokio::test]
    async fn a_failed_case_count_is_retried_without_appending_twice() {
        let sink = Arc::new(Flaky::default());
        let buffer = DenialBuffer::new(sink.clone(), 10);
        sink.count_down.store(true, Ordering::SeqCst);
        let outcome = buffer.refuse(&event(0), case(0)).await;
        assert_eq!(outcome, Refusal::Written { id: "1-0".into() });
        assert_eq!(buffer.len(), 1, "the count waits");
        assert!(buffer.flush().await.is_err());
        sink.count_down.store(false, Ordering::SeqCst);
        assert_eq!(buffer.flush().await.unwrap(), 1);
        assert_eq!(sink.appended_ids(), ["req-0"], "not appended again");
        assert_eq!(
            sink.counted.lock().unwrap().clone(),
            [("req-0".to_owned(), "case-0".to_owned())]
        );
    }

    #[tokio::test]
    async fn overflow_drops_the_oldest_and_counts_it() {
        let sink = Arc::new(Flaky::default());
        sink.down.store(true, Ordering::SeqCst);
        let buffer = DenialBuffer::new(sink.clone(), 3);
        for n in 0..5 {
            buffer.refuse(&event(n), None).await;
        }
        assert_eq!(buffer.len(), 3, "bounded");
        assert_eq!(buffer.dropped(), 2);
        sink.down.store(false, Ordering::SeqCst);
        buffer.flush().await.unwrap();
        assert_eq!(sink.appended_ids(), ["req-2", "req-3", "req-4"]);
    }

    #[tokio::test]
    async fn the_background_writer_retries_until_the_store_answers() {
        let sink = Arc::new(Flaky::default());
        let buffer = Arc::new(DenialBuffer::with_backoff(sink.clone(), 100, fast()));
        let task = buffer.spawn();
        sink.down.store(true, Ordering::SeqCst);
        for n in 0..3 {
            buffer.refuse(&event(n), case(n)).await;
        }
        // Let it fail a few times, then bring the store back (and fail a few more calls).
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(buffer.len(), 3);
        sink.fail_next.store(3, Ordering::SeqCst);
        sink.down.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !buffer.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not written in time"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(sink.appended_ids(), ["req-0", "req-1", "req-2"]);
        assert_eq!(sink.counted.lock().unwrap().len(), 3);
        task.abort();
    }

    #[tokio::test]
    async fn a_refusal_is_counted_only_once_it_is_in_the_log() {
        let sink = Arc::new(Flaky::default());
        let buffer = DenialBuffer::with_backoff(sink.clone(), 10, fast());
        sink.append_down.store(true, Ordering::SeqCst);
        buffer.refuse(&event(0), case(0)).await;
        assert!(buffer.flush().await.is_err());
        assert!(sink.counted.lock().unwrap().is_empty(), "not counted first");
        sink.append_down.store(false, Ordering::SeqCst);
        assert_eq!(buffer.flush().await.unwrap(), 1);
        assert_eq!(sink.counted.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn many_buffered_refusals_are_written_in_batches_in_order() {
        let sink = Arc::new(Flaky::default());
        let buffer = DenialBuffer::with_backoff(sink.clone(), 2 * BATCH + 10, fast());
        sink.down.store(true, Ordering::SeqCst);
        for n in 0..2 * BATCH + 10 {
            buffer.refuse(&event(n), case(n)).await;
        }
        sink.down.store(false, Ordering::SeqCst);
        assert_eq!(buffer.flush().await.unwrap(), 2 * BATCH + 10);
        let expected: Vec<String> = (0..2 * BATCH + 10).map(|n| format!("req-{n}")).collect();
        assert_eq!(sink.appended_ids(), expected);
        assert_eq!(sink.counted.lock().unwrap().len(), 2 * BATCH + 10);
    }

    #[tokio::test]
    async fn a_new_refusal_cuts_a_long_backoff_short() {
        let sink = Arc::new(Flaky::default());
        let slow = Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_secs(60),
        };
        let buffer = Arc::new(DenialBuffer::with_backoff(sink.clone(), 100, slow));
        sink.down.store(true, Ordering::SeqCst);
        buffer.refuse(&event(0), None).await;
        let task = buffer.spawn();
        // Failures double the wait: 20, 40, 80, 160, 320 ms ... then the store answers.
        tokio::time::sleep(Duration::from_millis(700)).await;
        sink.down.store(false, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        buffer.refuse(&event(1), None).await;
        while !buffer.is_empty() {
            assert!(
                started.elapsed() < Duration::from_millis(300),
                "the writer kept waiting out its backoff"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(sink.appended_ids(), ["req-0", "req-1"]);
        task.abort();
    }

    #[tokio::test]
    async fn drain_writes_what_it_can_and_reports_the_rest() {
        let sink = Arc::new(Flaky::default());
        sink.down.store(true, Ordering::SeqCst);
        let buffer = DenialBuffer::with_backoff(sink.clone(), 10, fast());
        buffer.refuse(&event(0), None).await;
        assert_eq!(buffer.drain(Duration::from_millis(50)).await, 1);
        assert!(buffer.is_empty());
        sink.down.store(false, Ordering::SeqCst);
        buffer.refuse(&event(1), None).await;
        sink.down.store(true, Ordering::SeqCst);
        buffer.push(event(2), true, None);
        sink.down.store(false, Ordering::SeqCst);
        assert_eq!(buffer.drain(Duration::from_secs(5)).await, 0);
        assert_eq!(sink.appended_ids(), ["req-1", "req-2"]);
    }
}
