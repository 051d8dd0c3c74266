//! Oversight for managers, admins and auditors: who may see and act on whom, the team view, a
//! person's file (checklist, cases, actions, exemptions), and the writes they may make. Shared by
//! the manager UI and its JSON API; no HTTP here.

use crate::config::Settings;
use crate::config::followup::ManageSettings;
use crate::domain::exemption::{ExemptionRequest, exempt_until};
use crate::domain::followup::{
    Action, ActionKind, Case, Cell, Checklist, Scorecard, cell, checklist, compliant,
    repeat_offender, scorecard,
};
use crate::domain::{
    Decision, Directory, Exemption, ExemptionState, Person, Principal, RequirementId, SubjectKey,
    evaluate,
};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Why an oversight request is refused.
#[derive(Debug, thiserror::Error)]
pub enum OversightError {
    /// Not this viewer's business (another team, a read-only auditor ...).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// Someone else changed it meanwhile.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is looking, and what they may see and do.
#[derive(Clone, Debug, Serialize)]
pub struct Viewer {
    /// How writes are attributed: the person's subject, or `admin-token:<name>`.
    pub actor: String,
    pub person: Option<SubjectKey>,
    pub admin: bool,
    pub auditor: bool,
    /// The people this viewer answers for (direct, and indirect when configured).
    pub reports: BTreeSet<SubjectKey>,
}

impl Viewer {
    /// A signed-in person: admin or auditor by configuration, manager by the directory.
    pub fn person(principal: &Principal, manage: &ManageSettings, directory: &Directory) -> Self {
        let in_groups = |groups: &[String]| principal.groups.iter().any(|g| groups.contains(g));
        Self {
            actor: principal.subject.to_string(),
            person: Some(principal.subject.clone()),
            admin: manage.admins.contains(&principal.subject) || in_groups(&manage.admin_groups),
            auditor: manage.auditors.contains(&principal.subject)
                || in_groups(&manage.auditor_groups),
            reports: directory.reports(&principal.subject, manage.indirect_reports),
        }
    }

    /// A holder of an admin API token.
    pub fn admin_token(name: &str) -> Self {
        Self {
            actor: format!("admin-token:{name}"),
            person: None,
            admin: true,
            auditor: false,
            reports: BTreeSet::new(),
        }
    }

    /// Whether there is anything here for them at all.
    pub fn may_enter(&self) -> bool {
        self.admin || self.auditor || !self.reports.is_empty()
    }

    pub fn can_read(&self, subject: &SubjectKey) -> bool {
        self.admin || self.auditor || self.reports.contains(subject)
    }

    /// Admins act on anyone but themselves; managers on their reports; auditors never.
    pub fn can_act(&self, subject: &SubjectKey) -> bool {
        self.person.as_ref() != Some(subject) && (self.admin || self.reports.contains(subject))
    }

    /// What the page calls them.
    pub fn role(&self) -> &'static str {
        match (self.admin, self.auditor) {
            (true, _) => "admin",
            (false, true) if self.reports.is_empty() => "auditor",
            (false, true) => "auditor and manager",
            _ => "manager",
        }
    }

    /// Everyone they may read, within the known people.
    fn scope<'a>(&'a self, directory: &'a Directory) -> impl Iterator<Item = &'a Person> + 'a {
        directory.people().filter(|p| self.can_read(&p.subject))
    }

    pub fn require_entry(&self) -> Result<(), OversightError> {
        if self.may_enter() {
            Ok(())
        } else {
            Err(OversightError::Forbidden(
                "Nobody reports to you, and you are not an admin or an auditor of Clearance."
                    .into(),
            ))
        }
    }

    pub fn require_read(&self, subject: &SubjectKey) -> Result<(), OversightError> {
        if self.can_read(subject) {
            Ok(())
        } else {
            Err(OversightError::Forbidden(format!(
                "{subject} is not one of your reports."
            )))
        }
    }

    pub fn require_act(&self, subject: &SubjectKey) -> Result<(), OversightError> {
        if self.can_act(subject) {
            return Ok(());
        }
        Err(OversightError::Forbidden(
            if self.person.as_ref() == Some(subject) {
                "You cannot act on your own file.".to_owned()
            } else if self.auditor && !self.admin && self.can_read(subject) {
                "Auditors have read-only access.".to_owned()
            } else {
                format!("{subject} is not one of your reports.")
            },
        ))
    }
}

