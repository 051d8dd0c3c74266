//! E-signature callbacks (DocuSign Connect, Dropbox Sign): signature checks, and the completions
//! that a fully signed envelope or signature request stands for.
//!
//! Pure: the HTTP layer hands in the exact bytes received and writes what comes out. Nothing here
//! reads the clock or the store.

use super::principal::SubjectKey;
use super::requirement::{RequirementId, Version};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// At most this many `X-DocuSign-Signature-N` headers are looked at (DocuSign sends one per
/// active key, and allows up to 100 keys).
pub const MAX_SIGNATURE_HEADERS: usize = 100;

/// The requirement (and version) a signed agreement completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsignTarget {
    pub requirement: RequirementId,
    pub version: Version,
}

/// What identifies an agreement in a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgreementMatch {
    /// A template the envelope or request was created from (compared case-insensitively).
    TemplateId(String),
    /// The name of a document in the envelope (trimmed, compared case-insensitively).
    DocumentName(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingRule {
    pub matches: AgreementMatch,
    pub target: EsignTarget,
}

/// Maps an envelope to a requirement: the first rule (in declaration order) that matches, else
/// the default, else nothing (the envelope is not an agreement Clearance tracks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EsignMapping {
    pub rules: Vec<MappingRule>,
    pub default: Option<EsignTarget>,
}

impl EsignMapping {
    pub fn target(
        &self,
        template_ids: &[String],
        document_names: &[String],
    ) -> Option<&EsignTarget> {
        self.rules
            .iter()
            .find(|rule| match &rule.matches {
                AgreementMatch::TemplateId(id) => template_ids
                    .iter()
                    .any(|t| t.trim().eq_ignore_ascii_case(id.trim())),
                AgreementMatch::DocumentName(name) => document_names
                    .iter()
                    .any(|d| d.trim().to_lowercase() == name.trim().to_lowercase()),
            })
            .map(|rule| &rule.target)
            .or(self.default.as_ref())
    }
}

/// Why a callback cannot be used. Forged ones are refused with 401, the rest with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EsignError {
    #[error("the callback's signature does not verify")]
    Forged,
    /// A Dropbox Sign event older than the bound (or from the future): a replay of a captured one.
    #[error("the event is older than {max_age_secs} seconds, or dated in the future")]
    Stale { max_age_secs: u64 },
    /// Dropbox Sign's API does not confirm what the callback claims.
    #[error("{0}")]
    Unconfirmed(String),
    #[error("{0}")]
    Malformed(String),
}

fn malformed(message: impl Into<String>) -> EsignError {
    EsignError::Malformed(message.into())
}

/// One signer whose completion is to be recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Signed {
    pub subject: SubjectKey,
    pub completed_at: DateTime<Utc>,
    /// `docusign:<envelopeId>:<email>` or `dropbox-sign:<signature_request_id>:<email>`.
    pub idempotency_key: String,
    pub evidence: Map<String, Value>,
}

/// A fully signed agreement.
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    pub target: EsignTarget,
    /// The envelope id or signature request id.
    pub reference: String,
    pub signers: Vec<Signed>,
    /// Signers that cannot be recorded, each with the reason (logged, never fatal).
    pub skipped: Vec<String>,
}

