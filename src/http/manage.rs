//! The manager UI at `/.clearance/manage` (server-rendered, no JavaScript, CSRF-checked forms)
//! and its JSON twin under `/.clearance/api/v1`: team at a glance, a person's file, actions on
//! cases, exemptions. Who may see what is decided in [`crate::oversight`].

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use super::gate::{
    Recording, Target, admit_authenticated, authenticate, every_requirement, request_host,
    start_url,
};
use super::normalize::normalize_path;
use crate::domain::{Directory, Route, SubjectKey};
use crate::oversight::{self, ExemptionAsk, Viewer};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

/// Who is asking, what they may see, and the form token of their session (if they came with one).
struct Caller {
    viewer: Viewer,
    directory: Directory,
    csrf: Option<String>,
}

/// Clearance's own pages are gated like any app: managers lead by example.
fn manage_route(state: &AppState) -> Route {
    every_requirement(
        state,
        "/.clearance/manage",
        Some("(clearance manager pages)"),
    )
}

fn bearer_header(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..7))
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
}

/// Identifies the caller. The API also takes an admin token; people (session or bearer token)
/// must themselves be compliant, and are refused like anyone else when they are not.
async fn caller(req: &HttpRequest, state: &AppState, api: bool) -> Result<Caller, AppError> {
    let now = state.clock.now();
    if api && bearer_header(req) {
        if let Ok(name) = super::api::token_name(req, &state.settings().admin_tokens, "admin") {
            return Ok(Caller {
                viewer: Viewer::admin_token(&name),
                directory: oversight::directory(state.store.as_ref(), &state.known_subjects, now)
                    .await?,
                csrf: None,
            });
        }
        if !state.settings().bearer.enabled {
            return Err(AppError::Unauthorized(
                "The bearer token is not a valid admin token (and provider access tokens are not enabled: bearer.enabled)."
                    .into(),
            ));
        }
    }
    let original = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_owned(),
    };
    let who = authenticate(req, state, &|| start_url(&original)).await?;
    if who.machine {
        // A client acting for a person must not inherit their oversight role.
        return Err(AppError::Forbidden(
            "Machine clients cannot use the manager pages or their API.".into(),
        ));
    }
    let csrf = who.csrf.clone();
    let route = manage_route(state);
    let target = Target {
        host: request_host(req),
        path: normalize_path(req.path())
            .map_err(|e| AppError::bad_request("invalid_path", e.to_string()))?,
        original,
        route: &route,
        interruptible: false,
    };
    let admission = admit_authenticated(req, state, &target, who, Recording::Record).await?;
    let principal = admission
        .principal()
        .ok_or_else(|| AppError::Internal("the manager pages admitted nobody".into()))?;
    let directory = oversight::directory(state.store.as_ref(), &state.known_subjects, now).await?;
    Ok(Caller {
        viewer: Viewer::person(principal, &state.settings().followup.manage, &directory),
        directory,
        csrf,
    })
}

/// Admins (by role or admin token) and auditors: the evidence API.
pub(super) async fn evidence_reader(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Viewer, AppError> {
    let c = caller(req, state, true).await?;
    if c.viewer.admin || c.viewer.auditor {
        Ok(c.viewer)
    } else {
        Err(AppError::Forbidden(
            "Evidence is for admins and auditors.".into(),
        ))
    }
}

fn same_token(expected: Option<&str>, sent: Option<&str>) -> Result<(), AppError> {
    match (expected, sent) {
        (Some(e), Some(s)) if bool::from(e.as_bytes().ct_eq(s.as_bytes())) => Ok(()),
        _ => Err(AppError::bad_request(
            "invalid_csrf_token",
            "This form has expired or did not come from Clearance. Reload the page and try again.",
        )),
    }
}

/// Forms must carry the session's token.
fn check_form(caller: &Caller, sent: Option<&str>) -> Result<(), AppError> {
    same_token(caller.csrf.as_deref(), sent)
}

/// API writes with a session cookie must carry its token in `X-CSRF-Token`; token holders need not.
fn check_api_write(caller: &Caller, req: &HttpRequest) -> Result<(), AppError> {
    match &caller.csrf {
        None => Ok(()),
        Some(expected) => same_token(
            Some(expected),
            req.headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok()),
        ),
    }
}

fn subject(raw: &str) -> Result<SubjectKey, AppError> {
    SubjectKey::parse(raw).map_err(|e| AppError::bad_request("invalid_subject", e.to_string()))
}

