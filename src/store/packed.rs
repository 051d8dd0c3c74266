//! Packed copies of sessions and standings for the decision cache: one allocation of postcard
//! bytes each, holding only what a decision reads, unpacked on every hit.
//!
//! A session is packed without its provider tokens and provider session id (it unpacks with
//! `tokens_elided` set); a standing without each record's evidence and recorder (managers and
//! auditors read those from the store). Times keep their nanoseconds, so
//! expiries stay exact. The directory entry and exemptions, which vary in shape and are rare on
//! the hot path, are kept as their JSON inside the bytes.

use super::Standing;
use crate::domain::{
    Exemption, Person, Principal, Record, RequirementId, Session, Source, SubjectKey, Version,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Why packed bytes could not be made or read (the cache then keeps or serves nothing).
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("packing: {0}")]
    Postcard(#[from] postcard::Error),
    #[error("packing: {0}")]
    Json(#[from] serde_json::Error),
    #[error("packing: a time out of range")]
    Time,
    #[error("packing: {0}")]
    Subject(#[from] crate::domain::SubjectKeyError),
}

/// An instant as seconds and nanoseconds since the epoch.
#[derive(Serialize, Deserialize)]
struct Stamp(i64, u32);

impl Stamp {
    fn of(t: DateTime<Utc>) -> Self {
        Self(t.timestamp(), t.timestamp_subsec_nanos())
    }

    fn time(&self) -> Result<DateTime<Utc>, PackError> {
        DateTime::from_timestamp(self.0, self.1).ok_or(PackError::Time)
    }
}

fn time(stamp: Option<Stamp>) -> Result<Option<DateTime<Utc>>, PackError> {
    stamp.map(|s| s.time()).transpose()
}

#[derive(Serialize, Deserialize)]
struct PackedSession<'a> {
    subject: &'a str,
    provider_sub: &'a str,
    email: Option<&'a str>,
    name: Option<&'a str>,
    groups: Vec<&'a str>,
    person_type: Option<&'a str>,
    manager: Option<&'a str>,
    access_expires_at: Option<Stamp>,
    created_at: Stamp,
    expires_at: Stamp,
    csrf: &'a str,
}

/// The bytes the cache keeps for `session`.
pub fn pack_session(session: &Session) -> Result<Arc<[u8]>, PackError> {
    let p = &session.principal;
    let packed = PackedSession {
        subject: p.subject.as_str(),
        provider_sub: &p.provider_sub,
        email: p.email.as_deref(),
        name: p.name.as_deref(),
        groups: p.groups.iter().map(String::as_str).collect(),
        person_type: p.person_type.as_deref(),
        manager: p.manager.as_deref(),
        access_expires_at: session.access_expires_at.map(Stamp::of),
        created_at: Stamp::of(session.created_at),
        expires_at: Stamp::of(session.expires_at),
        csrf: &session.csrf,
    };
    Ok(postcard::to_allocvec(&packed)?.into())
}

/// The session packed in `bytes`, without its tokens (`tokens_elided`).
pub fn unpack_session(bytes: &[u8]) -> Result<Session, PackError> {
    let p: PackedSession<'_> = postcard::from_bytes(bytes)?;
    Ok(Session {
        principal: Principal {
            subject: SubjectKey::parse(p.subject)?,
            provider_sub: p.provider_sub.to_owned(),
            email: p.email.map(str::to_owned),
            name: p.name.map(str::to_owned),
            groups: p.groups.into_iter().map(str::to_owned).collect(),
            person_type: p.person_type.map(str::to_owned),
            manager: p.manager.map(str::to_owned),
        },
        id_token: None,
        access_token: String::new(),
        refresh_token: None,
        access_expires_at: time(p.access_expires_at)?,
        created_at: p.created_at.time()?,
        expires_at: p.expires_at.time()?,
        csrf: p.csrf.to_owned(),
        provider_sid: None,
        tokens_elided: true,
    })
}

#[derive(Serialize, Deserialize)]
struct PackedRecord<'a> {
    requirement: &'a str,
    major: u32,
    minor: u32,
    completed_at: Stamp,
    expires_at: Option<Stamp>,
    source: Source,
    recorded_at: Stamp,
    revoked_at: Option<Stamp>,
}

#[derive(Serialize, Deserialize)]
struct PackedStanding<'a> {
    #[serde(borrow)]
    records: Vec<PackedRecord<'a>>,
    /// The directory entry, as JSON.
    person: Option<String>,
    /// The exemptions, as JSON (an empty string for none).
    exemptions: String,
    first_access: Option<Stamp>,
}

/// The bytes the cache keeps for `standing`.
pub fn pack_standing(standing: &Standing) -> Result<Arc<[u8]>, PackError> {
    let records = standing
        .records
        .iter()
        .map(|r| PackedRecord {
            requirement: &r.requirement.0,
            major: r.version.major,
            minor: r.version.minor,
            completed_at: Stamp::of(r.completed_at),
            expires_at: r.expires_at.map(Stamp::of),
            source: r.source,
            recorded_at: Stamp::of(r.recorded_at),
            revoked_at: r.revoked_at.map(Stamp::of),
        })
        .collect();
    let exemptions = if standing.exemptions.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&standing.exemptions)?
    };
    let packed = PackedStanding {
        records,
        person: standing
            .person
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?,
        exemptions,
        first_access: standing.first_access.map(Stamp::of),
    };
    Ok(postcard::to_allocvec(&packed)?.into())
}

