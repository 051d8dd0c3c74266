//! Turning verified token claims into a [`Principal`], using the configured claim names.

use crate::config::{ClaimNames, IdentityRules, OidcSettings};
use crate::domain::{Principal, SubjectKey};
use serde_json::{Map, Value};

/// Why the claims do not describe a usable person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the sign-in provider did not send the `{0}` claim that identifies people")]
    MissingSubject(String),
    #[error("the `{claim}` claim cannot be used as a subject: {reason}")]
    BadSubject { claim: String, reason: String },
    /// The identity rests on an e-mail address the provider has not verified.
    #[error(
        "your sign-in provider has not verified the e-mail address {0}, so Clearance cannot accept it as who you are (ask your IAM team to verify it at the provider)"
    )]
    EmailUnverified(String),
    /// The e-mail address is outside `oidc.allowed_email_domains`.
    #[error("the e-mail address {0} is not in one of this company's domains")]
    EmailDomain(String),
    /// `oidc.allowed_email_domains` is set, and the sign-in carries no e-mail address at all.
    #[error("the sign-in carries no e-mail address to check against this company's domains")]
    NoEmail,
    /// The `tid` claim is missing or not in `oidc.allowed_tenants`.
    #[error("the sign-in comes from a tenant ({0}) that is not this company's")]
    Tenant(String),
    /// The `hd` claim is missing or not in `oidc.allowed_hosted_domains`.
    #[error("the sign-in comes from a hosted domain ({0}) that is not this company's")]
    HostedDomain(String),
}

impl ClaimsError {
    /// Whether the claims name nobody (a machine's token), rather than a person who is refused.
    pub fn names_nobody(&self) -> bool {
        matches!(self, Self::MissingSubject(_) | Self::BadSubject { .. })
    }
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

/// The person the claims describe, if the claims may admit anybody at all
/// ([`admissible`]), then mapped with the configured claim names ([`principal_from_claims`]).
pub fn person_from_claims(
    claims: &Map<String, Value>,
    oidc: &OidcSettings,
) -> Result<Principal, ClaimsError> {
    let principal = principal_from_claims(claims, &oidc.claims)?;
    admissible(claims, &oidc.claims, &oidc.identity)?;
    Ok(principal)
}

/// Whether the provider says the address is verified: `email_verified` (a boolean, or the
/// string "true" some providers send), or Entra ID's optional claim `xms_edov` (the address's
/// domain is one the tenant has verified), which Entra ID sends instead.
fn verified(claims: &Map<String, Value>) -> bool {
    ["email_verified", "xms_edov"]
        .iter()
        .any(|name| match claims.get(*name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        })
}

fn domain_allowed(address: &str, allowed: &[String]) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    allowed.iter().any(|a| match a.strip_prefix('.') {
        Some(parent) => domain == parent || domain.ends_with(a.as_str()),
        None => domain == *a,
    })
}

