//! Evaluation: the pure function from policy, person, records and time to a decision with reasons.

use super::principal::Principal;
use super::record::Record;
use super::requirement::{Enforcement, Requirement, RequirementId, Version};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a requirement is not met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NeverCompleted,
    Expired,
    OutdatedVersion,
    Revoked,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverCompleted => "never_completed",
            Self::Expired => "expired",
            Self::OutdatedVersion => "outdated_version",
            Self::Revoked => "revoked",
        }
    }

    /// What a person reads on the blocked page.
    pub fn explain(self) -> &'static str {
        match self {
            Self::NeverCompleted => "You have not completed this yet.",
            Self::Expired => "Your completion has expired and must be renewed.",
            Self::OutdatedVersion => "A new version was published; you completed an older one.",
            Self::Revoked => "Your completion was withdrawn.",
        }
    }
}

/// The state of one requirement for one person at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Met {
        expires_at: Option<DateTime<Utc>>,
    },
    /// An older major version is still accepted until `due`.
    InGrace {
        due: DateTime<Utc>,
    },
    Unmet {
        reason: Reason,
    },
}

/// One applicable requirement with its state and the dates that explain it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementStatus {
    pub requirement: RequirementId,
    /// The enforcement in force at the evaluated instant.
    pub enforcement: Enforcement,
    /// For `warn`: when it starts to block.
    pub due: Option<DateTime<Utc>>,
    pub current_version: Version,
    #[serde(flatten)]
    pub status: Status,
    /// The version of the record on file, if any.
    pub held_version: Option<Version>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When the record on file stops (or stopped) being valid.
    pub valid_until: Option<DateTime<Utc>>,
}

/// An unmet requirement, as listed on the blocked page and in the denial log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmet {
    pub requirement: RequirementId,
    pub reason: Reason,
    pub enforcement: Enforcement,
    /// For `warn`: when it starts to block.
    pub due: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub held_version: Option<Version>,
    pub current_version: Version,
}

/// The result of evaluating every applicable requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub statuses: Vec<RequirementStatus>,
    /// The earliest instant at which this evaluation may change by time alone (an expiry or the
    /// end of a grace period). Caches must not keep the decision beyond it.
    pub next_change: Option<DateTime<Utc>>,
}

/// Allow or deny, with everything that is missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow {
        /// Unmet requirements in `warn` or `monitor` mode: the person would have been denied.
        would_deny: Vec<Unmet>,
    },
    Deny {
        missing: Vec<Unmet>,
    },
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}

