//! Documents published at a URL: fetched at start and re-checked every few minutes. A document
//! whose content no longer matches its pinned SHA-256 is withdrawn (not shown, not acceptable)
//! until the configuration names a new version and hash.

use crate::domain::Policy;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often URL documents are fetched again to notice changes.
const RECHECK: Duration = Duration::from_secs(600);
/// Retry delay after a failed fetch.
const RETRY: Duration = Duration::from_secs(15);

/// The texts of URL documents that currently match their pinned hash, by requirement id.
#[derive(Default)]
pub struct Documents {
    texts: ArcSwap<HashMap<String, String>>,
    /// Requirement id -> (URL, SHA-256) its task fetches; a task whose pair is no longer here
    /// (the configuration was reloaded with another URL or hash) stops.
    wanted: Mutex<HashMap<String, (String, String)>>,
    http: Mutex<Option<reqwest::Client>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        *locked(&self.http) = Some(http);
        self.follow(policy);
    }

    fn is_wanted(&self, id: &str, url: &str, sha: &str) -> bool {
        locked(&self.wanted)
            .get(id)
            .is_some_and(|(u, s)| u == url && s == sha)
    }

    /// Follows a (reloaded) policy: tasks start for new or changed URL documents, and those of
    /// removed or changed ones stop and their texts are dropped.
    pub fn follow(self: &Arc<Self>, policy: &Policy) {
        let Some(http) = locked(&self.http).clone() else {
            return;
        };
        let next: HashMap<String, (String, String)> = policy
            .requirements
            .iter()
            .filter_map(|r| {
                let doc = r.document.as_ref()?;
                Some((r.id.to_string(), (doc.url.clone()?, doc.sha256.clone())))
            })
            .collect();
        let mut wanted = locked(&self.wanted);
        for (id, pair) in wanted.iter() {
            if next.get(id) != Some(pair) {
                self.set(id, None);
            }
        }
        for (id, (url, sha)) in &next {
            if wanted.get(id) == Some(&(url.clone(), sha.clone())) {
                continue;
            }
            let (this, http, id, url, sha) = (
                Arc::clone(self),
                http.clone(),
                id.clone(),
                url.clone(),
                sha.clone(),
            );
            tokio::spawn(async move {
                loop {
                    if !this.is_wanted(&id, &url, &sha) {
                        break;
                    }
                    let wait = match fetch(&http, &url).await {
                        Ok(_) if !this.is_wanted(&id, &url, &sha) => break,
                        Ok(text) if hex::encode(Sha256::digest(text.as_bytes())) == sha => {
                            this.set(&id, Some(text));
                            RECHECK
                        }
                        Ok(_) => {
                            tracing::error!(
                                requirement.id = %id,
                                document.url = %url,
                                "the document changed without a new version; it is withdrawn until the configuration names the new version and SHA-256"
                            );
                            this.set(&id, None);
                            RECHECK
                        }
                        Err(e) => {
                            // Keep the last good text: a blip of the intranet must not block people.
                            tracing::warn!(requirement.id = %id, document.url = %url, error.message = %e, "document fetch failed");
                            RETRY
                        }
                    };
                    tokio::time::sleep(wait).await;
                }
            });
        }
        *wanted = next;
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    http.get(url).send().await?.error_for_status()?.text().await
}