/// Checks that verified claims may admit anybody: an identity resting on an e-mail claim (the
/// subject, or the address sent in the e-mail header) needs `email_verified: true` unless
/// `rules.allow_unverified_email`; every address must be in `rules.email_domains` (when set);
/// `tid` and `hd` must be allowed (when set).
pub fn admissible(
    claims: &Map<String, Value>,
    names: &ClaimNames,
    rules: &IdentityRules,
) -> Result<(), ClaimsError> {
    let email = text(claims, &names.email);
    let subject_is_email = names.subject == names.email || names.subject == "email";
    let subject = text(claims, &names.subject);
    if !rules.allow_unverified_email && (email.is_some() || subject_is_email) && !verified(claims) {
        let address = email
            .clone()
            .or_else(|| subject.clone())
            .unwrap_or_default();
        return Err(ClaimsError::EmailUnverified(address));
    }
    if !rules.email_domains.is_empty() {
        let addresses: Vec<&String> = email
            .iter()
            .chain(subject.iter().filter(|s| s.contains('@')))
            .collect();
        if addresses.is_empty() {
            return Err(ClaimsError::NoEmail);
        }
        if let Some(outside) = addresses
            .into_iter()
            .find(|a| !domain_allowed(a, &rules.email_domains))
        {
            return Err(ClaimsError::EmailDomain(outside.clone()));
        }
    }
    if !rules.tenants.is_empty() {
        let tid = text(claims, "tid").unwrap_or_default();
        if !rules.tenants.iter().any(|t| t.eq_ignore_ascii_case(&tid)) {
            return Err(ClaimsError::Tenant(if tid.is_empty() {
                "none".into()
            } else {
                tid
            }));
        }
    }
    if !rules.hosted_domains.is_empty() {
        let hd = text(claims, "hd").unwrap_or_default().to_ascii_lowercase();
        if !rules.hosted_domains.contains(&hd) {
            return Err(ClaimsError::HostedDomain(if hd.is_empty() {
                "none".into()
            } else {
                hd
            }));
        }
    }
    Ok(())
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

    fn rules() -> IdentityRules {
        IdentityRules::default()
    }

    #[test]
    fn an_email_identity_needs_a_verified_address() {
        let unverified =
            map(json!({"sub": "s", "email": "ceo@example.com", "email_verified": false}));
        assert_eq!(
            admissible(&unverified, &names(), &rules()),
            Err(ClaimsError::EmailUnverified("ceo@example.com".into()))
        );
        let absent = map(json!({"sub": "s", "email": "ceo@example.com"}));
        assert!(
            admissible(&absent, &names(), &rules()).is_err(),
            "absent is not verified"
        );
        for yes in [json!(true), json!("true"), json!("TRUE")] {
            let ok = map(json!({"sub": "s", "email": "ceo@example.com", "email_verified": yes}));
            assert_eq!(admissible(&ok, &names(), &rules()), Ok(()));
        }
        let entra = map(json!({"sub": "s", "email": "ceo@example.com", "xms_edov": true}));
        assert_eq!(
            admissible(&entra, &names(), &rules()),
            Ok(()),
            "Entra ID's own claim"
        );
        let entra_no = map(json!({"sub": "s", "email": "ceo@example.com", "xms_edov": false}));
        assert!(admissible(&entra_no, &names(), &rules()).is_err());
        let relaxed = IdentityRules {
            allow_unverified_email: true,
            ..rules()
        };
        assert_eq!(admissible(&unverified, &names(), &relaxed), Ok(()));
        // The subject from another claim and no e-mail header: nothing rests on an address.
        let mut n = names();
        n.subject = "oid".into();
        let no_email = map(json!({"sub": "s", "oid": "1234"}));
        assert_eq!(admissible(&no_email, &n, &rules()), Ok(()));
        // ... but an e-mail claim present still goes into the e-mail header: checked.
        let with_email = map(json!({"sub": "s", "oid": "1234", "email": "x@example.com"}));
        assert!(admissible(&with_email, &n, &rules()).is_err());
    }

    #[test]
    fn domains_tenants_and_hosted_domains() {
        let domains = IdentityRules {
            email_domains: vec!["example.com".into(), ".corp.example".into()],
            ..rules()
        };
        let claims = |email: &str| map(json!({"sub": "s", "email": email, "email_verified": true}));
        assert_eq!(
            admissible(&claims("a@example.com"), &names(), &domains),
            Ok(())
        );
        assert_eq!(
            admissible(&claims("a@EXAMPLE.com"), &names(), &domains),
            Ok(())
        );
        assert_eq!(
            admissible(&claims("a@corp.example"), &names(), &domains),
            Ok(())
        );
        assert_eq!(
            admissible(&claims("a@eu.corp.example"), &names(), &domains),
            Ok(())
        );
        for outside in [
            "a@evil.example",
            "a@example.com.evil",
            "a@sub.example.com",
            "a@xcorp.example",
        ] {
            assert_eq!(
                admissible(&claims(outside), &names(), &domains),
                Err(ClaimsError::EmailDomain(outside.into())),
                "{outside}"
            );
        }
        let mut n = names();
        n.subject = "oid".into();
        n.email = "mail".into();
        assert_eq!(
            admissible(&map(json!({"oid": "1"})), &n, &domains),
            Err(ClaimsError::NoEmail)
        );
        let tenants = IdentityRules {
            tenants: vec!["72f988bf-0000".into()],
            allow_unverified_email: true,
            ..rules()
        };
        let tid = |t: Value| map(json!({"sub": "s", "email": "a@b.example", "tid": t}));
        assert_eq!(
            admissible(&tid(json!("72f988bf-0000")), &names(), &tenants),
            Ok(())
        );
        assert_eq!(
            admissible(&tid(json!("other")), &names(), &tenants),
            Err(ClaimsError::Tenant("other".into()))
        );
        assert_eq!(
            admissible(
                &map(json!({"sub": "s", "email": "a@b.example"})),
                &names(),
                &tenants
            ),
            Err(ClaimsError::Tenant("none".into()))
        );
        let hosted = IdentityRules {
            hosted_domains: vec!["example.com".into()],
            allow_unverified_email: true,
            ..rules()
        };
        let hd = |h: &str| map(json!({"sub": "s", "email": "a@example.com", "hd": h}));
        assert_eq!(admissible(&hd("Example.com"), &names(), &hosted), Ok(()));
        assert_eq!(
            admissible(&hd("gmail.com"), &names(), &hosted),
            Err(ClaimsError::HostedDomain("gmail.com".into()))
        );
    }
}
