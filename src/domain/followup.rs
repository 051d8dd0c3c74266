//! Managers' follow-up: denial cases and the actions taken on them, the team-at-a-glance states,
//! new-joiner checklists, repeat offenders and the manager scorecard. All pure.

use super::decision::{Evaluation, Reason, RequirementStatus, Status};
use super::principal::SubjectKey;
use super::requirement::{Enforcement, RequirementId};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The denials of one person, from the first until they are compliant again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub subject: SubjectKey,
    pub opened_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: u64,
    /// Host -> denials there.
    #[serde(default)]
    pub apps: BTreeMap<String, u64>,
    /// Requirement -> denials that named it.
    #[serde(default)]
    pub missing: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

impl Case {
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// What a manager did about a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Reminded,
    Escalated,
    ExemptionRequested,
    DisciplinaryReferral,
    Note,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        Self::Reminded,
        Self::Escalated,
        Self::ExemptionRequested,
        Self::DisciplinaryReferral,
        Self::Note,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reminded => "reminded",
            Self::Escalated => "escalated",
            Self::ExemptionRequested => "exemption_requested",
            Self::DisciplinaryReferral => "disciplinary_referral",
            Self::Note => "note",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Reminded => "Reminded",
            Self::Escalated => "Escalated",
            Self::ExemptionRequested => "Exemption requested",
            Self::DisciplinaryReferral => "Disciplinary referral",
            Self::Note => "Note",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One action on a case: who, when, what, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub case_id: String,
    pub subject: SubjectKey,
    pub kind: ActionKind,
    pub by: String,
    pub at: DateTime<Utc>,
    pub comment: String,
}

/// One cell of "my team at a glance".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Cell {
    Ok,
    DueIn { days: i64 },
    Expired,
    Missing,
}

impl Cell {
    pub fn label(&self) -> String {
        match self {
            Self::Ok => "ok".into(),
            Self::DueIn { days: 0 } => "due today".into(),
            Self::DueIn { days: 1 } => "due in 1 day".into(),
            Self::DueIn { days } => format!("due in {days} days"),
            Self::Expired => "expired".into(),
            Self::Missing => "missing".into(),
        }
    }

    pub fn class(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::DueIn { .. } => "due",
            Self::Expired => "expired",
            Self::Missing => "missing",
        }
    }
}

fn days_until(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (t - now).num_hours().max(0) / 24
}

/// The state of one requirement for the team view: met ones that run out within `due_soon` are
/// "due in N days", as are older versions in their grace period and `warn` items before their date.
pub fn cell(status: &RequirementStatus, now: DateTime<Utc>, due_soon: Duration) -> Cell {
    match &status.status {
        Status::Met { expires_at } => match expires_at {
            Some(t) if *t - now <= due_soon => Cell::DueIn {
                days: days_until(*t, now),
            },
            _ => Cell::Ok,
        },
        Status::InGrace { due } => Cell::DueIn {
            days: days_until(*due, now),
        },
        Status::Unmet { reason } => match (status.enforcement, status.due) {
            (Enforcement::Warn, Some(due)) if due > now => Cell::DueIn {
                days: days_until(due, now),
            },
            _ => match reason {
                Reason::Expired | Reason::OutdatedVersion => Cell::Expired,
                Reason::NeverCompleted | Reason::Revoked => Cell::Missing,
            },
        },
    }
}

/// Whether every applicable requirement is met (or in grace).
pub fn compliant(evaluation: &Evaluation) -> bool {
    evaluation
        .statuses
        .iter()
        .all(|s| !matches!(s.status, Status::Unmet { .. }))
}

/// One line of a new-joiner checklist.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChecklistItem {
    pub requirement: RequirementId,
    pub state: Cell,
    pub completed_at: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// A person's induction checklist: the items in policy order, and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Checklist {
    pub subject: SubjectKey,
    pub start_date: Option<NaiveDate>,
    pub items: Vec<ChecklistItem>,
    /// When the last item was completed, if every item is done.
    pub completed_at: Option<DateTime<Utc>>,
    /// Days from the start date to fully compliant (0 when done before starting).
    pub days_to_compliant: Option<i64>,
}

