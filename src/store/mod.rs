//! Storage behind traits: records, sessions and login state, the denial log, follow-up and the
//! notification outbox.
//!
//! [`redis::RedisStore`] is the production implementation; [`memory::MemoryStore`] serves the demo and
//! unit tests. Every method either completes fully or fails with [`StoreError`]; callers fail closed.

pub mod audit_event;
pub mod cache;
pub mod memory;
pub mod packed;
pub mod redis;
mod redis_conn;
mod redis_followup;
mod redis_metrics;
mod redis_outbox;
pub mod table;

pub use redis_metrics::RoundTrips;

use crate::domain::audit::{AuditEvent, ChainHead, ChainId};
use crate::domain::notify::Message;
use crate::domain::{
    Action, Case, Decline, DenialEvent, Exemption, HistoryEntry, Person, Principal, Record,
    RequirementId, Revocation, Session, SubjectKey,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// State could not be read or written. The gate turns this into a 503 and never an admit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
    /// It answers, but refuses writes (out of memory, a read-only replica, a failed save):
    /// decisions go on from what it holds, changes cannot be made.
    #[error("the state store refuses writes: {0}")]
    ReadOnly(String),
    #[error("the state store returned data that cannot be read: {0}")]
    Corrupt(String),
}

/// Completion records per subject.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// The current record of every requirement for a subject (one round trip).
    async fn records(&self, subject: &SubjectKey) -> Result<Vec<Record>, StoreError>;
    /// Makes `record` the current one for its requirement and appends it to the subject's history,
    /// atomically.
    async fn put_record(&self, record: &Record) -> Result<(), StoreError>;
    /// Like [`RecordStore::put_record`], but only the first time `idempotency_key` is seen for
    /// this subject (an xAPI statement id, an envelope id, a CSV row's fingerprint). Returns
    /// whether the record was written.
    async fn put_record_once(
        &self,
        record: &Record,
        idempotency_key: &str,
    ) -> Result<bool, StoreError>;
    /// Withdraws the subject's current record for the requirement (history keeps both).
    /// Returns false when there is no current record to revoke.
    async fn revoke(&self, revocation: &Revocation) -> Result<bool, StoreError>;
    /// Appends a declined document to the subject's history (no record changes).
    async fn record_decline(&self, decline: &Decline) -> Result<(), StoreError>;
    /// Every change to a subject's records, oldest first.
    async fn history(&self, subject: &SubjectKey) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Remembers what the provider last said about a person (written at sign-in), so that the API
    /// and reports can evaluate selectors for people who are not signed in right now.
    async fn put_profile(&self, principal: &Principal) -> Result<(), StoreError>;
    /// Every subject with records or a profile (for reports; walks the whole key space).
    async fn subjects(&self) -> Result<Vec<SubjectKey>, StoreError>;
    /// Which of these `warn` requirements the subject acknowledged within their reminder period
    /// (one round trip).
    async fn warnings_acknowledged(
        &self,
        subject: &SubjectKey,
        requirements: &[RequirementId],
    ) -> Result<Vec<bool>, StoreError>;
    /// Remembers that the subject saw the warning for `requirement`, for `ttl`.
    async fn acknowledge_warning(
        &self,
        subject: &SubjectKey,
        requirement: &RequirementId,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn profile(&self, subject: &SubjectKey) -> Result<Option<Principal>, StoreError>;
    /// Remembers which completion an xAPI statement created, so that a statement voiding it can
    /// find it. The first write for a statement id wins.
    async fn put_statement_target(
        &self,
        statement_id: &str,
        subject: &SubjectKey,
        requirement: &RequirementId,
    ) -> Result<(), StoreError>;
    /// The (subject, requirement) an xAPI statement completed, if it completed one.
    async fn statement_target(
        &self,
        statement_id: &str,
    ) -> Result<Option<(SubjectKey, RequirementId)>, StoreError>;
}

/// Whose a stored session is, for ending all of a person's sessions at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOwner {
    pub subject: SubjectKey,
    /// The provider's `sub` claim.
    pub provider_sub: String,
    /// The provider's session id (`sid` claim of the ID token), when it sent one.
    pub provider_sid: Option<String>,
}

/// What [`SessionStore::end_sessions`] ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndedSessions {
    /// How many of the sessions were still live.
    pub live: usize,
    /// The people they belonged to, each once.
    pub subjects: Vec<SubjectKey>,
}

