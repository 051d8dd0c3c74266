//! The notification worker: turns refusals into managers' digests and people's reminders, queues
//! them in the store's outbox, and delivers them to the webhook at least once, with retries.
//!
//! Every tick it (1) builds messages: in `immediate` mode from the dirty marks (people refused
//! since their manager's last digest), at most one digest per manager per `min_interval`; in
//! `daily` mode once a day for every open case, guarded across instances by a `SET NX` per date;
//! then (2) claims due messages (atomically, with a lease) and POSTs them. Building and
//! enqueueing are one atomic step per manager, so several instances never build a digest twice
//! for the same marks, and nothing is lost across restarts or while the receiver is down.

use crate::config::Settings;
use crate::config::followup::{NotifyMode, NotifySettings};
use crate::domain::notify::{
    CaseSummary, Contact, Message, MessageKind, ReportEntry, TodoItem, backoff, digest_payload,
    give_up, reminder_payload, signature, todo_items,
};
use crate::domain::{Directory, SubjectKey};
use crate::http::{AppState, Clock};
use crate::store::{OnceGuard, OutboxBatch, SharedStore, StoreError};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a claimed message is reserved for the instance that claimed it (well beyond the
/// request timeout).
const LEASE: Duration = Duration::from_secs(60);
/// The webhook request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Messages delivered concurrently per round; rounds per tick.
const PER_ROUND: usize = 16;
const ROUNDS: usize = 8;
/// How long the once-a-day guard is kept once the day's messages are queued.
const DAILY_GUARD: Duration = Duration::from_secs(3 * 24 * 3600);
/// How long the once-a-day guard is held while building the day's messages: if this instance
/// dies before queuing them, another one does it after this.
const DAILY_LEASE: Duration = Duration::from_secs(5 * 60);

/// Starts the worker on the current tokio runtime when `[notifications]` is configured. It runs
/// until that runtime stops (the server's).
pub fn spawn(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let mut worker = Notifier::new(
        state.settings().clone(),
        state.store.clone(),
        state.clock.clone(),
    )?;
    worker.live = Some(state.live.clone());
    Some(tokio::spawn(worker.run()))
}

/// One instance's worker.
pub struct Notifier {
    settings: Arc<Settings>,
    /// The settings in force, when they can be reloaded: each tick takes the current policy
    /// from here (`[notifications]` itself needs a restart).
    live: Option<Arc<arc_swap::ArcSwap<Settings>>>,
    notify: NotifySettings,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    /// The last day whose daily digests this instance knows are done.
    daily_done: Option<NaiveDate>,
    /// Marks left pending by the rate limit at the last build, and when the first of them may
    /// go: while the marks are exactly these, there is nothing to build before then.
    held: Option<(Vec<Mark>, DateTime<Utc>)>,
    /// [`DAILY_LEASE`] (shorter in tests).
    daily_lease: Duration,
}

/// A dirty mark: who, and since when.
type Mark = (SubjectKey, DateTime<Utc>);

/// People with news for the same recipient: who answers for them (if anyone) and their marks.
type Group = (Option<SubjectKey>, Vec<Mark>);

/// What a digest or reminder says about one person.
struct Report {
    person: Contact,
    case: CaseSummary,
    missing: Vec<TodoItem>,
}

impl Notifier {
    /// A worker for these settings; `None` when notifications are off (or the HTTP client
    /// cannot be built, which is logged).
    pub fn new(settings: Arc<Settings>, store: SharedStore, clock: Arc<dyn Clock>) -> Option<Self> {
        let notify = settings.followup.notifications.clone()?;
        let client = match reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error.message = %e, "notifications are off: the HTTP client could not be built");
                return None;
            }
        };
        Some(Self {
            settings,
            live: None,
            notify,
            store,
            clock,
            client,
            daily_done: None,
            held: None,
            daily_lease: DAILY_LEASE,
        })
    }

    async fn run(mut self) {
        tracing::info!(
            notify.host = self.notify.url.host_str().unwrap_or(""),
            "notifications are on"
        );
        let mut interval = tokio::time::interval(self.notify.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.tick().await;
        }
    }

    /// One round: build what is due, then deliver what is due.
    pub async fn tick(&mut self) {
        if let Some(live) = &self.live {
            self.settings = live.load_full();
        }
        let now = self.clock.now();
        let built = match self.notify.mode {
            NotifyMode::Immediate { min_interval } => self.build_immediate(now, min_interval).await,
            NotifyMode::Daily { at } => self.build_daily(now, at).await,
        };
        if let Err(e) = built {
            tracing::warn!(error.message = %e, "notifications: digests could not be built now; trying again");
        }
        if let Err(e) = self.deliver_due().await {
            tracing::warn!(error.message = %e, "notifications: the outbox could not be read; trying again");
        }
    }

    /// Immediate mode: one atomic step per manager whose rate limit allows a digest.
    async fn build_immediate(
        &mut self,
        now: DateTime<Utc>,
        min_interval: Duration,
    ) -> Result<(), StoreError> {
        let marks = self.store.dirty().await?;
        if marks.is_empty() {
            return Ok(());
        }
        if let Some((held, until)) = &self.held
            && *held == marks
            && now < *until
        {
            return Ok(());
        }
        self.held = None;
        let read = marks.clone();
        let mut next_allowed: Option<DateTime<Utc>> = None;
        let mut failed = false;
        let subjects: Vec<SubjectKey> = marks.iter().map(|(s, _)| s.clone()).collect();
        let directory = self.directory(&subjects, now).await?;
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for (subject, at) in marks {
            let manager = directory.responsible_for(&subject).cloned();
            let key = match &manager {
                Some(m) => format!("manager:{m}"),
                None => format!("person:{subject}"),
            };
            groups
                .entry(key)
                .or_insert_with(|| (manager, Vec::new()))
                .1
                .push((subject, at));
        }
        let keys: Vec<String> = groups.keys().cloned().collect();
        let sent = self.store.last_sent(&keys).await?;
        let interval = chrono::Duration::from_std(min_interval).unwrap_or_default();
        let latest = now - interval;
        for ((key, (manager, marks)), last) in groups.into_iter().zip(sent) {
            if let Some(last) = last.filter(|l| *l > latest) {
                // Rate-limited: the marks stay until the interval has passed.
                let allowed = last + interval;
                next_allowed = Some(next_allowed.map_or(allowed, |n| n.min(allowed)));
                continue;
            }
            if let Err(e) = self
                .build_group(&key, manager.as_ref(), marks, &directory, latest, now)
                .await
            {
                // Only this group waits: its marks stay, the others go on.
                failed = true;
                tracing::warn!(notify.group = %key, error.message = %e, "notifications: this digest could not be built now; trying again");
            }
        }
        if let Some(until) = next_allowed.filter(|_| !failed) {
            // Everything else was consumed; what is left waits for the rate limit.
            let left: Vec<_> = self.store.dirty().await?;
            if left.iter().all(|m| read.contains(m)) {
                self.held = Some((left, until));
            }
        }
        Ok(())
    }

    /// Builds and enqueues one group's messages, consuming its marks, in one atomic step.
    async fn build_group(
        &self,
        key: &str,
        manager: Option<&SubjectKey>,
        marks: Vec<Mark>,
        directory: &Directory,
        latest: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut reports = Vec::new();
        for (subject, _) in &marks {
            if let Some(r) = self.report(subject, directory, now).await? {
                reports.push(r);
            }
        }
        let messages = self.messages(manager, &reports, directory, now).await?;
        let batch = OutboxBatch {
            rate: (!messages.is_empty()).then(|| (key.to_owned(), latest)),
            marks,
            messages,
            now,
            guard: None,
        };
        let count = batch.messages.len();
        if self.store.commit(&batch).await? {
            if count > 0 {
                tracing::info!(notify.group = %key, notify.messages = count, "notifications queued");
            }
        } else {
            tracing::debug!(notify.group = %key, "news changed meanwhile or another instance sent it; next tick");
        }
        Ok(())
    }

    /// Daily mode: from `at` (UTC) on, once per day across instances, a digest to every
    /// manager with open cases among their reports (and reminders), enqueued in one step.
    async fn build_daily(&mut self, now: DateTime<Utc>, at: NaiveTime) -> Result<(), StoreError> {
        let today = now.date_naive();
        if now.time() < at || self.daily_done == Some(today) {
            return Ok(());
        }
        let name = format!("daily:{today}");
        let token = uuid::Uuid::new_v4().to_string();
        // A short lease while building; the commit that queues the day's messages keeps it for
        // days. If this instance dies in between, another one takes over after the lease.
        if !self.store.once(&name, &token, self.daily_lease).await? {
            self.daily_done = Some(today);
            return Ok(());
        }
        let messages = match self.daily_messages(now).await {
            Ok(m) => m,
            Err(e) => {
                self.release(&name, &token).await;
                return Err(e);
            }
        };
        let count = messages.len();
        let batch = OutboxBatch {
            marks: Vec::new(),
            rate: None,
            messages,
            now,
            guard: Some(OnceGuard {
                name: name.clone(),
                token: token.clone(),
                keep: DAILY_GUARD,
            }),
        };
        match self.store.commit(&batch).await {
            Ok(true) => {
                self.daily_done = Some(today);
                tracing::info!(notify.messages = count, "daily notifications queued");
                Ok(())
            }
            Ok(false) => {
                // The lease ran out while building: whoever holds it now does the day.
                tracing::warn!(
                    "notifications: the daily lease ran out before the digests were queued; another instance sends them"
                );
                Ok(())
            }
            Err(e) => {
                self.release(&name, &token).await;
                Err(e)
            }
        }
    }

    async fn release(&self, name: &str, token: &str) {
        if let Err(e) = self.store.release_once(name, token).await {
            tracing::warn!(error.message = %e, "notifications: the daily guard could not be released");
        }
    }

    async fn daily_messages(&self, now: DateTime<Utc>) -> Result<Vec<Message>, StoreError> {
        let subjects = self.store.case_subjects().await?;
        let directory = self.directory(&subjects, now).await?;
        let mut groups: BTreeMap<Option<SubjectKey>, Vec<Report>> = BTreeMap::new();
        for subject in &subjects {
            match self.report(subject, &directory, now).await {
                Ok(Some(r)) => groups
                    .entry(directory.responsible_for(subject).cloned())
                    .or_default()
                    .push(r),
                Ok(None) => {}
                // One person who cannot be reported on does not cost everyone their digest.
                Err(e) => {
                    tracing::warn!(notify.subject = %subject, error.message = %e, "notifications: left out of today's digests");
                }
            }
        }
        let mut out = Vec::new();
        for (manager, reports) in groups {
            match self
                .messages(manager.as_ref(), &reports, &directory, now)
                .await
            {
                Ok(m) => out.extend(m),
                Err(e) => {
                    let group = manager.as_ref().map_or("", SubjectKey::as_str);
                    tracing::warn!(notify.manager = %group, error.message = %e, "notifications: today's digest to this manager could not be built");
                }
            }
        }
        Ok(out)
    }

    /// The directory with the sign-in claims of `subjects` (for managers named only there).
    async fn directory(
        &self,
        subjects: &[SubjectKey],
        now: DateTime<Utc>,
    ) -> Result<Directory, StoreError> {
        let people = self.store.people().await?;
        let mut profiles = Vec::new();
        for s in subjects {
            if let Some(p) = self.store.profile(s).await? {
                profiles.push(p);
            }
        }
        Ok(Directory::new(people, &profiles, now))
    }

    /// How to address someone: their directory entry, else their last sign-in.
    async fn contact(
        &self,
        subject: &SubjectKey,
        directory: &Directory,
    ) -> Result<Contact, StoreError> {
        if let Some(p) = directory.person(subject)
            && (p.display_name.is_some() || p.email.is_some())
        {
            return Ok(Contact {
                subject: subject.clone(),
                name: p.display_name.clone(),
                email: p.email.clone(),
            });
        }
        let profile = self.store.profile(subject).await?;
        Ok(Contact {
            subject: subject.clone(),
            name: profile.as_ref().and_then(|p| p.name.clone()),
            email: profile.and_then(|p| p.email),
        })
    }

    /// The person's open case and what is left to do; `None` when there is nothing to say
    /// (no open case, or compliant by now).
    async fn report(
        &self,
        subject: &SubjectKey,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, StoreError> {
        let Some(case) = self
            .store
            .cases(subject)
            .await?
            .into_iter()
            .rev()
            .find(|c| c.is_open())
        else {
            return Ok(None);
        };
        let (_, evaluation) = crate::http::followup::evaluate_subject(
            &self.settings,
            self.store.as_ref(),
            subject,
            now,
        )
        .await?;
        let missing = todo_items(
            &self.settings.policy,
            &evaluation,
            self.settings.public_url.as_str(),
        );
        if missing.is_empty() {
            return Ok(None);
        }
        Ok(Some(Report {
            person: self.contact(subject, directory).await?,
            case: CaseSummary::from(&case),
            missing,
        }))
    }

    /// The digest to `manager` (if any) and the reminders, for these reports.
    async fn messages(
        &self,
        manager: Option<&SubjectKey>,
        reports: &[Report],
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<Vec<Message>, StoreError> {
        let mut out = Vec::new();
        if reports.is_empty() {
            return Ok(out);
        }
        let format = self.notify.format;
        if let Some(m) = manager {
            let to = self.contact(m, directory).await?;
            let entries: Vec<ReportEntry> = reports
                .iter()
                .map(|r| ReportEntry {
                    person: r.person.clone(),
                    case: r.case.clone(),
                    missing: r.missing.clone(),
                })
                .collect();
            let manage_url = format!(
                "{}/.clearance/manage",
                self.settings.public_url.as_str().trim_end_matches('/')
            );
            let id = uuid::Uuid::new_v4().to_string();
            let body = digest_payload(format, &id, now, &to, &entries, &manage_url);
            out.push(message(id, MessageKind::Digest, m.clone(), now, &body));
        }
        if self.notify.remind_people {
            for r in reports {
                let id = uuid::Uuid::new_v4().to_string();
                let body = reminder_payload(format, &id, now, &r.person, Some(&r.case), &r.missing);
                out.push(message(
                    id,
                    MessageKind::Reminder,
                    r.person.subject.clone(),
                    now,
                    &body,
                ));
            }
        }
        Ok(out)
    }

    /// Claims and delivers due messages, a few rounds per tick.
    async fn deliver_due(&self) -> Result<(), StoreError> {
        for _ in 0..ROUNDS {
            let claimed = self
                .store
                .claim_due(self.clock.now(), LEASE, PER_ROUND)
                .await?;
            let full = claimed.len() == PER_ROUND;
            let sends = claimed.into_iter().map(|m| async move {
                let result = self.send(&m).await;
                (m, result)
            });
            for (message, result) in futures_util::future::join_all(sends).await {
                self.settle(message, result).await;
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// POSTs one message. `Err` carries why it failed (no URL in it: webhook URLs hold secrets).
    async fn send(&self, m: &Message) -> Result<(), String> {
        let mut request = self
            .client
            .post(self.notify.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Clearance-Delivery", &m.id)
            .header("X-Clearance-Kind", m.kind.as_str());
        if let Some(secret) = &self.notify.secret {
            request = request.header(
                "X-Clearance-Signature",
                signature(secret.as_bytes(), m.body.as_bytes()),
            );
        }
        match request.body(m.body.clone()).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!(
                "the receiver answered HTTP {}",
                r.status().as_u16()
            )),
            Err(e) => Err(e.without_url().to_string()),
        }
    }

    /// Completes, reschedules or gives up on a message after an attempt.
    async fn settle(&self, mut m: Message, result: Result<(), String>) {
        let outcome = match result {
            Ok(()) => {
                tracing::info!(notify.id = %m.id, notify.kind = m.kind.as_str(), notify.recipient = %m.recipient, "notification delivered");
                self.store.complete(&m.id).await
            }
            Err(error) => {
                let now = self.clock.now();
                m.attempts = m.attempts.saturating_add(1);
                m.last_error = Some(error.clone());
                if give_up(m.created_at, now, self.notify.give_up_after) {
                    m.gave_up_at = Some(now);
                    tracing::error!(notify.id = %m.id, notify.kind = m.kind.as_str(), notify.recipient = %m.recipient, notify.attempts = m.attempts, error.message = %error, "notification given up on; kept in the dead list");
                    self.store.dead(&m).await
                } else {
                    let delay = backoff(
                        m.attempts,
                        self.notify.retry_initial,
                        self.notify.retry_max,
                        rand::random::<f64>(),
                    );
                    tracing::warn!(notify.id = %m.id, notify.kind = m.kind.as_str(), notify.attempts = m.attempts, retry.delay_ms = delay.as_millis() as u64, error.message = %error, "notification not delivered; will retry");
                    let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
                    self.store.retry(&m, next).await
                }
            }
        };
        if let Err(e) = outcome {
            // The lease runs out and the message is tried again: at least once.
            tracing::warn!(notify.id = %m.id, error.message = %e, "notification state could not be saved");
        }
    }
}

fn message(
    id: String,
    kind: MessageKind,
    recipient: SubjectKey,
    now: DateTime<Utc>,
    body: &serde_json::Value,
) -> Message {
    Message {
        id,
        kind,
        recipient,
        created_at: now,
        body: body.to_string(),
        attempts: 0,
        last_error: None,
        gave_up_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DenialEvent, Principal, Unmet};
    use crate::store::memory::MemoryStore;
    use crate::store::{FollowUpStore, Outbox, RecordStore};
    use std::sync::Mutex;

    struct Fixed(Mutex<DateTime<Utc>>);
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            self.0.lock().map(|t| *t).unwrap_or_default()
        }
    }

    fn settings(mode: &str) -> Arc<Settings> {
        Arc::new(parse(mode).expect("valid"))
    }

    fn parse(mode: &str) -> Result<Settings, crate::config::ConfigError> {
        let toml = format!(
            r#"
[server]
public_url = "https://gate.example.com"
[oidc]
issuer = "https://login.example.com"
client_id = "clearance"
client_secret = "s"
[session]
cookie_secret = "dGVzdC1jb29raWUtc2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWNsZWFyYW5jZQ=="
[audit]
key = "test-audit-key-0123456789abcdefghijklmnop"
[[requirements]]
id = "security-awareness"
kind = "training"
title = "Security awareness"
version = "2026.1"
url = "https://lms.example.com/s"
[[routes]]
upstream = "http://127.0.0.1:9000"
[notifications]
url = "http://127.0.0.1:9/hook"
{mode}
"#
        );
        crate::config::from_toml_str(&toml)
    }

    #[test]
    fn retry_and_tick_knobs_are_validated() {
        let s = settings("retry_initial_ms = 200\nretry_max_seconds = 2\ntick_ms = 100");
        let n = s.followup.notifications.as_ref().expect("on");
        assert_eq!(n.retry_initial, Duration::from_millis(200));
        assert_eq!(n.retry_max, Duration::from_secs(2));
        assert_eq!(n.tick, Duration::from_millis(100));
        let defaults = settings("");
        let n = defaults.followup.notifications.as_ref().expect("on");
        assert_eq!(n.tick, Duration::from_secs(1));
        assert_eq!(n.retry_initial, Duration::from_secs(10));
        match parse("tick_ms = 0\nretry_max_seconds = 0") {
            Err(crate::config::ConfigError::Invalid(p)) => {
                let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(
                    keys,
                    ["notifications.retry_max_seconds", "notifications.tick_ms"]
                );
            }
            other => panic!("refused with the keys named: {:?}", other.map(|_| ())),
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 5, 4)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }

    /// Alice (manager mona, from her claims) was refused once.
    async fn refused(store: &MemoryStore, settings: &Settings, when: DateTime<Utc>) {
        let mut alice = Principal::bare(SubjectKey::parse("alice@example.com").unwrap());
        alice.manager = Some("mona@example.com".into());
        alice.name = Some("Alice".into());
        store.put_profile(&alice).await.unwrap();
        let req = &settings.policy.requirements[0];
        let mut event = DenialEvent::for_principal(
            &alice,
            when,
            vec![Unmet {
                requirement: req.id.clone(),
                reason: crate::domain::Reason::NeverCompleted,
                enforcement: req.enforcement,
                due: None,
                completed_at: None,
                valid_until: None,
                held_version: None,
                current_version: req.version,
            }],
        );
        event.host = "app.example.com".into();
        store.touch_case(&event, "case-1", false).await.unwrap();
    }

    fn worker(settings: &Arc<Settings>, store: &Arc<MemoryStore>, clock: &Arc<Fixed>) -> Notifier {
        Notifier::new(settings.clone(), store.clone(), clock.clone()).expect("on")
    }

    #[tokio::test]
    async fn daily_digests_go_out_once_a_day_across_instances() {
        let settings = settings("mode = \"daily\"\ndaily_at = \"08:00\"");
        let store = Arc::new(MemoryStore::default());
        refused(&store, &settings, at(7, 0)).await;
        let clock = Arc::new(Fixed(Mutex::new(at(7, 59))));
        let mut one = worker(&settings, &store, &clock);
        let mut two = worker(&settings, &store, &clock);
        one.tick().await;
        assert_eq!(store.queued().await.unwrap(), 0, "not before daily_at");
        *clock.0.lock().unwrap() = at(8, 0);
        one.tick().await;
        two.tick().await;
        one.tick().await;
        // One digest (mona) and one reminder (alice), tried once against a closed port.
        let queued = store
            .claim_due(at(23, 0), Duration::from_secs(1), 10)
            .await
            .unwrap();
        assert_eq!(queued.len(), 2, "{queued:?}");
        let digest = queued
            .iter()
            .find(|m| m.kind == MessageKind::Digest)
            .expect("digest");
        assert_eq!(digest.recipient.as_str(), "mona@example.com");
        assert_eq!(digest.attempts, 1);
        assert!(digest.last_error.is_some());
        let body: serde_json::Value = serde_json::from_str(&digest.body).unwrap();
        assert_eq!(body["reports"][0]["person"]["subject"], "alice@example.com");
        assert_eq!(body["reports"][0]["case"]["apps"]["app.example.com"], 1);
        let reminder = queued
            .iter()
            .find(|m| m.kind == MessageKind::Reminder)
            .expect("reminder");
        let body: serde_json::Value = serde_json::from_str(&reminder.body).unwrap();
        assert_eq!(body["items"][0]["url"], "https://lms.example.com/s");
    }

    #[tokio::test]
    async fn a_crash_after_taking_the_daily_guard_loses_nothing() {
        let settings = settings("mode = \"daily\"\ndaily_at = \"08:00\"");
        let store = Arc::new(MemoryStore::default());
        refused(&store, &settings, at(7, 0)).await;
        let clock = Arc::new(Fixed(Mutex::new(at(8, 0))));
        let lease = Duration::from_millis(50);
        // One instance takes today's guard as build_daily does, then dies before committing.
        assert!(
            store
                .once("daily:2026-05-04", "crashed", lease)
                .await
                .unwrap()
        );
        let mut two = worker(&settings, &store, &clock);
        two.daily_lease = lease;
        let mut probe = worker(&settings, &store, &clock);
        probe.daily_lease = lease;
        // Within the lease: someone else holds the day.
        assert!(
            !store
                .once("daily:2026-05-04", "probe", lease)
                .await
                .unwrap()
        );
        tokio::time::sleep(lease * 2).await;
        // The lease ran out: the other instance sends the day's digests...
        two.tick().await;
        let queued = store.claim_due(at(23, 0), lease, 10).await.unwrap();
        assert_eq!(queued.len(), 2, "{queued:?}");
        // ...and its commit kept the guard for days, past the lease: nobody sends them twice.
        tokio::time::sleep(lease * 2).await;
        probe.tick().await;
        assert!(
            !store
                .once("daily:2026-05-04", "probe", lease)
                .await
                .unwrap()
        );
        assert_eq!(store.queued().await.unwrap(), 2);
        // A commit whose lease ran out writes nothing.
        assert!(store.once("daily:late", "slow", lease).await.unwrap());
        tokio::time::sleep(lease * 2).await;
        let late = OutboxBatch {
            messages: vec![queued[0].clone()],
            now: at(8, 0),
            guard: Some(OnceGuard {
                name: "daily:late".into(),
                token: "slow".into(),
                keep: DAILY_GUARD,
            }),
            ..OutboxBatch::default()
        };
        assert!(!store.commit(&late).await.unwrap());
    }

    #[tokio::test]
    async fn immediate_digests_respect_the_interval_and_give_up_in_the_end() {
        let settings =
            settings("mode = \"immediate\"\nmin_interval_minutes = 30\ngive_up_after_hours = 1");
        let store = Arc::new(MemoryStore::default());
        let alice = SubjectKey::parse("alice@example.com").unwrap();
        refused(&store, &settings, at(9, 0)).await;
        store.mark_dirty(&alice, at(9, 0)).await.unwrap();
        let clock = Arc::new(Fixed(Mutex::new(at(9, 0))));
        let mut w = worker(&settings, &store, &clock);
        w.tick().await;
        assert_eq!(store.queued().await.unwrap(), 2);
        assert!(store.dirty().await.unwrap().is_empty());

        // Refused again 10 minutes later: held back until 9:30.
        *clock.0.lock().unwrap() = at(9, 10);
        store.mark_dirty(&alice, at(9, 10)).await.unwrap();
        w.tick().await;
        assert_eq!(store.dirty().await.unwrap().len(), 1, "rate-limited");
        *clock.0.lock().unwrap() = at(9, 31);
        w.tick().await;
        assert!(store.dirty().await.unwrap().is_empty());

        // The receiver never answers: after give_up_after, every message is dead.
        *clock.0.lock().unwrap() = at(11, 0);
        w.tick().await;
        assert_eq!(store.queued().await.unwrap(), 0);
        let dead = store.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 4, "{dead:?}");
        assert!(dead.iter().all(|m| m.gave_up_at.is_some()));
    }
}
