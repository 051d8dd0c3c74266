//! Audit evidence: checking the audit chain (`clearance audit verify`), exporting evidence for
//! auditors (`clearance evidence export`, [`export`]) and answering "was this person compliant
//! at T, and on which records?" (`clearance evidence at`, [`at`]).
//!
//! Everything here takes the settings, a store and the current time, so that the command line
//! and the HTTP API (`/.clearance/api/v1/evidence/...`) share it.

mod at;
mod export;

pub use at::{ComplianceAt, DirectoryAt, at, render_text};
pub use export::{
    Export, ExportDirError, ExportFile, Filter, Table, export, files, response_json, write_dir,
};

use crate::domain::audit::{ChainBreak, ChainId, verify_chain as verify};
use crate::store::{AuditChain, FollowUpStore, StoreError};
use chrono::{DateTime, NaiveDate, Utc};

/// A command-line or query time: a date (`YYYY-MM-DD`, meaning 00:00 UTC) or an RFC 3339 time.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

/// What to say about a time that [`parse_time`] refused, naming the flag or parameter.
pub fn time_hint(name: &str, text: &str) -> String {
    format!(
        "{name} {text:?}: use a date like 2026-12-31 (00:00 UTC) or an RFC 3339 time like 2026-12-31T09:30:00Z"
    )
}

/// The outcome of `clearance audit verify`.
pub enum ChainCheck {
    Intact {
        entries: u64,
        chains: usize,
    },
    /// The first chain (by name) that does not verify, and where.
    Broken {
        chain: ChainId,
        at: ChainBreak,
    },
}

/// Reads every audit chain and checks every link under `key`.
pub async fn verify_chain(store: &dyn FollowUpStore, key: &[u8]) -> Result<ChainCheck, StoreError> {
    let chains = store.audit_chains().await?;
    Ok(check_chains(key, &chains))
}

/// Checks every chain under `key`; names the first chain and entry that does not verify.
pub fn check_chains(key: &[u8], chains: &[AuditChain]) -> ChainCheck {
    let mut entries = 0;
    for c in chains {
        match verify(key, &c.id, &c.lines, &c.head) {
            Ok(n) => entries += n,
            Err(at) => {
                return ChainCheck::Broken {
                    chain: c.id.clone(),
                    at,
                };
            }
        }
    }
    ChainCheck::Intact {
        entries,
        chains: chains.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_dates_or_rfc3339() {
        assert_eq!(
            parse_time("2026-03-01").map(|t| t.to_rfc3339()),
            Some("2026-03-01T00:00:00+00:00".into())
        );
        assert_eq!(
            parse_time("2026-03-01T10:00:00+02:00").map(|t| t.to_rfc3339()),
            Some("2026-03-01T08:00:00+00:00".into())
        );
        assert_eq!(parse_time("yesterday"), None);
        assert!(time_hint("--from", "x").starts_with("--from \"x\": use a date"));
    }
    use crate::store::memory::MemoryStore;
    use crate::store::{RecordStore, audit_event};

    #[tokio::test]
    async fn memory_store_chain_verifies() {
        let store = MemoryStore::default().with_audit_key(b"k".repeat(32));
        store
            .append_audit(&audit_event::config_loaded(
                chrono::Utc::now(),
                "abc",
                "clearance.toml",
            ))
            .await
            .unwrap();
        assert!(
            store
                .history(&crate::domain::SubjectKey::parse("a").unwrap())
                .await
                .unwrap()
                .is_empty()
        );
        match verify_chain(&store, &b"k".repeat(32)).await.unwrap() {
            ChainCheck::Intact { entries, chains } => assert_eq!((entries, chains), (1, 1)),
            ChainCheck::Broken { at, .. } => panic!("{at}"),
        }
        assert!(matches!(
            verify_chain(&store, b"another key").await.unwrap(),
            ChainCheck::Broken {
                chain: ChainId::Clearance,
                ..
            }
        ));
    }
}
