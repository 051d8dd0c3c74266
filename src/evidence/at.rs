//! `clearance evidence at`: was a person compliant at a given instant, and on which records?
//! The records are replayed from the history as they stood then; the directory entry in force
//! then comes from the audit chain's `directory.changed` entries.

use crate::config::Settings;
use crate::domain::audit::{ChainId, parse_line};
use crate::domain::exemption::exempt_until;
use crate::domain::followup::compliant;
use crate::domain::{
    Decision, Exemption, Person, Principal, Record, RequirementStatus, Status, SubjectKey,
    evaluate, records_as_of,
};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The directory entry in force at the instant asked about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DirectoryAt {
    pub active: bool,
    pub user_type: Option<String>,
    pub manager: Option<String>,
    pub sponsor: Option<String>,
    pub source: crate::domain::DirectorySource,
    /// When this entry was written.
    pub since: DateTime<Utc>,
}

impl From<&Person> for DirectoryAt {
    fn from(p: &Person) -> Self {
        Self {
            active: p.active && !p.deleted,
            user_type: p.user_type.clone(),
            manager: p.manager.clone(),
            sponsor: p.sponsor.clone(),
            source: p.source,
            since: p.updated_at,
        }
    }
}

/// The answer to "was `subject` compliant at `at`, and on which records?".
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComplianceAt {
    pub subject: SubjectKey,
    pub at: DateTime<Utc>,
    /// Every applicable requirement was met (or in its grace period) at `at`.
    pub compliant: bool,
    /// What the gate would have decided for a route needing every requirement: `warn` and
    /// `monitor` items let people through, and so do exemptions active then. An inactive
    /// directory entry refuses.
    pub admitted: bool,
    pub decision: Decision,
    /// Whether the person had signed in by now (their groups and type are from that sign-in).
    pub profile_known: bool,
    pub person_type: Option<String>,
    /// Each applicable requirement with its state at `at`.
    pub requirements: Vec<RequirementStatus>,
    /// The records on file at `at` (the current one per requirement, then).
    pub records: Vec<Record>,
    /// For each met requirement, the record it was met on.
    pub met_on: Vec<Record>,
    pub exemptions_active: Vec<Exemption>,
    /// The directory entry in force at `at`, if the person was in the directory then.
    pub directory: Option<DirectoryAt>,
    /// The first admitted access to a gated route, if it was before `at`.
    pub first_access: Option<DateTime<Utc>>,
}

/// The directory entry in force at `at`: the last `directory.changed` entry for the subject up
/// to then, or (for entries older than the chain) the current entry if written by then.
async fn directory_at(
    store: &dyn Store,
    subject: &SubjectKey,
    at: DateTime<Utc>,
) -> Result<Option<DirectoryAt>, StoreError> {
    let chain = store.audit_chain(&ChainId::Directory).await?;
    let from_chain = chain.lines.iter().rev().find_map(|line| {
        let (_, entry) = parse_line(line).ok()?;
        let e = entry.event;
        if e.kind != "directory.changed"
            || e.subject.as_deref() != Some(subject.as_str())
            || e.time > at
        {
            return None;
        }
        serde_json::from_value::<Person>(e.detail).ok()
    });
    if let Some(p) = from_chain {
        return Ok(Some(DirectoryAt::from(&p)));
    }
    Ok(store
        .person(subject)
        .await?
        .filter(|p| p.updated_at <= at)
        .map(|p| DirectoryAt::from(&p)))
}

/// Replays `subject`'s history to `at` and evaluates every configured requirement.
pub async fn at(
    settings: &Settings,
    store: &dyn Store,
    subject: &SubjectKey,
    at: DateTime<Utc>,
) -> Result<ComplianceAt, StoreError> {
    let history = store.history(subject).await?;
    let records = records_as_of(&history, at);
    let profile = store.profile(subject).await?;
    let profile_known = profile.is_some();
    let mut principal = profile.unwrap_or_else(|| Principal::bare(subject.clone()));
    let directory = directory_at(store, subject, at).await?;
    if let Some(t) = directory.as_ref().and_then(|d| d.user_type.clone()) {
        principal.person_type = Some(t);
    }
    let evaluation = evaluate(&settings.policy.requirements, &principal, &records, at);
    let exemptions_active: Vec<Exemption> = store
        .all_exemptions()
        .await?
        .into_iter()
        .filter(|e| &e.subject == subject && e.active_at(at))
        .collect();
    let decision = evaluation.decision();
    let active = directory.as_ref().is_none_or(|d| d.active);
    let admitted = active
        && match &decision {
            Decision::Allow { .. } => true,
            Decision::Deny { missing } => exempt_until(&exemptions_active, missing, at).is_some(),
        };
    let met_on = evaluation
        .statuses
        .iter()
        .filter(|s| !matches!(s.status, Status::Unmet { .. }))
        .filter_map(|s| {
            records
                .iter()
                .filter(|r| r.requirement == s.requirement)
                .max_by_key(|r| r.recorded_at)
                .cloned()
        })
        .collect();
    let first_access = store.first_access(subject).await?.filter(|t| *t <= at);
    Ok(ComplianceAt {
        subject: subject.clone(),
        at,
        compliant: compliant(&evaluation),
        admitted,
        decision,
        profile_known,
        person_type: principal.person_type.clone(),
        requirements: evaluation.statuses,
        records,
        met_on,
        exemptions_active,
        directory,
        first_access,
    })
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
}

