//! xAPI 1.0.3 statements from an LMS: validation as an LRS does it, and what each statement means
//! for Clearance (a completion, a failed attempt, the voiding of an earlier statement, or nothing).
//!
//! Pure: the caller passes in the mappings, the credential the LMS used, "now" and a source of new
//! statement ids.

use super::principal::SubjectKey;
use super::record::{Record, Source};
use super::requirement::{RequirementId, Version};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Verbs that complete a requirement unless `result.success` is false.
pub const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
pub const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
/// cmi5 "satisfied" (the LMS says the course's moveOn criteria are met).
pub const SATISFIED: &str = "https://w3id.org/xapi/adl/verbs/satisfied";
/// A failed attempt: evidence, never a completion.
pub const FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
/// Voids an earlier statement (object: `StatementRef`).
pub const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// Which requirement (and version) completing an activity counts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityMapping {
    /// The activity IRI, compared exactly.
    pub activity_id: String,
    pub requirement: RequirementId,
    pub version: Version,
}

/// How statements are turned into records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mappings {
    pub activities: Vec<ActivityMapping>,
    /// When set, `account` actors must carry this `homePage` to be mapped to a person.
    pub account_home_page: Option<String>,
}

impl Mappings {
    pub fn activity(&self, id: &str) -> Option<&ActivityMapping> {
        self.activities.iter().find(|a| a.activity_id == id)
    }
}

/// One accepted statement: its id (assigned when the LMS sent none) and what it means.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Lowercase, hyphenated UUID.
    pub id: String,
    pub outcome: Outcome,
}

/// What a statement means for Clearance.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A completion of a mapped activity: write this record (once per statement id).
    Complete(Record),
    /// A failed attempt at a mapped activity (`failed`, or a completion verb with
    /// `result.success = false`): evidence only, it completes nothing.
    Failed(Attempt),
    /// Voids the statement with this id (lowercase, hyphenated UUID).
    Void { target: String },
    /// Valid, but nothing Clearance acts on (other verbs, activities that are not mapped).
    Ignore,
}

/// A failed attempt, for the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub subject: SubjectKey,
    pub requirement: RequirementId,
    pub evidence: Map<String, Value>,
}

/// Why a statement (and with it the whole batch) is refused; `path` names the statement and field,
/// e.g. `statements[2].verb.id`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StatementError {
    pub path: String,
    pub message: String,
}

fn err<T>(path: &str, message: impl Into<String>) -> Result<T, StatementError> {
    Err(StatementError {
        path: path.to_owned(),
        message: message.into(),
    })
}

fn field(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// Everything [`interpret`] needs besides the statement.
pub struct Context<'a> {
    pub mappings: &'a Mappings,
    /// The name of the LRS credential the LMS authenticated with.
    pub credential: &'a str,
    pub now: DateTime<Utc>,
}

/// Interprets a request body: one statement object or an array of them. All or nothing: the first
/// invalid statement refuses the batch. Statements without an id get one from `new_id`.
pub fn interpret_batch(
    body: &Value,
    ctx: &Context<'_>,
    new_id: &mut dyn FnMut() -> uuid::Uuid,
) -> Result<Vec<Statement>, StatementError> {
    match body {
        Value::Object(_) => Ok(vec![interpret(body, "statement", ctx, new_id)?]),
        Value::Array(items) => {
            let mut out: Vec<Statement> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let path = format!("statements[{i}]");
                let statement = interpret(item, &path, ctx, new_id)?;
                if let Some(j) = out.iter().position(|s| s.id == statement.id) {
                    return err(
                        &field(&path, "id"),
                        format!("{} repeats the id of statements[{j}]", statement.id),
                    );
                }
                out.push(statement);
            }
            Ok(out)
        }
        _ => err(
            "body",
            "must be a statement object or an array of statement objects",
        ),
    }
}

