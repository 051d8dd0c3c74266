//! Notifications, pure: the managers' denial digest and the person's reminder (generic JSON or a
//! Slack incoming-webhook payload), the outbox message, retry backoff and the body signature.

use super::decision::{Evaluation, Status};
use super::followup::Case;
use super::principal::SubjectKey;
use super::requirement::Policy;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::time::Duration;

/// The shape of the payloads POSTed to the webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Clearance's own JSON (see docs/CONFIG.md).
    Json,
    /// A Slack incoming-webhook payload: `text` and `blocks`.
    Slack,
}

/// What a queued message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// To a manager (or sponsor): their reports' open cases.
    Digest,
    /// To the person concerned: what is left to do.
    Reminder,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Digest => "digest",
            Self::Reminder => "reminder",
        }
    }
}

/// One delivery in the outbox. `body` is the exact payload sent each time, so that retries
/// carry the same bytes (and the same signature); receivers dedupe on `id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub kind: MessageKind,
    pub recipient: SubjectKey,
    pub created_at: DateTime<Utc>,
    pub body: String,
    /// Failed deliveries so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Set when delivery was abandoned (the message is then in the dead list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gave_up_at: Option<DateTime<Utc>>,
}

/// Someone a message is about or addressed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub subject: SubjectKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Contact {
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.subject.to_string())
    }
}

/// One thing left to do, as the blocked page lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TodoItem {
    pub requirement: String,
    pub title: String,
    pub kind: String,
    /// `never_completed | expired | outdated_version | revoked`.
    pub reason: String,
    pub explanation: String,
    pub action: String,
    /// Where to fix it (absolute), if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `warn` items: from when it blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<DateTime<Utc>>,
}

/// Everything unmet in `evaluation`, in policy order, with the link that fixes it: Clearance's
/// own sign-off page for documents (under `public_url`), otherwise the requirement's URL.
pub fn todo_items(policy: &Policy, evaluation: &Evaluation, public_url: &str) -> Vec<TodoItem> {
    let base = public_url.trim_end_matches('/');
    evaluation
        .statuses
        .iter()
        .filter_map(|s| match s.status {
            Status::Unmet { reason } => Some((s, reason)),
            _ => None,
        })
        .map(|(s, reason)| {
            let req = policy.get(&s.requirement);
            let kind = req.map(|r| r.kind);
            TodoItem {
                requirement: s.requirement.to_string(),
                title: req.map_or_else(|| s.requirement.to_string(), |r| r.title.clone()),
                kind: kind.map_or("requirement", |k| k.label()).to_owned(),
                reason: reason.as_str().to_owned(),
                explanation: reason.explain().to_owned(),
                action: kind.map_or("Complete it", |k| k.action()).to_owned(),
                url: req.and_then(|r| match &r.document {
                    Some(_) => Some(format!("{base}/.clearance/requirements/{}", r.id)),
                    None => r.url.clone(),
                }),
                due: s.due,
            }
        })
        .collect()
}

/// The part of a case a digest shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSummary {
    pub id: String,
    pub opened_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Refusals counted so far.
    pub count: u64,
    /// Host -> refusals there.
    pub apps: BTreeMap<String, u64>,
}

impl From<&Case> for CaseSummary {
    fn from(c: &Case) -> Self {
        Self {
            id: c.id.clone(),
            opened_at: c.opened_at,
            last_seen: c.last_seen,
            count: c.count,
            apps: c.apps.clone(),
        }
    }
}

/// One report in a manager's digest: who, their open case, and what they still have to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEntry {
    pub person: Contact,
    pub case: CaseSummary,
    pub missing: Vec<TodoItem>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Slack limits a section's text to 3000 characters and a message to 50 blocks.
const SLACK_TEXT_MAX: usize = 2900;
const SLACK_BLOCKS_MAX: usize = 45;

