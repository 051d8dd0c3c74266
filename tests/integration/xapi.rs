//! xAPI statements from the LMS (`POST /.clearance/xapi/statements`) against the real gate and Redis:
//! completions admit people, voiding blocks them again, failures and bad batches change nothing.

use crate::gate::{ADMIN_TOKEN, World};
use crate::support::Browser;
use crate::{blocked_items, record, sign_in};
use crate::{history, records};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const LMS_USER: &str = "lms-client";
const LMS_PASSWORD: &str = "lms-password-0123456789";
const LMS_TOKEN: &str = "lms-bearer-token-0123456789";
const HOME: &str = "https://lms.example.com";
const SECURITY_COURSE: &str = "https://lms.example.com/course/security-2026";
const AUP_COURSE: &str = "https://lms.example.com/course/acceptable-use";

const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
const SATISFIED: &str = "https://w3id.org/xapi/adl/verbs/satisfied";
const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// The `[xapi]` section the gate runs with: a Basic credential, a bearer credential, two courses.
fn xapi_toml() -> String {
    let sha = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
    format!(
        r#"
[xapi]
account_home_page = "{HOME}"
credentials = [
  {{ name = "lms", username = "{LMS_USER}", sha256 = "{}" }},
  {{ name = "lms-token", sha256 = "{}" }},
]

[[xapi.activities]]
activity_id = "{SECURITY_COURSE}"
requirement = "security-awareness"
version = "2026.1"

[[xapi.activities]]
activity_id = "{AUP_COURSE}"
requirement = "acceptable-use-policy"
version = "3.0"
"#,
        sha(LMS_PASSWORD),
        sha(LMS_TOKEN)
    )
}

async fn world() -> World {
    World::start_with(|p| p, "", &xapi_toml()).await
}

fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A statement as an LMS sends it when someone passes a course with a score.
fn passed(id: &str, email: &str, course: &str, timestamp: &str) -> Value {
    json!({
        "id": id,
        "actor": { "objectType": "Agent", "name": "Learner", "mbox": format!("mailto:{email}") },
        "verb": { "id": PASSED, "display": { "en-US": "passed" } },
        "object": {
            "objectType": "Activity",
            "id": course,
            "definition": {
                "name": { "en-US": "Security awareness 2026" },
                "type": "http://adlnet.gov/expapi/activities/course"
            }
        },
        "result": {
            "score": { "scaled": 0.9, "raw": 18, "min": 0, "max": 20 },
            "success": true,
            "completion": true,
            "duration": "PT24M13S"
        },
        "context": {
            "registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
            "platform": "Example LMS",
            "language": "en-US"
        },
        "timestamp": timestamp
    })
}

/// cmi5 "satisfied" for a learner known to the LMS by an account.
fn satisfied(id: &str, account_name: &str, course: &str) -> Value {
    json!({
        "id": id,
        "actor": { "objectType": "Agent", "account": { "homePage": HOME, "name": account_name } },
        "verb": { "id": SATISFIED, "display": { "en-US": "satisfied" } },
        "object": { "objectType": "Activity", "id": course },
        "context": {
            "registration": "45f9c7b4-0f2d-4a43-9a5d-6b2a4c1d9e10",
            "contextActivities": {
                "grouping": [{ "objectType": "Activity", "id": course }],
                "category": [{ "id": "https://w3id.org/xapi/cmi5/context/categories/cmi5" }]
            },
            "extensions": { "https://w3id.org/xapi/cmi5/context/extensions/sessionid": "s-1" }
        },
        "timestamp": ago(5)
    })
}

fn verb_statement(id: &str, email: &str, verb: &str, course: &str, result: Value) -> Value {
    json!({
        "id": id,
        "actor": { "mbox": format!("mailto:{email}") },
        "verb": { "id": verb },
        "object": { "id": course },
        "result": result,
        "timestamp": ago(10)
    })
}

fn voiding(id: &str, target: &str) -> Value {
    json!({
        "id": id,
        "actor": { "objectType": "Agent", "name": "LMS admin", "mbox": "mailto:lms-admin@example.com" },
        "verb": { "id": VOIDED, "display": { "en-US": "voided" } },
        "object": { "objectType": "StatementRef", "id": target }
    })
}

fn statements_url(world: &World) -> String {
    format!("{}/.clearance/xapi/statements", world.gate.url())
}

