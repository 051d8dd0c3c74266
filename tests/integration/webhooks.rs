//! E-signature webhooks against a real gate and Redis: DocuSign Connect (HMAC over the raw body,
//! key rotation, replays, incomplete envelopes) and Dropbox Sign (event hash, the exact answer
//! text, every "all signed" confirmed through a local server that follows Dropbox Sign's API:
//! forged, stale, replayed and unconfirmed callbacks write nothing), and Carl admitted by a
//! completed envelope on his next request.

use crate::gate::World;
use crate::support::{Browser, DropboxSignApi};
use crate::{admin_get, history, records};
use crate::{blocked_items, record, sign_in};
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The Connect key in use, and the one being rotated out (both configured).
const KEY: &str = "Yp3dZXR4bTJxK0FvV2Q0U1h1dGF2c3Z2OGp0c2Q5dz0=";
const OLD_KEY: &str = "b2xkLWtleS10aGF0LWlzLWJlaW5nLXJvdGF0ZWQtb3V0";
const DROPBOX_API_KEY: &str = "c4f3d2e1b0a99887766554433221100ffeeddccbbaa99887766554433221100";
const NDA_TEMPLATE: &str = "44D9E888-3D86-4E07-8F7A-64C1A0E5D2C1";
const DS_NDA_TEMPLATE: &str = "c26b8a16784a872da37ea946b9ddec7c1e11dff6";
const ACK: &str = "Hello API Event Received";

fn extra_toml(dropbox_api: &str) -> String {
    format!(
        r#"
[webhooks.docusign]
hmac_keys = ["{OLD_KEY}", "{KEY}"]

[[webhooks.docusign.templates]]
template_id = "{NDA_TEMPLATE}"
requirement = "confidentiality-agreement"
version = "1"

[[webhooks.docusign.templates]]
document_name = "Acceptable use policy.pdf"
requirement = "acceptable-use-policy"

[webhooks.dropbox_sign]
api_key = "{DROPBOX_API_KEY}"
api_url = "{dropbox_api}"

[[webhooks.dropbox_sign.templates]]
template_id = "{DS_NDA_TEMPLATE}"
requirement = "confidentiality-agreement"
version = "1"
"#
    )
}

/// The gate, and the Dropbox Sign account's API it confirms callbacks with.
async fn world() -> (World, DropboxSignApi) {
    let api = DropboxSignApi::start(DROPBOX_API_KEY).await;
    let world = World::start_with(|p| p, "", &extra_toml(&api.url())).await;
    (world, api)
}

fn mac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// What DocuSign puts in `X-DocuSign-Signature-N`.
fn docusign_signature(key: &str, body: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(key, &[body.as_bytes()]))
}

/// DocuSign's own spelling of times: seven fractional digits, `Z`.
fn ds_time(t: DateTime<Utc>) -> String {
    // Seven digits: microseconds and one more (always 0 here).
    t.format("%Y-%m-%dT%H:%M:%S%.6f0Z").to_string()
}

