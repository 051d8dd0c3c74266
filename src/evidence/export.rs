//! `clearance evidence export`: every piece of evidence about the selected people as tables
//! (training records, acceptances, denials, cases, actions, exemptions, checklists, access before
//! agreement), each written as CSV and JSON, with a manifest of SHA-256 hashes and the audit
//! chain's head.

use crate::config::Settings;
use crate::domain::audit::{ChainId, parse_line};
use crate::domain::followup::{Cell, checklist};
use crate::domain::{
    HistoryEntry, Principal, Record, RequirementKind, SubjectKey, evaluate, records_as_of,
};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Which evidence to export: events between `from` and `to` (inclusive, either end open), for
/// `subjects` (everyone known when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub subjects: Vec<SubjectKey>,
}

impl Filter {
    fn covers(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t <= to)
    }

    /// Whether something in force from `start` until `end` (open-ended when none) overlaps the
    /// period.
    fn overlaps(&self, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> bool {
        self.to.is_none_or(|to| start <= to) && self.from.is_none_or(|f| end.is_none_or(|e| e >= f))
    }
}

/// One exported table: named columns and rows of JSON values.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    fn new(name: &'static str, columns: &'static [&'static str]) -> Self {
        Self {
            name,
            columns,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<Value>) {
        self.rows.push(row);
    }

    /// The rows as JSON objects, keyed by column.
    pub fn objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                let map: Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| ((*c).to_owned(), v.clone()))
                    .collect();
                Value::Object(map)
            })
            .collect()
    }

    /// CSV with a header line; empty cells for nulls, JSON text for lists and objects.
    pub fn csv(&self) -> Result<Vec<u8>, ExportDirError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let csv_error = |e: csv::Error| ExportDirError::Render(e.to_string());
        writer.write_record(self.columns).map_err(csv_error)?;
        for row in &self.rows {
            writer
                .write_record(row.iter().map(cell_text))
                .map_err(csv_error)?;
        }
        writer
            .into_inner()
            .map_err(|e| ExportDirError::Render(e.to_string()))
    }
}

/// A CSV cell. Text that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return; a user agent or a comment can be anything) gets a leading `'`,
/// which spreadsheets show as text (OWASP "CSV injection"). The JSON files hold the exact values.
fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The audit chains as found at export time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainSummary {
    /// Entries in all chains together.
    pub entries: usize,
    /// Whether every link of every chain verified under the configured audit key.
    pub verified: bool,
    /// The first chain and entry that does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// How many chains there are (every person's, the directory's, Clearance's own).
    pub chains: usize,
    /// SHA-256 over the heads of every chain, one line `<chain> <seq> <mac>\n` each, ordered by
    /// chain name: one value that pins every chain, without naming people outside the export.
    pub heads_sha256: String,
    /// The heads of the chains of the people exported and of the service-wide chains, ordered
    /// by chain name.
    pub heads: Vec<ChainHeadSummary>,
}

/// One chain's head: its last entry's number and seal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainHeadSummary {
    pub chain: String,
    pub seq: u64,
    pub mac: String,
    pub entries: usize,
}

impl ChainSummary {
    fn of(key: &[u8], chains: &[crate::store::AuditChain], people: &[SubjectKey]) -> Self {
        let mut digest = Sha256::new();
        for c in chains {
            digest.update(format!("{} {} {}\n", c.id.name(), c.head.seq, c.head.mac).as_bytes());
        }
        let exported = |id: &ChainId| match id {
            ChainId::Subject(s) => people.iter().any(|p| p.as_str() == s),
            ChainId::Directory | ChainId::Clearance | ChainId::Legacy => true,
        };
        let problem = match crate::evidence::check_chains(key, chains) {
            crate::evidence::ChainCheck::Intact { .. } => None,
            crate::evidence::ChainCheck::Broken { chain, at } if exported(&chain) => {
                Some(format!("chain {chain}: {at}"))
            }
            // Another person's chain: broken, without naming them in this export.
            crate::evidence::ChainCheck::Broken { .. } => Some(
                "the chain of a person outside this export does not verify; run `clearance audit verify`"
                    .into(),
            ),
        };
        Self {
            entries: chains.iter().map(|c| c.lines.len()).sum(),
            verified: problem.is_none(),
            problem,
            chains: chains.len(),
            heads_sha256: hex::encode(digest.finalize()),
            heads: chains
                .iter()
                .filter(|c| exported(&c.id))
                .map(|c| ChainHeadSummary {
                    chain: c.id.name(),
                    seq: c.head.seq,
                    mac: c.head.mac.clone(),
                    entries: c.lines.len(),
                })
                .collect(),
        }
    }
}