/// The answer for people.
pub fn render_text(c: &ComplianceAt) -> String {
    let mut text = format!(
        "{} at {}: {}{}\n",
        c.subject,
        c.at.to_rfc3339(),
        if c.compliant {
            "COMPLIANT"
        } else {
            "NOT COMPLIANT"
        },
        match (c.compliant, c.admitted) {
            (false, true) => " (but admitted: warn/monitor items or an exemption)",
            (true, false) => " (but refused: inactive in the directory)",
            _ => "",
        }
    );
    if !c.profile_known {
        text.push_str(
            "  (never signed in: groups unknown; requirements with a group selector may be left out)\n",
        );
    }
    text.push_str("Requirements:\n");
    for s in &c.requirements {
        let state = match &s.status {
            Status::Met { .. } => "met".to_owned(),
            Status::InGrace { due } => format!("in grace until {}", due.to_rfc3339()),
            Status::Unmet { reason } => format!("NOT MET ({})", reason.as_str()),
        };
        text.push_str(&format!("  {:<28} {state}", s.requirement.as_str()));
        if let Some(r) = c.met_on.iter().find(|r| r.requirement == s.requirement) {
            text.push_str(&format!(
                "; on record version {} completed {} ({}, by {}, recorded {})",
                r.version,
                r.completed_at.to_rfc3339(),
                serde_json::to_value(r.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                r.recorded_by,
                r.recorded_at.to_rfc3339()
            ));
            if let Some(v) = s.valid_until {
                text.push_str(&format!(", valid until {}", v.to_rfc3339()));
            }
        }
        text.push('\n');
    }
    match &c.directory {
        Some(d) => text.push_str(&format!(
            "Directory: {} ({:?} entry since {}; manager {}, sponsor {})\n",
            if d.active { "active" } else { "INACTIVE" },
            d.source,
            d.since.to_rfc3339(),
            d.manager.as_deref().unwrap_or("-"),
            d.sponsor.as_deref().unwrap_or("-"),
        )),
        None => text.push_str("Directory: no entry at that time\n"),
    }
    if c.exemptions_active.is_empty() {
        text.push_str("Exemptions active: none\n");
    } else {
        for e in &c.exemptions_active {
            text.push_str(&format!(
                "Exemption {} active: {} until {} (granted by {}{})\n",
                e.id,
                if e.requirements.is_empty() {
                    "all requirements".to_owned()
                } else {
                    e.requirements
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                when(e.expires_at),
                e.decided_by.as_deref().unwrap_or("-"),
                if e.break_glass { ", break-glass" } else { "" }
            ));
        }
    }
    text.push_str(&format!(
        "First admitted access: {}\n",
        when(c.first_access)
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DirectorySource, RequirementId, Source};
    use crate::store::{FollowUpStore, RecordStore, memory::MemoryStore};

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + h * 3600, 0).unwrap()
    }

    fn done(req: &str, version: &str, h: i64) -> Record {
        Record {
            subject: SubjectKey::parse("a@x").unwrap(),
            requirement: RequirementId(req.into()),
            version: version.parse().unwrap(),
            completed_at: t(h),
            expires_at: None,
            source: Source::Api,
            evidence: Default::default(),
            recorded_by: "admin-token:t".into(),
            recorded_at: t(h),
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn before_and_after_completion() {
        let settings = crate::testutil::settings();
        let store = MemoryStore::default();
        let a = SubjectKey::parse("a@x").unwrap();
        store
            .put_record(&done("confidentiality-agreement", "1", 1))
            .await
            .unwrap();
        store
            .put_record(&done("acceptable-use-policy", "3.0", 1))
            .await
            .unwrap();
        store
            .put_record(&done("security-awareness", "2026.1", 5))
            .await
            .unwrap();
        let mut p = Person::new(a.clone(), DirectorySource::Csv, t(0));
        p.manager = Some("boss@x".into());
        store.put_person(&p, "csv:x").await.unwrap();
        store.mark_first_access(&a, t(2)).await.unwrap();

        let before = at(&settings, &store, &a, t(3)).await.unwrap();
        assert!(!before.compliant && !before.admitted);
        assert_eq!(before.records.len(), 2);
        assert_eq!(before.met_on.len(), 2);
        assert_eq!(before.first_access, Some(t(2)));
        let text = render_text(&before);
        assert!(text.contains("NOT COMPLIANT"), "{text}");
        assert!(
            text.contains("security-awareness           NOT MET (never_completed)"),
            "{text}"
        );
        assert!(text.contains("Directory: active"), "{text}");

        let after = at(&settings, &store, &a, t(6)).await.unwrap();
        assert!(after.compliant && after.admitted);
        assert!(
            after
                .met_on
                .iter()
                .any(|r| r.requirement.as_str() == "security-awareness" && r.completed_at == t(5))
        );
        assert!(render_text(&after).contains(": COMPLIANT\n"));

        // Deactivated later: not in force at t(6), in force at t(8).
        let mut gone = p.clone();
        gone.active = false;
        gone.updated_at = t(7);
        store.put_person(&gone, "csv:x").await.unwrap();
        assert!(at(&settings, &store, &a, t(6)).await.unwrap().admitted);
        let late = at(&settings, &store, &a, t(8)).await.unwrap();
        assert!(late.compliant && !late.admitted);
        assert_eq!(late.directory.map(|d| d.active), Some(false));
        let early = at(&settings, &store, &a, t(0) - chrono::Duration::hours(1))
            .await
            .unwrap();
        assert!(early.directory.is_none() && early.first_access.is_none());
    }
}