/// A Connect JSON SIM message as DocuSign sends it with "include envelope summary, recipients,
/// templates".
fn envelope(
    event: &str,
    status: &str,
    envelope_id: &str,
    signers: &[(&str, &str, Option<DateTime<Utc>>)],
) -> Value {
    let completed = Utc::now() - Duration::minutes(5);
    let signers: Vec<Value> = signers
        .iter()
        .enumerate()
        .map(|(i, (email, signer_status, signed))| {
            let mut s = json!({
                "email": email,
                "name": format!("Signer {}", i + 1),
                "recipientId": (i + 1).to_string(),
                "recipientIdGuid": "1f2e3d4c-0000-4000-8000-00000000000".to_owned() + &i.to_string(),
                "routingOrder": "1",
                "status": signer_status,
                "deliveredDateTime": ds_time(completed - Duration::minutes(30)),
            });
            if let Some(t) = signed {
                s["signedDateTime"] = json!(ds_time(*t));
            }
            s
        })
        .collect();
    json!({
        "event": event,
        "apiVersion": "v2.1",
        "uri": format!("/restapi/v2.1/accounts/8e3b2f7c-1111-4c5d-9a9a-0c1d2e3f4a5b/envelopes/{envelope_id}"),
        "retryCount": 0,
        "configurationId": "10474",
        "generatedDateTime": ds_time(Utc::now()),
        "data": {
            "accountId": "8e3b2f7c-1111-4c5d-9a9a-0c1d2e3f4a5b",
            "userId": "0f0e0d0c-2222-4b4b-8c8c-1a1b1c1d1e1f",
            "envelopeId": envelope_id,
            "envelopeSummary": {
                "status": status,
                "documentsUri": format!("/envelopes/{envelope_id}/documents"),
                "recipientsUri": format!("/envelopes/{envelope_id}/recipients"),
                "emailSubject": "Please DocuSign: Confidentiality agreement",
                "envelopeId": envelope_id,
                "signingLocation": "online",
                "sender": { "userName": "People Team", "email": "people@example.com" },
                "createdDateTime": ds_time(completed - Duration::hours(2)),
                "sentDateTime": ds_time(completed - Duration::hours(1)),
                "completedDateTime": ds_time(completed),
                "statusChangedDateTime": ds_time(completed),
                "templateInfo": {
                    "templates": [ { "templateId": NDA_TEMPLATE.to_lowercase(), "name": "NDA 2026" } ]
                },
                "recipients": {
                    "signers": signers,
                    "carbonCopies": [ { "email": "people@example.com", "status": "completed" } ],
                    "recipientCount": "3"
                },
                "envelopeDocuments": [
                    { "documentId": "1", "name": "Confidentiality agreement.pdf", "type": "content", "order": "1" },
                    { "documentId": "certificate", "name": "Summary", "type": "summary" }
                ]
            }
        }
    })
}

/// Posts `body` as DocuSign Connect does, with these signature headers (numbered from 1).
async fn post_docusign(world: &World, body: &str, signatures: &[String]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/.clearance/webhooks/docusign", world.gate.url()))
        .header("content-type", "application/json")
        .header("x-authorization-digest", "HMACSHA256")
        .header("user-agent", "DocuSign Connect")
        .body(body.to_owned());
    for (i, s) in signatures.iter().enumerate() {
        request = request.header(format!("X-DocuSign-Signature-{}", i + 1), s);
    }
    let response = request.send().await.expect("gate answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn docusign_completed_envelope_records_each_signer_once() {
    let (world, _api) = world().await;
    let dana_signed = Utc::now() - Duration::minutes(7);
    let body = serde_json::to_string_pretty(&envelope(
        "envelope-completed",
        "completed",
        "6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d",
        &[
            ("Dana.Signer@Example.com", "completed", Some(dana_signed)),
            ("legal@example.com", "completed", None),
        ],
    ))
    .unwrap();
    // Two keys during a rotation: DocuSign sends one header per key; one match is enough.
    let signatures = vec![
        docusign_signature("a-key-clearance-does-not-know-about", &body),
        docusign_signature(KEY, &body),
    ];
    let (status, answer) = post_docusign(&world, &body, &signatures).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "completed");
    assert_eq!(
        answer["written"],
        json!(["dana.signer@example.com", "legal@example.com"])
    );

    let dana = records(&world, "dana.signer@example.com").await;
    assert_eq!(dana.len(), 1, "{dana:?}");
    let r = &dana[0];
    assert_eq!(r["requirement"], "confidentiality-agreement");
    assert_eq!(r["version"], "1.0");
    assert_eq!(r["source"], "esign");
    assert_eq!(r["recorded_by"], "webhook:docusign");
    let completed_at: DateTime<Utc> = serde_json::from_value(r["completed_at"].clone()).unwrap();
    assert_eq!(
        completed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        dana_signed.to_rfc3339_opts(SecondsFormat::Micros, true),
        "the signer's signedDateTime"
    );
    assert_eq!(
        r["evidence"]["envelope_id"],
        "6d1c2b3a-7e8f-4a5b-9c0d-1e2f3a4b5c6d"
    );
    assert_eq!(
        r["evidence"]["template_ids"][0],
        NDA_TEMPLATE.to_lowercase()
    );
    assert_eq!(
        r["evidence"]["documents"][0]["name"],
        "Confidentiality agreement.pdf"
    );
    let subject = admin_get(&world, "/subjects/legal@example.com").await;
    let nda = subject["requirements"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["requirement"] == "confidentiality-agreement")
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(nda["state"], "met", "{subject}");

    // The same delivery again, and DocuSign's retry (other bytes, same envelope): nothing new.
    let (status, answer) = post_docusign(&world, &body, &signatures).await;
    assert_eq!(
        (status, answer["written"].clone()),
        (200, json!([])),
        "{answer}"
    );
    let retry = body.replace("\"retryCount\": 0", "\"retryCount\": 1");
    assert_ne!(retry, body);
    let (status, answer) =
        post_docusign(&world, &retry, &[docusign_signature(OLD_KEY, &retry)]).await;
    assert_eq!(
        (status, answer["written"].clone()),
        (200, json!([])),
        "{answer}"
    );
    assert_eq!(history(&world, "dana.signer@example.com").await.len(), 1);
    assert_eq!(history(&world, "legal@example.com").await.len(), 1);

    // A second envelope, mapped by document name, signed with the key being rotated out.
    let mut aup = envelope(
        "envelope-completed",
        "completed",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        &[(
            "dana.signer@example.com",
            "completed",
            Some(Utc::now() - Duration::minutes(1)),
        )],
    );
    aup["data"]["envelopeSummary"]["templateInfo"] = json!({ "templates": [] });
    aup["data"]["envelopeSummary"]["envelopeDocuments"] =
        json!([{ "documentId": "1", "name": "Acceptable use policy.pdf" }]);
    let body = aup.to_string();
    let (status, answer) =
        post_docusign(&world, &body, &[docusign_signature(OLD_KEY, &body)]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["requirement"], "acceptable-use-policy");
    let dana = records(&world, "dana.signer@example.com").await;
    let aup = dana
        .iter()
        .find(|r| r["requirement"] == "acceptable-use-policy")
        .expect("recorded");
    assert_eq!(aup["version"], "3.0", "the requirement's current version");
}

