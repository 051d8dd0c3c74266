//! The tamper-evident audit trail: every state change as an entry chained to the one before it
//! by HMAC-SHA256 under a configured key, and the check that finds the first broken link.
//!
//! An entry is stored as one line, `<mac> <body>`, where `body` is the entry's JSON (with its
//! sequence number and the previous entry's MAC) and `mac = HMAC-SHA256(key, body)` in hex. The
//! MAC covers the exact stored bytes, so verification never depends on re-serialising anything.
//! Editing an entry breaks its MAC; deleting one leaves a gap in the sequence and a `prev` that
//! no longer matches; reordering breaks both. The chain's head (sequence and MAC of the last
//! entry) is kept beside it, so that cutting entries off the end is caught too.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What happened, before it is sealed into the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub time: DateTime<Utc>,
    /// `record.added`, `record.revoked`, `document.declined`, `exemption.granted`,
    /// `exemption.revoked`, `case.action`, `directory.changed`, `config.loaded`,
    /// `sessions.ended`.
    pub kind: String,
    /// Who made the change (a person's subject, `admin-token:<name>`, `scim:<token>`, ...).
    pub actor: String,
    /// Whose state changed, if a person's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The change itself (the record, exemption, action ... as stored).
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(
        time: DateTime<Utc>,
        kind: &str,
        actor: &str,
        subject: Option<&str>,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            time,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: subject.map(str::to_owned),
            detail,
        }
    }
}

/// One sealed entry, as read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1 for the first entry, then one more for each.
    pub seq: u64,
    /// The MAC of the entry before (empty for the first).
    pub prev: String,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// The position of the chain's last entry: what the next entry links to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub mac: String,
}

impl ChainHead {
    /// `seq:mac`, as stored; empty for an empty chain.
    pub fn encode(&self) -> String {
        if self.seq == 0 {
            String::new()
        } else {
            format!("{}:{}", self.seq, self.mac)
        }
    }

    pub fn decode(text: &str) -> Result<Self, AuditError> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        let (seq, mac) = text
            .split_once(':')
            .ok_or_else(|| AuditError::Malformed(format!("chain head {text:?}")))?;
        let seq = seq
            .parse()
            .map_err(|_| AuditError::Malformed(format!("chain head {text:?}")))?;
        Ok(Self {
            seq,
            mac: mac.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit key is empty")]
    EmptyKey,
    #[error("an audit entry cannot be read: {0}")]
    Malformed(String),
}

/// The first place where the chain is not what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// 1-based position in the stored list.
    pub position: usize,
    /// The sequence number the entry claims, when it can be read.
    pub seq: Option<u64>,
    pub problem: String,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "entry {} (seq {seq}): {}", self.position, self.problem),
            None => write!(f, "entry {}: {}", self.position, self.problem),
        }
    }
}