/// Everyone known from sign-in or records: the costly part of the directory (a key-space scan
/// and one read per profile), kept for a short while so that page views, including refused
/// ones, do not scan Redis each time. A sign-in on this instance clears it; on other instances
/// a new person shows up within the time to live.
pub struct KnownSubjects {
    ttl: std::time::Duration,
    cached: std::sync::Mutex<Option<(std::time::Instant, Arc<Vec<Principal>>)>>,
}

impl KnownSubjects {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            cached: std::sync::Mutex::new(None),
        }
    }

    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cached.lock() {
            *c = None;
        }
    }

    fn fresh(&self) -> Option<Arc<Vec<Principal>>> {
        let c = self.cached.lock().ok()?;
        c.as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, p)| p.clone())
    }

    async fn get(&self, store: &dyn Store) -> Result<Arc<Vec<Principal>>, StoreError> {
        if let Some(p) = self.fresh() {
            return Ok(p);
        }
        let mut profiles = Vec::new();
        for subject in store.subjects().await? {
            // People with records but no sign-in yet are listed by their subject alone.
            let profile = store.profile(&subject).await?;
            profiles.push(profile.unwrap_or_else(|| Principal::bare(subject)));
        }
        let profiles = Arc::new(profiles);
        if let Ok(mut c) = self.cached.lock() {
            *c = Some((std::time::Instant::now(), profiles.clone()));
        }
        Ok(profiles)
    }
}

impl Default for KnownSubjects {
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(30))
    }
}

/// The directory as of `now`: SCIM/CSV entries (read fresh), and for everyone else the claims
/// of their last sign-in, or their subject alone if they only have records.
pub async fn directory(
    store: &dyn Store,
    known: &KnownSubjects,
    now: DateTime<Utc>,
) -> Result<Directory, StoreError> {
    let entries = store.people().await?;
    let profiles = known.get(store).await?;
    // Directory entries win over claims for the people they list.
    Ok(Directory::new(entries, &profiles, now))
}

/// The principal to evaluate a person with: their last sign-in's claims, with the directory's
/// person type (which is authoritative) laid over them.
pub fn principal_for(
    subject: &SubjectKey,
    profile: Option<Principal>,
    person: Option<&Person>,
) -> Principal {
    let mut principal = profile.unwrap_or_else(|| Principal::bare(subject.clone()));
    if let Some(t) = person.and_then(|p| p.user_type.clone()) {
        principal.person_type = Some(t);
    }
    principal
}

/// One requirement column.
#[derive(Clone, Debug, Serialize)]
pub struct Column {
    pub id: RequirementId,
    pub title: String,
}

/// One cell of the team table, `None` where the requirement does not apply to the person.
#[derive(Clone, Debug, Serialize)]
pub struct TeamCell {
    pub requirement: RequirementId,
    #[serde(flatten)]
    pub cell: Option<Cell>,
    pub label: String,
    pub class: &'static str,
}

/// Everything known about one person, as the team view and their file show it.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub subject: SubjectKey,
    pub name: String,
    pub user_type: Option<String>,
    pub department: Option<String>,
    pub active: bool,
    /// Who answers for them (manager or sponsor).
    pub responsible: Option<SubjectKey>,
    pub cells: Vec<TeamCell>,
    pub compliant: bool,
    pub exempt_until: Option<DateTime<Utc>>,
    pub checklist: Checklist,
    pub cases: Vec<Case>,
    pub actions: Vec<Action>,
    pub exemptions: Vec<Exemption>,
    pub open_case: Option<Case>,
    pub cases_in_period: usize,
    pub repeat_offender: bool,
    /// Compliant, and not denied once in the period.
    pub on_time: bool,
    /// Started within the period (by the directory's start date).
    pub new_joiner: bool,
    /// Checklist items done (met or in grace), of `cells` that apply.
    pub items_done: usize,
    pub items_total: usize,
    /// Days since the start date (for new joiners not yet compliant).
    pub days_since_start: Option<i64>,
}