#[tokio::test]
async fn docusign_forged_missing_and_incomplete_write_nothing() {
    let (world, _api) = world().await;
    let body = envelope(
        "envelope-completed",
        "completed",
        "5e4d3c2b-1a09-4f8e-8d7c-6b5a49382716",
        &[("mallory@example.com", "completed", Some(Utc::now()))],
    )
    .to_string();

    let (status, answer) = post_docusign(&world, &body, &[]).await;
    assert_eq!(status, 401, "missing signature: {answer}");
    assert_eq!(answer["error"], "invalid_signature");
    let (status, _) = post_docusign(
        &world,
        &body,
        &[docusign_signature("guessed-key-0123456789abcdef", &body)],
    )
    .await;
    assert_eq!(status, 401, "signed with a key that is not configured");
    let (status, _) = post_docusign(&world, &body, &["not base64 at all".into()]).await;
    assert_eq!(status, 401, "garbage signature");
    // A genuine signature over other bytes: one changed character is enough.
    let genuine = body.replace("mallory@example.com", "someone@example.com");
    let (status, _) = post_docusign(&world, &body, &[docusign_signature(KEY, &genuine)]).await;
    assert_eq!(status, 401, "tampered body");
    assert!(history(&world, "mallory@example.com").await.is_empty());

    // Authentic, but not a fully signed agreement: 200 (so DocuSign does not retry), nothing written.
    let signed = Some(Utc::now() - Duration::minutes(2));
    let cases = [
        envelope(
            "envelope-sent",
            "sent",
            "11111111-1111-4111-8111-111111111111",
            &[("nina@example.com", "sent", None)],
        ),
        envelope(
            "envelope-delivered",
            "delivered",
            "11111111-1111-4111-8111-111111111111",
            &[("nina@example.com", "delivered", None)],
        ),
        // Nina signed, her manager has not: the envelope is not complete.
        envelope(
            "recipient-completed",
            "sent",
            "11111111-1111-4111-8111-111111111111",
            &[
                ("nina@example.com", "completed", signed),
                ("mona@example.com", "sent", None),
            ],
        ),
        envelope(
            "envelope-declined",
            "declined",
            "11111111-1111-4111-8111-111111111111",
            &[("nina@example.com", "declined", None)],
        ),
        envelope(
            "envelope-voided",
            "voided",
            "11111111-1111-4111-8111-111111111111",
            &[("nina@example.com", "completed", signed)],
        ),
    ];
    for case in cases {
        let body = case.to_string();
        let (status, answer) =
            post_docusign(&world, &body, &[docusign_signature(KEY, &body)]).await;
        assert_eq!(
            (status, answer["result"].clone()),
            (200, json!("ignored")),
            "{case}: {answer}"
        );
    }
    // Completed, but not an agreement Clearance tracks (no template or document matches).
    let mut other = envelope(
        "envelope-completed",
        "completed",
        "22222222-2222-4222-8222-222222222222",
        &[("nina@example.com", "completed", signed)],
    );
    other["data"]["envelopeSummary"]["templateInfo"] =
        json!({ "templates": [ { "templateId": "99999999-0000-4000-8000-000000000000" } ] });
    other["data"]["envelopeSummary"]["envelopeDocuments"] =
        json!([{ "name": "Purchase order.pdf" }]);
    let body = other.to_string();
    let (status, answer) = post_docusign(&world, &body, &[docusign_signature(KEY, &body)]).await;
    assert_eq!(
        (status, answer["result"].clone()),
        (200, json!("ignored")),
        "{answer}"
    );
    assert!(history(&world, "nina@example.com").await.is_empty());
    assert!(history(&world, "mona@example.com").await.is_empty());

    // Bodies are read whole for the HMAC, up to 2 MiB.
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (status, answer) = post_docusign(&world, &huge, &[docusign_signature(KEY, &huge)]).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (413, json!("body_too_large"))
    );

    // Authentic but unusable (Connect not set to JSON SIM): 400, so it shows in DocuSign's log.
    let xml = "<DocuSignEnvelopeInformation><EnvelopeStatus/></DocuSignEnvelopeInformation>";
    let (status, answer) = post_docusign(&world, xml, &[docusign_signature(KEY, xml)]).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_callback");
}

