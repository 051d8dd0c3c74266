//! The admin API under `/.clearance/api/v1`: record completions, read a subject's state, read denials.

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use crate::domain::{
    Principal, Record, RequirementId, Revocation, Source, SubjectKey, Version, evaluate,
    records_as_of,
};
use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Checks `Authorization: Bearer <token>` against the configured admin token hashes; returns
/// the token's name.
pub(super) fn admin(req: &HttpRequest, state: &AppState) -> Result<String, AppError> {
    token_name(req, &state.settings().admin_tokens, "admin")
}

/// Checks `Authorization: Bearer <token>` against `tokens` (by SHA-256, in constant time);
/// returns the token's name.
pub(super) fn token_name(
    req: &HttpRequest,
    tokens: &[crate::config::AdminToken],
    what: &str,
) -> Result<String, AppError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::Unauthorized(format!("An {what} bearer token is required.")))?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    // Compare against every token without stopping early.
    let mut found = None;
    for t in tokens {
        if bool::from(t.sha256.ct_eq(&digest)) {
            found = Some(t.name.clone());
        }
    }
    found.ok_or_else(|| AppError::Unauthorized(format!("The {what} token is not valid.")))
}

/// A completion as posted to the API.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    subject: String,
    /// A requirement id of the policy.
    requirement: String,
    /// The requirement's version completed, e.g. "2025.1".
    #[schema(value_type = String)]
    version: Version,
    completed_at: DateTime<Utc>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    /// Where the completion comes from (api, lms, esign, import ...).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    source: Option<Source>,
    #[serde(default)]
    #[schema(value_type = Object)]
    evidence: serde_json::Map<String, serde_json::Value>,
}

/// Maps JSON body errors to a 400 that says what is wrong.
pub fn json_error(err: JsonPayloadError, req: &HttpRequest) -> actix_web::Error {
    if let JsonPayloadError::Overflow { limit }
    | JsonPayloadError::OverflowKnownLength { limit, .. } = &err
    {
        let message = format!("The JSON body is larger than {limit} bytes.");
        return HttpError::new(AppError::PayloadTooLarge(message), req).into();
    }
    let message = match &err {
        JsonPayloadError::Deserialize(e) => format!("The JSON body is not valid: {e}"),
        JsonPayloadError::ContentType => {
            "Send the body as Content-Type: application/json.".to_owned()
        }
        other => format!("The JSON body could not be read: {other}"),
    };
    HttpError::new(AppError::bad_request("invalid_json", message), req).into()
}

/// `POST /.clearance/api/v1/subjects/{subject}/sign-out`: ends every session of the person,
/// on every instance (audited as `sessions.ended`); answers how many ended.
pub async fn sign_out_everywhere(
    req: HttpRequest,
    state: web::Data<AppState>,
    subject: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let token = admin(&req, &state).http(&req)?;
    let subject = parse_subject(&subject).http(&req)?;
    let ended = crate::auth::logout::sign_out_everywhere(
        state.store.as_ref(),
        &subject,
        &format!("admin-token:{token}"),
        state.clock.now(),
    )
    .await
    .http(&req)?;
    tracing::info!(user.subject = %subject, sessions.ended = ended, "signed out everywhere");
    Ok(HttpResponse::Ok().json(json!({ "subject": subject, "sessions_ended": ended })))
}

/// `POST /.clearance/api/v1/records`
pub async fn post_record(
    req: HttpRequest,
    state: web::Data<AppState>,
    // Credentials are checked before the body is judged: strangers learn nothing about it.
    body: Result<web::Json<RecordInput>, actix_web::Error>,
) -> Result<HttpResponse, HttpError> {
    let recorded_by = admin(&req, &state).http(&req)?;
    let input = match body {
        Ok(body) => body.into_inner(),
        // Already rendered by `json_error`, through the one error mapping.
        Err(e) => return Ok(e.error_response()),
    };
    let bad =
        |field: &str, m: String| AppError::bad_request("invalid_record", format!("{field}: {m}"));
    let subject = SubjectKey::parse(&input.subject)
        .map_err(|e| bad("subject", e.to_string()))
        .http(&req)?;
    let settings = state.settings();
    let requirement = settings
        .policy
        .get_str(&input.requirement)
        .ok_or_else(|| {
            bad(
                "requirement",
                format!("unknown requirement {:?}", input.requirement),
            )
        })
        .http(&req)?;
    let now = state.clock.now();
    let source = input.source.unwrap_or(Source::Api);
    if source == Source::SelfService {
        return Err(bad(
            "source",
            "self-service records are written by Clearance itself".into(),
        ))
        .http(&req);
    }
    let record = Record {
        subject,
        requirement: RequirementId(requirement.id.0.clone()),
        version: input.version,
        completed_at: input.completed_at,
        expires_at: input.expires_at,
        source,
        evidence: input.evidence,
        recorded_by: format!("admin-token:{recorded_by}"),
        recorded_at: now,
        revoked_at: None,
    };
    record
        .validate(requirement.version, now)
        .map_err(|e| bad("record", e.to_string()))
        .http(&req)?;
    state.store.put_record(&record).await.http(&req)?;
    super::followup::settle_case(&state, &record.subject).await;
    tracing::info!(
        user.subject = %record.subject,
        requirement.id = %record.requirement,
        requirement.version = %record.version,
        record.recorded_by = %record.recorded_by,
        "completion recorded"
    );
    Ok(HttpResponse::Created().json(&record))
}

