//! `clearance directory import`: directory entries (people, their managers and sponsors) from a
//! CSV file, for organisations without SCIM provisioning. Every row is validated before anything
//! is written; one bad row and nothing is.
//!
//! [`parse`] is pure: bytes and the current time in, [`Person`]s or problems out, each naming its
//! CSV line (1-based, the header is line 1) and column. [`write`] stores them with
//! [`FollowUpStore::put_person`] (each change audited as `directory.changed`), skipping entries
//! that are already on file exactly as the file says, so importing the same file again changes
//! nothing.
//!
//! Columns (header required, any order, names case-insensitive): `user_name` (required: the
//! subject), and optionally `active` (`true`/`false`, default `true` for a new entry),
//! `user_type` (lowercased, as over SCIM), `manager`, `sponsor`, `employee_number`,
//! `department`, `start_date` (`YYYY-MM-DD`), `display_name`, `email`. Other columns are refused.
//!
//! For an entry already on file the row is merged in: a column the file lacks, or an empty cell,
//! keeps what is on file. In particular an inactive (or SCIM-deleted) entry stays so unless the
//! row says `active` `true`. Entries provisioned over SCIM are SCIM's: a row for one is refused
//! (and so nothing is written) unless `--force` is given.

use crate::domain::{DirectorySource, Person, SubjectKey};
use crate::import::{Lines, Problem};
use crate::store::{FollowUpStore, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Every column the file may have.
pub const COLUMNS: [&str; 10] = [
    "user_name",
    "active",
    "user_type",
    "manager",
    "sponsor",
    "employee_number",
    "department",
    "start_date",
    "display_name",
    "email",
];

/// A valid row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub line: u64,
    pub person: Person,
    /// The columns this row has a non-empty cell in (`user_name` always).
    pub given: Vec<&'static str>,
}

impl Row {
    fn has(&self, column: &str) -> bool {
        self.given.contains(&column)
    }
}

fn problem(line: u64, column: Option<&str>, message: impl Into<String>) -> Problem {
    Problem {
        line,
        column: column.map(str::to_owned),
        message: message.into(),
    }
}

/// Reads and validates a whole file. `Err` lists every problem found (the file as a whole, or
/// its rows); `Ok` holds one person per row, in file order.
pub fn parse(input: &[u8], now: DateTime<Utc>) -> Result<Vec<Row>, Vec<Problem>> {
    let input = input.strip_prefix(BOM).unwrap_or(input);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let lines = Lines::new(input);
    let columns = header(&mut reader, lines.of_record(0))?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<SubjectKey, u64> = HashMap::new();
    let mut raw = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut raw) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.of_record(p.byte()));
                problems.push(problem(line, None, format!("not readable as CSV: {e}")));
                return Err(problems);
            }
        }
        let line = raw.position().map_or(0, |p| lines.of_record(p.byte()));
        if raw.iter().all(<[u8]>::is_empty) {
            continue;
        }
        match row(&columns, &raw, line, now) {
            Ok((person, given)) => {
                if let Some(first) = seen.get(&person.subject) {
                    problems.push(problem(
                        line,
                        Some("user_name"),
                        format!("{} is already on line {first}", person.subject),
                    ));
                } else {
                    seen.insert(person.subject.clone(), line);
                    rows.push(Row {
                        line,
                        person,
                        given,
                    });
                }
            }
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if rows.is_empty() {
        return Err(vec![problem(1, None, "the file has no rows")]);
    }
    Ok(rows)
}

fn header(reader: &mut csv::Reader<&[u8]>, line: u64) -> Result<Vec<String>, Vec<Problem>> {
    let cells = reader
        .byte_headers()
        .map_err(|e| vec![problem(line, None, format!("not readable as CSV: {e}"))])?
        .clone();
    let mut problems = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let name = String::from_utf8_lossy(cell).to_lowercase();
        if name.is_empty() {
            problems.push(problem(line, None, format!("column {} has no name", i + 1)));
        } else if names.contains(&name) {
            problems.push(problem(
                line,
                None,
                format!("column {name:?} appears twice"),
            ));
        } else if !COLUMNS.contains(&name.as_str()) {
            problems.push(problem(
                line,
                None,
                format!(
                    "unknown column {name:?} (columns are {})",
                    COLUMNS.join(", ")
                ),
            ));
        }
        names.push(name);
    }
    if !names.iter().any(|n| n == "user_name") {
        problems.push(problem(line, None, "missing column \"user_name\""));
    }
    if problems.is_empty() {
        Ok(names)
    } else {
        Err(problems)
    }
}

fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn row(
    columns: &[String],
    raw: &csv::ByteRecord,
    line: u64,
    now: DateTime<Utc>,
) -> Result<(Person, Vec<&'static str>), Vec<Problem>> {
    if raw.len() != columns.len() {
        return Err(vec![problem(
            line,
            None,
            format!("has {} fields, the header has {}", raw.len(), columns.len()),
        )]);
    }
    let mut problems = Vec::new();
    let mut cells: HashMap<&str, &str> = HashMap::new();
    for (column, bytes) in columns.iter().zip(raw.iter()) {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                cells.insert(column.as_str(), text);
            }
            Err(_) => problems.push(problem(line, Some(column), "is not UTF-8 text")),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let cell = |name: &str| cells.get(name).copied().unwrap_or("");
    let user_name = cell("user_name");
    let subject = match SubjectKey::parse(user_name) {
        Ok(s) => Some(s),
        Err(_) if user_name.is_empty() => {
            problems.push(problem(line, Some("user_name"), "is empty"));
            None
        }
        Err(e) => {
            problems.push(problem(
                line,
                Some("user_name"),
                format!("{user_name:?}: {e}"),
            ));
            None
        }
    };
    let active = match cell("active").to_ascii_lowercase().as_str() {
        "" | "true" => true,
        "false" => false,
        other => {
            problems.push(problem(
                line,
                Some("active"),
                format!("{other:?}: use true or false"),
            ));
            true
        }
    };
    let start_date = match cell("start_date") {
        "" => None,
        text => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                problems.push(problem(
                    line,
                    Some("start_date"),
                    format!("{text:?}: use a date like 2026-02-28 (YYYY-MM-DD)"),
                ));
                None
            }
        },
    };
    for column in ["manager", "sponsor"] {
        let text = cell(column);
        if !text.is_empty()
            && let Err(e) = SubjectKey::parse(text)
        {
            problems.push(problem(line, Some(column), format!("{text:?}: {e}")));
        }
    }
    let Some(subject) = subject else {
        return Err(problems);
    };
    let mut person = Person::new(subject, DirectorySource::Csv, now);
    user_name.clone_into(&mut person.user_name);
    person.active = active;
    person.user_type = optional(cell("user_type")).map(|t| t.to_lowercase());
    person.manager = optional(cell("manager"));
    person.sponsor = optional(cell("sponsor"));
    person.employee_number = optional(cell("employee_number"));
    person.department = optional(cell("department"));
    person.start_date = start_date;
    person.display_name = optional(cell("display_name"));
    person.email = optional(cell("email"));
    if let Err(e) = person.check() {
        let column = if person.manager.is_some() {
            "manager"
        } else {
            "sponsor"
        };
        problems.push(problem(line, Some(column), e.to_string()));
    }
    let given = COLUMNS
        .into_iter()
        .filter(|c| !cell(c).is_empty())
        .collect();
    if problems.is_empty() {
        Ok((person, given))
    } else {
        Err(problems)
    }
}

/// Whether two entries say the same, apart from when they were written.
fn same(a: &Person, b: &Person) -> bool {
    let mut b = b.clone();
    b.updated_at = a.updated_at;
    *a == b
}

/// What [`write`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// The store failed part-way; `written` says what was written before.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct WriteError {
    pub line: u64,
    pub written: Written,
    pub source: StoreError,
}

/// What to do with one row.
#[derive(Clone, Debug, PartialEq)]
enum Plan {
    Create(Person),
    Update(Person),
    Unchanged,
}

