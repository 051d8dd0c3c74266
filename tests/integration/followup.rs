//! Managers' follow-up and audit evidence against the real services: the SCIM directory
//! (deactivation denies everywhere), denial cases that close by themselves, and the audit chain
//! checked by `clearance audit verify`, which names the entry edited, removed or reordered.

use crate::gate::World;
use crate::support::Browser;
use crate::{complete_everything, redis, sign_in};
use redis::AsyncCommands;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SCIM_TOKEN: &str = "test-scim-token-0123456789";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn scim_config() -> String {
    format!(
        "\n[[scim.tokens]]\nname = \"entra\"\nsha256 = \"{}\"\n",
        hex::encode(Sha256::digest(SCIM_TOKEN.as_bytes()))
    )
}

async fn scim(
    world: &World,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(
            method,
            format!("{}/.clearance/scim/v2{path}", world.gate.url()),
        )
        .bearer_auth(token)
        .header("content-type", "application/scim+json");
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    let resp = r.send().await.expect("scim request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn scim_directory_feeds_managers_and_deactivation_denies_everywhere() {
    let world = World::start_with(|p| p, "", &scim_config()).await;
    use reqwest::Method;

    // Wrong token: a SCIM error body, nothing written.
    let (status, body) = scim(&world, Method::GET, "/Users", "wrong", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );

    let (status, created) = scim(
        &world,
        Method::POST,
        "/Users",
        SCIM_TOKEN,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "alice@example.com",
            "active": true,
            "userType": "Employee",
            ENTERPRISE: {"manager": {"value": "mgr@example.com"}, "department": "Finance", "employeeNumber": "42"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created[ENTERPRISE]["department"], "Finance");

    // Creating the same userName again is a uniqueness conflict.
    let (status, body) = scim(
        &world,
        Method::POST,
        "/Users",
        SCIM_TOKEN,
        Some(json!({"userName": "ALICE@example.com"})),
    )
    .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (409, Some("uniqueness"))
    );

    // A contractor without a manager needs a sponsor.
    let (status, body) = scim(
        &world,
        Method::POST,
        "/Users",
        SCIM_TOKEN,
        Some(json!({"userName": "carl@example.com", "userType": "Contractor"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap_or("").contains("sponsor"),
        "{body}"
    );

    // The IdP looks people up by userName.
    let (status, list) = scim(
        &world,
        Method::GET,
        "/Users?filter=userName%20eq%20%22alice@example.com%22",
        SCIM_TOKEN,
        None,
    )
    .await;
    assert_eq!((status, list["totalResults"].as_u64()), (200, Some(1)));

    // Alice is compliant and admitted ...
    complete_everything(&world, "alice@example.com").await;
    let browser = Browser::new();
    let page = sign_in(&world, &browser, "alice@example.com", "/echo/ok").await;
    assert_eq!(page.status, 200, "{}", page.body);

    // ... until the IdP deactivates her, the way Entra ID does (bare strings).
    let (status, patched) = scim(
        &world,
        Method::PATCH,
        &format!("/Users/{id}"),
        SCIM_TOKEN,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "boss@example.com"}
            ]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["active"], false);
    assert_eq!(patched[ENTERPRISE]["manager"]["value"], "boss@example.com");
    let before = world.upstream.request_count();
    for path in ["/echo/ok", "/echo/lms/course", "/echo/open"] {
        let r = browser
            .get(format!("{}{path}", world.gate.url()))
            .await
            .expect("gate");
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("not active"), "{path}: {}", r.body);
    }
    assert_eq!(
        world.upstream.request_count(),
        before,
        "nothing reached the app"
    );
    let denials = crate::denials(&world).await;
    assert!(
        denials
            .iter()
            .any(|d| d["event"]["inactive"] == true && d["event"]["subject"] == "alice@example.com"),
        "{denials:?}"
    );

    // Deleted over SCIM: gone from SCIM, still denied.
    let (status, _) = scim(
        &world,
        Method::DELETE,
        &format!("/Users/{id}"),
        SCIM_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = scim(
        &world,
        Method::GET,
        &format!("/Users/{id}"),
        SCIM_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let r = browser
        .get(format!("{}/echo/ok", world.gate.url()))
        .await
        .expect("gate");
    assert_eq!(r.status, 403);

    // Every directory change is in the audit trail.
    let mut conn = redis(&world).await;
    let log: Vec<String> = conn
        .lrange("clearance:{/directory}:audit:log", 0, -1)
        .await
        .unwrap();
    let changes = log
        .iter()
        .filter(|l| l.contains("\"kind\":\"directory.changed\"") && l.contains("scim:entra"))
        .count();
    assert_eq!(changes, 3, "create, patch, delete");
}

#[tokio::test]
async fn a_case_counts_denials_and_closes_once_the_person_is_compliant() {
    let world = World::start().await;
    let browser = Browser::new();
    let page = sign_in(&world, &browser, "erin@example.com", "/echo/a").await;
    assert_eq!(page.status, 403);
    for _ in 0..2 {
        let r = browser
            .get(format!("{}/echo/b", world.gate.url()))
            .await
            .expect("gate");
        assert_eq!(r.status, 403);
    }
    let mut conn = redis(&world).await;
    let cases: Vec<String> = conn
        .hvals("clearance:{erin@example.com}:cases")
        .await
        .unwrap();
    assert_eq!(cases.len(), 1, "one open case per person: {cases:?}");
    let case: Value = serde_json::from_str(&cases[0]).unwrap();
    assert_eq!(case["count"], 3);
    assert!(case["closed_at"].is_null());
    assert_eq!(case["missing"]["security-awareness"], 3);

    complete_everything(&world, "erin@example.com").await;
    let cases: Vec<String> = conn
        .hvals("clearance:{erin@example.com}:cases")
        .await
        .unwrap();
    let case: Value = serde_json::from_str(&cases[0]).unwrap();
    assert!(case["closed_at"].is_string(), "closed by itself: {case}");
    let r = browser
        .get(format!("{}/echo/c", world.gate.url()))
        .await
        .expect("gate");
    assert_eq!(r.status, 200);
}

/// Replaces the stored audit log, as someone with Redis access could.
async fn restore(conn: &mut redis::aio::MultiplexedConnection, lines: Vec<String>) {
    let key = "clearance:{b@example.com}:audit:log";
    let _: () = conn.del(key).await.unwrap();
    let _: () = conn.rpush(key, lines).await.unwrap();
}

/// Runs `clearance audit verify` against the world's Redis.
async fn verify(world: &World) -> (i32, String) {
    let (code, out, err) = crate::clearance_cli(world, None, &["audit", "verify"]).await;
    (code, format!("{out}{err}"))
}

#[tokio::test]
async fn audit_verify_catches_edits_deletions_and_reordering() {
    let world = World::start().await;
    for who in ["a@example.com", "b@example.com"] {
        complete_everything(&world, who).await;
    }
    let (code, out) = verify(&world).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 6 entries in 2 chains"), "{out}");

    // Each person's changes are a chain of their own; b's has three entries.
    let mut conn = redis(&world).await;
    let key = "clearance:{b@example.com}:audit:log";
    let original: Vec<String> = conn.lrange(key, 0, -1).await.unwrap();
    assert_eq!(original.len(), 3);
    let chain = "chain subject:b@example.com at";

    // Edited: entry 3 says another version.
    let mut edited = original.clone();
    edited[2] = edited[2].replacen("\"version\":\"3.0\"", "\"version\":\"9.0\"", 1);
    edited[2] = edited[2].replacen("\"version\":\"1.0\"", "\"version\":\"9.0\"", 1);
    edited[2] = edited[2].replacen("\"version\":\"2026.1\"", "\"version\":\"9.0\"", 1);
    assert_ne!(edited[2], original[2]);
    restore(&mut conn, edited).await;
    let (code, out) = verify(&world).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(chain) && out.contains("entry 3 (seq 3)") && out.contains("edited"),
        "{out}"
    );

    // Removed: entry 1 is gone.
    let mut removed = original.clone();
    removed.remove(0);
    restore(&mut conn, removed).await;
    let (code, out) = verify(&world).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(chain) && out.contains("entry 1 (seq 2)") && out.contains("removed"),
        "{out}"
    );

    // Reordered: entries 2 and 3 swapped.
    let mut swapped = original.clone();
    swapped.swap(1, 2);
    restore(&mut conn, swapped).await;
    let (code, out) = verify(&world).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(chain) && out.contains("entry 2 (seq 3)"),
        "{out}"
    );

    // Cut off at the end: the head still counts 3.
    let mut cut = original.clone();
    cut.pop();
    restore(&mut conn, cut).await;
    let (code, out) = verify(&world).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(chain) && out.contains("end"), "{out}");

    // Another person's whole chain put in b's place: every seal holds, but the entries are a's.
    let a_log: Vec<String> = conn
        .lrange("clearance:{a@example.com}:audit:log", 0, -1)
        .await
        .unwrap();
    let a_head: String = conn
        .get("clearance:{a@example.com}:audit:head")
        .await
        .unwrap();
    let b_head: String = conn
        .get("clearance:{b@example.com}:audit:head")
        .await
        .unwrap();
    restore(&mut conn, a_log).await;
    let _: () = conn
        .set("clearance:{b@example.com}:audit:head", &a_head)
        .await
        .unwrap();
    let (code, out) = verify(&world).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("belongs to chain subject:a@example.com"),
        "{out}"
    );

    let _: () = conn
        .set("clearance:{b@example.com}:audit:head", &b_head)
        .await
        .unwrap();
    restore(&mut conn, original).await;
    let (code, out) = verify(&world).await;
    assert_eq!(code, 0, "{out}");
}
