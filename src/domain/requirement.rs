//! Requirements (training, agreement, policy), their versions, who they apply to, and the policy that holds them.

use super::principal::Principal;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Identifier of a requirement, e.g. `security-awareness`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequirementId(pub String);

impl RequirementId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequirementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of precondition a requirement is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementKind {
    Training,
    Agreement,
    Policy,
}

impl RequirementKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Training => "training",
            Self::Agreement => "agreement",
            Self::Policy => "policy",
        }
    }

    /// What the person has to do, as a button or link text.
    pub fn action(self) -> &'static str {
        match self {
            Self::Training => "Take the training",
            Self::Agreement => "Sign the agreement",
            Self::Policy => "Read and accept the policy",
        }
    }
}

/// What happens when a requirement is not met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Refuse access (the default).
    #[default]
    Block,
    /// Until `enforce_from`: let the person through after an interstitial that shows the due
    /// date (once per period), and log a would-deny entry. From `enforce_from` on: block.
    Warn,
    /// Let the person through and only log that they would have been denied.
    Monitor,
}

/// A `major.minor` version. A new major version requires re-completion (after the grace period);
/// a new minor version does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version must look like `3` or `3.1` (major[.minor], non-negative integers), got {0:?}")]
pub struct VersionError(pub String);

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError(s.to_owned());
        let trimmed = s.trim().trim_start_matches(['v', 'V']);
        let mut parts = trimmed.split('.');
        let major = parts
            .next()
            .ok_or_else(bad)?
            .parse::<u32>()
            .map_err(|_| bad())?;
        let minor = match parts.next() {
            Some(p) => p.parse::<u32>().map_err(|_| bad())?,
            None => 0,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self { major, minor })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u32),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Raw::Number(n) => Ok(Version { major: n, minor: 0 }),
        }
    }
}

/// Who a requirement applies to. Empty lists mean "anyone"; both lists must match when both are set.
///
/// A person whose type is unknown (no claim at sign-in, no directory entry) is selected by a
/// `person_types` list whatever it names: unknown means held to every requirement any person
/// type has (fail closed). `untyped_escape` (the `oidc.unknown_person_type = "untyped"`
/// setting, off by default) relaxes that for a deployment that has decided so.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The person must be in at least one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The person's type (employee, contractor, temp ...) must be one of these (case-insensitive).
    #[serde(default)]
    pub person_types: Vec<String>,
    /// People in any of these groups are never selected.
    #[serde(default)]
    pub except_groups: Vec<String>,
    /// A person of unknown type escapes a `person_types` list (set from configuration, never
    /// written in a requirement).
    #[serde(skip)]
    pub untyped_escape: bool,
}