/// Merges `row` into the entry on file (`old`), pure. A column the file lacks or an empty cell
/// keeps what is on file; an inactive or deleted entry becomes active only when the row says
/// `active` `true`. The entry keeps its SCIM id and external id, so that SCIM provisioning still
/// finds it. An entry provisioned over SCIM is refused unless `force`.
fn plan(row: &Row, old: Option<&Person>, force: bool) -> Result<Plan, Problem> {
    let Some(old) = old else {
        return Ok(Plan::Create(row.person.clone()));
    };
    if old.source == DirectorySource::Scim && !force {
        let name = match &old.display_name {
            Some(n) => format!("{} ({n})", old.subject),
            None => old.subject.to_string(),
        };
        return Err(problem(
            row.line,
            Some("user_name"),
            format!(
                "{name} is provisioned over SCIM, which owns the entry; \
                 remove the row, or give --force to overwrite it from the file"
            ),
        ));
    }
    let new = &row.person;
    let mut person = old.clone();
    new.user_name.clone_into(&mut person.user_name);
    person.source = DirectorySource::Csv;
    person.updated_at = new.updated_at;
    if row.has("active") {
        person.active = new.active;
        if new.active {
            person.deleted = false;
        }
    }
    let fields: [(&str, &Option<String>, &mut Option<String>); 7] = [
        ("user_type", &new.user_type, &mut person.user_type),
        ("manager", &new.manager, &mut person.manager),
        ("sponsor", &new.sponsor, &mut person.sponsor),
        (
            "employee_number",
            &new.employee_number,
            &mut person.employee_number,
        ),
        ("department", &new.department, &mut person.department),
        ("display_name", &new.display_name, &mut person.display_name),
        ("email", &new.email, &mut person.email),
    ];
    for (column, from, to) in fields {
        if row.has(column) {
            to.clone_from(from);
        }
    }
    if row.has("start_date") {
        person.start_date = new.start_date;
    }
    if let Err(e) = person.check() {
        return Err(problem(
            row.line,
            None,
            format!("merged with the entry on file: {e}"),
        ));
    }
    if same(old, &person) {
        Ok(Plan::Unchanged)
    } else {
        Ok(Plan::Update(person))
    }
}

/// Why [`write`] wrote nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Rows that cannot be merged (SCIM's entries without `--force`): nothing was written.
    #[error("{} row(s) refused", .0.len())]
    Refused(Vec<Problem>),
    #[error(transparent)]
    Store(#[from] WriteError),
}

/// Writes every row as `actor` (`csv:<file name>`), merged into what is on file (see [`plan`]).
/// Every row is planned before anything is written: if one is refused, nothing is.
pub async fn write(
    store: &dyn FollowUpStore,
    rows: &[Row],
    actor: &str,
    force: bool,
) -> Result<Written, ImportError> {
    let mut written = Written::default();
    let mut plans = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    for row in rows {
        let existing = store
            .person(&row.person.subject)
            .await
            .map_err(|source| WriteError {
                line: row.line,
                written: written.clone(),
                source,
            })?;
        match plan(row, existing.as_ref(), force) {
            Ok(p) => plans.push((row.line, p)),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Refused(problems));
    }
    for (line, plan) in plans {
        let (person, created) = match plan {
            Plan::Unchanged => {
                written.unchanged += 1;
                continue;
            }
            Plan::Create(p) => (p, true),
            Plan::Update(p) => (p, false),
        };
        store
            .put_person(&person, actor)
            .await
            .map_err(|source| WriteError {
                line,
                written: written.clone(),
                source,
            })?;
        if created {
            written.created += 1;
        } else {
            written.updated += 1;
        }
    }
    Ok(written)
}