/// Everything exported, before it is rendered into files.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub generated_at: DateTime<Utc>,
    pub filter: Filter,
    pub people: Vec<SubjectKey>,
    /// The configuration's SHA-256: given by the caller (the file it read), else the last
    /// `config.loaded` entry of the audit chain (what the server last started with).
    pub config_sha256: Option<String>,
    pub chain: ChainSummary,
    pub tables: Vec<Table>,
}

const TRAINING: &[&str] = &[
    "subject",
    "requirement",
    "event",
    "version",
    "completed_at",
    "expires_at",
    "source",
    "recorded_by",
    "recorded_at",
    "revoked_at",
    "reason",
    "evidence",
];

const ACCEPTANCES: &[&str] = &[
    "subject",
    "requirement",
    "kind",
    "event",
    "version",
    "completed_at",
    "source",
    "recorded_by",
    "recorded_at",
    "revoked_at",
    "reason",
    "document_sha256",
    "document",
    "client_address",
    "user_agent",
    "session",
    "evidence",
];

const DENIALS: &[&str] = &[
    "id",
    "time",
    "subject",
    "email",
    "name",
    "person_type",
    "manager",
    "host",
    "path",
    "route",
    "missing",
    "would_deny_only",
    "exempt_until",
    "inactive",
    "request_id",
    "client_addr",
    "user_agent",
];

const CASES: &[&str] = &[
    "id",
    "subject",
    "opened_at",
    "last_seen",
    "count",
    "apps",
    "missing",
    "closed_at",
];

const ACTIONS: &[&str] = &["id", "case_id", "subject", "kind", "by", "at", "comment"];

const EXEMPTIONS: &[&str] = &[
    "id",
    "subject",
    "requirements",
    "reason",
    "state",
    "break_glass",
    "requested_by",
    "requested_at",
    "decided_by",
    "decided_at",
    "expires_at",
    "duration_hours",
    "comment",
];

const CHECKLISTS: &[&str] = &[
    "subject",
    "evaluated_at",
    "start_date",
    "requirement",
    "state",
    "due_in_days",
    "completed_at",
    "valid_until",
    "checklist_completed_at",
    "days_to_compliant",
];

const ACCESS_BEFORE_AGREEMENT: &[&str] = &[
    "subject",
    "first_access",
    "requirement",
    "first_signed_at",
    "first_signed_version",
    "first_recorded_at",
    "exception",
    "finding",
];