fn clip(text: String) -> String {
    if text.chars().count() <= SLACK_TEXT_MAX {
        text
    } else {
        let mut t: String = text.chars().take(SLACK_TEXT_MAX).collect();
        t.push('…');
        t
    }
}

/// Slack mrkdwn needs `&`, `<` and `>` escaped.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_item(i: &TodoItem) -> String {
    let title = match &i.url {
        Some(u) => format!("<{}|{}>", esc(u), esc(&i.title)),
        None => esc(&i.title),
    };
    format!(
        "• {title} (`{}`): {}",
        esc(&i.requirement),
        esc(&i.explanation)
    )
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}})
}

/// The digest for one manager. `id` is the delivery id (also sent as `X-Clearance-Delivery`).
pub fn digest_payload(
    format: Format,
    id: &str,
    now: DateTime<Utc>,
    manager: &Contact,
    reports: &[ReportEntry],
    manage_url: &str,
) -> Value {
    let summary = format!(
        "{} of {}'s reports {} refused access because their security induction is not current.",
        plural(reports.len(), "person", "people"),
        manager.label(),
        if reports.len() == 1 { "was" } else { "were" },
    );
    match format {
        Format::Json => json!({
            "type": "clearance.digest",
            "id": id,
            "created_at": time(now),
            "to": manager,
            "summary": summary,
            "reports": reports,
            "manage_url": manage_url,
        }),
        Format::Slack => {
            let mut blocks = vec![section(format!("*Clearance:* {}", esc(&summary)))];
            for r in reports.iter().take(SLACK_BLOCKS_MAX) {
                let mut lines = vec![format!(
                    "*{}* — refused {} since {} (last {})",
                    esc(&r.person.label()),
                    plural(r.case.count as usize, "time", "times"),
                    time(r.case.opened_at),
                    time(r.case.last_seen),
                )];
                lines.extend(r.missing.iter().map(slack_item));
                blocks.push(section(lines.join("\n")));
            }
            if reports.len() > SLACK_BLOCKS_MAX {
                blocks.push(section(format!(
                    "… and {} more.",
                    reports.len() - SLACK_BLOCKS_MAX
                )));
            }
            blocks.push(section(format!(
                "<{}|Open the follow-up view>",
                esc(manage_url)
            )));
            let mut text = summary;
            for r in reports {
                text.push_str(&format!(
                    "\n- {}: {}",
                    r.person.label(),
                    r.missing
                        .iter()
                        .map(|i| i.title.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            // The fallback text is mrkdwn too: names and titles must not mention or link.
            json!({"text": esc(&text), "blocks": blocks})
        }
    }
}

/// The reminder for the person concerned: exactly what is left to do, with the links.
pub fn reminder_payload(
    format: Format,
    id: &str,
    now: DateTime<Utc>,
    person: &Contact,
    case: Option<&CaseSummary>,
    items: &[TodoItem],
) -> Value {
    let summary = format!(
        "{}, you were refused access because {} of your security induction {} not done.",
        person.label(),
        plural(items.len(), "item", "items"),
        if items.len() == 1 { "is" } else { "are" },
    );
    match format {
        Format::Json => json!({
            "type": "clearance.reminder",
            "id": id,
            "created_at": time(now),
            "to": person,
            "summary": summary,
            "case": case,
            "items": items,
        }),
        Format::Slack => {
            let lines: Vec<String> = items.iter().map(slack_item).collect();
            let mut text = summary.clone();
            for i in items {
                text.push_str(&format!("\n- {}", i.title));
                if let Some(u) = &i.url {
                    text.push_str(&format!(": {u}"));
                }
            }
            json!({
                "text": esc(&text),
                "blocks": [
                    section(format!("*Clearance:* {}", esc(&summary))),
                    section(lines.join("\n")),
                ],
            })
        }
    }
}

/// How long to wait before the next attempt after `attempts` failures (1 after the first):
/// `initial * 2^(attempts-1)`, capped at `max`, then "equal jitter" (between half and all of
/// it) from `jitter` in `[0, 1)`.
pub fn backoff(attempts: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    base / 2 + base.mul_f64(jitter / 2.0)
}

/// Whether a message created at `created_at` has failed for too long.
pub fn give_up(created_at: DateTime<Utc>, now: DateTime<Utc>, after: Duration) -> bool {
    chrono::Duration::from_std(after).is_ok_and(|after| now - created_at >= after)
}

/// The `X-Clearance-Signature` value: `sha256=<hex HMAC-SHA256 of the body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Enforcement, Policy, Principal, Record, Requirement, RequirementId, RequirementKind,
        Selector, evaluate,
    };

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn req(id: &str, kind: RequirementKind, title: &str, url: &str) -> Requirement {
        Requirement {
            id: RequirementId(id.into()),
            kind,
            title: title.into(),
            description: None,
            version: "1".parse().unwrap(),
            version_since: None,
            validity: None,
            grace: chrono::Duration::zero(),
            url: Some(url.into()),
            applies_to: Selector::default(),
            enforcement: Enforcement::Block,
            enforce_from: None,
            warn_every: chrono::Duration::hours(24),
            document: None,
            changes: Vec::new(),
        }
    }

    fn policy() -> Policy {
        Policy {
            requirements: vec![
                req(
                    "security-awareness",
                    RequirementKind::Training,
                    "Security awareness training",
                    "https://lms.example.com/courses/security",
                ),
                req(
                    "acceptable-use-policy",
                    RequirementKind::Policy,
                    "Acceptable use policy",
                    "https://intranet.example.com/aup",
                ),
            ],
        }
    }

    fn alice() -> Contact {
        Contact {
            subject: SubjectKey::parse("alice@example.com").unwrap(),
            name: Some("Alice Admitted".into()),
            email: Some("alice@example.com".into()),
        }
    }

    fn items(policy: &Policy, records: &[Record]) -> Vec<TodoItem> {
        let principal = Principal::bare(SubjectKey::parse("alice@example.com").unwrap());
        let reqs: Vec<&Requirement> = policy.requirements.iter().collect();
        let e = evaluate(reqs, &principal, records, at());
        todo_items(policy, &e, "https://clearance.example.com/")
    }

    fn case() -> CaseSummary {
        CaseSummary {
            id: "c1".into(),
            opened_at: at(),
            last_seen: at(),
            count: 3,
            apps: BTreeMap::from([("app.example.com".to_owned(), 3)]),
        }
    }

    #[test]
    fn todo_items_list_every_unmet_requirement_with_reason_and_link() {
        let p = policy();
        let list = items(&p, &[]);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].requirement, "security-awareness");
        assert_eq!(list[0].title, "Security awareness training");
        assert_eq!(list[0].reason, "never_completed");
        assert_eq!(list[0].action, "Take the training");
        assert_eq!(
            list[0].url.as_deref(),
            Some("https://lms.example.com/courses/security")
        );
        assert_eq!(list[1].requirement, "acceptable-use-policy");
    }

    #[test]
    fn json_digest_names_the_manager_and_each_case() {
        let p = policy();
        let mona = Contact {
            subject: SubjectKey::parse("mona@example.com").unwrap(),
            name: None,
            email: None,
        };
        let reports = vec![ReportEntry {
            person: alice(),
            case: case(),
            missing: items(&p, &[]),
        }];
        let v = digest_payload(
            Format::Json,
            "m1",
            at(),
            &mona,
            &reports,
            "https://x/manage",
        );
        assert_eq!(v["type"], "clearance.digest");
        assert_eq!(v["id"], "m1");
        assert_eq!(v["to"]["subject"], "mona@example.com");
        assert_eq!(v["reports"][0]["person"]["subject"], "alice@example.com");
        assert_eq!(v["reports"][0]["case"]["count"], 3);
        assert_eq!(
            v["reports"][0]["missing"][0]["requirement"],
            "security-awareness"
        );
        assert!(v["summary"].as_str().unwrap().contains("1 person"));
    }

    #[test]
    fn slack_payloads_have_text_and_blocks_with_escaped_links() {
        let p = policy();
        let mut person = alice();
        person.name = Some("Alice <&> Admitted".into());
        let reports = vec![ReportEntry {
            person: person.clone(),
            case: case(),
            missing: items(&p, &[]),
        }];
        let v = digest_payload(Format::Slack, "m1", at(), &alice(), &reports, "https://x/m");
        assert!(v["text"].as_str().unwrap().contains("Security awareness"));
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        let second = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(second.contains("Alice &lt;&amp;&gt; Admitted"), "{second}");
        assert!(
            second
                .contains("<https://lms.example.com/courses/security|Security awareness training>")
        );

        let r = reminder_payload(Format::Slack, "m2", at(), &alice(), None, &items(&p, &[]));
        assert!(r["text"].as_str().unwrap().contains("2 items"));
        assert!(r.get("blocks").is_some());
    }

    #[test]
    fn slack_fallback_text_cannot_mention_or_link() {
        let p = policy();
        let mut hostile = alice();
        hostile.name = Some("<!channel> <https://evil.example|click> & co".into());
        let reports = vec![ReportEntry {
            person: hostile.clone(),
            case: case(),
            missing: items(&p, &[]),
        }];
        let digest = digest_payload(Format::Slack, "m1", at(), &alice(), &reports, "https://x/m");
        let reminder = reminder_payload(Format::Slack, "m2", at(), &hostile, None, &items(&p, &[]));
        for v in [digest, reminder] {
            let text = v["text"].as_str().unwrap();
            assert!(!text.contains('<') && !text.contains('>'), "{text}");
            assert!(
                text.contains("&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; co"),
                "{text}"
            );
        }
    }

    #[test]
    fn json_reminder_lists_what_is_left() {
        let p = policy();
        let r = reminder_payload(
            Format::Json,
            "m2",
            at(),
            &alice(),
            Some(&case()),
            &items(&p, &[]),
        );
        assert_eq!(r["type"], "clearance.reminder");
        assert_eq!(r["to"]["email"], "alice@example.com");
        assert_eq!(r["items"].as_array().unwrap().len(), 2);
        assert_eq!(r["items"][1]["reason"], "never_completed");
        assert_eq!(r["case"]["id"], "c1");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let s = Duration::from_secs;
        assert_eq!(backoff(1, s(10), s(3600), 0.0), s(5));
        assert_eq!(
            backoff(1, s(10), s(3600), 0.999_999_999),
            s(10) - Duration::from_nanos(5)
        );
        assert_eq!(backoff(2, s(10), s(3600), 0.0), s(10));
        assert_eq!(backoff(3, s(10), s(3600), 0.0), s(20));
        assert_eq!(backoff(20, s(10), s(3600), 0.0), s(1800));
        assert_eq!(backoff(u32::MAX, s(10), s(3600), 0.5), s(2700));
        assert_eq!(backoff(0, s(10), s(3600), f64::NAN), s(5));
        for a in 1..40 {
            let d = backoff(a, s(1), s(60), 0.7);
            assert!(d <= s(60) && d >= s(0), "{a}: {d:?}");
        }
    }

    #[test]
    fn give_up_after_the_window() {
        let h = Duration::from_secs(3600);
        assert!(!give_up(at(), at() + chrono::Duration::minutes(59), h));
        assert!(give_up(at(), at() + chrono::Duration::minutes(60), h));
    }

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn messages_round_trip_as_json() {
        let m = Message {
            id: "m1".into(),
            kind: MessageKind::Digest,
            recipient: SubjectKey::parse("mona@example.com").unwrap(),
            created_at: at(),
            body: "{}".into(),
            attempts: 2,
            last_error: Some("HTTP 500".into()),
            gave_up_at: None,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
    }
}