fn person_href(subject: &SubjectKey) -> String {
    format!(
        "/.clearance/manage/people/{}",
        utf8_percent_encode(subject.as_str(), NON_ALPHANUMERIC)
    )
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

fn flash(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "action" => Some("The action was recorded."),
        "requested" => Some("The exemption was requested. Someone else must approve it."),
        "granted" => Some("Break-glass exemption granted. It is in the report."),
        "approve" => Some("The exemption was approved."),
        "reject" => Some("The exemption was rejected."),
        "revoke" => Some("The exemption was revoked."),
        _ => None,
    }
}

/// `GET /.clearance/manage`: my team at a glance.
pub async fn team_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Flash>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, false).await.http(&req)?;
    let now = state.clock.now();
    let view = oversight::team(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        c.viewer,
        now,
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    let members: Vec<_> = view
        .members
        .iter()
        .map(|m| {
            json!({
                "m": m,
                "href": person_href(&m.subject),
                "open_case_last_seen": m.open_case.as_ref().map(|c| fmt_time(c.last_seen)),
                "exempt_until": m.exempt_until.map(fmt_time),
            })
        })
        .collect();
    let new_joiners: Vec<_> = members
        .iter()
        .filter(|row| row["m"]["new_joiner"] == true)
        .cloned()
        .collect();
    let body = super::pages::render(
        "manage.html",
        json!({
            "view": view,
            "new_joiners": new_joiners,
            "members": members,
            "good": view.members.iter().filter(|m| m.on_time).map(|m| json!({"name": m.name, "href": person_href(&m.subject)})).collect::<Vec<_>>(),
            "open_cases": view.members.iter().filter(|m| m.open_case.is_some()).count(),
            "median": view.scorecard.median_hours_to_action.map(|h| format!("{h:.1}")),
            "rate": format!("{:.0}", view.scorecard.completion_rate),
            "flash": flash(query.done.as_deref()),
            "wide": true,
            "now": fmt_time(now),
        }),
    );
    Ok(html(body))
}