/// What an authentic callback means for Clearance.
#[derive(Clone, Debug, PartialEq)]
pub enum Callback {
    /// Nothing to record: another event, an agreement not fully signed, or one not mapped to a
    /// requirement. The reason is for the log and the response.
    Ignored(String),
    Completed(Completed),
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error case cannot happen.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

// ---------------------------------------------------------------------------------------------
// DocuSign Connect (JSON SIM)
// ---------------------------------------------------------------------------------------------

/// Does any `X-DocuSign-Signature-N` value equal base64(HMAC-SHA256(key, body)) for any key?
/// Every key and every header are compared in constant time; an empty key list verifies nothing.
pub fn docusign_signature_valid<'a>(
    body: &[u8],
    signatures: impl IntoIterator<Item = &'a str>,
    keys: &[String],
) -> bool {
    let expected: Vec<[u8; 32]> = keys
        .iter()
        .map(|k| hmac_sha256(k.as_bytes(), &[body]))
        .collect();
    let mut valid = false;
    for signature in signatures.into_iter().take(MAX_SIGNATURE_HEADERS) {
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            continue;
        };
        for tag in &expected {
            valid |= bool::from(tag.as_slice().ct_eq(&given));
        }
    }
    valid
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectMessage {
    event: Option<String>,
    data: Option<ConnectData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectData {
    account_id: Option<String>,
    envelope_id: Option<String>,
    envelope_summary: Option<EnvelopeSummary>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeSummary {
    status: Option<String>,
    envelope_id: Option<String>,
    completed_date_time: Option<String>,
    recipients: Option<Recipients>,
    envelope_documents: Option<Vec<EnvelopeDocument>>,
    template_info: Option<TemplateInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateInfo {
    templates: Option<Vec<TemplateRef>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateRef {
    template_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipients {
    signers: Option<Vec<Signer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Signer {
    email: Option<String>,
    status: Option<String>,
    signed_date_time: Option<String>,
    recipient_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeDocument {
    name: Option<String>,
    /// Present when the Connect configuration includes documents.
    #[serde(rename = "PDFBytes", alias = "documentBase64", alias = "pdfBytes")]
    pdf_bytes: Option<String>,
}

/// An id that is safe to put into an idempotency key and evidence.
fn clean_id(raw: Option<&str>, what: &str) -> Result<String, EsignError> {
    let id = raw.map(str::trim).unwrap_or_default();
    if id.is_empty() {
        return Err(malformed(format!("{what} is missing")));
    }
    if id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(malformed(format!(
            "{what} {id:?} is not an id (letters, digits, '-', '_', '.', at most 128)"
        )));
    }
    Ok(id.to_owned())
}

fn parse_time(raw: Option<&str>) -> Option<DateTime<Utc>> {
    raw.and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Reads a DocuSign Connect message (JSON SIM). Call it only after
/// [`docusign_signature_valid`] accepted the body.
///
/// Only `envelope-completed` with `data.envelopeSummary.status == "completed"` yields records:
/// one per signer whose status is `completed`, completed at the signer's `signedDateTime`
/// (else the envelope's `completedDateTime`).
pub fn docusign_callback(body: &[u8], mapping: &EsignMapping) -> Result<Callback, EsignError> {
    let message: ConnectMessage = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "the body is not a DocuSign Connect JSON message ({e}); set the Connect configuration's data format to JSON (SIM)"
        ))
    })?;
    let Some(event) = message.event.as_deref().map(str::trim) else {
        return Err(malformed(
            "the message has no `event`; set the Connect configuration's data format to JSON (SIM)",
        ));
    };
    if !event.eq_ignore_ascii_case("envelope-completed") {
        return Ok(Callback::Ignored(format!(
            "event {event:?} is not envelope-completed"
        )));
    }
    let data = message
        .data
        .ok_or_else(|| malformed("data is missing from the envelope-completed message"))?;
    let summary = data.envelope_summary.ok_or_else(|| {
        malformed(
            "data.envelopeSummary is missing; include the envelope summary and recipients in the Connect configuration",
        )
    })?;
    let status = summary.status.as_deref().unwrap_or_default().trim();
    if !status.eq_ignore_ascii_case("completed") {
        return Ok(Callback::Ignored(format!(
            "the envelope's status is {status:?}, not completed"
        )));
    }
    let envelope_id = clean_id(
        data.envelope_id
            .as_deref()
            .or(summary.envelope_id.as_deref()),
        "data.envelopeId",
    )?;
    let template_ids: Vec<String> = summary
        .template_info
        .and_then(|t| t.templates)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.template_id)
        .filter(|t| !t.trim().is_empty())
        .collect();
    let documents = summary.envelope_documents.unwrap_or_default();
    let document_names: Vec<String> = documents.iter().filter_map(|d| d.name.clone()).collect();
    let Some(target) = mapping.target(&template_ids, &document_names) else {
        return Ok(Callback::Ignored(format!(
            "envelope {envelope_id} (templates {template_ids:?}, documents {document_names:?}) matches no [[webhooks.docusign.templates]] entry and there is no default_requirement"
        )));
    };
    let signers = summary
        .recipients
        .and_then(|r| r.signers)
        .ok_or_else(|| {
            malformed(
                "data.envelopeSummary.recipients.signers is missing; include recipients in the Connect configuration",
            )
        })?;
    let envelope_completed = parse_time(summary.completed_date_time.as_deref());

    let mut evidence = Map::new();
    evidence.insert("provider".into(), json!("docusign"));
    evidence.insert("envelope_id".into(), json!(envelope_id));
    if let Some(account) = data.account_id.filter(|a| !a.trim().is_empty()) {
        evidence.insert("account_id".into(), json!(account));
    }
    if !template_ids.is_empty() {
        evidence.insert("template_ids".into(), json!(template_ids));
    }
    let docs: Vec<Value> = documents
        .iter()
        .map(|d| {
            let mut doc = Map::new();
            if let Some(name) = &d.name {
                doc.insert("name".into(), json!(name));
            }
            if let Some(bytes) = d.pdf_bytes.as_deref().and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            }) {
                doc.insert("sha256".into(), json!(hex::encode(Sha256::digest(&bytes))));
            }
            Value::Object(doc)
        })
        .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
        .collect();
    if !docs.is_empty() {
        evidence.insert("documents".into(), Value::Array(docs));
    }

    let mut completed = Completed {
        target: target.clone(),
        reference: envelope_id.clone(),
        signers: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, signer) in signers.iter().enumerate() {
        let who = signer.email.as_deref().unwrap_or("(no email)");
        let status = signer.status.as_deref().unwrap_or_default().trim();
        if !status.eq_ignore_ascii_case("completed") && !status.eq_ignore_ascii_case("signed") {
            completed.skipped.push(format!(
                "signer {i} ({who}): status {status:?} is not completed"
            ));
            continue;
        }
        let subject = match SubjectKey::parse(signer.email.as_deref().unwrap_or_default()) {
            Ok(s) if s.as_str().contains('@') => s,
            Ok(_) => {
                completed
                    .skipped
                    .push(format!("signer {i} ({who}): not an email address"));
                continue;
            }
            Err(e) => {
                completed.skipped.push(format!("signer {i} ({who}): {e}"));
                continue;
            }
        };
        if completed.signers.iter().any(|s| s.subject == subject) {
            continue;
        }
        let Some(completed_at) =
            parse_time(signer.signed_date_time.as_deref()).or(envelope_completed)
        else {
            completed.skipped.push(format!(
                "signer {i} ({who}): neither signedDateTime nor the envelope's completedDateTime is an RFC 3339 time"
            ));
            continue;
        };
        let mut evidence = evidence.clone();
        if let Some(id) = &signer.recipient_id {
            evidence.insert("recipient_id".into(), json!(id));
        }
        completed.signers.push(Signed {
            idempotency_key: format!("docusign:{envelope_id}:{subject}"),
            subject,
            completed_at,
            evidence,
        });
    }
    Ok(Callback::Completed(completed))
}

