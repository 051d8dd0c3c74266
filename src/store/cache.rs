//! The per-instance decision cache: what one request reads from Redis (a subject's standing, a
//! session), bounded in size, each entry capped by `cache.ttl_secs` and by the subject's next
//! expiry, evicted by invalidation messages and bypassed while those cannot be received.
//!
//! The gate still evaluates every request with the time passed in (`domain::evaluate` is pure), so
//! a cached standing never admits anyone past an expiry; the caps only bound how long data that
//! changed elsewhere could be kept if an invalidation were lost.
//!
//! Invalidation messages (published on `<prefix>invalidate` by every change, see
//! [`invalidation_message`]) are `subject:<subject key>` and `session:<storage id>`.
//!
//! Proof of delivery: an open subscription can deliver nothing (a half-dead connection, a hung
//! proxy), so the cache serves only while it has proof that messages arrive. Each instance
//! publishes a heartbeat (`heartbeat:<instance>:<sent>`) on the same channel every
//! [`HEARTBEAT`]; seeing its own back proves that everything published before it was delivered,
//! and lets the cache serve until [`LEASE`] after the heartbeat was *sent*. A change published
//! at `t` is therefore either delivered, or the cache stops serving by `t + LEASE`, whatever
//! failed in between.
//!
//! Races: a reader takes [`DecisionCache::epoch`] before reading Redis and hands it back with
//! the value; every invalidation moves the epoch, and a value inserted while the epoch moved is
//! removed again right after, so a read that started before a change never outlives it here.

use super::Standing;
use super::packed::{self, pack_session, pack_standing, unpack_session, unpack_standing};
use super::table::{Key, PackedTable};
use crate::config::CacheSettings;
use crate::domain::{Session, SubjectKey};
use chrono::{DateTime, Utc};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often an instance publishes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// How long after a heartbeat was sent its return lets the cache serve: the longest a change
/// can go unseen by an instance whose subscription stopped delivering.
pub const LEASE: Duration = Duration::from_millis(750);

/// The process's monotonic time origin for leases.
static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Nanoseconds of monotonic time since [`ORIGIN`].
fn monotonic_nanos(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*ORIGIN).as_nanos()).unwrap_or(u64::MAX)
}

/// The text of a heartbeat of `instance`, sent at `sent`.
pub fn heartbeat_message(instance: u64, sent: Instant) -> String {
    format!("heartbeat:{instance:016x}:{}", monotonic_nanos(sent))
}

/// When a heartbeat of `instance` was sent, if `text` is one (`None` for anything else, and
/// for other instances' heartbeats, which are ignored).
pub fn own_heartbeat(text: &str, instance: u64) -> Option<Instant> {
    let rest = text.strip_prefix("heartbeat:")?;
    let (who, sent) = rest.split_once(':')?;
    if u64::from_str_radix(who, 16).ok()? != instance {
        return None;
    }
    let nanos: u64 = sent.parse().ok()?;
    ORIGIN.checked_add(Duration::from_nanos(nanos))
}

/// Whether `text` is a heartbeat (of any instance).
pub fn is_heartbeat(text: &str) -> bool {
    text.starts_with("heartbeat:")
}

/// The Redis channel (under the key prefix) that carries invalidations.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}invalidate")
}

/// What changed, as published to other instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// Records, directory entry, exemptions or first access of a subject.
    Subject(SubjectKey),
    /// A session (by its storage id, the SHA-256 of the cookie's id).
    Session(String),
}

/// The text published for an invalidation.
pub fn invalidation_message(what: &Invalidation) -> String {
    match what {
        Invalidation::Subject(s) => format!("subject:{s}"),
        Invalidation::Session(id) => format!("session:{id}"),
    }
}

/// Reads a published invalidation; `None` for anything else.
pub fn parse_invalidation(text: &str) -> Option<Invalidation> {
    match text.split_once(':')? {
        ("subject", s) => SubjectKey::parse(s).ok().map(Invalidation::Subject),
        ("session", id) if !id.is_empty() => Some(Invalidation::Session(id.to_owned())),
        _ => None,
    }
}

/// The earliest moment after `now` at which the standing itself says something changes: a
/// record or an exemption expiring.
pub fn next_change(standing: &Standing, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let records = standing.records.iter().filter_map(|r| r.expires_at);
    let exemptions = standing.exemptions.iter().filter_map(|e| e.expires_at);
    records.chain(exemptions).filter(|t| *t > now).min()
}

