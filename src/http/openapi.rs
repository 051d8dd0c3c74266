//! The OpenAPI 3.1 description of Clearance's API (admin API, SCIM, xAPI, e-signature webhooks,
//! back-channel logout, forward-auth, health), served at `GET /.clearance/api/v1/openapi.json`
//! and printed by `clearance openapi`. Built from one table of operations; request and error
//! bodies are the handlers' own types (`utoipa::ToSchema`), and the result is a typed
//! `utoipa::openapi::OpenApi`, so a malformed document cannot be produced silently.

use super::error::{AppError, ErrorBody, HttpError, IntoHttp};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;
use utoipa::{PartialSchema, ToSchema};

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Access {
    /// Nobody needs to sign in.
    Public,
    /// An admin token (`[[admin.tokens]]`).
    Admin,
    /// An admin token, or a signed-in manager, admin or auditor (session cookie or access token).
    Oversight,
    /// A SCIM token (`[[scim.tokens]]`).
    Scim,
    /// LRS credentials (`[xapi]`), HTTP Basic.
    Xapi,
    /// The DocuSign Connect HMAC headers.
    DocuSign,
    /// Dropbox Sign's `event_hash` in the body (no header).
    DropboxSign,
    /// A signed-in person's session cookie (or a provider access token).
    Session,
}

