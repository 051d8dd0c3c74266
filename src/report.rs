//! Reports over everyone Clearance knows: `clearance report would-block --at DATE` lists who
//! would be blocked on that date, and why, from the records on file now.

use crate::config::Settings;
use crate::domain::{Decision, Principal, Requirement, Selector, Unmet, evaluate};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One person who would be blocked.
#[derive(Debug, Clone, Serialize)]
pub struct WouldBlock {
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub person_type: Option<String>,
    pub manager: Option<String>,
    /// False when the person never signed in: their groups and person type are unknown, so
    /// every requirement is assumed to apply (the report errs on the side of listing them).
    pub profile_known: bool,
    pub missing: Vec<Unmet>,
}

/// Evaluates every known subject against every requirement at `at`.
pub async fn would_block(
    settings: &Settings,
    store: &dyn Store,
    at: DateTime<Utc>,
) -> Result<Vec<WouldBlock>, StoreError> {
    let assume_all_apply: Vec<Requirement> = settings
        .policy
        .requirements
        .iter()
        .cloned()
        .map(|mut r| {
            r.applies_to = Selector::default();
            r
        })
        .collect();
    let mut out = Vec::new();
    for subject in store.subjects().await? {
        let records = store.records(&subject).await?;
        let profile = store.profile(&subject).await?;
        let profile_known = profile.is_some();
        let principal = profile.unwrap_or_else(|| Principal::bare(subject.clone()));
        let evaluation = if profile_known {
            evaluate(&settings.policy.requirements, &principal, &records, at)
        } else {
            evaluate(&assume_all_apply, &principal, &records, at)
        };
        if let Decision::Deny { missing } = evaluation.decision() {
            out.push(WouldBlock {
                subject: subject.to_string(),
                name: principal.name.clone(),
                email: principal.email.clone(),
                person_type: principal.person_type.clone(),
                manager: principal.manager.clone(),
                profile_known,
                missing,
            });
        }
    }
    Ok(out)
}

/// A plain-text table for people.
pub fn render_text(rows: &[WouldBlock], at: DateTime<Utc>) -> String {
    let mut text = format!(
        "{} people would be blocked on {}\n",
        rows.len(),
        at.format("%Y-%m-%d %H:%M UTC")
    );
    for row in rows {
        let why: Vec<String> = row
            .missing
            .iter()
            .map(|m| format!("{} ({})", m.requirement, m.reason.as_str()))
            .collect();
        text.push_str(&format!(
            "{}\t{}\tmanager: {}\t{}{}\n",
            row.subject,
            row.person_type.as_deref().unwrap_or("-"),
            row.manager.as_deref().unwrap_or("-"),
            why.join(", "),
            if row.profile_known {
                ""
            } else {
                "\t(never signed in: selectors not applied)"
            }
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Record, RequirementId, Source, SubjectKey};
    use crate::store::RecordStore;
    use crate::store::memory::MemoryStore;
    use chrono::TimeZone;

    #[tokio::test]
    async fn lists_people_whose_completions_will_have_expired() {
        let settings = crate::config::from_toml_str(
            r#"
[server]
public_url = "https://gate.example.com"
[oidc]
issuer = "https://login.example.com"
client_id = "c"
client_secret = "s"
[session]
cookie_secret = "dGVzdC1jb29raWUtc2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWNsZWFyYW5jZQ=="

[audit]
key = "test-audit-key-0123456789abcdefghijklmnop"
[[requirements]]
id = "training"
kind = "training"
title = "Training"
version = "1"
validity_days = 30
[[routes]]
upstream = "http://127.0.0.1:8080"
"#,
        )
        .unwrap();
        let store = MemoryStore::default();
        let done = |who: &str, day: u32| Record {
            subject: SubjectKey::parse(who).unwrap(),
            requirement: RequirementId("training".into()),
            version: "1".parse().unwrap(),
            completed_at: Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap(),
            expires_at: None,
            source: Source::Csv,
            evidence: Default::default(),
            recorded_by: "t".into(),
            recorded_at: Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap(),
            revoked_at: None,
        };
        store
            .put_record(&done("early@example.com", 1))
            .await
            .unwrap();
        store
            .put_record(&done("late@example.com", 20))
            .await
            .unwrap();
        let at = Utc.with_ymd_and_hms(2026, 2, 5, 0, 0, 0).unwrap();
        let rows = would_block(&settings, &store, at).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].subject, "early@example.com");
        assert_eq!(rows[0].missing[0].reason.as_str(), "expired");
        assert!(!rows[0].profile_known);
        let text = render_text(&rows, at);
        assert!(
            text.starts_with("1 people would be blocked on 2026-02-05"),
            "{text}"
        );
        assert!(text.contains("training (expired)"));
    }
}
