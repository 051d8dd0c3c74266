//! `POST /.clearance/xapi/statements`: the company LMS posts xAPI 1.0.3 statements here as it would
//! to an LRS. Completions of mapped activities become records, voiding statements revoke them;
//! everything else valid is accepted and ignored. The meaning of a statement is decided by the pure
//! [`crate::domain::xapi`]; this handler authenticates, reads the body and writes.

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use crate::config::Settings;
use crate::domain::xapi::{self, Context, Outcome};
use crate::domain::{Revocation, Source};
use crate::store::StoreError;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest accepted request body (a batch of statements).
const MAX_BODY_BYTES: usize = 1024 * 1024;
const VERSION_HEADER: &str = "X-Experience-API-Version";
/// The xAPI version this endpoint answers in.
const VERSION: &str = "1.0.3";

/// Checks HTTP Basic (`username:password`) or a bearer token against `xapi.credentials`; returns
/// the credential's name.
pub(super) fn authenticate(req: &HttpRequest, settings: &Settings) -> Result<String, AppError> {
    let refused = || {
        AppError::XapiUnauthorized(
            "LRS credentials are required: HTTP Basic or a bearer token from xapi.credentials."
                .into(),
        )
    };
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(refused)?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(refused)?;
    let rest = rest.trim();
    let (username, secret) = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(refused)?;
        let (user, password) = decoded.split_once(':').ok_or_else(refused)?;
        (Some(user.to_owned()), password.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        (None, rest.to_owned())
    } else {
        return Err(refused());
    };
    if secret.is_empty() {
        return Err(refused());
    }
    let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    // Compare against every credential without stopping early.
    let mut found = None;
    for c in &settings.xapi.credentials {
        let secret_ok = bool::from(c.sha256.ct_eq(&digest));
        if secret_ok && c.username == username {
            found = Some(c.name.clone());
        }
    }
    found.ok_or_else(|| AppError::XapiUnauthorized("The LRS credentials are not valid.".into()))
}

fn bad(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::bad_request(code, message)
}

/// `POST /.clearance/xapi/statements`: one statement or an array; all or nothing. Answers 200
/// with the statement ids, in order, as an LRS does.
pub async fn post_statements(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, HttpError> {
    if state.settings().xapi.credentials.is_empty() {
        return Err(AppError::NotFound(
            "xAPI statements are not accepted here: no [xapi] credentials are configured.".into(),
        ))
        .http(&req);
    }
    let credential = authenticate(&req, &state.settings()).http(&req)?;
    match req
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        Some(v) if v == "1.0" || v.starts_with("1.0.") => {}
        other => {
            return Err(bad(
                "unsupported_xapi_version",
                format!(
                    "Send the header {VERSION_HEADER}: {VERSION} (got {}); this LRS speaks xAPI 1.0.x.",
                    other.map_or_else(|| "none".to_owned(), |v| format!("{v:?}"))
                ),
            ))
            .http(&req);
        }
    }
    if let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(bad(
                "unsupported_content_type",
                format!(
                    "Send statements as Content-Type: application/json (got {mime:?}; attachments are not supported)."
                ),
            ))
            .http(&req);
        }
    }
    let body = match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            return Err(bad(
                "invalid_body",
                format!("The body could not be read: {e}"),
            ))
            .http(&req);
        }
        Err(_) => {
            return Err(AppError::PayloadTooLarge(format!(
                "The body is larger than {MAX_BODY_BYTES} bytes; send smaller batches."
            )))
            .http(&req);
        }
    };
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| bad("invalid_json", format!("The JSON body is not valid: {e}")))
        .http(&req)?;
    let now = state.clock.now();
    let ctx = Context {
        mappings: &state.settings().xapi.mappings,
        credential: &credential,
        now,
    };
    // Every statement is validated before anything is written.
    let statements = xapi::interpret_batch(&body, &ctx, &mut uuid::Uuid::new_v4)
        .map_err(|e| bad("invalid_statement", e.to_string()))
        .http(&req)?;

    for s in &statements {
        match &s.outcome {
            Outcome::Complete(record) => {
                // The index first: if the record write fails, the LMS retries and both are written.
                state
                    .store
                    .put_statement_target(&s.id, &record.subject, &record.requirement)
                    .await
                    .http(&req)?;
                let written = state
                    .store
                    .put_record_once(record, &format!("xapi:{}", s.id))
                    .await
                    .http(&req)?;
                if written {
                    super::followup::settle_case(&state, &record.subject).await;
                }
                tracing::info!(
                    user.subject = %record.subject,
                    requirement.id = %record.requirement,
                    requirement.version = %record.version,
                    record.recorded_by = %record.recorded_by,
                    xapi.statement_id = %s.id,
                    record.duplicate = !written,
                    "xapi completion {}",
                    if written { "recorded" } else { "already recorded" }
                );
            }
            Outcome::Failed(attempt) => {
                let verb = attempt.evidence.get("verb").and_then(Value::as_str);
                let score = attempt.evidence.get("score").cloned();
                tracing::info!(
                    user.subject = %attempt.subject,
                    requirement.id = %attempt.requirement,
                    xapi.statement_id = %s.id,
                    xapi.verb = verb.unwrap_or_default(),
                    xapi.score = %score.unwrap_or_default(),
                    "xapi attempt did not complete the requirement"
                );
            }
            Outcome::Void { target } => {
                let revoked = void(&state, &s.id, target, &credential, now)
                    .await
                    .http(&req)?;
                tracing::info!(
                    xapi.statement_id = %s.id,
                    xapi.voided_statement_id = %target,
                    revoked,
                    "xapi statement voided"
                );
            }
            Outcome::Ignore => {
                tracing::debug!(xapi.statement_id = %s.id, "xapi statement ignored");
            }
        }
    }
    let ids: Vec<&str> = statements.iter().map(|s| s.id.as_str()).collect();
    Ok(HttpResponse::Ok()
        .insert_header((VERSION_HEADER, VERSION))
        .json(ids))
}

/// Revokes the completion that statement `target` created, if it is still the current one (a
/// later completion by another statement is left alone). Returns whether something was revoked.
async fn void(
    state: &AppState,
    voiding_id: &str,
    target: &str,
    credential: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some((subject, requirement)) = state.store.statement_target(target).await? else {
        return Ok(false);
    };
    let records = state.store.records(&subject).await?;
    let created_by_target = records.iter().any(|r| {
        r.requirement == requirement
            && r.revoked_at.is_none()
            && r.evidence.get("statement_id").and_then(Value::as_str) == Some(target)
    });
    if !created_by_target {
        return Ok(false);
    }
    let mut evidence = serde_json::Map::new();
    evidence.insert("statement_id".into(), json!(voiding_id));
    evidence.insert("voided_statement_id".into(), json!(target));
    evidence.insert("lrs_credential".into(), json!(credential));
    let revocation = Revocation {
        subject,
        requirement,
        revoked_at: now,
        revoked_by: format!("xapi:{credential}"),
        reason: format!("xAPI statement {target} was voided"),
        source: Source::Xapi,
        evidence,
    };
    state.store.revoke(&revocation).await
}