#[derive(Deserialize)]
pub struct SubjectQuery {
    /// Evaluate as of this instant, from the history (RFC 3339).
    at: Option<DateTime<Utc>>,
}

fn parse_subject(raw: &str) -> Result<SubjectKey, AppError> {
    SubjectKey::parse(raw).map_err(|e| AppError::bad_request("invalid_subject", e.to_string()))
}

/// `GET /.clearance/api/v1/subjects/{subject}[?at=T]`: the records and the decision for all
/// requirements, now or as they stood at `T` (replayed from the history), using the profile
/// remembered from the person's last sign-in.
pub async fn get_subject(
    req: HttpRequest,
    state: web::Data<AppState>,
    subject: web::Path<String>,
    query: web::Query<SubjectQuery>,
) -> Result<HttpResponse, HttpError> {
    admin(&req, &state).http(&req)?;
    let subject = parse_subject(&subject).http(&req)?;
    let (at, records) = match query.at {
        Some(at) => {
            let history = state.store.history(&subject).await.http(&req)?;
            (at, records_as_of(&history, at))
        }
        None => (
            state.clock.now(),
            state.store.records(&subject).await.http(&req)?,
        ),
    };
    let profile = state.store.profile(&subject).await.http(&req)?;
    let known = profile.is_some();
    let principal = profile.unwrap_or_else(|| Principal::bare(subject.clone()));
    let evaluation = evaluate(
        &state.settings().policy.requirements,
        &principal,
        &records,
        at,
    );
    Ok(HttpResponse::Ok().json(json!({
        "subject": subject,
        "at": at,
        "profile_known": known,
        "profile": if known { json!(principal) } else { json!(null) },
        "records": records,
        "requirements": evaluation.statuses,
        "decision": evaluation.decision(),
    })))
}

/// `GET /.clearance/api/v1/subjects/{subject}/history`: every change, oldest first.
pub async fn get_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    subject: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    admin(&req, &state).http(&req)?;
    let subject = parse_subject(&subject).http(&req)?;
    let history = state.store.history(&subject).await.http(&req)?;
    Ok(HttpResponse::Ok().json(json!({ "subject": subject, "history": history })))
}

/// A revocation as posted to the API.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationInput {
    subject: String,
    requirement: String,
    /// Why the record is withdrawn (required, not blank).
    reason: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    evidence: serde_json::Map<String, serde_json::Value>,
}

/// `POST /.clearance/api/v1/revocations`: withdraws a subject's current record; the person is
/// re-evaluated on their next request.
pub async fn post_revocation(
    req: HttpRequest,
    state: web::Data<AppState>,
    // Credentials are checked before the body is judged: strangers learn nothing about it.
    body: Result<web::Json<RevocationInput>, actix_web::Error>,
) -> Result<HttpResponse, HttpError> {
    let revoked_by = admin(&req, &state).http(&req)?;
    let input = match body {
        Ok(body) => body.into_inner(),
        // Already rendered by `json_error`, through the one error mapping.
        Err(e) => return Ok(e.error_response()),
    };
    let subject = parse_subject(&input.subject).http(&req)?;
    let settings = state.settings();
    let requirement = settings
        .policy
        .get_str(&input.requirement)
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_revocation",
                format!("requirement: unknown requirement {:?}", input.requirement),
            )
        })
        .http(&req)?;
    if input.reason.trim().is_empty() {
        return Err(AppError::bad_request(
            "invalid_revocation",
            "reason: say why the record is withdrawn",
        ))
        .http(&req);
    }
    let revocation = Revocation {
        subject,
        requirement: requirement.id.clone(),
        revoked_at: state.clock.now(),
        revoked_by: format!("admin-token:{revoked_by}"),
        reason: input.reason.trim().to_owned(),
        source: Source::Api,
        evidence: input.evidence,
    };
    if !state.store.revoke(&revocation).await.http(&req)? {
        return Err(AppError::NotFound(format!(
            "{} has no record of {} to revoke.",
            revocation.subject, revocation.requirement
        )))
        .http(&req);
    }
    tracing::info!(
        user.subject = %revocation.subject,
        requirement.id = %revocation.requirement,
        record.revoked_by = %revocation.revoked_by,
        "completion revoked"
    );
    Ok(HttpResponse::Ok().json(&revocation))
}

#[derive(Deserialize)]
pub struct DenialsQuery {
    count: Option<usize>,
}

/// `GET /.clearance/api/v1/denials?count=N`: the newest denials, newest first.
pub async fn get_denials(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<DenialsQuery>,
) -> Result<HttpResponse, HttpError> {
    admin(&req, &state).http(&req)?;
    let count = query.count.unwrap_or(100).clamp(1, 1000);
    let denials = state.store.recent_denials(count).await.http(&req)?;
    let items: Vec<_> = denials
        .into_iter()
        .map(|(id, event)| json!({ "id": id, "event": event }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "denials": items })))
}

/// Anything else under `/.clearance/`: never proxied.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    Err(AppError::NotFound(
        "There is no Clearance page at this address.".into(),
    ))
    .http(&req)
}
