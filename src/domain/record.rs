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
