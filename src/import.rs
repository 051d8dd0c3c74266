//! `clearance records import`: past completion records from a CSV file, every row validated before
//! anything is written.
//!
//! [`parse`] is pure: bytes, the policy and the current time in, records or a list of problems out,
//! each naming its CSV line (1-based, the header is line 1) and column. [`write`] stores the valid
//! rows with [`RecordStore::put_record_once`], keyed by a fingerprint of each row, so that importing
//! the same file again changes nothing.
//!
//! Columns (header required, any order, names case-insensitive): `subject`, `requirement`,
//! `version`, `completed_at` (RFC 3339 or `YYYY-MM-DD`, meaning 00:00 UTC), and optionally
//! `expires_at`, `source` (default `csv`; not `self-service`) and `evidence_<name>` (each becomes
//! an evidence entry `<name>`). Other columns are refused.

use crate::domain::{Policy, Record, RecordError, RequirementId, Source, SubjectKey, Version};
use crate::store::{RecordStore, StoreError};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

const REQUIRED: [&str; 4] = ["subject", "requirement", "version", "completed_at"];
const EVIDENCE_PREFIX: &str = "evidence_";
const BOM: &[u8] = b"\xEF\xBB\xBF";
const DATE_HINT: &str = "use YYYY-MM-DD or RFC 3339, e.g. 2026-02-28 or 2026-02-28T09:30:00Z";
const SOURCE_HINT: &str = "use csv, api, xapi or esign";

/// One problem with the input, at a CSV line (1-based; the header is line 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    /// The column the problem is about, when it is about one.
    pub column: Option<String>,
    pub message: String,
}

impl Problem {
    fn at(line: u64, column: &str, message: impl Into<String>) -> Self {
        Self {
            line,
            column: Some(column.to_owned()),
            message: message.into(),
        }
    }

    fn line(line: u64, message: impl Into<String>) -> Self {
        Self {
            line,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, {c}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// A valid row, ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub line: u64,
    pub record: Record,
    /// `csv:` + hex SHA-256 of the row's normalised content (see [`fingerprint`]).
    pub key: String,
}

/// A row that repeats an earlier row of the same file; it is imported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub line: u64,
    pub first_line: u64,
}

/// The outcome of [`parse`] for a file whose header is acceptable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// Valid rows, in file order, without duplicates.
    pub rows: Vec<Row>,
    /// Problems of invalid rows, by line (a row can have several).
    pub problems: Vec<Problem>,
    /// The lines of invalid rows.
    pub invalid_lines: Vec<u64>,
    pub duplicates: Vec<Duplicate>,
}

/// What column a header cell names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Column {
    Subject,
    Requirement,
    Version,
    CompletedAt,
    ExpiresAt,
    Source,
    Evidence(String),
}

impl Column {
    fn from_header(name: &str) -> Option<Self> {
        Some(match name {
            "subject" => Self::Subject,
            "requirement" => Self::Requirement,
            "version" => Self::Version,
            "completed_at" => Self::CompletedAt,
            "expires_at" => Self::ExpiresAt,
            "source" => Self::Source,
            other => {
                let key = other.strip_prefix(EVIDENCE_PREFIX)?;
                if key.is_empty() {
                    return None;
                }
                Self::Evidence(key.to_owned())
            }
        })
    }
}

/// Reads and validates a whole CSV file. `Err` means the file as a whole cannot be imported
/// (bad header, broken CSV); otherwise invalid rows are listed in [`Parsed::problems`].
///
/// `file_name` goes into each record's `recorded_by` (`csv-import:<file_name>`); `now` is both
/// the validation instant and every record's `recorded_at`.
pub fn parse(
    input: &[u8],
    file_name: &str,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Parsed, Vec<Problem>> {
    let input = input.strip_prefix(BOM).unwrap_or(input);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let lines = Lines::new(input);
    let columns = header(&mut reader, lines.of_record(0))?;
    let recorded_by = format!("csv-import:{file_name}");
    let mut parsed = Parsed::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut raw = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut raw) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.of_record(p.byte()));
                return Err(vec![Problem::line(
                    line,
                    format!("not readable as CSV: {e}"),
                )]);
            }
        }
        let line = raw.position().map_or(0, |p| lines.of_record(p.byte()));
        if raw.iter().all(<[u8]>::is_empty) {
            continue;
        }
        match row(&columns, &raw, line, policy, now, &recorded_by) {
            Ok(record) => {
                let key = fingerprint(&record);
                if let Some(&first_line) = seen.get(&key) {
                    parsed.duplicates.push(Duplicate { line, first_line });
                } else {
                    seen.insert(key.clone(), line);
                    parsed.rows.push(Row { line, record, key });
                }
            }
            Err(problems) => {
                parsed.invalid_lines.push(line);
                parsed.problems.extend(problems);
            }
        }
    }
    Ok(parsed)
}