/// Packed bytes to keep, or nothing (logged) when packing failed.
fn keepable(bytes: Result<Box<[u8]>, super::packed::PackError>) -> Option<Box<[u8]>> {
    bytes
        .map_err(|e| tracing::warn!(error.message = %e, "not kept in the decision cache"))
        .ok()
}

/// An unpacked copy, with the moment it stops being served.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    until: DateTime<Utc>,
}

/// How many unpacked standings, and as many sessions, are kept beside the packed ones: the
/// people with requests in flight, served without unpacking (about 2 KiB each).
const HOT_ENTRIES: usize = 256;

/// Standings and sessions kept by one instance, packed (`store::packed`: one allocation each,
/// only what a decision reads, starting with the second until which it is served; sessions
/// without their tokens, records without evidence) in two [`PackedTable`]s, so that 100,000
/// people take little memory.
/// The most recently used few ([`HOT_ENTRIES`]) are also kept unpacked, so that a person's
/// requests in quick succession share one unpacked copy; the others are unpacked on a hit.
///
/// Sessions are keyed by the first 16 bytes of their storage id (a SHA-256), standings by a
/// 128-bit keyed hash of the subject; a standing's packing holds its subject, and one packed for
/// another subject is never served.
pub struct DecisionCache {
    standings: PackedTable,
    sessions: PackedTable,
    hot_standings: quick_cache::sync::Cache<SubjectKey, Entry<Arc<Standing>>>,
    hot_sessions: quick_cache::sync::Cache<Key, Entry<Arc<Session>>>,
    /// The two keys of the subjects' hash, random per process.
    subject_hash: (RandomState, RandomState),
    ttl: chrono::Duration,
    epoch: AtomicU64,
    /// Whether the invalidation subscription is up; while not, nothing is served or kept.
    live: AtomicBool,
    /// Until when (monotonic nanoseconds, see [`LEASE`]) delivery is proven; nothing is served
    /// or kept after it.
    proven_until: AtomicU64,
}

/// A session's cache key: the first 16 of the 32 bytes its storage id (hex SHA-256) spells.
/// Anything else is never kept.
fn session_key(id: &str) -> Option<Key> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(id, &mut digest).ok()?;
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    Some(key)
}

