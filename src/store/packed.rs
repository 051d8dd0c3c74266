//! Packed copies of sessions and standings for the decision cache: one allocation of postcard
//! bytes each, holding only what a decision reads, unpacked on a hit.
//!
//! Every packing starts with the second (since the epoch) until which the cache may serve it, so
//! that a cache entry is nothing but its key and one shared byte slice. A session is packed
//! without its provider tokens, provider session id and provider subject, which only a refresh
//! or a sign-out needs and which read the stored session (it unpacks with `tokens_elided` set,
//! and an empty `provider_sub`); an
//! email equal to the subject is kept once, and a form token that is 32 random bytes is kept as
//! those bytes. A standing is packed with its subject (checked when it is unpacked), without each
//! record's evidence and recorder (managers and auditors read those from the store), and with
//! requirement ids as numbers ([`RequirementNumbers`]). Times keep their nanoseconds, so expiries
//! stay exact. The directory entry and exemptions, which vary in shape and are rare on the hot
//! path, are kept as their JSON inside the bytes.

use super::Standing;
use crate::domain::{
    Exemption, Person, Principal, Record, RequirementId, Session, Source, SubjectKey, Version,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

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
    #[error("packing: kept for another subject")]
    OtherSubject,
    #[error("packing: a requirement number that was never given out")]
    Requirement,
    #[error("packing: too short")]
    Short,
}

/// How many bytes the serving limit takes at the start of every packing.
const UNTIL_LEN: usize = 8;

/// Bytes that start with `until` (whole seconds, rounded down: never served past it), then
/// `packed` in postcard.
///
/// The result is allocated at its exact size, not shrunk from the buffer it was written to: a
/// shrunk allocation leaves the rest of its block behind as a sliver that the allocator seldom
/// reuses, which for 100,000 kept entries came to several MiB.
fn with_until<T: Serialize>(until: DateTime<Utc>, packed: &T) -> Result<Box<[u8]>, PackError> {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(&until.timestamp().to_le_bytes());
    Ok(Box::from(postcard::to_extend(packed, bytes)?.as_slice()))
}

/// The second until which `bytes` may be served (see [`with_until`]).
pub fn until(bytes: &[u8]) -> Option<i64> {
    let head: [u8; UNTIL_LEN] = bytes.get(..UNTIL_LEN)?.try_into().ok()?;
    Some(i64::from_le_bytes(head))
}

/// Whether `bytes` may still be served at `now`.
pub fn serves_at(bytes: &[u8], now: DateTime<Utc>) -> bool {
    until(bytes).is_some_and(|until| until > now.timestamp())
}