/// Validates one statement and says what it means. `path` names it in errors.
pub fn interpret(
    statement: &Value,
    path: &str,
    ctx: &Context<'_>,
    new_id: &mut dyn FnMut() -> uuid::Uuid,
) -> Result<Statement, StatementError> {
    let Value::Object(s) = statement else {
        return err(path, "must be a statement object");
    };
    let id = match s.get("id") {
        None => new_id().hyphenated().to_string(),
        Some(v) => uuid_of(v, &field(path, "id"))?,
    };
    if let Some(v) = s.get("version") {
        match v.as_str() {
            Some(v) if v == "1.0" || v.starts_with("1.0.") => {}
            _ => return err(&field(path, "version"), "must be a 1.0.x xAPI version"),
        }
    }
    let actor_path = field(path, "actor");
    let actor = actor(
        s.get("actor").ok_or_else(|| missing(&actor_path))?,
        &actor_path,
    )?;
    let verb_path = field(path, "verb");
    let Some(Value::Object(verb)) = s.get("verb") else {
        return err(&verb_path, "is required and must be an object with an id");
    };
    let verb_id = iri(verb.get("id"), &field(&verb_path, "id"))?;
    if let Some(display) = verb.get("display")
        && !display.is_object()
    {
        return err(
            &field(&verb_path, "display"),
            "must be a language map (an object)",
        );
    }
    let object_path = field(path, "object");
    let object = object(
        s.get("object").ok_or_else(|| missing(&object_path))?,
        &object_path,
    )?;
    let result = match s.get("result") {
        None => None,
        Some(r) => Some(result(r, &field(path, "result"))?),
    };
    let timestamp = instant(s.get("timestamp"), &field(path, "timestamp"))?;
    let stored = instant(s.get("stored"), &field(path, "stored"))?;
    for name in ["context", "authority"] {
        if let Some(v) = s.get(name)
            && !v.is_object()
        {
            return err(&field(path, name), "must be an object");
        }
    }

    let outcome = match verb_id.as_str() {
        VOIDED => match object {
            Object::StatementRef(target) => Outcome::Void { target },
            _ => {
                return err(
                    &field(&object_path, "objectType"),
                    "a voiding statement's object must be a StatementRef",
                );
            }
        },
        COMPLETED | PASSED | SATISFIED | FAILED => {
            let Object::Activity(activity_id) = &object else {
                return Ok(Statement {
                    id,
                    outcome: Outcome::Ignore,
                });
            };
            let Some(mapping) = ctx.mappings.activity(activity_id) else {
                return Ok(Statement {
                    id,
                    outcome: Outcome::Ignore,
                });
            };
            let subject = subject_of(&actor, &actor_path, ctx.mappings)?;
            let mut evidence = Map::new();
            evidence.insert("statement_id".into(), json!(id));
            evidence.insert("verb".into(), json!(verb_id));
            evidence.insert("activity_id".into(), json!(activity_id));
            let success = result.as_ref().and_then(|r| r.success);
            if let Some(r) = &result {
                if let Some(score) = &r.score {
                    evidence.insert("score".into(), Value::Object(score.clone()));
                }
                if let Some(success) = r.success {
                    evidence.insert("success".into(), json!(success));
                }
            }
            evidence.insert("lrs_credential".into(), json!(ctx.credential));
            if verb_id == FAILED || success == Some(false) {
                Outcome::Failed(Attempt {
                    subject,
                    requirement: mapping.requirement.clone(),
                    evidence,
                })
            } else {
                let (completed_at, from) = match (timestamp, stored) {
                    (Some(t), _) => (t, "timestamp"),
                    (None, Some(t)) => (t, "stored"),
                    (None, None) => (ctx.now, "timestamp"),
                };
                let record = Record {
                    subject,
                    requirement: mapping.requirement.clone(),
                    version: mapping.version,
                    completed_at,
                    expires_at: None,
                    source: Source::Xapi,
                    evidence,
                    recorded_by: format!("xapi:{}", ctx.credential),
                    recorded_at: ctx.now,
                    revoked_at: None,
                };
                if let Err(e) = record.validate(mapping.version, ctx.now) {
                    return err(&field(path, from), e.to_string());
                }
                Outcome::Complete(record)
            }
        }
        _ => Outcome::Ignore,
    };
    Ok(Statement { id, outcome })
}

