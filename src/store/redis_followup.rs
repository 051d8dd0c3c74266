//! The Redis implementation of [`FollowUpStore`]: directory, cases, actions, exemptions and the
//! audit chain.
//!
//! Keys (with the configured prefix `P`):
//! - `P{/directory}:people`: hash, subject -> directory entry (JSON); `P{/directory}:scim`: SCIM
//!   id -> subject (changes are sealed into the directory's chain `P{/directory}:audit:*`)
//! - `P{subject}:exemptions`: hash, id -> exemption (JSON); `Pexemptions`: hash, id -> subject
//!   (written before the exemption: an index entry without an exemption is harmless)
//! - `P{subject}:case:open`: id of the open case; `P{subject}:cases`: hash, id -> case (JSON);
//!   `Pcases:subjects`: set of subjects who ever had a case (written before the case)
//! - `P{subject}:actions`: list of actions (JSON), oldest first
//! - `P{subject}:first_access`: RFC 3339 time of the first admission to a gated route (`SET NX`)
//! - `P{subject}:tokens_ended`: RFC 3339 time of the last sign-out everywhere or back-channel
//!   logout: bearer tokens issued at or before it are refused (written by `end_tokens`, with a TTL)

use super::cache::{Invalidation, Ticket};
use super::redis::{Change, Guard, Op, RedisStore, to_json, unavailable};
use super::{AuditChain, FollowUpStore, Outbox, Standing, StoreError, audit_event, parse_session};
use crate::domain::audit::{AuditEvent, ChainHead, ChainId};
use crate::domain::{Action, Case, DenialEvent, Exemption, Person, Record, Session, SubjectKey};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{StreamExt, TryStreamExt};
use redis::AsyncCommands;
use std::sync::Arc;

static TOUCH_CASE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/touch_case.lua")));
static CLOSE_CASE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/close_case.lua")));

/// How many audit chains are read at the same time (verify, export).
const CHAIN_READS_AT_ONCE: usize = 16;

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn parse_all<T: serde::de::DeserializeOwned>(
    what: &str,
    texts: Vec<String>,
) -> Result<Vec<T>, StoreError> {
    texts.iter().map(|t| parse(what, t)).collect()
}

/// Fixed-width UTC time, so that the Lua scripts can compare times as strings.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl RedisStore {
    pub(super) fn directory_key(&self) -> String {
        format!("{}{{/directory}}:people", self.prefix)
    }
    pub(super) fn scim_ids_key(&self) -> String {
        format!("{}{{/directory}}:scim", self.prefix)
    }
    fn exemptions_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{subject}}}:exemptions", self.prefix)
    }
    fn exemption_index_key(&self) -> String {
        format!("{}exemptions", self.prefix)
    }
    fn open_case_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{subject}}}:case:open", self.prefix)
    }
    fn cases_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{subject}}}:cases", self.prefix)
    }
    /// The ids of the denials counted into the subject's cases.
    fn counted_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{subject}}}:cases:counted", self.prefix)
    }
    fn case_subjects_key(&self) -> String {
        format!("{}cases:subjects", self.prefix)
    }
    fn actions_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{subject}}}:actions", self.prefix)
    }
    fn first_access_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{subject}}}:first_access", self.prefix)
    }
    pub(super) fn tokens_ended_key(&self, subject: &SubjectKey) -> String {
        format!("{}{{{subject}}}:tokens_ended", self.prefix)
    }

    /// Adds the reads of a subject's own keys (one slot): records, exemptions, first access,
    /// the end of their tokens.
    fn standing_reads(&self, pipe: &mut redis::Pipeline, subject: &SubjectKey) {
        pipe.hvals(self.records_key(subject))
            .hvals(self.exemptions_key(subject))
            .get(self.first_access_key(subject))
            .get(self.tokens_ended_key(subject));
    }

    /// Reads a subject's standing from Redis (no cache), keeping it in the cache under
    /// `ticket`: one pipeline on one server; on a cluster the directory, in another slot, is
    /// read beside the subject's keys, at the same time.
    async fn read_standing(
        &self,
        subject: &SubjectKey,
        now: DateTime<Utc>,
        ticket: Option<Ticket>,
    ) -> Result<Standing, StoreError> {
        let mut pipe = redis::pipe();
        self.standing_reads(&mut pipe, subject);
        let mut conn = self.conn.clone();
        let (records, exemptions, first_access, tokens_ended, person) = if self.conn.0.is_cluster()
        {
            let mut directory = self.conn.clone();
            let own = pipe
                .query_async::<(Vec<String>, Vec<String>, Option<String>, Option<String>)>(
                    &mut conn,
                );
            let directory_key = self.directory_key();
            let person = directory.hget::<_, _, Option<String>>(&directory_key, subject.as_str());
            let ((records, exemptions, first_access, tokens_ended), person) =
                futures_util::future::try_join(own, person)
                    .await
                    .map_err(unavailable)?;
            (records, exemptions, first_access, tokens_ended, person)
        } else {
            pipe.hget(self.directory_key(), subject.as_str());
            pipe.query_async(&mut conn).await.map_err(unavailable)?
        };
        let standing = standing_from(records, exemptions, first_access, tokens_ended, person)?;
        self.kept_standing(subject, &standing, now, ticket);
        Ok(standing)
    }

    fn kept_standing(
        &self,
        subject: &SubjectKey,
        standing: &Standing,
        now: DateTime<Utc>,
        ticket: Option<Ticket>,
    ) {
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
            cache.keep_standing(subject, standing, now, ticket);
        }
    }
}