fn status_of(req: &Requirement, record: Option<&Record>, now: DateTime<Utc>) -> RequirementStatus {
    let mut out = RequirementStatus {
        requirement: req.id.clone(),
        enforcement: req.enforcement_at(now),
        due: match req.enforcement_at(now) {
            Enforcement::Warn => req.enforce_from,
            _ => None,
        },
        current_version: req.version,
        status: Status::Unmet {
            reason: Reason::NeverCompleted,
        },
        held_version: record.map(|r| r.version),
        completed_at: record.map(|r| r.completed_at),
        valid_until: None,
    };
    let Some(record) = record else {
        return out;
    };
    let by_validity = req.validity.map(|v| record.completed_at + v);
    out.valid_until = match (by_validity, record.expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if record.revoked_at.is_some_and(|t| t <= now) {
        out.status = Status::Unmet {
            reason: Reason::Revoked,
        };
        return out;
    }
    if let Some(until) = out.valid_until
        && now >= until
    {
        out.status = Status::Unmet {
            reason: Reason::Expired,
        };
        return out;
    }
    if record.version.major < req.version.major {
        let due = req.version_since.map(|since| since + req.grace);
        out.status = match due {
            Some(due) if now < due => Status::InGrace { due },
            _ => Status::Unmet {
                reason: Reason::OutdatedVersion,
            },
        };
        return out;
    }
    out.status = Status::Met {
        expires_at: out.valid_until,
    };
    out
}

/// Evaluates `requirements` (typically a route's set) for `principal` at `now`.
///
/// Requirements that do not apply to the person are skipped. For each applicable requirement the
/// record on file for it (if any) decides: revoked, then expired (validity or explicit expiry; the
/// instant of expiry itself counts as expired), then an older major version (accepted until the
/// grace period after `version_since` ends), otherwise met.
pub fn evaluate<'a>(
    requirements: impl IntoIterator<Item = &'a Requirement>,
    principal: &Principal,
    records: &[Record],
    now: DateTime<Utc>,
) -> Evaluation {
    let mut statuses = Vec::new();
    let mut next_change: Option<DateTime<Utc>> = None;
    let mut consider = |t: DateTime<Utc>| {
        if t > now {
            next_change = Some(next_change.map_or(t, |n| n.min(t)));
        }
    };
    for req in requirements {
        if !req.applies_to(principal) {
            continue;
        }
        let record = records
            .iter()
            .filter(|r| r.requirement == req.id && r.subject == principal.subject)
            .max_by_key(|r| r.recorded_at);
        let status = status_of(req, record, now);
        match &status.status {
            Status::Met { expires_at } => {
                if let Some(t) = expires_at {
                    consider(*t);
                }
            }
            Status::InGrace { due } => {
                consider(*due);
                if let Some(t) = status.valid_until {
                    consider(t);
                }
            }
            Status::Unmet { .. } => {}
        }
        if let Some(r) = record
            && let Some(t) = r.revoked_at
        {
            consider(t);
        }
        if let Some(due) = status.due {
            consider(due);
        }
        statuses.push(status);
    }
    Evaluation {
        statuses,
        next_change,
    }
}

impl Evaluation {
    /// Every requirement that is not met, whatever its enforcement mode.
    pub fn unmet(&self) -> impl Iterator<Item = (&RequirementStatus, Reason)> {
        self.statuses.iter().filter_map(|s| match s.status {
            Status::Unmet { reason } => Some((s, reason)),
            _ => None,
        })
    }

    /// Turns the evaluation into a decision: deny when any `block` requirement is unmet.
    pub fn decision(&self) -> Decision {
        let to_unmet = |(s, reason): (&RequirementStatus, Reason)| Unmet {
            requirement: s.requirement.clone(),
            reason,
            enforcement: s.enforcement,
            due: s.due,
            completed_at: s.completed_at,
            valid_until: s.valid_until,
            held_version: s.held_version,
            current_version: s.current_version,
        };
        let (blocking, soft): (Vec<_>, Vec<_>) = self
            .unmet()
            .partition(|(s, _)| s.enforcement == Enforcement::Block);
        if blocking.is_empty() {
            Decision::Allow {
                would_deny: soft.into_iter().map(to_unmet).collect(),
            }
        } else {
            Decision::Deny {
                missing: blocking.into_iter().map(to_unmet).collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RequirementKind, Selector, Source, SubjectKey};
    use chrono::{Duration, TimeZone};

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).unwrap()
    }

    fn req(id: &str, version: &str, validity_days: Option<i64>) -> Requirement {
        Requirement {
            id: RequirementId(id.into()),
            kind: RequirementKind::Training,
            title: id.into(),
            description: None,
            version: version.parse().unwrap(),
            version_since: None,
            validity: validity_days.map(Duration::days),
            grace: Duration::zero(),
            url: None,
            applies_to: Selector::default(),
            enforcement: Enforcement::Block,
            enforce_from: None,
            warn_every: Duration::hours(24),
            document: None,
            changes: Vec::new(),
        }
    }

    fn alice() -> Principal {
        let mut p = Principal::bare(SubjectKey::parse("alice@example.com").unwrap());
        p.person_type = Some("employee".into());
        p
    }

    fn record(id: &str, version: &str, completed: DateTime<Utc>) -> Record {
        Record {
            subject: SubjectKey::parse("alice@example.com").unwrap(),
            requirement: RequirementId(id.into()),
            version: version.parse().unwrap(),
            completed_at: completed,
            expires_at: None,
            source: Source::Api,
            evidence: Default::default(),
            recorded_by: "test".into(),
            recorded_at: completed,
            revoked_at: None,
        }
    }