fn missing(path: &str) -> StatementError {
    StatementError {
        path: path.to_owned(),
        message: "is required".into(),
    }
}

fn uuid_of(v: &Value, path: &str) -> Result<String, StatementError> {
    match v.as_str() {
        // The hyphenated form only, as xAPI requires.
        Some(s) if s.len() == 36 => match uuid::Uuid::parse_str(s) {
            Ok(u) => Ok(u.hyphenated().to_string()),
            Err(_) => err(path, format!("{s:?} is not a UUID")),
        },
        Some(s) => err(path, format!("{s:?} is not a UUID in its hyphenated form")),
        None => err(path, "must be a UUID string"),
    }
}

fn iri(v: Option<&Value>, path: &str) -> Result<String, StatementError> {
    match v {
        None => Err(missing(path)),
        Some(Value::String(s)) => match url::Url::parse(s) {
            Ok(_) => Ok(s.clone()),
            Err(e) => err(path, format!("{s:?} is not an absolute IRI: {e}")),
        },
        Some(_) => err(path, "must be an IRI string"),
    }
}

fn instant(v: Option<&Value>, path: &str) -> Result<Option<DateTime<Utc>>, StatementError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Ok(Some(t.with_timezone(&Utc))),
            Err(_) => err(
                path,
                format!("{s:?} is not an ISO 8601 time with offset, e.g. 2026-03-01T09:00:00Z"),
            ),
        },
        Some(_) => err(path, "must be an ISO 8601 time string"),
    }
}

/// An actor's identity, as far as Clearance cares.
enum Actor {
    Mbox(String),
    Account {
        home_page: String,
        name: String,
    },
    /// `mbox_sha1sum`, `openid`: valid, but not something a person can be found by.
    Opaque(&'static str),
    Group,
}

fn actor(v: &Value, path: &str) -> Result<Actor, StatementError> {
    let Value::Object(a) = v else {
        return err(path, "must be an Agent or Group object");
    };
    match a.get("objectType").map(|t| t.as_str()) {
        None | Some(Some("Agent")) => agent(a, path),
        Some(Some("Group")) => {
            let members = match a.get("member") {
                None => 0,
                Some(Value::Array(members)) => {
                    for (i, m) in members.iter().enumerate() {
                        let mpath = format!("{path}.member[{i}]");
                        let Value::Object(m) = m else {
                            return err(&mpath, "must be an Agent object");
                        };
                        agent(m, &mpath)?;
                    }
                    members.len()
                }
                Some(_) => return err(&field(path, "member"), "must be an array of Agents"),
            };
            match ifi(a, path)? {
                Some(_) => Ok(Actor::Group),
                None if members > 0 => Ok(Actor::Group),
                None => err(
                    path,
                    "an anonymous Group needs members; an identified Group needs one of mbox, mbox_sha1sum, openid, account",
                ),
            }
        }
        Some(_) => err(&field(path, "objectType"), "must be \"Agent\" or \"Group\""),
    }
}

fn agent(a: &Map<String, Value>, path: &str) -> Result<Actor, StatementError> {
    if let Some(t) = a.get("objectType")
        && t.as_str() != Some("Agent")
    {
        return err(&field(path, "objectType"), "must be \"Agent\"");
    }
    ifi(a, path)?.map_or_else(
        || {
            err(
                path,
                "needs exactly one of mbox, mbox_sha1sum, openid, account",
            )
        },
        Ok,
    )
}

/// The inverse functional identifier: at most one.
fn ifi(a: &Map<String, Value>, path: &str) -> Result<Option<Actor>, StatementError> {
    let present: Vec<&str> = ["mbox", "mbox_sha1sum", "openid", "account"]
        .into_iter()
        .filter(|k| a.contains_key(*k))
        .collect();
    if present.len() > 1 {
        return err(
            path,
            format!(
                "has {}; an agent is identified by exactly one of mbox, mbox_sha1sum, openid, account",
                present.join(" and ")
            ),
        );
    }
    let Some(kind) = present.first() else {
        return Ok(None);
    };
    let p = field(path, kind);
    let value = a.get(*kind).unwrap_or(&Value::Null);
    match *kind {
        "mbox" => {
            let address = value
                .as_str()
                .filter(|s| {
                    s.get(..7)
                        .is_some_and(|p| p.eq_ignore_ascii_case("mailto:"))
                })
                .and_then(|s| s.get(7..))
                .filter(|rest| rest.contains('@'));
            match address {
                Some(addr) => Ok(Some(Actor::Mbox(addr.to_owned()))),
                None => err(&p, "must be \"mailto:\" followed by an email address"),
            }
        }
        "mbox_sha1sum" => match value.as_str() {
            Some(h) if h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Some(Actor::Opaque("mbox_sha1sum")))
            }
            _ => err(&p, "must be 40 hex characters"),
        },
        "openid" => {
            iri(Some(value), &p)?;
            Ok(Some(Actor::Opaque("openid")))
        }
        _ => {
            let Value::Object(account) = value else {
                return err(&p, "must be an object with homePage and name");
            };
            let home_page = iri(account.get("homePage"), &field(&p, "homePage"))?;
            let name = match account.get("name") {
                Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
                Some(_) => return err(&field(&p, "name"), "must be a non-empty string"),
                None => return Err(missing(&field(&p, "name"))),
            };
            Ok(Some(Actor::Account { home_page, name }))
        }
    }
}