// ---------------------------------------------------------------------------------------------
// Dropbox Sign (HelloSign API callbacks)
// ---------------------------------------------------------------------------------------------

/// The text Dropbox Sign expects as the body of every answer to a callback it should not resend.
pub const DROPBOX_SIGN_ACK: &str = "Hello API Event Received";

/// A string or a number in the JSON (Dropbox Sign sends `event_time` as a string of digits).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct DsCallback {
    event: DsEvent,
    signature_request: Option<DsRequest>,
}

#[derive(Deserialize)]
struct DsEvent {
    event_type: String,
    event_time: Scalar,
    event_hash: String,
}

#[derive(Deserialize)]
struct DsRequest {
    signature_request_id: Option<String>,
    title: Option<String>,
    test_mode: Option<bool>,
    is_complete: Option<bool>,
    template_ids: Option<Vec<String>>,
    signatures: Option<Vec<DsSignature>>,
}

#[derive(Deserialize)]
struct DsSignature {
    signature_id: Option<String>,
    signer_email_address: Option<String>,
    status_code: Option<String>,
    signed_at: Option<i64>,
}

/// Does `event_hash` equal hex(HMAC-SHA256(api_key, event_time + event_type))? Constant time.
pub fn dropbox_sign_hash_valid(
    api_key: &str,
    event_time: &str,
    event_type: &str,
    event_hash: &str,
) -> bool {
    let Ok(given) = hex::decode(event_hash.trim()) else {
        return false;
    };
    let tag = hmac_sha256(
        api_key.as_bytes(),
        &[event_time.as_bytes(), event_type.as_bytes()],
    );
    !api_key.is_empty() && bool::from(tag.as_slice().ct_eq(&given))
}

/// What an authentic Dropbox Sign callback asks Clearance to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropboxSignEvent {
    /// Nothing to record (another event type); the reason is for the log.
    Ignored(String),
    /// "All signed" for this signature request: confirm it through Dropbox Sign's API
    /// ([`dropbox_sign_confirmed`]) before anything is written.
    Confirm(DropboxSignClaim),
}

/// A signature request a callback says is fully signed. Only its id is taken from the
/// callback: the event hash covers the event's time and type alone, so everything else in the
/// callback could be someone else's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropboxSignClaim {
    pub request_id: String,
    pub event_at: DateTime<Utc>,
    /// Names this event, for remembering that it was processed: its time, type and request.
    pub memory_key: String,
}

/// How far in the future an event may be dated (clock skew).
const EVENT_SKEW_SECS: i64 = 300;

/// Reads a Dropbox Sign callback (the `json` field's content): its event hash must verify, and
/// its time must lie within `max_age` before `now` (give or take [`EVENT_SKEW_SECS`]). Only
/// `signature_request_all_signed` asks for anything.
pub fn dropbox_sign_event(
    json: &[u8],
    api_key: &str,
    now: DateTime<Utc>,
    max_age: std::time::Duration,
) -> Result<DropboxSignEvent, EsignError> {
    let callback: DsCallback = serde_json::from_slice(json).map_err(|e| {
        malformed(format!(
            "the `json` field is not a Dropbox Sign callback event: {e}"
        ))
    })?;
    let event_time = callback.event.event_time.text();
    let event_type = callback.event.event_type.trim().to_owned();
    if !dropbox_sign_hash_valid(
        api_key,
        &event_time,
        &callback.event.event_type,
        &callback.event.event_hash,
    ) {
        return Err(EsignError::Forged);
    }
    let max_age_secs = max_age.as_secs();
    let stale = EsignError::Stale { max_age_secs };
    let event_at = event_time
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(|| malformed("event.event_time is not a Unix time"))?;
    let age = now.signed_duration_since(event_at).num_seconds();
    if age > i64::try_from(max_age_secs).unwrap_or(i64::MAX) || age < -EVENT_SKEW_SECS {
        return Err(stale);
    }
    if event_type != "signature_request_all_signed" {
        return Ok(DropboxSignEvent::Ignored(format!(
            "event {event_type:?} is not signature_request_all_signed"
        )));
    }
    let request = callback
        .signature_request
        .ok_or_else(|| malformed("signature_request is missing"))?;
    let request_id = clean_id(
        request.signature_request_id.as_deref(),
        "signature_request.signature_request_id",
    )?;
    let memory_key = format!("{event_time}:{event_type}:{request_id}");
    Ok(DropboxSignEvent::Confirm(DropboxSignClaim {
        request_id,
        event_at,
        memory_key,
    }))
}