/// A set of sessions to end together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionsOf {
    /// Every session of a person (sign out everywhere).
    Subject(SubjectKey),
    /// Every session of the provider's `sub` (back-channel logout without `sid`).
    ProviderSubject(String),
    /// Every session signed in through the provider's session `sid`.
    ProviderSession(String),
}

/// Server-side sessions and one-time login states, as opaque JSON text with a time to live.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a session (or another short-lived value keyed like one); with an owner it is also
    /// indexed so that [`SessionStore::end_sessions`] finds it.
    async fn put_session(
        &self,
        id: &str,
        value: &str,
        ttl: Duration,
        owner: Option<&SessionOwner>,
    ) -> Result<(), StoreError>;
    /// The value stored under `id`, tokens included: read from the store, never from the
    /// decision cache (whose copies are packed and token-free).
    async fn get_session(&self, id: &str) -> Result<Option<String>, StoreError>;
    async fn delete_session(&self, id: &str) -> Result<(), StoreError>;
    /// Ends every session of the set (on every instance): how many were live, and whose.
    async fn end_sessions(&self, which: &SessionsOf) -> Result<EndedSessions, StoreError>;
    /// Refuses, on every instance, each bearer token of `subject` issued at or before `at`
    /// (read back with the person's standing, [`Standing::tokens_ended`]). Kept for `keep`, the
    /// longest an access token may live.
    async fn end_tokens(
        &self,
        subject: &SubjectKey,
        at: DateTime<Utc>,
        keep: Duration,
    ) -> Result<(), StoreError>;
    /// Takes a one-time name (a logout token's `jti`) for `ttl`: true the first time, false
    /// while it is still taken (a replay).
    async fn use_once(&self, name: &str, ttl: Duration) -> Result<bool, StoreError>;
    async fn put_login(&self, state: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Returns the login state and deletes it in the same step, so that it works only once.
    async fn take_login(&self, state: &str) -> Result<Option<String>, StoreError>;
    /// How many sessions have not expired at `now`, for the `clearance_sessions_live` gauge.
    /// Bounded cost: Redis keeps an index of session expiry times, drops the expired entries and
    /// counts the rest (`ZREMRANGEBYSCORE` + `ZCARD`), never scanning the key space.
    async fn live_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// How long the denial log and the cases remember the ids of the denials they took, so that a
/// retried write cannot take one twice: longer than any write waits in the denial buffer.
pub const DENIAL_IDS_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The append-only denial log.
#[async_trait]
pub trait DenialLog: Send + Sync {
    /// Appends an event and returns its id; `None` when an event with the same
    /// [`DenialEvent::denial_id`] was appended before (ids are remembered for
    /// [`DENIAL_IDS_KEPT`], and at most as many as the log keeps entries).
    async fn append_denial(&self, event: &DenialEvent) -> Result<Option<String>, StoreError>;
    /// The newest `count` events, newest first.
    async fn recent_denials(&self, count: usize) -> Result<Vec<(String, DenialEvent)>, StoreError>;
    /// Every event still kept whose time lies in `from..=to` (either end open), oldest first
    /// (for evidence export).
    async fn denials_between(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<(String, DenialEvent)>, StoreError>;
}

/// A session as the store keeps it (JSON), read.
pub(crate) fn parse_session(json: &str) -> Result<Arc<Session>, StoreError> {
    Session::from_json(json)
        .map(Arc::new)
        .map_err(|e| StoreError::Corrupt(format!("session: {e}")))
}

/// What the gate needs to know about a person, read in one round trip.
#[derive(Clone, Debug, Default)]
pub struct Standing {
    pub records: Vec<Record>,
    /// Their directory entry (SCIM or CSV), if any.
    pub person: Option<Person>,
    pub exemptions: Vec<Exemption>,
    /// The first time the gate admitted them to a gated route, if it ever did.
    pub first_access: Option<chrono::DateTime<chrono::Utc>>,
    /// The last "sign out everywhere" or back-channel logout of theirs: a bearer token issued
    /// at or before it is refused ([`SessionStore::end_tokens`]).
    pub tokens_ended: Option<chrono::DateTime<chrono::Utc>>,
}

/// Managers' follow-up and audit evidence: the directory, denial cases and actions, exemptions,
/// and the audit chain. Every change here (and every record change in [`RecordStore`]) is
/// appended to the audit chain in the same atomic step as the change itself.
#[async_trait]
pub trait FollowUpStore: Send + Sync {
    /// Records (with their evidence), directory entry, exemptions and first access of a
    /// subject, in one round trip, from the store itself.
    async fn standing(&self, subject: &SubjectKey) -> Result<Standing, StoreError>;
    /// The standing a decision reads: from the decision cache when it holds it (then without
    /// record evidence, see [`packed`]), else from the store in one round trip.
    async fn decision_standing(&self, subject: &SubjectKey) -> Result<Arc<Standing>, StoreError> {
        self.standing(subject).await.map(Arc::new)
    }
    /// The session stored under `session_id` and the standing of `subject`, read together:
    /// what the decision cache does not hold comes from the store in one round trip (on a
    /// cluster, one per slot, sent at once). The caller checks that the session is `subject`'s.
    /// A session served by the cache has no tokens ([`Session::tokens_elided`]), and a standing
    /// served by it no record evidence.
    async fn session_and_standing(
        &self,
        session_id: &str,
        subject: &SubjectKey,
    ) -> Result<(Option<Arc<Session>>, Arc<Standing>), StoreError>;
    /// Remembers `at` as the first time the subject was admitted to a gated route, unless a
    /// first access is already on file (set-if-absent). Returns whether it was written.
    async fn mark_first_access(
        &self,
        subject: &SubjectKey,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError>;
    /// The first time the subject was admitted to a gated route, if ever.
    async fn first_access(
        &self,
        subject: &SubjectKey,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError>;

    /// Creates or replaces a directory entry (audited as `directory.changed`).
    async fn put_person(&self, person: &Person, actor: &str) -> Result<(), StoreError>;
    async fn person(&self, subject: &SubjectKey) -> Result<Option<Person>, StoreError>;
    async fn person_by_scim_id(&self, id: &str) -> Result<Option<Person>, StoreError>;
    /// Every directory entry (deleted ones included).
    async fn people(&self) -> Result<Vec<Person>, StoreError>;

    /// Counts a denial into the subject's open case, opening one (with `new_id`) if none is open,
    /// unless the same [`DenialEvent::denial_id`] was counted before (remembered for
    /// [`DENIAL_IDS_KEPT`], the newest 10,000 per person). With `mark_dirty`, also marks the
    /// subject as news for their manager ([`Outbox::mark_dirty`]). Returns the open case; `None`
    /// when the denial was counted before and its case is closed since.
    async fn touch_case(
        &self,
        event: &DenialEvent,
        new_id: &str,
        mark_dirty: bool,
    ) -> Result<Option<Case>, StoreError>;
    /// Closes the subject's open case, if any, as of `at`.
    async fn close_case(
        &self,
        subject: &SubjectKey,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Case>, StoreError>;
    /// Every case of a subject, oldest first.
    async fn cases(&self, subject: &SubjectKey) -> Result<Vec<Case>, StoreError>;
    /// Subjects who ever had a case.
    async fn case_subjects(&self) -> Result<Vec<SubjectKey>, StoreError>;
    /// Records a manager's action (audited as `case.action`).
    async fn add_action(&self, action: &Action) -> Result<(), StoreError>;
    async fn actions(&self, subject: &SubjectKey) -> Result<Vec<Action>, StoreError>;

    /// Writes an exemption if the stored one is still `previous` (compare-and-set; `None` for a
    /// new one). Audited as `exemption.<state>`. Returns false when it changed meanwhile.
    async fn put_exemption(
        &self,
        exemption: &Exemption,
        previous: Option<&Exemption>,
        actor: &str,
    ) -> Result<bool, StoreError>;
    async fn exemption(&self, id: &str) -> Result<Option<Exemption>, StoreError>;
    /// Every exemption ever requested.
    async fn all_exemptions(&self) -> Result<Vec<Exemption>, StoreError>;

    /// Appends an event that is not tied to a stored change (configuration loaded).
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Every audit chain (each subject's, the directory's, Clearance's own), ordered by name.
    async fn audit_chains(&self) -> Result<Vec<AuditChain>, StoreError>;
    /// One audit chain as stored (empty when it has no entries yet).
    async fn audit_chain(&self, id: &ChainId) -> Result<AuditChain, StoreError>;
}

/// One audit chain as stored: its entries, oldest first, and its head.
#[derive(Clone, Debug)]
pub struct AuditChain {
    pub id: ChainId,
    pub lines: Vec<String>,
    pub head: ChainHead,
}

/// One atomic step of the notification worker: consume dirty marks, check and move a
/// recipient's rate limit, and enqueue messages, all or nothing.
#[derive(Clone, Debug, Default)]
pub struct OutboxBatch {
    /// Dirty marks to remove, as read by [`Outbox::dirty`]. If any of them changed or is gone
    /// (another instance consumed it), nothing is written.
    pub marks: Vec<(SubjectKey, DateTime<Utc>)>,
    /// The rate-limit key (a manager's subject, or the person's when nobody answers for them)
    /// and the latest last-send time that still allows sending now; the key's last-send time
    /// becomes `now`. Nothing is written when it was sent to later than that.
    pub rate: Option<(String, DateTime<Utc>)>,
    /// Messages to deliver, due at `now`.
    pub messages: Vec<Message>,
    pub now: DateTime<Utc>,
    /// A lease taken with [`Outbox::once`] that this batch completes: nothing is written unless
    /// the lease is still held with this token, and then it is kept for `keep` (the work is
    /// done), in the same step.
    pub guard: Option<OnceGuard>,
}

/// A lease on once-only work ([`Outbox::once`]), to be made lasting by the commit that does it.
#[derive(Clone, Debug, Default)]
pub struct OnceGuard {
    pub name: String,
    /// The value [`Outbox::once`] stored: who holds the lease.
    pub token: String,
    /// How long the name stays taken once the work is committed.
    pub keep: Duration,
}

/// The notification outbox: dirty marks (people with news for their manager), per-recipient
/// rate limits, a queue of messages with leases, and the dead list. Shared by every Clearance
/// instance on the same store; claiming is atomic.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Marks a subject as having news (a new refusal). An existing mark keeps its time, so that
    /// a person refused again and again does not starve the worker.
    async fn mark_dirty(&self, subject: &SubjectKey, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Every dirty mark, oldest first.
    async fn dirty(&self) -> Result<Vec<(SubjectKey, DateTime<Utc>)>, StoreError>;
    /// When each rate-limit key was last sent to.
    async fn last_sent(&self, keys: &[String]) -> Result<Vec<Option<DateTime<Utc>>>, StoreError>;
    /// Applies a batch atomically; returns false (nothing written) when a mark changed, the
    /// rate limit forbids sending, or the batch's guard is no longer held with its token.
    async fn commit(&self, batch: &OutboxBatch) -> Result<bool, StoreError>;
    /// Takes `name` for `ttl` with `token` if nobody holds it (SET NX): once-a-day work, across
    /// instances. Take it for a short lease and let the commit that does the work keep it
    /// ([`OutboxBatch::guard`]), so that if this instance dies first another one does it.
    async fn once(&self, name: &str, token: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Gives `name` back if it is still held with `token` (the work failed and may be done
    /// again).
    async fn release_once(&self, name: &str, token: &str) -> Result<(), StoreError>;
    /// Claims up to `max` messages due at `now`: their due time moves to `now + lease`, so that
    /// no other instance takes them meanwhile and they come back if this one dies. Atomic.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// Delivered: forget the message.
    async fn complete(&self, id: &str) -> Result<(), StoreError>;
    /// Failed: store the message as given (attempts, last error) and make it due at `next_at`.
    async fn retry(&self, message: &Message, next_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Given up: move the message to the dead list.
    async fn dead(&self, message: &Message) -> Result<(), StoreError>;
    /// Every message given up on, oldest first.
    async fn dead_letters(&self) -> Result<Vec<Message>, StoreError>;
    /// How many messages wait for delivery (leased ones included).
    async fn queued(&self) -> Result<usize, StoreError>;
}

/// Liveness of the store, for `/readyz`.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whether the store takes writes (one small write that expires by itself):
    /// [`StoreError::ReadOnly`] when it answers but refuses them.
    async fn probe_writes(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The task that keeps this instance's decision cache coherent with every other instance
    /// (see [`cache`]), when the store has a cache; to be spawned once per process.
    fn cache_watcher(&self) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        None
    }
    /// How many standings and sessions this instance's decision cache holds, if it has one.
    fn cache_entries(&self) -> Option<(usize, usize)> {
        None
    }
}

/// One store that does everything.
pub trait Store: RecordStore + SessionStore + DenialLog + FollowUpStore + Outbox + Health {}
impl<T: RecordStore + SessionStore + DenialLog + FollowUpStore + Outbox + Health> Store for T {}

pub type SharedStore = Arc<dyn Store>;