fn parse_time(what: &str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A standing from the replies of [`RedisStore::standing_reads`] and the directory's.
fn standing_from(
    records: Vec<String>,
    exemptions: Vec<String>,
    first_access: Option<String>,
    tokens_ended: Option<String>,
    person: Option<String>,
) -> Result<Standing, StoreError> {
    Ok(Standing {
        records: parse_all::<Record>("record", records)?,
        person: person.map(|p| parse("directory entry", &p)).transpose()?,
        exemptions: parse_all("exemption", exemptions)?,
        first_access: first_access
            .map(|t| parse_time("first access", &t))
            .transpose()?,
        tokens_ended: tokens_ended
            .map(|t| parse_time("tokens ended", &t))
            .transpose()?,
    })
}

#[async_trait]
impl FollowUpStore for RedisStore {
    async fn standing(&self, subject: &SubjectKey) -> Result<Standing, StoreError> {
        // Never served from the cache (whose copy has no evidence), but a fresh read is kept.
        let ticket = self.cache.as_ref().and_then(|c| c.ticket());
        self.read_standing(subject, Utc::now(), ticket).await
    }

    async fn decision_standing(&self, subject: &SubjectKey) -> Result<Arc<Standing>, StoreError> {
        let now = Utc::now();
        if let Some(standing) = self.cache.as_ref().and_then(|c| c.standing(subject, now)) {
            return Ok(standing);
        }
        let ticket = self.cache.as_ref().and_then(|c| c.ticket());
        self.read_standing(subject, now, ticket).await.map(Arc::new)
    }

    async fn session_and_standing(
        &self,
        session_id: &str,
        subject: &SubjectKey,
    ) -> Result<(Option<Arc<Session>>, Arc<Standing>), StoreError> {
        let now = Utc::now();
        let cache = self.cache.as_ref();
        let session = cache.and_then(|c| c.session(session_id, now));
        let standing = cache.and_then(|c| c.standing(subject, now));
        let ticket = cache.and_then(|c| c.ticket());
        match (session, standing) {
            (Some(session), Some(standing)) => Ok((Some(session), standing)),
            (Some(session), None) => Ok((
                Some(session),
                Arc::new(self.read_standing(subject, now, ticket).await?),
            )),
            (None, Some(standing)) => {
                Ok((self.read_session(session_id, now, ticket).await?, standing))
            }
            (None, None) if self.conn.0.is_cluster() => {
                let (session, standing) = futures_util::future::try_join(
                    self.read_session(session_id, now, ticket),
                    self.read_standing(subject, now, ticket),
                )
                .await?;
                Ok((session, Arc::new(standing)))
            }
            (None, None) => {
                // One server: session, records, exemptions, first access and directory entry
                // in one pipeline.
                let mut pipe = redis::pipe();
                self.session_reads(&mut pipe, session_id);
                self.standing_reads(&mut pipe, subject);
                pipe.hget(self.directory_key(), subject.as_str());
                let mut conn = self.conn.clone();
                #[allow(clippy::type_complexity)]
                let (session, pttl, records, exemptions, first_access, tokens_ended, person): (
                    Option<String>,
                    i64,
                    Vec<String>,
                    Vec<String>,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                ) = pipe.query_async(&mut conn).await.map_err(unavailable)?;
                let session = session.as_deref().map(parse_session).transpose()?;
                self.kept_session(session_id, session.as_deref(), pttl, now, ticket);
                let standing =
                    standing_from(records, exemptions, first_access, tokens_ended, person)?;
                self.kept_standing(subject, &standing, now, ticket);
                Ok((session, Arc::new(standing)))
            }
        }
    }

    async fn mark_first_access(
        &self,
        subject: &SubjectKey,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let written = conn
            .set_nx(self.first_access_key(subject), stamp(at))
            .await
            .map_err(unavailable)?;
        if let Some(cache) = &self.cache {
            if written {
                cache.note_first_access(subject, at);
            } else {
                // Another instance wrote it first: read it again next time.
                cache.invalidate(&Invalidation::Subject(subject.clone()));
            }
        }
        Ok(written)
    }

    async fn first_access(
        &self,
        subject: &SubjectKey,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn
            .get(self.first_access_key(subject))
            .await
            .map_err(unavailable)?;
        v.map(|t| parse_time("first access", &t)).transpose()
    }

    async fn put_person(&self, person: &Person, actor: &str) -> Result<(), StoreError> {
        let mut ops = vec![Op::HSet(0, person.subject.to_string(), to_json(person)?)];
        if let Some(id) = &person.scim_id {
            ops.push(Op::HSet(1, id.clone(), person.subject.to_string()));
        }
        let change = Change {
            keys: vec![self.directory_key(), self.scim_ids_key()],
            guard: Guard::None,
            ops,
            event: audit_event::person(person, actor),
            subject: Some(person.subject.clone()),
        };
        self.apply(&change).await.map(|_| ())
    }

    async fn person(&self, subject: &SubjectKey) -> Result<Option<Person>, StoreError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn
            .hget(self.directory_key(), subject.as_str())
            .await
            .map_err(unavailable)?;
        v.map(|p| parse("directory entry", &p)).transpose()
    }

    async fn person_by_scim_id(&self, id: &str) -> Result<Option<Person>, StoreError> {
        let mut conn = self.conn.clone();
        let subject: Option<String> = conn
            .hget(self.scim_ids_key(), id)
            .await
            .map_err(unavailable)?;
        match subject.map(|s| SubjectKey::parse(&s)) {
            Some(Ok(s)) => Ok(self
                .person(&s)
                .await?
                .filter(|p| p.scim_id.as_deref() == Some(id))),
            _ => Ok(None),
        }
    }

    async fn people(&self) -> Result<Vec<Person>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<String> = conn
            .hvals(self.directory_key())
            .await
            .map_err(unavailable)?;
        parse_all("directory entry", all)
    }

    async fn touch_case(
        &self,
        event: &DenialEvent,
        new_id: &str,
        mark_dirty: bool,
    ) -> Result<Option<Case>, StoreError> {
        let subject = SubjectKey::parse(&event.subject)
            .map_err(|e| StoreError::Corrupt(format!("denial subject: {e}")))?;
        let mut conn = self.conn.clone();
        // The subject's case keys share a slot; the set of subjects with cases and the dirty
        // marks live elsewhere, so they are written first: a mark or a listed subject without a
        // counted case is harmless (the worker evaluates afresh, a listed subject shows no case).
        if mark_dirty {
            self.mark_dirty(&subject, event.time).await?;
        }
        conn.sadd::<_, _, ()>(self.case_subjects_key(), subject.as_str())
            .await
            .map_err(unavailable)?;
        let mut invocation = TOUCH_CASE.prepare_invoke();
        invocation
            .key(self.open_case_key(&subject))
            .key(self.cases_key(&subject))
            .key(self.counted_key(&subject))
            .arg(new_id)
            .arg(subject.as_str())
            .arg(stamp(event.time))
            .arg(&event.host)
            .arg(&event.denial_id)
            .arg(event.time.timestamp_millis())
            .arg(u64::try_from(super::DENIAL_IDS_KEPT.as_millis()).unwrap_or(u64::MAX));
        for m in &event.missing {
            invocation.arg(m.requirement.as_str());
        }
        let json: String = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if json.is_empty() {
            return Ok(None);
        }
        parse("case", &json).map(Some)
    }

    async fn close_case(
        &self,
        subject: &SubjectKey,
        at: DateTime<Utc>,
    ) -> Result<Option<Case>, StoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = CLOSE_CASE
            .key(self.open_case_key(subject))
            .key(self.cases_key(subject))
            .arg(stamp(at))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        json.map(|j| parse("case", &j)).transpose()
    }

    async fn cases(&self, subject: &SubjectKey) -> Result<Vec<Case>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<String> = conn
            .hvals(self.cases_key(subject))
            .await
            .map_err(unavailable)?;
        let mut cases: Vec<Case> = parse_all("case", all)?;
        cases.sort_by(|a, b| a.opened_at.cmp(&b.opened_at).then(a.id.cmp(&b.id)));
        Ok(cases)
    }

    async fn case_subjects(&self) -> Result<Vec<SubjectKey>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<String> = conn
            .smembers(self.case_subjects_key())
            .await
            .map_err(unavailable)?;
        let mut out: Vec<SubjectKey> = all
            .iter()
            .filter_map(|s| SubjectKey::parse(s).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    async fn add_action(&self, action: &Action) -> Result<(), StoreError> {
        let change = Change {
            keys: vec![self.actions_key(&action.subject)],
            guard: Guard::None,
            ops: vec![Op::RPush(0, to_json(action)?)],
            event: audit_event::action(action),
            subject: None,
        };
        self.apply(&change).await.map(|_| ())
    }

    async fn actions(&self, subject: &SubjectKey) -> Result<Vec<Action>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<String> = conn
            .lrange(self.actions_key(subject), 0, -1)
            .await
            .map_err(unavailable)?;
        parse_all("action", all)
    }

    async fn put_exemption(
        &self,
        exemption: &Exemption,
        previous: Option<&Exemption>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let guard = match previous {
            Some(p) => Guard::Equals {
                key: 0,
                field: p.id.clone(),
                value: to_json(p)?,
            },
            None => Guard::Absent {
                key: 0,
                field: exemption.id.clone(),
            },
        };
        let change = Change {
            keys: vec![self.exemptions_key(&exemption.subject)],
            guard,
            ops: vec![Op::HSet(0, exemption.id.clone(), to_json(exemption)?)],
            event: audit_event::exemption(exemption, actor),
            subject: Some(exemption.subject.clone()),
        };
        // The index lives in another slot: written first (an entry without an exemption is
        // harmless, a lookup then finds nothing).
        let mut conn = self.conn.clone();
        conn.hset::<_, _, _, ()>(
            self.exemption_index_key(),
            &exemption.id,
            exemption.subject.as_str(),
        )
        .await
        .map_err(unavailable)?;
        self.apply(&change).await
    }

    async fn exemption(&self, id: &str) -> Result<Option<Exemption>, StoreError> {
        let mut conn = self.conn.clone();
        let subject: Option<String> = conn
            .hget(self.exemption_index_key(), id)
            .await
            .map_err(unavailable)?;
        let Some(Ok(subject)) = subject.map(|s| SubjectKey::parse(&s)) else {
            return Ok(None);
        };
        let v: Option<String> = conn
            .hget(self.exemptions_key(&subject), id)
            .await
            .map_err(unavailable)?;
        v.map(|e| parse("exemption", &e)).transpose()
    }

    async fn all_exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        let mut conn = self.conn.clone();
        let index: Vec<(String, String)> = conn
            .hgetall(self.exemption_index_key())
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for (id, subject) in index {
            let Ok(subject) = SubjectKey::parse(&subject) else {
                continue;
            };
            let v: Option<String> = conn
                .hget(self.exemptions_key(&subject), &id)
                .await
                .map_err(unavailable)?;
            if let Some(v) = v {
                out.push(parse::<Exemption>("exemption", &v)?);
            }
        }
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let change = Change {
            keys: Vec::new(),
            guard: Guard::None,
            ops: Vec::new(),
            event: event.clone(),
            subject: None,
        };
        self.apply(&change).await.map(|_| ())
    }

    async fn audit_chains(&self) -> Result<Vec<AuditChain>, StoreError> {
        let mut conn = self.conn.clone();
        let names: Vec<String> = conn
            .smembers(self.audit_chains_key())
            .await
            .map_err(unavailable)?;
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            ids.push(ChainId::parse(&name).ok_or_else(|| {
                StoreError::Corrupt(format!("audit chain registry: unknown chain {name:?}"))
            })?);
        }
        ids.sort_by_key(ChainId::name);
        // Many chains (one per person): read a few at a time, in order. The (lazy) reads are
        // collected first, so that the future stays `Send`.
        let reads: Vec<_> = ids.iter().map(|id| self.audit_chain(id)).collect();
        futures_util::stream::iter(reads)
            .buffered(CHAIN_READS_AT_ONCE)
            .try_collect()
            .await
    }

    async fn audit_chain(&self, id: &ChainId) -> Result<AuditChain, StoreError> {
        let mut conn = self.conn.clone();
        // One transaction (the chain's keys share a slot), so that the head belongs to the
        // entries read. The legacy chain no longer grows, and its keys have no common tag.
        let mut pipe = redis::pipe();
        if *id != ChainId::Legacy {
            pipe.atomic();
        }
        let (lines, head): (Vec<String>, Option<String>) = pipe
            .lrange(self.audit_log_key(id), 0, -1)
            .get(self.audit_head_key(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let head = ChainHead::decode(&head.unwrap_or_default())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(AuditChain {
            id: id.clone(),
            lines,
            head,
        })
    }
}