/// One line per problem, for people.
pub fn problem_report(file: &str, problems: &[Problem]) -> String {
    let mut text = format!("{file}: cannot be imported, nothing was written:\n");
    for p in problems {
        text.push_str(&format!("  {p}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    const GOOD: &str = "\u{feff}User_Name,active,user_type,manager,sponsor,employee_number,department,start_date,display_name,email\n\
        boss@example.com,true,Employee,,,1,Board,2020-01-01,Boss,boss@example.com\n\
        \n\
        ann@example.com,,EMPLOYEE,boss@example.com,,2,Finance,2026-03-01,Ann,ann@example.com\n\
        carl@example.com,false,Contractor,,boss@example.com,,,,,\n";

    #[test]
    fn good_file_becomes_people() {
        let rows = parse(GOOD.as_bytes(), now()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].line, 4, "blank lines count");
        let ann = &rows[1].person;
        assert_eq!(ann.subject.as_str(), "ann@example.com");
        assert_eq!(ann.user_type.as_deref(), Some("employee"));
        assert_eq!(ann.manager.as_deref(), Some("boss@example.com"));
        assert_eq!(ann.start_date, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(ann.source, DirectorySource::Csv);
        assert!(ann.active);
        let carl = &rows[2].person;
        assert!(!carl.active);
        assert_eq!(carl.sponsor.as_deref(), Some("boss@example.com"));
        assert_eq!(carl.user_type.as_deref(), Some("contractor"));
    }

    #[test]
    fn every_bad_row_is_named_by_line_and_column() {
        let text = "user_name,active,user_type,manager,sponsor,start_date\n\
            ok@example.com,true,employee,,,\n\
            temp@example.com,true,Temp,,,\n\
            x@example.com,maybe,employee,,,2026-13-01\n\
            ,true,employee,,,\n\
            ok@example.com,true,employee,,,\n\
            short@example.com,true\n";
        let problems = parse(text.as_bytes(), now()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            shown[0].starts_with("line 3, sponsor: temp@example.com is a temp"),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.starts_with("line 4, active: \"maybe\"")),
            "{shown:?}"
        );
        assert!(
            shown.iter().any(|p| p.starts_with("line 4, start_date:")),
            "{shown:?}"
        );
        assert!(
            shown.iter().any(|p| p == "line 5, user_name: is empty"),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p == "line 6, user_name: ok@example.com is already on line 2"),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p == "line 7: has 2 fields, the header has 6"),
            "{shown:?}"
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let problems = parse(b"name,active\nx@y,true\n", now()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(shown.iter().any(|p| p.contains("unknown column \"name\"")));
        assert!(
            shown
                .iter()
                .any(|p| p.contains("missing column \"user_name\""))
        );
        let problems = parse(b"user_name,USER_NAME\n", now()).unwrap_err();
        assert!(problems[0].to_string().contains("appears twice"));
        let problems = parse(b"user_name\n", now()).unwrap_err();
        assert!(problems[0].to_string().contains("no rows"));
        let problems = parse(b"user_name,manager\nme@x,me@x\n", now()).unwrap_err();
        assert!(
            problems[0].to_string().contains("own manager"),
            "{problems:?}"
        );
    }

    #[tokio::test]
    async fn write_is_audited_and_idempotent() {
        let store = MemoryStore::default();
        let rows = parse(GOOD.as_bytes(), now()).unwrap();
        let w = write(&store, &rows, "csv:people.csv", false).await.unwrap();
        assert_eq!((w.created, w.updated, w.unchanged), (3, 0, 0));
        let later = parse(GOOD.as_bytes(), now() + chrono::Duration::hours(1)).unwrap();
        let w = write(&store, &later, "csv:people.csv", false)
            .await
            .unwrap();
        assert_eq!((w.created, w.updated, w.unchanged), (0, 0, 3));
        let chain = store
            .audit_chain(&crate::domain::audit::ChainId::Directory)
            .await
            .unwrap();
        let (lines, head) = (chain.lines, chain.head);
        assert_eq!((lines.len(), head.seq), (3, 3));
        assert!(
            lines[0].contains("\"actor\":\"csv:people.csv\""),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("directory.changed"));
        let people = store.people().await.unwrap();
        assert_eq!(people.len(), 3);
    }

    fn on_file(subject: &str, source: DirectorySource) -> Person {
        let mut p = Person::new(SubjectKey::parse(subject).unwrap(), source, now());
        p.display_name = Some("Ann Old".into());
        p.email = Some("ann@old.example".into());
        p.department = Some("Finance".into());
        p.employee_number = Some("7".into());
        p.manager = Some("boss@example.com".into());
        p.scim_id = Some("scim-1".into());
        p
    }

    fn one_row(text: &str) -> Row {
        parse(text.as_bytes(), now() + chrono::Duration::hours(1))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn missing_columns_and_empty_cells_keep_what_is_on_file() {
        let old = on_file("ann@example.com", DirectorySource::Csv);
        let row = one_row("user_name,department,email\nann@example.com,Audit,\n");
        let Plan::Update(p) = plan(&row, Some(&old), false).unwrap() else {
            panic!("an update")
        };
        assert_eq!(p.department.as_deref(), Some("Audit"));
        assert_eq!(p.email.as_deref(), Some("ann@old.example"), "empty cell");
        assert_eq!(p.display_name.as_deref(), Some("Ann Old"), "no column");
        assert_eq!(p.employee_number.as_deref(), Some("7"));
        assert_eq!(p.manager.as_deref(), Some("boss@example.com"));
        assert_eq!(p.scim_id.as_deref(), Some("scim-1"));
        assert_eq!(p.source, DirectorySource::Csv);
        let same_again = one_row("user_name,department\nann@example.com,Finance\n");
        assert_eq!(
            plan(&same_again, Some(&old), false).unwrap(),
            Plan::Unchanged
        );
    }

    #[test]
    fn an_inactive_or_deleted_entry_is_reactivated_only_by_an_explicit_true() {
        let mut old = on_file("ann@example.com", DirectorySource::Claims);
        old.active = false;
        old.deleted = true;
        for text in [
            "user_name,department\nann@example.com,Audit\n",
            "user_name,active,department\nann@example.com,,Audit\n",
        ] {
            let Plan::Update(p) = plan(&one_row(text), Some(&old), false).unwrap() else {
                panic!("an update")
            };
            assert!(!p.active && p.deleted, "{text}: {p:?}");
        }
        let row = one_row("user_name,active\nann@example.com,true\n");
        let Plan::Update(p) = plan(&row, Some(&old), false).unwrap() else {
            panic!("an update")
        };
        assert!(p.active && !p.deleted, "{p:?}");
        // A new entry without the column is active, as before.
        let Plan::Create(p) = plan(&row_for("new@example.com"), None, false).unwrap() else {
            panic!("a creation")
        };
        assert!(p.active);
    }

    fn row_for(subject: &str) -> Row {
        one_row(&format!("user_name\n{subject}\n"))
    }

    #[tokio::test]
    async fn scim_entries_are_refused_without_force_and_nothing_is_written() {
        let store = MemoryStore::default();
        let mut scim = on_file("ann@example.com", DirectorySource::Scim);
        scim.active = false;
        store.put_person(&scim, "scim").await.unwrap();
        let rows = parse(
            b"user_name,department\nnew@example.com,Ops\nann@example.com,Ops\n",
            now(),
        )
        .unwrap();
        let Err(ImportError::Refused(problems)) = write(&store, &rows, "csv:p.csv", false).await
        else {
            panic!("refused")
        };
        assert_eq!(problems.len(), 1);
        let shown = problems[0].to_string();
        assert!(
            shown.starts_with(
                "line 3, user_name: ann@example.com (Ann Old) is provisioned over SCIM"
            ),
            "{shown}"
        );
        assert!(shown.contains("--force"), "{shown}");
        assert_eq!(store.people().await.unwrap().len(), 1, "nothing written");
        let w = write(&store, &rows, "csv:p.csv", true).await.unwrap();
        assert_eq!((w.created, w.updated), (1, 1));
        let ann = store
            .person(&SubjectKey::parse("ann@example.com").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ann.department.as_deref(), Some("Ops"));
        assert!(!ann.active, "--force does not reactivate either");
        assert_eq!(ann.scim_id.as_deref(), Some("scim-1"));
    }
}
