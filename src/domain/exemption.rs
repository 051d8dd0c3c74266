//! Exemptions: time-bounded permission to pass without some (or all) requirements, requested by
//! one person and approved by another, never by the person concerned or someone they manage.

use super::decision::Unmet;
use super::directory::Directory;
use super::principal::SubjectKey;
use super::requirement::RequirementId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where an exemption stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExemptionState {
    Requested,
    Granted,
    Rejected,
    Revoked,
}

impl ExemptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Granted => "granted",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }
}

/// One exemption, from request to expiry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exemption {
    pub id: String,
    pub subject: SubjectKey,
    /// The requirements it covers; empty means all.
    #[serde(default)]
    pub requirements: Vec<RequirementId>,
    pub reason: String,
    /// How long it lasts once granted.
    pub duration_hours: i64,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub state: ExemptionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Set when granted: `decided_at + duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted at once by an admin in an emergency, without a second person.
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The limits from `[exemptions]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExemptionLimits {
    pub max: Duration,
    pub break_glass_max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExemptionError {
    #[error("a reason is required")]
    ReasonRequired,
    #[error("the reason must be at most 2000 characters")]
    ReasonTooLong,
    #[error("the duration must be at least one hour")]
    TooShort,
    #[error("the duration may be at most {max_hours} hours ({max_days} days)")]
    TooLong { max_hours: i64, max_days: i64 },
    #[error("nobody can exempt themselves")]
    SelfGrant,
    #[error("the approver must be someone other than the person who asked for it")]
    SameAsRequester,
    #[error("nobody can exempt their own manager (or anyone above them)")]
    OwnManager,
    #[error("the exemption is {0}, not requested")]
    NotPending(&'static str),
    #[error("the exemption is {0}, not granted")]
    NotGranted(&'static str),
    #[error("unknown requirement {0:?}")]
    UnknownRequirement(String),
}

/// What someone asks for.
pub struct ExemptionRequest {
    pub id: String,
    pub subject: SubjectKey,
    pub requirements: Vec<RequirementId>,
    pub reason: String,
    pub duration: Duration,
    pub requested_by: String,
}

fn check_duration(duration: Duration, max: Duration) -> Result<(), ExemptionError> {
    if duration < Duration::hours(1) {
        return Err(ExemptionError::TooShort);
    }
    if duration > max {
        return Err(ExemptionError::TooLong {
            max_hours: max.num_hours(),
            max_days: max.num_days(),
        });
    }
    Ok(())
}

fn check_reason(reason: &str) -> Result<String, ExemptionError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ExemptionError::ReasonRequired);
    }
    if reason.chars().count() > 2000 {
        return Err(ExemptionError::ReasonTooLong);
    }
    Ok(reason.to_owned())
}

/// `actor` as a person, when it names one (admin tokens do not).
fn as_person(actor: &str) -> Option<SubjectKey> {
    SubjectKey::parse(actor).ok()
}

/// Checks that `approver` may exempt `subject`: not themselves, not someone above them.
fn check_approver(
    approver: &str,
    requested_by: &str,
    subject: &SubjectKey,
    directory: &Directory,
    break_glass: bool,
) -> Result<(), ExemptionError> {
    let person = as_person(approver);
    if person.as_ref() == Some(subject) {
        return Err(ExemptionError::SelfGrant);
    }
    if !break_glass && approver == requested_by {
        return Err(ExemptionError::SameAsRequester);
    }
    if let Some(p) = &person
        && directory.chain(p).contains(subject)
    {
        return Err(ExemptionError::OwnManager);
    }
    Ok(())
}

impl ExemptionRequest {
    /// A request, checked for what can be checked before anyone approves it.
    pub fn file(
        self,
        limits: ExemptionLimits,
        now: DateTime<Utc>,
    ) -> Result<Exemption, ExemptionError> {
        let reason = check_reason(&self.reason)?;
        check_duration(self.duration, limits.max)?;
        Ok(Exemption {
            id: self.id,
            subject: self.subject,
            requirements: self.requirements,
            reason,
            duration_hours: self.duration.num_hours(),
            requested_by: self.requested_by,
            requested_at: now,
            state: ExemptionState::Requested,
            decided_by: None,
            decided_at: None,
            expires_at: None,
            break_glass: false,
            comment: None,
        })
    }

