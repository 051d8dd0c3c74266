//! The directory: who a person is (type, department, start date), whether they are active, and
//! who answers for them (their manager, or for a contractor without one, their sponsor).
//!
//! Entries come from SCIM or CSV; people known only from sign-in contribute their claims
//! (manager claim, person type). Reporting lines are resolved here, purely.

use super::principal::{Principal, SubjectKey};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where a directory entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectorySource {
    Scim,
    Csv,
    /// Only known from the claims of their last sign-in.
    Claims,
}

/// One person in the directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub subject: SubjectKey,
    /// The SCIM `userName` (or CSV `user_name`), as given.
    pub user_name: String,
    /// The resource id Clearance gave it over SCIM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub active: bool,
    /// Employee, contractor, temp ... lowercased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The manager as given: a SCIM id, an external id, or a subject key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// For a contractor or temp without a manager: who plays the manager's part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    pub source: DirectorySource,
    pub updated_at: DateTime<Utc>,
    /// Deleted over SCIM: kept (inactive) so that the person stays denied, but no longer listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Why a directory entry cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error(
        "{subject} is a {user_type} without a manager: name a sponsor, who plays the manager's part"
    )]
    SponsorRequired { subject: String, user_type: String },
    #[error("{0} cannot be their own manager or sponsor")]
    OwnManager(String),
}

impl Person {
    /// A minimal active entry (tests, claims).
    pub fn new(subject: SubjectKey, source: DirectorySource, at: DateTime<Utc>) -> Self {
        Self {
            user_name: subject.to_string(),
            subject,
            scim_id: None,
            external_id: None,
            active: true,
            user_type: None,
            display_name: None,
            email: None,
            manager: None,
            sponsor: None,
            employee_number: None,
            department: None,
            start_date: None,
            source,
            updated_at: at,
            deleted: false,
        }
    }

    /// What sign-in claims say about a person not otherwise in the directory.
    pub fn from_claims(principal: &Principal, at: DateTime<Utc>) -> Self {
        let mut p = Self::new(principal.subject.clone(), DirectorySource::Claims, at);
        p.user_type = principal.person_type.clone();
        p.display_name = principal.name.clone();
        p.email = principal.email.clone();
        p.manager = principal.manager.clone();
        p
    }

    /// Everyone who is not an employee (contractors, temps, ...) must have a manager or a sponsor.
    pub fn check(&self) -> Result<(), DirectoryError> {
        let own = |v: &Option<String>| {
            v.as_deref()
                .and_then(|m| SubjectKey::parse(m).ok())
                .is_some_and(|m| m == self.subject)
        };
        if own(&self.manager) || own(&self.sponsor) {
            return Err(DirectoryError::OwnManager(self.subject.to_string()));
        }
        if let Some(t) = &self.user_type
            && t != "employee"
            && self.manager.is_none()
            && self.sponsor.is_none()
        {
            return Err(DirectoryError::SponsorRequired {
                subject: self.subject.to_string(),
                user_type: t.clone(),
            });
        }
        Ok(())
    }

    pub fn label(&self) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| self.subject.to_string())
    }
}

/// Everyone known, with reporting lines resolved.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    people: BTreeMap<SubjectKey, Person>,
    /// Person -> who answers for them (manager, else sponsor), resolved to a subject.
    responsible: HashMap<SubjectKey, SubjectKey>,
    /// Manager -> direct reports (and sponsored people).
    reports: HashMap<SubjectKey, BTreeSet<SubjectKey>>,
}

impl Directory {
    /// Builds the directory from SCIM/CSV entries and, for people not among them, the claims of
    /// their last sign-in.
    pub fn new(entries: Vec<Person>, profiles: &[Principal], at: DateTime<Utc>) -> Self {
        let mut people: BTreeMap<SubjectKey, Person> = BTreeMap::new();
        for p in profiles {
            people.insert(p.subject.clone(), Person::from_claims(p, at));
        }
        for e in entries {
            people.insert(e.subject.clone(), e);
        }
        let mut by_ref: HashMap<String, SubjectKey> = HashMap::new();
        for p in people.values() {
            for r in [&p.scim_id, &p.external_id].into_iter().flatten() {
                by_ref.insert(r.clone(), p.subject.clone());
            }
        }
        let resolve = |raw: &str| -> Option<SubjectKey> {
            by_ref
                .get(raw)
                .cloned()
                .or_else(|| SubjectKey::parse(raw).ok())
        };
        let mut responsible = HashMap::new();
        let mut reports: HashMap<SubjectKey, BTreeSet<SubjectKey>> = HashMap::new();
        for p in people.values() {
            let who = p
                .manager
                .as_deref()
                .and_then(resolve)
                .or_else(|| p.sponsor.as_deref().and_then(resolve));
            if let Some(m) = who.filter(|m| *m != p.subject) {
                reports
                    .entry(m.clone())
                    .or_default()
                    .insert(p.subject.clone());
                responsible.insert(p.subject.clone(), m);
            }
        }
        Self {
            people,
            responsible,
            reports,
        }
    }