/// A reader's ticket: the epoch seen before reading the store.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl DecisionCache {
    /// A cache that serves nothing until [`DecisionCache::resume`] (the subscription is up).
    pub fn new(settings: &CacheSettings) -> Self {
        // Room for every entry up front: the tables never grow by doubling (which would leave
        // the old table behind at the peak); their slots, about 43 bytes per entry of room, are
        // allocated here.
        Self {
            standings: PackedTable::new(settings.max_subjects),
            sessions: PackedTable::new(settings.max_sessions),
            hot_standings: quick_cache::sync::Cache::new(
                HOT_ENTRIES.min(settings.max_subjects).max(1),
            ),
            hot_sessions: quick_cache::sync::Cache::new(
                HOT_ENTRIES.min(settings.max_sessions).max(1),
            ),
            subject_hash: (RandomState::new(), RandomState::new()),
            ttl: chrono::Duration::from_std(settings.ttl).unwrap_or(chrono::Duration::seconds(60)),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(false),
            proven_until: AtomicU64::new(0),
        }
    }

    fn subject_key(&self, subject: &SubjectKey) -> Key {
        let (a, b) = &self.subject_hash;
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&a.hash_one(subject.as_str()).to_le_bytes());
        key[8..].copy_from_slice(&b.hash_one(subject.as_str()).to_le_bytes());
        key
    }

    /// Whether entries are served: the subscription is up and its delivery proven recently.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
            && monotonic_nanos(Instant::now()) < self.proven_until.load(Ordering::SeqCst)
    }

    /// A heartbeat sent at `sent` came back: everything published before it was delivered, so
    /// entries may be served until [`LEASE`] after `sent`.
    pub fn delivered(&self, sent: Instant) {
        self.proven_until
            .fetch_max(monotonic_nanos(sent + LEASE), Ordering::SeqCst);
    }

    /// Invalidations can no longer be received: forget everything and serve nothing.
    pub fn suspend(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.clear();
    }

    /// Subscribed again: start from empty (whatever was missed meanwhile is gone with it) and
    /// serve once the first heartbeat comes back ([`DecisionCache::delivered`]).
    pub fn resume(&self) {
        self.proven_until.store(0, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.clear();
        self.live.store(true, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.standings.clear();
        self.sessions.clear();
        self.hot_standings.clear();
        self.hot_sessions.clear();
    }

    /// How many standings and sessions are kept.
    pub fn len(&self) -> (usize, usize) {
        (self.standings.len(), self.sessions.len())
    }

    /// Before reading the store: `None` when nothing may be kept now.
    pub fn ticket(&self) -> Option<Ticket> {
        self.is_live()
            .then(|| Ticket(self.epoch.load(Ordering::SeqCst)))
    }

    fn moved_since(&self, ticket: Ticket) -> bool {
        !self.is_live() || self.epoch.load(Ordering::SeqCst) != ticket.0
    }

    /// Evicts what an invalidation names.
    pub fn invalidate(&self, what: &Invalidation) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match what {
            Invalidation::Subject(s) => self.forget_standing(s, &self.subject_key(s)),
            Invalidation::Session(id) => {
                if let Some(key) = session_key(id) {
                    self.sessions.remove(&key);
                    self.hot_sessions.remove(&key);
                }
            }
        }
    }

    fn forget_standing(&self, subject: &SubjectKey, key: &Key) {
        self.standings.remove(key);
        self.hot_standings.remove(subject);
    }

    /// The subject's standing if kept and still valid at `now`.
    pub fn standing(&self, subject: &SubjectKey, now: DateTime<Utc>) -> Option<Arc<Standing>> {
        let ticket = self.ticket()?;
        if let Some(hot) = self.hot_standings.get(subject).filter(|e| e.until > now) {
            crate::metrics::cache_hit("standing");
            return Some(hot.value);
        }
        let key = self.subject_key(subject);
        let unpacked = self.standings.read(&key, |bytes| {
            if !packed::serves_at(bytes, now) {
                return None;
            }
            let standing = unpack_standing(subject, bytes).ok()?;
            Some(Entry {
                value: Arc::new(standing),
                until: DateTime::from_timestamp(packed::until(bytes)?, 0)?,
            })
        });
        let unpacked = unpacked.flatten();
        let Some(entry) = unpacked else {
            self.forget_standing(subject, &key);
            crate::metrics::cache_miss("standing");
            return None;
        };
        crate::metrics::cache_hit("standing");
        let standing = entry.value.clone();
        self.hot_standings.insert(subject.clone(), entry);
        // An invalidation came in between: the copy just made may be older than it.
        if self.moved_since(ticket) {
            self.hot_standings.remove(subject);
        }
        Some(standing)
    }

    /// Keeps (the compact copy of) a standing read from the store with `ticket`, until the TTL
    /// or its next change.
    pub fn keep_standing(
        &self,
        subject: &SubjectKey,
        standing: &Standing,
        now: DateTime<Utc>,
        ticket: Ticket,
    ) {
        let mut until = now + self.ttl;
        if let Some(change) = next_change(standing, now) {
            until = until.min(change);
        }
        if until <= now || self.moved_since(ticket) {
            return;
        }
        let Some(value) = keepable(pack_standing(subject, standing, until)) else {
            return;
        };
        let key = self.subject_key(subject);
        self.standings.insert(key, value);
        self.hot_standings.remove(subject);
        if self.moved_since(ticket) {
            self.standings.remove(&key);
        }
    }

    /// Notes the first access written for a subject in the kept standing, so that it is not
    /// written again.
    pub fn note_first_access(&self, subject: &SubjectKey, at: DateTime<Utc>) {
        let Some(ticket) = self.ticket() else {
            return;
        };
        let key = self.subject_key(subject);
        let noted = self.standings.read(&key, |bytes| {
            let mut standing = unpack_standing(subject, bytes).ok()?;
            standing.first_access.get_or_insert(at);
            let until = DateTime::from_timestamp(packed::until(bytes)?, 0)?;
            keepable(pack_standing(subject, &standing, until))
        });
        let Some(noted) = noted else {
            return;
        };
        match noted {
            Some(value) => {
                self.standings.replace(&key, value);
                // The unpacked copy lacks the first access: the next hit unpacks the new one.
                self.hot_standings.remove(subject);
                // An invalidation (and maybe a fresher read) came in between: drop the copy.
                if self.moved_since(ticket) {
                    self.standings.remove(&key);
                }
            }
            None => self.forget_standing(subject, &key),
        }
    }

    /// The session stored under `id` if kept and still valid at `now`.
    pub fn session(&self, id: &str, now: DateTime<Utc>) -> Option<Arc<Session>> {
        let ticket = self.ticket()?;
        let key = session_key(id)?;
        if let Some(hot) = self.hot_sessions.get(&key).filter(|e| e.until > now) {
            crate::metrics::cache_hit("session");
            return Some(hot.value);
        }
        let unpacked = self.sessions.read(&key, |bytes| {
            if !packed::serves_at(bytes, now) {
                return None;
            }
            let session = unpack_session(bytes).ok()?;
            Some(Entry {
                value: Arc::new(session),
                until: DateTime::from_timestamp(packed::until(bytes)?, 0)?,
            })
        });
        let unpacked = unpacked.flatten();
        let Some(entry) = unpacked else {
            self.sessions.remove(&key);
            self.hot_sessions.remove(&key);
            crate::metrics::cache_miss("session");
            return None;
        };
        crate::metrics::cache_hit("session");
        let session = entry.value.clone();
        self.hot_sessions.insert(key, entry);
        // An invalidation came in between: the copy just made may be older than it.
        if self.moved_since(ticket) {
            self.hot_sessions.remove(&key);
        }
        Some(session)
    }

    /// Keeps (the token-free copy of) a session read from the store with `ticket`, until the
    /// TTL or `ends` (when its key expires in the store).
    pub fn keep_session(
        &self,
        id: &str,
        value: &Session,
        ends: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        ticket: Ticket,
    ) {
        let until = ends.map_or(now + self.ttl, |e| e.min(now + self.ttl));
        let Some(key) = session_key(id) else {
            return;
        };
        if until <= now || self.moved_since(ticket) {
            return;
        }
        let Some(value) = keepable(pack_session(value, until)) else {
            return;
        };
        self.sessions.insert(key, value);
        self.hot_sessions.remove(&key);
        if self.moved_since(ticket) {
            self.sessions.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Record, RequirementId, Source, Version};
    use std::time::Duration;

    fn settings(max: usize) -> CacheSettings {
        CacheSettings {
            enabled: true,
            max_subjects: max,
            max_sessions: max,
            ttl: Duration::from_secs(60),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn sk(s: &str) -> SubjectKey {
        SubjectKey::parse(s).unwrap()
    }

    fn record(expires: Option<DateTime<Utc>>) -> Record {
        Record {
            subject: sk("ann@x"),
            requirement: RequirementId("training".into()),
            version: "1".parse::<Version>().unwrap(),
            completed_at: at(-100),
            expires_at: expires,
            source: Source::Api,
            evidence: serde_json::Map::new(),
            recorded_by: "test".into(),
            recorded_at: at(-100),
            revoked_at: None,
        }
    }

    fn session() -> Session {
        Session {
            principal: crate::domain::Principal::bare(sk("ann@x")),
            id_token: Some("id-token".into()),
            access_token: "access-token".into(),
            refresh_token: Some("refresh-token".into()),
            access_expires_at: Some(at(3600)),
            created_at: at(0),
            expires_at: at(7200),
            csrf: "c".into(),
            provider_sid: None,
            tokens_elided: false,
        }
    }

    /// A storage id (64 hex digits).
    fn id(n: usize) -> String {
        format!("{n:064x}")
    }

    fn live(max: usize) -> DecisionCache {
        let cache = DecisionCache::new(&settings(max));
        cache.resume();
        cache.delivered(std::time::Instant::now() + std::time::Duration::from_secs(3600));
        cache
    }

    #[test]
    fn served_only_within_the_lease_of_a_heartbeat_seen_back() {
        let cache = DecisionCache::new(&settings(10));
        cache.resume();
        assert!(!cache.is_live(), "subscribed, but no heartbeat back yet");
        cache.delivered(Instant::now());
        assert!(cache.is_live());
        cache.suspend();
        cache.resume();
        assert!(!cache.is_live(), "a new subscription proves itself afresh");
        cache.delivered(Instant::now() - LEASE - Duration::from_millis(1));
        assert!(!cache.is_live(), "the lease of an old heartbeat is over");
        let instance = 0x5eed;
        let sent = Instant::now();
        let text = heartbeat_message(instance, sent);
        assert!(is_heartbeat(&text));
        assert_eq!(parse_invalidation(&text), None);
        let back = own_heartbeat(&text, instance).expect("own heartbeat");
        assert!(back.max(sent) - back.min(sent) < Duration::from_micros(1));
        assert_eq!(
            own_heartbeat(&text, instance + 1),
            None,
            "another instance's"
        );
        assert_eq!(own_heartbeat("heartbeat:zz:1", instance), None);
    }

    #[test]
    fn bounded_in_size() {
        let cache = live(50);
        for i in 0..1000 {
            let s = sk(&format!("p{i}@x"));
            let t = cache.ticket().unwrap();
            cache.keep_standing(&s, &Standing::default(), at(0), t);
            let t = cache.ticket().unwrap();
            cache.keep_session(&id(i), &session(), None, at(0), t);
        }
        let (standings, sessions) = cache.len();
        assert!(standings <= 50, "{standings} standings kept");
        assert!(sessions <= 50, "{sessions} sessions kept");
        assert!(standings > 0 && sessions > 0);
    }

    #[test]
    fn an_entry_does_not_outlive_the_next_expiry() {
        let cache = live(10);
        let standing = Standing {
            records: vec![record(Some(at(30))), record(None)],
            ..Standing::default()
        };
        let t = cache.ticket().unwrap();
        cache.keep_standing(&sk("ann@x"), &standing, at(0), t);
        assert!(cache.standing(&sk("ann@x"), at(29)).is_some());
        assert!(cache.standing(&sk("ann@x"), at(30)).is_none());
        // Removed, not only hidden.
        assert!(cache.standing(&sk("ann@x"), at(0)).is_none());
    }

    #[test]
    fn an_entry_does_not_outlive_the_ttl() {
        let cache = live(10);
        let t = cache.ticket().unwrap();
        cache.keep_standing(&sk("ann@x"), &Standing::default(), at(0), t);
        let t = cache.ticket().unwrap();
        cache.keep_session(&id(1), &session(), Some(at(10)), at(0), t);
        assert!(cache.standing(&sk("ann@x"), at(59)).is_some());
        assert!(cache.standing(&sk("ann@x"), at(60)).is_none());
        assert_eq!(cache.session(&id(1), at(9)).unwrap().csrf, "c");
        assert!(cache.session(&id(1), at(10)).is_none());
    }

    #[test]
    fn nothing_is_kept_or_served_while_suspended_and_resuming_starts_empty() {
        let cache = DecisionCache::new(&settings(10));
        assert!(cache.ticket().is_none());
        cache.resume();
        cache.delivered(std::time::Instant::now() + std::time::Duration::from_secs(3600));
        let t = cache.ticket().unwrap();
        cache.keep_standing(&sk("ann@x"), &Standing::default(), at(0), t);
        cache.suspend();
        assert!(cache.standing(&sk("ann@x"), at(1)).is_none());
        // A read that started before the subscription was lost keeps nothing.
        cache.keep_standing(&sk("ann@x"), &Standing::default(), at(0), t);
        cache.resume();
        cache.delivered(std::time::Instant::now() + std::time::Duration::from_secs(3600));
        assert!(cache.standing(&sk("ann@x"), at(1)).is_none());
        assert_eq!(cache.len(), (0, 0));
    }

    #[test]
    fn a_read_overtaken_by_an_invalidation_is_not_kept() {
        let cache = live(10);
        let t = cache.ticket().unwrap();
        cache.invalidate(&Invalidation::Subject(sk("bob@x")));
        cache.keep_standing(&sk("ann@x"), &Standing::default(), at(0), t);
        assert!(cache.standing(&sk("ann@x"), at(1)).is_none());
    }

    #[test]
    fn invalidations_evict_what_they_name() {
        let cache = live(10);
        let t = cache.ticket().unwrap();
        cache.keep_standing(&sk("ann@x"), &Standing::default(), at(0), t);
        cache.keep_standing(&sk("bob@x"), &Standing::default(), at(0), t);
        cache.keep_session(&id(2), &session(), None, at(0), t);
        // Served once, so that unpacked copies are kept too: those go as well.
        assert!(cache.standing(&sk("ann@x"), at(1)).is_some());
        assert!(cache.session(&id(2), at(1)).is_some());
        let msg = invalidation_message(&Invalidation::Subject(sk("ann@x")));
        cache.invalidate(&parse_invalidation(&msg).unwrap());
        assert!(cache.standing(&sk("ann@x"), at(1)).is_none());
        assert!(cache.standing(&sk("bob@x"), at(1)).is_some());
        let msg = invalidation_message(&Invalidation::Session(id(2)));
        cache.invalidate(&parse_invalidation(&msg).unwrap());
        assert!(cache.session(&id(2), at(1)).is_none());
        assert_eq!(parse_invalidation("nonsense"), None);
        assert_eq!(parse_invalidation("session:"), None);
    }

    #[test]
    fn first_access_is_noted_in_the_kept_standing() {
        let cache = live(10);
        let t = cache.ticket().unwrap();
        cache.keep_standing(&sk("ann@x"), &Standing::default(), at(0), t);
        assert_eq!(
            cache.standing(&sk("ann@x"), at(1)).unwrap().first_access,
            None
        );
        cache.note_first_access(&sk("ann@x"), at(1));
        let kept = cache.standing(&sk("ann@x"), at(2)).unwrap();
        assert_eq!(kept.first_access, Some(at(1)));
    }

    #[test]
    fn hits_in_quick_succession_share_one_unpacked_copy() {
        let cache = live(10);
        let t = cache.ticket().unwrap();
        cache.keep_standing(&sk("ann@x"), &Standing::default(), at(0), t);
        cache.keep_session(&id(4), &session(), None, at(0), t);
        let first = cache.standing(&sk("ann@x"), at(1)).unwrap();
        let second = cache.standing(&sk("ann@x"), at(2)).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let first = cache.session(&id(4), at(1)).unwrap();
        let second = cache.session(&id(4), at(2)).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        // Keeping a fresher read replaces the unpacked copy.
        let t = cache.ticket().unwrap();
        cache.keep_session(&id(4), &session(), None, at(3), t);
        assert!(!Arc::ptr_eq(
            &second,
            &cache.session(&id(4), at(4)).unwrap()
        ));
        // And the unpacked copy ends when the entry does.
        cache.suspend();
        assert!(cache.session(&id(4), at(5)).is_none());
    }

    #[test]
    fn kept_copies_leave_out_tokens_and_record_evidence() {
        let cache = live(10);
        let t = cache.ticket().unwrap();
        cache.keep_session(&id(3), &session(), None, at(0), t);
        let kept = cache.session(&id(3), at(1)).unwrap();
        assert!(kept.tokens_elided);
        assert_eq!(
            (kept.id_token.as_deref(), kept.refresh_token.as_deref()),
            (None, None)
        );
        assert_eq!(kept.access_token, "");
        assert_eq!(kept.access_expires_at, Some(at(3600)));
        assert_eq!(kept.principal.subject, sk("ann@x"));

        let mut full = record(Some(at(300)));
        full.evidence.insert("ticket".into(), "T-1".into());
        let standing = Standing {
            records: vec![full.clone()],
            ..Standing::default()
        };
        cache.keep_standing(&sk("ann@x"), &standing, at(0), t);
        let kept = cache.standing(&sk("ann@x"), at(1)).unwrap();
        let record = &kept.records[0];
        assert!(record.evidence.is_empty());
        assert_eq!(record.recorded_by, "");
        assert_eq!(
            (
                record.requirement.clone(),
                record.version,
                record.completed_at,
                record.expires_at
            ),
            (
                full.requirement,
                full.version,
                full.completed_at,
                full.expires_at
            )
        );
    }

    #[test]
    fn only_storage_ids_are_kept() {
        let cache = live(10);
        let t = cache.ticket().unwrap();
        for odd in ["s1", "", &"g".repeat(64), &id(1)[1..]] {
            cache.keep_session(odd, &session(), None, at(0), t);
            assert!(cache.session(odd, at(1)).is_none(), "{odd:?}");
        }
        assert_eq!(cache.len(), (0, 0));
        cache.keep_session(&id(1).to_uppercase(), &session(), None, at(0), t);
        assert!(cache.session(&id(1), at(1)).is_some(), "the same 32 bytes");
    }
}