/// Reads and evaluates one person.
pub async fn member(
    settings: &Settings,
    store: &dyn Store,
    directory: &Directory,
    subject: &SubjectKey,
    now: DateTime<Utc>,
) -> Result<Member, StoreError> {
    let manage = &settings.followup.manage;
    let standing = store.standing(subject).await?;
    let profile = store.profile(subject).await?;
    let person = standing
        .person
        .clone()
        .or_else(|| directory.person(subject).cloned());
    let principal = principal_for(subject, profile, person.as_ref());
    let evaluation = evaluate(
        settings.policy.requirements.iter(),
        &principal,
        &standing.records,
        now,
    );
    let cells = settings
        .policy
        .requirements
        .iter()
        .map(|r| {
            let c = evaluation
                .statuses
                .iter()
                .find(|s| s.requirement == r.id)
                .map(|s| cell(s, now, manage.due_soon));
            TeamCell {
                requirement: r.id.clone(),
                label: c.as_ref().map_or_else(|| "n/a".to_owned(), Cell::label),
                class: c.as_ref().map_or("na", Cell::class),
                cell: c,
            }
        })
        .collect();
    let is_compliant = compliant(&evaluation);
    let exempt = match evaluation.decision() {
        Decision::Deny { missing } => exempt_until(&standing.exemptions, &missing, now),
        Decision::Allow { .. } => None,
    };
    let cases = store.cases(subject).await?;
    let actions = store.actions(subject).await?;
    let in_period = cases
        .iter()
        .filter(|c| c.opened_at > now - manage.period && c.opened_at <= now)
        .count();
    let start_date = person.as_ref().and_then(|p| p.start_date);
    Ok(Member {
        subject: subject.clone(),
        name: person
            .as_ref()
            .map_or_else(|| principal.name.clone(), |p| Some(p.label()))
            .unwrap_or_else(|| subject.to_string()),
        user_type: principal.person_type.clone(),
        department: person.as_ref().and_then(|p| p.department.clone()),
        active: person.as_ref().is_none_or(|p| p.active),
        responsible: directory.responsible_for(subject).cloned(),
        cells,
        compliant: is_compliant,
        exempt_until: exempt,
        checklist: checklist(subject, start_date, &evaluation, now, manage.due_soon),
        open_case: cases.iter().rev().find(|c| c.is_open()).cloned(),
        repeat_offender: repeat_offender(&cases, manage.repeat_offender_cases, manage.period, now),
        on_time: is_compliant && in_period == 0,
        new_joiner: start_date.is_some_and(|d| {
            let today = now.date_naive();
            d <= today && today - d <= manage.period
        }),
        items_done: evaluation
            .statuses
            .iter()
            .filter(|s| !matches!(s.status, crate::domain::Status::Unmet { .. }))
            .count(),
        items_total: evaluation.statuses.len(),
        days_since_start: start_date.map(|d| (now.date_naive() - d).num_days()),
        cases_in_period: in_period,
        cases,
        actions,
        exemptions: standing.exemptions,
    })
}

/// One manager's team, for the admins' and auditors' overview and for "good behaviour".
#[derive(Clone, Debug, Serialize)]
pub struct TeamSummary {
    pub manager: SubjectKey,
    pub manager_name: String,
    pub scorecard: Scorecard,
    /// Everyone compliant and nobody denied in the period.
    pub on_time: bool,
}

/// "My team at a glance", or everyone for admins and auditors.
#[derive(Clone, Debug, Serialize)]
pub struct TeamView {
    pub viewer: Viewer,
    pub role: &'static str,
    pub at: DateTime<Utc>,
    pub period_days: i64,
    pub columns: Vec<Column>,
    pub members: Vec<Member>,
    /// The viewer's own scorecard over their reports (managers), or over everyone.
    pub scorecard: Scorecard,
    /// Per manager, for admins and auditors (and a manager's indirect managers).
    pub teams: Vec<TeamSummary>,
}

fn score(members: &[&Member], period: Duration, now: DateTime<Utc>) -> Scorecard {
    let rows: Vec<(bool, Vec<Case>, Vec<Action>)> = members
        .iter()
        .map(|m| (m.compliant, m.cases.clone(), m.actions.clone()))
        .collect();
    scorecard(&rows, period, now)
}