/// `subject`'s standing packed in `bytes`, its records without evidence or recorder.
pub fn unpack_standing(subject: &SubjectKey, bytes: &[u8]) -> Result<Standing, PackError> {
    let p: PackedStanding<'_> = postcard::from_bytes(bytes)?;
    let records = p
        .records
        .into_iter()
        .map(|r| {
            Ok(Record {
                subject: subject.clone(),
                requirement: RequirementId(r.requirement.to_owned()),
                version: Version {
                    major: r.major,
                    minor: r.minor,
                },
                completed_at: r.completed_at.time()?,
                expires_at: time(r.expires_at)?,
                source: r.source,
                evidence: serde_json::Map::new(),
                recorded_by: String::new(),
                recorded_at: r.recorded_at.time()?,
                revoked_at: time(r.revoked_at)?,
            })
        })
        .collect::<Result<Vec<_>, PackError>>()?;
    let exemptions: Vec<Exemption> = if p.exemptions.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&p.exemptions)?
    };
    let person: Option<Person> = p.person.as_deref().map(serde_json::from_str).transpose()?;
    Ok(Standing {
        records,
        person,
        exemptions,
        first_access: time(p.first_access)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ExemptionState;

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, nanos).unwrap()
    }

    fn sk(s: &str) -> SubjectKey {
        SubjectKey::parse(s).unwrap()
    }

    fn session() -> Session {
        Session {
            principal: Principal {
                subject: sk("ann@example.com"),
                provider_sub: "00u1".into(),
                email: Some("ann@example.com".into()),
                name: Some("Ann Example".into()),
                groups: vec!["staff".into(), "vpn-users".into()],
                person_type: Some("contractor".into()),
                manager: Some("bob@example.com".into()),
            },
            id_token: Some("id-token".into()),
            access_token: "access-token".into(),
            refresh_token: Some("refresh-token".into()),
            access_expires_at: Some(at(3600, 123_456_789)),
            created_at: at(0, 1),
            expires_at: at(43_200, 999_999_999),
            csrf: "csrf-token".into(),
            provider_sid: Some("sid".into()),
            tokens_elided: false,
        }
    }

    #[test]
    fn a_session_unpacks_as_its_token_free_copy() {
        let full = session();
        let bytes = pack_session(&full).unwrap();
        let back = unpack_session(&bytes).unwrap();
        assert_eq!(back.principal, full.principal);
        assert_eq!(back.csrf, full.csrf);
        assert_eq!(
            (back.access_expires_at, back.created_at, back.expires_at),
            (full.access_expires_at, full.created_at, full.expires_at),
            "times to the nanosecond"
        );
        assert!(back.tokens_elided);
        assert_eq!(
            (
                back.id_token,
                back.access_token.as_str(),
                back.refresh_token
            ),
            (None, "", None)
        );
        assert!(
            bytes.len() < 160,
            "{} bytes for a session without tokens",
            bytes.len()
        );
    }

    #[test]
    fn a_session_without_optional_parts_round_trips() {
        let mut s = session();
        s.principal = Principal::bare(sk("x@y"));
        s.access_expires_at = None;
        let back = unpack_session(&pack_session(&s).unwrap()).unwrap();
        assert_eq!(back.principal, s.principal);
        assert_eq!(back.access_expires_at, None);
    }

    fn record(requirement: &str) -> Record {
        let mut evidence = serde_json::Map::new();
        evidence.insert("ticket".into(), "T-1".into());
        Record {
            subject: sk("ann@example.com"),
            requirement: RequirementId(requirement.into()),
            version: Version { major: 3, minor: 1 },
            completed_at: at(-100, 5),
            expires_at: Some(at(300, 7)),
            source: Source::Xapi,
            evidence,
            recorded_by: "xapi".into(),
            recorded_at: at(-99, 0),
            revoked_at: Some(at(-50, 0)),
        }
    }

    #[test]
    fn a_standing_unpacks_as_its_copy_for_decisions() {
        let exemption = Exemption {
            id: "ex-1".into(),
            subject: sk("ann@example.com"),
            requirements: vec![RequirementId("training".into())],
            reason: "on leave".into(),
            duration_hours: 24,
            requested_by: "bob@example.com".into(),
            requested_at: at(-10, 0),
            state: ExemptionState::Granted,
            decided_by: Some("carol@example.com".into()),
            decided_at: Some(at(-5, 0)),
            expires_at: Some(at(86_400, 0)),
            break_glass: false,
            comment: None,
        };
        let person: Person = serde_json::from_value(serde_json::json!({
            "subject": "ann@example.com", "user_name": "ann", "active": false,
            "user_type": "contractor", "manager": "bob@example.com",
            "source": "scim", "updated_at": "2026-11-29T10:00:00Z"
        }))
        .unwrap();
        let standing = Standing {
            records: vec![record("training"), record("agreement")],
            person: Some(person.clone()),
            exemptions: vec![exemption.clone()],
            first_access: Some(at(1, 2)),
        };
        let back =
            unpack_standing(&sk("ann@example.com"), &pack_standing(&standing).unwrap()).unwrap();
        let mut expected = standing.records.clone();
        for r in &mut expected {
            r.evidence.clear();
            r.recorded_by.clear();
        }
        assert_eq!(back.records, expected);
        assert_eq!(back.records[1].requirement.0, "agreement");
        assert_eq!(back.person, Some(person));
        assert_eq!(back.exemptions, vec![exemption]);
        assert_eq!(back.first_access, Some(at(1, 2)));

        let empty =
            unpack_standing(&sk("z@y"), &pack_standing(&Standing::default()).unwrap()).unwrap();
        assert!(empty.records.is_empty() && empty.exemptions.is_empty());
        assert_eq!((empty.person, empty.first_access), (None, None));
    }

    #[test]
    fn bytes_that_are_not_a_packing_are_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff\xff", b"\x01"] {
            assert!(unpack_session(bytes).is_err());
            assert!(unpack_standing(&sk("a@b"), bytes).is_err());
        }
    }
}
