//! An in-process store for `clearance demo` and unit tests; same contract as the Redis store.

use super::{
    AuditChain, DenialLog, EndedSessions, FollowUpStore, Health, Outbox, OutboxBatch, RecordStore,
    SessionOwner, SessionStore, SessionsOf, Standing, StoreError, audit_event,
};
use crate::domain::audit::{AuditEvent, ChainHead, ChainId, seal};
use crate::domain::notify::Message;
use crate::domain::{
    Action, Case, Decline, DenialEvent, Exemption, HistoryEntry, Person, Principal, Record,
    RequirementId, Revocation, SubjectKey,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Inner {
    current: HashMap<SubjectKey, BTreeMap<String, Record>>,
    history: HashMap<SubjectKey, Vec<HistoryEntry>>,
    idempotency: HashSet<(SubjectKey, String)>,
    profiles: HashMap<SubjectKey, Principal>,
    warned: HashMap<(SubjectKey, String), Instant>,
    statements: HashMap<String, (SubjectKey, RequirementId)>,
    sessions: HashMap<String, (String, Instant)>,
    /// Whose each session is (sessions stored with an owner).
    session_owners: HashMap<String, SessionOwner>,
    logins: HashMap<String, (String, Instant)>,
    denials: VecDeque<(String, DenialEvent)>,
    /// The denial ids in `denials`, so that an event is appended once.
    denial_ids: std::collections::HashSet<String>,
    /// The denial ids counted into cases (this store lives as long as a demo or a test).
    counted: std::collections::HashSet<String>,
    next_denial: u64,
    /// The audit chains by id: entries and head.
    audit: BTreeMap<ChainId, (Vec<String>, ChainHead)>,
    directory: BTreeMap<SubjectKey, Person>,
    exemptions: BTreeMap<String, Exemption>,
    cases: HashMap<SubjectKey, Vec<Case>>,
    actions: HashMap<SubjectKey, Vec<Action>>,
    first_access: HashMap<SubjectKey, chrono::DateTime<chrono::Utc>>,
    tokens_ended: HashMap<SubjectKey, chrono::DateTime<chrono::Utc>>,
    outbox: OutboxState,
}

/// The notification outbox, as the Redis keys `Pnotify:*` hold it.
#[derive(Default)]
struct OutboxState {
    dirty: BTreeMap<SubjectKey, DateTime<Utc>>,
    sent: HashMap<String, DateTime<Utc>>,
    messages: HashMap<String, Message>,
    /// Message id -> due (or lease end).
    queue: HashMap<String, DateTime<Utc>>,
    dead: Vec<Message>,
    /// Name -> (holder's token, held until).
    once: HashMap<String, (String, Instant)>,
}

impl Inner {
    /// Seals and appends an audit event; called under the lock, with the change, so that both
    /// happen or neither.
    fn audit(&mut self, key: &[u8], event: &AuditEvent) -> Result<(), StoreError> {
        let chain = self.audit.entry(ChainId::of(event)).or_default();
        let (line, head) =
            seal(key, &chain.1, event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        chain.0.push(line);
        chain.1 = head;
        Ok(())
    }
}

/// The audit key of a store made without one (demo, unit tests).
const DEFAULT_AUDIT_KEY: &[u8] = b"clearance-memory-store-audit-key";

/// Keeps everything in memory; nothing survives a restart.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_denials: usize,
    audit_key: Vec<u8>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl MemoryStore {
    pub fn new(max_denials: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_denials: max_denials.max(1),
            audit_key: DEFAULT_AUDIT_KEY.to_vec(),
        }
    }

    /// Seals the audit chain under `key` instead of the built-in one.
    pub fn with_audit_key(mut self, key: Vec<u8>) -> Self {
        self.audit_key = key;
        self
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

fn put_record(inner: &mut Inner, key: &[u8], record: &Record) -> Result<(), StoreError> {
    inner.audit(key, &audit_event::recorded(record))?;
    inner
        .current
        .entry(record.subject.clone())
        .or_default()
        .insert(record.requirement.0.clone(), record.clone());
    inner
        .history
        .entry(record.subject.clone())
        .or_default()
        .push(HistoryEntry::Recorded(record.clone()));
    Ok(())
}

fn live(entry: Option<&(String, Instant)>) -> Option<String> {
    entry
        .filter(|(_, until)| *until > Instant::now())
        .map(|(v, _)| v.clone())
}

#[async_trait]
impl RecordStore for MemoryStore {
    async fn records(&self, subject: &SubjectKey) -> Result<Vec<Record>, StoreError> {
        Ok(self
            .lock()?
            .current
            .get(subject)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn put_record(&self, record: &Record) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        put_record(&mut inner, &self.audit_key, record)
    }

    async fn put_record_once(
        &self,
        record: &Record,
        idempotency_key: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let key = (record.subject.clone(), idempotency_key.to_owned());
        if inner.idempotency.contains(&key) {
            return Ok(false);
        }
        put_record(&mut inner, &self.audit_key, record)?;
        inner.idempotency.insert(key);
        Ok(true)
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        if !inner
            .current
            .get(&revocation.subject)
            .is_some_and(|m| m.contains_key(revocation.requirement.as_str()))
        {
            return Ok(false);
        }
        inner.audit(&self.audit_key, &audit_event::revoked(revocation))?;
        if let Some(current) = inner
            .current
            .get_mut(&revocation.subject)
            .and_then(|m| m.get_mut(revocation.requirement.as_str()))
        {
            current.revoked_at = Some(revocation.revoked_at);
        }
        inner
            .history
            .entry(revocation.subject.clone())
            .or_default()
            .push(HistoryEntry::Revoked(revocation.clone()));
        Ok(true)
    }

    async fn record_decline(&self, decline: &Decline) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.audit(&self.audit_key, &audit_event::declined(decline))?;
        inner
            .history
            .entry(decline.subject.clone())
            .or_default()
            .push(HistoryEntry::Declined(decline.clone()));
        Ok(())
    }

    async fn history(&self, subject: &SubjectKey) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .lock()?
            .history
            .get(subject)
            .cloned()
            .unwrap_or_default())
    }

    async fn warnings_acknowledged(
        &self,
        subject: &SubjectKey,
        requirements: &[RequirementId],
    ) -> Result<Vec<bool>, StoreError> {
        let inner = self.lock()?;
        let now = Instant::now();
        Ok(requirements
            .iter()
            .map(|r| {
                inner
                    .warned
                    .get(&(subject.clone(), r.0.clone()))
                    .is_some_and(|until| *until > now)
            })
            .collect())
    }

    async fn acknowledge_warning(
        &self,
        subject: &SubjectKey,
        requirement: &RequirementId,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.lock()?.warned.insert(
            (subject.clone(), requirement.0.clone()),
            Instant::now() + ttl,
        );
        Ok(())
    }

    async fn subjects(&self) -> Result<Vec<SubjectKey>, StoreError> {
        let inner = self.lock()?;
        let mut all: Vec<SubjectKey> = inner
            .current
            .keys()
            .chain(inner.profiles.keys())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        Ok(all)
    }

    async fn put_profile(&self, principal: &Principal) -> Result<(), StoreError> {
        self.lock()?
            .profiles
            .insert(principal.subject.clone(), principal.clone());
        Ok(())
    }

    async fn profile(&self, subject: &SubjectKey) -> Result<Option<Principal>, StoreError> {
        Ok(self.lock()?.profiles.get(subject).cloned())
    }

    async fn put_statement_target(
        &self,
        statement_id: &str,
        subject: &SubjectKey,
        requirement: &RequirementId,
    ) -> Result<(), StoreError> {
        self.lock()?
            .statements
            .entry(statement_id.to_owned())
            .or_insert_with(|| (subject.clone(), requirement.clone()));
        Ok(())
    }

    async fn statement_target(
        &self,
        statement_id: &str,
    ) -> Result<Option<(SubjectKey, RequirementId)>, StoreError> {
        Ok(self.lock()?.statements.get(statement_id).cloned())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put_session(
        &self,
        id: &str,
        value: &str,
        ttl: Duration,
        owner: Option<&SessionOwner>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        inner.sessions.retain(|_, (_, until)| *until > now);
        let Inner {
            sessions,
            session_owners,
            ..
        } = &mut *inner;
        session_owners.retain(|id, _| sessions.contains_key(id));
        sessions.insert(id.to_owned(), (value.to_owned(), now + ttl));
        if let Some(owner) = owner {
            session_owners.insert(id.to_owned(), owner.clone());
        }
        Ok(())
    }

    async fn use_once(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        inner.logins.retain(|_, (_, until)| *until > now);
        let key = format!("once:{name}");
        if inner.logins.contains_key(&key) {
            return Ok(false);
        }
        inner.logins.insert(key, (String::new(), now + ttl));
        Ok(true)
    }

    async fn end_sessions(&self, which: &SessionsOf) -> Result<EndedSessions, StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        let ids: Vec<(String, SubjectKey)> = inner
            .session_owners
            .iter()
            .filter(|(_, owner)| match which {
                SessionsOf::Subject(s) => &owner.subject == s,
                SessionsOf::ProviderSubject(sub) => &owner.provider_sub == sub,
                SessionsOf::ProviderSession(sid) => owner.provider_sid.as_ref() == Some(sid),
            })
            .map(|(id, owner)| (id.clone(), owner.subject.clone()))
            .collect();
        let mut ended = EndedSessions::default();
        for (id, subject) in ids {
            inner.session_owners.remove(&id);
            if inner
                .sessions
                .remove(&id)
                .is_some_and(|(_, until)| until > now)
            {
                ended.live += 1;
            }
            if !ended.subjects.contains(&subject) {
                ended.subjects.push(subject);
            }
        }
        if let SessionsOf::Subject(subject) = which
            && !ended.subjects.contains(subject)
        {
            ended.subjects.push(subject.clone());
        }
        Ok(ended)
    }

    async fn end_tokens(
        &self,
        subject: &SubjectKey,
        at: chrono::DateTime<chrono::Utc>,
        _keep: Duration,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let kept = inner.tokens_ended.entry(subject.clone()).or_insert(at);
        *kept = (*kept).max(at);
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(live(self.lock()?.sessions.get(id)))
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        self.lock()?.sessions.remove(id);
        Ok(())
    }

    async fn live_sessions(&self, _now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = Instant::now();
        let count = self
            .lock()?
            .sessions
            .values()
            .filter(|(_, until)| *until > now)
            .count();
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    async fn put_login(&self, state: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        inner.logins.retain(|_, (_, until)| *until > now);
        inner
            .logins
            .insert(state.to_owned(), (value.to_owned(), now + ttl));
        Ok(())
    }

    async fn take_login(&self, state: &str) -> Result<Option<String>, StoreError> {
        Ok(live(self.lock()?.logins.remove(state).as_ref()))
    }
}

#[async_trait]
impl DenialLog for MemoryStore {
    async fn append_denial(&self, event: &DenialEvent) -> Result<Option<String>, StoreError> {
        let mut inner = self.lock()?;
        if !event.denial_id.is_empty() && !inner.denial_ids.insert(event.denial_id.clone()) {
            return Ok(None);
        }
        inner.next_denial += 1;
        let id = format!("{}-{}", event.time.timestamp_millis(), inner.next_denial);
        inner.denials.push_back((id.clone(), event.clone()));
        while inner.denials.len() > self.max_denials {
            if let Some((_, old)) = inner.denials.pop_front() {
                inner.denial_ids.remove(&old.denial_id);
            }
        }
        Ok(Some(id))
    }

    async fn recent_denials(&self, count: usize) -> Result<Vec<(String, DenialEvent)>, StoreError> {
        Ok(self
            .lock()?
            .denials
            .iter()
            .rev()
            .take(count)
            .cloned()
            .collect())
    }

    async fn denials_between(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<(String, DenialEvent)>, StoreError> {
        Ok(self
            .lock()?
            .denials
            .iter()
            .filter(|(_, e)| from.is_none_or(|f| e.time >= f) && to.is_none_or(|t| e.time <= t))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Health for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}

#[async_trait]
impl FollowUpStore for MemoryStore {
    async fn session_and_standing(
        &self,
        session_id: &str,
        subject: &SubjectKey,
    ) -> Result<(Option<Arc<crate::domain::Session>>, Arc<Standing>), StoreError> {
        let session = self.get_session(session_id).await?;
        Ok((
            session.as_deref().map(super::parse_session).transpose()?,
            Arc::new(self.standing(subject).await?),
        ))
    }

    async fn standing(&self, subject: &SubjectKey) -> Result<Standing, StoreError> {
        let inner = self.lock()?;
        Ok(Standing {
            records: inner
                .current
                .get(subject)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            person: inner.directory.get(subject).cloned(),
            exemptions: inner
                .exemptions
                .values()
                .filter(|e| &e.subject == subject)
                .cloned()
                .collect(),
            first_access: inner.first_access.get(subject).copied(),
            tokens_ended: inner.tokens_ended.get(subject).copied(),
        })
    }

    async fn mark_first_access(
        &self,
        subject: &SubjectKey,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        if inner.first_access.contains_key(subject) {
            return Ok(false);
        }
        inner.first_access.insert(subject.clone(), at);
        Ok(true)
    }

    async fn first_access(
        &self,
        subject: &SubjectKey,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        Ok(self.lock()?.first_access.get(subject).copied())
    }

    async fn put_person(&self, person: &Person, actor: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.audit(&self.audit_key, &audit_event::person(person, actor))?;
        inner
            .directory
            .insert(person.subject.clone(), person.clone());
        Ok(())
    }

    async fn person(&self, subject: &SubjectKey) -> Result<Option<Person>, StoreError> {
        Ok(self.lock()?.directory.get(subject).cloned())
    }

    async fn person_by_scim_id(&self, id: &str) -> Result<Option<Person>, StoreError> {
        Ok(self
            .lock()?
            .directory
            .values()
            .find(|p| p.scim_id.as_deref() == Some(id))
            .cloned())
    }

    async fn people(&self) -> Result<Vec<Person>, StoreError> {
        Ok(self.lock()?.directory.values().cloned().collect())
    }

    async fn touch_case(
        &self,
        event: &DenialEvent,
        new_id: &str,
        mark_dirty: bool,
    ) -> Result<Option<Case>, StoreError> {
        let subject = SubjectKey::parse(&event.subject)
            .map_err(|e| StoreError::Corrupt(format!("denial subject: {e}")))?;
        let mut inner = self.lock()?;
        if !event.denial_id.is_empty() && inner.counted.contains(&event.denial_id) {
            let open = inner
                .cases
                .get(&subject)
                .and_then(|cases| cases.iter().find(|c| c.is_open()));
            return Ok(open.cloned());
        }
        if !event.denial_id.is_empty() {
            inner.counted.insert(event.denial_id.clone());
        }
        if mark_dirty {
            inner
                .outbox
                .dirty
                .entry(subject.clone())
                .or_insert(event.time);
        }
        let cases = inner.cases.entry(subject.clone()).or_default();
        let case = match cases.iter_mut().find(|c| c.is_open()) {
            Some(c) => c,
            None => {
                cases.push(Case {
                    id: new_id.to_owned(),
                    subject,
                    opened_at: event.time,
                    last_seen: event.time,
                    count: 0,
                    apps: BTreeMap::new(),
                    missing: BTreeMap::new(),
                    closed_at: None,
                });
                let last = cases.len() - 1;
                &mut cases[last]
            }
        };
        case.count += 1;
        case.last_seen = case.last_seen.max(event.time);
        *case.apps.entry(event.host.clone()).or_default() += 1;
        for m in &event.missing {
            *case.missing.entry(m.requirement.0.clone()).or_default() += 1;
        }
        Ok(Some(case.clone()))
    }

    async fn close_case(
        &self,
        subject: &SubjectKey,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Case>, StoreError> {
        let mut inner = self.lock()?;
        let open = inner
            .cases
            .get_mut(subject)
            .and_then(|cases| cases.iter_mut().find(|c| c.is_open()));
        Ok(open.map(|c| {
            c.closed_at = Some(at);
            c.clone()
        }))
    }

    async fn cases(&self, subject: &SubjectKey) -> Result<Vec<Case>, StoreError> {
        Ok(self.lock()?.cases.get(subject).cloned().unwrap_or_default())
    }

    async fn case_subjects(&self) -> Result<Vec<SubjectKey>, StoreError> {
        let mut out: Vec<SubjectKey> = self.lock()?.cases.keys().cloned().collect();
        out.sort();
        Ok(out)
    }

    async fn add_action(&self, action: &Action) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.audit(&self.audit_key, &audit_event::action(action))?;
        inner
            .actions
            .entry(action.subject.clone())
            .or_default()
            .push(action.clone());
        Ok(())
    }

    async fn actions(&self, subject: &SubjectKey) -> Result<Vec<Action>, StoreError> {
        Ok(self
            .lock()?
            .actions
            .get(subject)
            .cloned()
            .unwrap_or_default())
    }

    async fn put_exemption(
        &self,
        exemption: &Exemption,
        previous: Option<&Exemption>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        if inner.exemptions.get(&exemption.id) != previous {
            return Ok(false);
        }
        inner.audit(&self.audit_key, &audit_event::exemption(exemption, actor))?;
        inner
            .exemptions
            .insert(exemption.id.clone(), exemption.clone());
        Ok(true)
    }

    async fn exemption(&self, id: &str) -> Result<Option<Exemption>, StoreError> {
        Ok(self.lock()?.exemptions.get(id).cloned())
    }

    async fn all_exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        let mut out: Vec<Exemption> = self.lock()?.exemptions.values().cloned().collect();
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.audit(&self.audit_key, event)
    }

    async fn audit_chains(&self) -> Result<Vec<AuditChain>, StoreError> {
        let inner = self.lock()?;
        let mut chains: Vec<AuditChain> = inner
            .audit
            .iter()
            .map(|(id, (lines, head))| AuditChain {
                id: id.clone(),
                lines: lines.clone(),
                head: head.clone(),
            })
            .collect();
        chains.sort_by_key(|c| c.id.name());
        Ok(chains)
    }

    async fn audit_chain(&self, id: &ChainId) -> Result<AuditChain, StoreError> {
        let inner = self.lock()?;
        let (lines, head) = inner.audit.get(id).cloned().unwrap_or_default();
        Ok(AuditChain {
            id: id.clone(),
            lines,
            head,
        })
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn mark_dirty(&self, subject: &SubjectKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock()?
            .outbox
            .dirty
            .entry(subject.clone())
            .or_insert(at);
        Ok(())
    }

    async fn dirty(&self) -> Result<Vec<(SubjectKey, DateTime<Utc>)>, StoreError> {
        let inner = self.lock()?;
        let mut all: Vec<_> = inner
            .outbox
            .dirty
            .iter()
            .map(|(s, t)| (s.clone(), *t))
            .collect();
        all.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        Ok(all)
    }

    async fn last_sent(&self, keys: &[String]) -> Result<Vec<Option<DateTime<Utc>>>, StoreError> {
        let inner = self.lock()?;
        Ok(keys
            .iter()
            .map(|k| inner.outbox.sent.get(k).copied())
            .collect())
    }

    async fn commit(&self, batch: &OutboxBatch) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let o = &mut inner.outbox;
        // Marks are compared at millisecond precision, like the Redis scores.
        let unchanged = batch.marks.iter().all(|(s, t)| {
            o.dirty
                .get(s)
                .is_some_and(|d| d.timestamp_millis() == t.timestamp_millis())
        });
        let allowed = batch.rate.as_ref().is_none_or(|(key, latest)| {
            o.sent
                .get(key)
                .is_none_or(|last| last.timestamp_millis() <= latest.timestamp_millis())
        });
        let guarded = batch.guard.as_ref().is_none_or(|g| {
            o.once
                .get(&g.name)
                .is_some_and(|(token, until)| *token == g.token && *until > Instant::now())
        });
        if !(unchanged && allowed && guarded) {
            return Ok(false);
        }
        if let Some(g) = &batch.guard {
            o.once
                .insert(g.name.clone(), (g.token.clone(), Instant::now() + g.keep));
        }
        for (s, _) in &batch.marks {
            o.dirty.remove(s);
        }
        if let Some((key, _)) = &batch.rate {
            o.sent.insert(key.clone(), batch.now);
        }
        for m in &batch.messages {
            o.messages.insert(m.id.clone(), m.clone());
            o.queue.insert(m.id.clone(), batch.now);
        }
        Ok(true)
    }

    async fn once(&self, name: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        if inner
            .outbox
            .once
            .get(name)
            .is_some_and(|(_, until)| *until > now)
        {
            return Ok(false);
        }
        inner
            .outbox
            .once
            .insert(name.to_owned(), (token.to_owned(), now + ttl));
        Ok(true)
    }

    async fn release_once(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.outbox.once.get(name).is_some_and(|(t, _)| t == token) {
            inner.outbox.once.remove(name);
        }
        Ok(())
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let mut inner = self.lock()?;
        let o = &mut inner.outbox;
        let mut due: Vec<(DateTime<Utc>, String)> = o
            .queue
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, t)| (*t, id.clone()))
            .collect();
        due.sort();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
        let mut out = Vec::new();
        for (_, id) in due.into_iter().take(max) {
            match o.messages.get(&id) {
                Some(m) => {
                    out.push(m.clone());
                    o.queue.insert(id, until);
                }
                None => {
                    o.queue.remove(&id);
                }
            }
        }
        Ok(out)
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.outbox.queue.remove(id);
        inner.outbox.messages.remove(id);
        Ok(())
    }

    async fn retry(&self, message: &Message, next_at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner
            .outbox
            .messages
            .insert(message.id.clone(), message.clone());
        inner.outbox.queue.insert(message.id.clone(), next_at);
        Ok(())
    }

    async fn dead(&self, message: &Message) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.outbox.queue.remove(&message.id);
        inner.outbox.messages.remove(&message.id);
        inner.outbox.dead.push(message.clone());
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<Message>, StoreError> {
        Ok(self.lock()?.outbox.dead.clone())
    }

    async fn queued(&self) -> Result<usize, StoreError> {
        Ok(self.lock()?.outbox.queue.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_denial_is_appended_and_counted_once_by_its_id() {
        let s = MemoryStore::new(10);
        let ann = SubjectKey::parse("ann@example.com").unwrap();
        let mut event =
            DenialEvent::for_principal(&Principal::bare(ann.clone()), Utc::now(), vec![]);
        event.denial_id = "d-1".into();
        assert!(s.append_denial(&event).await.unwrap().is_some());
        assert_eq!(s.append_denial(&event).await.unwrap(), None);
        let once = s.touch_case(&event, "c-1", false).await.unwrap().unwrap();
        let again = s.touch_case(&event, "c-1", false).await.unwrap().unwrap();
        assert_eq!((once.count, again.count), (1, 1));
        event.denial_id = String::new();
        assert!(s.append_denial(&event).await.unwrap().is_some());
        assert!(
            s.append_denial(&event).await.unwrap().is_some(),
            "no id, no dedupe"
        );
        assert_eq!(s.recent_denials(10).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn xapi_statement_target_first_write_wins() {
        let s = MemoryStore::default();
        let alice = SubjectKey::parse("alice@example.com").unwrap();
        let bob = SubjectKey::parse("bob@example.com").unwrap();
        let req = RequirementId("security-awareness".into());
        assert_eq!(s.statement_target("st-1").await.unwrap(), None);
        s.put_statement_target("st-1", &alice, &req).await.unwrap();
        s.put_statement_target("st-1", &bob, &req).await.unwrap();
        assert_eq!(
            s.statement_target("st-1").await.unwrap(),
            Some((alice, req))
        );
    }

    #[tokio::test]
    async fn first_access_is_written_once() {
        let s = MemoryStore::default();
        let a = SubjectKey::parse("a@x").unwrap();
        let t1 = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let t2 = t1 + chrono::Duration::hours(1);
        assert_eq!(s.standing(&a).await.unwrap().first_access, None);
        assert!(s.mark_first_access(&a, t1).await.unwrap());
        assert!(!s.mark_first_access(&a, t2).await.unwrap());
        assert_eq!(s.standing(&a).await.unwrap().first_access, Some(t1));
        assert_eq!(s.first_access(&a).await.unwrap(), Some(t1));
    }

    #[tokio::test]
    async fn login_state_works_once() {
        let s = MemoryStore::default();
        s.put_login("st", "v", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(s.take_login("st").await.unwrap().as_deref(), Some("v"));
        assert_eq!(s.take_login("st").await.unwrap(), None);
    }

    #[tokio::test]
    async fn expired_sessions_are_gone() {
        let s = MemoryStore::default();
        s.put_session("id", "v", Duration::from_millis(1), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(s.get_session("id").await.unwrap(), None);
    }

    fn message(id: &str) -> Message {
        Message {
            id: id.into(),
            kind: crate::domain::notify::MessageKind::Digest,
            recipient: SubjectKey::parse("mona@example.com").unwrap(),
            created_at: Utc::now(),
            body: "{}".into(),
            attempts: 0,
            last_error: None,
            gave_up_at: None,
        }
    }

    #[tokio::test]
    async fn outbox_marks_rate_limits_and_leases() {
        let s = MemoryStore::default();
        let alice = SubjectKey::parse("alice@example.com").unwrap();
        let t0 = Utc::now();
        s.mark_dirty(&alice, t0).await.unwrap();
        s.mark_dirty(&alice, t0 + chrono::Duration::seconds(5))
            .await
            .unwrap();
        let marks = s.dirty().await.unwrap();
        assert_eq!(marks, vec![(alice.clone(), t0)], "the first mark stays");
        let batch = OutboxBatch {
            marks: marks.clone(),
            rate: Some(("mona@example.com".into(), t0)),
            messages: vec![message("m1")],
            now: t0,
            guard: None,
        };
        assert!(s.commit(&batch).await.unwrap());
        assert!(!s.commit(&batch).await.unwrap(), "marks consumed once");
        assert!(s.dirty().await.unwrap().is_empty());
        // Rate-limited: the last send is newer than allowed.
        s.mark_dirty(&alice, t0).await.unwrap();
        let limited = OutboxBatch {
            marks: s.dirty().await.unwrap(),
            rate: Some(("mona@example.com".into(), t0 - chrono::Duration::seconds(1))),
            messages: vec![message("m2")],
            now: t0,
            guard: None,
        };
        assert!(!s.commit(&limited).await.unwrap());
        assert_eq!(s.dirty().await.unwrap().len(), 1, "still dirty");

        let claimed = s.claim_due(t0, Duration::from_secs(30), 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(
            s.claim_due(t0, Duration::from_secs(30), 10)
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        let later = t0 + chrono::Duration::seconds(31);
        assert_eq!(
            s.claim_due(later, Duration::from_secs(30), 10)
                .await
                .unwrap()
                .len(),
            1,
            "the lease ran out"
        );
        s.dead(&claimed[0]).await.unwrap();
        assert_eq!(s.queued().await.unwrap(), 0);
        assert_eq!(s.dead_letters().await.unwrap().len(), 1);
        assert!(
            s.once("daily:x", "a", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            !s.once("daily:x", "b", Duration::from_secs(60))
                .await
                .unwrap()
        );
        s.release_once("daily:x", "b").await.unwrap();
        assert!(
            !s.once("daily:x", "b", Duration::from_secs(60))
                .await
                .unwrap(),
            "only the holder releases"
        );
        s.release_once("daily:x", "a").await.unwrap();
        assert!(
            s.once("daily:x", "b", Duration::from_secs(60))
                .await
                .unwrap()
        );
    }
}