/// Builds the team view for `viewer`.
pub async fn team(
    settings: &Settings,
    store: &dyn Store,
    directory: &Directory,
    viewer: Viewer,
    now: DateTime<Utc>,
) -> Result<TeamView, OversightError> {
    viewer.require_entry()?;
    let manage = &settings.followup.manage;
    let mut members = Vec::new();
    for p in viewer.scope(directory) {
        members.push(member(settings, store, directory, &p.subject, now).await?);
    }
    let all: Vec<&Member> = members.iter().collect();
    let own = score(&all, manage.period, now);
    // Scorecards per manager among the people in view.
    let managers: BTreeSet<SubjectKey> = members
        .iter()
        .filter_map(|m| m.responsible.clone())
        .collect();
    let teams = managers
        .into_iter()
        .map(|manager| {
            let team: Vec<&Member> = members
                .iter()
                .filter(|m| m.responsible.as_ref() == Some(&manager))
                .collect();
            let on_time = team.iter().all(|m| m.on_time);
            TeamSummary {
                manager_name: directory
                    .person(&manager)
                    .map_or_else(|| manager.to_string(), Person::label),
                scorecard: score(&team, manage.period, now),
                on_time,
                manager,
            }
        })
        .collect();
    Ok(TeamView {
        role: viewer.role(),
        viewer,
        at: now,
        period_days: manage.period.num_days(),
        columns: settings
            .policy
            .requirements
            .iter()
            .map(|r| Column {
                id: r.id.clone(),
                title: r.title.clone(),
            })
            .collect(),
        members,
        scorecard: own,
        teams,
    })
}

/// One person's file, if the viewer may read it.
pub async fn person_file(
    settings: &Settings,
    store: &dyn Store,
    directory: &Directory,
    viewer: &Viewer,
    subject: &SubjectKey,
    now: DateTime<Utc>,
) -> Result<Member, OversightError> {
    viewer.require_read(subject)?;
    if directory.person(subject).is_none() {
        return Err(OversightError::NotFound(format!(
            "Nobody called {subject} is known."
        )));
    }
    Ok(member(settings, store, directory, subject, now).await?)
}

/// Records a manager's action on the person's open case (or their latest case).
pub async fn record_action(
    store: &dyn Store,
    viewer: &Viewer,
    subject: &SubjectKey,
    kind: &str,
    comment: &str,
    now: DateTime<Utc>,
) -> Result<Action, OversightError> {
    viewer.require_act(subject)?;
    let kind = ActionKind::parse(kind).ok_or_else(|| {
        OversightError::Invalid(format!(
            "kind: {kind:?} is not one of {}",
            ActionKind::ALL.map(ActionKind::as_str).join(", ")
        ))
    })?;
    let comment = comment.trim();
    if comment.chars().count() > 2000 {
        return Err(OversightError::Invalid(
            "comment: at most 2000 characters".into(),
        ));
    }
    if comment.is_empty() && matches!(kind, ActionKind::Note | ActionKind::DisciplinaryReferral) {
        return Err(OversightError::Invalid(format!(
            "comment: required for {}",
            kind.label().to_lowercase()
        )));
    }
    let cases = store.cases(subject).await?;
    let case = cases
        .iter()
        .rev()
        .find(|c| c.is_open())
        .or_else(|| cases.last())
        .ok_or_else(|| {
            OversightError::NotFound(format!("{subject} has no denial case to act on."))
        })?;
    let action = Action {
        id: uuid::Uuid::new_v4().to_string(),
        case_id: case.id.clone(),
        subject: subject.clone(),
        kind,
        by: viewer.actor.clone(),
        at: now,
        comment: comment.to_owned(),
    };
    store.add_action(&action).await?;
    Ok(action)
}

/// Asking for and granting exemptions takes a named person, so that "not yourself, not your
/// manager, not the one who asked" can be checked: admin API tokens may reject and revoke only.
fn require_named(viewer: &Viewer) -> Result<(), OversightError> {
    if viewer.person.is_some() {
        Ok(())
    } else {
        Err(OversightError::Forbidden(
            "Exemptions are asked for and approved by named people: sign in, or use your own access token, not an admin API token.".into(),
        ))
    }
}

/// What is asked for in an exemption request.
pub struct ExemptionAsk {
    pub requirements: Vec<String>,
    pub hours: i64,
    pub reason: String,
    pub break_glass: bool,
}