fn body(bytes: &[u8]) -> Result<&[u8], PackError> {
    bytes.get(UNTIL_LEN..).ok_or(PackError::Short)
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

/// A session's email: usually the subject itself, then kept once.
#[derive(Serialize, Deserialize)]
enum PackedEmail<'a> {
    None,
    Subject,
    Other(&'a str),
}

/// A form token: the 32 random bytes `random_token` spells, or any other text as it is.
#[derive(Serialize, Deserialize)]
enum PackedToken<'a> {
    Bytes([u8; 32]),
    Text(&'a str),
}

impl<'a> PackedToken<'a> {
    fn of(token: &'a str) -> Self {
        let mut raw = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(token, &mut raw) {
            // Only when it spells back to the same text.
            Ok(32) if URL_SAFE_NO_PAD.encode(raw) == token => Self::Bytes(raw),
            _ => Self::Text(token),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Bytes(raw) => URL_SAFE_NO_PAD.encode(raw),
            Self::Text(text) => (*text).to_owned(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PackedSession<'a> {
    subject: &'a str,
    #[serde(borrow)]
    email: PackedEmail<'a>,
    name: Option<&'a str>,
    groups: Vec<&'a str>,
    person_type: Option<&'a str>,
    manager: Option<&'a str>,
    access_expires_at: Option<Stamp>,
    created_at: Stamp,
    expires_at: Stamp,
    #[serde(borrow)]
    csrf: PackedToken<'a>,
}

/// The bytes the cache keeps for `session`, served until `until`.
pub fn pack_session(session: &Session, until: DateTime<Utc>) -> Result<Box<[u8]>, PackError> {
    let p = &session.principal;
    let email = match p.email.as_deref() {
        None => PackedEmail::None,
        Some(email) if email == p.subject.as_str() => PackedEmail::Subject,
        Some(email) => PackedEmail::Other(email),
    };
    let packed = PackedSession {
        subject: p.subject.as_str(),
        email,
        name: p.name.as_deref(),
        groups: p.groups.iter().map(String::as_str).collect(),
        person_type: p.person_type.as_deref(),
        manager: p.manager.as_deref(),
        access_expires_at: session.access_expires_at.map(Stamp::of),
        created_at: Stamp::of(session.created_at),
        expires_at: Stamp::of(session.expires_at),
        csrf: PackedToken::of(&session.csrf),
    };
    with_until(until, &packed)
}

/// The session packed in `bytes`, without its tokens and provider subject (`tokens_elided`).
pub fn unpack_session(bytes: &[u8]) -> Result<Session, PackError> {
    let p: PackedSession<'_> = postcard::from_bytes(body(bytes)?)?;
    let email = match p.email {
        PackedEmail::None => None,
        PackedEmail::Subject => Some(p.subject.to_owned()),
        PackedEmail::Other(email) => Some(email.to_owned()),
    };
    Ok(Session {
        principal: Principal {
            subject: SubjectKey::parse(p.subject)?,
            provider_sub: String::new(),
            email,
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
        csrf: p.csrf.text(),
        provider_sid: None,
        tokens_elided: true,
    })
}

/// Requirement ids as small numbers, given out in order of first sight and never taken back, so
/// that a packing made before a policy reload still reads the same. Only the first
/// [`RequirementNumbers::MAX`] ids get one; any others are packed as their text.
#[derive(Default)]
pub struct RequirementNumbers {
    ids: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u16>,
}

impl RequirementNumbers {
    /// The most ids numbered (a policy names a few dozen at most).
    pub const MAX: usize = 4096;

    fn number(id: &str) -> Option<u16> {
        Self::number_in(&NUMBERS, id)
    }

    fn id(n: u16) -> Option<Arc<str>> {
        Self::id_in(&NUMBERS, n)
    }

    /// `id`'s number in `numbers`, given out now if it has none and there is room.
    fn number_in(numbers: &RwLock<Self>, id: &str) -> Option<u16> {
        let known = numbers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .numbers
            .get(id)
            .copied();
        known.or_else(|| {
            let mut all = numbers
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = all.numbers.get(id) {
                return Some(*n);
            }
            let n = u16::try_from(all.ids.len())
                .ok()
                .filter(|_| all.ids.len() < Self::MAX)?;
            let id: Arc<str> = Arc::from(id);
            all.ids.push(id.clone());
            all.numbers.insert(id, n);
            Some(n)
        })
    }

    fn id_in(numbers: &RwLock<Self>, n: u16) -> Option<Arc<str>> {
        numbers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ids
            .get(usize::from(n))
            .cloned()
    }
}

static NUMBERS: LazyLock<RwLock<RequirementNumbers>> = LazyLock::new(Default::default);

#[derive(Serialize, Deserialize)]
enum PackedRequirement<'a> {
    Number(u16),
    Text(&'a str),
}

#[derive(Serialize, Deserialize)]
struct PackedRecord<'a> {
    #[serde(borrow)]
    requirement: PackedRequirement<'a>,
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
    subject: &'a str,
    #[serde(borrow)]
    records: Vec<PackedRecord<'a>>,
    /// The directory entry, as JSON.
    person: Option<String>,
    /// The exemptions, as JSON (an empty string for none).
    exemptions: String,
    first_access: Option<Stamp>,
    tokens_ended: Option<Stamp>,
}

/// The bytes the cache keeps for `subject`'s `standing`, served until `until`.
pub fn pack_standing(
    subject: &SubjectKey,
    standing: &Standing,
    until: DateTime<Utc>,
) -> Result<Box<[u8]>, PackError> {
    let records = standing
        .records
        .iter()
        .map(|r| PackedRecord {
            requirement: RequirementNumbers::number(&r.requirement.0).map_or(
                PackedRequirement::Text(&r.requirement.0),
                PackedRequirement::Number,
            ),
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
        subject: subject.as_str(),
        records,
        person: standing
            .person
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?,
        exemptions,
        first_access: standing.first_access.map(Stamp::of),
        tokens_ended: standing.tokens_ended.map(Stamp::of),
    };
    with_until(until, &packed)
}

/// `subject`'s standing packed in `bytes`, its records without evidence or recorder. An error
/// when the bytes were packed for another subject.
pub fn unpack_standing(subject: &SubjectKey, bytes: &[u8]) -> Result<Standing, PackError> {
    let p: PackedStanding<'_> = postcard::from_bytes(body(bytes)?)?;
    if p.subject != subject.as_str() {
        return Err(PackError::OtherSubject);
    }
    let records = p
        .records
        .into_iter()
        .map(|r| {
            let requirement = match r.requirement {
                PackedRequirement::Number(n) => RequirementNumbers::id(n)
                    .ok_or(PackError::Requirement)?
                    .to_string(),
                PackedRequirement::Text(id) => id.to_owned(),
            };
            Ok(Record {
                subject: subject.clone(),
                requirement: RequirementId(requirement),
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
        tokens_ended: time(p.tokens_ended)?,
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
        let bytes = pack_session(&full, at(60, 0)).unwrap();
        let back = unpack_session(&bytes).unwrap();
        let mut expected = full.principal.clone();
        expected.provider_sub = String::new();
        assert_eq!(back.principal, expected, "without the provider subject");
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
            bytes.len() < 150,
            "{} bytes for a session without tokens",
            bytes.len()
        );
    }

    #[test]
    fn a_session_without_optional_parts_round_trips() {
        let mut s = session();
        s.principal = Principal::bare(sk("x@y"));
        s.principal.provider_sub = String::new();
        s.access_expires_at = None;
        let back = unpack_session(&pack_session(&s, at(60, 0)).unwrap()).unwrap();
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
            tokens_ended: Some(at(3, 4)),
        };
        let ann = sk("ann@example.com");
        let bytes = pack_standing(&ann, &standing, at(60, 0)).unwrap();
        let back = unpack_standing(&ann, &bytes).unwrap();
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
        assert_eq!(back.tokens_ended, Some(at(3, 4)));

        assert!(matches!(
            unpack_standing(&sk("bob@example.com"), &bytes),
            Err(PackError::OtherSubject)
        ));
        let empty = pack_standing(&sk("z@y"), &Standing::default(), at(60, 0)).unwrap();
        let empty = unpack_standing(&sk("z@y"), &empty).unwrap();
        assert!(empty.records.is_empty() && empty.exemptions.is_empty());
        assert_eq!((empty.person, empty.first_access), (None, None));
    }

    #[test]
    fn bytes_that_are_not_a_packing_are_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\xff\xff\xff",
            b"\x01",
            b"\0\0\0\0\0\0\0\0",
            b"\0\0\0\0\0\0\0\0\x01",
        ] {
            assert!(unpack_session(bytes).is_err());
            assert!(unpack_standing(&sk("a@b"), bytes).is_err());
        }
        assert_eq!(until(b"\x01"), None);
        assert!(!serves_at(b"", at(0, 0)));
    }

    #[test]
    fn a_packing_is_served_until_the_second_it_names_rounded_down() {
        let bytes = pack_session(&session(), at(60, 900_000_000)).unwrap();
        assert_eq!(until(&bytes), Some(at(60, 0).timestamp()));
        assert!(serves_at(&bytes, at(59, 999_999_999)));
        assert!(!serves_at(&bytes, at(60, 0)), "never past the limit");
        assert!(!serves_at(&bytes, at(61, 0)));
    }

    #[test]
    fn an_email_like_the_subject_and_a_random_form_token_are_kept_compactly() {
        let mut s = session();
        s.principal.provider_sub = String::new();
        s.csrf = crate::auth::session::random_token();
        s.principal.email = Some("someone-else@example.com".into());
        let other = pack_session(&s, at(60, 0)).unwrap();
        assert_eq!(unpack_session(&other).unwrap().principal, s.principal);
        s.principal.email = Some(s.principal.subject.as_str().to_owned());
        let same = pack_session(&s, at(60, 0)).unwrap();
        let back = unpack_session(&same).unwrap();
        assert_eq!(back.principal, s.principal);
        assert_eq!(back.csrf, s.csrf, "the token spells the same");
        assert!(
            same.len() + 20 < other.len(),
            "{} / {}",
            same.len(),
            other.len()
        );

        let text = pack_session(&session(), at(60, 0)).unwrap();
        assert!(text.len() < same.len(), "a short token is kept as its text");
        // Text that decodes to 32 bytes but spells them differently is kept as text.
        let mut odd = session();
        odd.csrf = format!("{}B", "A".repeat(42));
        assert_eq!(
            unpack_session(&pack_session(&odd, at(60, 0)).unwrap())
                .unwrap()
                .csrf,
            odd.csrf
        );
    }

    #[test]
    fn requirement_ids_are_numbered_once_and_read_back_after_others_are_numbered() {
        let ann = sk("ann@example.com");
        let standing = |ids: &[&str]| Standing {
            records: ids.iter().map(|id| record(id)).collect(),
            ..Standing::default()
        };
        let first =
            pack_standing(&ann, &standing(&["numbered-a", "numbered-b"]), at(60, 0)).unwrap();
        let later =
            pack_standing(&ann, &standing(&["numbered-c", "numbered-a"]), at(60, 0)).unwrap();
        let ids = |bytes: &[u8]| {
            unpack_standing(&ann, bytes)
                .unwrap()
                .records
                .into_iter()
                .map(|r| r.requirement.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&first), ["numbered-a", "numbered-b"]);
        assert_eq!(ids(&later), ["numbered-c", "numbered-a"]);
        let long = "x".repeat(60);
        let bytes = pack_standing(&ann, &standing(&[&long]), at(60, 0)).unwrap();
        // As text, the id alone would take its 60 bytes beside the subject's.
        assert!(
            bytes.len() < long.len() + ann.as_str().len(),
            "a numbered id is not kept as text"
        );
        assert_eq!(ids(&bytes), [long]);
        // A number never given out is an error, not a panic.
        let forged = ann_with_one_record(PackedRequirement::Number(u16::MAX));
        assert!(matches!(
            unpack_standing(&ann, &forged),
            Err(PackError::Requirement)
        ));
    }

    /// ann@example.com's standing, packed by hand with one record for `requirement`.
    fn ann_with_one_record(requirement: PackedRequirement<'_>) -> Box<[u8]> {
        let record = PackedRecord {
            requirement,
            major: 1,
            minor: 0,
            completed_at: Stamp(0, 0),
            expires_at: None,
            source: Source::Api,
            recorded_at: Stamp(0, 0),
            revoked_at: None,
        };
        let standing = PackedStanding {
            subject: "ann@example.com",
            records: vec![record],
            person: None,
            exemptions: String::new(),
            first_access: None,
            tokens_ended: None,
        };
        with_until(at(60, 0), &standing).unwrap()
    }

    #[test]
    fn numbers_run_out_at_the_limit_and_ids_without_one_are_packed_as_text() {
        // A table of its own: the process-wide one is shared with the other tests.
        let numbers = RwLock::new(RequirementNumbers::default());
        for n in 0..RequirementNumbers::MAX {
            let id = format!("filler-{n}");
            assert_eq!(
                RequirementNumbers::number_in(&numbers, &id),
                u16::try_from(n).ok()
            );
        }
        assert_eq!(
            RequirementNumbers::number_in(&numbers, "one-too-many"),
            None
        );
        assert_eq!(RequirementNumbers::number_in(&numbers, "filler-7"), Some(7));
        assert_eq!(
            RequirementNumbers::id_in(&numbers, 7).as_deref(),
            Some("filler-7")
        );
        assert_eq!(RequirementNumbers::id_in(&numbers, u16::MAX), None);
        // What an id without a number is packed as reads back as itself.
        let text = ann_with_one_record(PackedRequirement::Text("one-too-many"));
        let back = unpack_standing(&sk("ann@example.com"), &text).unwrap();
        assert_eq!(back.records[0].requirement.0, "one-too-many");
    }
}
