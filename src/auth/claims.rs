//! Turning verified token claims into a [`Principal`], using the configured claim names.

use crate::config::ClaimNames;
use crate::domain::{Principal, SubjectKey};
use serde_json::{Map, Value};

/// Why the claims do not describe a usable person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the sign-in provider did not send the `{0}` claim that identifies people")]
    MissingSubject(String),
    #[error("the `{claim}` claim cannot be used as a subject: {reason}")]
    BadSubject { claim: String, reason: String },
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Groups may arrive as an array of strings or as one comma-separated string.
fn groups(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| {
                v.as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds the principal from merged ID-token and userinfo claims.
pub fn principal_from_claims(
    claims: &Map<String, Value>,
    names: &ClaimNames,
) -> Result<Principal, ClaimsError> {
    let raw = text(claims, &names.subject)
        .ok_or_else(|| ClaimsError::MissingSubject(names.subject.clone()))?;
    let subject = SubjectKey::parse(&raw).map_err(|e| ClaimsError::BadSubject {
        claim: names.subject.clone(),
        reason: e.to_string(),
    })?;
    Ok(Principal {
        provider_sub: text(claims, "sub").unwrap_or_else(|| subject.to_string()),
        subject,
        email: text(claims, &names.email).map(|e| e.to_lowercase()),
        name: text(claims, &names.name),
        groups: groups(claims, &names.groups),
        person_type: text(claims, &names.person_type).map(|t| t.to_lowercase()),
        manager: text(claims, &names.manager),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> ClaimNames {
        ClaimNames {
            subject: "email".into(),
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
            person_type: "employee_type".into(),
            manager: "manager".into(),
        }
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn maps_all_claims() {
        let p = principal_from_claims(
            &map(json!({"sub": "s1", "email": "Carl@Example.com", "name": "Carl", "groups": ["a", "b"],
                        "employee_type": "Contractor", "manager": "mona@example.com"})),
            &names(),
        )
        .unwrap();
        assert_eq!(p.subject.as_str(), "carl@example.com");
        assert_eq!(p.provider_sub, "s1");
        assert_eq!(p.groups, vec!["a", "b"]);
        assert_eq!(p.person_type.as_deref(), Some("contractor"));
        assert_eq!(p.manager.as_deref(), Some("mona@example.com"));
    }

    #[test]
    fn subject_claim_is_configurable_and_required() {
        let mut n = names();
        n.subject = "preferred_username".into();
        let e = principal_from_claims(&map(json!({"sub": "x", "email": "a@b"})), &n).unwrap_err();
        assert_eq!(e, ClaimsError::MissingSubject("preferred_username".into()));
        let p = principal_from_claims(&map(json!({"sub": "x", "preferred_username": "JDoe"})), &n)
            .unwrap();
        assert_eq!(p.subject.as_str(), "jdoe");
    }

    #[test]
    fn bad_subjects_and_string_groups() {
        let e = principal_from_claims(&map(json!({"email": "a {b}"})), &names()).unwrap_err();
        assert!(matches!(e, ClaimsError::BadSubject { .. }));
        let p = principal_from_claims(&map(json!({"email": "a@b", "groups": "x, y"})), &names())
            .unwrap();
        assert_eq!(p.groups, vec!["x", "y"]);
    }
}
