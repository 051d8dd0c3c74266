//! The manager pages and their API against the real services: who sees whom (403 for anyone
//! else, by URL and by API), auditors read-only, actions on cases, cases closing by themselves,
//! repeat offenders, the scorecard, and exemptions with an injected clock.

use crate::gate::{ADMIN_TOKEN, TestClock, World};
use crate::support::{Account, Browser, ProviderConfig, Response};
use crate::{complete_everything, sign_in};
use chrono::Utc;
use serde_json::{Value, json};
use std::sync::Arc;

/// Olga audits, Ada administers (and reports to Mona), Tom is on another team, Nick manages
/// nobody. Alice, Carl and Erin report to Mona (their `manager` claim).
fn people(p: ProviderConfig) -> ProviderConfig {
    p.with_account(
        "olga@example.com",
        Account::new(
            "sub-olga",
            "olga@example.com",
            "Olga Auditor",
            "employee",
            &["audit"],
            None,
        ),
    )
    .with_account(
        "ada@example.com",
        Account::new(
            "sub-ada",
            "ada@example.com",
            "Ada Admin",
            "employee",
            &["iam"],
            Some("mona@example.com"),
        ),
    )
    .with_account(
        "tom@example.com",
        Account::new(
            "sub-tom",
            "tom@example.com",
            "Tom Elsewhere",
            "employee",
            &["staff"],
            Some("zed@example.com"),
        ),
    )
    .with_account(
        "ivan@example.com",
        Account::new(
            "sub-ivan",
            "ivan@example.com",
            "Ivan Iam",
            "employee",
            &["iam"],
            None,
        ),
    )
    .with_account(
        "nick@example.com",
        Account::new(
            "sub-nick",
            "nick@example.com",
            "Nick Nobody",
            "employee",
            &["staff"],
            None,
        ),
    )
}

const MANAGE: &str = r#"
[manage]
admin_groups = ["iam"]
auditors = ["olga@example.com"]
repeat_offender_cases = 2
period_days = 30

[exemptions]
max_days = 30
break_glass_max_hours = 4
"#;

fn url(world: &World, path: &str) -> String {
    format!("{}{path}", world.gate.url())
}

/// Signs `login` in (at the manager pages) in a fresh browser.
async fn signed_in(world: &World, login: &str) -> (Browser, Response) {
    let browser = Browser::new();
    let page = sign_in(world, &browser, login, "/.clearance/manage").await;
    (browser, page)
}

/// The session's form token, from a page's first form.
fn csrf(page: &Response) -> String {
    page.forms()
        .iter()
        .find_map(|f| f.field("csrf").map(str::to_owned))
        .unwrap_or_else(|| panic!("a form with a csrf field: {}", page.body))
}

