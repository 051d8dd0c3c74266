//! Fixed inputs the targets share: a clock, a policy and mappings like a small deployment's.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use clearance::domain::esign::{AgreementMatch, EsignMapping, EsignTarget, MappingRule};
use clearance::domain::{
    Enforcement, Policy, Requirement, RequirementId, RequirementKind, Selector,
};

pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default()
}

fn requirement(id: &str, kind: RequirementKind, version: &str) -> Option<Requirement> {
    Some(Requirement {
        id: RequirementId(id.into()),
        kind,
        title: id.into(),
        description: None,
        version: version.parse().ok()?,
        version_since: None,
        validity: Some(chrono::Duration::days(365)),
        grace: chrono::Duration::days(30),
        url: None,
        applies_to: Selector::default(),
        enforcement: Enforcement::Block,
        enforce_from: None,
        warn_every: chrono::Duration::hours(24),
        document: None,
        changes: Vec::new(),
    })
}

pub fn policy() -> Policy {
    Policy {
        requirements: [
            requirement("security-awareness", RequirementKind::Training, "2026.1"),
            requirement("confidentiality-agreement", RequirementKind::Agreement, "1"),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

pub fn esign_mapping() -> EsignMapping {
    let target = |id: &str| EsignTarget {
        requirement: RequirementId(id.into()),
        version: "1".parse().expect("a version"),
    };
    EsignMapping {
        rules: vec![
            MappingRule {
                matches: AgreementMatch::TemplateId("tmpl-nda".into()),
                target: target("confidentiality-agreement"),
            },
            MappingRule {
                matches: AgreementMatch::DocumentName("Acceptable Use Policy".into()),
                target: target("acceptable-use"),
            },
        ],
        default: None,
    }
}