impl Selector {
    pub fn matches(&self, principal: &Principal) -> bool {
        let in_group = |g: &String| principal.groups.iter().any(|pg| pg == g);
        if self.except_groups.iter().any(in_group) {
            return false;
        }
        if !self.groups.is_empty() && !self.groups.iter().any(in_group) {
            return false;
        }
        if !self.person_types.is_empty() {
            match principal.person_type.as_deref().filter(|t| !t.is_empty()) {
                // Unknown type: held to it, unless the deployment relaxed that.
                None => return !self.untyped_escape,
                Some(kind) => {
                    if !self
                        .person_types
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(kind))
                    {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// One precondition for access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub id: RequirementId,
    pub kind: RequirementKind,
    pub title: String,
    pub description: Option<String>,
    /// The current version.
    pub version: Version,
    /// When the current version took effect; the grace period counts from here.
    pub version_since: Option<DateTime<Utc>>,
    /// How long a completion stays valid; `None` means forever.
    #[serde(skip)]
    pub validity: Option<Duration>,
    /// How long an older major version stays acceptable after `version_since`.
    #[serde(skip)]
    pub grace: Duration,
    /// Where the person can satisfy the requirement.
    pub url: Option<String>,
    pub applies_to: Selector,
    pub enforcement: Enforcement,
    /// For `warn`: the due date from which an unmet requirement blocks.
    pub enforce_from: Option<DateTime<Utc>>,
    /// For `warn`: how long an acknowledged interstitial stays acknowledged.
    #[serde(skip)]
    pub warn_every: Duration,
    /// The document people read and accept on Clearance's own page (agreements, policies).
    pub document: Option<Document>,
    /// What changed in each version, newest first, shown to people who accepted an older one.
    pub changes: Vec<(Version, String)>,
}

/// A document to accept, with the SHA-256 of exactly what is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Document {
    /// The text shown on the page; for a URL document it is fetched at run time instead.
    #[serde(skip)]
    pub text: String,
    /// Where it came from (a file path or a URL), for people and logs.
    pub origin: String,
    /// `Some(url)` when the text is fetched from a URL and must hash to `sha256`.
    pub url: Option<String>,
    /// Hex SHA-256 of the text.
    pub sha256: String,
}

impl Requirement {
    pub fn applies_to(&self, principal: &Principal) -> bool {
        self.applies_to.matches(principal)
    }

    /// The enforcement in force at `now`: `warn` turns into `block` at `enforce_from`.
    pub fn enforcement_at(&self, now: DateTime<Utc>) -> Enforcement {
        match (self.enforcement, self.enforce_from) {
            (Enforcement::Warn, Some(due)) if now >= due => Enforcement::Block,
            (e, _) => e,
        }
    }

    pub fn validity_days(&self) -> Option<i64> {
        self.validity.map(|d| d.num_days())
    }
}

/// All declared requirements, in declaration order.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub requirements: Vec<Requirement>,
}

impl Policy {
    pub fn get(&self, id: &RequirementId) -> Option<&Requirement> {
        self.requirements.iter().find(|r| &r.id == id)
    }

    pub fn get_str(&self, id: &str) -> Option<&Requirement> {
        self.requirements.iter().find(|r| r.id.as_str() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SubjectKey;

    fn person(groups: &[&str], kind: Option<&str>) -> Principal {
        let mut p = Principal::bare(SubjectKey::parse("p@example.com").unwrap());
        p.groups = groups.iter().map(|g| g.to_string()).collect();
        p.person_type = kind.map(str::to_owned);
        p
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(
            "3".parse::<Version>().unwrap(),
            Version { major: 3, minor: 0 }
        );
        assert_eq!(
            "v2.1".parse::<Version>().unwrap(),
            Version { major: 2, minor: 1 }
        );
        assert!("2.1.1".parse::<Version>().is_err());
        assert!("two".parse::<Version>().is_err());
        assert!("".parse::<Version>().is_err());
        assert!("2.1".parse::<Version>().unwrap() > "2".parse::<Version>().unwrap());
    }

    #[test]
    fn empty_selector_matches_everyone() {
        assert!(Selector::default().matches(&person(&[], None)));
    }

    #[test]
    fn person_type_selector_covers_contractors_and_temps() {
        let s = Selector {
            person_types: vec!["contractor".into(), "temp".into()],
            ..Selector::default()
        };
        assert!(s.matches(&person(&[], Some("Contractor"))));
        assert!(s.matches(&person(&[], Some("temp"))));
        assert!(!s.matches(&person(&[], Some("employee"))));
        assert!(
            s.matches(&person(&[], None)),
            "an unknown type is held to every type's requirements"
        );
        assert!(
            s.matches(&person(&[], Some(""))),
            "an empty type is unknown"
        );
        let relaxed = Selector {
            untyped_escape: true,
            ..s.clone()
        };
        assert!(!relaxed.matches(&person(&[], None)), "relaxed by setting");
        assert!(relaxed.matches(&person(&[], Some("temp"))));
    }

    #[test]
    fn group_selector_and_exceptions() {
        let s = Selector {
            groups: vec!["staff".into()],
            except_groups: vec!["robots".into()],
            ..Selector::default()
        };
        assert!(s.matches(&person(&["staff"], None)));
        assert!(!s.matches(&person(&["other"], None)));
        assert!(!s.matches(&person(&["staff", "robots"], None)));
    }

    #[test]
    fn groups_and_types_must_both_match() {
        let s = Selector {
            groups: vec!["staff".into()],
            person_types: vec!["employee".into()],
            ..Selector::default()
        };
        assert!(s.matches(&person(&["staff"], Some("employee"))));
        assert!(!s.matches(&person(&["staff"], Some("temp"))));
        assert!(!s.matches(&person(&["x"], Some("employee"))));
    }
}
