//! The Redis implementation of the stores: per-subject hashes with `{subject}` hash tags, sessions
//! with TTLs, and the denial log as a trimmed Stream.
//!
//! Keys (with the configured prefix `P`):
//! - `P{subject}:records`: hash, requirement id -> current record (JSON)
//! - `P{subject}:history`: list of every record written (JSON), oldest first
//! - `Psess:<id>`: session (JSON) with TTL; `Psessions`: zset id -> expiry (ms), for counting; `Plogin:<state>`: one-time login state with TTL
//! - `P{subject}:sessions`, `Psessions:sub:<sha256>`, `Psessions:sid:<sha256>`: zsets of session
//!   storage ids by expiry (ms), per person, per provider `sub` and per provider session `sid`
//! - channel `Pinvalidate`: what changed, for every instance's decision cache (`cache.rs`)
//! - `Pdenials`: stream of denial events
//! - `Pxapi:stmt:<statement id>`: the (subject, requirement) an xAPI statement completed (JSON)
//! - `P{subject}:audit:head`, `P{subject}:audit:log`: the subject's audit chain;
//!   `P{/directory}:audit:*` the directory's, `P{/clearance}:audit:*` Clearance's own
//!   (`config.loaded`); `P{/clearance}:audit:chains`: set of chain names (the registry)
//! - `P{/clearance}:subjects`: set of subjects with records or a profile (for reports)
//!
//! (See `redis_followup.rs` and `redis_outbox.rs` for the other keys.)
//!
//! Every state change goes through [`RedisStore::apply`]: one Lua script that writes the change
//! and appends its sealed audit entry to the chain beside it, together or neither. Every key of
//! one script or transaction shares one hash tag, so that the same layout works on one Redis,
//! behind Sentinel and on a Redis Cluster.

use super::audit_event;
use super::cache::{self, DecisionCache, Invalidation};
use super::redis_conn::Conn;
use super::redis_metrics::{MeasuredConnection, RoundTrips};
use super::{
    DenialLog, EndedSessions, Health, RecordStore, SessionOwner, SessionStore, SessionsOf,
    StoreError, parse_session,
};
use crate::config::{DenialSettings, RedisSettings};
use crate::domain::audit::{AuditEvent, ChainHead, ChainId, seal};
use crate::domain::{
    Decline, DenialEvent, HistoryEntry, Principal, Record, RequirementId, Revocation, SubjectKey,
};
use async_trait::async_trait;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Fields of a denial entry that hold JSON rather than plain text.
const JSON_FIELDS: [&str; 3] = ["missing", "would_deny_only", "inactive"];

static APPEND_DENIAL: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/append_denial.lua")));
static APPLY: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/apply.lua")));

/// How often a change is sealed again when other writers moved the audit chain's head.
const APPLY_ATTEMPTS: usize = 64;

/// A precondition checked inside the same atomic step as the change.
pub(super) enum Guard {
    None,
    /// Write the field only if it does not exist (idempotency keys); refuse otherwise.
    SetOnce {
        key: usize,
        field: String,
        value: String,
    },
    /// The field must still hold this value (compare-and-set).
    Equals {
        key: usize,
        field: String,
        value: String,
    },
    /// The field must not exist yet.
    Absent {
        key: usize,
        field: String,
    },
}

/// One write of a change; `key` indexes the change's keys.
pub(super) enum Op {
    HSet(usize, String, String),
    RPush(usize, String),
}

/// A state change with its audit event.
pub(super) struct Change {
    pub keys: Vec<String>,
    pub guard: Guard,
    pub ops: Vec<Op>,
    pub event: AuditEvent,
    /// Whose standing the change touches: every instance's cache forgets it (published in the
    /// same step).
    pub subject: Option<SubjectKey>,
}

/// How often a revocation retries when the record changed under it.
const REVOKE_ATTEMPTS: usize = 5;

/// The layout [`RedisStore::migrate_legacy_layout`] leaves behind; written to
/// [`RedisStore::layout_key`] when the move is done, so that later starts skip it.
const LAYOUT_VERSION: u32 = 2;

/// Keys asked for per SCAN, and subjects added to the index per SADD, when moving an older
/// layout.
const MIGRATION_BATCH: usize = 1000;

/// Stores backed by Redis: one server, a Redis Cluster, or the primary that Sentinel names.
#[derive(Clone)]
pub struct RedisStore {
    /// Every round trip goes through it and is measured (`store::redis_metrics`).
    pub(super) conn: MeasuredConnection,
    pub(super) prefix: String,
    denials: DenialSettings,
    audit_key: Vec<u8>,
    pub(super) cache: Option<Arc<DecisionCache>>,
}