/// `GET /.clearance/manage/people/{subject}`: checklist, cases, actions, exemptions, forms.
pub async fn person_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<Flash>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, false).await.http(&req)?;
    let subject = subject(&path).http(&req)?;
    let now = state.clock.now();
    let m = oversight::person_file(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        &c.viewer,
        &subject,
        now,
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    let titles = |id: &str| {
        state
            .settings()
            .policy
            .get_str(id)
            .map_or_else(|| id.to_owned(), |r| r.title.clone())
    };
    let items: Vec<_> = m
        .checklist
        .items
        .iter()
        .map(|i| {
            json!({
                "title": titles(i.requirement.as_str()),
                "label": i.state.label(),
                "class": i.state.class(),
                "completed_at": i.completed_at.map(fmt_time),
                "valid_until": i.valid_until.map(fmt_time),
            })
        })
        .collect();
    let cases: Vec<_> = m
        .cases
        .iter()
        .rev()
        .map(|case| {
            json!({
                "c": case,
                "opened_at": fmt_time(case.opened_at),
                "last_seen": fmt_time(case.last_seen),
                "closed_at": case.closed_at.map(fmt_time),
                "missing": case.missing.keys().map(|k| titles(k)).collect::<Vec<_>>(),
                "actions": m.actions.iter().filter(|a| a.case_id == case.id).map(|a| json!({
                    "label": a.kind.label(), "by": a.by, "at": fmt_time(a.at), "comment": a.comment,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let exemptions: Vec<_> = m
        .exemptions
        .iter()
        .rev()
        .map(|e| exemption_row(e, &c.viewer, now, &titles))
        .collect();
    let limits = state.settings().followup.exemptions;
    let body = super::pages::render(
        "manage_person.html",
        json!({
            "m": m,
            "href": person_href(&m.subject),
            "items": items,
            "cases": cases,
            "exemptions": exemptions,
            "can_act": c.viewer.can_act(&m.subject),
            "admin": c.viewer.admin,
            "kinds": crate::domain::ActionKind::ALL.map(|k| json!({"value": k.as_str(), "label": k.label()})),
            "requirements": state.settings().policy.requirements.iter().map(|r| json!({"id": r.id, "title": r.title})).collect::<Vec<_>>(),
            "max_days": limits.max.num_days(),
            "break_glass_max_hours": limits.break_glass_max.num_hours(),
            "csrf": c.csrf,
            "start_date": m.checklist.start_date.map(|d| d.to_string()),
            "completed_at": m.checklist.completed_at.map(fmt_time),
            "exempt_until": m.exempt_until.map(fmt_time),
            "flash": flash(query.done.as_deref()),
            "wide": true,
        }),
    );
    Ok(html(body))
}

fn exemption_row(
    e: &crate::domain::Exemption,
    viewer: &Viewer,
    now: chrono::DateTime<chrono::Utc>,
    titles: &dyn Fn(&str) -> String,
) -> serde_json::Value {
    json!({
        "e": e,
        "covers": if e.requirements.is_empty() { "every requirement".to_owned() } else {
            e.requirements.iter().map(|r| titles(r.as_str())).collect::<Vec<_>>().join(", ")
        },
        "requested_at": fmt_time(e.requested_at),
        "decided_at": e.decided_at.map(fmt_time),
        "expires_at": e.expires_at.map(fmt_time),
        "active": e.active_at(now),
        "can_act": viewer.can_act(&e.subject),
        "href": person_href(&e.subject),
    })
}

/// Name-value pairs of a form body, repeated names kept.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /.clearance/manage/people/{subject}/actions`
pub async fn action_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, false).await.http(&req)?;
    let fields = form_fields(&body);
    check_form(&c, field(&fields, "csrf")).http(&req)?;
    let subject = subject(&path).http(&req)?;
    oversight::record_action(
        state.store.as_ref(),
        &c.viewer,
        &subject,
        field(&fields, "kind").unwrap_or(""),
        field(&fields, "comment").unwrap_or(""),
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    Ok(see_other(format!("{}?done=action", person_href(&subject))))
}

/// How long an exemption lasts: `hours`, else `days`.
fn duration_hours(hours: Option<i64>, days: Option<i64>) -> Result<i64, AppError> {
    match (hours, days) {
        (Some(h), _) => Ok(h),
        (None, Some(d)) => Ok(d.saturating_mul(24)),
        (None, None) => Err(AppError::bad_request(
            "invalid_exemption",
            "days or hours: say how long the exemption lasts",
        )),
    }
}

/// Reads an exemption request from a form or JSON: `requirement` (repeated; none means all),
/// `days` or `hours`, `reason`, `break_glass`.
fn ask_from(fields: &[(String, String)]) -> Result<ExemptionAsk, AppError> {
    let number = |name: &str| -> Result<Option<i64>, AppError> {
        match field(fields, name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                AppError::bad_request("invalid_exemption", format!("{name}: not a whole number"))
            }),
        }
    };
    let hours = duration_hours(number("hours")?, number("days")?)?;
    Ok(ExemptionAsk {
        requirements: fields
            .iter()
            .filter(|(k, _)| k == "requirement")
            .map(|(_, v)| v.clone())
            .filter(|v| v != "all")
            .collect(),
        hours,
        reason: field(fields, "reason").unwrap_or("").to_owned(),
        break_glass: matches!(field(fields, "break_glass"), Some("1" | "true" | "on")),
    })
}

/// `POST /.clearance/manage/people/{subject}/exemptions`
pub async fn exemption_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, false).await.http(&req)?;
    let fields = form_fields(&body);
    check_form(&c, field(&fields, "csrf")).http(&req)?;
    let subject = subject(&path).http(&req)?;
    let ask = ask_from(&fields).http(&req)?;
    let e = oversight::request_exemption(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        &c.viewer,
        &subject,
        ask,
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    let done = if e.break_glass {
        "granted"
    } else {
        "requested"
    };
    Ok(see_other(format!("{}?done={done}", person_href(&subject))))
}

/// `GET /.clearance/manage/exemptions`: every exemption and break-glass use in view.
pub async fn exemptions_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Flash>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, false).await.http(&req)?;
    let now = state.clock.now();
    let lines = oversight::exemptions_report(state.store.as_ref(), &c.viewer, now)
        .await
        .map_err(AppError::from)
        .http(&req)?;
    let titles = |id: &str| {
        state
            .settings()
            .policy
            .get_str(id)
            .map_or_else(|| id.to_owned(), |r| r.title.clone())
    };
    let rows: Vec<_> = lines
        .iter()
        .map(|l| {
            let mut row = exemption_row(&l.exemption, &c.viewer, now, &titles);
            row["actionable"] = json!(l.actionable);
            row
        })
        .collect();
    let body = super::pages::render(
        "manage_exemptions.html",
        json!({
            "rows": rows,
            "csrf": c.csrf,
            "role": c.viewer.role(),
            "flash": flash(query.done.as_deref()),
            "wide": true,
        }),
    );
    Ok(html(body))
}

/// `POST /.clearance/manage/exemptions/{id}`: approve, reject or revoke.
pub async fn decide_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, false).await.http(&req)?;
    let fields = form_fields(&body);
    check_form(&c, field(&fields, "csrf")).http(&req)?;
    let decision = field(&fields, "decision").unwrap_or("");
    oversight::decide_exemption(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        &c.viewer,
        oversight::ExemptionDecision {
            id: &path,
            decision,
            comment: field(&fields, "comment").map(str::to_owned),
        },
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    Ok(see_other(format!(
        "/.clearance/manage/exemptions?done={}",
        utf8_percent_encode(decision, NON_ALPHANUMERIC)
    )))
}

