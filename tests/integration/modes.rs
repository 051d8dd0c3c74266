//! Enforcement modes: `monitor` admits and logs; `warn` admits after an interstitial (once per
//! period) until its due date, then blocks.

use crate::gate::World;
use crate::support::Browser;
use crate::{complete_everything, denials, sign_in};
use serde_json::Value;

fn extra(enforce_from: &str) -> String {
    format!(
        r#"
[[requirements]]
id = "phishing-refresher"
kind = "training"
title = "Phishing refresher"
version = "1"
url = "https://lms.example.com/phishing"
enforcement = "warn"
enforce_from = "{enforce_from}"

[[requirements]]
id = "clean-desk"
kind = "policy"
title = "Clean desk policy"
version = "1"
enforcement = "monitor"
"#
    )
}

#[tokio::test]
async fn monitor_logs_and_warn_interrupts_once_until_due() {
    let world = World::start_with(|p| p, "", &extra("2099-01-01")).await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/echo/open/x").await;
    complete_everything(&world, "alice@example.com").await;

    // A browser gets the interstitial, with the due date and a way on.
    let page = browser
        .get(format!("{}/echo/w?x=1", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Please complete this soon"),
        "{}",
        page.body
    );
    assert!(page.body.contains("2099-01-01"));
    let hits = world.upstream.request_count();
    let requests = world.upstream.requests();
    assert!(
        requests.iter().all(|r| !r.contains("/echo/w")),
        "the app was not reached yet"
    );

    // API clients are not interrupted.
    let api = browser
        .get_with(
            format!("{}/echo/w", world.gate.url()),
            &[("accept", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(api.status, 200);
    let echo: Value = api.json().unwrap();
    assert_eq!(echo["path"], "/echo/w");

    // A forged form does nothing.
    let form = page.forms().into_iter().next().expect("continue form");
    let mut forged = form.clone();
    forged.set("csrf", "not-the-token");
    let r = browser.submit(&forged, None).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);

    // Continue: back to where they were going, then no interstitial for the rest of the period.
    let done = browser.submit(&form, None).await.unwrap();
    assert_eq!(done.status, 303);
    let (landed, _) = browser.follow(done).await.unwrap();
    assert_eq!(landed.status, 200, "{}", landed.body);
    let echo: Value = landed.json().unwrap();
    assert_eq!(echo["path"], "/echo/w");
    assert_eq!(echo["query"], "x=1");
    let again = browser
        .get(format!("{}/echo/y", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    assert!(world.upstream.request_count() > hits);

    // The log: monitor on every admitted request, the warning once (when shown).
    let log = denials(&world).await;
    let warned = log
        .iter()
        .filter(|d| d["event"]["missing"][0]["requirement"] == "phishing-refresher")
        .count();
    let monitored = log
        .iter()
        .filter(|d| {
            d["event"]["missing"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["requirement"] == "clean-desk")
        })
        .count();
    assert_eq!(warned, 1, "{log:?}");
    assert!(
        monitored >= 3,
        "monitor logs every admitted request: {log:?}"
    );
    assert!(log.iter().all(|d| d["event"]["would_deny_only"] == true));

    // A request that asks for `100 Continue` is judged twice (before and after its body) but
    // recorded once, as the admitted request it is.
    let session = browser
        .cookie(&world.gate.host_port(), "_clearance")
        .expect("a session");
    let head = format!(
        "POST /echo/expected HTTP/1.1\r\nHost: gate.test\r\nCookie: _clearance={session}\r\n\
         Accept: application/json\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n"
    );
    let answer = crate::support::raw::converse(world.gate.port, &head, b"data").await;
    assert_eq!(answer.first.status, 100, "{}", answer.first.text);
    assert_eq!(answer.last.map(|r| r.status), Some(200));
    let monitored = denials(&world)
        .await
        .iter()
        .filter(|d| d["event"]["path"] == "/echo/expected")
        .count();
    assert_eq!(monitored, 1, "the monitored requirement is logged once");
}

#[tokio::test]
async fn warn_blocks_from_its_due_date() {
    let world = World::start_with(|p| p, "", &extra("2020-01-01")).await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/echo/open/x").await;
    complete_everything(&world, "alice@example.com").await;
    let page = browser
        .get(format!("{}/echo/w", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(page.status, 403);
    assert_eq!(
        crate::blocked_items(&page),
        vec![(
            "phishing-refresher".to_owned(),
            "never_completed".to_owned()
        )]
    );
}