/// Dropbox Sign's event hash: hex HMAC-SHA256(api key, event_time + event_type).
fn event_hash(key: &str, time: &str, kind: &str) -> String {
    hex::encode(mac(key, &[time.as_bytes(), kind.as_bytes()]))
}

fn dropbox_event(kind: &str, key: &str, request_id: &str, signers: &[&str]) -> Value {
    dropbox_event_at(
        Utc::now() - Duration::seconds(5),
        kind,
        key,
        request_id,
        signers,
    )
}

fn dropbox_event_at(
    at: DateTime<Utc>,
    kind: &str,
    key: &str,
    request_id: &str,
    signers: &[&str],
) -> Value {
    let now = at;
    let time = now.timestamp().to_string();
    let signatures: Vec<Value> = signers
        .iter()
        .enumerate()
        .map(|(i, email)| {
            json!({
                "signature_id": format!("78caf2a1d01cd39cea2bc1cbb340dac{i}"),
                "has_pin": false,
                "signer_email_address": email,
                "signer_name": format!("Signer {i}"),
                "signer_role": null,
                "order": null,
                "status_code": "signed",
                "signed_at": now.timestamp() - 60,
                "last_viewed_at": now.timestamp() - 120,
                "last_reminded_at": null,
                "error": null
            })
        })
        .collect();
    json!({
        "event": {
            "event_type": kind,
            "event_time": time,
            "event_hash": event_hash(key, &time, kind),
            "event_metadata": {
                "related_signature_id": null,
                "reported_for_account_id": "63522885f9261e2b04eea043933ee7313eb674fd",
                "reported_for_app_id": null,
                "event_message": null
            }
        },
        "account_guid": "63522885f9261e2b04eea043933ee7313eb674fd",
        "signature_request": {
            "signature_request_id": request_id,
            "test_mode": false,
            "title": "Confidentiality agreement",
            "original_title": "Confidentiality agreement",
            "subject": "Confidentiality agreement",
            "message": "Please sign before your first day.",
            "metadata": {},
            "created_at": now.timestamp() - 3600,
            "is_complete": true,
            "is_declined": false,
            "has_error": false,
            "files_url": format!("https://api.hellosign.com/v3/signature_request/files/{request_id}"),
            "signing_url": null,
            "details_url": format!("https://app.hellosign.com/home/manage?guid={request_id}"),
            "requester_email_address": "people@example.com",
            "template_ids": [DS_NDA_TEMPLATE],
            "cc_email_addresses": [],
            "custom_fields": [],
            "response_data": [],
            "signatures": signatures
        }
    })
}

