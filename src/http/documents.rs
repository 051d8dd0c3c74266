//! Documents published at a URL: fetched at start and re-checked every few minutes. A document
//! whose content no longer matches its pinned SHA-256 is withdrawn (not shown, not acceptable)
//! until the configuration names a new version and hash.

use crate::domain::Policy;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often URL documents are fetched again to notice changes.
const RECHECK: Duration = Duration::from_secs(600);
/// Retry delay after a failed fetch.
const RETRY: Duration = Duration::from_secs(15);

/// The texts of URL documents that currently match their pinned hash, by requirement id.
#[derive(Default)]
pub struct Documents {
    texts: ArcSwap<HashMap<String, String>>,
}

impl Documents {
    pub fn get(&self, requirement: &str) -> Option<String> {
        self.texts.load().get(requirement).cloned()
    }

    fn set(&self, requirement: &str, text: Option<String>) {
        let mut next = HashMap::clone(&self.texts.load());
        match text {
            Some(t) => next.insert(requirement.to_owned(), t),
            None => next.remove(requirement),
        };
        self.texts.store(Arc::new(next));
    }

    /// Starts one background task per URL document.
    pub fn spawn(self: &Arc<Self>, policy: &Policy, http: reqwest::Client) {
        for requirement in &policy.requirements {
            let Some(doc) = &requirement.document else {
                continue;
            };
            let Some(url) = doc.url.clone() else {
                continue;
            };
            let (this, http, id, sha) = (
                Arc::clone(self),
                http.clone(),
                requirement.id.to_string(),
                doc.sha256.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let wait = match fetch(&http, &url).await {
                        Ok(text) if hex::encode(Sha256::digest(text.as_bytes())) == sha => {
                            this.set(&id, Some(text));
                            RECHECK
                        }
                        Ok(_) => {
                            tracing::error!(
                                requirement = %id,
                                document.url = %url,
                                "the document changed without a new version; it is withdrawn until the configuration names the new version and SHA-256"
                            );
                            this.set(&id, None);
                            RECHECK
                        }
                        Err(e) => {
                            // Keep the last good text: a blip of the intranet must not block people.
                            tracing::warn!(requirement = %id, document.url = %url, error = %e, "document fetch failed");
                            RETRY
                        }
                    };
                    tokio::time::sleep(wait).await;
                }
            });
        }
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    http.get(url).send().await?.error_for_status()?.text().await
}