/// The person a completion belongs to.
fn subject_of(
    actor: &Actor,
    path: &str,
    mappings: &Mappings,
) -> Result<SubjectKey, StatementError> {
    match actor {
        Actor::Mbox(address) => SubjectKey::parse(address).or_else(|e| {
            err(
                &field(path, "mbox"),
                format!("cannot be mapped to a person: {e}"),
            )
        }),
        Actor::Account { home_page, name } => {
            if let Some(expected) = &mappings.account_home_page
                && home_page.trim_end_matches('/') != expected.trim_end_matches('/')
            {
                return err(
                    &field(path, "account.homePage"),
                    format!(
                        "{home_page:?} is not {expected:?} (xapi.account_home_page), so the account cannot be mapped to a person"
                    ),
                );
            }
            SubjectKey::parse(name).or_else(|e| {
                err(
                    &field(path, "account.name"),
                    format!("cannot be mapped to a person: {e}"),
                )
            })
        }
        Actor::Opaque(kind) => err(
            &field(path, kind),
            format!(
                "cannot be mapped to a person: identify the learner by mbox or account, not {kind}"
            ),
        ),
        Actor::Group => err(
            path,
            "a Group cannot complete a requirement; send the learner as an Agent",
        ),
    }
}

enum Object {
    Activity(String),
    StatementRef(String),
    Other,
}

fn object(v: &Value, path: &str) -> Result<Object, StatementError> {
    let Value::Object(o) = v else {
        return err(path, "must be an object");
    };
    match o.get("objectType").map(|t| t.as_str()) {
        None | Some(Some("Activity")) => {
            let id = iri(o.get("id"), &field(path, "id"))?;
            if let Some(d) = o.get("definition")
                && !d.is_object()
            {
                return err(&field(path, "definition"), "must be an object");
            }
            Ok(Object::Activity(id))
        }
        Some(Some("StatementRef")) => {
            let id = o.get("id").ok_or_else(|| missing(&field(path, "id")))?;
            Ok(Object::StatementRef(uuid_of(id, &field(path, "id"))?))
        }
        Some(Some("Agent" | "Group")) => {
            actor(v, path)?;
            Ok(Object::Other)
        }
        Some(Some("SubStatement")) => Ok(Object::Other),
        Some(_) => err(
            &field(path, "objectType"),
            "must be one of Activity, Agent, Group, StatementRef, SubStatement",
        ),
    }
}