/// One parameter: (name, where, required, JSON schema, description).
type Param = (&'static str, &'static str, bool, Value, &'static str);

/// One operation of the API.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    params: Vec<Param>,
    /// (media type, schema) of the request body, when there is one.
    body: Option<(&'static str, Value)>,
    /// (status, description, media type, schema) of the answers other than errors.
    ok: Vec<(&'static str, &'static str, &'static str, Value)>,
    /// Error statuses, each answered with the JSON error body (SCIM: the SCIM error body).
    errors: &'static [&'static str],
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn date_time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn object(description: &str) -> Value {
    json!({ "type": "object", "description": description })
}

fn subject_param() -> Param {
    (
        "subject",
        "path",
        true,
        string(),
        "The person's subject (the configured subject claim, e.g. an email address).",
    )
}

fn id_param(what: &'static str) -> Param {
    ("id", "path", true, string(), what)
}

fn json_ok(
    description: &'static str,
    schema: Value,
) -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![("200", description, "application/json", schema)]
}

const API_ERRORS: &[&str] = &["400", "401", "403", "404", "503"];
const WRITE_ERRORS: &[&str] = &["400", "401", "403", "404", "409", "503"];

/// Every operation the document describes, in the order of `http::configure`.
fn operations() -> Vec<Op> {
    let scim_user = schema_ref("ScimUser");
    vec![
        Op {
            method: "get",
            path: "/healthz",
            tag: "health",
            summary: "Liveness: the process answers.",
            access: Access::Public,
            params: vec![],
            body: None,
            ok: json_ok("Alive.", schema_ref("Health")),
            errors: &[],
        },
        Op {
            method: "get",
            path: "/readyz",
            tag: "health",
            summary: "Readiness: Redis answers and the provider's metadata is loaded (503 otherwise, with the same body).",
            access: Access::Public,
            params: vec![],
            body: None,
            ok: vec![
                ("200", "Ready.", "application/json", schema_ref("Readiness")),
                (
                    "503",
                    "Not ready.",
                    "application/json",
                    schema_ref("Readiness"),
                ),
            ],
            errors: &[],
        },
        Op {
            method: "post",
            path: "/oauth2/backchannel_logout",
            tag: "sign-in",
            summary: "OpenID Connect back-channel logout: the provider says a person signed out; every session of theirs ends.",
            access: Access::Public,
            params: vec![],
            body: Some((
                "application/x-www-form-urlencoded",
                json!({
                    "type": "object",
                    "required": ["logout_token"],
                    "properties": { "logout_token": { "type": "string", "description": "A logout token (JWT) signed by the provider." } }
                }),
            )),
            ok: vec![(
                "200",
                "Sessions ended.",
                "application/json",
                object("Empty or a short confirmation."),
            )],
            errors: &["400", "503"],
        },
        Op {
            method: "get",
            path: "/oauth2/auth",
            tag: "forward-auth",
            summary: "Forward-auth (the mode of forward_auth.mode): 200 with identity headers admits; 401 / 302 asks for sign-in; 403 refuses. Any method is accepted.",
            access: Access::Session,
            params: vec![],
            body: None,
            ok: vec![
                (
                    "200",
                    "Admitted; X-Auth-Request-* headers name the person.",
                    "text/plain",
                    string(),
                ),
                (
                    "302",
                    "A browser is sent to sign in (Traefik, Caddy).",
                    "text/plain",
                    string(),
                ),
            ],
            errors: &["400", "401", "403", "503"],
        },
        Op {
            method: "get",
            path: "/oauth2/auth/{mode}",
            tag: "forward-auth",
            summary: "Forward-auth in a named mode (nginx, traefik, caddy). Any method is accepted.",
            access: Access::Session,
            params: vec![(
                "mode",
                "path",
                true,
                json!({ "type": "string", "enum": ["nginx", "traefik", "caddy"] }),
                "The proxy whose contract to follow.",
            )],
            body: None,
            ok: vec![
                (
                    "200",
                    "Admitted; X-Auth-Request-* headers name the person.",
                    "text/plain",
                    string(),
                ),
                (
                    "302",
                    "A browser is sent to sign in (Traefik, Caddy).",
                    "text/plain",
                    string(),
                ),
            ],
            errors: &["400", "401", "403", "404", "503"],
        },
        Op {
            method: "post",
            path: "/.clearance/xapi/statements",
            tag: "xapi",
            summary: "xAPI statements from the LMS: completions become records, voiding statements revoke them.",
            access: Access::Xapi,
            params: vec![],
            body: Some((
                "application/json",
                json!({
                    "description": "One xAPI statement or an array of them.",
                    "oneOf": [ { "type": "object" }, { "type": "array", "items": { "type": "object" } } ]
                }),
            )),
            ok: json_ok(
                "The ids of the statements stored (xAPI), in order.",
                json!({ "type": "array", "items": { "type": "string" } }),
            ),
            errors: &["400", "401", "409", "503"],
        },
        Op {
            method: "post",
            path: "/.clearance/webhooks/docusign",
            tag: "webhooks",
            summary: "DocuSign Connect callback (JSON); verified by X-DocuSign-Signature-N HMACs over the exact body.",
            access: Access::DocuSign,
            params: vec![],
            body: Some((
                "application/json",
                object("A DocuSign Connect event (JSON, SIM or aggregate)."),
            )),
            ok: json_ok("Recorded or ignored.", schema_ref("WebhookResult")),
            errors: &["400", "401", "503"],
        },
        Op {
            method: "post",
            path: "/.clearance/webhooks/dropbox-sign",
            tag: "webhooks",
            summary: "Dropbox Sign callback (multipart form with a `json` field); verified by its event_hash (HMAC-SHA256 with the API key).",
            access: Access::DropboxSign,
            params: vec![],
            body: Some((
                "multipart/form-data",
                json!({ "type": "object", "required": ["json"], "properties": { "json": { "type": "string", "description": "The event, JSON." } } }),
            )),
            ok: vec![(
                "200",
                "Acknowledged (Dropbox Sign expects this exact text).",
                "text/plain",
                json!({ "type": "string", "enum": ["Hello API Event Received"] }),
            )],
            errors: &["400", "401", "503"],
        },
        Op {
            method: "get",
            path: "/.clearance/scim/v2/Users",
            tag: "scim",
            summary: "List directory entries (SCIM 2.0), optionally filtered by userName eq \"...\".",
            access: Access::Scim,
            params: vec![
                (
                    "filter",
                    "query",
                    false,
                    string(),
                    "Only `userName eq \"value\"` is supported.",
                ),
                (
                    "startIndex",
                    "query",
                    false,
                    json!({ "type": "integer", "minimum": 1 }),
                    "1-based index of the first result.",
                ),
                (
                    "count",
                    "query",
                    false,
                    json!({ "type": "integer", "minimum": 0 }),
                    "Page size.",
                ),
            ],
            body: None,
            ok: vec![(
                "200",
                "A SCIM ListResponse.",
                "application/scim+json",
                object("urn:ietf:params:scim:api:messages:2.0:ListResponse"),
            )],
            errors: &["400", "401", "503"],
        },
        Op {
            method: "post",
            path: "/.clearance/scim/v2/Users",
            tag: "scim",
            summary: "Create a directory entry.",
            access: Access::Scim,
            params: vec![],
            body: Some(("application/scim+json", scim_user.clone())),
            ok: vec![(
                "201",
                "Created.",
                "application/scim+json",
                scim_user.clone(),
            )],
            errors: &["400", "401", "409", "503"],
        },
        Op {
            method: "get",
            path: "/.clearance/scim/v2/Users/{id}",
            tag: "scim",
            summary: "Read a directory entry.",
            access: Access::Scim,
            params: vec![id_param("The SCIM id of the entry.")],
            body: None,
            ok: vec![(
                "200",
                "The entry.",
                "application/scim+json",
                scim_user.clone(),
            )],
            errors: &["400", "401", "404", "503"],
        },
        Op {
            method: "put",
            path: "/.clearance/scim/v2/Users/{id}",
            tag: "scim",
            summary: "Replace a directory entry.",
            access: Access::Scim,
            params: vec![id_param("The SCIM id of the entry.")],
            body: Some(("application/scim+json", scim_user.clone())),
            ok: vec![(
                "200",
                "Replaced.",
                "application/scim+json",
                scim_user.clone(),
            )],
            errors: &["400", "401", "404", "409", "503"],
        },
        Op {
            method: "patch",
            path: "/.clearance/scim/v2/Users/{id}",
            tag: "scim",
            summary: "Change a directory entry (SCIM PatchOp).",
            access: Access::Scim,
            params: vec![id_param("The SCIM id of the entry.")],
            body: Some((
                "application/scim+json",
                object("urn:ietf:params:scim:api:messages:2.0:PatchOp"),
            )),
            ok: vec![("200", "Changed.", "application/scim+json", scim_user)],
            errors: &["400", "401", "404", "409", "503"],
        },
        Op {
            method: "delete",
            path: "/.clearance/scim/v2/Users/{id}",
            tag: "scim",
            summary: "Delete a directory entry (the person is then denied everywhere).",
            access: Access::Scim,
            params: vec![id_param("The SCIM id of the entry.")],
            body: None,
            ok: vec![("204", "Deleted.", "text/plain", string())],
            errors: &["401", "404", "503"],
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/openapi.json",
            tag: "api",
            summary: "This document.",
            access: Access::Public,
            params: vec![],
            body: None,
            ok: json_ok("The OpenAPI document.", object("OpenAPI 3.1")),
            errors: &[],
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/team",
            tag: "oversight",
            summary: "The caller's team (or everyone, for admins and auditors): each person's induction state.",
            access: Access::Oversight,
            params: vec![],
            body: None,
            ok: json_ok(
                "The team view.",
                object("Members, their cells and the scorecard."),
            ),
            errors: API_ERRORS,
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/people/{subject}",
            tag: "oversight",
            summary: "A person's file: requirements, open cases, actions and exemptions.",
            access: Access::Oversight,
            params: vec![subject_param()],
            body: None,
            ok: json_ok("The person's file.", object("The person's file.")),
            errors: API_ERRORS,
        },
        Op {
            method: "post",
            path: "/.clearance/api/v1/people/{subject}/actions",
            tag: "oversight",
            summary: "Log a follow-up action (reminded, escalated ...) on the person's open case.",
            access: Access::Oversight,
            params: vec![subject_param()],
            body: Some(("application/json", schema_ref("ActionInput"))),
            ok: json_ok("The action logged.", object("The action.")),
            errors: WRITE_ERRORS,
        },
        Op {
            method: "post",
            path: "/.clearance/api/v1/people/{subject}/exemptions",
            tag: "oversight",
            summary: "Request (or, for admins, grant) a time-boxed exemption.",
            access: Access::Oversight,
            params: vec![subject_param()],
            body: Some(("application/json", schema_ref("ExemptionInput"))),
            ok: json_ok("The exemption.", object("The exemption.")),
            errors: WRITE_ERRORS,
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/exemptions",
            tag: "oversight",
            summary: "Exemptions the caller may see (pending first).",
            access: Access::Oversight,
            params: vec![],
            body: None,
            ok: json_ok(
                "The exemptions.",
                json!({ "type": "object", "properties": { "exemptions": { "type": "array", "items": { "type": "object" } } } }),
            ),
            errors: API_ERRORS,
        },
        Op {
            method: "post",
            path: "/.clearance/api/v1/exemptions/{id}",
            tag: "oversight",
            summary: "Approve, reject or revoke an exemption.",
            access: Access::Oversight,
            params: vec![id_param("The exemption's id.")],
            body: Some(("application/json", schema_ref("DecisionInput"))),
            ok: json_ok(
                "The exemption after the decision.",
                object("The exemption."),
            ),
            errors: WRITE_ERRORS,
        },
        Op {
            method: "post",
            path: "/.clearance/api/v1/records",
            tag: "records",
            summary: "Record a completion (training done, agreement signed, policy signed off).",
            access: Access::Admin,
            params: vec![],
            body: Some(("application/json", schema_ref("RecordInput"))),
            ok: vec![
                (
                    "201",
                    "Recorded.",
                    "application/json",
                    object("The record stored."),
                ),
                (
                    "200",
                    "The same record was already on file.",
                    "application/json",
                    object("The record on file."),
                ),
            ],
            errors: &["400", "401", "409", "503"],
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/subjects/{subject}",
            tag: "records",
            summary: "A subject's records and the decision for them, now or as of `at`.",
            access: Access::Admin,
            params: vec![
                subject_param(),
                (
                    "at",
                    "query",
                    false,
                    date_time(),
                    "Evaluate as of this instant, from the history (RFC 3339).",
                ),
            ],
            body: None,
            ok: json_ok("The subject's state.", schema_ref("SubjectState")),
            errors: &["400", "401", "503"],
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/subjects/{subject}/history",
            tag: "records",
            summary: "Every change to a subject's records, oldest first.",
            access: Access::Admin,
            params: vec![subject_param()],
            body: None,
            ok: json_ok(
                "The history.",
                json!({ "type": "object", "required": ["subject", "history"], "properties": { "subject": string(), "history": { "type": "array", "items": { "type": "object" } } } }),
            ),
            errors: &["400", "401", "503"],
        },
        Op {
            method: "post",
            path: "/.clearance/api/v1/subjects/{subject}/sign-out",
            tag: "revocation",
            summary: "Sign the person out everywhere: every session ends on every instance.",
            access: Access::Admin,
            params: vec![subject_param()],
            body: None,
            ok: json_ok(
                "How many sessions ended.",
                json!({ "type": "object", "required": ["subject", "sessions_ended"], "properties": { "subject": string(), "sessions_ended": { "type": "integer", "minimum": 0 } } }),
            ),
            errors: &["400", "401", "503"],
        },
        Op {
            method: "post",
            path: "/.clearance/api/v1/revocations",
            tag: "revocation",
            summary: "Withdraw a subject's current record of a requirement; they are blocked again where it applies.",
            access: Access::Admin,
            params: vec![],
            body: Some(("application/json", schema_ref("RevocationInput"))),
            ok: json_ok("The revocation.", object("The revocation stored.")),
            errors: &["400", "401", "404", "409", "503"],
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/denials",
            tag: "denials",
            summary: "The newest denials, newest first.",
            access: Access::Admin,
            params: vec![(
                "count",
                "query",
                false,
                json!({ "type": "integer", "minimum": 0 }),
                "How many (default 100, at most 1000).",
            )],
            body: None,
            ok: json_ok(
                "The denials.",
                json!({ "type": "object", "required": ["denials"], "properties": { "denials": { "type": "array", "items": { "type": "object", "properties": { "id": string(), "event": { "type": "object" } } } } } }),
            ),
            errors: &["400", "401", "503"],
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/evidence/at",
            tag: "evidence",
            summary: "Was the person compliant at this instant, and on which records?",
            access: Access::Oversight,
            params: vec![
                ("subject", "query", true, string(), "The person's subject."),
                (
                    "time",
                    "query",
                    true,
                    date_time(),
                    "The instant (RFC 3339).",
                ),
            ],
            body: None,
            ok: json_ok(
                "The evaluation at that instant.",
                object("Decision, requirements and the records it rests on."),
            ),
            errors: API_ERRORS,
        },
        Op {
            method: "get",
            path: "/.clearance/api/v1/evidence/export",
            tag: "evidence",
            summary: "Every evidence table as JSON, with the manifest.",
            access: Access::Oversight,
            params: vec![
                (
                    "from",
                    "query",
                    false,
                    date_time(),
                    "Start of the period (RFC 3339).",
                ),
                (
                    "to",
                    "query",
                    false,
                    date_time(),
                    "End of the period (RFC 3339).",
                ),
                ("subject", "query", false, string(), "Only this person."),
            ],
            body: None,
            ok: json_ok("The export.", object("Tables and manifest.")),
            errors: API_ERRORS,
        },
    ]
}

/// Per-status words of the error answers.
fn error_response(status: &str) -> Value {
    let description = match status {
        "400" => "The request is malformed (the message says what is wrong).",
        "401" => "Credentials are missing or not valid (WWW-Authenticate says which).",
        "403" => "Not allowed for this caller.",
        "404" => "Nothing by that name.",
        "409" => "It exists already, or changed meanwhile.",
        "413" => "The body is too large.",
        "429" => "Too many requests ([limits]); Retry-After says when to try again.",
        "431" => "The request head is larger than [limits] max_header_bytes.",
        _ => {
            "State (Redis) or the provider cannot be reached: Clearance fails closed; retry after Retry-After."
        }
    };
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema_ref("Error") } }
    })
}