/// Requests JSON with the browser's session cookie.
async fn api_get(browser: &Browser, world: &World, path: &str) -> (u16, Value) {
    let r = browser
        .get_with(
            url(world, &format!("/.clearance/api/v1/{path}")),
            &[("accept", "application/json")],
        )
        .await
        .expect("API answers");
    (
        r.status.as_u16(),
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

async fn api_post(
    browser: &Browser,
    world: &World,
    path: &str,
    body: &Value,
    csrf: Option<&str>,
) -> (u16, Value) {
    let mut headers = vec![
        ("accept", "application/json"),
        ("content-type", "application/json"),
    ];
    if let Some(t) = csrf {
        headers.push(("x-csrf-token", t));
    }
    let r = browser
        .request(
            reqwest::Method::POST,
            url(world, &format!("/.clearance/api/v1/{path}")),
            &headers,
            Some(body.to_string().into_bytes()),
        )
        .await
        .expect("API answers");
    (
        r.status.as_u16(),
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

async fn admin(
    world: &World,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url(world, &format!("/.clearance/api/v1/{path}")))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The session's form token, as the team API gives it to cookie sessions.
async fn session_csrf(browser: &Browser, world: &World) -> String {
    let (status, team) = api_get(browser, world, "team").await;
    assert_eq!(status, 200, "{team}");
    team["csrf_token"].as_str().expect("csrf_token").to_owned()
}

fn subjects(team: &Value) -> Vec<String> {
    let mut s: Vec<String> = team["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["subject"].as_str().map(str::to_owned))
        .collect();
    s.sort();
    s
}

/// Denies `login` once on the default route (opening or counting into their case).
async fn denied(world: &World, browser: &Browser) {
    let page = browser.get(url(world, "/")).await.expect("gate answers");
    assert_eq!(page.status, 403, "{}", page.body);
}

#[tokio::test]
async fn managers_see_their_own_reports_and_act_on_cases_auditors_only_read() {
    let clock = TestClock::new();
    let world = World::start_clocked(
        people,
        "",
        MANAGE,
        Some(clock.clone() as Arc<dyn clearance::http::Clock>),
    )
    .await;

    // Alice and Tom sign in and are denied: each gets an open case.
    let alice = Browser::new();
    let landing = sign_in(&world, &alice, "alice@example.com", "/").await;
    assert_eq!(landing.status, 403);
    denied(&world, &alice).await;
    let tom = Browser::new();
    assert_eq!(
        sign_in(&world, &tom, "tom@example.com", "/").await.status,
        403
    );
    let carl = Browser::new();
    assert_eq!(
        sign_in(&world, &carl, "carl@example.com", "/").await.status,
        403
    );

    // Managers are gated like everyone else: Mona is blocked until her own induction is done.
    let (mona, page) = signed_in(&world, "mona@example.com").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("induction is not complete"),
        "{}",
        page.body
    );
    complete_everything(&world, "mona@example.com").await;

    let page = mona.get(url(&world, "/.clearance/manage")).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("data-subject=\"alice@example.com\""));
    assert!(page.body.contains("data-subject=\"carl@example.com\""));
    assert!(
        !page.body.contains("tom@example.com"),
        "another team is not shown"
    );
    assert!(page.body.contains("open case: 2 denials"), "{}", page.body);
    // Alice's cells say what is missing.
    assert!(
        page.body
            .contains("class=\"cell-missing\" data-requirement=\"security-awareness\"")
    );

    // Another team, by URL and by API: 403, whether or not the person exists.
    for who in [
        "tom%40example.com",
        "ada%40example.com",
        "nobody%40example.com",
    ] {
        let r = mona
            .get(url(&world, &format!("/.clearance/manage/people/{who}")))
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{who}: {}", r.body);
        let (status, body) = api_get(&mona, &world, &format!("people/{who}")).await;
        assert_eq!(status, 403, "{who}: {body}");
        assert_eq!(body["error"], "forbidden", "{body}");
    }
    let (status, body) = api_get(&mona, &world, "team").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        subjects(&body),
        ["alice@example.com", "carl@example.com"],
        "only Mona's reports who are known"
    );

    // Six hours after the denials, Mona records an action through the form on Alice's page.
    clock.advance(chrono::Duration::hours(6));
    let file = mona
        .get(url(&world, "/.clearance/manage/people/alice%40example.com"))
        .await
        .unwrap();
    assert_eq!(file.status, 200, "{}", file.body);
    let mut form = file
        .forms()
        .into_iter()
        .find(|f| f.action.path().ends_with("/actions"))
        .expect("the action form");
    form.set("kind", "reminded")
        .set("comment", "Asked Alice to finish the training by Friday.");
    let done = mona.submit(&form, None).await.unwrap();
    assert_eq!(done.status, 303, "{}", done.body);
    let file = mona.get(done.location().unwrap().as_str()).await.unwrap();
    assert!(file.body.contains("The action was recorded."));
    assert!(
        file.body
            .contains("Asked Alice to finish the training by Friday.")
    );
    assert!(file.body.contains(">Reminded<"));

    // A form without the session's token is refused, and nothing is written.
    let forged = mona
        .post_form(
            url(
                &world,
                "/.clearance/manage/people/alice%40example.com/actions",
            ),
            &[("csrf", "forged"), ("kind", "note"), ("comment", "x")],
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 400, "{}", forged.body);
    // So is an API write with the cookie but without X-CSRF-Token; with it, it works.
    let note = json!({"kind": "note", "comment": "Spoke in 1:1"});
    let (status, _) = api_post(
        &mona,
        &world,
        "people/alice%40example.com/actions",
        &note,
        None,
    )
    .await;
    assert_eq!(status, 400);
    let token = csrf(&file);
    let (status, body) = api_post(
        &mona,
        &world,
        "people/alice%40example.com/actions",
        &note,
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["by"], "mona@example.com");
    // Not for another team's case, even with a valid token.
    let (status, _) = api_post(
        &mona,
        &world,
        "people/tom%40example.com/actions",
        &note,
        Some(&token),
    )
    .await;
    assert_eq!(status, 403);
    // A bad kind is a 400 naming the field.
    let (status, body) = api_post(
        &mona,
        &world,
        "people/alice%40example.com/actions",
        &json!({"kind": "shouted", "comment": ""}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap_or("").contains("kind"),
        "{body}"
    );

    let (_, alice_file) = api_get(&mona, &world, "people/alice%40example.com").await;
    let actions = alice_file["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(actions.len(), 2, "{alice_file}");
    assert_eq!(actions[0]["kind"], "reminded");
    assert_eq!(actions[0]["case_id"], alice_file["open_case"]["id"]);

    // Someone who manages nobody gets a 403 with a reason.
    complete_everything(&world, "nick@example.com").await;
    let (_, page) = signed_in(&world, "nick@example.com").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("Nobody reports to you"), "{}", page.body);

    // The auditor sees everyone, and can write nothing.
    complete_everything(&world, "olga@example.com").await;
    let (olga, page) = signed_in(&world, "olga@example.com").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("tom@example.com") && page.body.contains("alice@example.com"));
    let file = olga
        .get(url(&world, "/.clearance/manage/people/alice%40example.com"))
        .await
        .unwrap();
    assert_eq!(file.status, 200);
    assert!(
        !file.forms().iter().any(|f| f.method == "POST"),
        "no forms for a read-only auditor"
    );
    let olga_token = session_csrf(&olga, &world).await;
    let write = olga
        .post_form(
            url(
                &world,
                "/.clearance/manage/people/alice%40example.com/actions",
            ),
            &[
                ("csrf", olga_token.as_str()),
                ("kind", "note"),
                ("comment", "auditor tries"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(write.status, 403, "{}", write.body);
    assert!(write.body.contains("read-only"));
    let (status, _) = api_post(
        &olga,
        &world,
        "people/alice%40example.com/exemptions",
        &json!({"days": 1, "reason": "auditor tries"}),
        Some(&olga_token),
    )
    .await;
    assert_eq!(status, 403);
    let (_, after) = api_get(&olga, &world, "people/alice%40example.com").await;
    assert_eq!(
        after["actions"].as_array().map(Vec::len),
        Some(2),
        "nothing written"
    );
    assert!(after["exemptions"].as_array().is_some_and(Vec::is_empty));

    // Evidence is for auditors and admins, not for managers.
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let query = format!("evidence/at?subject=alice%40example.com&time={now}");
    let (status, body) = api_get(&olga, &world, &query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["compliant"], false, "{body}");
    let (status, _) = api_get(&mona, &world, &query).await;
    assert_eq!(status, 403);

    // The admin token sees everyone known.
    let (status, team) = admin(&world, reqwest::Method::GET, "team", None).await;
    assert_eq!(status, 200);
    for who in [
        "alice@example.com",
        "tom@example.com",
        "mona@example.com",
        "olga@example.com",
    ] {
        assert!(subjects(&team).contains(&who.to_owned()), "{who} in {team}");
    }

    // The case closes by itself once Alice is compliant; a new denial opens a second case,
    // which makes her a repeat offender (threshold 2 in the period).
    complete_everything(&world, "alice@example.com").await;
    let (_, file) = api_get(&mona, &world, "people/alice%40example.com").await;
    assert!(file["open_case"].is_null(), "{file}");
    assert!(file["cases"][0]["closed_at"].is_string(), "{file}");
    assert_eq!(file["repeat_offender"], false);
    assert_eq!(file["compliant"], true);
    let (status, _) = admin(
        &world,
        reqwest::Method::POST,
        "revocations",
        Some(json!({"subject": "alice@example.com", "requirement": "confidentiality-agreement", "reason": "signed the wrong form"})),
    )
    .await;
    assert_eq!(status, 200);
    denied(&world, &alice).await;
    let (_, file) = api_get(&mona, &world, "people/alice%40example.com").await;
    assert_eq!(file["cases"].as_array().map(Vec::len), Some(2), "{file}");
    assert_eq!(file["repeat_offender"], true, "{file}");
    let page = mona.get(url(&world, "/.clearance/manage")).await.unwrap();
    assert!(page.body.contains("data-flag=\"repeat-offender\""));

    // Mona's scorecard: 2 people (Alice, Carl), nobody compliant; 3 cases in the period
    // (Alice's two, Carl's one), one acted on, six hours after it opened.
    let (_, team) = api_get(&mona, &world, "team").await;
    let card = &team["scorecard"];
    assert_eq!(card["team_size"], 2, "{card}");
    assert_eq!(card["compliant"], 0);
    assert_eq!(card["cases"], 3);
    assert_eq!(card["cases_acted_on"], 1);
    let median = card["median_hours_to_action"].as_f64().expect("a median");
    assert!((6.0..6.05).contains(&median), "{median}");
}

#[tokio::test]
async fn exemptions_need_someone_else_and_expire_by_themselves() {
    let clock = TestClock::new();
    let world = World::start_clocked(
        people,
        "",
        MANAGE,
        Some(clock.clone() as Arc<dyn clearance::http::Clock>),
    )
    .await;
    let alice = Browser::new();
    assert_eq!(
        sign_in(&world, &alice, "alice@example.com", "/")
            .await
            .status,
        403
    );
    complete_everything(&world, "mona@example.com").await;
    complete_everything(&world, "ada@example.com").await;
    let (mona, page) = signed_in(&world, "mona@example.com").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (ada, page) = signed_in(&world, "ada@example.com").await;
    assert_eq!(page.status, 200, "{}", page.body);

    // Mona asks for an exemption for Alice through the form: longer than allowed is refused.
    let file = mona
        .get(url(&world, "/.clearance/manage/people/alice%40example.com"))
        .await
        .unwrap();
    let form = file
        .forms()
        .into_iter()
        .find(|f| f.action.path().ends_with("/exemptions"))
        .expect("the exemption form");
    let mut too_long = form.clone();
    too_long.set("days", "31").set("reason", "on leave");
    let r = mona.submit(&too_long, None).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("at most 720 hours"), "{}", r.body);
    let mut no_reason = form.clone();
    no_reason.set("days", "1").set("reason", "  ");
    assert_eq!(mona.submit(&no_reason, None).await.unwrap().status, 400);
    let mut ok = form.clone();
    ok.set("days", "1")
        .set("reason", "Training platform outage this week");
    let r = mona.submit(&ok, None).await.unwrap();
    assert_eq!(r.status, 303, "{}", r.body);

    let (_, report) = admin(&world, reqwest::Method::GET, "exemptions", None).await;
    let id = report["exemptions"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(report["exemptions"][0]["state"], "requested");
    // Asking for it is an action on Alice's open case.
    let (_, file) = admin(
        &world,
        reqwest::Method::GET,
        "people/alice%40example.com",
        None,
    )
    .await;
    assert_eq!(file["actions"][0]["kind"], "exemption_requested", "{file}");
    assert_eq!(file["actions"][0]["by"], "mona@example.com");
    assert_eq!(file["actions"][0]["case_id"], file["open_case"]["id"]);
    // Requested is not granted: Alice is still denied.
    denied(&world, &alice).await;

    // Mona cannot approve her own request.
    let token = session_csrf(&mona, &world).await;
    let (status, body) = api_post(
        &mona,
        &world,
        &format!("exemptions/{id}"),
        &json!({"decision": "approve"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("someone other"),
        "{body}"
    );

    // Nobody exempts themselves: Ada (an admin) cannot file one for herself, not even break-glass.
    let ada_token = session_csrf(&ada, &world).await;
    let (status, body) = api_post(
        &ada,
        &world,
        "people/ada%40example.com/exemptions",
        &json!({"hours": 2, "reason": "me", "break_glass": true}),
        Some(&ada_token),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Admin API tokens name no person, so they can neither ask for nor approve exemptions
    // (one holder could otherwise ask as a person and approve as the token).
    let (status, body) = admin(
        &world,
        reqwest::Method::POST,
        "people/mona%40example.com/exemptions",
        Some(json!({"days": 2, "reason": "travel"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = admin(
        &world,
        reqwest::Method::POST,
        &format!("exemptions/{id}"),
        Some(json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(status, 403);
    // An absurd duration is a 400, not a crash.
    let (status, body) = api_post(
        &ada,
        &world,
        "people/alice%40example.com/exemptions",
        &json!({"hours": i64::MAX, "reason": "x"}),
        Some(&ada_token),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Nor their own manager: Ivan (an admin) files one for Mona; Ada, who reports to Mona, may
    // not approve it.
    complete_everything(&world, "ivan@example.com").await;
    let (ivan, page) = signed_in(&world, "ivan@example.com").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let ivan_token = session_csrf(&ivan, &world).await;
    let (status, for_mona) = api_post(
        &ivan,
        &world,
        "people/mona%40example.com/exemptions",
        &json!({"days": 2, "reason": "travel"}),
        Some(&ivan_token),
    )
    .await;
    assert_eq!(status, 201, "{for_mona}");
    let (status, body) = api_post(
        &ada,
        &world,
        &format!("exemptions/{}", for_mona["id"].as_str().unwrap_or("")),
        &json!({"decision": "approve"}),
        Some(&ada_token),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("own manager"),
        "{body}"
    );

    // Ada approves Mona's request for Alice through the report page.
    let page = ada
        .get(url(&world, "/.clearance/manage/exemptions"))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    let form = page
        .forms()
        .into_iter()
        .find(|f| f.action.path().ends_with(&id))
        .expect("the decision form");
    let mut fields = form.submission(None);
    fields.push(("decision".into(), "approve".into()));
    let r = ada.post_form(form.action.as_str(), &fields).await.unwrap();
    assert_eq!(r.status, 303, "{}", r.body);

    // Alice is admitted, and the denial log marks her "exempt until".
    let through = alice.get(url(&world, "/echo/app")).await.unwrap();
    assert_eq!(through.status, 200, "{}", through.body);
    let denials = crate::denials(&world).await;
    assert!(
        denials
            .iter()
            .any(|d| d["event"]["subject"] == "alice@example.com"
                && d["event"]["exempt_until"].is_string()
                && d["event"]["would_deny_only"] == true),
        "{denials:?}"
    );
    let (_, file) = api_get(&ada, &world, "people/alice%40example.com").await;
    assert!(file["exempt_until"].is_string(), "{file}");

    // A day and an hour later it has ended by itself: denied again, no one touched it.
    clock.advance(chrono::Duration::hours(25));
    denied(&world, &alice).await;
    let (_, file) = api_get(&ada, &world, "people/alice%40example.com").await;
    assert!(file["exempt_until"].is_null(), "{file}");

    // Break-glass: admins only, within its own shorter maximum, granted at once and reported.
    let (status, _) = api_post(
        &ada,
        &world,
        "people/alice%40example.com/exemptions",
        &json!({"hours": 5, "reason": "incident", "break_glass": true}),
        Some(&ada_token),
    )
    .await;
    assert_eq!(status, 400, "longer than break_glass_max_hours");
    let (status, bg) = api_post(
        &ada,
        &world,
        "people/alice%40example.com/exemptions",
        &json!({"hours": 2, "reason": "Incident 4711: Alice must reach the runbook", "break_glass": true}),
        Some(&ada_token),
    )
    .await;
    assert_eq!(status, 201, "{bg}");
    assert_eq!(bg["state"], "granted");
    assert_eq!(bg["decided_by"], "ada@example.com");
    assert_eq!(
        alice.get(url(&world, "/echo/app")).await.unwrap().status,
        200
    );
    let page = mona
        .get(url(&world, "/.clearance/manage/exemptions"))
        .await
        .unwrap();
    assert!(
        page.body.contains("data-break-glass=\"true\""),
        "{}",
        page.body
    );
    // Managers cannot use break-glass.
    let (status, _) = api_post(
        &mona,
        &world,
        "people/alice%40example.com/exemptions",
        &json!({"hours": 1, "reason": "x", "break_glass": true}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_manager_records_an_action_in_a_real_browser() {
    let world = World::start_with(people, "", MANAGE).await;
    let alice = Browser::new();
    assert_eq!(
        sign_in(&world, &alice, "alice@example.com", "/")
            .await
            .status,
        403
    );
    complete_everything(&world, "mona@example.com").await;

    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!(
            "{root}/tests/support/browser/node_modules/playwright-core"
        ))
        .exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium or playwright-core is missing: run scripts/install-test-deps.sh"
    );
    let output = tokio::process::Command::new("node")
        .arg(format!("{root}/tests/support/browser/manage.mjs"))
        .env("START_URL", url(&world, "/.clearance/manage"))
        .env("LOGIN", "mona@example.com")
        .env("SUBJECT", "alice@example.com")
        .env("COMMENT", "Escalated to the security team after two weeks")
        .stdin(std::process::Stdio::null())
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
    assert_eq!(seen["team"], json!(["alice@example.com"]), "{seen}");
    assert_eq!(seen["open_cases"], 1, "{seen}");
    assert_eq!(seen["after_status"], 200, "{seen}");
    assert!(
        seen["flash"].as_str().unwrap_or("").contains("recorded"),
        "{seen}"
    );
    let row = &seen["actions"][0];
    assert_eq!(row[0], "Escalated", "{seen}");
    assert_eq!(row[1], "mona@example.com");
    assert_eq!(row[3], "Escalated to the security team after two weeks");

    // And it is stored: the case carries the action, attributed to Mona.
    let (_, file) = admin(
        &world,
        reqwest::Method::GET,
        "people/alice%40example.com",
        None,
    )
    .await;
    assert_eq!(file["actions"][0]["kind"], "escalated", "{file}");
    assert_eq!(file["actions"][0]["by"], "mona@example.com");
    assert_eq!(file["actions"][0]["case_id"], file["open_case"]["id"]);
}
