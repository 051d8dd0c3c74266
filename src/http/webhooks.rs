//! E-signature webhooks: `POST /.clearance/webhooks/docusign` (DocuSign Connect) and
//! `POST /.clearance/webhooks/dropbox-sign` (Dropbox Sign callbacks). A fully signed agreement
//! becomes one record per signer. The signature is checked on the exact bytes received before
//! anything is parsed or written; what a callback means is decided by the pure
//! [`crate::domain::esign`]; these handlers read the body, write and answer. A Dropbox Sign
//! callback is only a hint: what is recorded is what Dropbox Sign's API says about the request.

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use crate::domain::esign::{self, Callback, Completed, DropboxSignEvent, EsignError};
use crate::domain::{Record, Source};
use crate::store::StoreError;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

/// Largest accepted callback body. Leave documents out of the DocuSign Connect configuration
/// (the envelope summary and recipients are enough).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

async fn read_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, HttpError> {
    let too_large = || {
        AppError::PayloadTooLarge(format!(
            "The callback body is larger than {MAX_BODY_BYTES} bytes."
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large()).http(req);
    }
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(AppError::bad_request(
            "invalid_body",
            format!("The body could not be read: {e}"),
        ))
        .http(req),
        Err(_) => Err(too_large()).http(req),
    }
}

/// What happened to one callback; the DocuSign answer, and the log.
#[derive(Default)]
struct Outcome {
    written: Vec<String>,
    unchanged: Vec<String>,
    skipped: Vec<String>,
}

/// Writes one record per signer, each at most once per envelope (idempotency key), and never over
/// a later completion of the same requirement and version that is already recorded.
async fn record(
    state: &AppState,
    recorded_by: &str,
    completed: Completed,
) -> Result<Outcome, StoreError> {
    let mut outcome = Outcome {
        skipped: completed.skipped,
        ..Outcome::default()
    };
    let now = state.clock.now();
    let settings = state.settings();
    let Some(requirement) = settings
        .policy
        .get_str(completed.target.requirement.as_str())
    else {
        // Validation guarantees the requirement exists; never record against an unknown one.
        outcome.skipped.push(format!(
            "requirement {} is not configured",
            completed.target.requirement
        ));
        return Ok(outcome);
    };
    for signed in completed.signers {
        let record = Record {
            subject: signed.subject,
            requirement: completed.target.requirement.clone(),
            version: completed.target.version,
            completed_at: signed.completed_at,
            expires_at: None,
            source: Source::Esign,
            evidence: signed.evidence,
            recorded_by: recorded_by.to_owned(),
            recorded_at: now,
            revoked_at: None,
        };
        if let Err(e) = record.validate(requirement.version, now) {
            outcome.skipped.push(format!("{}: {e}", record.subject));
            continue;
        }
        let current = state.store.records(&record.subject).await?;
        if current.iter().any(|r| {
            r.requirement == record.requirement
                && r.revoked_at.is_none()
                && r.version >= record.version
                && r.completed_at > record.completed_at
        }) {
            outcome.unchanged.push(format!(
                "{}: a later completion is already recorded",
                record.subject
            ));
            continue;
        }
        if state
            .store
            .put_record_once(&record, &signed.idempotency_key)
            .await?
        {
            tracing::info!(
                user.subject = %record.subject,
                requirement.id = %record.requirement,
                requirement.version = %record.version,
                record.recorded_by = %record.recorded_by,
                esign.reference = %completed.reference,
                "completion recorded from a signed agreement"
            );
            super::followup::settle_case(state, &record.subject).await;
            outcome.written.push(record.subject.to_string());
        } else {
            outcome
                .unchanged
                .push(format!("{}: already recorded", record.subject));
        }
    }
    for reason in &outcome.skipped {
        tracing::warn!(
            webhook.name = recorded_by,
            esign.reference = %completed.reference,
            webhook.reason = %reason,
            "signer not recorded"
        );
    }
    Ok(outcome)
}