fn scim_error_response(status: &str) -> Value {
    let mut r = error_response(status);
    r["content"] = json!({ "application/scim+json": { "schema": schema_ref("ScimError") } });
    r
}

fn security(access: Access) -> Value {
    match access {
        Access::Public => json!([]),
        Access::Admin => json!([{ "adminToken": [] }]),
        Access::Oversight => {
            json!([{ "adminToken": [] }, { "sessionCookie": [] }, { "accessToken": [] }])
        }
        Access::Scim => json!([{ "scimToken": [] }]),
        Access::Xapi => json!([{ "xapiBasic": [] }]),
        Access::DocuSign => json!([{ "docusignHmac": [] }]),
        Access::DropboxSign => json!([]),
        Access::Session => json!([{ "sessionCookie": [] }, { "accessToken": [] }]),
    }
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    for (status, description, media, schema) in &op.ok {
        responses.insert(
            (*status).to_owned(),
            json!({ "description": description, "content": { *media: { "schema": schema } } }),
        );
    }
    let scim = op.path.starts_with("/.clearance/scim/");
    // `[limits]` answers before any handler (src/http/limits.rs): every request head may be too
    // large; bodies may be too large; the API and sign-in classes are rate limited.
    let rate_limited = [
        "/.clearance/api/",
        "/.clearance/scim/",
        "/.clearance/xapi/",
        "/.clearance/webhooks/",
    ]
    .iter()
    .any(|p| op.path.starts_with(p))
        || ["/oauth2/start", "/oauth2/callback", "/oauth2/sign_out"].contains(&op.path);
    let limits = std::iter::once("431")
        .chain(op.body.is_some().then_some("413"))
        .chain(rate_limited.then_some("429"));
    for status in op.errors.iter().copied().chain(limits) {
        let r = if scim {
            scim_error_response(status)
        } else {
            error_response(status)
        };
        responses.insert(status.to_owned(), r);
    }
    let mut o = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": format!("{}{}", op.method, op.path.replace(['/', '.', '{', '}', '-'], "_")),
        "security": security(op.access),
        "responses": responses,
    });
    if !op.params.is_empty() {
        o["parameters"] = op
            .params
            .iter()
            .map(|(name, place, required, schema, description)| {
                json!({ "name": name, "in": place, "required": required, "schema": schema, "description": description })
            })
            .collect();
    }
    if let Some((media, schema)) = &op.body {
        o["requestBody"] = json!({ "required": true, "content": { *media: { "schema": schema } } });
    }
    o
}