pub(super) fn unavailable(e: redis::RedisError) -> StoreError {
    match e.code() {
        // Answers, but refuses writes: out of memory (`maxmemory` with `noeviction`), a replica,
        // a failed background save, too few replicas for `min-replicas-to-write`.
        Some("OOM" | "READONLY" | "MISCONF" | "NOREPLICAS") => StoreError::ReadOnly(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl RedisStore {
    /// Creates the store without connecting: the process starts (and serves 503s) while Redis is
    /// down, and the connection manager reconnects by itself.
    pub fn new(
        settings: &RedisSettings,
        denials: DenialSettings,
        audit_key: Vec<u8>,
    ) -> Result<Self, StoreError> {
        let conn = Conn::new(settings).map_err(StoreError::Unavailable)?;
        Ok(Self {
            conn: MeasuredConnection(conn, RoundTrips::default()),
            prefix: settings.key_prefix.clone(),
            denials,
            audit_key,
            cache: None,
        })
    }

    /// Sends independent commands: one pipeline (one round trip) on one server or behind
    /// Sentinel; on a cluster, where a pipeline must stay within one slot, each command on its
    /// own, all at once. Not atomic either way. Returns each command's reply, in order.
    pub(super) async fn send_apart(
        &self,
        cmds: Vec<redis::Cmd>,
    ) -> Result<Vec<redis::Value>, StoreError> {
        if self.conn.0.is_cluster() {
            let sends = cmds.iter().map(|cmd| {
                let mut conn = self.conn.clone();
                async move { cmd.query_async::<redis::Value>(&mut conn).await }
            });
            futures_util::future::try_join_all(sends)
                .await
                .map_err(unavailable)
        } else {
            let mut pipe = redis::pipe();
            for cmd in cmds {
                pipe.add_command(cmd);
            }
            let mut conn = self.conn.clone();
            pipe.query_async(&mut conn).await.map_err(unavailable)
        }
    }

    /// Serves standings and sessions from `cache` while [`RedisStore::watch_invalidations`]
    /// keeps it coherent (until then the cache is bypassed).
    pub fn with_cache(mut self, cache: Arc<DecisionCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Adds the reads of a stored session: its value and how long its key still lives.
    pub(super) fn session_reads(&self, pipe: &mut redis::Pipeline, id: &str) {
        let key = self.session_key(id);
        pipe.get(&key).pttl(key);
    }

    /// Reads a session from Redis (no cache), keeping it in the cache under `ticket`.
    pub(super) async fn read_session(
        &self,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        ticket: Option<cache::Ticket>,
    ) -> Result<Option<Arc<crate::domain::Session>>, StoreError> {
        let mut pipe = redis::pipe();
        self.session_reads(&mut pipe, id);
        let mut conn = self.conn.clone();
        let (value, pttl): (Option<String>, i64) =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let session = value.as_deref().map(parse_session).transpose()?;
        self.kept_session(id, session.as_deref(), pttl, now, ticket);
        Ok(session)
    }

    /// Keeps a session read under `ticket` in the cache, no longer than its key lives in Redis
    /// (`pttl` -1: no expiry).
    pub(super) fn kept_session(
        &self,
        id: &str,
        value: Option<&crate::domain::Session>,
        pttl: i64,
        now: chrono::DateTime<chrono::Utc>,
        ticket: Option<cache::Ticket>,
    ) {
        if let (Some(cache), Some(ticket), Some(value)) = (&self.cache, ticket, value) {
            let ends = (pttl >= 0).then(|| now + chrono::Duration::milliseconds(pttl));
            cache.keep_session(id, value, ends, now, ticket);
        }
    }

    /// The count of this store's round trips to Redis.
    pub fn round_trips(&self) -> RoundTrips {
        self.conn.1.clone()
    }

    pub fn cache(&self) -> Option<&Arc<DecisionCache>> {
        self.cache.as_ref()
    }

    fn channel(&self) -> String {
        cache::channel(&self.prefix)
    }

    fn forget(&self, what: &Invalidation) {
        if let Some(cache) = &self.cache {
            cache.invalidate(what);
        }
    }

    /// Keeps the cache coherent with every other instance: subscribes to the invalidation
    /// channel and evicts what each message names. While the subscription is down the cache is
    /// emptied and bypassed; it is emptied again once resubscribed (what was missed meanwhile
    /// goes with it). Runs until the runtime stops. Without a cache, returns at once.
    pub async fn watch_invalidations(self) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let mut delay = Duration::from_millis(100);
        loop {
            let e = self.subscription(&cache).await;
            cache.suspend();
            if cache_was_subscribed(&e) {
                delay = Duration::from_millis(100);
            }
            tracing::warn!(
                error = %e.1,
                "cache invalidations cannot be received; the decision cache is bypassed"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One subscription, until it fails: whether it had subscribed, and why it ended. A
    /// heartbeat is published on the channel every [`cache::HEARTBEAT`] through the ordinary
    /// connection; each one seen back proves delivery (the cache serves for [`cache::LEASE`]
    /// after it was sent), and none seen back for [`RESUBSCRIBE_AFTER`] ends the subscription.
    async fn subscription(&self, cache: &DecisionCache) -> (bool, redis::RedisError) {
        let pubsub = match tokio::time::timeout(Duration::from_secs(2), self.conn.0.pubsub()).await
        {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => return (false, e),
            Err(_) => return (false, timeout_error("connecting for invalidations")),
        };
        let (mut sink, mut stream) = pubsub.split();
        if let Err(e) = sink.subscribe(self.channel()).await {
            return (false, e);
        }
        cache.resume();
        let instance: u64 = rand::random();
        let heartbeats = tokio::spawn(self.clone().publish_heartbeats(instance));
        let _stop = AbortOnDrop(heartbeats);
        let mut proven = false;
        let mut last_seen = tokio::time::Instant::now();
        let mut checks = tokio::time::interval(cache::HEARTBEAT);
        // Kept until the subscription ends: dropping it would unsubscribe.
        let _sink = sink;
        loop {
            tokio::select! {
                message = futures_util::StreamExt::next(&mut stream) => {
                    let Some(message) = message else {
                        return (true, timeout_error("the invalidation subscription ended"));
                    };
                    let text: String = message.get_payload().unwrap_or_default();
                    if let Some(sent) = cache::own_heartbeat(&text, instance) {
                        cache.delivered(sent);
                        last_seen = tokio::time::Instant::now();
                        if !proven {
                            proven = true;
                            tracing::info!("cache invalidations received; the decision cache is in use");
                        }
                    } else if !cache::is_heartbeat(&text) {
                        match cache::parse_invalidation(&text) {
                            Some(what) => cache.invalidate(&what),
                            None => tracing::warn!(message = %text, "unknown cache invalidation ignored"),
                        }
                    }
                }
                _ = checks.tick() => {
                    if last_seen.elapsed() > RESUBSCRIBE_AFTER {
                        return (true, timeout_error("no heartbeat came back on the invalidation subscription"));
                    }
                }
            }
        }
    }

    /// Publishes this instance's heartbeat every [`cache::HEARTBEAT`], until aborted.
    async fn publish_heartbeats(self, instance: u64) {
        let mut ticks = tokio::time::interval(cache::HEARTBEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let text = cache::heartbeat_message(instance, std::time::Instant::now());
            let mut conn = self.conn.clone();
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(self.channel()).arg(text);
            // A lost heartbeat only shortens the lease; the next one is sent on time.
            tokio::spawn(async move {
                if let Err(e) = publish.query_async::<redis::Value>(&mut conn).await {
                    tracing::debug!(error = %e, "a cache heartbeat could not be published");
                }
            });
        }
    }

    /// The hash tag of a chain: the subject's own for a subject's chain, so that the chain lives
    /// in the same cluster slot as the subject's state; `/directory` and `/clearance` for the
    /// others (a subject never contains `/`).
    fn chain_tag(chain: &ChainId) -> Option<String> {
        match chain {
            ChainId::Subject(s) => Some(s.clone()),
            ChainId::Directory => Some("/directory".into()),
            ChainId::Clearance => Some("/clearance".into()),
            // `Paudit:*`, from before chains were per subject (one Redis only).
            ChainId::Legacy => None,
        }
    }

    pub(super) fn audit_head_key(&self, chain: &ChainId) -> String {
        match Self::chain_tag(chain) {
            Some(tag) => format!("{}{{{tag}}}:audit:head", self.prefix),
            None => format!("{}audit:head", self.prefix),
        }
    }

    pub(super) fn audit_log_key(&self, chain: &ChainId) -> String {
        match Self::chain_tag(chain) {
            Some(tag) => format!("{}{{{tag}}}:audit:log", self.prefix),
            None => format!("{}audit:log", self.prefix),
        }
    }

    /// Moves what an older version wrote outside today's layout (one Redis only: a cluster
    /// never held it), once: when it is done, [`Self::layout_key`] says so, and later starts
    /// read only that key. The directory and the notification keys get their hash tags,
    /// subjects with records or a profile are added to the subjects index, and the old single
    /// audit chain (`Paudit:*`) stays where it is and is registered as the `legacy` chain, so
    /// that it is still verified and exported. Keys are scanned and indexed in batches of
    /// [`MIGRATION_BATCH`], so the move never holds every key in memory. Returns how many keys
    /// or index entries it moved or added (0 when there was nothing to move).
    pub async fn migrate_legacy_layout(&self) -> Result<u64, StoreError> {
        if self.conn.0.is_cluster() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let marker: Option<String> = conn.get(self.layout_key()).await.map_err(unavailable)?;
        let version = marker.and_then(|version| version.parse::<u32>().ok());
        if version.is_some_and(|version| version >= LAYOUT_VERSION) {
            return Ok(0);
        }
        let p = &self.prefix;
        let mut moved = 0;
        let renames = [
            (format!("{p}directory"), self.directory_key()),
            (format!("{p}directory:scim"), self.scim_ids_key()),
        ]
        .into_iter()
        .chain(
            ["dirty", "sent", "messages", "queue", "dead"]
                .map(|name| (format!("{p}notify:{name}"), self.notify_key(name))),
        );
        for (old, new) in renames {
            let exists: bool = conn.exists(&old).await.map_err(unavailable)?;
            if exists {
                let done: bool = conn.rename_nx(&old, &new).await.map_err(unavailable)?;
                if done {
                    moved += 1;
                } else {
                    tracing::warn!(redis.key = %old, "an old key was not moved: its new key exists already; merge them by hand");
                }
            }
        }
        for suffix in ["records", "profile"] {
            moved += self
                .index_subjects_of(&format!("{p}{{*}}:{suffix}"))
                .await?;
        }
        let legacy: bool = conn
            .exists(self.audit_head_key(&ChainId::Legacy))
            .await
            .map_err(unavailable)?;
        if legacy {
            let added: u64 = conn
                .sadd(self.audit_chains_key(), ChainId::Legacy.name())
                .await
                .map_err(unavailable)?;
            moved += added;
        }
        conn.set::<_, _, ()>(self.layout_key(), LAYOUT_VERSION)
            .await
            .map_err(unavailable)?;
        Ok(moved)
    }

    /// Adds the subject of every per-subject key matching `pattern` to the subjects index, a
    /// batch at a time. Returns how many subjects were new to the index.
    async fn index_subjects_of(&self, pattern: &str) -> Result<u64, StoreError> {
        let mut scan = self.conn.clone();
        let mut index = self.conn.clone();
        let options = redis::ScanOptions::default()
            .with_pattern(pattern)
            .with_count(MIGRATION_BATCH);
        let mut keys: redis::AsyncIter<String> =
            scan.scan_options(options).await.map_err(unavailable)?;
        let mut added = 0;
        let mut batch = Vec::with_capacity(MIGRATION_BATCH);
        loop {
            let next = futures_util::StreamExt::next(&mut keys).await;
            let last = next.is_none();
            if let Some(key) = next {
                let key = key.map_err(unavailable)?;
                let subject = key
                    .strip_prefix(self.prefix.as_str())
                    .and_then(|k| k.strip_prefix('{'))
                    .and_then(|k| k.split_once('}'))
                    .and_then(|(s, _)| SubjectKey::parse(s).ok());
                batch.extend(subject);
            }
            if !batch.is_empty() && (last || batch.len() >= MIGRATION_BATCH) {
                let members: Vec<&str> = batch.iter().map(SubjectKey::as_str).collect();
                let new: u64 = index
                    .sadd(self.subjects_key(), members)
                    .await
                    .map_err(unavailable)?;
                added += new;
                batch.clear();
            }
            if last {
                return Ok(added);
            }
        }
    }

    /// Which layout the data is in: [`LAYOUT_VERSION`] once [`Self::migrate_legacy_layout`]
    /// has run to the end.
    pub(super) fn layout_key(&self) -> String {
        format!("{}{{/clearance}}:layout", self.prefix)
    }

    /// The registry of chains: a set of chain names, written before a chain's first entry.
    pub(super) fn audit_chains_key(&self) -> String {
        format!("{}{{/clearance}}:audit:chains", self.prefix)
    }

    /// Every subject with records or a profile (for reports), written before either.
    pub(super) fn subjects_key(&self) -> String {
        format!("{}{{/clearance}}:subjects", self.prefix)
    }

    /// Adds the subject to the index that [`RecordStore::subjects`] reads.
    async fn index_subject(&self, subject: &SubjectKey) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        conn.sadd::<_, _, ()>(self.subjects_key(), subject.as_str())
            .await
            .map_err(unavailable)
    }

    /// Writes a change and its sealed audit entry atomically. Returns false when the guard
    /// refused (nothing written). Retries while other writers move the chain's head.
    pub(super) async fn apply(&self, change: &Change) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let chain = ChainId::of(&change.event);
        let head_key = self.audit_head_key(&chain);
        for attempt in 0..APPLY_ATTEMPTS {
            let current: Option<String> = conn.get(&head_key).await.map_err(unavailable)?;
            let current = current.unwrap_or_default();
            if current.is_empty() {
                // The registry lists the chain before its first entry, so that a chain is
                // never missed by `audit verify` or an export.
                conn.sadd::<_, _, ()>(self.audit_chains_key(), chain.name())
                    .await
                    .map_err(unavailable)?;
            }
            let head =
                ChainHead::decode(&current).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let (line, next) = seal(&self.audit_key, &head, &change.event)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut invocation = APPLY.prepare_invoke();
            invocation.key(&head_key).key(self.audit_log_key(&chain));
            for k in &change.keys {
                invocation.key(k);
            }
            invocation.arg(&current).arg(next.encode()).arg(&line);
            match &change.guard {
                Guard::None => invocation.arg("none").arg(0).arg("").arg(""),
                Guard::SetOnce { key, field, value } => {
                    invocation.arg("hsetnx").arg(key + 3).arg(field).arg(value)
                }
                Guard::Equals { key, field, value } => {
                    invocation.arg("hget_eq").arg(key + 3).arg(field).arg(value)
                }
                Guard::Absent { key, field } => {
                    invocation.arg("hget_nil").arg(key + 3).arg(field).arg("")
                }
            };
            for op in &change.ops {
                match op {
                    Op::HSet(k, f, v) => invocation.arg("hset").arg(k + 3).arg(f).arg(v),
                    Op::RPush(k, v) => invocation.arg("rpush").arg(k + 3).arg(v).arg(""),
                };
            }
            if let Some(subject) = &change.subject {
                let message = cache::invalidation_message(&Invalidation::Subject(subject.clone()));
                invocation
                    .arg("publish")
                    .arg(1)
                    .arg(self.channel())
                    .arg(message);
            }
            let applied: i64 = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match applied {
                1 => {
                    if let Some(subject) = &change.subject {
                        self.forget(&Invalidation::Subject(subject.clone()));
                    }
                    return Ok(true);
                }
                0 => return Ok(false),
                _ if attempt > 4 => {
                    // Heavy contention: back off a little, with jitter.
                    let ms = rand::random::<u64>() % (2 * attempt as u64);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                _ => {}
            }
        }
        Err(StoreError::Unavailable(
            "the audit chain kept moving; the change was not written, try again".into(),
        ))
    }

    pub(super) fn records_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{}}}:records", self.prefix, subject)
    }

    fn history_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{}}}:history", self.prefix, subject)
    }

    fn idempotency_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{}}}:idem", self.prefix, subject)
    }

    fn warned_key(&self, subject: &SubjectKey, requirement: &RequirementId) -> String {
        format!("{}{{{}}}:warned:{}", self.prefix, subject, requirement)
    }

    fn profile_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{}}}:profile", self.prefix, subject)
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}sess:{id}", self.prefix)
    }

    /// Session id (hashed) -> expiry time (ms), so that live sessions are counted cheaply.
    fn sessions_index_key(&self) -> String {
        format!("{}sessions", self.prefix)
    }

    fn sessions_key(&self, which: &SessionsOf) -> String {
        match which {
            SessionsOf::Subject(s) => format!("{}{{{}}}:sessions", self.prefix, s),
            SessionsOf::ProviderSubject(sub) => {
                format!("{}sessions:sub:{}", self.prefix, digest(sub))
            }
            SessionsOf::ProviderSession(sid) => {
                format!("{}sessions:sid:{}", self.prefix, digest(sid))
            }
        }
    }

    fn login_key(&self, state: &str) -> String {
        format!("{}login:{state}", self.prefix)
    }

    fn denials_key(&self) -> String {
        format!("{}denials", self.prefix)
    }

    /// The ids of the denials in the log, in the stream's cluster slot.
    fn denial_ids_key(&self) -> String {
        same_slot(&self.denials_key(), ":ids")
    }

    fn statement_key(&self, statement_id: &str) -> String {
        format!("{}xapi:stmt:{statement_id}", self.prefix)
    }
}