/// Posts as Dropbox Sign does: multipart/form-data with the event in a field named `json`.
async fn post_dropbox_multipart(world: &World, event: &Value) -> reqwest::Response {
    let boundary = "------------------------a3f1c2e4b5d6e7f8";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{}\r\n--{boundary}--\r\n",
        event
    );
    reqwest::Client::new()
        .post(format!(
            "{}/.clearance/webhooks/dropbox-sign",
            world.gate.url()
        ))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("user-agent", "HelloSign API")
        .body(body)
        .send()
        .await
        .expect("gate answers")
}

#[tokio::test]
async fn dropbox_sign_callbacks() {
    let (world, api) = world().await;

    // The "Test" button: acknowledged with exactly the text Dropbox Sign expects.
    let test = post_dropbox_multipart(
        &world,
        &dropbox_event(
            "callback_test",
            DROPBOX_API_KEY,
            "fa5c8a0b0f492d768749333ad6fcc214c111e967",
            &[],
        ),
    )
    .await;
    assert_eq!(test.status(), 200);
    assert!(
        test.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        test.headers()
    );
    assert_eq!(test.text().await.unwrap(), ACK);
    assert!(api.asked().is_empty(), "only \"all signed\" is confirmed");

    // Fully signed, and confirmed by the API: one record per signer.
    let all_signed = dropbox_event(
        "signature_request_all_signed",
        DROPBOX_API_KEY,
        "fa5c8a0b0f492d768749333ad6fcc214c111e967",
        &["Frank@Example.com", "grace@example.com"],
    );
    api.knows(&all_signed["signature_request"]);
    let r = post_dropbox_multipart(&world, &all_signed).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), ACK);
    assert_eq!(api.asked(), ["fa5c8a0b0f492d768749333ad6fcc214c111e967"]);
    let frank = records(&world, "frank@example.com").await;
    assert_eq!(frank.len(), 1, "{frank:?}");
    assert_eq!(frank[0]["requirement"], "confidentiality-agreement");
    assert_eq!(frank[0]["source"], "esign");
    assert_eq!(frank[0]["recorded_by"], "webhook:dropbox-sign");
    assert_eq!(
        frank[0]["evidence"]["signature_request_id"],
        "fa5c8a0b0f492d768749333ad6fcc214c111e967"
    );
    assert_eq!(records(&world, "grace@example.com").await.len(), 1);

    // Replayed (Dropbox Sign resends until it reads the answer): acknowledged, remembered as
    // processed, nothing new, not even a question to the API.
    let r = post_dropbox_multipart(&world, &all_signed).await;
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, ACK.to_owned())
    );
    assert_eq!(api.asked().len(), 1);
    assert_eq!(history(&world, "frank@example.com").await.len(), 1);
    assert_eq!(history(&world, "grace@example.com").await.len(), 1);

    // Forged: a hash made with another key, and a genuine hash for another event type.
    let forged = dropbox_event(
        "signature_request_all_signed",
        "not-the-api-key-0123456789abcdef",
        "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        &["mallory@example.com"],
    );
    let r = post_dropbox_multipart(&world, &forged).await;
    assert_eq!(r.status(), 401);
    assert_ne!(r.text().await.unwrap(), ACK);
    let mut relabelled = dropbox_event(
        "signature_request_viewed",
        DROPBOX_API_KEY,
        "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        &["mallory@example.com"],
    );
    relabelled["event"]["event_type"] = json!("signature_request_all_signed");
    assert_eq!(
        post_dropbox_multipart(&world, &relabelled).await.status(),
        401
    );

    // The event hash covers only the event's time and type, so one captured event can carry
    // anything else. A request the account does not have: the API does not confirm it.
    let invented = dropbox_event(
        "signature_request_all_signed",
        DROPBOX_API_KEY,
        "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
        &["mallory@example.com"],
    );
    let r = post_dropbox_multipart(&world, &invented).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("does not confirm"));
    // A real, complete request with Mallory put in as its signer: only the real signer is
    // recorded.
    let real = dropbox_event(
        "signature_request_all_signed",
        DROPBOX_API_KEY,
        "3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f",
        &["ivy@example.com"],
    );
    api.knows(&real["signature_request"]);
    let mut swapped = real.clone();
    swapped["signature_request"]["signatures"][0]["signer_email_address"] =
        json!("mallory@example.com");
    let r = post_dropbox_multipart(&world, &swapped).await;
    assert_eq!(r.status(), 200);
    assert_eq!(records(&world, "ivy@example.com").await.len(), 1);
    // A request the API says is not complete yet.
    let mut open = dropbox_event(
        "signature_request_all_signed",
        DROPBOX_API_KEY,
        "4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a",
        &["mallory@example.com"],
    );
    let mut unsigned = open["signature_request"].clone();
    unsigned["is_complete"] = json!(false);
    unsigned["signatures"][0]["status_code"] = json!("awaiting_signature");
    api.knows(&unsigned);
    let r = post_dropbox_multipart(&world, &open).await;
    assert_eq!(r.status(), 401);
    // A captured event replayed days later (its hash still verifies): refused as stale, the
    // API not even asked.
    let asked = api.asked().len();
    open = dropbox_event_at(
        Utc::now() - Duration::days(2),
        "signature_request_all_signed",
        DROPBOX_API_KEY,
        "fa5c8a0b0f492d768749333ad6fcc214c111e967",
        &["mallory@example.com"],
    );
    let r = post_dropbox_multipart(&world, &open).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("older than"));
    assert_eq!(api.asked().len(), asked);
    assert!(history(&world, "mallory@example.com").await.is_empty());

    // Someone signed but not everyone yet: acknowledged, nothing written.
    let one_signed = dropbox_event(
        "signature_request_signed",
        DROPBOX_API_KEY,
        "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d",
        &["henry@example.com"],
    );
    let r = post_dropbox_multipart(&world, &one_signed).await;
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, ACK.to_owned())
    );
    assert!(history(&world, "henry@example.com").await.is_empty());

    // The same callback as a URL-encoded form works too.
    let event = dropbox_event(
        "signature_request_all_signed",
        DROPBOX_API_KEY,
        "2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e",
        &["henry@example.com"],
    );
    api.knows(&event["signature_request"]);
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("json", &event.to_string())
        .finish();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/.clearance/webhooks/dropbox-sign",
            world.gate.url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, ACK.to_owned())
    );
    assert_eq!(records(&world, "henry@example.com").await.len(), 1);
}

