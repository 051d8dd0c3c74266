//! `[audit]`, `[manage]`, `[exemptions]`, `[scim]` and `[notifications]`: managers' follow-up and
//! audit evidence. The file types, and their validation into [`FollowUpSettings`].

use super::file::AdminTokenFile;
use super::settings::AdminToken;
use crate::domain::exemption::ExemptionLimits;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// The HMAC-SHA256 key that chains the audit trail (at least 32 characters). Keep it out of
    /// the file: `CLEARANCE_AUDIT__KEY` or `CLEARANCE_AUDIT__KEY_FILE`.
    #[serde(default)]
    pub key: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ManageFile {
    /// Subjects who see and act on everyone.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Members of these groups (from the groups claim) are admins.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Subjects who see everything, read-only.
    #[serde(default)]
    pub auditors: Vec<String>,
    #[serde(default)]
    pub auditor_groups: Vec<String>,
    /// Managers also see the reports of their reports, all the way down.
    #[serde(default)]
    pub indirect_reports: bool,
    /// A met requirement that runs out within this many days shows as "due in N days".
    #[serde(default = "default_due_soon")]
    pub due_soon_days: u32,
    /// Flag a person as a repeat offender after this many cases ...
    #[serde(default = "default_repeat_cases")]
    pub repeat_offender_cases: u32,
    /// ... opened within this many days. Also the scorecard's period.
    #[serde(default = "default_period")]
    pub period_days: u32,
}

fn default_due_soon() -> u32 {
    30
}
fn default_repeat_cases() -> u32 {
    3
}
fn default_period() -> u32 {
    90
}

