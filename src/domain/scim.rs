//! SCIM 2.0 Users (RFC 7643/7644) to and from directory entries: the core attributes, the
//! enterprise extension (manager, employeeNumber, department) and Clearance's own extension
//! (sponsor, startDate); PATCH operations as Entra ID, Okta and others send them.

use super::directory::{DirectorySource, Person};
use super::principal::SubjectKey;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const CLEARANCE: &str = "urn:ietf:params:scim:schemas:extension:clearance:2.0:User";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM request that cannot be applied; `scim_type` is RFC 7644's `scimType`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub scim_type: &'static str,
    pub detail: String,
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError {
        scim_type: "invalidValue",
        detail: detail.into(),
    }
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError {
        scim_type: "invalidSyntax",
        detail: detail.into(),
    }
}

/// Booleans, also as the strings "True"/"False" that Entra ID sends in PATCH.
fn boolean(v: &Value, attr: &str) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid(format!("{attr} must be a boolean"))),
    }
}

fn text(v: &Value, attr: &str) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_owned())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(invalid(format!("{attr} must be a string"))),
    }
}

/// `manager` as a complex `{"value": id}` or as the bare string some IdPs send.
fn manager(v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Object(m) => m
            .get("value")
            .map_or(Ok(None), |v| text(v, "manager.value")),
        other => text(other, "manager"),
    }
}

fn start_date(v: &Value) -> Result<Option<NaiveDate>, ScimError> {
    match text(v, "startDate")? {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s.get(..10).unwrap_or(&s), "%Y-%m-%d")
            .map(Some)
            .map_err(|_| invalid(format!("startDate {s:?} must be a date (YYYY-MM-DD)"))),
    }
}

/// Sets one attribute, named as in a PATCH path (case-insensitive, URN-qualified or not).
/// Unknown attributes are ignored: IdPs send many that Clearance has no use for.
fn set(person: &mut Person, path: &str, value: &Value) -> Result<(), ScimError> {
    let lower = path.to_ascii_lowercase();
    let (schema, attr) = match lower.rsplit_once(':') {
        Some((schema, attr)) if lower.starts_with("urn:") => (schema.to_owned(), attr.to_owned()),
        _ => (String::new(), lower.clone()),
    };
    let ent = ENTERPRISE.to_ascii_lowercase();
    let ours = CLEARANCE.to_ascii_lowercase();
    match (schema.as_str(), attr.as_str()) {
        (s, "username") if s.is_empty() || s == USER.to_ascii_lowercase() => {
            let name = text(value, "userName")?.ok_or_else(|| invalid("userName is required"))?;
            person.subject =
                SubjectKey::parse(&name).map_err(|e| invalid(format!("userName {name:?}: {e}")))?;
            person.user_name = name;
        }
        ("", "active") => person.active = boolean(value, "active")?,
        ("", "usertype") => person.user_type = text(value, "userType")?.map(|t| t.to_lowercase()),
        ("", "displayname") => person.display_name = text(value, "displayName")?,
        ("", "externalid") => person.external_id = text(value, "externalId")?,
        ("", "emails") => person.email = primary_email(value)?,
        ("", p) if p.starts_with("emails[") => person.email = text(value, "emails")?,
        (s, "manager") if s == ent => person.manager = manager(value)?,
        (s, "employeenumber") if s == ent => {
            person.employee_number = text(value, "employeeNumber")?;
        }
        (s, "department") if s == ent => person.department = text(value, "department")?,
        (s, "sponsor") if s == ours => person.sponsor = manager(value)?,
        (s, "startdate") if s == ours => person.start_date = start_date(value)?,
        (s, _) if s == ent || s == ours => {
            // The whole extension object.
            if let Value::Object(m) = value
                && path.to_ascii_lowercase() == s
            {
                for (k, v) in m {
                    set(person, &format!("{s}:{k}"), v)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn primary_email(v: &Value) -> Result<Option<String>, ScimError> {
    let Value::Array(items) = v else {
        return Err(invalid("emails must be an array"));
    };
    let pick = items
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| items.first());
    pick.and_then(|e| e.get("value"))
        .map_or(Ok(None), |v| text(v, "emails.value"))
}

/// Applies a whole resource (POST, PUT) over `person`.
fn apply_resource(person: &mut Person, body: &Map<String, Value>) -> Result<(), ScimError> {
    for (k, v) in body {
        match k.as_str() {
            "schemas" => {
                // RFC 7643 section 3: a User resource names the core User schema.
                let names_user = v.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(USER)))
                });
                if !names_user {
                    return Err(invalid(format!(
                        "schemas must be an array that names {USER}"
                    )));
                }
            }
            "id" | "meta" => {}
            k if k.eq_ignore_ascii_case(ENTERPRISE) || k.eq_ignore_ascii_case(CLEARANCE) => {
                let Value::Object(m) = v else {
                    return Err(invalid(format!("{k} must be an object")));
                };
                for (attr, value) in m {
                    set(person, &format!("{k}:{attr}"), value)?;
                }
            }
            k => set(person, k, v)?,
        }
    }
    Ok(())
}