    fn reasons(e: &Evaluation) -> Vec<(String, Reason)> {
        e.unmet()
            .map(|(s, r)| (s.requirement.0.clone(), r))
            .collect()
    }

    #[test]
    fn never_completed() {
        let reqs = [req("a", "1", None)];
        let e = evaluate(&reqs, &alice(), &[], t(1));
        assert_eq!(reasons(&e), vec![("a".into(), Reason::NeverCompleted)]);
        assert!(!e.decision().is_allow());
    }

    #[test]
    fn met_without_validity_never_expires() {
        let reqs = [req("a", "1", None)];
        let e = evaluate(&reqs, &alice(), &[record("a", "1", t(1))], t(31));
        assert!(e.decision().is_allow());
        assert_eq!(e.next_change, None);
    }

    #[test]
    fn validity_boundary_is_exclusive() {
        let reqs = [req("a", "1", Some(10))];
        let recs = [record("a", "1", t(1))];
        let just_before = t(11) - Duration::seconds(1);
        assert!(
            evaluate(&reqs, &alice(), &recs, just_before)
                .decision()
                .is_allow()
        );
        let at = evaluate(&reqs, &alice(), &recs, t(11));
        assert_eq!(reasons(&at), vec![("a".into(), Reason::Expired)]);
        assert_eq!(at.statuses[0].valid_until, Some(t(11)));
        let e = evaluate(&reqs, &alice(), &recs, t(5));
        assert_eq!(e.next_change, Some(t(11)), "cache bound is the expiry");
    }

    #[test]
    fn explicit_expiry_wins_when_earlier() {
        let reqs = [req("a", "1", Some(300))];
        let mut r = record("a", "1", t(1));
        r.expires_at = Some(t(3));
        let e = evaluate(&reqs, &alice(), &[r], t(3));
        assert_eq!(reasons(&e), vec![("a".into(), Reason::Expired)]);
    }

    #[test]
    fn older_major_is_outdated_without_grace() {
        let reqs = [req("a", "2", None)];
        let e = evaluate(&reqs, &alice(), &[record("a", "1.4", t(1))], t(2));
        assert_eq!(reasons(&e), vec![("a".into(), Reason::OutdatedVersion)]);
        let d = e.decision();
        let Decision::Deny { missing } = d else {
            panic!("expected deny")
        };
        assert_eq!(missing[0].held_version, Some("1.4".parse().unwrap()));
        assert_eq!(missing[0].current_version, "2".parse().unwrap());
    }

    #[test]
    fn older_minor_is_still_met() {
        let reqs = [req("a", "2.3", None)];
        let e = evaluate(&reqs, &alice(), &[record("a", "2.0", t(1))], t(2));
        assert!(e.decision().is_allow());
    }

    #[test]
    fn grace_period_boundaries() {
        let mut r = req("a", "2", None);
        r.version_since = Some(t(10));
        r.grace = Duration::days(5);
        let reqs = [r];
        let recs = [record("a", "1", t(1))];
        let inside = evaluate(&reqs, &alice(), &recs, t(15) - Duration::seconds(1));
        assert!(inside.decision().is_allow());
        assert_eq!(inside.statuses[0].status, Status::InGrace { due: t(15) });
        assert_eq!(inside.next_change, Some(t(15)));
        let at_end = evaluate(&reqs, &alice(), &recs, t(15));
        assert_eq!(
            reasons(&at_end),
            vec![("a".into(), Reason::OutdatedVersion)]
        );
    }

    #[test]
    fn expiry_beats_grace() {
        let mut r = req("a", "2", Some(3));
        r.version_since = Some(t(2));
        r.grace = Duration::days(30);
        let e = evaluate(&[r], &alice(), &[record("a", "1", t(1))], t(10));
        assert_eq!(reasons(&e), vec![("a".into(), Reason::Expired)]);
    }