pub fn checklist(
    subject: &SubjectKey,
    start_date: Option<NaiveDate>,
    evaluation: &Evaluation,
    now: DateTime<Utc>,
    due_soon: Duration,
) -> Checklist {
    let items: Vec<ChecklistItem> = evaluation
        .statuses
        .iter()
        .map(|s| ChecklistItem {
            requirement: s.requirement.clone(),
            state: cell(s, now, due_soon),
            completed_at: s.completed_at,
            valid_until: s.valid_until,
        })
        .collect();
    let completed_at = if compliant(evaluation) {
        items.iter().filter_map(|i| i.completed_at).max()
    } else {
        None
    };
    let days_to_compliant = match (start_date, completed_at) {
        (Some(start), Some(done)) => Some((done.date_naive() - start).num_days().max(0)),
        _ => None,
    };
    Checklist {
        subject: subject.clone(),
        start_date,
        items,
        completed_at,
        days_to_compliant,
    }
}

/// Whether someone had at least `threshold` cases opened in the period ending `now`.
pub fn repeat_offender(
    cases: &[Case],
    threshold: usize,
    period: Duration,
    now: DateTime<Utc>,
) -> bool {
    threshold > 0
        && cases
            .iter()
            .filter(|c| c.opened_at > now - period && c.opened_at <= now)
            .count()
            >= threshold
}

/// What goes into a manager's performance objectives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scorecard {
    pub team_size: usize,
    pub compliant: usize,
    /// `compliant / team_size`, in percent (100 for an empty team).
    pub completion_rate: f64,
    /// Cases opened in the period.
    pub cases: usize,
    /// Of those, cases with at least one action.
    pub cases_acted_on: usize,
    /// Median hours from a case's first denial to the first action on it.
    pub median_hours_to_action: Option<f64>,
}

