//! Records: evidence that a subject completed a requirement at a given version and time.

use super::principal::SubjectKey;
use super::requirement::{RequirementId, Version};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Api,
    Xapi,
    Esign,
    Csv,
    SelfService,
}

/// A completion of one requirement by one subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub subject: SubjectKey,
    pub requirement: RequirementId,
    pub version: Version,
    pub completed_at: DateTime<Utc>,
    /// An explicit end of validity (e.g. from a certificate); the requirement's validity also applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub source: Source,
    /// Free-form evidence: statement id, document hash, client address, user agent, ...
    #[serde(default)]
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// Who or what recorded it (admin token name, webhook, the person themselves).
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    /// Set when the completion was withdrawn (voided statement, admin revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why a record is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("completed_at lies in the future ({0})")]
    CompletedInFuture(DateTime<Utc>),
    #[error("expires_at must be after completed_at")]
    ExpiresBeforeCompleted,
    #[error("version {got} is newer than the requirement's current version {current}")]
    VersionFromTheFuture { got: Version, current: Version },
}

/// Allowed clock skew for completions reported by other systems.
const FUTURE_SKEW_SECONDS: i64 = 300;

impl Record {
    /// Checks a record against the requirement's current version and the current time.
    pub fn validate(&self, current: Version, now: DateTime<Utc>) -> Result<(), RecordError> {
        if self.completed_at > now + chrono::Duration::seconds(FUTURE_SKEW_SECONDS) {
            return Err(RecordError::CompletedInFuture(self.completed_at));
        }
        if let Some(exp) = self.expires_at
            && exp <= self.completed_at
        {
            return Err(RecordError::ExpiresBeforeCompleted);
        }
        if self.version > current {
            return Err(RecordError::VersionFromTheFuture {
                got: self.version,
                current,
            });
        }
        Ok(())
    }
}

/// The withdrawal of a completion (a voided xAPI statement, an admin's revocation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    pub subject: SubjectKey,
    pub requirement: RequirementId,
    pub revoked_at: DateTime<Utc>,
    pub revoked_by: String,
    pub reason: String,
    pub source: Source,
    #[serde(default)]
    pub evidence: serde_json::Map<String, serde_json::Value>,
}

/// A person declined a document on the self-service page: they stay blocked, and the refusal is
/// kept as evidence for their manager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    pub subject: SubjectKey,
    pub requirement: RequirementId,
    pub version: Version,
    pub declined_at: DateTime<Utc>,
    #[serde(default)]
    pub evidence: serde_json::Map<String, serde_json::Value>,
}

/// One change to a subject's records, as kept in their history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HistoryEntry {
    Recorded(Record),
    Revoked(Revocation),
    Declined(Decline),
}

impl HistoryEntry {
    /// When the change was made (what was known from then on).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Recorded(r) => r.recorded_at,
            Self::Revoked(r) => r.revoked_at,
            Self::Declined(d) => d.declined_at,
        }
    }
}

/// The records as they stood at `at`, replayed from the history: for each requirement the last
/// record written by then, marked revoked if a later revocation (still by then) withdrew it.
/// Answers "was this person compliant at time T, and on which records?".
pub fn records_as_of(history: &[HistoryEntry], at: DateTime<Utc>) -> Vec<Record> {
    let mut current: std::collections::BTreeMap<(String, String), Record> = Default::default();
    for entry in history.iter().filter(|e| e.at() <= at) {
        match entry {
            HistoryEntry::Recorded(r) => {
                current.insert((r.subject.to_string(), r.requirement.0.clone()), r.clone());
            }
            HistoryEntry::Revoked(v) => {
                if let Some(r) = current.get_mut(&(v.subject.to_string(), v.requirement.0.clone()))
                {
                    r.revoked_at = Some(v.revoked_at);
                }
            }
            // A decline changes no record.
            HistoryEntry::Declined(_) => {}
        }
    }
    current.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 9, 0, 0).unwrap()
    }

    fn rec(requirement: &str, recorded: u32) -> Record {
        Record {
            subject: SubjectKey::parse("a@b").unwrap(),
            requirement: RequirementId(requirement.into()),
            version: "1".parse().unwrap(),
            completed_at: t(recorded),
            expires_at: None,
            source: Source::Api,
            evidence: Default::default(),
            recorded_by: "t".into(),
            recorded_at: t(recorded),
            revoked_at: None,
        }
    }

    fn revocation(requirement: &str, day: u32) -> Revocation {
        Revocation {
            subject: SubjectKey::parse("a@b").unwrap(),
            requirement: RequirementId(requirement.into()),
            revoked_at: t(day),
            revoked_by: "t".into(),
            reason: "test".into(),
            source: Source::Api,
            evidence: Default::default(),
        }
    }

    #[test]
    fn history_replays_to_any_instant() {
        let history = vec![
            HistoryEntry::Recorded(rec("a", 1)),
            HistoryEntry::Recorded(rec("b", 2)),
            HistoryEntry::Revoked(revocation("a", 5)),
            HistoryEntry::Recorded(rec("a", 8)),
        ];
        assert!(records_as_of(&history, t(1) - chrono::Duration::seconds(1)).is_empty());
        let at3 = records_as_of(&history, t(3));
        assert_eq!(at3.len(), 2);
        assert!(at3.iter().all(|r| r.revoked_at.is_none()));
        let at6 = records_as_of(&history, t(6));
        let a = at6.iter().find(|r| r.requirement.0 == "a").unwrap();
        assert_eq!(a.revoked_at, Some(t(5)), "revoked by then");
        let at9 = records_as_of(&history, t(9));
        let a = at9.iter().find(|r| r.requirement.0 == "a").unwrap();
        assert_eq!(
            (a.recorded_at, a.revoked_at),
            (t(8), None),
            "a new completion after it"
        );
    }
}