fn derived<T: ToSchema + PartialSchema>() -> (String, Value) {
    (
        T::name().into_owned(),
        serde_json::to_value(T::schema()).unwrap_or(Value::Null),
    )
}

fn schemas() -> Map<String, Value> {
    let mut s: Map<String, Value> = [
        derived::<ErrorBody>(),
        derived::<super::api::RecordInput>(),
        derived::<super::api::RevocationInput>(),
        derived::<super::manage::ActionInput>(),
        derived::<super::manage::ExemptionInput>(),
        derived::<super::manage::DecisionInput>(),
    ]
    .into_iter()
    .collect();
    s.insert(
        "ScimError".into(),
        json!({
            "type": "object",
            "required": ["schemas", "status", "detail"],
            "properties": {
                "schemas": { "type": "array", "items": { "type": "string", "enum": ["urn:ietf:params:scim:api:messages:2.0:Error"] } },
                "status": { "type": "string" },
                "detail": { "type": "string" },
                "scimType": { "type": "string" }
            }
        }),
    );
    s.insert(
        "ScimUser".into(),
        json!({
            "type": "object",
            "required": ["userName"],
            "description": "urn:ietf:params:scim:schemas:core:2.0:User with the enterprise extension (manager, employeeNumber, department).",
            "properties": {
                "schemas": { "type": "array", "items": string() },
                "id": string(),
                "externalId": string(),
                "userName": string(),
                "active": { "type": "boolean" },
                "userType": string(),
                "displayName": string()
            }
        }),
    );
    s.insert(
        "Health".into(),
        json!({ "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": ["alive"] } } }),
    );
    s.insert(
        "Readiness".into(),
        json!({
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": { "type": "string", "enum": ["ready", "not_ready"] },
                "checks": { "type": "object", "properties": { "store": string(), "provider_metadata": string() } },
                "denial_buffer": { "type": "object", "properties": { "buffered": { "type": "integer" }, "dropped": { "type": "integer" } } }
            }
        }),
    );
    s.insert(
        "WebhookResult".into(),
        json!({ "type": "object", "required": ["result"], "properties": { "result": string(), "reason": string() } }),
    );
    s.insert(
        "SubjectState".into(),
        json!({
            "type": "object",
            "required": ["subject", "records", "requirements", "decision"],
            "properties": {
                "subject": string(),
                "at": { "type": ["string", "null"], "format": "date-time" },
                "profile_known": { "type": "boolean" },
                "profile": { "type": ["object", "null"] },
                "records": { "type": "array", "items": { "type": "object" } },
                "requirements": { "type": "array", "items": { "type": "object" } },
                "decision": {
                    "type": "object",
                    "required": ["decision"],
                    "properties": {
                        "decision": { "type": "string", "enum": ["allow", "deny"] },
                        "would_deny": { "type": "array", "items": { "type": "object" } },
                        "missing": { "type": "array", "items": { "type": "object" } }
                    }
                }
            }
        }),
    );
    s
}