fn t(v: Option<DateTime<Utc>>) -> Value {
    v.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn s(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

fn evidence_text(evidence: &Map<String, Value>, key: &str) -> Value {
    match evidence.get(key) {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Null) | None => Value::Null,
        Some(other) => Value::String(other.to_string()),
    }
}

/// For each recorded entry, when a later revocation (before the next record of the same
/// requirement) withdrew it.
fn revocation_times(history: &[HistoryEntry]) -> Vec<Option<DateTime<Utc>>> {
    let mut out = vec![None; history.len()];
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    for (i, entry) in history.iter().enumerate() {
        match entry {
            HistoryEntry::Recorded(r) => {
                open.insert(r.requirement.0.clone(), i);
            }
            HistoryEntry::Revoked(v) => {
                if let Some(j) = open.remove(&v.requirement.0)
                    && let Some(slot) = out.get_mut(j)
                {
                    *slot = Some(v.revoked_at);
                }
            }
            HistoryEntry::Declined(_) => {}
        }
    }
    out
}

/// The person as the gate would see them: their last sign-in profile (or only the subject),
/// with the directory's user type, which is authoritative.
fn principal_of(
    subject: &SubjectKey,
    profile: Option<Principal>,
    directory_type: Option<&String>,
) -> Principal {
    let mut principal = profile.unwrap_or_else(|| Principal::bare(subject.clone()));
    if let Some(t) = directory_type {
        principal.person_type = Some(t.clone());
    }
    principal
}

/// Everyone to export: the filter's subjects, or everyone known (`known`: the directory and
/// exemptions; plus records, profiles and cases).
async fn people(
    store: &dyn Store,
    filter: &Filter,
    known: impl Iterator<Item = SubjectKey>,
) -> Result<Vec<SubjectKey>, StoreError> {
    if !filter.subjects.is_empty() {
        let set: BTreeSet<SubjectKey> = filter.subjects.iter().cloned().collect();
        return Ok(set.into_iter().collect());
    }
    let mut all: BTreeSet<SubjectKey> = known.collect();
    all.extend(store.subjects().await?);
    all.extend(store.case_subjects().await?);
    Ok(all.into_iter().collect())
}

/// Collects the evidence. `config_sha256` is the configuration file's hash when the caller read
/// it; otherwise the last `config.loaded` entry of the audit chain supplies it.
pub async fn export(
    settings: &Settings,
    store: &dyn Store,
    filter: &Filter,
    config_sha256: Option<String>,
    now: DateTime<Utc>,
) -> Result<Export, StoreError> {
    let policy = &settings.policy;
    let exemptions = store.all_exemptions().await?;
    let directory: BTreeMap<SubjectKey, crate::domain::Person> = store
        .people()
        .await?
        .into_iter()
        .map(|p| (p.subject.clone(), p))
        .collect();
    let subjects = people(
        store,
        filter,
        directory
            .keys()
            .cloned()
            .chain(exemptions.iter().map(|e| e.subject.clone())),
    )
    .await?;
    let selected: BTreeSet<&SubjectKey> = subjects.iter().collect();
    let as_of = filter.to.unwrap_or(now).min(now);

    let mut training = Table::new("training-records", TRAINING);
    let mut acceptances = Table::new("acceptances", ACCEPTANCES);
    let mut cases_t = Table::new("cases", CASES);
    let mut actions_t = Table::new("actions", ACTIONS);
    let mut checklists = Table::new("checklists", CHECKLISTS);
    let mut abba = Table::new("access-before-agreement", ACCESS_BEFORE_AGREEMENT);

    for subject in &subjects {
        let history = store.history(subject).await?;
        let revoked = revocation_times(&history);
        for (entry, revoked_at) in history.iter().zip(&revoked) {
            history_rows(
                policy,
                subject,
                entry,
                *revoked_at,
                filter,
                &mut training,
                &mut acceptances,
            );
        }

        // Actions by when they were taken; cases by when they opened, and every case an
        // exported action refers to.
        let actions: Vec<_> = store
            .actions(subject)
            .await?
            .into_iter()
            .filter(|a| filter.covers(a.at))
            .collect();
        let referred: BTreeSet<&str> = actions.iter().map(|a| a.case_id.as_str()).collect();
        for case in store.cases(subject).await? {
            if filter.covers(case.opened_at) || referred.contains(case.id.as_str()) {
                cases_t.push(vec![
                    json!(case.id),
                    json!(case.subject),
                    t(Some(case.opened_at)),
                    t(Some(case.last_seen)),
                    json!(case.count),
                    json!(case.apps),
                    json!(case.missing),
                    t(case.closed_at),
                ]);
            }
        }
        for action in &actions {
            actions_t.push(vec![
                json!(action.id),
                json!(action.case_id),
                json!(action.subject),
                json!(action.kind.as_str()),
                json!(action.by),
                t(Some(action.at)),
                json!(action.comment),
            ]);
        }

        let person = directory.get(subject);
        let principal = principal_of(
            subject,
            store.profile(subject).await?,
            person.and_then(|p| p.user_type.as_ref()),
        );
        let records = records_as_of(&history, as_of);
        let evaluation = evaluate(&policy.requirements, &principal, &records, as_of);
        let list = checklist(
            subject,
            person.and_then(|p| p.start_date),
            &evaluation,
            as_of,
            settings.followup.manage.due_soon,
        );
        for item in &list.items {
            let (state, days) = match &item.state {
                Cell::DueIn { days } => ("due", json!(days)),
                other => (other.class(), Value::Null),
            };
            checklists.push(vec![
                json!(subject),
                t(Some(as_of)),
                list.start_date.map_or(Value::Null, |d| json!(d)),
                json!(item.requirement),
                json!(state),
                days,
                t(item.completed_at),
                t(item.valid_until),
                t(list.completed_at),
                list.days_to_compliant.map_or(Value::Null, |d| json!(d)),
            ]);
        }

        let first_access = store.first_access(subject).await?;
        for req in policy
            .requirements
            .iter()
            .filter(|r| r.kind == RequirementKind::Agreement && r.applies_to(&principal))
        {
            // A withdrawn signature (revoked, voided) never counts as signing.
            let first: Option<&Record> = history
                .iter()
                .zip(&revoked)
                .filter_map(|(e, revoked_at)| match e {
                    HistoryEntry::Recorded(r)
                        if r.requirement == req.id && revoked_at.is_none() =>
                    {
                        Some(r)
                    }
                    _ => None,
                })
                .min_by_key(|r| r.completed_at);
            let signed = first.map(|r| r.completed_at);
            let (exception, finding) = match (first_access, signed) {
                (Some(a), Some(s)) if a < s => (true, "access before signing"),
                (Some(_), None) => (true, "access without a signature"),
                (Some(_), Some(_)) => (false, "signed before first access"),
                (None, Some(_)) => (false, "signed, no access yet"),
                (None, None) => (false, "not signed, no access yet"),
            };
            abba.push(vec![
                json!(subject),
                t(first_access),
                json!(req.id),
                t(signed),
                first.map_or(Value::Null, |r| json!(r.version)),
                t(first.map(|r| r.recorded_at)),
                json!(exception),
                json!(finding),
            ]);
        }
    }

    let mut denials = Table::new("denials", DENIALS);
    for (id, e) in store.denials_between(filter.from, filter.to).await? {
        let Ok(subject) = SubjectKey::parse(&e.subject) else {
            continue;
        };
        if !selected.contains(&subject) {
            continue;
        }
        denials.push(vec![
            json!(id),
            t(Some(e.time)),
            json!(e.subject),
            s(e.email.as_deref()),
            s(e.name.as_deref()),
            s(e.person_type.as_deref()),
            s(e.manager.as_deref()),
            json!(e.host),
            json!(e.path),
            json!(e.route),
            json!(e.missing),
            json!(e.would_deny_only),
            t(e.exempt_until),
            json!(e.inactive),
            json!(e.request_id),
            json!(e.client_addr),
            s(e.user_agent.as_deref()),
        ]);
    }

    let mut exemptions_t = Table::new("exemptions", EXEMPTIONS);
    for e in exemptions
        .iter()
        .filter(|e| selected.contains(&e.subject) && filter.overlaps(e.requested_at, e.expires_at))
    {
        exemptions_t.push(vec![
            json!(e.id),
            json!(e.subject),
            json!(e.requirements),
            json!(e.reason),
            json!(e.state.as_str()),
            json!(e.break_glass),
            json!(e.requested_by),
            t(Some(e.requested_at)),
            s(e.decided_by.as_deref()),
            t(e.decided_at),
            t(e.expires_at),
            json!(e.duration_hours),
            s(e.comment.as_deref()),
        ]);
    }

    let chains = store.audit_chains().await?;
    let chain = ChainSummary::of(&settings.followup.audit_key, &chains, &subjects);
    let lines_of = |id: ChainId| {
        chains
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.lines.as_slice())
            .unwrap_or_default()
    };
    let config_sha256 = config_sha256
        .or_else(|| last_config_sha256(lines_of(ChainId::Clearance)))
        .or_else(|| last_config_sha256(lines_of(ChainId::Legacy)));
    Ok(Export {
        generated_at: now,
        filter: filter.clone(),
        people: subjects,
        config_sha256,
        chain,
        tables: vec![
            training,
            acceptances,
            denials,
            cases_t,
            actions_t,
            exemptions_t,
            checklists,
            abba,
        ],
    })
}

