//! Self-service sign-off over HTTP (the real-browser version is in browser_e2e): read-to-the-end
//! enforced by the server, CSRF, acceptance evidence, decline, changes since the held version.

use crate::gate::World;
use crate::support::Browser;
use crate::{complete_everything, sign_in};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn document_config(dir: &std::path::Path, version: &str) -> (String, String) {
    let text: String = (1..=150)
        .map(|i| format!("{i}. You keep customer data confidential.\n"))
        .collect();
    let path = dir.join("code-of-conduct.md");
    std::fs::write(&path, &text).unwrap();
    let extra = format!(
        r#"
[[requirements]]
id = "code-of-conduct"
kind = "policy"
title = "Code of conduct"
version = "{version}"
document = {{ path = "{}" }}
changes = {{ "1.0" = "First version", "2.0" = "Adds rules for AI assistants" }}
"#,
        path.display()
    );
    (extra, hex::encode(Sha256::digest(text.as_bytes())))
}

fn form_fields(page: &crate::support::Response) -> crate::support::HtmlForm {
    page.forms()
        .into_iter()
        .find(|f| f.action.path() == "/.clearance/requirements/code-of-conduct")
        .expect("the accept form")
}

#[tokio::test]
async fn accepting_a_policy_needs_reading_it_and_records_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (extra, sha) = document_config(dir.path(), "1.0");
    let world = World::start_with(|p| p, "", &extra).await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/echo/open/x").await;
    complete_everything(&world, "alice@example.com").await;

    let blocked = browser
        .get(format!("{}/echo/doc?x=1", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(blocked.status, 403);
    let link = crate::links(&blocked)
        .into_iter()
        .find(|l| l.starts_with("/.clearance/requirements/code-of-conduct"))
        .expect("the block page links to the sign-off page");
    let page = browser
        .get(format!("{}{link}", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("150. You keep customer data confidential.")
    );
    assert!(page.body.contains(&sha), "the page shows the document hash");
    assert!(
        page.body
            .contains("id=\"accept\" name=\"decision\" value=\"accept\" disabled")
    );

    let form = form_fields(&page);
    // Accept before reading: refused by the server, whatever the page allowed.
    let early = browser
        .post_form(form.action.as_str(), &form.submission(Some("decision")))
        .await
        .unwrap();
    assert_eq!(early.status, 400, "{}", early.body);
    assert!(early.body.contains("document_not_read"));
    // A forged CSRF token is refused too.
    let mut forged = form.clone();
    forged.set("csrf", "forged");
    let r = browser.submit(&forged, Some("decision")).await.unwrap();
    assert_eq!(r.status, 400);

    // The page's script reports the end of the document; then Accept works.
    let read = browser
        .post_form(
            format!(
                "{}/.clearance/requirements/code-of-conduct/read",
                world.gate.url()
            ),
            &[
                ("csrf", form.field("csrf").unwrap()),
                ("token", form.field("token").unwrap()),
                ("beacon", "1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(read.status, 204, "{}", read.body);
    let mut accept_fields = form.submission(None);
    accept_fields.retain(|(k, _)| k != "decision");
    accept_fields.push(("decision".into(), "accept".into()));
    let accepted = browser
        .post_form(form.action.as_str(), &accept_fields)
        .await
        .unwrap();
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let (landed, _) = browser.follow(accepted).await.unwrap();
    assert_eq!(
        landed.status, 200,
        "back where they were going: {}",
        landed.body
    );
    let echo: Value = landed.json().unwrap();
    assert_eq!(echo["path"], "/echo/doc");
    assert_eq!(echo["query"], "x=1");

    // The record carries the evidence; the same token cannot be used twice.
    let record = crate::records(&world, "alice@example.com")
        .await
        .iter()
        .find(|r| r["requirement"] == "code-of-conduct")
        .expect("the acceptance record")
        .clone();
    assert_eq!(record["source"], "self-service");
    assert_eq!(record["version"], "1.0");
    assert_eq!(record["evidence"]["document_sha256"], sha.as_str());
    assert_eq!(record["evidence"]["client_address"], "127.0.0.1");
    assert_eq!(record["evidence"]["user_agent"], "clearance-test-browser");
    assert!(
        record["evidence"]["session"]
            .as_str()
            .is_some_and(|s| s.len() == 12)
    );
    let replay = browser
        .post_form(form.action.as_str(), &accept_fields)
        .await
        .unwrap();
    assert_eq!(replay.status, 400, "a view token works once");
}

#[tokio::test]
async fn declining_is_recorded_and_keeps_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let (extra, _) = document_config(dir.path(), "2.0");
    let world = World::start_with(|p| p, "", &extra).await;
    let browser = Browser::new();
    sign_in(&world, &browser, "carl@example.com", "/echo/open/x").await;
    complete_everything(&world, "carl@example.com").await;
    let page = browser
        .get(format!(
            "{}/.clearance/requirements/code-of-conduct?rd=/echo/x",
            world.gate.url()
        ))
        .await
        .unwrap();
    assert!(
        page.body.contains("Adds rules for AI assistants"),
        "changes are listed"
    );
    let form = form_fields(&page);
    let mut fields = form.submission(None);
    fields.retain(|(k, _)| k != "decision");
    fields.push(("decision".into(), "decline".into()));
    let declined = browser
        .post_form(form.action.as_str(), &fields)
        .await
        .unwrap();
    assert_eq!(declined.status, 200);
    assert!(declined.body.contains("You declined"));
    let still = browser
        .get(format!("{}/echo/x", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(still.status, 403);
    let last = crate::history(&world, "carl@example.com")
        .await
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["event"], "declined");
    assert_eq!(last["requirement"], "code-of-conduct");
}

#[tokio::test]
async fn url_documents_are_pinned_by_their_hash() {
    // The upstream serves the policy text at /policy.txt; World's upstream URL is only known
    // after start, so the requirement points at a fixed path on it through a second World.
    let sha = hex::encode(Sha256::digest(crate::support::policy_text().as_bytes()));
    let probe = World::start().await;
    let url = format!("{}/policy.txt", probe.upstream.url());
    let requirement = |sha: &str| {
        format!(
            r#"
[[requirements]]
id = "intranet-policy"
kind = "policy"
title = "Intranet policy"
version = "1"
document = {{ url = "{url}", sha256 = "{sha}" }}
"#
        )
    };
    let good = World::start_with(|p| p, "", &requirement(&sha)).await;
    let browser = Browser::new();
    sign_in(&good, &browser, "alice@example.com", "/echo/open/x").await;
    let page_url = format!(
        "{}/.clearance/requirements/intranet-policy?rd=/",
        good.gate.url()
    );
    let mut page = browser.get(&page_url).await.unwrap();
    for _ in 0..50 {
        if page.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        page = browser.get(&page_url).await.unwrap();
    }
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Report incidents."),
        "the fetched text is shown"
    );
    assert!(page.body.contains(&sha));

    // The published text does not match the pinned hash: withdrawn, not acceptable.
    let wrong = World::start_with(|p| p, "", &requirement(&"0".repeat(64))).await;
    let other = Browser::new();
    sign_in(&wrong, &other, "alice@example.com", "/echo/open/x").await;
    // The good world served its page within moments; this one must never do so.
    for _ in 0..20 {
        let page = other
            .get(format!(
                "{}/.clearance/requirements/intranet-policy?rd=/",
                wrong.gate.url()
            ))
            .await
            .unwrap();
        assert_eq!(page.status, 503, "{}", page.body);
        assert!(page.body.contains("document_unavailable"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(probe);
}