/// Files an exemption request for `subject` (or, for admins, a break-glass grant).
pub async fn request_exemption(
    settings: &Settings,
    store: &dyn Store,
    directory: &Directory,
    viewer: &Viewer,
    subject: &SubjectKey,
    ask: ExemptionAsk,
    now: DateTime<Utc>,
) -> Result<Exemption, OversightError> {
    viewer.require_act(subject)?;
    require_named(viewer)?;
    if ask.break_glass && !viewer.admin {
        return Err(OversightError::Forbidden(
            "Only admins can use break-glass.".into(),
        ));
    }
    let mut requirements = Vec::new();
    for r in ask
        .requirements
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        let found = settings.policy.get_str(r).ok_or_else(|| {
            OversightError::Invalid(format!("requirements: unknown requirement {r:?}"))
        })?;
        requirements.push(found.id.clone());
    }
    let request = ExemptionRequest {
        id: uuid::Uuid::new_v4().to_string(),
        subject: subject.clone(),
        requirements,
        reason: ask.reason,
        duration: Duration::try_hours(ask.hours).ok_or_else(|| {
            OversightError::Invalid(format!("hours: {} is out of range", ask.hours))
        })?,
        requested_by: viewer.actor.clone(),
    };
    let limits = settings.followup.exemptions;
    let exemption = if ask.break_glass {
        request.break_glass(directory, limits, now)
    } else {
        request.file(limits, now)
    }
    .map_err(|e| OversightError::Invalid(e.to_string()))?;
    if !store.put_exemption(&exemption, None, &viewer.actor).await? {
        return Err(OversightError::Conflict(
            "An exemption with this id exists already.".into(),
        ));
    }
    note_on_case(store, &exemption, now).await;
    Ok(exemption)
}

/// An exemption asked for (or granted by break-glass) while the person has an open case is an
/// action on that case. The exemption is already stored; a failure here is logged, not returned,
/// so that nobody files it twice.
async fn note_on_case(store: &dyn Store, exemption: &Exemption, now: DateTime<Utc>) {
    let open = match store.cases(&exemption.subject).await {
        Ok(cases) => cases.into_iter().rev().find(Case::is_open),
        Err(e) => {
            tracing::warn!(user.subject = %exemption.subject, error.message = %e, "could not read the case for the exemption");
            return;
        }
    };
    let Some(case) = open else { return };
    let (kind, what) = if exemption.break_glass {
        (ActionKind::Note, "Break-glass exemption granted")
    } else {
        (ActionKind::ExemptionRequested, "Exemption requested")
    };
    let action = Action {
        id: uuid::Uuid::new_v4().to_string(),
        case_id: case.id,
        subject: exemption.subject.clone(),
        kind,
        by: exemption.requested_by.clone(),
        at: now,
        comment: format!(
            "{what} for {} hours (exemption {}): {}",
            exemption.duration_hours, exemption.id, exemption.reason
        ),
    };
    if let Err(e) = store.add_action(&action).await {
        tracing::warn!(user.subject = %exemption.subject, error.message = %e, "could not record the exemption on the case");
    }
}

/// A decision on an exemption: `approve`, `reject` or `revoke`, with an optional comment.
pub struct ExemptionDecision<'a> {
    pub id: &'a str,
    pub decision: &'a str,
    pub comment: Option<String>,
}

/// Approves, rejects or revokes an exemption.
pub async fn decide_exemption(
    settings: &Settings,
    store: &dyn Store,
    directory: &Directory,
    viewer: &Viewer,
    asked: ExemptionDecision<'_>,
    now: DateTime<Utc>,
) -> Result<Exemption, OversightError> {
    let ExemptionDecision {
        id,
        decision,
        comment,
    } = asked;
    let current = store.exemption(id).await?;
    // An exemption the viewer may not read is reported exactly like one that does not exist.
    let current = current
        .filter(|e| viewer.can_read(&e.subject))
        .ok_or_else(|| OversightError::NotFound(format!("There is no exemption {id:?}.")))?;
    viewer.require_act(&current.subject)?;
    if decision == "approve" {
        require_named(viewer)?;
    }
    let comment = comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let limits = settings.followup.exemptions;
    let next = match decision {
        "approve" => current.approve(&viewer.actor, comment, directory, limits, now),
        "reject" => current.reject(&viewer.actor, comment, now),
        "revoke" => current.revoke(&viewer.actor, now),
        other => {
            return Err(OversightError::Invalid(format!(
                "decision: {other:?} is not approve, reject or revoke"
            )));
        }
    }
    .map_err(|e| OversightError::Invalid(e.to_string()))?;
    if !store
        .put_exemption(&next, Some(&current), &viewer.actor)
        .await?
    {
        return Err(OversightError::Conflict(
            "The exemption changed meanwhile; reload and try again.".into(),
        ));
    }
    Ok(next)
}