impl Default for ManageFile {
    fn default() -> Self {
        Self {
            admins: Vec::new(),
            admin_groups: Vec::new(),
            auditors: Vec::new(),
            auditor_groups: Vec::new(),
            indirect_reports: false,
            due_soon_days: default_due_soon(),
            repeat_offender_cases: default_repeat_cases(),
            period_days: default_period(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionsFile {
    /// The longest exemption that can be granted.
    #[serde(default = "default_max_days")]
    pub max_days: u32,
    /// The longest break-glass exemption an admin can grant alone.
    #[serde(default = "default_break_glass_hours")]
    pub break_glass_max_hours: u32,
}

fn default_max_days() -> u32 {
    30
}
fn default_break_glass_hours() -> u32 {
    24
}

impl Default for ExemptionsFile {
    fn default() -> Self {
        Self {
            max_days: default_max_days(),
            break_glass_max_hours: default_break_glass_hours(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScimFile {
    /// Bearer tokens of SCIM clients (the IdP's provisioning agent), as hex SHA-256.
    #[serde(default)]
    pub tokens: Vec<AdminTokenFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsFile {
    /// Where digests and reminders are POSTed; unset turns notifications off.
    #[serde(default)]
    pub url: Option<String>,
    /// `json` (generic) or `slack` (an incoming-webhook payload).
    #[serde(default = "default_format")]
    pub format: String,
    /// `immediate` (rate-limited per manager) or `daily`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// In `immediate` mode, at most one digest per manager per this many minutes.
    #[serde(default = "default_interval")]
    pub min_interval_minutes: u32,
    /// In `daily` mode, the UTC time of day digests go out (`HH:MM`).
    #[serde(default = "default_daily_at")]
    pub daily_at: String,
    /// Signs each delivery: `X-Clearance-Signature: sha256=<HMAC of the body>`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Also send the person concerned a reminder of what is left to do.
    #[serde(default = "yes")]
    pub remind_people: bool,
    /// Give up on a delivery after this many hours of failures (it stays listed as dead).
    #[serde(default = "default_give_up")]
    pub give_up_after_hours: u32,
    /// The first retry waits about this long; each further one doubles it (with jitter) ...
    #[serde(default = "default_retry_initial")]
    pub retry_initial_ms: u64,
    /// ... up to this many seconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
    /// How often the outbox is looked at.
    #[serde(default = "default_tick")]
    pub tick_ms: u64,
}

fn default_format() -> String {
    "json".into()
}
fn default_mode() -> String {
    "immediate".into()
}
fn default_interval() -> u32 {
    60
}
fn default_daily_at() -> String {
    "08:00".into()
}
fn yes() -> bool {
    true
}
fn default_give_up() -> u32 {
    72
}
fn default_retry_initial() -> u64 {
    10_000
}
fn default_retry_max() -> u64 {
    3600
}
fn default_tick() -> u64 {
    1000
}

impl Default for NotificationsFile {
    fn default() -> Self {
        Self {
            url: None,
            format: default_format(),
            mode: default_mode(),
            min_interval_minutes: default_interval(),
            daily_at: default_daily_at(),
            secret: None,
            remind_people: true,
            give_up_after_hours: default_give_up(),
            retry_initial_ms: default_retry_initial(),
            retry_max_seconds: default_retry_max(),
            tick_ms: default_tick(),
        }
    }
}

/// The sections as written.
pub struct FollowUpFiles<'a> {
    pub audit: &'a AuditFile,
    pub manage: &'a ManageFile,
    pub exemptions: &'a ExemptionsFile,
    pub scim: &'a ScimFile,
    pub notifications: &'a NotificationsFile,
}

/// Roles and views for `/.clearance/manage`.
#[derive(Clone, Debug)]
pub struct ManageSettings {
    pub admins: Vec<crate::domain::SubjectKey>,
    pub admin_groups: Vec<String>,
    pub auditors: Vec<crate::domain::SubjectKey>,
    pub auditor_groups: Vec<String>,
    pub indirect_reports: bool,
    pub due_soon: chrono::Duration,
    pub repeat_offender_cases: usize,
    pub period: chrono::Duration,
}

pub use crate::domain::notify::Format as NotifyFormat;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyMode {
    /// At most one digest per manager per interval.
    Immediate { min_interval: Duration },
    /// Once a day at this UTC time.
    Daily { at: chrono::NaiveTime },
}

#[derive(Clone, Debug)]
pub struct NotifySettings {
    pub url: Url,
    pub format: NotifyFormat,
    pub mode: NotifyMode,
    pub secret: Option<String>,
    pub remind_people: bool,
    pub give_up_after: Duration,
    /// The first retry's delay (before jitter); doubles per failure.
    pub retry_initial: Duration,
    /// The longest delay between retries.
    pub retry_max: Duration,
    /// How often the worker looks for news and due deliveries.
    pub tick: Duration,
}

/// Everything managers, auditors and the follow-up machinery need.
#[derive(Clone, Debug)]
pub struct FollowUpSettings {
    pub audit_key: Vec<u8>,
    pub manage: ManageSettings,
    pub exemptions: ExemptionLimits,
    pub scim_tokens: Vec<AdminToken>,
    pub notifications: Option<NotifySettings>,
}

type Problems = Vec<(String, String)>;

fn subjects(p: &mut Problems, key: &str, raw: &[String]) -> Vec<crate::domain::SubjectKey> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            crate::domain::SubjectKey::parse(s)
                .map_err(|e| p.push((format!("{key}[{i}]"), e.to_string())))
                .ok()
        })
        .collect()
}

pub(super) fn validate(f: FollowUpFiles<'_>) -> Result<FollowUpSettings, Problems> {
    let mut p: Problems = Vec::new();
    let key = f.audit.key.trim();
    if key.chars().count() < 32 {
        p.push((
            "audit.key".into(),
            "is required and must be at least 32 characters: the HMAC key of the audit trail (set CLEARANCE_AUDIT__KEY or CLEARANCE_AUDIT__KEY_FILE)".into(),
        ));
    }
    let m = f.manage;
    let manage = ManageSettings {
        admins: subjects(&mut p, "manage.admins", &m.admins),
        admin_groups: m.admin_groups.clone(),
        auditors: subjects(&mut p, "manage.auditors", &m.auditors),
        auditor_groups: m.auditor_groups.clone(),
        indirect_reports: m.indirect_reports,
        due_soon: chrono::Duration::days(i64::from(m.due_soon_days)),
        repeat_offender_cases: m.repeat_offender_cases as usize,
        period: chrono::Duration::days(i64::from(m.period_days.max(1))),
    };
    if m.period_days == 0 {
        p.push(("manage.period_days".into(), "must be at least 1".into()));
    }
    let e = f.exemptions;
    if e.max_days == 0 || e.max_days > 366 {
        p.push((
            "exemptions.max_days".into(),
            "must be between 1 and 366".into(),
        ));
    }
    if e.break_glass_max_hours == 0 || e.break_glass_max_hours > 24 * 7 {
        p.push((
            "exemptions.break_glass_max_hours".into(),
            "must be between 1 and 168".into(),
        ));
    }
    let exemptions = ExemptionLimits {
        max: chrono::Duration::days(i64::from(e.max_days)),
        break_glass_max: chrono::Duration::hours(i64::from(e.break_glass_max_hours)),
    };
    let scim_tokens = super::settings::tokens(&mut p, "scim.tokens", &f.scim.tokens);
    let notifications = notifications(&mut p, f.notifications);
    if p.is_empty() {
        Ok(FollowUpSettings {
            audit_key: key.as_bytes().to_vec(),
            manage,
            exemptions,
            scim_tokens,
            notifications,
        })
    } else {
        Err(p)
    }
}

fn notifications(p: &mut Problems, n: &NotificationsFile) -> Option<NotifySettings> {
    let raw = n.url.as_deref()?.trim();
    let url = match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            p.push((
                "notifications.url".into(),
                format!("{raw:?} is not an http(s) URL"),
            ));
            return None;
        }
    };
    let format = match n.format.as_str() {
        "json" => NotifyFormat::Json,
        "slack" => NotifyFormat::Slack,
        other => {
            p.push((
                "notifications.format".into(),
                format!("{other:?} must be \"json\" or \"slack\""),
            ));
            NotifyFormat::Json
        }
    };
    let mode = match n.mode.as_str() {
        "immediate" => NotifyMode::Immediate {
            min_interval: Duration::from_secs(u64::from(n.min_interval_minutes) * 60),
        },
        "daily" => match chrono::NaiveTime::parse_from_str(&n.daily_at, "%H:%M") {
            Ok(at) => NotifyMode::Daily { at },
            Err(_) => {
                p.push((
                    "notifications.daily_at".into(),
                    format!("{:?} must be a UTC time like \"08:00\"", n.daily_at),
                ));
                return None;
            }
        },
        other => {
            p.push((
                "notifications.mode".into(),
                format!("{other:?} must be \"immediate\" or \"daily\""),
            ));
            return None;
        }
    };
    if n.give_up_after_hours == 0 {
        p.push((
            "notifications.give_up_after_hours".into(),
            "must be at least 1".into(),
        ));
    }
    if !(10..=3_600_000).contains(&n.retry_initial_ms) {
        p.push((
            "notifications.retry_initial_ms".into(),
            "must be between 10 and 3600000".into(),
        ));
    }
    if n.retry_max_seconds == 0 || n.retry_max_seconds > 7 * 24 * 3600 {
        p.push((
            "notifications.retry_max_seconds".into(),
            "must be between 1 and 604800".into(),
        ));
    }
    if !(10..=60_000).contains(&n.tick_ms) {
        p.push((
            "notifications.tick_ms".into(),
            "must be between 10 and 60000".into(),
        ));
    }
    Some(NotifySettings {
        url,
        format,
        mode,
        secret: n.secret.clone().filter(|s| !s.trim().is_empty()),
        remind_people: n.remind_people,
        give_up_after: Duration::from_secs(u64::from(n.give_up_after_hours) * 3600),
        retry_initial: Duration::from_millis(n.retry_initial_ms),
        retry_max: Duration::from_secs(n.retry_max_seconds),
        tick: Duration::from_millis(n.tick_ms),
    })
}