    pub fn person(&self, subject: &SubjectKey) -> Option<&Person> {
        self.people.get(subject)
    }

    /// Everyone listed (deleted entries left out).
    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.people.values().filter(|p| !p.deleted)
    }

    /// Who answers for `subject`: their manager, or their sponsor.
    pub fn responsible_for(&self, subject: &SubjectKey) -> Option<&SubjectKey> {
        self.responsible.get(subject)
    }

    /// Whether anyone reports to `subject`.
    pub fn is_manager(&self, subject: &SubjectKey) -> bool {
        self.reports.get(subject).is_some_and(|r| !r.is_empty())
    }

    /// The people `manager` answers for: direct reports (and sponsored people), plus everyone
    /// below them when `indirect`. Never includes the manager, even with a cycle in the data.
    pub fn reports(&self, manager: &SubjectKey, indirect: bool) -> BTreeSet<SubjectKey> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![manager.clone()];
        while let Some(m) = frontier.pop() {
            for r in self.reports.get(&m).into_iter().flatten() {
                if r != manager && found.insert(r.clone()) && indirect {
                    frontier.push(r.clone());
                }
            }
        }
        found
    }

    /// The managers above `subject`, nearest first (stops at a cycle).
    pub fn chain(&self, subject: &SubjectKey) -> Vec<SubjectKey> {
        let mut chain = Vec::new();
        let mut at = subject;
        while let Some(m) = self.responsible.get(at) {
            if m == subject || chain.contains(m) {
                break;
            }
            chain.push(m.clone());
            at = m;
        }
        chain
    }

    /// Whether `subject` is active (unknown people are: the directory only ever denies).
    pub fn is_active(&self, subject: &SubjectKey) -> bool {
        self.people.get(subject).is_none_or(|p| p.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn s(x: &str) -> SubjectKey {
        SubjectKey::parse(x).unwrap()
    }

    fn person(subject: &str, manager: Option<&str>) -> Person {
        let mut p = Person::new(s(subject), DirectorySource::Scim, at());
        p.manager = manager.map(str::to_owned);
        p
    }

    #[test]
    fn reports_direct_and_indirect_with_ids_resolved() {
        let mut boss = person("boss@x", None);
        boss.scim_id = Some("id-boss".into());
        let dir = Directory::new(
            vec![
                boss,
                person("mgr@x", Some("id-boss")),
                person("a@x", Some("mgr@x")),
                person("b@x", Some("MGR@x")),
            ],
            &[],
            at(),
        );
        assert_eq!(
            dir.reports(&s("mgr@x"), false),
            [s("a@x"), s("b@x")].into_iter().collect()
        );
        assert_eq!(dir.reports(&s("boss@x"), false).len(), 1);
        assert_eq!(dir.reports(&s("boss@x"), true).len(), 3);
        assert_eq!(dir.chain(&s("a@x")), vec![s("mgr@x"), s("boss@x")]);
        assert!(dir.is_manager(&s("mgr@x")) && !dir.is_manager(&s("a@x")));
    }

    #[test]
    fn cycles_do_not_loop() {
        let dir = Directory::new(
            vec![person("a@x", Some("b@x")), person("b@x", Some("a@x"))],
            &[],
            at(),
        );
        assert_eq!(dir.reports(&s("a@x"), true), [s("b@x")].into());
        assert_eq!(dir.chain(&s("a@x")), vec![s("b@x")]);
    }

    #[test]
    fn sponsors_stand_in_for_managers_and_contractors_need_one() {
        let mut c = person("c@x", None);
        c.user_type = Some("contractor".into());
        assert!(matches!(
            c.check(),
            Err(DirectoryError::SponsorRequired { .. })
        ));
        c.sponsor = Some("sponsor@x".into());
        assert!(c.check().is_ok());
        let dir = Directory::new(vec![c], &[], at());
        assert_eq!(dir.responsible_for(&s("c@x")), Some(&s("sponsor@x")));
        assert!(dir.reports(&s("sponsor@x"), false).contains(&s("c@x")));
        let mut e = person("e@x", Some("e@x"));
        e.user_type = Some("employee".into());
        assert!(matches!(e.check(), Err(DirectoryError::OwnManager(_))));
    }

    #[test]
    fn claims_fill_in_and_entries_win() {
        let mut p = Principal::bare(s("a@x"));
        p.manager = Some("claim-mgr@x".into());
        let mut q = Principal::bare(s("b@x"));
        q.manager = Some("claim-mgr@x".into());
        let dir = Directory::new(vec![person("b@x", Some("scim-mgr@x"))], &[p, q], at());
        assert_eq!(dir.reports(&s("claim-mgr@x"), false), [s("a@x")].into());
        assert_eq!(dir.reports(&s("scim-mgr@x"), false), [s("b@x")].into());
        let mut gone = person("g@x", None);
        gone.active = false;
        let dir = Directory::new(vec![gone], &[], at());
        assert!(!dir.is_active(&s("g@x")) && dir.is_active(&s("nobody@x")));
    }
}