    #[test]
    fn revoked_record() {
        let reqs = [req("a", "1", None)];
        let mut r = record("a", "1", t(1));
        r.revoked_at = Some(t(2));
        let before = evaluate(&reqs, &alice(), std::slice::from_ref(&r), t(1));
        assert!(before.decision().is_allow());
        assert_eq!(before.next_change, Some(t(2)));
        let after = evaluate(&reqs, &alice(), &[r], t(3));
        assert_eq!(reasons(&after), vec![("a".into(), Reason::Revoked)]);
    }

    #[test]
    fn latest_recorded_record_counts() {
        let reqs = [req("a", "1", Some(10))];
        let old = record("a", "1", t(1));
        let mut backdated = record("a", "1", t(1) - Duration::days(400));
        backdated.recorded_at = t(2);
        let e = evaluate(&reqs, &alice(), &[old, backdated], t(3));
        assert_eq!(reasons(&e), vec![("a".into(), Reason::Expired)]);
    }

    #[test]
    fn records_of_other_subjects_are_ignored() {
        let reqs = [req("a", "1", None)];
        let mut r = record("a", "1", t(1));
        r.subject = SubjectKey::parse("bob@example.com").unwrap();
        let e = evaluate(&reqs, &alice(), &[r], t(2));
        assert_eq!(reasons(&e), vec![("a".into(), Reason::NeverCompleted)]);
    }

    #[test]
    fn person_type_selects_requirements() {
        let mut nda = req("nda", "1", None);
        nda.applies_to.person_types = vec!["contractor".into(), "temp".into()];
        let reqs = [nda];
        assert!(evaluate(&reqs, &alice(), &[], t(1)).decision().is_allow());
        let mut carl = alice();
        carl.person_type = Some("contractor".into());
        let mut r = record("nda", "1", t(1));
        r.subject = carl.subject.clone();
        let e = evaluate(&reqs, &carl, &[], t(1));
        assert_eq!(reasons(&e), vec![("nda".into(), Reason::NeverCompleted)]);
        assert!(evaluate(&reqs, &carl, &[r], t(2)).decision().is_allow());
    }

    #[test]
    fn monitor_and_warn_allow_but_report() {
        let mut m = req("m", "1", None);
        m.enforcement = Enforcement::Monitor;
        let mut w = req("w", "1", None);
        w.enforcement = Enforcement::Warn;
        let e = evaluate(&[m, w], &alice(), &[], t(1));
        let Decision::Allow { would_deny } = e.decision() else {
            panic!("expected allow")
        };
        assert_eq!(would_deny.len(), 2);
    }

    #[test]
    fn warn_blocks_from_its_due_date() {
        let mut w = req("w", "1", None);
        w.enforcement = Enforcement::Warn;
        w.enforce_from = Some(t(10));
        let reqs = [w];
        let before = evaluate(&reqs, &alice(), &[], t(10) - Duration::seconds(1));
        let Decision::Allow { would_deny } = before.decision() else {
            panic!("allowed before the due date")
        };
        assert_eq!(would_deny[0].enforcement, Enforcement::Warn);
        assert_eq!(would_deny[0].due, Some(t(10)));
        assert_eq!(
            before.next_change,
            Some(t(10)),
            "cache bound is the due date"
        );
        let after = evaluate(&reqs, &alice(), &[], t(10));
        let Decision::Deny { missing } = after.decision() else {
            panic!("blocked from the due date")
        };
        assert_eq!(missing[0].enforcement, Enforcement::Block);
    }

    #[test]
    fn every_unmet_block_item_is_listed() {
        let reqs = [
            req("a", "1", None),
            req("b", "2", None),
            req("c", "1", Some(1)),
        ];
        let recs = [record("b", "1", t(1)), record("c", "1", t(1))];
        let e = evaluate(&reqs, &alice(), &recs, t(5));
        assert_eq!(
            reasons(&e),
            vec![
                ("a".into(), Reason::NeverCompleted),
                ("b".into(), Reason::OutdatedVersion),
                ("c".into(), Reason::Expired)
            ]
        );
    }
}