/// The response of Dropbox Sign's `GET /v3/signature_request/{id}`.
#[derive(Deserialize)]
struct DsApiResponse {
    signature_request: DsRequest,
}

/// The completions of a signature request as Dropbox Sign's API describes it (`api_json`, the
/// body of `GET /v3/signature_request/{claim.request_id}` with the account's API key), never as
/// the callback did. Records come only from a request that is the one claimed and complete:
/// one per signature whose `status_code` is `signed`, completed at its `signed_at` (else the
/// event time). Test-mode requests are ignored unless `accept_test_mode`.
pub fn dropbox_sign_confirmed(
    api_json: &[u8],
    claim: &DropboxSignClaim,
    mapping: &EsignMapping,
    accept_test_mode: bool,
) -> Result<Callback, EsignError> {
    let response: DsApiResponse = serde_json::from_slice(api_json).map_err(|e| {
        EsignError::Unconfirmed(format!(
            "Dropbox Sign's API answered with something that is not a signature request: {e}"
        ))
    })?;
    let request = response.signature_request;
    if request.signature_request_id.as_deref() != Some(claim.request_id.as_str()) {
        return Err(EsignError::Unconfirmed(format!(
            "Dropbox Sign's API describes another signature request than {}",
            claim.request_id
        )));
    }
    let request_id = claim.request_id.clone();
    if request.test_mode == Some(true) && !accept_test_mode {
        return Ok(Callback::Ignored(format!(
            "signature request {request_id} is in test mode (set webhooks.dropbox_sign.accept_test_mode to record these)"
        )));
    }
    if request.is_complete != Some(true) {
        return Err(EsignError::Unconfirmed(format!(
            "Dropbox Sign's API says signature request {request_id} is not complete"
        )));
    }
    let template_ids = request.template_ids.unwrap_or_default();
    let Some(target) = mapping.target(&template_ids, &[]) else {
        return Ok(Callback::Ignored(format!(
            "signature request {request_id} (templates {template_ids:?}) matches no [[webhooks.dropbox_sign.templates]] entry and there is no default_requirement"
        )));
    };
    let event_at = Some(claim.event_at);

    let mut evidence = Map::new();
    evidence.insert("provider".into(), json!("dropbox_sign"));
    evidence.insert("signature_request_id".into(), json!(request_id));
    if let Some(title) = request.title.filter(|t| !t.trim().is_empty()) {
        evidence.insert("title".into(), json!(title));
    }
    if !template_ids.is_empty() {
        evidence.insert("template_ids".into(), json!(template_ids));
    }
    if request.test_mode == Some(true) {
        evidence.insert("test_mode".into(), json!(true));
    }

    let mut completed = Completed {
        target: target.clone(),
        reference: request_id.clone(),
        signers: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, signature) in request.signatures.unwrap_or_default().iter().enumerate() {
        let who = signature
            .signer_email_address
            .as_deref()
            .unwrap_or("(no email)");
        let status = signature.status_code.as_deref().unwrap_or_default().trim();
        if status != "signed" {
            completed.skipped.push(format!(
                "signature {i} ({who}): status {status:?} is not signed"
            ));
            continue;
        }
        let subject = match SubjectKey::parse(
            signature
                .signer_email_address
                .as_deref()
                .unwrap_or_default(),
        ) {
            Ok(s) if s.as_str().contains('@') => s,
            Ok(_) => {
                completed
                    .skipped
                    .push(format!("signature {i} ({who}): not an email address"));
                continue;
            }
            Err(e) => {
                completed
                    .skipped
                    .push(format!("signature {i} ({who}): {e}"));
                continue;
            }
        };
        if completed.signers.iter().any(|s| s.subject == subject) {
            continue;
        }
        let Some(completed_at) = signature
            .signed_at
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .or(event_at)
        else {
            completed.skipped.push(format!(
                "signature {i} ({who}): neither signed_at nor event_time is a Unix time"
            ));
            continue;
        };
        let mut evidence = evidence.clone();
        if let Some(id) = &signature.signature_id {
            evidence.insert("signature_id".into(), json!(id));
        }
        completed.signers.push(Signed {
            idempotency_key: format!("dropbox-sign:{request_id}:{subject}"),
            subject,
            completed_at,
            evidence,
        });
    }
    Ok(Callback::Completed(completed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Yp3dZXR4bTJxK0FvV2Q0U1h1dGF2c3Z2OGp0c2Q5dz0=";
    const OLD_KEY: &str = "b2xkLWtleS10aGF0LWlzLWJlaW5nLXJvdGF0ZWQtb3V0";

    fn sign_b64(key: &str, body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.as_bytes(), &[body]))
    }

    fn target(req: &str) -> EsignTarget {
        EsignTarget {
            requirement: RequirementId(req.into()),
            version: "1".parse().unwrap(),
        }
    }

    fn mapping() -> EsignMapping {
        EsignMapping {
            rules: vec![
                MappingRule {
                    matches: AgreementMatch::TemplateId(
                        "44D9E888-3D86-4E07-8F7A-64C1A0E5D2C1".into(),
                    ),
                    target: target("confidentiality-agreement"),
                },
                MappingRule {
                    matches: AgreementMatch::DocumentName("Acceptable use policy.pdf".into()),
                    target: target("acceptable-use-policy"),
                },
            ],
            default: None,
        }
    }

    fn envelope(event: &str, status: &str) -> Value {
        json!({
            "event": event,
            "apiVersion": "v2.1",
            "uri": "/restapi/v2.1/accounts/8e3b2f7c-1111-4c5d-9a9a-0c1d2e3f4a5b/envelopes/6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d",
            "retryCount": 0,
            "configurationId": "10474",
            "generatedDateTime": "2026-11-20T09:31:02.4570000Z",
            "data": {
                "accountId": "8e3b2f7c-1111-4c5d-9a9a-0c1d2e3f4a5b",
                "userId": "0f0e0d0c-2222-4b4b-8c8c-1a1b1c1d1e1f",
                "envelopeId": "6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d",
                "envelopeSummary": {
                    "status": status,
                    "emailSubject": "Please sign: Confidentiality agreement",
                    "envelopeId": "6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d",
                    "sentDateTime": "2026-11-19T15:00:00.0000000Z",
                    "completedDateTime": "2026-11-20T09:30:55.1230000Z",
                    "templateInfo": {
                        "templates": [
                            { "templateId": "44d9e888-3d86-4e07-8f7a-64c1a0e5d2c1", "name": "NDA 2026" }
                        ]
                    },
                    "recipients": {
                        "signers": [
                            {
                                "email": "Carl@Example.com", "name": "Carl Contractor",
                                "recipientId": "1", "status": "completed",
                                "signedDateTime": "2026-11-20T09:30:12.0000000Z"
                            },
                            {
                                "email": "legal@example.com", "name": "Legal",
                                "recipientId": "2", "status": "completed"
                            }
                        ],
                        "carbonCopies": [ { "email": "hr@example.com", "status": "completed" } ]
                    },
                    "envelopeDocuments": [
                        { "documentId": "1", "name": "NDA.pdf", "PDFBytes": "JVBERi0xLjQK" }
                    ]
                }
            }
        })
    }

    #[test]
    fn docusign_signature_any_header_any_key() {
        let body = br#"{"event":"envelope-completed"}"#;
        let keys = vec![OLD_KEY.to_owned(), KEY.to_owned()];
        let good = sign_b64(KEY, body);
        let other = sign_b64("not-a-configured-key-at-all", body);
        assert!(docusign_signature_valid(
            body,
            [other.as_str(), good.as_str()],
            &keys
        ));
        assert!(docusign_signature_valid(body, [good.as_str()], &keys[1..]));
        assert!(!docusign_signature_valid(body, [other.as_str()], &keys));
        assert!(!docusign_signature_valid(body, [], &keys), "missing header");
        assert!(!docusign_signature_valid(body, ["not base64!"], &keys));
        assert!(
            !docusign_signature_valid(body, [good.as_str()], &[]),
            "no keys"
        );
        let tampered = br#"{"event":"envelope-completed" }"#;
        assert!(!docusign_signature_valid(tampered, [good.as_str()], &keys));
        // A truncated MAC is not a MAC.
        let short = base64::engine::general_purpose::STANDARD.encode(
            &base64::engine::general_purpose::STANDARD
                .decode(&good)
                .unwrap()[..16],
        );
        assert!(!docusign_signature_valid(body, [short.as_str()], &keys));
    }

    #[test]
    fn completed_envelope_yields_one_completion_per_signer() {
        let body = serde_json::to_vec(&envelope("envelope-completed", "completed")).unwrap();
        let Callback::Completed(c) = docusign_callback(&body, &mapping()).unwrap() else {
            panic!("completed");
        };
        assert_eq!(c.target, target("confidentiality-agreement"));
        assert_eq!(c.reference, "6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d");
        assert_eq!(c.signers.len(), 2, "carbon copies are not signers");
        let carl = &c.signers[0];
        assert_eq!(carl.subject.as_str(), "carl@example.com", "normalised");
        assert_eq!(carl.completed_at.to_rfc3339(), "2026-11-20T09:30:12+00:00");
        assert_eq!(
            carl.idempotency_key,
            "docusign:6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d:carl@example.com"
        );
        assert_eq!(
            carl.evidence["envelope_id"],
            "6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d"
        );
        assert_eq!(
            carl.evidence["template_ids"][0],
            "44d9e888-3d86-4e07-8f7a-64c1a0e5d2c1"
        );
        assert_eq!(carl.evidence["recipient_id"], "1");
        assert_eq!(carl.evidence["documents"][0]["name"], "NDA.pdf");
        assert_eq!(
            carl.evidence["documents"][0]["sha256"],
            hex::encode(Sha256::digest(b"%PDF-1.4\n"))
        );
        let legal = &c.signers[1];
        assert_eq!(
            legal.completed_at.to_rfc3339(),
            "2026-11-20T09:30:55.123+00:00",
            "falls back to the envelope's completedDateTime"
        );
    }

    #[test]
    fn only_completed_envelopes_count() {
        for (event, status) in [
            ("envelope-sent", "sent"),
            ("envelope-delivered", "delivered"),
            ("recipient-completed", "sent"),
            ("envelope-declined", "declined"),
            ("envelope-voided", "voided"),
            ("envelope-completed", "sent"),
            ("envelope-completed", "declined"),
        ] {
            let body = serde_json::to_vec(&envelope(event, status)).unwrap();
            assert!(
                matches!(
                    docusign_callback(&body, &mapping()),
                    Ok(Callback::Ignored(_))
                ),
                "{event} / {status}"
            );
        }
    }

    #[test]
    fn signers_who_did_not_sign_are_skipped() {
        let mut env = envelope("envelope-completed", "completed");
        let signers = &mut env["data"]["envelopeSummary"]["recipients"]["signers"];
        signers[1]["status"] = json!("declined");
        signers
            .as_array_mut()
            .unwrap()
            .push(json!({"email": "not an email", "status": "completed"}));
        signers
            .as_array_mut()
            .unwrap()
            .push(json!({"email": "CARL@example.com", "status": "completed"}));
        let body = serde_json::to_vec(&env).unwrap();
        let Callback::Completed(c) = docusign_callback(&body, &mapping()).unwrap() else {
            panic!("completed");
        };
        assert_eq!(c.signers.len(), 1, "one record per person");
        assert_eq!(c.skipped.len(), 2, "{:?}", c.skipped);
    }

    #[test]
    fn envelopes_map_by_template_then_document_then_default() {
        let mut env = envelope("envelope-completed", "completed");
        env["data"]["envelopeSummary"]["templateInfo"] = json!({ "templates": [] });
        env["data"]["envelopeSummary"]["envelopeDocuments"] =
            json!([{ "name": "  acceptable USE policy.pdf " }]);
        let body = serde_json::to_vec(&env).unwrap();
        let Callback::Completed(c) = docusign_callback(&body, &mapping()).unwrap() else {
            panic!("completed");
        };
        assert_eq!(c.target, target("acceptable-use-policy"));

        env["data"]["envelopeSummary"]["envelopeDocuments"] = json!([{ "name": "Invoice.pdf" }]);
        let body = serde_json::to_vec(&env).unwrap();
        assert!(matches!(
            docusign_callback(&body, &mapping()),
            Ok(Callback::Ignored(_))
        ));
        let with_default = EsignMapping {
            default: Some(target("confidentiality-agreement")),
            ..mapping()
        };
        let Callback::Completed(c) = docusign_callback(&body, &with_default).unwrap() else {
            panic!("completed");
        };
        assert_eq!(c.target, target("confidentiality-agreement"));
    }

    #[test]
    fn malformed_messages_say_what_is_wrong() {
        let err = |body: &[u8]| match docusign_callback(body, &mapping()) {
            Err(EsignError::Malformed(m)) => m,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert!(err(b"<DocuSignEnvelopeInformation/>").contains("JSON (SIM)"));
        assert!(err(br#"{"status":"completed"}"#).contains("event"));
        let mut env = envelope("envelope-completed", "completed");
        env["data"]
            .as_object_mut()
            .unwrap()
            .remove("envelopeSummary");
        assert!(err(&serde_json::to_vec(&env).unwrap()).contains("envelopeSummary"));
        let mut env = envelope("envelope-completed", "completed");
        env["data"]["envelopeSummary"]
            .as_object_mut()
            .unwrap()
            .remove("recipients");
        assert!(err(&serde_json::to_vec(&env).unwrap()).contains("recipients"));
        let mut env = envelope("envelope-completed", "completed");
        env["data"]["envelopeId"] = json!("a:b");
        assert!(err(&serde_json::to_vec(&env).unwrap()).contains("not an id"));
    }

    // --- Dropbox Sign ----------------------------------------------------------------------

    const API_KEY: &str = "c4f3d2e1b0a99887766554433221100ffeeddccbbaa99887766554433221100";

    fn ds_hash(key: &str, time: &str, kind: &str) -> String {
        hex::encode(hmac_sha256(
            key.as_bytes(),
            &[time.as_bytes(), kind.as_bytes()],
        ))
    }

    fn ds_event(kind: &str, key: &str) -> Value {
        json!({
            "event": {
                "event_type": kind,
                "event_time": "1795685412",
                "event_hash": ds_hash(key, "1795685412", kind),
                "event_metadata": {
                    "related_signature_id": null,
                    "reported_for_account_id": "63522885f9261e2b04eea043933ee7313eb674fd",
                    "reported_for_app_id": null
                }
            },
            "signature_request": {
                "signature_request_id": "fa5c8a0b0f492d768749333ad6fcc214c111e967",
                "test_mode": false,
                "title": "Confidentiality agreement",
                "is_complete": true,
                "is_declined": false,
                "template_ids": ["c26b8a16784a872da37ea946b9ddec7c1e11dff6"],
                "signatures": [
                    {
                        "signature_id": "78caf2a1d01cd39cea2bc1cbb340dac3",
                        "signer_email_address": "Erin@Example.com",
                        "signer_name": "Erin Employee",
                        "status_code": "signed",
                        "signed_at": 1795685400
                    },
                    {
                        "signature_id": "616629ed37f8588d28600be17ab5d6b7",
                        "signer_email_address": "manager@example.com",
                        "status_code": "signed",
                        "signed_at": null
                    }
                ]
            }
        })
    }

    fn ds_mapping() -> EsignMapping {
        EsignMapping {
            rules: vec![MappingRule {
                matches: AgreementMatch::TemplateId(
                    "c26b8a16784a872da37ea946b9ddec7c1e11dff6".into(),
                ),
                target: target("confidentiality-agreement"),
            }],
            default: None,
        }
    }

    /// The event's own time, as "now".
    fn ds_now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_685_412, 0).unwrap()
    }

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    /// A callback read, then confirmed by an API that tells the truth (the callback's own
    /// signature request).
    fn dropbox_sign_callback(
        json: &[u8],
        api_key: &str,
        mapping: &EsignMapping,
        accept_test_mode: bool,
    ) -> Result<Callback, EsignError> {
        match dropbox_sign_event(json, api_key, ds_now(), DAY)? {
            DropboxSignEvent::Ignored(why) => Ok(Callback::Ignored(why)),
            DropboxSignEvent::Confirm(claim) => {
                let event: Value = serde_json::from_slice(json).unwrap();
                let api = json!({ "signature_request": event["signature_request"] });
                dropbox_sign_confirmed(
                    &serde_json::to_vec(&api).unwrap(),
                    &claim,
                    mapping,
                    accept_test_mode,
                )
            }
        }
    }

    fn claim_of(event: &Value) -> DropboxSignClaim {
        let body = serde_json::to_vec(event).unwrap();
        match dropbox_sign_event(&body, API_KEY, ds_now(), DAY).unwrap() {
            DropboxSignEvent::Confirm(claim) => claim,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dropbox_sign_events_must_be_recent() {
        let body = serde_json::to_vec(&ds_event("signature_request_all_signed", API_KEY)).unwrap();
        let later = ds_now() + chrono::Duration::seconds(86_401);
        assert_eq!(
            dropbox_sign_event(&body, API_KEY, later, DAY),
            Err(EsignError::Stale {
                max_age_secs: 86_400
            })
        );
        let earlier = ds_now() - chrono::Duration::seconds(301);
        assert!(matches!(
            dropbox_sign_event(&body, API_KEY, earlier, DAY),
            Err(EsignError::Stale { .. })
        ));
        let within = ds_now() + chrono::Duration::seconds(86_400);
        assert!(matches!(
            dropbox_sign_event(&body, API_KEY, within, DAY),
            Ok(DropboxSignEvent::Confirm(_))
        ));
        // The hash is checked first: a stale forgery is a forgery.
        let forged = serde_json::to_vec(&ds_event("signature_request_all_signed", "x")).unwrap();
        assert_eq!(
            dropbox_sign_event(&forged, API_KEY, later, DAY),
            Err(EsignError::Forged)
        );
    }

    #[test]
    fn only_what_the_api_confirms_is_recorded() {
        // The callback names Mallory; the API knows the request as Erin's and her manager's.
        let truth = ds_event("signature_request_all_signed", API_KEY);
        let mut forged = truth.clone();
        forged["signature_request"]["signatures"] = json!([{
            "signer_email_address": "mallory@example.com", "status_code": "signed", "signed_at": 1795685400
        }]);
        let claim = claim_of(&forged);
        let api = serde_json::to_vec(&json!({ "signature_request": truth["signature_request"] }))
            .unwrap();
        let Callback::Completed(c) =
            dropbox_sign_confirmed(&api, &claim, &ds_mapping(), false).unwrap()
        else {
            panic!("completed");
        };
        let who: Vec<&str> = c.signers.iter().map(|s| s.subject.as_str()).collect();
        assert_eq!(who, ["erin@example.com", "manager@example.com"]);
        // Another request, or one not complete: nothing.
        let mut other = truth["signature_request"].clone();
        other["signature_request_id"] = json!("0000000000000000000000000000000000000000");
        let api = serde_json::to_vec(&json!({ "signature_request": other })).unwrap();
        assert!(matches!(
            dropbox_sign_confirmed(&api, &claim, &ds_mapping(), false),
            Err(EsignError::Unconfirmed(_))
        ));
        let mut open = truth["signature_request"].clone();
        open["is_complete"] = json!(false);
        let api = serde_json::to_vec(&json!({ "signature_request": open })).unwrap();
        assert!(matches!(
            dropbox_sign_confirmed(&api, &claim, &ds_mapping(), false),
            Err(EsignError::Unconfirmed(_))
        ));
        let error = br#"{"error":{"error_msg":"Not found","error_name":"not_found"}}"#;
        assert!(matches!(
            dropbox_sign_confirmed(error, &claim, &ds_mapping(), false),
            Err(EsignError::Unconfirmed(_))
        ));
        assert_eq!(
            claim.memory_key,
            "1795685412:signature_request_all_signed:fa5c8a0b0f492d768749333ad6fcc214c111e967"
        );
    }

    #[test]
    fn dropbox_sign_hash_matches_the_documented_construction() {
        let hash = ds_hash(API_KEY, "1525470811", "signature_request_sent");
        assert!(dropbox_sign_hash_valid(
            API_KEY,
            "1525470811",
            "signature_request_sent",
            &hash
        ));
        assert!(dropbox_sign_hash_valid(
            API_KEY,
            "1525470811",
            "signature_request_sent",
            &hash.to_uppercase()
        ));
        assert!(!dropbox_sign_hash_valid(
            API_KEY,
            "1525470812",
            "signature_request_sent",
            &hash
        ));
        assert!(!dropbox_sign_hash_valid(
            API_KEY,
            "1525470811",
            "signature_request_all_signed",
            &hash
        ));
        assert!(!dropbox_sign_hash_valid(
            "other",
            "1525470811",
            "signature_request_sent",
            &hash
        ));
        assert!(!dropbox_sign_hash_valid(
            "",
            "1525470811",
            "signature_request_sent",
            &hash
        ));
        assert!(!dropbox_sign_hash_valid(
            API_KEY,
            "1525470811",
            "signature_request_sent",
            "zz"
        ));
    }

    #[test]
    fn dropbox_sign_all_signed_yields_signers() {
        let body = serde_json::to_vec(&ds_event("signature_request_all_signed", API_KEY)).unwrap();
        let Callback::Completed(c) =
            dropbox_sign_callback(&body, API_KEY, &ds_mapping(), false).unwrap()
        else {
            panic!("completed");
        };
        assert_eq!(c.signers.len(), 2);
        assert_eq!(c.signers[0].subject.as_str(), "erin@example.com");
        assert_eq!(c.signers[0].completed_at.timestamp(), 1795685400);
        assert_eq!(
            c.signers[1].completed_at.timestamp(),
            1795685412,
            "event time"
        );
        assert_eq!(
            c.signers[0].idempotency_key,
            "dropbox-sign:fa5c8a0b0f492d768749333ad6fcc214c111e967:erin@example.com"
        );
        assert_eq!(
            c.signers[0].evidence["signature_id"],
            "78caf2a1d01cd39cea2bc1cbb340dac3"
        );
    }

    #[test]
    fn dropbox_sign_forged_test_and_other_events() {
        let forged =
            serde_json::to_vec(&ds_event("signature_request_all_signed", "wrong")).unwrap();
        assert_eq!(
            dropbox_sign_callback(&forged, API_KEY, &ds_mapping(), false),
            Err(EsignError::Forged)
        );
        // The hash covers only time and type: a changed type is forged.
        let mut swapped = ds_event("signature_request_signed", API_KEY);
        swapped["event"]["event_type"] = json!("signature_request_all_signed");
        let swapped = serde_json::to_vec(&swapped).unwrap();
        assert_eq!(
            dropbox_sign_callback(&swapped, API_KEY, &ds_mapping(), false),
            Err(EsignError::Forged)
        );
        for kind in [
            "callback_test",
            "signature_request_signed",
            "signature_request_sent",
        ] {
            let body = serde_json::to_vec(&ds_event(kind, API_KEY)).unwrap();
            assert!(matches!(
                dropbox_sign_callback(&body, API_KEY, &ds_mapping(), false),
                Ok(Callback::Ignored(_))
            ));
        }
        let mut test_mode = ds_event("signature_request_all_signed", API_KEY);
        test_mode["signature_request"]["test_mode"] = json!(true);
        let body = serde_json::to_vec(&test_mode).unwrap();
        assert!(matches!(
            dropbox_sign_callback(&body, API_KEY, &ds_mapping(), false),
            Ok(Callback::Ignored(_))
        ));
        assert!(matches!(
            dropbox_sign_callback(&body, API_KEY, &ds_mapping(), true),
            Ok(Callback::Completed(_))
        ));
        let mut unmapped = ds_event("signature_request_all_signed", API_KEY);
        unmapped["signature_request"]["template_ids"] = json!(null);
        let body = serde_json::to_vec(&unmapped).unwrap();
        assert!(matches!(
            dropbox_sign_callback(&body, API_KEY, &ds_mapping(), false),
            Ok(Callback::Ignored(_))
        ));
        assert!(matches!(
            dropbox_sign_callback(b"{}", API_KEY, &ds_mapping(), false),
            Err(EsignError::Malformed(_))
        ));
    }

    #[test]
    fn dropbox_sign_only_signed_signatures_count() {
        let mut event = ds_event("signature_request_all_signed", API_KEY);
        event["signature_request"]["signatures"][1]["status_code"] = json!("awaiting_signature");
        let body = serde_json::to_vec(&event).unwrap();
        let Callback::Completed(c) =
            dropbox_sign_callback(&body, API_KEY, &ds_mapping(), false).unwrap()
        else {
            panic!("completed");
        };
        assert_eq!(c.signers.len(), 1);
        assert_eq!(c.skipped.len(), 1);
    }
}