/// The change that makes `record` current and appends it to the history.
fn record_change(store: &RedisStore, record: &Record, guard: Guard) -> Result<Change, StoreError> {
    Ok(Change {
        keys: vec![
            store.records_key(&record.subject),
            store.history_key(&record.subject),
            store.idempotency_key(&record.subject),
        ],
        guard,
        ops: vec![
            Op::HSet(0, record.requirement.as_str().to_owned(), to_json(record)?),
            Op::RPush(1, to_json(&HistoryEntry::Recorded(record.clone()))?),
        ],
        event: audit_event::recorded(record),
        subject: Some(record.subject.clone()),
    })
}

/// Provider-given names in key names are hashed: any text fits, none is readable from a key list.
fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn cache_was_subscribed(ended: &(bool, redis::RedisError)) -> bool {
    ended.0
}

fn timeout_error(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, what))
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_history(values: Vec<String>) -> Result<Vec<HistoryEntry>, StoreError> {
    values
        .into_iter()
        .map(|v| {
            serde_json::from_str::<HistoryEntry>(&v)
                .map_err(|e| StoreError::Corrupt(format!("history: {e}")))
        })
        .collect()
}

fn parse_records(values: impl IntoIterator<Item = String>) -> Result<Vec<Record>, StoreError> {
    values
        .into_iter()
        .map(|v| serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(format!("record: {e}"))))
        .collect()
}