/// The SHA-256 of the configuration the server last started with, from the chain.
fn last_config_sha256(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|line| {
        let (_, entry) = parse_line(line).ok()?;
        (entry.event.kind == "config.loaded")
            .then(|| {
                entry
                    .event
                    .detail
                    .get("sha256")?
                    .as_str()
                    .map(str::to_owned)
            })
            .flatten()
    })
}

/// Adds the rows of one history entry to the training or acceptance table.
fn history_rows(
    policy: &crate::domain::Policy,
    subject: &SubjectKey,
    entry: &HistoryEntry,
    revoked_at: Option<DateTime<Utc>>,
    filter: &Filter,
    training: &mut Table,
    acceptances: &mut Table,
) {
    let requirement = match entry {
        HistoryEntry::Recorded(r) => &r.requirement,
        HistoryEntry::Revoked(v) => &v.requirement,
        HistoryEntry::Declined(d) => &d.requirement,
    };
    let in_range = match entry {
        HistoryEntry::Recorded(r) => filter.covers(r.completed_at) || filter.covers(r.recorded_at),
        other => filter.covers(other.at()),
    };
    if !in_range {
        return;
    }
    // Requirements no longer configured are kept with the training records, so that no
    // evidence disappears from an export.
    let kind = policy.get(requirement).map(|r| r.kind);
    let document = matches!(
        kind,
        Some(RequirementKind::Agreement | RequirementKind::Policy)
    );
    // (event, version, completed_at, expires_at, source, by, recorded_at, revoked_at, reason, evidence)
    let (event, version, completed, expires, source, by, recorded, revoked, reason, evidence) =
        match entry {
            HistoryEntry::Recorded(r) => (
                if document { "accepted" } else { "recorded" },
                json!(r.version),
                Some(r.completed_at),
                r.expires_at,
                json!(r.source),
                json!(r.recorded_by),
                Some(r.recorded_at),
                revoked_at.or(r.revoked_at),
                Value::Null,
                &r.evidence,
            ),
            HistoryEntry::Revoked(v) => (
                "revoked",
                Value::Null,
                None,
                None,
                json!(v.source),
                json!(v.revoked_by),
                Some(v.revoked_at),
                Some(v.revoked_at),
                json!(v.reason),
                &v.evidence,
            ),
            HistoryEntry::Declined(d) => (
                "declined",
                json!(d.version),
                Some(d.declined_at),
                None,
                Value::Null,
                json!(d.subject),
                Some(d.declined_at),
                None,
                Value::Null,
                &d.evidence,
            ),
        };
    if document {
        acceptances.push(vec![
            json!(subject),
            json!(requirement),
            json!(kind.map(|k| k.label())),
            json!(event),
            version,
            t(completed),
            source,
            by,
            t(recorded),
            t(revoked),
            reason,
            evidence_text(evidence, "document_sha256"),
            evidence_text(evidence, "document"),
            evidence_text(evidence, "client_address"),
            evidence_text(evidence, "user_agent"),
            evidence_text(evidence, "session"),
            Value::Object(evidence.clone()),
        ]);
    } else {
        training.push(vec![
            json!(subject),
            json!(requirement),
            json!(event),
            version,
            t(completed),
            t(expires),
            source,
            by,
            t(recorded),
            t(revoked),
            reason,
            Value::Object(evidence.clone()),
        ]);
    }
}