fn security_schemes() -> Value {
    json!({
        "adminToken": { "type": "http", "scheme": "bearer", "description": "An admin token ([[admin.tokens]], kept as SHA-256)." },
        "scimToken": { "type": "http", "scheme": "bearer", "description": "A SCIM token ([[scim.tokens]]), apart from the admin tokens." },
        "xapiBasic": { "type": "http", "scheme": "basic", "description": "The LRS credentials of [xapi]." },
        "docusignHmac": { "type": "apiKey", "in": "header", "name": "X-DocuSign-Signature-1", "description": "Base64 HMAC-SHA256 of the exact body with a key of webhooks.docusign.hmac_keys (X-DocuSign-Signature-2 ... are tried too)." },
        "sessionCookie": { "type": "apiKey", "in": "cookie", "name": "_clearance", "description": "The sealed session cookie (session.cookie_name) set after sign-in." },
        "accessToken": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "A provider access token (with [bearer] enabled)." }
    })
}

/// The document as JSON, before it is typed.
fn raw() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in operations() {
        let item = paths.entry(op.path).or_insert_with(|| json!({}));
        item[op.method] = operation(&op);
    }
    let responses: Map<String, Value> = [
        "400", "401", "403", "404", "409", "413", "429", "431", "503",
    ]
    .iter()
    .map(|s| (format!("Error{s}"), error_response(s)))
    .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Clearance",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API of Clearance, the gate that admits people only while their security induction is current. Errors are JSON (`Error`), except under /.clearance/scim/v2 (`ScimError`).",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "tags": [
            { "name": "records", "description": "Completion records and subjects (admin token)." },
            { "name": "revocation", "description": "Withdrawing records and ending sessions." },
            { "name": "denials", "description": "The denial log." },
            { "name": "oversight", "description": "Managers, admins and auditors: team, people, actions, exemptions." },
            { "name": "evidence", "description": "Evidence for auditors." },
            { "name": "scim", "description": "SCIM 2.0 provisioning of the directory." },
            { "name": "xapi", "description": "Completions from the LMS (xAPI)." },
            { "name": "webhooks", "description": "E-signature callbacks." },
            { "name": "sign-in", "description": "OpenID Connect endpoints called by the provider." },
            { "name": "forward-auth", "description": "The decision for a proxy in front of an app." },
            { "name": "health", "description": "Liveness and readiness." },
            { "name": "api", "description": "This description." }
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "responses": responses,
            "securitySchemes": security_schemes()
        }
    })
}

/// The OpenAPI document.
pub fn document() -> Result<OpenApi, serde_json::Error> {
    serde_json::from_value(raw())
}

/// The document as pretty JSON with a final newline (what `clearance openapi` prints and
/// `docs/openapi.json` holds).
pub fn to_pretty_json() -> Result<String, serde_json::Error> {
    let mut text = document()?.to_pretty_json()?;
    text.push('\n');
    Ok(text)
}

/// `GET /.clearance/api/v1/openapi.json`: no credentials needed; it holds no secrets.
pub async fn serve(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let text = to_pretty_json()
        .map_err(|e| AppError::Internal(format!("the OpenAPI document: {e}")))
        .http(&req)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_typed_openapi_3_1_with_every_reference_resolved() {
        let doc = document().expect("typed");
        let value = serde_json::to_value(&doc).expect("json");
        assert_eq!(value["openapi"], "3.1.0");
        let text = value.to_string();
        let schemas = &value["components"]["schemas"];
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().expect("name");
            assert!(schemas.get(name).is_some(), "unresolved $ref {name}");
        }
        assert!(schemas["RecordInput"]["required"].as_array().is_some());
    }
}
