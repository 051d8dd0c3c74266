//! The end-to-end story: sign in, blocked with three items, completions recorded, admitted with
//! clean identity headers, training back-dated so it expires, and the denials in the stream.

use crate::gate::World;
use crate::support::Browser;
use crate::{admin_get, admin_post};
use crate::{blocked_items, complete_everything, denials, record, sign_in};
use chrono::{Duration, Utc};
use serde_json::Value;

#[tokio::test]
async fn sign_in_block_complete_admit_expire_and_log() {
    let world = World::start().await;
    let browser = Browser::new();

    // 1. Unauthenticated -> provider -> signed in; 2. blocked page listing 3 items.
    let page = sign_in(&world, &browser, "alice@example.com", "/docs/page?x=1").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(
        page.url.path(),
        "/docs/page",
        "came back to where the person was going"
    );
    let mut items = blocked_items(&page);
    items.sort();
    assert_eq!(
        items,
        vec![
            (
                "acceptable-use-policy".to_owned(),
                "never_completed".to_owned()
            ),
            (
                "confidentiality-agreement".to_owned(),
                "never_completed".to_owned()
            ),
            (
                "security-awareness".to_owned(),
                "never_completed".to_owned()
            ),
        ]
    );
    let links = crate::links(&page);
    assert!(
        links
            .iter()
            .any(|l| l == "https://lms.example.com/courses/security"),
        "links to fix it: {links:?}"
    );
    assert!(
        links.iter().any(|l| l == "/oauth2/sign_out"),
        "offers sign-out / switch user"
    );
    assert!(
        page.body.contains("not an outage"),
        "never confused with an outage"
    );
    assert_eq!(
        world.upstream.request_count(),
        0,
        "nothing reached the upstream"
    );

    // The same in JSON for API clients.
    let json = browser
        .get_with(
            format!("{}/docs/page", world.gate.url()),
            &[("accept", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(json.status, 403);
    let body: Value = json.json().unwrap();
    assert_eq!(body["error"], "induction_incomplete");
    assert_eq!(body["missing"].as_array().map(Vec::len), Some(3));

    // 3. Completions through the API -> admitted on the next request, identity headers clean.
    complete_everything(&world, "alice@example.com").await;
    let spoofed = [
        ("X-Auth-Request-User", "mallory@example.com"),
        ("x_auth_request_email", "mallory@example.com"),
        ("X.Forwarded.User", "mallory@example.com"),
        ("X-FORWARDED-EMAIL", "mallory@example.com"),
        ("Remote-User", "mallory@example.com"),
        ("X-Auth-Request-Groups", "admins"),
    ];
    let admitted = browser
        .get_with(format!("{}/echo/hello?a=1", world.gate.url()), &spoofed)
        .await
        .unwrap();
    assert_eq!(admitted.status, 200, "{}", admitted.body);
    let echo: Value = admitted.json().unwrap();
    let headers = &echo["headers"];
    assert_eq!(headers["x-auth-request-user"][0], "alice@example.com");
    assert_eq!(headers["x-auth-request-email"][0], "alice@example.com");
    assert_eq!(headers["x-forwarded-user"][0], "alice@example.com");
    assert_eq!(headers["x-forwarded-email"][0], "alice@example.com");
    assert_eq!(headers["x-auth-request-groups"][0], "staff,engineering");
    assert_eq!(echo["path"], "/echo/hello");
    assert_eq!(echo["query"], "a=1");
    let all = echo["headers"].to_string();
    assert!(
        !all.contains("mallory"),
        "spoofed identity reached the upstream: {all}"
    );
    assert!(
        !all.contains("admins"),
        "spoofed groups reached the upstream: {all}"
    );
    assert!(
        !all.contains("_clearance"),
        "Clearance's own cookies are not forwarded: {all}"
    );
    for name in headers.as_object().unwrap().keys() {
        assert!(
            !name.contains('_') && !name.contains('.'),
            "odd spelling forwarded: {name}"
        );
    }

    // 4. Training back-dated beyond its validity -> blocked with "expired".
    let r = record(
        &world,
        "alice@example.com",
        "security-awareness",
        "2026.1",
        Utc::now() - Duration::days(400),
    )
    .await;
    assert_eq!(r.status(), 201);
    let expired = browser
        .get(format!("{}/docs/page", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(expired.status, 403);
    assert_eq!(
        blocked_items(&expired),
        vec![("security-awareness".to_owned(), "expired".to_owned())]
    );
    assert!(
        expired.body.contains("Expired"),
        "the page says when it expired"
    );
    let request_id = expired
        .header("x-request-id")
        .expect("request id")
        .to_owned();

    // 5. Denial entries are in the stream with all their fields.
    let log = denials(&world).await;
    assert_eq!(
        log.len(),
        3,
        "two blocked page views and the JSON request: {log:?}"
    );
    let newest = &log[0]["event"];
    assert_eq!(newest["subject"], "alice@example.com");
    assert_eq!(newest["email"], "alice@example.com");
    assert_eq!(newest["name"], "Alice Admitted");
    assert_eq!(newest["person_type"], "employee");
    assert_eq!(newest["manager"], "mona@example.com");
    assert_eq!(newest["path"], "/docs/page");
    assert_eq!(newest["request_id"], request_id.as_str());
    assert_eq!(newest["client_addr"], "127.0.0.1");
    assert_eq!(newest["user_agent"], "clearance-test-browser");
    assert!(
        newest["route"]
            .as_str()
            .unwrap()
            .contains(&world.upstream.url())
    );
    assert!(newest["time"].as_str().is_some());
    assert_eq!(newest["missing"][0]["requirement"], "security-awareness");
    assert_eq!(newest["missing"][0]["reason"], "expired");
    // And they really are in a Redis stream.
    let mut conn = crate::redis(&world).await;
    let len: usize = redis::cmd("XLEN")
        .arg("clearance:denials")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 3);
}

#[tokio::test]
async fn subject_api_shows_records_and_decision() {
    let world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, "carl@example.com", "/").await;
    let r = record(
        &world,
        "Carl@Example.com",
        "security-awareness",
        "2026.1",
        Utc::now(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let body: Value = reqwest::Client::new()
        .get(format!(
            "{}/.clearance/api/v1/subjects/carl@example.com",
            world.gate.url()
        ))
        .bearer_auth(crate::gate::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["profile_known"], true);
    assert_eq!(body["profile"]["person_type"], "contractor");
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["decision"]["decision"], "deny");
    assert_eq!(
        body["decision"]["missing"].as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn revocation_takes_effect_and_history_answers_as_of() {
    let world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/").await;
    complete_everything(&world, "alice@example.com").await;
    let ok = browser
        .get(format!("{}/echo/a", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let compliant_at = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let r = admin_post(
        &world,
        "revocations",
        serde_json::json!({"subject": "alice@example.com", "requirement": "security-awareness",
                           "reason": "completed by someone else", "evidence": {"ticket": "SEC-9"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let blocked = browser
        .get(format!("{}/echo/a", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(blocked.status, 403, "takes effect on the next request");
    assert_eq!(
        blocked_items(&blocked),
        vec![("security-awareness".to_owned(), "revoked".to_owned())]
    );

    // "Was she compliant at T, and on which records?"
    let then = admin_get(
        &world,
        &format!(
            "subjects/alice@example.com?at={}",
            percent_encoding::utf8_percent_encode(
                &compliant_at.to_rfc3339(),
                percent_encoding::NON_ALPHANUMERIC
            )
        ),
    )
    .await;
    assert_eq!(then["decision"]["decision"], "allow", "{then}");
    assert_eq!(then["records"].as_array().map(Vec::len), Some(3));
    let now = admin_get(&world, "subjects/alice@example.com").await;
    assert_eq!(now["decision"]["decision"], "deny");
    assert_eq!(now["decision"]["missing"][0]["reason"], "revoked");
    let history = admin_get(&world, "subjects/alice@example.com/history").await;
    let events: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["recorded", "recorded", "recorded", "revoked"]);
    assert_eq!(history["history"][3]["reason"], "completed by someone else");

    // A new completion supersedes the revocation.
    record(
        &world,
        "alice@example.com",
        "security-awareness",
        "2026.1",
        Utc::now(),
    )
    .await;
    let again = browser
        .get(format!("{}/echo/a", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(again.status, 200);

    // Nothing to revoke, unknown requirement, no reason.
    let r = admin_post(&world, "revocations", serde_json::json!({"subject": "bob@example.com", "requirement": "security-awareness", "reason": "x"})).await;
    assert_eq!(r.status(), 404);
    let r = admin_post(
        &world,
        "revocations",
        serde_json::json!({"subject": "alice@example.com", "requirement": "karate", "reason": "x"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = admin_post(&world, "revocations", serde_json::json!({"subject": "alice@example.com", "requirement": "security-awareness", "reason": " "})).await;
    assert_eq!(r.status(), 400);
}

/// Clearance's endpoints sit under the `/oauth2` and `/.clearance` scopes: a path under
/// `/oauth2` that names no endpoint is still the gate's (gated and proxied like any other), one
/// under `/.clearance` is a 404, and the endpoints themselves still answer.
#[tokio::test]
async fn paths_beside_clearances_own_endpoints() {
    let world = World::start().await;
    let browser = Browser::new();
    let anonymous = browser
        .get(format!("{}/oauth2/not-an-endpoint", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(anonymous.status, 302, "gated: {}", anonymous.body);
    assert_eq!(anonymous.location().unwrap().path(), "/oauth2/start");

    sign_in(&world, &browser, "alice@example.com", "/").await;
    complete_everything(&world, "alice@example.com").await;
    for path in [
        "/oauth2/not-an-endpoint",
        "/oauth2",
        "/oauth2auth",
        "/.clearancex",
    ] {
        let r = browser
            .get(format!("{}{path}?q=1", world.gate.url()))
            .await
            .unwrap();
        // The test upstream serves /echo only: its 404 shows the request was proxied.
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(
            world.upstream.requests().last().map(String::as_str),
            Some(format!("GET {path}?q=1").as_str()),
            "proxied as asked"
        );
    }
    let own = browser
        .get(format!("{}/.clearance/not-an-endpoint", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(own.status, 404);
    assert!(
        !world
            .upstream
            .requests()
            .iter()
            .any(|r| r.contains("/.clearance/")),
        "Clearance's own paths never reach the upstream"
    );
    let info = crate::userinfo(&world, &browser).await;
    assert_eq!(info["email"], "alice@example.com");
}
