//! The audit event each kind of stored change produces: what the chain says happened.

use crate::domain::audit::AuditEvent;
use crate::domain::{Action, Decline, Exemption, Person, Record, Revocation, Source};
use serde_json::json;

fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A completion written; self-service acceptances are `document.accepted`.
pub fn recorded(record: &Record) -> AuditEvent {
    let kind = if record.source == Source::SelfService {
        "document.accepted"
    } else {
        "record.added"
    };
    AuditEvent::new(
        record.recorded_at,
        kind,
        &record.recorded_by,
        Some(record.subject.as_str()),
        value(record),
    )
}

pub fn revoked(revocation: &Revocation) -> AuditEvent {
    AuditEvent::new(
        revocation.revoked_at,
        "record.revoked",
        &revocation.revoked_by,
        Some(revocation.subject.as_str()),
        value(revocation),
    )
}

pub fn declined(decline: &Decline) -> AuditEvent {
    AuditEvent::new(
        decline.declined_at,
        "document.declined",
        decline.subject.as_str(),
        Some(decline.subject.as_str()),
        value(decline),
    )
}

pub fn exemption(exemption: &Exemption, actor: &str) -> AuditEvent {
    AuditEvent::new(
        exemption.decided_at.unwrap_or(exemption.requested_at),
        &format!("exemption.{}", exemption.state.as_str()),
        actor,
        Some(exemption.subject.as_str()),
        value(exemption),
    )
}

pub fn action(action: &Action) -> AuditEvent {
    AuditEvent::new(
        action.at,
        "case.action",
        &action.by,
        Some(action.subject.as_str()),
        value(action),
    )
}

pub fn person(person: &Person, actor: &str) -> AuditEvent {
    AuditEvent::new(
        person.updated_at,
        "directory.changed",
        actor,
        Some(person.subject.as_str()),
        value(person),
    )
}

/// The configuration in force, by its hash.
pub fn config_loaded(at: chrono::DateTime<chrono::Utc>, sha256: &str, path: &str) -> AuditEvent {
    AuditEvent::new(
        at,
        "config.loaded",
        "clearance",
        None,
        json!({ "sha256": sha256, "path": path }),
    )
}

/// Sessions ended at once: an admin's "sign out everywhere" or the provider's back-channel
/// logout. `how` is `sign_out_everywhere` or `backchannel_logout`.
pub fn sessions_ended(
    at: chrono::DateTime<chrono::Utc>,
    actor: &str,
    subject: Option<&str>,
    how: &str,
    ended: usize,
) -> AuditEvent {
    AuditEvent::new(
        at,
        "sessions.ended",
        actor,
        subject,
        json!({ "how": how, "ended": ended }),
    )
}