/// A new directory entry from a POSTed User.
pub fn create(body: &Value, id: &str, now: DateTime<Utc>) -> Result<Person, ScimError> {
    let Value::Object(map) = body else {
        return Err(syntax("the body must be a JSON object"));
    };
    let name = map
        .get("userName")
        .ok_or_else(|| invalid("userName is required"))
        .and_then(|v| text(v, "userName"))?
        .ok_or_else(|| invalid("userName is required"))?;
    let subject =
        SubjectKey::parse(&name).map_err(|e| invalid(format!("userName {name:?}: {e}")))?;
    let mut person = Person::new(subject, DirectorySource::Scim, now);
    person.scim_id = Some(id.to_owned());
    apply_resource(&mut person, map)?;
    person.check().map_err(|e| invalid(e.to_string()))?;
    Ok(person)
}

/// A PUT: the resource replaces every attribute Clearance keeps (the id and subject stay).
pub fn replace(existing: &Person, body: &Value, now: DateTime<Utc>) -> Result<Person, ScimError> {
    let Value::Object(map) = body else {
        return Err(syntax("the body must be a JSON object"));
    };
    let mut person = Person::new(existing.subject.clone(), DirectorySource::Scim, now);
    person.scim_id.clone_from(&existing.scim_id);
    apply_resource(&mut person, map)?;
    person.check().map_err(|e| invalid(e.to_string()))?;
    Ok(person)
}

/// A PATCH (RFC 7644 section 3.5.2): add / replace / remove operations.
pub fn patch(existing: &Person, body: &Value, now: DateTime<Utc>) -> Result<Person, ScimError> {
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("a PatchOp needs an Operations array"))?;
    let mut person = existing.clone();
    for (i, op) in ops.iter().enumerate() {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| syntax(format!("Operations[{i}].op is required")))?
            .to_ascii_lowercase();
        let path = op.get("path").and_then(Value::as_str);
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match (kind.as_str(), path) {
            ("add" | "replace", Some(path)) => set(&mut person, path, &value)?,
            ("add" | "replace", None) => {
                let Value::Object(map) = &value else {
                    return Err(invalid(format!(
                        "Operations[{i}]: without a path the value must be an object"
                    )));
                };
                apply_resource(&mut person, map)?;
            }
            ("remove", Some(path)) => set(&mut person, path, &Value::Null)?,
            ("remove", None) => {
                return Err(ScimError {
                    scim_type: "noTarget",
                    detail: format!("Operations[{i}]: remove needs a path"),
                });
            }
            (other, _) => {
                return Err(syntax(format!(
                    "Operations[{i}].op {other:?} must be add, replace or remove"
                )));
            }
        }
    }
    person.subject = existing.subject.clone();
    person.updated_at = now;
    person.check().map_err(|e| invalid(e.to_string()))?;
    Ok(person)
}

/// The User resource for a directory entry.
pub fn resource(person: &Person, base: &str) -> Value {
    let id = person.scim_id.clone().unwrap_or_default();
    let mut enterprise = Map::new();
    if let Some(m) = &person.manager {
        enterprise.insert("manager".into(), json!({ "value": m }));
    }
    if let Some(n) = &person.employee_number {
        enterprise.insert("employeeNumber".into(), json!(n));
    }
    if let Some(d) = &person.department {
        enterprise.insert("department".into(), json!(d));
    }
    let mut ours = Map::new();
    if let Some(s) = &person.sponsor {
        ours.insert("sponsor".into(), json!({ "value": s }));
    }
    if let Some(d) = person.start_date {
        ours.insert("startDate".into(), json!(d.to_string()));
    }
    let mut out = json!({
        "schemas": [USER, ENTERPRISE, CLEARANCE],
        "id": id,
        "userName": person.user_name,
        "active": person.active,
        "meta": {
            "resourceType": "User",
            "lastModified": person.updated_at.to_rfc3339(),
            "location": format!("{base}/Users/{id}"),
        },
        ENTERPRISE: enterprise,
        CLEARANCE: ours,
    });
    let fields = [
        ("externalId", person.external_id.clone()),
        ("userType", person.user_type.clone()),
        ("displayName", person.display_name.clone()),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            out[k] = json!(v);
        }
    }
    if let Some(e) = &person.email {
        out["emails"] = json!([{ "value": e, "primary": true }]);
    }
    out
}

