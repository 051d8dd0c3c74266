//! Self-service sign-off: `/.clearance/requirements/{id}` shows an agreement or policy with what
//! changed since the version the person accepted; Accept is enabled only after the end was read
//! (the page reports it, and the server checks the report); Accept and Decline are CSRF-checked
//! POSTs; an acceptance is a record with the document's SHA-256 and the client's details.

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use super::forwarded::client_addr;
use super::gate::{session_identity, start_url};
use super::oauth::checked_rd;
use crate::auth::session::{Session, Sessions, random_token};
use crate::domain::{Decline, Record, Requirement, Source};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

/// How long a page view may take between opening and accepting.
const VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Deserialize)]
pub struct PageQuery {
    rd: Option<String>,
    /// A view token already marked as read (the no-JavaScript path).
    token: Option<String>,
}

#[derive(Serialize)]
struct Change {
    version: String,
    text: String,
}

fn view_key(token: &str) -> String {
    format!("read:{token}")
}

/// What a read mark binds: this person, this requirement, this exact document.
fn read_value(session: &Session, req: &Requirement, sha256: &str) -> String {
    format!(
        "{}|{}|{}|{sha256}",
        session.principal.subject, req.id, req.version
    )
}

fn with_document(state: &AppState, id: &str) -> Result<Requirement, AppError> {
    state
        .settings()
        .policy
        .get_str(id)
        .filter(|r| r.document.is_some())
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("There is no document to accept for {id:?}.")))
}

/// The text to show: the file read at load, or the URL's current text if it still matches.
fn document_text(state: &AppState, requirement: &Requirement) -> Result<String, AppError> {
    match &requirement.document {
        Some(d) if d.url.is_none() => Ok(d.text.clone()),
        Some(_) => state
            .documents
            .get(requirement.id.as_str())
            .ok_or_else(|| AppError::DocumentUnavailable(requirement.title.clone())),
        None => Err(AppError::NotFound("no document".into())),
    }
}

fn check_csrf(session: &Session, sent: &str) -> Result<(), AppError> {
    if bool::from(session.csrf.as_bytes().ct_eq(sent.as_bytes())) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_csrf_token",
            "This form has expired or did not come from Clearance. Reload the page and try again.",
        ))
    }
}

fn self_url(id: &str, rd: &str) -> String {
    format!(
        "/.clearance/requirements/{id}?rd={}",
        percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// `GET /.clearance/requirements/{id}?rd=`
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, HttpError> {
    let requirement = with_document(&state, &id).http(&req)?;
    let rd = checked_rd(query.rd.as_deref(), &state).http(&req)?;
    let (_, session) = session_identity(&req, &state, &|| start_url(&self_url(&id, &rd)))
        .await
        .http(&req)?;
    let Some(document) = &requirement.document else {
        return Err(AppError::NotFound("no document".into())).http(&req);
    };
    let text = document_text(&state, &requirement).http(&req)?;
    // A token from the no-JavaScript "read to the end" form, if it really was marked for this.
    let expected = read_value(&session, &requirement, &document.sha256);
    let marked = match &query.token {
        Some(t) => state.store.get_session(&view_key(t)).await.http(&req)? == Some(expected),
        None => false,
    };
    let token = match (&query.token, marked) {
        (Some(t), true) => t.clone(),
        _ => random_token(),
    };
    let held = state
        .store
        .records(&session.principal.subject)
        .await
        .http(&req)?
        .into_iter()
        .find(|r| r.requirement == requirement.id && r.revoked_at.is_none());
    let changes: Vec<Change> = requirement
        .changes
        .iter()
        .filter(|(v, _)| held.as_ref().is_none_or(|h| *v > h.version))
        .map(|(v, t)| Change {
            version: v.to_string(),
            text: t.clone(),
        })
        .collect();
    let html = super::pages::render(
        "requirement.html",
        json!({
            "id": requirement.id,
            "title": requirement.title,
            "kind": requirement.kind.label(),
            "version": requirement.version.to_string(),
            "held": held.as_ref().map(|h| h.version.to_string()),
            "held_on": held.as_ref().map(|h| h.completed_at.format("%Y-%m-%d").to_string()),
            "changes": changes,
            "text": text,
            "sha256": document.sha256,
            "csrf": session.csrf,
            "token": token,
            "rd": rd,
            "read": marked,
        }),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

#[derive(Deserialize)]
pub struct ReadForm {
    csrf: String,
    token: String,
    /// Set by the page's script; absent from the no-JavaScript form.
    beacon: Option<String>,
    rd: Option<String>,
}

/// `POST /.clearance/requirements/{id}/read`: the page reports that the end of the document was
/// on screen. Accept is refused without this mark.
pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<ReadForm>,
) -> Result<HttpResponse, HttpError> {
    let requirement = with_document(&state, &id).http(&req)?;
    let (_, session) = session_identity(&req, &state, &|| start_url("/"))
        .await
        .http(&req)?;
    check_csrf(&session, &form.csrf).http(&req)?;
    if form.token.len() < 20 || form.token.len() > 64 {
        return Err(AppError::bad_request(
            "invalid_token",
            "The page token is not valid.",
        ))
        .http(&req);
    }
    let sha = requirement
        .document
        .as_ref()
        .map(|d| d.sha256.clone())
        .unwrap_or_default();
    state
        .store
        .put_session(
            &view_key(&form.token),
            &read_value(&session, &requirement, &sha),
            VIEW_TTL,
            None,
        )
        .await
        .http(&req)?;
    if form.beacon.is_some() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let rd = checked_rd(form.rd.as_deref(), &state).http(&req)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("{}&token={}", self_url(&id, &rd), form.token),
        ))
        .finish())
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    token: String,
    decision: String,
    rd: Option<String>,
}

