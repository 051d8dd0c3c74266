//! The evidence API for auditors: `GET /.clearance/api/v1/evidence/at` (was a person compliant
//! at T, on which records) and `GET /.clearance/api/v1/evidence/export` (every export table as
//! JSON, with the manifest). For admins (role or admin token) and auditors.

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use crate::domain::SubjectKey;
use crate::evidence::{self, Filter};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};

/// The query's parameters, in order (repeated names allowed).
fn params(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn one<'a>(params: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, AppError> {
    let mut found = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = found.next();
    if found.next().is_some() {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("{name}: give it once"),
        ));
    }
    Ok(first.map(String::as_str))
}

fn time(params: &[(String, String)], name: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    one(params, name)?
        .map(|text| {
            evidence::parse_time(text).ok_or_else(|| {
                AppError::bad_request("invalid_query", evidence::time_hint(name, text))
            })
        })
        .transpose()
        .and_then(|t| match t {
            // The denial log's stream ids are milliseconds since 1970: an earlier bound is no
            // valid id, and Redis refuses the range (a 503 before this check).
            Some(t) if t.timestamp_millis() < 0 => Err(AppError::bad_request(
                "invalid_query",
                format!("{name}: give an instant from 1970-01-01T00:00:00Z on"),
            )),
            other => Ok(other),
        })
}

fn subject(text: &str) -> Result<SubjectKey, AppError> {
    SubjectKey::parse(text)
        .map_err(|e| AppError::bad_request("invalid_query", format!("subject {text:?}: {e}")))
}

/// Refuses parameters the endpoint does not know, so that a typo never widens an export.
fn known(params: &[(String, String)], names: &[&str]) -> Result<(), AppError> {
    match params.iter().find(|(k, _)| !names.contains(&k.as_str())) {
        Some((k, _)) => Err(AppError::bad_request(
            "invalid_query",
            format!("unknown parameter {k:?} (use {})", names.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `GET /.clearance/api/v1/evidence/at?subject=S&time=T`
pub async fn at(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    super::manage::evidence_reader(&req, &state)
        .await
        .http(&req)?;
    let params = params(&req);
    known(&params, &["subject", "time"]).http(&req)?;
    let who = one(&params, "subject")
        .and_then(|s| {
            s.ok_or_else(|| AppError::bad_request("invalid_query", "subject is required"))
        })
        .and_then(subject)
        .http(&req)?;
    let when = time(&params, "time")
        .and_then(|t| t.ok_or_else(|| AppError::bad_request("invalid_query", "time is required")))
        .http(&req)?;
    let answer = evidence::at(&state.settings(), state.store.as_ref(), &who, when)
        .await
        .http(&req)?;
    Ok(HttpResponse::Ok().json(answer))
}

/// `GET /.clearance/api/v1/evidence/export[?from=T][&to=T][&subject=S...]`
pub async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    super::manage::evidence_reader(&req, &state)
        .await
        .http(&req)?;
    let params = params(&req);
    known(&params, &["from", "to", "subject"]).http(&req)?;
    let from = time(&params, "from").http(&req)?;
    let to = time(&params, "to").http(&req)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("from {} is after to {}", f.to_rfc3339(), t.to_rfc3339()),
        ))
        .http(&req);
    }
    let subjects = params
        .iter()
        .filter(|(k, _)| k == "subject")
        .map(|(_, v)| subject(v))
        .collect::<Result<Vec<_>, _>>()
        .http(&req)?;
    let filter = Filter { from, to, subjects };
    let export = evidence::export(
        &state.settings(),
        state.store.as_ref(),
        &filter,
        None,
        state.clock.now(),
    )
    .await
    .http(&req)?;
    let body = evidence::response_json(&export)
        .map_err(|e| AppError::Internal(e.to_string()))
        .http(&req)?;
    Ok(HttpResponse::Ok().json(body))
}