fn mac_hex(key: &[u8], body: &str) -> Result<String, AuditError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| AuditError::EmptyKey)?;
    mac.update(body.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Seals `event` as the entry after `head`: returns the stored line and the new head.
pub fn seal(
    key: &[u8],
    head: &ChainHead,
    event: &AuditEvent,
) -> Result<(String, ChainHead), AuditError> {
    if key.is_empty() {
        return Err(AuditError::EmptyKey);
    }
    let entry = AuditEntry {
        seq: head.seq + 1,
        prev: head.mac.clone(),
        event: event.clone(),
    };
    let body = serde_json::to_string(&entry).map_err(|e| AuditError::Malformed(e.to_string()))?;
    let mac = mac_hex(key, &body)?;
    Ok((
        format!("{mac} {body}"),
        ChainHead {
            seq: entry.seq,
            mac,
        },
    ))
}

/// Reads a stored line without checking it.
pub fn parse_line(line: &str) -> Result<(String, AuditEntry), AuditError> {
    let (mac, body) = line
        .split_once(' ')
        .ok_or_else(|| AuditError::Malformed("no MAC before the entry".into()))?;
    let entry = serde_json::from_str(body).map_err(|e| AuditError::Malformed(e.to_string()))?;
    Ok((mac.to_owned(), entry))
}

/// Checks the whole chain, oldest first, against the stored head. Returns the number of entries
/// when every link holds, or the first entry that was edited, removed or reordered.
pub fn verify(key: &[u8], lines: &[String], head: &ChainHead) -> Result<u64, ChainBreak> {
    let mut prev = String::new();
    let mut expected_seq = 1u64;
    for (i, line) in lines.iter().enumerate() {
        let position = i + 1;
        let broken = |seq: Option<u64>, problem: String| ChainBreak {
            position,
            seq,
            problem,
        };
        let (mac, body) = line
            .split_once(' ')
            .ok_or_else(|| broken(None, "the entry has no MAC".into()))?;
        let expected_mac = mac_hex(key, body).map_err(|e| broken(None, e.to_string()))?;
        let entry: Option<AuditEntry> = serde_json::from_str(body).ok();
        let seq = entry.as_ref().map(|e| e.seq);
        // Constant-time is not needed here: the verifier holds the key and reports the result.
        if mac != expected_mac {
            return Err(broken(
                seq,
                "the MAC does not match: the entry was edited (or written without the key)".into(),
            ));
        }
        let entry = entry.ok_or_else(|| broken(None, "the entry is not valid JSON".into()))?;
        if entry.seq != expected_seq || entry.prev != prev {
            let problem = if entry.seq > expected_seq {
                match entry.seq - expected_seq {
                    1 => {
                        format!("expected seq {expected_seq}: 1 entry before this one was removed")
                    }
                    n => format!(
                        "expected seq {expected_seq}: {n} entries before this one were removed"
                    ),
                }
            } else if entry.seq < expected_seq {
                format!("expected seq {expected_seq}: the entries were reordered or duplicated")
            } else {
                "it does not link to the entry before it: entries were removed or reordered".into()
            };
            return Err(broken(Some(entry.seq), problem));
        }
        prev = mac.to_owned();
        expected_seq += 1;
    }
    let count = expected_seq - 1;
    if head.seq != count || head.mac != prev {
        return Err(ChainBreak {
            position: lines.len() + 1,
            seq: Some(head.seq),
            problem: format!(
                "the chain head says {} entries but {count} are stored: entries were removed from the end",
                head.seq
            ),
        });
    }
    Ok(count)
}

/// Which chain an entry is sealed into. There is one chain per subject (the subject's changes),
/// one for the directory, and one for events about no one (`config.loaded`): each chain is
/// stored beside the state it seals, so that a change and its entry are written in one atomic
/// step even on a Redis Cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChainId {
    Subject(String),
    Directory,
    Clearance,
    /// The one chain of every event written before chains were per subject; it no longer
    /// grows, and its entries belong to no other chain.
    Legacy,
}

impl ChainId {
    /// The chain that an event belongs to.
    pub fn of(event: &AuditEvent) -> Self {
        if event.kind.starts_with("directory.") {
            return Self::Directory;
        }
        match &event.subject {
            Some(s) => Self::Subject(s.clone()),
            None => Self::Clearance,
        }
    }

    /// The chain's name in reports and the registry: `subject:<subject>`, `directory`,
    /// `clearance`.
    pub fn name(&self) -> String {
        match self {
            Self::Subject(s) => format!("subject:{s}"),
            Self::Directory => "directory".into(),
            Self::Clearance => "clearance".into(),
            Self::Legacy => "legacy".into(),
        }
    }

    /// Reads a name written by [`ChainId::name`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "directory" => Some(Self::Directory),
            "clearance" => Some(Self::Clearance),
            "legacy" => Some(Self::Legacy),
            _ => name
                .strip_prefix("subject:")
                .filter(|s| !s.is_empty())
                .map(|s| Self::Subject(s.to_owned())),
        }
    }
}

