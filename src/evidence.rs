//! Audit evidence: checking the audit chain (`clearance audit verify`).

use crate::domain::audit::{ChainBreak, verify};
use crate::store::{FollowUpStore, StoreError};

/// The outcome of `clearance audit verify`.
pub enum ChainCheck {
    Intact { entries: u64 },
    Broken(ChainBreak),
}

/// Reads the whole chain and checks every link under `key`.
pub async fn verify_chain(store: &dyn FollowUpStore, key: &[u8]) -> Result<ChainCheck, StoreError> {
    let (lines, head) = store.audit_chain().await?;
    Ok(match verify(key, &lines, &head) {
        Ok(entries) => ChainCheck::Intact { entries },
        Err(b) => ChainCheck::Broken(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
            ChainCheck::Intact { entries } => assert_eq!(entries, 1),
            ChainCheck::Broken(b) => panic!("{b}"),
        }
        assert!(matches!(
            verify_chain(&store, b"another key").await.unwrap(),
            ChainCheck::Broken(_)
        ));
    }
}