/// One rendered file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Data rows (the CSV header not counted); for the manifest, the number of files listed.
    pub rows: usize,
    pub sha256: String,
}

impl ExportFile {
    fn new(name: String, bytes: Vec<u8>, rows: usize) -> Self {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Self {
            name,
            bytes,
            rows,
            sha256,
        }
    }
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportDirError {
    #[error(
        "{0} is not empty; choose a new or empty directory, so that an export never mixes with other files"
    )]
    NotEmpty(String),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("the export could not be rendered: {0}")]
    Render(String),
}

fn manifest(export: &Export, files: &[ExportFile]) -> Value {
    json!({
        "generated_at": export.generated_at.to_rfc3339(),
        "generator": format!("clearance {}", env!("CARGO_PKG_VERSION")),
        "filters": {
            "from": t(export.filter.from),
            "to": t(export.filter.to),
            "subjects": export.filter.subjects,
        },
        "people": export.people.len(),
        "config_sha256": export.config_sha256,
        "audit_chain": export.chain,
        "files": files.iter().map(|f| json!({
            "name": f.name,
            "rows": f.rows,
            "sha256": f.sha256,
        })).collect::<Vec<_>>(),
    })
}

fn pretty(value: &Value) -> Result<Vec<u8>, ExportDirError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| ExportDirError::Render(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Renders every table as `<name>.csv` and `<name>.json`, then `manifest.json` (last) with the
/// name, row count and SHA-256 of every other file.
pub fn files(export: &Export) -> Result<Vec<ExportFile>, ExportDirError> {
    let mut out = Vec::new();
    for table in &export.tables {
        out.push(ExportFile::new(
            format!("{}.csv", table.name),
            table.csv()?,
            table.rows.len(),
        ));
        out.push(ExportFile::new(
            format!("{}.json", table.name),
            pretty(&Value::Array(table.objects()))?,
            table.rows.len(),
        ));
    }
    let manifest = pretty(&manifest(export, &out))?;
    let listed = out.len();
    out.push(ExportFile::new("manifest.json".into(), manifest, listed));
    Ok(out)
}

/// The API's answer: the manifest and every table's rows (the manifest's hashes are those of
/// the files the command line would write).
pub fn response_json(export: &Export) -> Result<Value, ExportDirError> {
    let rendered = files(export)?;
    let listed = rendered
        .iter()
        .filter(|f| f.name != "manifest.json")
        .cloned()
        .collect::<Vec<_>>();
    let tables: Map<String, Value> = export
        .tables
        .iter()
        .map(|t| (t.name.to_owned(), Value::Array(t.objects())))
        .collect();
    Ok(json!({
        "manifest": manifest(export, &listed),
        "files": tables,
    }))
}

/// Writes the files into `dir` (created if missing; refused if not empty). Each file is
/// written under a temporary name, synced, then renamed, with the manifest last: a directory
/// with a `manifest.json` holds a complete export.
pub fn write_dir(dir: &Path, files: &[ExportFile]) -> Result<(), ExportDirError> {
    let io = |path: &Path, error| ExportDirError::Io {
        path: path.display().to_string(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    if std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .next()
        .is_some()
    {
        return Err(ExportDirError::NotEmpty(dir.display().to_string()));
    }
    for file in files {
        let part = dir.join(format!(".{}.partial", file.name));
        let target = dir.join(&file.name);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&part).map_err(|e| io(&part, e))?;
            f.write_all(&file.bytes).map_err(|e| io(&part, e))?;
            f.sync_all().map_err(|e| io(&part, e))?;
        }
        std::fs::rename(&part, &target).map_err(|e| io(&target, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Action, ActionKind, Decline, DenialEvent, Exemption, ExemptionState, Person, RequirementId,
        Revocation, Source,
    };
    use crate::store::{DenialLog, FollowUpStore, RecordStore, memory::MemoryStore};

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + h * 3600, 0).unwrap()
    }

    fn sk(x: &str) -> SubjectKey {
        SubjectKey::parse(x).unwrap()
    }

    fn record(subject: &str, req: &str, version: &str, h: i64) -> Record {
        let mut evidence = Map::new();
        evidence.insert("document_sha256".into(), json!("abc123"));
        evidence.insert("client_address".into(), json!("10.0.0.1"));
        Record {
            subject: sk(subject),
            requirement: RequirementId(req.into()),
            version: version.parse().unwrap(),
            completed_at: at(h),
            expires_at: None,
            source: Source::Api,
            evidence,
            recorded_by: "admin-token:t".into(),
            recorded_at: at(h),
            revoked_at: None,
        }
    }

    fn table<'a>(e: &'a Export, name: &str) -> &'a Table {
        e.tables.iter().find(|t| t.name == name).unwrap()
    }

    fn col(table: &Table, row: usize, column: &str) -> Value {
        let i = table.columns.iter().position(|c| *c == column).unwrap();
        table.rows[row][i].clone()
    }

    async fn sample() -> (Settings, MemoryStore) {
        let settings = crate::testutil::settings();
        let store = MemoryStore::default().with_audit_key(settings.followup.audit_key.clone());
        // ann: accessed at 1, signed at 2 -> exception; bob signed at 1, accessed at 3.
        store.mark_first_access(&sk("ann@x"), at(1)).await.unwrap();
        store
            .put_record(&record("ann@x", "confidentiality-agreement", "1", 2))
            .await
            .unwrap();
        store
            .put_record(&record("ann@x", "security-awareness", "2026.1", 5))
            .await
            .unwrap();
        store
            .revoke(&Revocation {
                subject: sk("ann@x"),
                requirement: RequirementId("security-awareness".into()),
                revoked_at: at(6),
                revoked_by: "admin-token:t".into(),
                reason: "voided".into(),
                source: Source::Api,
                evidence: Map::new(),
            })
            .await
            .unwrap();
        store
            .record_decline(&Decline {
                subject: sk("bob@x"),
                requirement: RequirementId("acceptable-use-policy".into()),
                version: "3.0".parse().unwrap(),
                declined_at: at(0),
                evidence: Map::new(),
            })
            .await
            .unwrap();
        store
            .put_record(&record("bob@x", "confidentiality-agreement", "1", 1))
            .await
            .unwrap();
        store.mark_first_access(&sk("bob@x"), at(3)).await.unwrap();
        let mut carl = Person::new(sk("carl@x"), crate::domain::DirectorySource::Csv, at(0));
        carl.start_date = chrono::NaiveDate::from_ymd_opt(2026, 1, 5);
        store.put_person(&carl, "csv:people.csv").await.unwrap();
        let mut denial = DenialEvent::for_principal(&Principal::bare(sk("ann@x")), at(1), vec![]);
        denial.host = "app".into();
        store.append_denial(&denial).await.unwrap();
        let case = store
            .touch_case(&denial, "case-1", false)
            .await
            .unwrap()
            .expect("the open case");
        store
            .add_action(&Action {
                id: "act-1".into(),
                case_id: case.id,
                subject: sk("ann@x"),
                kind: ActionKind::Reminded,
                by: "boss@x".into(),
                at: at(2),
                comment: "please".into(),
            })
            .await
            .unwrap();
        store
            .put_exemption(
                &Exemption {
                    id: "ex-1".into(),
                    subject: sk("bob@x"),
                    requirements: vec![],
                    reason: "outage".into(),
                    duration_hours: 4,
                    requested_by: "admin-token:t".into(),
                    requested_at: at(4),
                    state: ExemptionState::Granted,
                    decided_by: Some("admin-token:t".into()),
                    decided_at: Some(at(4)),
                    expires_at: Some(at(8)),
                    break_glass: true,
                    comment: None,
                },
                None,
                "admin-token:t",
            )
            .await
            .unwrap();
        (settings, store)
    }

    #[tokio::test]
    async fn export_holds_every_kind_of_evidence() {
        let (settings, store) = sample().await;
        let e = export(&settings, &store, &Filter::default(), None, at(10))
            .await
            .unwrap();
        assert_eq!(e.people, vec![sk("ann@x"), sk("bob@x"), sk("carl@x")]);
        let training = table(&e, "training-records");
        assert_eq!(training.rows.len(), 2, "{:?}", training.rows);
        assert_eq!(col(training, 0, "event"), json!("recorded"));
        assert_eq!(col(training, 0, "revoked_at"), t(Some(at(6))));
        assert_eq!(col(training, 1, "event"), json!("revoked"));
        assert_eq!(col(training, 1, "reason"), json!("voided"));
        let acc = table(&e, "acceptances");
        assert_eq!(acc.rows.len(), 3);
        assert_eq!(col(acc, 0, "document_sha256"), json!("abc123"));
        assert_eq!(col(acc, 1, "event"), json!("declined"));
        assert_eq!(table(&e, "denials").rows.len(), 1);
        assert_eq!(table(&e, "cases").rows.len(), 1);
        assert_eq!(table(&e, "actions").rows.len(), 1);
        let ex = table(&e, "exemptions");
        assert_eq!(col(ex, 0, "break_glass"), json!(true));
        let abba = table(&e, "access-before-agreement");
        let flagged: Vec<(Value, Value)> = (0..abba.rows.len())
            .map(|i| (col(abba, i, "subject"), col(abba, i, "exception")))
            .collect();
        assert!(
            flagged.contains(&(json!("ann@x"), json!(true))),
            "{flagged:?}"
        );
        assert!(
            flagged.contains(&(json!("bob@x"), json!(false))),
            "{flagged:?}"
        );
        assert!(
            flagged.contains(&(json!("carl@x"), json!(false))),
            "{flagged:?}"
        );
        let lists = table(&e, "checklists");
        assert!(
            (0..lists.rows.len()).any(|i| col(lists, i, "subject") == json!("carl@x")
                && col(lists, i, "start_date") == json!("2026-01-05")),
            "{:?}",
            lists.rows
        );
        assert!(e.chain.verified && e.chain.entries > 0);
        assert_eq!(
            e.chain.heads.iter().map(|h| h.seq as usize).sum::<usize>(),
            e.chain.entries,
            "everyone is exported: every head is listed"
        );
        assert_eq!(e.chain.heads.len(), e.chain.chains);
        assert!(e.chain.heads.iter().any(|h| h.chain == "subject:ann@x"));
        assert_eq!(e.chain.heads_sha256.len(), 64);
        // An export about one person names no one else's chain, but pins them all.
        let one = Filter {
            subjects: vec![sk("bob@x")],
            ..Filter::default()
        };
        let e1 = export(&settings, &store, &one, None, at(10)).await.unwrap();
        assert!(
            e1.chain
                .heads
                .iter()
                .all(|h| !h.chain.starts_with("subject:") || h.chain == "subject:bob@x"),
            "{:?}",
            e1.chain.heads
        );
        assert_eq!(
            (e1.chain.chains, &e1.chain.heads_sha256),
            (e.chain.chains, &e.chain.heads_sha256)
        );
    }

    #[test]
    fn csv_cells_never_run_as_formulas() {
        let mut table = Table::new("t", &["a", "b", "c"]);
        table.push(vec![
            json!("=HYPERLINK(\"http://x\")"),
            json!(-1),
            json!({"k": "v"}),
        ]);
        table.push(vec![
            json!("@SUM(A1)"),
            Value::Null,
            json!("plain, with comma"),
        ]);
        let text = String::from_utf8(table.csv().unwrap()).unwrap();
        assert_eq!(
            text,
            "a,b,c\n\"'=HYPERLINK(\"\"http://x\"\")\",-1,\"{\"\"k\"\":\"\"v\"\"}\"\n'@SUM(A1),,\"plain, with comma\"\n"
        );
        assert_eq!(
            table.objects()[0]["a"],
            "=HYPERLINK(\"http://x\")",
            "JSON is exact"
        );
    }

    #[tokio::test]
    async fn filters_by_time_and_subject() {
        let (settings, store) = sample().await;
        let filter = Filter {
            from: Some(at(3)),
            to: Some(at(7)),
            subjects: vec![sk("ann@x")],
        };
        let e = export(&settings, &store, &filter, None, at(10))
            .await
            .unwrap();
        assert_eq!(e.people, vec![sk("ann@x")]);
        assert_eq!(table(&e, "training-records").rows.len(), 2);
        assert_eq!(table(&e, "acceptances").rows.len(), 0, "signed at 2");
        assert_eq!(table(&e, "denials").rows.len(), 0, "denied at 1");
        assert_eq!(table(&e, "actions").rows.len(), 0);
        assert_eq!(table(&e, "exemptions").rows.len(), 0, "bob's");
    }

    #[tokio::test]
    async fn a_revoked_signature_does_not_hide_access_before_agreement() {
        let (settings, store) = sample().await;
        let agreement = RequirementId("confidentiality-agreement".into());
        let revoke = |who: &str, h: i64| Revocation {
            subject: sk(who),
            requirement: agreement.clone(),
            revoked_at: at(h),
            revoked_by: "admin-token:t".into(),
            reason: "voided".into(),
            source: Source::Api,
            evidence: Map::new(),
        };
        // dan: signed at 0, voided at 1, accessed at 2, signed again at 3.
        store
            .put_record(&record("dan@x", "confidentiality-agreement", "1", 0))
            .await
            .unwrap();
        store.revoke(&revoke("dan@x", 1)).await.unwrap();
        store.mark_first_access(&sk("dan@x"), at(2)).await.unwrap();
        store
            .put_record(&record("dan@x", "confidentiality-agreement", "1", 3))
            .await
            .unwrap();
        // eve: signed at 0, voided at 1, accessed at 2, never again.
        store
            .put_record(&record("eve@x", "confidentiality-agreement", "1", 0))
            .await
            .unwrap();
        store.revoke(&revoke("eve@x", 1)).await.unwrap();
        store.mark_first_access(&sk("eve@x"), at(2)).await.unwrap();
        let filter = Filter {
            subjects: vec![sk("dan@x"), sk("eve@x")],
            ..Filter::default()
        };
        let e = export(&settings, &store, &filter, None, at(10))
            .await
            .unwrap();
        let abba = table(&e, "access-before-agreement");
        let row = |who: &str| {
            (0..abba.rows.len())
                .find(|&i| {
                    col(abba, i, "subject") == json!(who)
                        && col(abba, i, "requirement") == json!("confidentiality-agreement")
                })
                .unwrap()
        };
        let dan = row("dan@x");
        assert_eq!(col(abba, dan, "exception"), json!(true));
        assert_eq!(col(abba, dan, "finding"), json!("access before signing"));
        assert_eq!(col(abba, dan, "first_signed_at"), t(Some(at(3))));
        let eve = row("eve@x");
        assert_eq!(col(abba, eve, "exception"), json!(true));
        assert_eq!(
            col(abba, eve, "finding"),
            json!("access without a signature")
        );
    }

    #[tokio::test]
    async fn exemptions_by_overlap_and_cases_of_exported_actions() {
        let (settings, store) = sample().await;
        // bob's exemption: requested at 4, until 8. ann's case opened at 1, action at 2.
        let period = |from, to, who: &str| Filter {
            from: Some(at(from)),
            to: Some(at(to)),
            subjects: vec![sk(who)],
        };
        for (from, to, n) in [(5, 6, 1), (7, 9, 1), (0, 3, 0), (9, 12, 0), (0, 4, 1)] {
            let e = export(&settings, &store, &period(from, to, "bob@x"), None, at(20))
                .await
                .unwrap();
            assert_eq!(table(&e, "exemptions").rows.len(), n, "period {from}..{to}");
        }
        let e = export(&settings, &store, &period(2, 3, "ann@x"), None, at(20))
            .await
            .unwrap();
        assert_eq!(table(&e, "actions").rows.len(), 1);
        let cases = table(&e, "cases");
        assert_eq!(cases.rows.len(), 1, "the action's case, opened before");
        assert_eq!(col(cases, 0, "id"), col(table(&e, "actions"), 0, "case_id"));
        let e = export(&settings, &store, &period(3, 4, "ann@x"), None, at(20))
            .await
            .unwrap();
        assert_eq!(table(&e, "cases").rows.len(), 0, "no action, opened before");
    }

    #[tokio::test]
    async fn files_and_manifest_agree_and_dirs_must_be_empty() {
        let (settings, store) = sample().await;
        let e = export(
            &settings,
            &store,
            &Filter::default(),
            Some("cfg".into()),
            at(10),
        )
        .await
        .unwrap();
        let rendered = files(&e).unwrap();
        assert_eq!(rendered.len(), 17);
        let manifest: Value = serde_json::from_slice(&rendered.last().unwrap().bytes).unwrap();
        assert_eq!(manifest["config_sha256"], "cfg");
        for (f, m) in rendered.iter().zip(manifest["files"].as_array().unwrap()) {
            assert_eq!(m["name"], json!(f.name));
            assert_eq!(m["sha256"], json!(hex::encode(Sha256::digest(&f.bytes))));
        }
        let csv = String::from_utf8(rendered[0].bytes.clone()).unwrap();
        assert!(
            csv.starts_with("subject,requirement,event,version"),
            "{csv}"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        write_dir(&out, &rendered).unwrap();
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 17);
        assert!(matches!(
            write_dir(&out, &rendered),
            Err(ExportDirError::NotEmpty(_))
        ));
        let api = response_json(&e).unwrap();
        assert_eq!(api["manifest"]["files"], manifest["files"]);
        assert_eq!(api["files"]["exemptions"][0]["id"], "ex-1");
    }
}