/// How long without a heartbeat back before the subscription is dropped and made again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(2);

/// Aborts a task when dropped (the heartbeats of a subscription that ended).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A key beside `key` in its cluster slot: `key` followed by `suffix`, with `key` made the hash
/// tag when it has none of its own.
fn same_slot(key: &str, suffix: &str) -> String {
    let tagged = key
        .find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|len| len > 0);
    if tagged {
        format!("{key}{suffix}")
    } else {
        format!("{{{key}}}{suffix}")
    }
}

fn denial_fields(event: &DenialEvent) -> Result<Vec<(String, String)>, StoreError> {
    let value = serde_json::to_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(StoreError::Corrupt("denial event is not an object".into()));
    };
    Ok(map
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

fn denial_from_fields(fields: HashMap<String, redis::Value>) -> Result<DenialEvent, StoreError> {
    let mut map = serde_json::Map::new();
    for (k, v) in fields {
        let text: String =
            redis::from_redis_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let value = if JSON_FIELDS.contains(&k.as_str()) {
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("denial {k}: {e}")))?
        } else {
            serde_json::Value::String(text)
        };
        map.insert(k, value);
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| StoreError::Corrupt(format!("denial: {e}")))
}

#[async_trait]
impl RecordStore for RedisStore {
    async fn records(&self, subject: &SubjectKey) -> Result<Vec<Record>, StoreError> {
        let mut conn = self.conn.clone();
        let values: Vec<String> = conn
            .hvals(self.records_key(subject))
            .await
            .map_err(unavailable)?;
        parse_records(values)
    }