/// `POST /.clearance/requirements/{id}`: Accept (after reading) or Decline.
pub async fn decide(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, HttpError> {
    let requirement = with_document(&state, &id).http(&req)?;
    let rd = checked_rd(form.rd.as_deref(), &state).http(&req)?;
    let (session_id, session) = session_identity(&req, &state, &|| start_url(&self_url(&id, &rd)))
        .await
        .http(&req)?;
    check_csrf(&session, &form.csrf).http(&req)?;
    let document = requirement
        .document
        .clone()
        .ok_or_else(|| AppError::NotFound("no document".into()))
        .http(&req)?;
    let now = state.clock.now();
    let mut evidence = Map::new();
    evidence.insert(
        "document_sha256".into(),
        Value::String(document.sha256.clone()),
    );
    evidence.insert("document".into(), Value::String(document.origin.clone()));
    evidence.insert(
        "client_address".into(),
        Value::String(client_addr(&req, &state.settings().trusted_proxies)),
    );
    if let Some(ua) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        evidence.insert("user_agent".into(), Value::String(ua.to_owned()));
    }
    evidence.insert(
        "session".into(),
        Value::String(Sessions::log_id(&session_id)),
    );
    match form.decision.as_str() {
        "accept" => {
            // The server's half of "read to the end": the page must have reported it, for this
            // person, requirement, version and document.
            let mark = state
                .store
                .get_session(&view_key(&form.token))
                .await
                .http(&req)?;
            if mark.as_deref()
                != Some(read_value(&session, &requirement, &document.sha256).as_str())
            {
                return Err(AppError::bad_request(
                    "document_not_read",
                    "Please read the document to the end before accepting it.",
                ))
                .http(&req);
            }
            state
                .store
                .delete_session(&view_key(&form.token))
                .await
                .http(&req)?;
            let record = Record {
                subject: session.principal.subject.clone(),
                requirement: requirement.id.clone(),
                version: requirement.version,
                completed_at: now,
                expires_at: None,
                source: Source::SelfService,
                evidence,
                recorded_by: format!("self-service:{}", session.principal.subject),
                recorded_at: now,
                revoked_at: None,
            };
            state.store.put_record(&record).await.http(&req)?;
            super::followup::settle_case(&state, &record.subject).await;
            tracing::info!(
                user.subject = %record.subject,
                requirement.id = %record.requirement,
                requirement.version = %record.version,
                "document accepted"
            );
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, rd))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish())
        }
        "decline" => {
            let decline = Decline {
                subject: session.principal.subject.clone(),
                requirement: requirement.id.clone(),
                version: requirement.version,
                declined_at: now,
                evidence,
            };
            state.store.record_decline(&decline).await.http(&req)?;
            tracing::info!(
                user.subject = %decline.subject,
                requirement.id = %decline.requirement,
                "document declined"
            );
            let back = self_url(&id, &rd);
            let page = super::pages::Message {
                title: "You declined",
                message: &format!(
                    "You declined \u{201c}{}\u{201d}. Access stays blocked until it is accepted; your decision is recorded and your manager can see it. If you disagree with the document, talk to your manager or the IAM team.",
                    requirement.title
                ),
                detail: None,
                action_url: Some(&back),
                action_label: Some("Read it again"),
                code: "declined",
                status: 200,
                request_id: None,
            };
            Ok(HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(super::pages::render("message.html", page)))
        }
        other => Err(AppError::bad_request(
            "invalid_decision",
            format!("decision must be accept or decline, not {other:?}"),
        ))
        .http(&req),
    }
}
