//! The real browser: headless Chromium (Debian's, driven by playwright-core) signs in at the
//! real provider, sees the block page, opens the policy, finds Accept disabled until the end is
//! reached, accepts, and lands on the upstream. Then the policy's major version is bumped and,
//! once the grace period is over, the person is blocked again.

use crate::gate::{Gate, World, config};
use crate::selfservice::document_config;
use crate::support::free_port;
use crate::{admin_get, complete_everything, records};
use serde_json::Value;
use std::process::Stdio;

#[tokio::test]
async fn a_person_accepts_a_policy_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (extra, sha) = document_config(dir.path(), "1.0");
    let world = World::start_with(|p| p, "", &extra).await;
    complete_everything(&world, "alice@example.com").await;

    let root = env!("CARGO_MANIFEST_DIR");
    let driver = format!("{root}/tests/support/browser/signoff.mjs");
    assert!(
        std::path::Path::new(&format!(
            "{root}/tests/support/browser/node_modules/playwright-core"
        ))
        .exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium or playwright-core is missing: run scripts/install-test-deps.sh"
    );
    let output = tokio::process::Command::new("node")
        .arg(&driver)
        .env("START_URL", format!("{}/echo/after?x=1", world.gate.url()))
        .env("LOGIN", "alice@example.com")
        .env("REQUIREMENT", "code-of-conduct")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stderr}\n{stdout}"
    );
    let seen: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");

    assert_eq!(
        seen["blocked_items"],
        serde_json::json!([["code-of-conduct", "never_completed"]]),
        "{seen}"
    );
    assert_eq!(seen["accept_disabled_before_scroll"], true);
    assert_eq!(seen["accept_enabled_after_scroll"], true);
    assert_eq!(seen["final_status"], 200, "{seen}");
    let final_url = url::Url::parse(seen["final_url"].as_str().unwrap()).unwrap();
    assert_eq!(final_url.path(), "/echo/after");
    assert_eq!(final_url.query(), Some("x=1"));
    let body = seen["final_body_excerpt"].as_str().unwrap();
    assert!(
        body.contains("alice@example.com"),
        "the upstream saw Alice: {body}"
    );

    let record = records(&world, "alice@example.com")
        .await
        .into_iter()
        .find(|r| r["requirement"] == "code-of-conduct")
        .expect("the acceptance record");
    assert_eq!(record["source"], "self-service");
    assert_eq!(record["evidence"]["document_sha256"], sha.as_str());
    assert!(
        record["evidence"]["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.contains("Chrome"))
    );

    // A new major version with a one-day grace that started two days ago: blocked again.
    let since = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let (bumped, _) = document_config(dir.path(), "2.0");
    let bumped = bumped.replace(
        "version = \"2.0\"",
        &format!("version = \"2.0\"\nversion_since = \"{since}\"\ngrace_days = 1"),
    );
    let port = free_port();
    let gate = Gate::start_with(
        port,
        config(
            port,
            &world.redis.url(),
            &world.provider.issuer(),
            &world.upstream.url(),
            "",
            &bumped,
        ),
    );
    gate.wait_ready().await;
    let second = World { gate, ..world };
    let subject = admin_get(&second, "subjects/alice@example.com").await;
    assert_eq!(subject["decision"]["decision"], "deny", "{subject}");
    assert_eq!(
        subject["decision"]["missing"][0]["requirement"],
        "code-of-conduct"
    );
    assert_eq!(
        subject["decision"]["missing"][0]["reason"],
        "outdated_version"
    );
}