// The JSON API.

/// `GET /.clearance/api/v1/team`; for session callers also the `csrf_token` their writes need.
pub async fn team_api(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, true).await.http(&req)?;
    let view = oversight::team(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        c.viewer,
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    let mut body = serde_json::to_value(&view)
        .map_err(|e| AppError::Internal(e.to_string()))
        .http(&req)?;
    // Cookie sessions need it for writes (`X-CSRF-Token`).
    body["csrf_token"] = json!(c.csrf);
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /.clearance/api/v1/people/{subject}`
pub async fn person_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, true).await.http(&req)?;
    let subject = subject(&path).http(&req)?;
    let m = oversight::person_file(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        &c.viewer,
        &subject,
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    Ok(HttpResponse::Ok().json(m))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    /// The kind of action (reminded, escalated ...).
    kind: String,
    #[serde(default)]
    comment: String,
}

/// `POST /.clearance/api/v1/people/{subject}/actions`
pub async fn action_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ActionInput>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, true).await.http(&req)?;
    check_api_write(&c, &req).http(&req)?;
    let subject = subject(&path).http(&req)?;
    let action = oversight::record_action(
        state.store.as_ref(),
        &c.viewer,
        &subject,
        &body.kind,
        &body.comment,
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    Ok(HttpResponse::Created().json(action))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExemptionInput {
    #[serde(default)]
    requirements: Vec<String>,
    #[serde(default)]
    hours: Option<i64>,
    #[serde(default)]
    days: Option<i64>,
    reason: String,
    #[serde(default)]
    break_glass: bool,
}

/// `POST /.clearance/api/v1/people/{subject}/exemptions`
pub async fn exemption_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ExemptionInput>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, true).await.http(&req)?;
    check_api_write(&c, &req).http(&req)?;
    let subject = subject(&path).http(&req)?;
    let input = body.into_inner();
    let hours = duration_hours(input.hours, input.days).http(&req)?;
    let e = oversight::request_exemption(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        &c.viewer,
        &subject,
        ExemptionAsk {
            requirements: input.requirements,
            hours,
            reason: input.reason,
            break_glass: input.break_glass,
        },
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    Ok(HttpResponse::Created().json(e))
}

/// `GET /.clearance/api/v1/exemptions`
pub async fn exemptions_api(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, true).await.http(&req)?;
    let lines = oversight::exemptions_report(state.store.as_ref(), &c.viewer, state.clock.now())
        .await
        .map_err(AppError::from)
        .http(&req)?;
    Ok(HttpResponse::Ok().json(json!({ "exemptions": lines })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    /// approve, reject or revoke.
    decision: String,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /.clearance/api/v1/exemptions/{id}`: approve, reject or revoke.
pub async fn decide_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<DecisionInput>,
) -> Result<HttpResponse, HttpError> {
    let c = caller(&req, &state, true).await.http(&req)?;
    check_api_write(&c, &req).http(&req)?;
    let input = body.into_inner();
    let e = oversight::decide_exemption(
        &state.settings(),
        state.store.as_ref(),
        &c.directory,
        &c.viewer,
        oversight::ExemptionDecision {
            id: &path,
            decision: &input.decision,
            comment: input.comment,
        },
        state.clock.now(),
    )
    .await
    .map_err(AppError::from)
    .http(&req)?;
    Ok(HttpResponse::Ok().json(e))
}