impl std::fmt::Display for ChainId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Like [`verify`], and every entry must belong to `chain` (so that entries or whole chains moved
/// under another subject are caught).
pub fn verify_chain(
    key: &[u8],
    chain: &ChainId,
    lines: &[String],
    head: &ChainHead,
) -> Result<u64, ChainBreak> {
    let count = verify(key, lines, head)?;
    if *chain == ChainId::Legacy {
        return Ok(count);
    }
    for (i, line) in lines.iter().enumerate() {
        if let Ok((_, entry)) = parse_line(line)
            && ChainId::of(&entry.event) != *chain
        {
            return Err(ChainBreak {
                position: i + 1,
                seq: Some(entry.seq),
                problem: format!(
                    "the entry belongs to chain {} but is stored in chain {chain}",
                    ChainId::of(&entry.event)
                ),
            });
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"an audit key for the tests";

    fn chain(n: usize) -> (Vec<String>, ChainHead) {
        let mut head = ChainHead::default();
        let mut lines = Vec::new();
        for i in 0..n {
            let event = AuditEvent::new(
                DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
                "record.added",
                "admin-token:tests",
                Some("alice@example.com"),
                serde_json::json!({"n": i, "score": 0.5}),
            );
            let (line, next) = seal(KEY, &head, &event).unwrap();
            lines.push(line);
            head = next;
        }
        (lines, head)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (lines, head) = chain(5);
        assert_eq!(verify(KEY, &lines, &head), Ok(5));
        assert_eq!(verify(KEY, &[], &ChainHead::default()), Ok(0));
        let (_, entry) = parse_line(&lines[2]).unwrap();
        assert_eq!(entry.seq, 3);
        assert_eq!(ChainHead::decode(&head.encode()).unwrap(), head);
    }

    #[test]
    fn an_edited_entry_is_named() {
        let (mut lines, head) = chain(5);
        lines[2] = lines[2].replace("alice@example.com", "mallory@example.com");
        let err = verify(KEY, &lines, &head).unwrap_err();
        assert_eq!((err.position, err.seq), (3, Some(3)));
        assert!(err.problem.contains("edited"), "{err}");
    }

    #[test]
    fn a_removed_entry_is_named() {
        let (mut lines, head) = chain(5);
        lines.remove(1);
        let err = verify(KEY, &lines, &head).unwrap_err();
        assert_eq!((err.position, err.seq), (2, Some(3)));
        assert!(err.problem.contains("removed"), "{err}");
    }

    #[test]
    fn reordered_entries_are_named() {
        let (mut lines, head) = chain(5);
        lines.swap(1, 3);
        let err = verify(KEY, &lines, &head).unwrap_err();
        assert_eq!((err.position, err.seq), (2, Some(4)));
    }

    #[test]
    fn a_cut_off_end_is_caught_by_the_head() {
        let (mut lines, head) = chain(5);
        lines.pop();
        let err = verify(KEY, &lines, &head).unwrap_err();
        assert_eq!(err.position, 5);
        assert!(err.problem.contains("end"), "{err}");
    }

    #[test]
    fn another_key_fails_at_the_first_entry() {
        let (lines, head) = chain(2);
        let err = verify(b"another key", &lines, &head).unwrap_err();
        assert_eq!(err.position, 1);
        assert!(seal(b"", &head, &parse_line(&lines[0]).unwrap().1.event).is_err());
    }

    #[test]
    fn chains_are_named_by_what_they_seal_and_entries_must_belong() {
        let (lines, head) = chain(3);
        let alice = ChainId::Subject("alice@example.com".into());
        assert_eq!(ChainId::parse(&alice.name()), Some(alice.clone()));
        assert_eq!(ChainId::parse("directory"), Some(ChainId::Directory));
        assert_eq!(ChainId::parse("clearance"), Some(ChainId::Clearance));
        assert_eq!(ChainId::parse("legacy"), Some(ChainId::Legacy));
        assert_eq!(verify_chain(KEY, &ChainId::Legacy, &lines, &head), Ok(3));
        assert_eq!(ChainId::parse("subject:"), None);
        assert_eq!(verify_chain(KEY, &alice, &lines, &head), Ok(3));
        let bob = ChainId::Subject("bob@example.com".into());
        let b = verify_chain(KEY, &bob, &lines, &head).unwrap_err();
        assert_eq!(b.position, 1);
        assert!(b.problem.contains("subject:alice@example.com"), "{b}");
        let e = AuditEvent::new(
            Utc::now(),
            "directory.changed",
            "x",
            Some("a"),
            serde_json::json!({}),
        );
        assert_eq!(ChainId::of(&e), ChainId::Directory);
    }
}