/// One line of the exemptions and break-glass report.
#[derive(Clone, Debug, Serialize)]
pub struct ExemptionLine {
    #[serde(flatten)]
    pub exemption: Exemption,
    /// Granted and not yet expired.
    pub active: bool,
    /// Whether this viewer may approve, reject or revoke it.
    pub actionable: bool,
}

/// Every exemption and break-glass use the viewer may read, newest first; managers' and
/// admins' own included for those who may read them.
pub async fn exemptions_report(
    store: &dyn Store,
    viewer: &Viewer,
    now: DateTime<Utc>,
) -> Result<Vec<ExemptionLine>, OversightError> {
    viewer.require_entry()?;
    let mut all: Vec<ExemptionLine> = store
        .all_exemptions()
        .await?
        .into_iter()
        .filter(|e| viewer.can_read(&e.subject))
        .map(|e| ExemptionLine {
            active: e.active_at(now),
            actionable: viewer.can_act(&e.subject)
                && matches!(e.state, ExemptionState::Requested | ExemptionState::Granted),
            exemption: e,
        })
        .collect();
    all.sort_by_key(|l| std::cmp::Reverse(l.exemption.requested_at));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DirectorySource;

    fn s(x: &str) -> SubjectKey {
        SubjectKey::parse(x).unwrap()
    }

    fn manage() -> ManageSettings {
        ManageSettings {
            admins: vec![s("root@x")],
            admin_groups: vec!["iam".into()],
            auditors: vec![s("audit@x")],
            auditor_groups: vec![],
            indirect_reports: false,
            due_soon: Duration::days(14),
            repeat_offender_cases: 3,
            period: Duration::days(90),
        }
    }

    fn directory() -> Directory {
        let at = Utc::now();
        let mut people = Vec::new();
        for (who, manager) in [
            ("boss@x", None),
            ("mgr@x", Some("boss@x")),
            ("ann@x", Some("mgr@x")),
        ] {
            let mut p = Person::new(s(who), DirectorySource::Scim, at);
            p.manager = manager.map(str::to_owned);
            people.push(p);
        }
        Directory::new(people, &[], at)
    }

    #[test]
    fn managers_read_and_act_on_their_reports_only() {
        let d = directory();
        let mgr = Viewer::person(&Principal::bare(s("mgr@x")), &manage(), &d);
        assert!(mgr.may_enter());
        assert!(mgr.can_read(&s("ann@x")) && mgr.can_act(&s("ann@x")));
        assert!(!mgr.can_read(&s("boss@x")));
        assert!(!mgr.can_act(&s("mgr@x")), "nobody acts on their own file");
        // Indirect reports only when configured.
        let boss = Viewer::person(&Principal::bare(s("boss@x")), &manage(), &d);
        assert!(!boss.can_read(&s("ann@x")));
        let mut m = manage();
        m.indirect_reports = true;
        let boss = Viewer::person(&Principal::bare(s("boss@x")), &m, &d);
        assert!(boss.can_read(&s("ann@x")));
        let ann = Viewer::person(&Principal::bare(s("ann@x")), &manage(), &d);
        assert!(!ann.may_enter() && ann.require_entry().is_err());
    }

    #[test]
    fn auditors_read_everything_and_write_nothing() {
        let d = directory();
        let auditor = Viewer::person(&Principal::bare(s("audit@x")), &manage(), &d);
        assert_eq!(auditor.role(), "auditor");
        assert!(auditor.can_read(&s("ann@x")) && auditor.can_read(&s("boss@x")));
        assert!(!auditor.can_act(&s("ann@x")));
        let err = auditor.require_act(&s("ann@x")).unwrap_err().to_string();
        assert!(err.contains("read-only"), "{err}");
    }

    #[test]
    fn admins_by_subject_group_or_token() {
        let d = directory();
        let mut p = Principal::bare(s("someone@x"));
        p.groups = vec!["iam".into()];
        let by_group = Viewer::person(&p, &manage(), &d);
        assert!(by_group.admin && by_group.can_act(&s("boss@x")));
        let root = Viewer::person(&Principal::bare(s("root@x")), &manage(), &d);
        assert!(root.admin && !root.can_act(&s("root@x")));
        let token = Viewer::admin_token("ops");
        assert_eq!(token.actor, "admin-token:ops");
        assert!(token.can_act(&s("root@x")));
    }
}