fn refused(req: &HttpRequest, state: &AppState, webhook: &str, message: &str) -> HttpError {
    tracing::warn!(
        webhook,
        client.address = %super::forwarded::client_addr(req, &state.settings().trusted_proxies),
        "webhook refused: {message}; nothing recorded"
    );
    HttpError::new(AppError::WebhookRejected(message.to_owned()), req)
}

fn malformed(message: String) -> AppError {
    AppError::bad_request("invalid_callback", message)
}

/// `POST /.clearance/webhooks/docusign`: DocuSign Connect, JSON SIM format, HMAC signed.
/// Answers 200 to every authentic message (DocuSign resends anything else), 401 to forged ones.
pub async fn docusign(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, HttpError> {
    let settings = state.settings();
    let Some(config) = settings.webhooks.docusign.as_ref() else {
        return Err(AppError::NotFound(
            "DocuSign callbacks are not accepted here: [webhooks.docusign] is not configured."
                .into(),
        ))
        .http(&req);
    };
    let body = read_body(&req, payload).await?;
    let signatures = req
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-docusign-signature-"))
        .filter_map(|(_, value)| value.to_str().ok());
    if !esign::docusign_signature_valid(&body, signatures, &config.hmac_keys) {
        return Err(refused(
            &req,
            &state,
            "docusign",
            "no X-DocuSign-Signature-N header matches an HMAC key in webhooks.docusign.hmac_keys",
        ));
    }
    let callback = esign::docusign_callback(&body, &config.mapping)
        .map_err(|e| malformed(e.to_string()))
        .http(&req)?;
    let answer = match callback {
        Callback::Ignored(reason) => {
            tracing::info!(webhook.name = "docusign", webhook.reason = %reason, "callback ignored");
            json!({ "result": "ignored", "reason": reason })
        }
        Callback::Completed(completed) => {
            let reference = completed.reference.clone();
            let requirement = completed.target.requirement.to_string();
            let outcome = record(&state, "webhook:docusign", completed)
                .await
                .http(&req)?;
            json!({
                "result": "completed",
                "envelope_id": reference,
                "requirement": requirement,
                "written": outcome.written,
                "unchanged": outcome.unchanged,
                "skipped": outcome.skipped,
            })
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

/// `POST /.clearance/webhooks/dropbox-sign`: Dropbox Sign callbacks (multipart or URL-encoded
/// form with a `json` field; a bare JSON body is accepted too). Every accepted callback is answered
/// with exactly `Hello API Event Received`, or Dropbox Sign resends it.
pub async fn dropbox_sign(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, HttpError> {
    let settings = state.settings();
    let Some(config) = settings.webhooks.dropbox_sign.as_ref() else {
        return Err(AppError::NotFound(
            "Dropbox Sign callbacks are not accepted here: [webhooks.dropbox_sign] is not configured."
                .into(),
        ))
        .http(&req);
    };
    let body = read_body(&req, payload).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json = json_field(content_type, &body)
        .map_err(malformed)
        .http(&req)?;
    let claim = match esign::dropbox_sign_event(
        &json,
        &config.api_key,
        state.clock.now(),
        config.max_event_age,
    ) {
        Ok(DropboxSignEvent::Ignored(reason)) => {
            tracing::info!(webhook.name = "dropbox-sign", webhook.reason = %reason, "callback acknowledged, nothing to record");
            return Ok(dropbox_sign_ack());
        }
        Ok(DropboxSignEvent::Confirm(claim)) => claim,
        Err(EsignError::Forged) => {
            return Err(refused(
                &req,
                &state,
                "dropbox-sign",
                "event.event_hash is not the HMAC of event_time and event_type under webhooks.dropbox_sign.api_key",
            ));
        }
        Err(e @ EsignError::Stale { .. }) => {
            return Err(refused(&req, &state, "dropbox-sign", &e.to_string()));
        }
        Err(e) => return Err(malformed(e.to_string())).http(&req),
    };
    // Each event is processed once: a replay is acknowledged and changes nothing. The mark is
    // given back when the work fails, so that Dropbox Sign's retry does it.
    let mark = format!(
        "dropbox-sign:event:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            claim.memory_key.as_bytes()
        ))
    );
    let token = crate::auth::session::random_token();
    let keep = config.max_event_age + std::time::Duration::from_secs(600);
    if !state.store.once(&mark, &token, keep).await.http(&req)? {
        tracing::info!(webhook.name = "dropbox-sign", esign.reference = %claim.request_id, "event already processed; acknowledged");
        return Ok(dropbox_sign_ack());
    }
    let done = confirm_and_record(&state, config, &claim).await;
    if done.is_err() {
        // Best effort: if this fails too, the mark expires by itself.
        let _ = state.store.release_once(&mark, &token).await;
    }
    match done {
        Ok(()) => Ok(dropbox_sign_ack()),
        Err(Unconfirmed(message)) => Err(refused(&req, &state, "dropbox-sign", &message)),
        Err(Failed(e)) => Err(e).http(&req),
    }
}

/// Why a Dropbox Sign event was not recorded.
enum NotRecorded {
    /// Dropbox Sign's API does not confirm the callback: 401, nothing written.
    Unconfirmed(String),
    /// The API or the store could not be reached: 503, and Dropbox Sign retries.
    Failed(AppError),
}
use NotRecorded::{Failed, Unconfirmed};

/// Largest answer read from Dropbox Sign's API.
const MAX_API_ANSWER: usize = 1024 * 1024;

/// Asks Dropbox Sign's API about the claimed signature request (with the account's API key)
/// and records the signatures it confirms.
async fn confirm_and_record(
    state: &AppState,
    config: &crate::config::webhooks::DropboxSignSettings,
    claim: &esign::DropboxSignClaim,
) -> Result<(), NotRecorded> {
    let url = format!("{}/signature_request/{}", config.api_url, claim.request_id);
    let unavailable = |m: String| Failed(AppError::VendorUnavailable(m));
    let mut answer = state
        .outbound
        .get(&url)
        .basic_auth(&config.api_key, Some(""))
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| unavailable(format!("Dropbox Sign's API cannot be reached: {e}")))?;
    let status = answer.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(unavailable(format!("Dropbox Sign's API answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| unavailable(format!("reading Dropbox Sign's answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_API_ANSWER {
            return Err(Unconfirmed("Dropbox Sign's answer is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(Unconfirmed(format!(
            "Dropbox Sign's API does not confirm signature request {} ({status})",
            claim.request_id
        )));
    }
    let callback =
        esign::dropbox_sign_confirmed(&body, claim, &config.mapping, config.accept_test_mode)
            .map_err(|e| Unconfirmed(e.to_string()))?;
    match callback {
        Callback::Ignored(reason) => {
            tracing::info!(webhook.name = "dropbox-sign", webhook.reason = %reason, "callback acknowledged, nothing to record");
            Ok(())
        }
        Callback::Completed(completed) => record(state, "webhook:dropbox-sign", completed)
            .await
            .map(|_| ())
            .map_err(|e| Failed(e.into())),
    }
}

fn dropbox_sign_ack() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(esign::DROPBOX_SIGN_ACK)
}

/// The `json` field of a Dropbox Sign callback: from `multipart/form-data`, from
/// `application/x-www-form-urlencoded`, or the whole body when it is JSON itself.
fn json_field(content_type: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut params = content_type.split(';').map(str::trim);
    let mime = params.next().unwrap_or("").to_ascii_lowercase();
    match mime.as_str() {
        "multipart/form-data" => {
            let boundary = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
                .map(|(_, v)| v.trim().trim_matches('"').to_owned())
                .filter(|b| !b.is_empty() && b.len() <= 200)
                .ok_or("the multipart Content-Type has no boundary")?;
            multipart_field(body, &boundary, "json")
                .ok_or_else(|| "the multipart body has no `json` field".to_owned())
        }
        "application/x-www-form-urlencoded" => url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "json")
            .map(|(_, v)| v.into_owned().into_bytes())
            .ok_or_else(|| "the form has no `json` field".to_owned()),
        "application/json" | "" => Ok(body.to_vec()),
        other => Err(format!(
            "send the callback as multipart/form-data with a `json` field (got {other:?})"
        )),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The content of the first part named `name` (RFC 7578), without its trailing CRLF.
fn multipart_field(body: &[u8], boundary: &str, name: &str) -> Option<Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let mut rest = &body[find(body, delimiter.as_bytes())? + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return None;
        }
        // The rest of the delimiter line (transport padding), then the part.
        let part_start = find(rest, b"\r\n")? + 2;
        let part = &rest[part_start..];
        let end = find(part, format!("\r\n{delimiter}").as_bytes())?;
        let (headers, content) = match find(&part[..end], b"\r\n\r\n") {
            Some(h) => (&part[..h], &part[h + 4..end]),
            None if part.starts_with(b"\r\n") => (&part[..0], &part[2..end]),
            None => return None,
        };
        let headers = String::from_utf8_lossy(headers);
        let named = headers.lines().any(|line| {
            let Some((key, value)) = line.split_once(':') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("content-disposition")
                && value.split(';').skip(1).any(|param| {
                    param.trim().split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("name") && v.trim().trim_matches('"') == name
                    })
                })
        });
        if named {
            return Some(content.to_vec());
        }
        rest = &part[end + 2 + delimiter.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"event":{"event_type":"callback_test","event_time":"1"}}"#;

    fn multipart(boundary: &str, parts: &[(&str, &str)]) -> Vec<u8> {
        let mut body = String::new();
        for (name, value) in parts {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        body.into_bytes()
    }

    #[test]
    fn json_from_multipart() {
        let body = multipart(
            "------------------------d74496d66958873e",
            &[("other", "x\r\n--not-the-boundary"), ("json", JSON)],
        );
        let got = json_field(
            "multipart/form-data; boundary=------------------------d74496d66958873e",
            &body,
        )
        .unwrap();
        assert_eq!(got, JSON.as_bytes());
        let quoted = json_field(
            "Multipart/Form-Data; boundary=\"------------------------d74496d66958873e\"",
            &body,
        )
        .unwrap();
        assert_eq!(quoted, JSON.as_bytes());
    }

    #[test]
    fn multipart_needs_the_field_and_a_boundary() {
        let body = multipart("b0undary", &[("jsonx", JSON), ("file", "x")]);
        assert!(json_field("multipart/form-data; boundary=b0undary", &body).is_err());
        assert!(json_field("multipart/form-data", &body).is_err());
        assert!(json_field("multipart/form-data; boundary=other", &body).is_err());
        assert!(json_field("multipart/form-data; boundary=b0undary", b"garbage").is_err());
        // A field whose name merely contains "json" (e.g. a filename) is not it.
        let tricky = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"json\"\r\n\r\nno\r\n--b\r\nContent-Disposition: form-data; name=json\r\nContent-Type: application/json\r\n\r\nyes\r\n--b--\r\n";
        assert_eq!(
            json_field("multipart/form-data; boundary=b", tricky.as_bytes()).unwrap(),
            b"yes"
        );
    }

    #[test]
    fn json_from_urlencoded_and_plain_json() {
        let body = format!(
            "json={}",
            url::form_urlencoded::byte_serialize(JSON.as_bytes()).collect::<String>()
        );
        assert_eq!(
            json_field("application/x-www-form-urlencoded", body.as_bytes()).unwrap(),
            JSON.as_bytes()
        );
        assert!(json_field("application/x-www-form-urlencoded", b"other=1").is_err());
        assert_eq!(
            json_field("application/json; charset=utf-8", JSON.as_bytes()).unwrap(),
            JSON.as_bytes()
        );
        assert!(json_field("text/xml", b"<x/>").is_err());
    }
}