/// The only filter IdPs use to find a user before creating it: `userName eq "..."` (also
/// `externalId eq`). Returns (attribute, value).
pub fn parse_filter(filter: &str) -> Result<(String, String), ScimError> {
    let bad = || ScimError {
        scim_type: "invalidFilter",
        detail: format!(
            "unsupported filter {filter:?}: use userName eq \"...\" or externalId eq \"...\""
        ),
    };
    let mut parts = filter.trim().splitn(3, ' ');
    let attr = parts.next().ok_or_else(bad)?;
    let op = parts.next().ok_or_else(bad)?;
    let value = parts.next().ok_or_else(bad)?.trim();
    if !op.eq_ignore_ascii_case("eq") {
        return Err(bad());
    }
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(bad)?;
    let attr = attr.to_ascii_lowercase();
    if attr != "username" && attr != "externalid" {
        return Err(bad());
    }
    Ok((attr, value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn alice() -> Person {
        create(
            &json!({
                "schemas": [USER, ENTERPRISE],
                "userName": "Alice@Example.com",
                "externalId": "e-1",
                "active": true,
                "userType": "Employee",
                "displayName": "Alice",
                "emails": [{"value": "alice@example.com", "primary": true}],
                ENTERPRISE: {
                    "employeeNumber": "701984",
                    "department": "Finance",
                    "manager": {"value": "mgr-id"}
                },
                CLEARANCE: {"startDate": "2026-11-02"}
            }),
            "id-1",
            now(),
        )
        .unwrap()
    }

    #[test]
    fn a_full_user_maps_to_a_directory_entry_and_back() {
        let a = alice();
        assert_eq!(a.subject.as_str(), "alice@example.com");
        assert_eq!(a.user_type.as_deref(), Some("employee"));
        assert_eq!(a.manager.as_deref(), Some("mgr-id"));
        assert_eq!(a.department.as_deref(), Some("Finance"));
        assert_eq!(a.employee_number.as_deref(), Some("701984"));
        assert_eq!(a.start_date, NaiveDate::from_ymd_opt(2026, 11, 2));
        let r = resource(&a, "https://c/.clearance/scim/v2");
        assert_eq!(r["id"], "id-1");
        assert_eq!(r[ENTERPRISE]["manager"]["value"], "mgr-id");
        assert_eq!(
            r["meta"]["location"],
            "https://c/.clearance/scim/v2/Users/id-1"
        );
    }

    #[test]
    fn patch_accepts_entra_quirks() {
        let a = alice();
        let p = patch(
            &a,
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "boss@example.com"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a2@example.com"},
                {"op": "replace", "path": "name.givenName", "value": "ignored"},
                {"op": "replace", "value": {"displayName": "Alice B", "userType": "Contractor"}}
            ]}),
            now(),
        )
        .unwrap();
        assert!(!p.active);
        assert_eq!(p.manager.as_deref(), Some("boss@example.com"));
        assert_eq!(p.email.as_deref(), Some("a2@example.com"));
        assert_eq!(p.display_name.as_deref(), Some("Alice B"));
        assert_eq!(p.user_type.as_deref(), Some("contractor"));
        let p2 = patch(
            &a,
            &json!({"Operations": [{"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": {"value": "x@example.com"}}]}),
            now(),
        )
        .unwrap();
        assert_eq!(p2.manager.as_deref(), Some("x@example.com"));
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        assert_eq!(
            create(&json!({}), "i", now()).unwrap_err().scim_type,
            "invalidValue"
        );
        assert_eq!(
            create(&json!({"userName": "a b"}), "i", now())
                .unwrap_err()
                .scim_type,
            "invalidValue"
        );
        // A contractor without manager or sponsor is refused; with a sponsor it is fine.
        let e = create(
            &json!({"userName": "c@x", "userType": "Contractor"}),
            "i",
            now(),
        )
        .unwrap_err();
        assert!(e.detail.contains("sponsor"), "{e}");
        assert!(create(
            &json!({"userName": "c@x", "userType": "Contractor", CLEARANCE: {"sponsor": "s@x"}}),
            "i",
            now()
        )
        .is_ok());
        assert_eq!(
            patch(&alice(), &json!({"Operations": [{"op": "move"}]}), now())
                .unwrap_err()
                .scim_type,
            "invalidSyntax"
        );
        assert_eq!(
            patch(
                &alice(),
                &json!({"Operations": [{"op": "replace", "path": "active", "value": 3}]}),
                now()
            )
            .unwrap_err()
            .scim_type,
            "invalidValue"
        );
        assert_eq!(
            parse_filter("userName eq \"bob@x\"").unwrap(),
            ("username".into(), "bob@x".into())
        );
        assert!(parse_filter("displayName co \"x\"").is_err());
    }
}