/// Line numbers of records. The csv crate's own positions are taken before the blank lines it
/// skips, so they point at the first blank line above a record rather than the record.
pub(crate) struct Lines<'a> {
    input: &'a [u8],
    /// Offsets of line breaks (`\n`, `\r\n` counted once at its `\n`, a lone `\r`).
    breaks: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        let breaks = input
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && input.get(i + 1) != Some(&b'\n')))
            .map(|(i, _)| i)
            .collect();
        Self { input, breaks }
    }

    /// The 1-based line of the record whose reading started at byte `start`.
    pub(crate) fn of_record(&self, start: u64) -> u64 {
        let mut at = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(self.input.len());
        while self
            .input
            .get(at)
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            at += 1;
        }
        let before = self.breaks.partition_point(|&b| b < at);
        u64::try_from(before).unwrap_or(u64::MAX).saturating_add(1)
    }
}

fn header(reader: &mut csv::Reader<&[u8]>, line: u64) -> Result<Vec<Column>, Vec<Problem>> {
    let cells = reader
        .byte_headers()
        .map_err(|e| vec![Problem::line(line, format!("not readable as CSV: {e}"))])?
        .clone();
    if cells.iter().all(<[u8]>::is_empty) {
        return Err(vec![Problem::line(
            line,
            format!(
                "the first line must name the columns, at least {}",
                REQUIRED.join(", ")
            ),
        )]);
    }
    let mut problems = Vec::new();
    let mut columns = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(cell) else {
            problems.push(Problem::line(
                line,
                format!("column {} is not UTF-8 text", i + 1),
            ));
            continue;
        };
        let name = name.to_lowercase();
        if names.contains(&name) {
            problems.push(Problem::line(
                line,
                format!("column {name:?} appears twice"),
            ));
            continue;
        }
        match Column::from_header(&name) {
            Some(c) => columns.push(c),
            None if name.is_empty() => {
                problems.push(Problem::line(line, format!("column {} has no name", i + 1)))
            }
            None => problems.push(Problem::line(
                line,
                format!(
                    "unknown column {name:?} (columns are {}, expires_at, source and evidence_<name>)",
                    REQUIRED.join(", ")
                ),
            )),
        }
        names.push(name);
    }
    for required in REQUIRED {
        if !names.iter().any(|n| n == required) {
            problems.push(Problem::line(line, format!("missing column {required:?}")));
        }
    }
    if problems.is_empty() {
        Ok(columns)
    } else {
        Err(problems)
    }
}

/// The cells of one row, by column.
#[derive(Default)]
struct Cells<'a> {
    subject: &'a str,
    requirement: &'a str,
    version: &'a str,
    completed_at: &'a str,
    expires_at: &'a str,
    source: &'a str,
    evidence: Vec<(&'a str, &'a str)>,
}

