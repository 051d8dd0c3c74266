//! The signed-in person as the gate sees them: a normalised subject key plus the claims that matter.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The key under which a person's records are kept (by default their normalised email address).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubjectKey(String);

/// Why a string cannot be a subject key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectKeyError {
    #[error("subject must not be empty")]
    Empty,
    #[error("subject must be at most 256 characters")]
    TooLong,
    #[error("subject must not contain whitespace, control characters, braces or '/'")]
    BadCharacter,
}

impl SubjectKey {
    /// Normalises a raw claim value: trims it and lowercases it (email addresses and usernames are
    /// compared case-insensitively by every IdP we know of).
    pub fn parse(raw: &str) -> Result<Self, SubjectKeyError> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err(SubjectKeyError::Empty);
        }
        if value.chars().count() > 256 {
            return Err(SubjectKeyError::TooLong);
        }
        // Braces would break Redis Cluster hash tags, '/' would break URLs of the API.
        if value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '{' | '}' | '/'))
        {
            return Err(SubjectKeyError::BadCharacter);
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SubjectKey {
    type Error = SubjectKeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SubjectKey> for String {
    fn from(value: SubjectKey) -> Self {
        value.0
    }
}

impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signed-in person, built from ID-token and userinfo claims by the auth layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub subject: SubjectKey,
    /// The provider's `sub` claim, kept for logs and sign-out.
    pub provider_sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Employee, contractor, temp ... as given by the configured claim, lowercased.
    pub person_type: Option<String>,
    pub manager: Option<String>,
}

impl Principal {
    /// A principal with only a subject; handy for the API and tests.
    pub fn bare(subject: SubjectKey) -> Self {
        Self {
            provider_sub: subject.as_str().to_owned(),
            subject,
            email: None,
            name: None,
            groups: Vec::new(),
            person_type: None,
            manager: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_trimmed_and_lowercased() {
        assert_eq!(
            SubjectKey::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn bad_subjects_are_rejected() {
        assert_eq!(SubjectKey::parse("  "), Err(SubjectKeyError::Empty));
        assert_eq!(
            SubjectKey::parse("a{b}"),
            Err(SubjectKeyError::BadCharacter)
        );
        assert_eq!(SubjectKey::parse("a b"), Err(SubjectKeyError::BadCharacter));
        assert_eq!(SubjectKey::parse("a/b"), Err(SubjectKeyError::BadCharacter));
        assert_eq!(
            SubjectKey::parse(&"x".repeat(300)),
            Err(SubjectKeyError::TooLong)
        );
    }
}
