//! Denial events: one refused request, with everything a manager or auditor needs to follow it up.

use super::decision::Unmet;
use super::principal::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One refused request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenialEvent {
    /// Unique per refusal, chosen when it happens: the denial log and the person's case take
    /// each id at most once, however often a write whose outcome was unknown is retried.
    /// Empty only in entries written before ids existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub denial_id: String,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub person_type: Option<String>,
    pub manager: Option<String>,
    /// Host and path of the request that was refused.
    pub host: String,
    pub path: String,
    /// The route's path prefix and upstream, as configured.
    pub route: String,
    pub missing: Vec<Unmet>,
    pub request_id: String,
    pub client_addr: String,
    pub user_agent: Option<String>,
    /// `true` when the request was let through because every unmet item is `monitor`/`warn`.
    #[serde(default)]
    pub would_deny_only: bool,
    /// Let through because an exemption covers every unmet item, until this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exempt_until: Option<DateTime<Utc>>,
    /// Refused because the directory marks the person inactive (`active=false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inactive: bool,
}

impl DenialEvent {
    /// Builds the event for a principal; request details are filled in by the caller.
    pub fn for_principal(principal: &Principal, time: DateTime<Utc>, missing: Vec<Unmet>) -> Self {
        Self {
            denial_id: String::new(),
            time,
            subject: principal.subject.to_string(),
            email: principal.email.clone(),
            name: principal.name.clone(),
            person_type: principal.person_type.clone(),
            manager: principal.manager.clone(),
            host: String::new(),
            path: String::new(),
            route: String::new(),
            missing,
            request_id: String::new(),
            client_addr: String::new(),
            user_agent: None,
            would_deny_only: false,
            exempt_until: None,
            inactive: false,
        }
    }
}