fn row(
    columns: &[Column],
    raw: &csv::ByteRecord,
    line: u64,
    policy: &Policy,
    now: DateTime<Utc>,
    recorded_by: &str,
) -> Result<Record, Vec<Problem>> {
    if raw.len() != columns.len() {
        return Err(vec![Problem::line(
            line,
            format!("has {} fields, the header has {}", raw.len(), columns.len()),
        )]);
    }
    let mut problems = Vec::new();
    let mut cells = Cells::default();
    for (column, bytes) in columns.iter().zip(raw.iter()) {
        let Ok(text) = std::str::from_utf8(bytes) else {
            problems.push(Problem::at(line, &column_name(column), "is not UTF-8 text"));
            continue;
        };
        match column {
            Column::Subject => cells.subject = text,
            Column::Requirement => cells.requirement = text,
            Column::Version => cells.version = text,
            Column::CompletedAt => cells.completed_at = text,
            Column::ExpiresAt => cells.expires_at = text,
            Column::Source => cells.source = text,
            Column::Evidence(key) => cells.evidence.push((key.as_str(), text)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let subject = match SubjectKey::parse(cells.subject) {
        Ok(s) => Some(s),
        Err(_) if cells.subject.is_empty() => {
            problems.push(Problem::at(line, "subject", "is empty"));
            None
        }
        Err(e) => {
            problems.push(Problem::at(
                line,
                "subject",
                format!("{:?}: {e}", cells.subject),
            ));
            None
        }
    };
    let requirement = if cells.requirement.is_empty() {
        problems.push(Problem::at(line, "requirement", "is empty"));
        None
    } else if let Some(r) = policy.get_str(cells.requirement) {
        Some(r)
    } else {
        let known: Vec<&str> = policy.requirements.iter().map(|r| r.id.as_str()).collect();
        problems.push(Problem::at(
            line,
            "requirement",
            format!(
                "{:?} is not a requirement of the configuration (known: {})",
                cells.requirement,
                known.join(", ")
            ),
        ));
        None
    };
    let version = if cells.version.is_empty() {
        problems.push(Problem::at(line, "version", "is empty"));
        None
    } else {
        match cells.version.parse::<Version>() {
            Ok(v) => Some(v),
            Err(_) => {
                problems.push(Problem::at(
                    line,
                    "version",
                    format!(
                        "{:?} is not a version (use major[.minor], e.g. 3 or 2026.1)",
                        cells.version
                    ),
                ));
                None
            }
        }
    };
    let completed_at = if cells.completed_at.is_empty() {
        problems.push(Problem::at(line, "completed_at", "is empty"));
        None
    } else {
        instant(cells.completed_at, line, "completed_at", &mut problems)
    };
    let expires_at = if cells.expires_at.is_empty() {
        Some(None)
    } else {
        instant(cells.expires_at, line, "expires_at", &mut problems).map(Some)
    };
    let source = source(cells.source, line, &mut problems);
    let evidence: serde_json::Map<String, serde_json::Value> = cells
        .evidence
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
        .collect();

    let (
        Some(subject),
        Some(requirement),
        Some(version),
        Some(completed_at),
        Some(expires_at),
        Some(source),
    ) = (
        subject,
        requirement,
        version,
        completed_at,
        expires_at,
        source,
    )
    else {
        return Err(problems);
    };
    let record = Record {
        subject,
        requirement: RequirementId(requirement.id.0.clone()),
        version,
        completed_at,
        expires_at,
        source,
        evidence,
        recorded_by: recorded_by.to_owned(),
        recorded_at: now,
        revoked_at: None,
    };
    match record.validate(requirement.version, now) {
        Ok(()) => Ok(record),
        Err(RecordError::CompletedInFuture(_)) => Err(vec![Problem::at(
            line,
            "completed_at",
            format!("{:?} lies in the future", cells.completed_at),
        )]),
        Err(RecordError::ExpiresBeforeCompleted) => Err(vec![Problem::at(
            line,
            "expires_at",
            format!("{:?} is not after completed_at", cells.expires_at),
        )]),
        Err(RecordError::VersionFromTheFuture { got, current }) => Err(vec![Problem::at(
            line,
            "version",
            format!(
                "{got} is newer than the current version {current} of {}",
                requirement.id
            ),
        )]),
    }
}

fn column_name(column: &Column) -> String {
    match column {
        Column::Subject => "subject".into(),
        Column::Requirement => "requirement".into(),
        Column::Version => "version".into(),
        Column::CompletedAt => "completed_at".into(),
        Column::ExpiresAt => "expires_at".into(),
        Column::Source => "source".into(),
        Column::Evidence(key) => format!("{EVIDENCE_PREFIX}{key}"),
    }
}

/// RFC 3339, or a date `YYYY-MM-DD` meaning 00:00 UTC that day.
fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    if raw.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn instant(
    raw: &str,
    line: u64,
    column: &str,
    problems: &mut Vec<Problem>,
) -> Option<DateTime<Utc>> {
    let parsed = parse_instant(raw);
    if parsed.is_none() {
        problems.push(Problem::at(
            line,
            column,
            format!("{raw:?} is not a date ({DATE_HINT})"),
        ));
    }
    parsed
}

fn source(raw: &str, line: u64, problems: &mut Vec<Problem>) -> Option<Source> {
    if raw.is_empty() {
        return Some(Source::Csv);
    }
    let value = serde_json::Value::String(raw.to_lowercase());
    match serde_json::from_value::<Source>(value) {
        Ok(Source::SelfService) => {
            problems.push(Problem::at(
                line,
                "source",
                format!("self-service records are written by Clearance itself ({SOURCE_HINT})"),
            ));
            None
        }
        Ok(s) => Some(s),
        Err(_) => {
            problems.push(Problem::at(
                line,
                "source",
                format!("{raw:?} is not a source ({SOURCE_HINT})"),
            ));
            None
        }
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Api => "api",
        Source::Xapi => "xapi",
        Source::Esign => "esign",
        Source::Csv => "csv",
        Source::SelfService => "self-service",
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The idempotency key of a record imported from CSV: `csv:` + hex SHA-256 of
/// `subject|requirement|version|completed_at|expires_at|source`, all normalised (lowercased
/// subject, `major.minor`, UTC RFC 3339), so that the same completion written differently
/// (`2026-01-05` or `2026-01-05T01:00:00+01:00`) is the same row.
pub fn fingerprint(record: &Record) -> String {
    let text = format!(
        "{}|{}|{}|{}|{}|{}",
        record.subject,
        record.requirement,
        record.version,
        timestamp(record.completed_at),
        record.expires_at.map(timestamp).unwrap_or_default(),
        source_name(record.source),
    );
    format!("csv:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// A valid row that was not written because the stored record for its requirement is a later
/// completion (writing it would make an older completion the current one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superseded {
    pub line: u64,
    pub stored_completed_at: DateTime<Utc>,
}

/// What [`write`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub new: usize,
    pub already_imported: usize,
    pub superseded: Vec<Superseded>,
    /// The people who got a new record, once each: their cases may close ([`settle_cases`]).
    pub subjects: std::collections::BTreeSet<SubjectKey>,
}

/// The store failed at `line`; `written` says what happened before.
#[derive(Debug, thiserror::Error)]
#[error("writing line {line} failed: {source}")]
pub struct WriteError {
    pub line: u64,
    pub written: Written,
    pub source: StoreError,
}

/// Writes the rows, oldest completion first (so that for each subject and requirement the latest
/// completion ends up current), each with [`RecordStore::put_record_once`] under its
/// fingerprint. A row older than the subject's stored record for that requirement is not written.
pub async fn write<S: RecordStore + ?Sized>(
    store: &S,
    rows: &[Row],
) -> Result<Written, WriteError> {
    let mut ordered: Vec<&Row> = rows.iter().collect();
    ordered.sort_by_key(|r| (r.record.completed_at, r.line));
    let mut written = Written::default();
    for row in ordered {
        let fail = |written: &Written, source| WriteError {
            line: row.line,
            written: written.clone(),
            source,
        };
        let stored = store
            .records(&row.record.subject)
            .await
            .map_err(|e| fail(&written, e))?;
        if let Some(current) = stored
            .iter()
            .find(|r| r.requirement == row.record.requirement)
            && current.completed_at > row.record.completed_at
        {
            written.superseded.push(Superseded {
                line: row.line,
                stored_completed_at: current.completed_at,
            });
            continue;
        }
        if store
            .put_record_once(&row.record, &row.key)
            .await
            .map_err(|e| fail(&written, e))?
        {
            written.new += 1;
            written.subjects.insert(row.record.subject.clone());
        } else {
            written.already_imported += 1;
        }
    }
    Ok(written)
}

/// How many people's cases are settled at the same time.
const SETTLED_AT_ONCE: usize = 32;

/// Closes the open case of every person the import made compliant with everything that applies
/// to them, as every other way a completion arrives does (`http::followup::settle`). Returns
/// how many cases closed. A case that cannot be checked now stays open (and is logged); it
/// closes with the person's next completion.
pub async fn settle_cases(
    settings: &crate::config::Settings,
    store: &dyn crate::store::Store,
    written: &Written,
    now: DateTime<Utc>,
) -> usize {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(&written.subjects)
        .map(|subject| crate::http::followup::settle(settings, store, subject, now))
        .buffer_unordered(SETTLED_AT_ONCE)
        .filter(|closed| std::future::ready(*closed))
        .count()
        .await
}

fn lines(lines: impl IntoIterator<Item = u64>) -> String {
    lines
        .into_iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn rows(n: usize) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

/// The report of invalid rows, one problem a line, for stderr.
pub fn problem_report(file: &str, parsed: &Parsed) -> String {
    let mut out = format!("{file}: {} invalid:\n", rows(parsed.invalid_lines.len()));
    for p in &parsed.problems {
        out.push_str(&format!("  {p}\n"));
    }
    out
}

/// Notes about rows that were read but will not be written again (duplicates within the file).
pub fn duplicate_notes(parsed: &Parsed) -> Vec<String> {
    parsed
        .duplicates
        .iter()
        .map(|d| {
            format!(
                "line {} repeats line {} and is imported once",
                d.line, d.first_line
            )
        })
        .collect()
}

/// The one-line summary of an import, for stdout.
pub fn summary(file: &str, parsed: &Parsed, written: &Written) -> String {
    let mut out = format!(
        "{file}: {} new, {} already imported",
        written.new, written.already_imported
    );
    if !written.superseded.is_empty() {
        out.push_str(&format!(
            ", {} not written because a later completion is stored (line {})",
            written.superseded.len(),
            lines(written.superseded.iter().map(|s| s.line))
        ));
    }
    if !parsed.duplicates.is_empty() {
        out.push_str(&format!(
            ", {} repeated in the file (line {})",
            parsed.duplicates.len(),
            lines(parsed.duplicates.iter().map(|d| d.line))
        ));
    }
    if !parsed.invalid_lines.is_empty() {
        out.push_str(&format!(
            "; {} invalid skipped (line {})",
            parsed.invalid_lines.len(),
            lines(parsed.invalid_lines.iter().copied())
        ));
    }
    out
}

/// The summary of a dry run, for stdout.
pub fn dry_run_summary(file: &str, parsed: &Parsed) -> String {
    let mut out = format!(
        "{file}: {} valid, {} invalid",
        rows(parsed.rows.len()),
        parsed.invalid_lines.len()
    );
    if !parsed.duplicates.is_empty() {
        out.push_str(&format!(
            ", {} repeated in the file",
            parsed.duplicates.len()
        ));
    }
    out.push_str(" (dry run: nothing written, Redis not consulted)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Enforcement, Requirement, RequirementKind, Selector};
    use crate::store::memory::MemoryStore;
    use chrono::{Duration, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
    }

    fn requirement(id: &str, version: &str) -> Requirement {
        Requirement {
            id: RequirementId(id.into()),
            kind: RequirementKind::Training,
            title: id.into(),
            description: None,
            version: version.parse().unwrap(),
            version_since: None,
            validity: Some(Duration::days(365)),
            grace: Duration::days(30),
            url: None,
            applies_to: Selector::default(),
            enforcement: Enforcement::Block,
            enforce_from: None,
            warn_every: Duration::hours(24),
            document: None,
            changes: Vec::new(),
        }
    }

    fn policy() -> Policy {
        Policy {
            requirements: vec![
                requirement("security-awareness", "2026.1"),
                requirement("confidentiality-agreement", "1"),
            ],
        }
    }

    fn parse_ok(text: &str) -> Parsed {
        parse(text.as_bytes(), "people.csv", &policy(), now()).expect("header is fine")
    }

    fn parse_err(text: &str) -> Vec<String> {
        match parse(text.as_bytes(), "people.csv", &policy(), now()) {
            Ok(p) => panic!("expected a file-level error, got {p:?}"),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn messages(parsed: &Parsed) -> Vec<String> {
        parsed.problems.iter().map(ToString::to_string).collect()
    }

    const HEADER: &str = "subject,requirement,version,completed_at\n";

    #[test]
    fn good_rows_become_records() {
        let p = parse_ok(
            "Subject,requirement,version,completed_at,expires_at,source,evidence_ticket,evidence_Score\n\
             Alice@Example.com,security-awareness,2026.1,2026-01-05,,,T-1,\n\
             bob@example.com,confidentiality-agreement,1,2025-06-01T10:00:00+02:00,2027-06-01,esign,,97\n",
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.rows.len(), 2);
        let a = &p.rows[0];
        assert_eq!(a.line, 2);
        assert_eq!(a.record.subject.as_str(), "alice@example.com");
        assert_eq!(a.record.version, "2026.1".parse().unwrap());
        assert_eq!(
            a.record.completed_at,
            Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
        );
        assert_eq!(a.record.expires_at, None);
        assert_eq!(a.record.source, Source::Csv);
        assert_eq!(a.record.recorded_by, "csv-import:people.csv");
        assert_eq!(a.record.recorded_at, now());
        assert_eq!(
            a.record.evidence.len(),
            1,
            "empty evidence cells are left out"
        );
        assert_eq!(a.record.evidence["ticket"], "T-1");
        assert!(a.key.starts_with("csv:") && a.key.len() == 4 + 64);
        let b = &p.rows[1];
        assert_eq!(
            b.record.completed_at,
            Utc.with_ymd_and_hms(2025, 6, 1, 8, 0, 0).unwrap()
        );
        assert_eq!(
            b.record.expires_at,
            Some(Utc.with_ymd_and_hms(2027, 6, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(b.record.source, Source::Esign);
        assert_eq!(b.record.evidence["score"], "97");
    }

    #[test]
    fn bad_date_names_line_and_column() {
        let p = parse_ok(&format!(
            "{HEADER}a@x,security-awareness,1,2026-01-01\n\
             b@x,security-awareness,1,2026-01-02\n\
             c@x,security-awareness,1,31/02/2026\n\
             d@x,security-awareness,1,2026-02-31\n"
        ));
        assert_eq!(
            messages(&p),
            vec![
                format!("line 4, completed_at: \"31/02/2026\" is not a date ({DATE_HINT})"),
                format!("line 5, completed_at: \"2026-02-31\" is not a date ({DATE_HINT})"),
            ]
        );
        assert_eq!(p.invalid_lines, vec![4, 5]);
        assert_eq!(p.rows.len(), 2);
    }

    #[test]
    fn unknown_requirement_is_named() {
        let p = parse_ok(&format!("{HEADER}a@x,fire-safety,1,2026-01-01\n"));
        let m = messages(&p);
        assert_eq!(m.len(), 1);
        assert!(
            m[0].starts_with("line 2, requirement: \"fire-safety\" is not a requirement")
                && m[0].contains("security-awareness, confidentiality-agreement"),
            "{m:?}"
        );
    }

    #[test]
    fn empty_and_bad_subjects_are_refused() {
        let p = parse_ok(&format!(
            "{HEADER},security-awareness,1,2026-01-01\n\"a b\",security-awareness,1,2026-01-01\n"
        ));
        let m = messages(&p);
        assert_eq!(m[0], "line 2, subject: is empty");
        assert!(m[1].starts_with("line 3, subject: \"a b\""), "{m:?}");
        assert!(p.rows.is_empty());
    }

    #[test]
    fn every_problem_of_a_row_is_reported() {
        let p = parse_ok(
            "subject,requirement,version,completed_at,expires_at,source\n\
             ,nope,two,yesterday,tomorrow,self-service\n",
        );
        let columns: Vec<_> = p.problems.iter().filter_map(|p| p.column.clone()).collect();
        assert_eq!(
            columns,
            [
                "subject",
                "requirement",
                "version",
                "completed_at",
                "expires_at",
                "source"
            ]
        );
        assert_eq!(p.invalid_lines, vec![2]);
    }

    #[test]
    fn record_rules_apply() {
        let p = parse_ok(
            "subject,requirement,version,completed_at,expires_at,source\n\
             a@x,security-awareness,2026.1,2026-03-16,,\n\
             b@x,security-awareness,2026.1,2026-01-01,2025-12-31,\n\
             c@x,security-awareness,2027,2026-01-01,,\n\
             d@x,security-awareness,1,2026-01-01,,ldap\n\
             e@x,security-awareness,1,2026-03-15T12:04:00Z,,API\n",
        );
        let m = messages(&p);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].starts_with("line 2, completed_at:") && m[0].contains("future"));
        assert!(m[1].starts_with("line 3, expires_at:") && m[1].contains("after completed_at"));
        assert!(
            m[2].starts_with("line 4, version: 2027.0 is newer than the current version 2026.1")
        );
        assert!(m[3].starts_with("line 5, source: \"ldap\" is not a source"));
        assert_eq!(p.rows.len(), 1, "within the clock skew, any case of source");
        assert_eq!(p.rows[0].record.source, Source::Api);
    }

    #[test]
    fn unknown_column_refuses_the_file() {
        let e = parse_err(
            "subject,requirement,version,completed_at,team\na@x,security-awareness,1,2026-01-01,x\n",
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("line 1: unknown column \"team\""), "{e:?}");
        let e = parse_err("subject,requirement,completed_at,evidence_\n");
        assert!(e.iter().any(|m| m.contains("\"evidence_\"")), "{e:?}");
        assert!(
            e.iter().any(|m| m == "line 1: missing column \"version\""),
            "{e:?}"
        );
        let e = parse_err("subject,subject,requirement,version,completed_at\n");
        assert!(e[0].contains("appears twice"), "{e:?}");
        let e = parse_err("");
        assert!(
            e[0].starts_with("line 1: the first line must name the columns"),
            "{e:?}"
        );
    }

    #[test]
    fn bom_crlf_and_blank_lines_are_tolerated() {
        let text = "\u{feff}subject,requirement,version,completed_at\r\n\
                    \r\n\
                    a@x,security-awareness,1,2026-01-01\r\n\
                    \r\n\
                    ,,,\r\n\
                    b@x,security-awareness,1,not-a-date\r\n\
                    c@x,\"confidentiality-agreement\",1,2026-01-01\r\n";
        let p = parse_ok(text);
        assert_eq!(messages(&p).len(), 1, "{:?}", p.problems);
        assert!(
            messages(&p)[0].starts_with("line 6, completed_at:"),
            "{:?}",
            p.problems
        );
        let lines: Vec<u64> = p.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 7]);
        assert_eq!(
            p.rows[1].record.requirement.as_str(),
            "confidentiality-agreement"
        );
    }

    #[test]
    fn line_numbers_count_quoted_line_breaks_and_leading_blank_lines() {
        let p = parse_ok(
            "\n\nsubject,requirement,version,completed_at,evidence_note\n\
             a@x,security-awareness,1,2026-01-01,\"two\nlines\"\n\
             \n\
             b@x,security-awareness,1,bad,\n",
        );
        assert_eq!(p.rows[0].line, 4);
        assert_eq!(p.rows[0].record.evidence["note"], "two\nlines");
        assert_eq!(p.invalid_lines, [7]);
    }

    #[test]
    fn short_rows_are_refused() {
        let p = parse_ok(&format!("{HEADER}a@x,security-awareness,1\n"));
        assert_eq!(messages(&p), ["line 2: has 3 fields, the header has 4"]);
    }

    #[test]
    fn duplicate_rows_are_imported_once() {
        let p = parse_ok(&format!(
            "{HEADER}a@x,security-awareness,1,2026-01-05\n\
             b@x,security-awareness,1,2026-01-05\n\
             A@X,security-awareness,1.0,2026-01-05T01:00:00+01:00\n"
        ));
        assert!(p.problems.is_empty());
        assert_eq!(p.rows.len(), 2);
        assert_eq!(
            p.duplicates,
            [Duplicate {
                line: 4,
                first_line: 2
            }]
        );
        assert_ne!(p.rows[0].key, p.rows[1].key);
    }

    #[test]
    fn fingerprint_ignores_evidence_but_not_content() {
        let p = parse_ok(
            "subject,requirement,version,completed_at,expires_at,evidence_note\n\
             a@x,security-awareness,1,2026-01-05,,one\n\
             a@x,security-awareness,1,2026-01-05,2027-01-05,one\n",
        );
        assert_eq!(p.rows.len(), 2, "expires_at is part of the content");
        let q = parse_ok(
            "subject,requirement,version,completed_at,evidence_note\n\
             a@x,security-awareness,1,2026-01-05,two\n",
        );
        assert_eq!(q.rows[0].key, p.rows[0].key);
    }

    #[tokio::test]
    async fn reimport_changes_nothing_and_later_completions_win() {
        let store = MemoryStore::new(10);
        let p = parse_ok(&format!(
            "{HEADER}a@x,security-awareness,2026.1,2026-02-01\n\
             a@x,security-awareness,2025.1,2025-02-01\n\
             b@x,confidentiality-agreement,1,2025-05-05\n"
        ));
        let first = write(&store, &p.rows).await.unwrap();
        assert_eq!((first.new, first.already_imported), (3, 0));
        let a = SubjectKey::parse("a@x").unwrap();
        let current = store.records(&a).await.unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(
            current[0].version,
            "2026.1".parse().unwrap(),
            "latest completion is current"
        );
        assert_eq!(store.history(&a).await.unwrap().len(), 2);

        let again = write(&store, &p.rows).await.unwrap();
        assert_eq!(again.new, 0);
        assert_eq!(again.already_imported + again.superseded.len(), 3);
        assert_eq!(
            store.history(&a).await.unwrap().len(),
            2,
            "history unchanged"
        );
        assert!(summary("people.csv", &p, &again).starts_with("people.csv: 0 new, "));
    }

    #[tokio::test]
    async fn older_rows_do_not_replace_a_later_stored_completion() {
        let store = MemoryStore::new(10);
        let newer = parse_ok(&format!(
            "{HEADER}a@x,security-awareness,2026.1,2026-03-01\n"
        ));
        write(&store, &newer.rows).await.unwrap();
        let older = parse_ok(&format!(
            "{HEADER}a@x,security-awareness,2025.1,2025-03-01\n"
        ));
        let w = write(&store, &older.rows).await.unwrap();
        assert_eq!(w.new, 0);
        assert_eq!(w.superseded.len(), 1);
        assert_eq!(w.superseded[0].line, 2);
        let a = SubjectKey::parse("a@x").unwrap();
        assert_eq!(
            store.records(&a).await.unwrap()[0].completed_at,
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
        );
        assert!(
            summary("f.csv", &older, &w)
                .contains("1 not written because a later completion is stored (line 2)")
        );
    }

    #[test]
    fn reports_read_well() {
        let p = parse_ok(&format!(
            "{HEADER}a@x,security-awareness,1,2026-01-01\n,security-awareness,1,2026-01-01\na@x,security-awareness,1,2026-01-01\n"
        ));
        assert_eq!(
            problem_report("f.csv", &p),
            "f.csv: 1 row invalid:\n  line 3, subject: is empty\n"
        );
        assert_eq!(
            duplicate_notes(&p),
            ["line 4 repeats line 2 and is imported once"]
        );
        let w = Written {
            new: 1,
            ..Written::default()
        };
        assert_eq!(
            summary("f.csv", &p, &w),
            "f.csv: 1 new, 0 already imported, 1 repeated in the file (line 4); 1 invalid skipped (line 3)"
        );
        assert_eq!(
            dry_run_summary("f.csv", &p),
            "f.csv: 1 row valid, 1 invalid, 1 repeated in the file (dry run: nothing written, Redis not consulted)"
        );
    }
}