    async fn put_record(&self, record: &Record) -> Result<(), StoreError> {
        self.index_subject(&record.subject).await?;
        self.apply(&record_change(self, record, Guard::None)?)
            .await
            .map(|_| ())
    }

    async fn put_record_once(
        &self,
        record: &Record,
        idempotency_key: &str,
    ) -> Result<bool, StoreError> {
        self.index_subject(&record.subject).await?;
        let guard = Guard::SetOnce {
            key: 2,
            field: idempotency_key.to_owned(),
            value: record.requirement.as_str().to_owned(),
        };
        self.apply(&record_change(self, record, guard)?).await
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<bool, StoreError> {
        let records = self.records_key(&revocation.subject);
        let entry = to_json(&HistoryEntry::Revoked(revocation.clone()))?;
        let mut conn = self.conn.clone();
        for _ in 0..REVOKE_ATTEMPTS {
            let current: Option<String> = conn
                .hget(&records, revocation.requirement.as_str())
                .await
                .map_err(unavailable)?;
            let Some(current) = current else {
                return Ok(false);
            };
            let mut record: Record = serde_json::from_str(&current)
                .map_err(|e| StoreError::Corrupt(format!("record: {e}")))?;
            record.revoked_at = Some(revocation.revoked_at);
            let change = Change {
                keys: vec![records.clone(), self.history_key(&revocation.subject)],
                guard: Guard::Equals {
                    key: 0,
                    field: revocation.requirement.as_str().to_owned(),
                    value: current,
                },
                ops: vec![
                    Op::HSet(
                        0,
                        revocation.requirement.as_str().to_owned(),
                        to_json(&record)?,
                    ),
                    Op::RPush(1, entry.clone()),
                ],
                event: audit_event::revoked(revocation),
                subject: Some(revocation.subject.clone()),
            };
            if self.apply(&change).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Unavailable(
            "the record kept changing during revocation; try again".into(),
        ))
    }

    async fn record_decline(&self, decline: &Decline) -> Result<(), StoreError> {
        let entry = to_json(&HistoryEntry::Declined(decline.clone()))?;
        let change = Change {
            keys: vec![self.history_key(&decline.subject)],
            guard: Guard::None,
            ops: vec![Op::RPush(0, entry)],
            event: audit_event::declined(decline),
            subject: None,
        };
        self.apply(&change).await.map(|_| ())
    }

    async fn history(&self, subject: &SubjectKey) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let values: Vec<String> = conn
            .lrange(self.history_key(subject), 0, -1)
            .await
            .map_err(unavailable)?;
        parse_history(values)
    }