    /// Break-glass: granted at once by the one admin who asks, within the shorter limit.
    pub fn break_glass(
        self,
        directory: &Directory,
        limits: ExemptionLimits,
        now: DateTime<Utc>,
    ) -> Result<Exemption, ExemptionError> {
        let reason = check_reason(&self.reason)?;
        check_duration(self.duration, limits.break_glass_max)?;
        check_approver(
            &self.requested_by,
            &self.requested_by,
            &self.subject,
            directory,
            true,
        )?;
        Ok(Exemption {
            id: self.id,
            subject: self.subject,
            requirements: self.requirements,
            reason,
            duration_hours: self.duration.num_hours(),
            decided_by: Some(self.requested_by.clone()),
            requested_by: self.requested_by,
            requested_at: now,
            state: ExemptionState::Granted,
            decided_at: Some(now),
            expires_at: Some(now + self.duration),
            break_glass: true,
            comment: None,
        })
    }
}

impl Exemption {
    /// Approves a pending request; it runs from now for the requested duration.
    pub fn approve(
        &self,
        approver: &str,
        comment: Option<String>,
        directory: &Directory,
        limits: ExemptionLimits,
        now: DateTime<Utc>,
    ) -> Result<Exemption, ExemptionError> {
        if self.state != ExemptionState::Requested {
            return Err(ExemptionError::NotPending(self.state.as_str()));
        }
        let duration = Duration::try_hours(self.duration_hours).ok_or(ExemptionError::TooLong {
            max_hours: limits.max.num_hours(),
            max_days: limits.max.num_days(),
        })?;
        check_duration(duration, limits.max)?;
        check_approver(
            approver,
            &self.requested_by,
            &self.subject,
            directory,
            false,
        )?;
        Ok(Exemption {
            state: ExemptionState::Granted,
            decided_by: Some(approver.to_owned()),
            decided_at: Some(now),
            expires_at: Some(now + duration),
            comment,
            ..self.clone()
        })
    }