/// Builds the scorecard from each member's compliance and their cases with actions.
pub fn scorecard(
    members: &[(bool, Vec<Case>, Vec<Action>)],
    period: Duration,
    now: DateTime<Utc>,
) -> Scorecard {
    let team_size = members.len();
    let compliant = members.iter().filter(|m| m.0).count();
    let mut delays = Vec::new();
    let mut cases = 0;
    for (_, member_cases, actions) in members {
        for case in member_cases
            .iter()
            .filter(|c| c.opened_at > now - period && c.opened_at <= now)
        {
            cases += 1;
            if let Some(first) = actions
                .iter()
                .filter(|a| a.case_id == case.id)
                .map(|a| a.at)
                .min()
            {
                delays.push((first - case.opened_at).num_seconds().max(0) as f64 / 3600.0);
            }
        }
    }
    delays.sort_by(f64::total_cmp);
    let median = match delays.len() {
        0 => None,
        n if n % 2 == 1 => Some(delays[n / 2]),
        n => Some((delays[n / 2 - 1] + delays[n / 2]) / 2.0),
    };
    Scorecard {
        team_size,
        compliant,
        completion_rate: if team_size == 0 {
            100.0
        } else {
            compliant as f64 * 100.0 / team_size as f64
        },
        cases,
        cases_acted_on: delays.len(),
        median_hours_to_action: median,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Version;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap() + Duration::hours(h)
    }

    fn s(x: &str) -> SubjectKey {
        SubjectKey::parse(x).unwrap()
    }

    fn case(id: &str, opened: i64) -> Case {
        Case {
            id: id.into(),
            subject: s("a@x"),
            opened_at: t(opened),
            last_seen: t(opened),
            count: 1,
            apps: BTreeMap::new(),
            missing: BTreeMap::new(),
            closed_at: None,
        }
    }

    fn action(case_id: &str, at: i64) -> Action {
        Action {
            id: format!("{case_id}-{at}"),
            case_id: case_id.into(),
            subject: s("a@x"),
            kind: ActionKind::Reminded,
            by: "mgr@x".into(),
            at: t(at),
            comment: String::new(),
        }
    }

    fn status(status: Status, enforcement: Enforcement) -> RequirementStatus {
        RequirementStatus {
            requirement: RequirementId("r".into()),
            enforcement,
            due: Some(t(24 * 3)),
            current_version: Version { major: 1, minor: 0 },
            status,
            held_version: None,
            completed_at: Some(t(-100)),
            valid_until: None,
        }
    }

    #[test]
    fn cells() {
        let soon = Duration::days(30);
        let met = |exp| status(Status::Met { expires_at: exp }, Enforcement::Block);
        assert_eq!(cell(&met(None), t(0), soon), Cell::Ok);
        assert_eq!(
            cell(&met(Some(t(24 * 10 + 1))), t(0), soon),
            Cell::DueIn { days: 10 }
        );
        assert_eq!(cell(&met(Some(t(24 * 40))), t(0), soon), Cell::Ok);
        let unmet = |reason, e| status(Status::Unmet { reason }, e);
        assert_eq!(
            cell(&unmet(Reason::Expired, Enforcement::Block), t(0), soon),
            Cell::Expired
        );
        assert_eq!(
            cell(
                &unmet(Reason::NeverCompleted, Enforcement::Block),
                t(0),
                soon
            ),
            Cell::Missing
        );
        assert_eq!(
            cell(
                &unmet(Reason::NeverCompleted, Enforcement::Warn),
                t(0),
                soon
            ),
            Cell::DueIn { days: 3 }
        );
        assert_eq!(Cell::DueIn { days: 3 }.label(), "due in 3 days");
    }

    #[test]
    fn checklist_counts_days_from_start() {
        let mut a = status(Status::Met { expires_at: None }, Enforcement::Block);
        a.completed_at = Some(t(24 * 5));
        let mut b = a.clone();
        b.completed_at = Some(t(24 * 2));
        let eval = Evaluation {
            statuses: vec![a.clone(), b],
            next_change: None,
        };
        let start = t(0).date_naive();
        let c = checklist(&s("a@x"), Some(start), &eval, t(24 * 6), Duration::days(30));
        assert_eq!(c.days_to_compliant, Some(5));
        assert_eq!(c.completed_at, Some(t(24 * 5)));
        let mut missing = a;
        missing.status = Status::Unmet {
            reason: Reason::NeverCompleted,
        };
        let eval = Evaluation {
            statuses: vec![missing],
            next_change: None,
        };
        let c = checklist(&s("a@x"), Some(start), &eval, t(24 * 6), Duration::days(30));
        assert_eq!(
            (c.days_to_compliant, c.items[0].state.clone()),
            (None, Cell::Missing)
        );
    }

    #[test]
    fn repeat_offenders_within_the_period() {
        let cases = vec![case("1", -24 * 100), case("2", -24 * 10), case("3", -24)];
        assert!(!repeat_offender(&cases, 3, Duration::days(90), t(0)));
        assert!(repeat_offender(&cases, 2, Duration::days(90), t(0)));
        assert!(!repeat_offender(&cases, 0, Duration::days(90), t(0)));
    }

    #[test]
    fn scorecard_for_a_known_history() {
        // Three cases: acted on after 2 h and after 10 h, one never acted on.
        let members = vec![
            (
                true,
                vec![case("c1", 0), case("c2", 24)],
                vec![action("c1", 2), action("c1", 5), action("c2", 34)],
            ),
            (false, vec![case("c3", 48)], vec![]),
            (true, vec![], vec![]),
            (false, vec![], vec![]),
        ];
        let card = scorecard(&members, Duration::days(30), t(72));
        assert_eq!(card.team_size, 4);
        assert_eq!(card.compliant, 2);
        assert_eq!(card.completion_rate, 50.0);
        assert_eq!((card.cases, card.cases_acted_on), (3, 2));
        assert_eq!(card.median_hours_to_action, Some(6.0));
    }
}