struct Outcomes {
    success: Option<bool>,
    score: Option<Map<String, Value>>,
}

fn result(v: &Value, path: &str) -> Result<Outcomes, StatementError> {
    let Value::Object(r) = v else {
        return err(path, "must be an object");
    };
    let flag = |name: &str| match r.get(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => err(&field(path, name), "must be true or false"),
    };
    let success = flag("success")?;
    flag("completion")?;
    for name in ["response", "duration"] {
        if let Some(v) = r.get(name)
            && !v.is_string()
        {
            return err(&field(path, name), "must be a string");
        }
    }
    let score = match r.get("score") {
        None => None,
        Some(s) => Some(score(s, &field(path, "score"))?),
    };
    Ok(Outcomes { success, score })
}

fn score(v: &Value, path: &str) -> Result<Map<String, Value>, StatementError> {
    let Value::Object(s) = v else {
        return err(path, "must be an object");
    };
    let number = |name: &str| match s.get(name).map(Value::as_f64) {
        None => Ok(None),
        Some(Some(x)) => Ok(Some(x)),
        Some(None) => err(&field(path, name), "must be a number"),
    };
    let scaled = number("scaled")?;
    let raw = number("raw")?;
    let min = number("min")?;
    let max = number("max")?;
    if let Some(unknown) = s
        .keys()
        .find(|k| !["scaled", "raw", "min", "max"].contains(&k.as_str()))
    {
        return err(
            &field(path, unknown),
            "is not a score field (scaled, raw, min, max)",
        );
    }
    if scaled.is_some_and(|x| !(-1.0..=1.0).contains(&x)) {
        return err(&field(path, "scaled"), "must be between -1 and 1");
    }
    if let (Some(min), Some(max)) = (min, max)
        && min >= max
    {
        return err(&field(path, "max"), "must be greater than min");
    }
    if let Some(raw) = raw {
        if min.is_some_and(|min| raw < min) {
            return err(&field(path, "raw"), "must not be less than min");
        }
        if max.is_some_and(|max| raw > max) {
            return err(&field(path, "raw"), "must not be more than max");
        }
    }
    Ok(s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const COURSE: &str = "https://lms.example.com/course/security-2026";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    fn mappings() -> Mappings {
        Mappings {
            activities: vec![ActivityMapping {
                activity_id: COURSE.into(),
                requirement: RequirementId("security-awareness".into()),
                version: "2026.1".parse().unwrap(),
            }],
            account_home_page: None,
        }
    }

    fn run_with(body: Value, m: &Mappings) -> Result<Vec<Statement>, StatementError> {
        let ctx = Context {
            mappings: m,
            credential: "lms",
            now: now(),
        };
        let mut n = 0u128;
        interpret_batch(&body, &ctx, &mut || {
            n += 1;
            uuid::Uuid::from_u128(n)
        })
    }

    fn run(body: Value) -> Result<Vec<Statement>, StatementError> {
        run_with(body, &mappings())
    }

    fn one(body: Value) -> Outcome {
        let mut all = run(body).unwrap();
        assert_eq!(all.len(), 1);
        all.remove(0).outcome
    }

    fn error(body: Value) -> String {
        run(body).unwrap_err().to_string()
    }

    fn statement(verb: &str) -> Value {
        json!({
            "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
            "actor": { "objectType": "Agent", "name": "Alice", "mbox": "mailto:Alice@Example.com" },
            "verb": { "id": verb, "display": { "en-US": "did" } },
            "object": { "objectType": "Activity", "id": COURSE,
                        "definition": { "name": { "en-US": "Security awareness 2026" } } },
            "result": { "success": true, "completion": true, "score": { "scaled": 0.92, "raw": 92, "min": 0, "max": 100 } },
            "timestamp": "2026-03-01T09:00:00+01:00"
        })
    }

    #[test]
    fn passed_completes_with_evidence() {
        let Outcome::Complete(r) = one(statement(PASSED)) else {
            panic!("a completion")
        };
        assert_eq!(r.subject.as_str(), "alice@example.com");
        assert_eq!(r.requirement.as_str(), "security-awareness");
        assert_eq!(r.version.to_string(), "2026.1");
        assert_eq!(
            r.completed_at,
            Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
        );
        assert_eq!(r.source, Source::Xapi);
        assert_eq!(r.recorded_by, "xapi:lms");
        assert_eq!(r.recorded_at, now());
        assert_eq!(
            r.evidence["statement_id"],
            "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"
        );
        assert_eq!(r.evidence["verb"], PASSED);
        assert_eq!(r.evidence["activity_id"], COURSE);
        assert_eq!(r.evidence["score"]["scaled"], 0.92);
        assert_eq!(r.evidence["lrs_credential"], "lms");
    }

    #[test]
    fn completed_and_satisfied_complete_too() {
        for verb in [COMPLETED, SATISFIED] {
            let mut s = statement(verb);
            s.as_object_mut().unwrap().remove("result");
            assert!(matches!(one(s), Outcome::Complete(_)), "{verb}");
        }
    }

    #[test]
    fn failed_or_unsuccessful_never_completes() {
        let Outcome::Failed(a) = one(statement(FAILED)) else {
            panic!("failed is an attempt")
        };
        assert_eq!(a.subject.as_str(), "alice@example.com");
        let mut s = statement(COMPLETED);
        s["result"]["success"] = json!(false);
        let Outcome::Failed(a) = one(s) else {
            panic!("success = false is not a completion")
        };
        assert_eq!(a.evidence["success"], false);
    }

    #[test]
    fn completion_time_is_timestamp_then_stored_then_now() {
        let mut s = statement(PASSED);
        let o = s.as_object_mut().unwrap();
        o.remove("timestamp");
        o.insert("stored".into(), json!("2026-03-02T10:00:00Z"));
        let Outcome::Complete(r) = one(s.clone()) else {
            panic!()
        };
        assert_eq!(
            r.completed_at,
            Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
        );
        s.as_object_mut().unwrap().remove("stored");
        let Outcome::Complete(r) = one(s) else {
            panic!()
        };
        assert_eq!(r.completed_at, now());
    }

    #[test]
    fn account_actors_map_by_name_with_an_optional_home_page() {
        let mut s = statement(PASSED);
        s["actor"] = json!({ "account": { "homePage": "https://lms.example.com/", "name": "Bob@Example.com" } });
        let Outcome::Complete(r) = one(s.clone()) else {
            panic!()
        };
        assert_eq!(r.subject.as_str(), "bob@example.com");

        let mut m = mappings();
        m.account_home_page = Some("https://lms.example.com".into());
        assert!(run_with(s.clone(), &m).is_ok(), "trailing slash ignored");
        m.account_home_page = Some("https://other.example.com".into());
        let e = run_with(s, &m).unwrap_err();
        assert_eq!(e.path, "statement.actor.account.homePage");
    }

    #[test]
    fn unmappable_actors_of_mapped_activities_are_refused() {
        let mut s = statement(PASSED);
        s["actor"] = json!({ "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9" });
        assert!(error(s.clone()).starts_with("statement.actor.mbox_sha1sum: cannot be mapped"));
        s["actor"] =
            json!({ "objectType": "Group", "member": [{ "mbox": "mailto:a@example.com" }] });
        assert!(error(s.clone()).starts_with("statement.actor: a Group"));
        // ... but the same actor on an activity that is not mapped is fine.
        s["object"]["id"] = json!("https://lms.example.com/course/cooking");
        assert_eq!(one(s), Outcome::Ignore);
    }

    #[test]
    fn other_verbs_and_activities_are_ignored() {
        assert_eq!(
            one(statement("http://adlnet.gov/expapi/verbs/attempted")),
            Outcome::Ignore
        );
        let mut s = statement(PASSED);
        s["object"]["id"] = json!("https://lms.example.com/course/other");
        assert_eq!(one(s), Outcome::Ignore);
        let mut s = statement(PASSED);
        s["object"] = json!({ "objectType": "Agent", "mbox": "mailto:someone@example.com" });
        assert_eq!(one(s), Outcome::Ignore);
    }

    #[test]
    fn voiding_names_its_target() {
        let v = json!({
            "actor": { "mbox": "mailto:lms-admin@example.com" },
            "verb": { "id": VOIDED },
            "object": { "objectType": "StatementRef", "id": "6690E6C9-3EF0-4ED3-8B37-7F3964730BEE" }
        });
        assert_eq!(
            one(v.clone()),
            Outcome::Void {
                target: "6690e6c9-3ef0-4ed3-8b37-7f3964730bee".into()
            }
        );
        let mut bad = v;
        bad["object"] = json!({ "id": COURSE });
        assert_eq!(
            error(bad),
            "statement.object.objectType: a voiding statement's object must be a StatementRef"
        );
    }

    #[test]
    fn ids_are_assigned_and_must_not_repeat_in_a_batch() {
        let mut a = statement(PASSED);
        a.as_object_mut().unwrap().remove("id");
        let out = run(json!([a.clone(), a])).unwrap();
        assert_eq!(out[0].id, uuid::Uuid::from_u128(1).to_string());
        assert_eq!(out[1].id, uuid::Uuid::from_u128(2).to_string());
        let s = statement(PASSED);
        let e = run(json!([s.clone(), s])).unwrap_err();
        assert_eq!(e.path, "statements[1].id");
    }

    #[test]
    fn malformed_statements_name_index_and_field() {
        let ok = statement(PASSED);
        type Change = fn(&mut Value);
        let cases: Vec<(Change, &str)> = vec![
            (|s| s["id"] = json!("not-a-uuid"), "statements[1].id"),
            (
                |s| {
                    s.as_object_mut().unwrap().remove("actor");
                },
                "statements[1].actor",
            ),
            (
                |s| s["actor"] = json!({ "name": "nobody" }),
                "statements[1].actor",
            ),
            (
                |s| s["actor"]["openid"] = json!("https://id.example.com/a"),
                "statements[1].actor",
            ),
            (
                |s| s["actor"]["mbox"] = json!("alice@example.com"),
                "statements[1].actor.mbox",
            ),
            (
                |s| {
                    s.as_object_mut().unwrap().remove("verb");
                },
                "statements[1].verb",
            ),
            (
                |s| s["verb"]["id"] = json!("passed"),
                "statements[1].verb.id",
            ),
            (
                |s| s["object"] = json!({ "objectType": "Activity" }),
                "statements[1].object.id",
            ),
            (
                |s| s["object"]["objectType"] = json!("Course"),
                "statements[1].object.objectType",
            ),
            (
                |s| s["result"]["success"] = json!("yes"),
                "statements[1].result.success",
            ),
            (
                |s| s["result"]["score"]["scaled"] = json!(9),
                "statements[1].result.score.scaled",
            ),
            (
                |s| s["result"]["score"]["raw"] = json!(101),
                "statements[1].result.score.raw",
            ),
            (
                |s| s["result"]["score"]["raw"] = json!("92"),
                "statements[1].result.score.raw",
            ),
            (
                |s| s["timestamp"] = json!("yesterday"),
                "statements[1].timestamp",
            ),
            (
                |s| s["timestamp"] = json!("2026-04-01T00:00:00Z"),
                "statements[1].timestamp",
            ),
            (|s| s["version"] = json!("2.0.0"), "statements[1].version"),
            (|s| *s = json!("statement"), "statements[1]"),
        ];
        for (change, path) in cases {
            let mut bad = ok.clone();
            change(&mut bad);
            let mut second = ok.clone();
            second["id"] = json!("00000000-0000-4000-8000-000000000001");
            let e = run(json!([second, bad])).unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
        assert_eq!(run(json!(42)).unwrap_err().path, "body");
        assert!(run(json!([])).unwrap().is_empty());
    }
}