/// Posts statements as the LMS does: Basic credentials and the version header.
async fn post(world: &World, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(statements_url(world))
        .basic_auth(LMS_USER, Some(LMS_PASSWORD))
        .header("X-Experience-API-Version", "1.0.3")
        .json(body)
        .send()
        .await
        .expect("statements endpoint answers")
}

async fn ok_ids(response: reqwest::Response) -> Vec<String> {
    let status = response.status();
    let version = response
        .headers()
        .get("x-experience-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    assert_eq!(version.as_deref(), Some("1.0.3"));
    serde_json::from_str(&body).expect("an array of statement ids")
}

async fn bad_request(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(status, 400, "{body}");
    body["message"].as_str().unwrap_or_default().to_owned()
}

fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .expect("an RFC 3339 time")
}

#[tokio::test]
async fn xapi_passed_admits_on_the_next_request_and_voiding_blocks() {
    let world = world().await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/").await;
    for (requirement, version) in [
        ("confidentiality-agreement", "1"),
        ("acceptable-use-policy", "3.0"),
    ] {
        let r = record(
            &world,
            "alice@example.com",
            requirement,
            version,
            Utc::now(),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    let app = format!("{}/echo/a", world.gate.url());
    let blocked = browser.get(&app).await.expect("gate answers");
    assert_eq!(blocked.status, 403);
    assert_eq!(
        blocked_items(&blocked),
        vec![(
            "security-awareness".to_owned(),
            "never_completed".to_owned()
        )]
    );

    let statement_id = "0b9b1b0e-6f5a-4c55-9a40-4f0e3a2d2c11";
    let timestamp = ago(30);
    let ids = ok_ids(
        post(
            &world,
            &passed(
                statement_id,
                "Alice@Example.com",
                SECURITY_COURSE,
                &timestamp,
            ),
        )
        .await,
    )
    .await;
    assert_eq!(ids, vec![statement_id]);
    let admitted = browser.get(&app).await.expect("gate answers");
    assert_eq!(admitted.status, 200, "admitted on the next request");

    let recs = records(&world, "alice@example.com").await;
    let training = recs
        .iter()
        .find(|r| r["requirement"] == "security-awareness")
        .expect("the training record");
    assert_eq!(training["source"], "xapi");
    assert_eq!(training["version"], "2026.1");
    assert_eq!(training["recorded_by"], "xapi:lms");
    assert_eq!(
        instant(&training["completed_at"]),
        instant(&json!(timestamp))
    );
    let evidence = &training["evidence"];
    assert_eq!(evidence["statement_id"], statement_id);
    assert_eq!(evidence["verb"], PASSED);
    assert_eq!(evidence["activity_id"], SECURITY_COURSE);
    assert_eq!(evidence["score"]["raw"], 18);
    assert_eq!(evidence["lrs_credential"], "lms");
    let mut redis = crate::redis(&world).await;
    let target: Option<String> =
        redis::AsyncCommands::get(&mut redis, format!("clearance:xapi:stmt:{statement_id}"))
            .await
            .expect("redis answers");
    let target: Value = serde_json::from_str(&target.expect("the statement index")).expect("JSON");
    assert_eq!(target, json!(["alice@example.com", "security-awareness"]));

    // The LMS voids the statement (here with its bearer credential): blocked again.
    let void_id = "7d3f4a39-2b8c-4a3e-8f6a-1c2d3e4f5a6b";
    let r = reqwest::Client::new()
        .post(statements_url(&world))
        .bearer_auth(LMS_TOKEN)
        .header("X-Experience-API-Version", "1.0.3")
        .json(&voiding(void_id, statement_id))
        .send()
        .await
        .expect("statements endpoint answers");
    assert_eq!(ok_ids(r).await, vec![void_id]);
    let blocked = browser.get(&app).await.expect("gate answers");
    assert_eq!(blocked.status, 403, "takes effect on the next request");
    assert_eq!(
        blocked_items(&blocked),
        vec![("security-awareness".to_owned(), "revoked".to_owned())]
    );
    let events = history(&world, "alice@example.com").await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, vec!["recorded", "recorded", "recorded", "revoked"]);
    let revoked = &events[3];
    assert_eq!(revoked["source"], "xapi");
    assert_eq!(revoked["revoked_by"], "xapi:lms-token");
    assert_eq!(revoked["evidence"]["voided_statement_id"], statement_id);
    assert_eq!(revoked["evidence"]["statement_id"], void_id);

    // The same statement id again (an LMS retry) is accepted and changes nothing; so is the
    // voiding statement again.
    let again = post(
        &world,
        &passed(statement_id, "alice@example.com", SECURITY_COURSE, &ago(1)),
    )
    .await;
    assert_eq!(ok_ids(again).await, vec![statement_id]);
    assert_eq!(
        ok_ids(post(&world, &voiding(void_id, statement_id)).await).await,
        vec![void_id]
    );
    assert_eq!(history(&world, "alice@example.com").await.len(), 4);
    let still = browser.get(&app).await.expect("gate answers");
    assert_eq!(
        still.status, 403,
        "a voided statement id cannot complete again"
    );

    // A new statement completes again; voiding the old one once more leaves it alone.
    let fresh = "c1f9a4d2-5e6b-4f70-8a1b-2c3d4e5f6a7b";
    ok_ids(
        post(
            &world,
            &passed(fresh, "alice@example.com", SECURITY_COURSE, &ago(1)),
        )
        .await,
    )
    .await;
    let void_again = "d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f60";
    ok_ids(post(&world, &voiding(void_again, statement_id)).await).await;
    let admitted = browser.get(&app).await.expect("gate answers");
    assert_eq!(
        admitted.status, 200,
        "only the voided statement's completion is withdrawn"
    );
}

#[tokio::test]
async fn xapi_batch_maps_actors_and_verbs() {
    let world = world().await;
    let batch = json!([
        // No id: the LRS assigns one.
        {
            "actor": { "account": { "homePage": HOME, "name": "Bob@Example.com" } },
            "verb": { "id": COMPLETED, "display": { "en-US": "completed" } },
            "object": { "id": SECURITY_COURSE },
            "result": { "completion": true },
            "timestamp": ago(20)
        },
        verb_statement("11111111-1111-4111-8111-111111111111", "carl@example.com", FAILED, SECURITY_COURSE,
                       json!({ "success": false, "score": { "scaled": 0.4 } })),
        verb_statement("22222222-2222-4222-8222-222222222222", "carl@example.com", COMPLETED, AUP_COURSE,
                       json!({ "success": false, "completion": true })),
        satisfied("33333333-3333-4333-8333-333333333333", "erin@example.com", AUP_COURSE),
        verb_statement("44444444-4444-4444-8444-444444444444", "erin@example.com",
                       "http://adlnet.gov/expapi/verbs/attempted", SECURITY_COURSE, json!({})),
        passed("55555555-5555-4555-8555-555555555555", "dave@example.com",
               "https://lms.example.com/course/cooking", &ago(3)),
        // Not mapped either, so an actor that names nobody is fine here.
        {
            "actor": { "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9" },
            "verb": { "id": PASSED },
            "object": { "id": "https://lms.example.com/course/cooking" }
        },
        // Voiding a statement Clearance never acted on: accepted, nothing to revoke.
        voiding("66666666-6666-4666-8666-666666666666", "55555555-5555-4555-8555-555555555555")
    ]);
    let ids = ok_ids(post(&world, &batch).await).await;
    assert_eq!(ids.len(), 8);
    assert!(
        uuid::Uuid::parse_str(&ids[0]).is_ok(),
        "assigned: {}",
        ids[0]
    );
    assert_eq!(ids[1], "11111111-1111-4111-8111-111111111111");

    let bob = records(&world, "bob@example.com").await;
    assert_eq!(bob.len(), 1, "{bob:?}");
    assert_eq!(bob[0]["requirement"], "security-awareness");
    assert_eq!(bob[0]["evidence"]["statement_id"], ids[0].as_str());
    assert_eq!(bob[0]["evidence"]["verb"], COMPLETED);

    assert!(
        history(&world, "carl@example.com").await.is_empty(),
        "failed and unsuccessful attempts complete nothing"
    );
    let erin = records(&world, "erin@example.com").await;
    assert_eq!(erin.len(), 1, "{erin:?}");
    assert_eq!(erin[0]["requirement"], "acceptable-use-policy");
    assert_eq!(erin[0]["version"], "3.0");
    assert_eq!(erin[0]["evidence"]["verb"], SATISFIED);
    assert!(history(&world, "dave@example.com").await.is_empty());

    // An empty batch is fine too.
    assert!(ok_ids(post(&world, &json!([])).await).await.is_empty());
}

#[tokio::test]
async fn xapi_refuses_bad_requests_and_writes_nothing() {
    let world = world().await;
    let good = passed(
        "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "alice@example.com",
        SECURITY_COURSE,
        &ago(5),
    );
    let client = reqwest::Client::new();

    // Credentials.
    for request in [
        client.post(statements_url(&world)),
        client
            .post(statements_url(&world))
            .basic_auth(LMS_USER, Some("wrong")),
        client
            .post(statements_url(&world))
            .basic_auth("someone-else", Some(LMS_PASSWORD)),
        client
            .post(statements_url(&world))
            .bearer_auth(LMS_PASSWORD),
        client.post(statements_url(&world)).bearer_auth(ADMIN_TOKEN),
    ] {
        let r = request
            .header("X-Experience-API-Version", "1.0.3")
            .json(&good)
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"clearance-xapi\"")
        );
    }

    // The version header.
    for version in [None, Some("0.95"), Some("2.0.0")] {
        let mut request = client
            .post(statements_url(&world))
            .basic_auth(LMS_USER, Some(LMS_PASSWORD))
            .json(&good);
        if let Some(v) = version {
            request = request.header("X-Experience-API-Version", v);
        }
        let message = bad_request(request.send().await.expect("answers")).await;
        assert!(message.contains("X-Experience-API-Version"), "{message}");
    }

    // One bad statement refuses the whole batch, naming the statement and the field.
    let mut no_verb = passed(
        "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
        "erin@example.com",
        SECURITY_COURSE,
        &ago(5),
    );
    no_verb["verb"] = json!({ "display": { "en-US": "passed" } });
    let message = bad_request(post(&world, &json!([good.clone(), no_verb])).await).await;
    assert!(message.starts_with("statements[1].verb.id:"), "{message}");

    let mut unmappable = good.clone();
    unmappable["id"] = json!("cccccccc-cccc-4ccc-8ccc-cccccccccccc");
    unmappable["actor"] = json!({ "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9" });
    let message = bad_request(post(&world, &json!([good.clone(), unmappable])).await).await;
    assert!(
        message.starts_with("statements[1].actor.mbox_sha1sum: cannot be mapped"),
        "{message}"
    );

    let mut foreign = satisfied(
        "dddddddd-dddd-4ddd-8ddd-dddddddddddd",
        "alice@example.com",
        SECURITY_COURSE,
    );
    foreign["actor"]["account"]["homePage"] = json!("https://other-lms.example.org");
    let message = bad_request(post(&world, &json!([good.clone(), foreign])).await).await;
    assert!(
        message.starts_with("statements[1].actor.account.homePage:"),
        "{message}"
    );

    let mut bad_void = voiding("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "x");
    bad_void["object"] = json!({ "objectType": "StatementRef", "id": "not-a-uuid" });
    let message = bad_request(post(&world, &json!([good.clone(), bad_void])).await).await;
    assert!(message.starts_with("statements[1].object.id:"), "{message}");

    let mut future = good.clone();
    future["timestamp"] = json!((Utc::now() + Duration::days(2)).to_rfc3339());
    let message = bad_request(post(&world, &future).await).await;
    assert!(message.starts_with("statement.timestamp:"), "{message}");

    let message = bad_request(post(&world, &json!([good.clone(), good.clone()])).await).await;
    assert!(message.starts_with("statements[1].id:"), "{message}");

    let message = bad_request(post(&world, &json!("passed")).await).await;
    assert!(message.starts_with("body:"), "{message}");
    let r = client
        .post(statements_url(&world))
        .basic_auth(LMS_USER, Some(LMS_PASSWORD))
        .header("X-Experience-API-Version", "1.0.3")
        .header("Content-Type", "application/json")
        .body("{ not json")
        .send()
        .await
        .expect("answers");
    bad_request(r).await;

    for subject in ["alice@example.com", "erin@example.com"] {
        assert!(
            history(&world, subject).await.is_empty(),
            "nothing was written for {subject}"
        );
    }
    // The good statement on its own goes through.
    ok_ids(post(&world, &good).await).await;
    assert_eq!(records(&world, "alice@example.com").await.len(), 1);
}