#[tokio::test]
async fn carl_is_admitted_by_a_completed_envelope() {
    let (world, _api) = world().await;
    let browser = Browser::new();
    let page = sign_in(&world, &browser, "carl@example.com", "/echo/work").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(blocked_items(&page).len(), 3);

    for (requirement, version) in [
        ("security-awareness", "2026.1"),
        ("acceptable-use-policy", "3.0"),
    ] {
        let r = record(&world, "carl@example.com", requirement, version, Utc::now()).await;
        assert_eq!(r.status(), 201);
    }
    let page = browser
        .get(format!("{}/echo/work", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(page.status, 403);
    assert_eq!(
        blocked_items(&page),
        vec![(
            "confidentiality-agreement".to_owned(),
            "never_completed".to_owned()
        )],
        "only the agreement is missing"
    );
    let before = world.upstream.request_count();

    // Carl signs in DocuSign; Connect reports the completed envelope.
    let body = envelope(
        "envelope-completed",
        "completed",
        "7e6d5c4b-3a29-4f18-8e7d-6c5b4a392817",
        &[(
            "Carl@Example.com",
            "completed",
            Some(Utc::now() - Duration::minutes(1)),
        )],
    )
    .to_string();
    let (status, answer) = post_docusign(&world, &body, &[docusign_signature(KEY, &body)]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["written"], json!(["carl@example.com"]));

    // His next request is admitted, without signing in again.
    let page = browser
        .get(format!("{}/echo/work", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        world.upstream.request_count(),
        before + 1,
        "reached the app"
    );
}