    /// Rejects a pending request.
    pub fn reject(
        &self,
        by: &str,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Exemption, ExemptionError> {
        if self.state != ExemptionState::Requested {
            return Err(ExemptionError::NotPending(self.state.as_str()));
        }
        Ok(Exemption {
            state: ExemptionState::Rejected,
            decided_by: Some(by.to_owned()),
            decided_at: Some(now),
            comment,
            ..self.clone()
        })
    }

    /// Ends a granted exemption early.
    pub fn revoke(&self, by: &str, now: DateTime<Utc>) -> Result<Exemption, ExemptionError> {
        if self.state != ExemptionState::Granted {
            return Err(ExemptionError::NotGranted(self.state.as_str()));
        }
        Ok(Exemption {
            state: ExemptionState::Revoked,
            expires_at: self.expires_at.map(|e| e.min(now)),
            comment: Some(format!("revoked by {by}")),
            ..self.clone()
        })
    }

    /// Whether it lets the person pass at `t` (it ends by itself at `expires_at`).
    pub fn active_at(&self, t: DateTime<Utc>) -> bool {
        matches!(
            self.state,
            ExemptionState::Granted | ExemptionState::Revoked
        ) && self.decided_at.is_some_and(|d| d <= t)
            && self.expires_at.is_some_and(|e| t < e)
    }

    pub fn covers(&self, requirement: &RequirementId) -> bool {
        self.requirements.is_empty() || self.requirements.contains(requirement)
    }
}

/// If exemptions active at `now` cover every unmet item, the latest instant until which the
/// person is exempt for all of them (the earliest end among the exemptions needed).
pub fn exempt_until(
    exemptions: &[Exemption],
    missing: &[Unmet],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut until: Option<DateTime<Utc>> = None;
    for m in missing {
        let end = exemptions
            .iter()
            .filter(|e| e.active_at(now) && e.covers(&m.requirement))
            .filter_map(|e| e.expires_at)
            .max()?;
        until = Some(until.map_or(end, |u| u.min(end)));
    }
    until
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::directory::{DirectorySource, Person};
    use crate::domain::{Enforcement, Reason, Version};

    fn s(x: &str) -> SubjectKey {
        SubjectKey::parse(x).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn limits() -> ExemptionLimits {
        ExemptionLimits {
            max: Duration::days(30),
            break_glass_max: Duration::hours(24),
        }
    }

    fn directory() -> Directory {
        let mut a = Person::new(s("alice@x"), DirectorySource::Scim, now());
        a.manager = Some("mgr@x".into());
        let mut m = Person::new(s("mgr@x"), DirectorySource::Scim, now());
        m.manager = Some("boss@x".into());
        Directory::new(vec![a, m], &[], now())
    }

    fn request(subject: &str, by: &str, days: i64) -> ExemptionRequest {
        ExemptionRequest {
            id: "e1".into(),
            subject: s(subject),
            requirements: vec![RequirementId("nda".into())],
            reason: "on leave".into(),
            duration: Duration::days(days),
            requested_by: by.into(),
        }
    }

    fn unmet(id: &str) -> Unmet {
        Unmet {
            requirement: RequirementId(id.into()),
            reason: Reason::NeverCompleted,
            enforcement: Enforcement::Block,
            due: None,
            current_version: Version { major: 1, minor: 0 },
            held_version: None,
            completed_at: None,
            valid_until: None,
        }
    }

    #[test]
    fn granted_by_someone_else_then_expires_by_itself() {
        let e = request("alice@x", "mgr@x", 7)
            .file(limits(), now())
            .unwrap();
        assert!(!e.active_at(now()));
        let g = e
            .approve("boss@x", None, &directory(), limits(), now())
            .unwrap();
        assert!(g.active_at(now() + Duration::days(6)));
        assert!(!g.active_at(now() + Duration::days(7)));
        assert_eq!(
            exempt_until(std::slice::from_ref(&g), &[unmet("nda")], now()),
            g.expires_at
        );
        assert_eq!(
            exempt_until(
                std::slice::from_ref(&g),
                &[unmet("nda"), unmet("aup")],
                now()
            ),
            None
        );
        assert_eq!(
            exempt_until(&[g], &[unmet("nda")], now() + Duration::days(8)),
            None
        );
    }

    #[test]
    fn self_grants_and_own_manager_are_refused() {
        let dir = directory();
        let e = request("alice@x", "mgr@x", 7)
            .file(limits(), now())
            .unwrap();
        assert_eq!(
            e.approve("alice@x", None, &dir, limits(), now()),
            Err(ExemptionError::SelfGrant)
        );
        assert_eq!(
            e.approve("mgr@x", None, &dir, limits(), now()),
            Err(ExemptionError::SameAsRequester)
        );
        // alice cannot exempt her own manager, nor the manager above.
        for boss in ["mgr@x", "boss@x"] {
            let e = request(boss, "someone@x", 7).file(limits(), now()).unwrap();
            assert_eq!(
                e.approve("alice@x", None, &dir, limits(), now()),
                Err(ExemptionError::OwnManager)
            );
        }
        assert_eq!(
            request("alice@x", "alice@x", 1).break_glass(&dir, limits(), now()),
            Err(ExemptionError::SelfGrant)
        );
    }

    #[test]
    fn limits_and_reason_are_enforced() {
        assert!(matches!(
            request("alice@x", "mgr@x", 31).file(limits(), now()),
            Err(ExemptionError::TooLong { max_days: 30, .. })
        ));
        let mut r = request("alice@x", "mgr@x", 1);
        r.reason = "  ".into();
        assert_eq!(r.file(limits(), now()), Err(ExemptionError::ReasonRequired));
        assert!(matches!(
            request("alice@x", "admin", 2).break_glass(&directory(), limits(), now()),
            Err(ExemptionError::TooLong { max_hours: 24, .. })
        ));
        let bg = request("alice@x", "admin-token:ops", 1);
        let bg = ExemptionRequest {
            duration: Duration::hours(4),
            ..bg
        }
        .break_glass(&directory(), limits(), now())
        .unwrap();
        assert!(bg.break_glass && bg.active_at(now()));
        let revoked = bg.revoke("admin", now() + Duration::hours(1)).unwrap();
        assert!(!revoked.active_at(now() + Duration::hours(2)));
    }
}