    async fn warnings_acknowledged(
        &self,
        subject: &SubjectKey,
        requirements: &[RequirementId],
    ) -> Result<Vec<bool>, StoreError> {
        if requirements.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = requirements
            .iter()
            .map(|r| self.warned_key(subject, r))
            .collect();
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(values.into_iter().map(|v| v.is_some()).collect())
    }

    async fn acknowledge_warning(
        &self,
        subject: &SubjectKey,
        requirement: &RequirementId,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        conn.pset_ex::<_, _, ()>(
            self.warned_key(subject, requirement),
            chrono::Utc::now().to_rfc3339(),
            ttl_ms(ttl),
        )
        .await
        .map_err(unavailable)
    }

    async fn subjects(&self) -> Result<Vec<SubjectKey>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<String> = conn
            .smembers(self.subjects_key())
            .await
            .map_err(unavailable)?;
        let mut found: Vec<SubjectKey> = all
            .iter()
            .filter_map(|s| SubjectKey::parse(s).ok())
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn put_profile(&self, principal: &Principal) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(principal).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.index_subject(&principal.subject).await?;
        let mut conn = self.conn.clone();
        conn.set::<_, _, ()>(self.profile_key(&principal.subject), json)
            .await
            .map_err(unavailable)
    }

    async fn profile(&self, subject: &SubjectKey) -> Result<Option<Principal>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = conn
            .get(self.profile_key(subject))
            .await
            .map_err(unavailable)?;
        value
            .map(|v| {
                serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(format!("profile: {e}")))
            })
            .transpose()
    }

    async fn put_statement_target(
        &self,
        statement_id: &str,
        subject: &SubjectKey,
        requirement: &RequirementId,
    ) -> Result<(), StoreError> {
        let json = to_json(&(subject, requirement))?;
        let mut conn = self.conn.clone();
        conn.set_nx::<_, _, ()>(self.statement_key(statement_id), json)
            .await
            .map_err(unavailable)
    }

    async fn statement_target(
        &self,
        statement_id: &str,
    ) -> Result<Option<(SubjectKey, RequirementId)>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = conn
            .get(self.statement_key(statement_id))
            .await
            .map_err(unavailable)?;
        value
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|e| StoreError::Corrupt(format!("xapi statement target: {e}")))
            })
            .transpose()
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put_session(
        &self,
        id: &str,
        value: &str,
        ttl: Duration,
        owner: Option<&SessionOwner>,
    ) -> Result<(), StoreError> {
        let ms = ttl_ms(ttl);
        let now = chrono::Utc::now().timestamp_millis();
        let until = now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
        let mut cmds = vec![
            redis::Cmd::pset_ex(self.session_key(id), value, ms),
            // Every live session, for the metrics' count.
            redis::Cmd::zadd(self.sessions_index_key(), id, until),
        ];
        if let Some(owner) = owner {
            let mut indexes = vec![
                SessionsOf::Subject(owner.subject.clone()),
                SessionsOf::ProviderSubject(owner.provider_sub.clone()),
            ];
            if let Some(sid) = &owner.provider_sid {
                indexes.push(SessionsOf::ProviderSession(sid.clone()));
            }
            for which in &indexes {
                let key = self.sessions_key(which);
                cmds.push(redis::Cmd::zadd(&key, id, until));
                // Ended sessions leave the index as they expire.
                cmds.push(redis::Cmd::zrembyscore(&key, "-inf", now));
            }
        }
        cmds.push(redis::Cmd::publish(
            self.channel(),
            cache::invalidation_message(&Invalidation::Session(id.to_owned())),
        ));
        self.send_apart(cmds).await?;
        self.forget(&Invalidation::Session(id.to_owned()));
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<Option<String>, StoreError> {
        // The value as stored, tokens included: never from the cache.
        let mut conn = self.conn.clone();
        conn.get(self.session_key(id)).await.map_err(unavailable)
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        self.send_apart(vec![
            redis::Cmd::del(self.session_key(id)),
            redis::Cmd::zrem(self.sessions_index_key(), id),
            redis::Cmd::publish(
                self.channel(),
                cache::invalidation_message(&Invalidation::Session(id.to_owned())),
            ),
        ])
        .await?;
        self.forget(&Invalidation::Session(id.to_owned()));
        Ok(())
    }

    async fn live_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let index = self.sessions_index_key();
        let (count,): (u64,) = redis::pipe()
            .zrembyscore(&index, "-inf", now.timestamp_millis())
            .ignore()
            .zcard(&index)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(count)
    }

    async fn use_once(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(format!("{}once:{}", self.prefix, digest(name)))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(taken.is_some())
    }

    async fn end_sessions(&self, which: &SessionsOf) -> Result<EndedSessions, StoreError> {
        let key = self.sessions_key(which);
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.zrange(&key, 0, -1).await.map_err(unavailable)?;
        let mut ended = EndedSessions::default();
        if let SessionsOf::Subject(subject) = which {
            ended.subjects.push(subject.clone());
        }
        if ids.is_empty() {
            return Ok(ended);
        }
        let mut cmds = Vec::with_capacity(ids.len() * 2 + 2);
        // GETDEL: the sessions' owners are who the caller ends the tokens of.
        for id in &ids {
            let mut getdel = redis::cmd("GETDEL");
            getdel.arg(self.session_key(id));
            cmds.push(getdel);
        }
        for id in &ids {
            cmds.push(redis::Cmd::publish(
                self.channel(),
                cache::invalidation_message(&Invalidation::Session(id.clone())),
            ));
        }
        // Only the ids read: a session started meanwhile stays indexed (and alive).
        cmds.push(redis::Cmd::zrem(&key, &ids));
        cmds.push(redis::Cmd::zrem(self.sessions_index_key(), &ids));
        let replies = self.send_apart(cmds).await?;
        for id in &ids {
            self.forget(&Invalidation::Session(id.clone()));
        }
        for reply in replies.iter().take(ids.len()) {
            let text = match reply {
                redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                redis::Value::SimpleString(text) => text.clone(),
                _ => continue,
            };
            ended.live += 1;
            // A session that cannot be read still ended; its owner is then unknown.
            if let Ok(session) = parse_session(&text)
                && !ended.subjects.contains(&session.principal.subject)
            {
                ended.subjects.push(session.principal.subject.clone());
            }
        }
        Ok(ended)
    }

    async fn end_tokens(
        &self,
        subject: &SubjectKey,
        at: chrono::DateTime<chrono::Utc>,
        keep: Duration,
    ) -> Result<(), StoreError> {
        let stamp = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let cmds = vec![
            redis::Cmd::pset_ex(self.tokens_ended_key(subject), stamp, ttl_ms(keep)),
            redis::Cmd::publish(
                self.channel(),
                cache::invalidation_message(&Invalidation::Subject(subject.clone())),
            ),
        ];
        self.send_apart(cmds).await?;
        self.forget(&Invalidation::Subject(subject.clone()));
        Ok(())
    }

    async fn put_login(&self, state: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        conn.pset_ex::<_, _, ()>(self.login_key(state), value, ttl_ms(ttl))
            .await
            .map_err(unavailable)
    }

    async fn take_login(&self, state: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        conn.get_del(self.login_key(state))
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl DenialLog for RedisStore {
    async fn append_denial(&self, event: &DenialEvent) -> Result<Option<String>, StoreError> {
        let fields = denial_fields(event)?;
        let min_id = self.denials.max_age.map_or_else(String::new, |age| {
            let cutoff = chrono::Utc::now().timestamp_millis()
                - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            format!("{}-0", cutoff.max(0))
        });
        let mut invocation = APPEND_DENIAL.prepare_invoke();
        invocation
            .key(self.denials_key())
            .key(self.denial_ids_key())
            .arg(&event.denial_id)
            // Exact trimming: it evicts at most a few entries per append, and retention is
            // then precisely what the configuration says.
            .arg(self.denials.max_entries)
            .arg(min_id)
            .arg(u64::try_from(super::DENIAL_IDS_KEPT.as_millis()).unwrap_or(u64::MAX));
        for (k, v) in &fields {
            invocation.arg(k).arg(v);
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn recent_denials(&self, count: usize) -> Result<Vec<(String, DenialEvent)>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = conn
            .xrevrange_count(self.denials_key(), "+", "-", count)
            .await
            .map_err(unavailable)?;
        reply
            .ids
            .into_iter()
            .map(|entry| Ok((entry.id, denial_from_fields(entry.map)?)))
            .collect()
    }

    async fn denials_between(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<(String, DenialEvent)>, StoreError> {
        // Stream ids are `<milliseconds>-<n>` of the append by the Redis server's clock, which
        // is the denial's time (the gate's clock) give or take the write and any skew between
        // the two clocks: read DENIAL_SLACK_MS wider on each side, then check the events' own
        // times exactly below.
        let mut start = from.map_or_else(
            || "-".to_owned(),
            |t| {
                format!(
                    "{}-0",
                    t.timestamp_millis().saturating_sub(DENIAL_SLACK_MS).max(0)
                )
            },
        );
        let end = to.map_or_else(
            || "+".to_owned(),
            |t| format!("{}", t.timestamp_millis().saturating_add(DENIAL_SLACK_MS)),
        );
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        loop {
            let reply: redis::streams::StreamRangeReply = conn
                .xrange_count(self.denials_key(), &start, &end, DENIAL_PAGE)
                .await
                .map_err(unavailable)?;
            let full = reply.ids.len() >= DENIAL_PAGE;
            let mut last = None;
            for entry in reply.ids {
                last = Some(entry.id.clone());
                let event = denial_from_fields(entry.map)?;
                if from.is_none_or(|f| event.time >= f) && to.is_none_or(|t| event.time <= t) {
                    out.push((entry.id, event));
                }
            }
            match (full, last) {
                // Exclusive start after the last id read.
                (true, Some(id)) => start = format!("({id}"),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// How many denial entries one `XRANGE` reads.
const DENIAL_PAGE: usize = 1000;

/// How far the Redis server's clock (stream ids) may be from the gate's (event times) and still
/// have a denial found by time: 5 minutes.
const DENIAL_SLACK_MS: i64 = 5 * 60 * 1000;

#[async_trait]
impl Health for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn probe_writes(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}health:write", self.prefix))
            .arg(chrono::Utc::now().timestamp_millis())
            .arg("PX")
            .arg(60_000)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    fn cache_watcher(&self) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        self.cache
            .is_some()
            .then(|| Box::pin(self.clone().watch_invalidations()) as _)
    }

    fn cache_entries(&self) -> Option<(usize, usize)> {
        self.cache.as_ref().map(|c| c.len())
    }
}
