//! Clearance's own responses carry strict security headers (CSP with the one inline script
//! allowed by hash, no framing, no referrer, nosniff); what upstream apps answer does not.

use crate::gate::World;
use crate::support::{Browser, Response};
use crate::{complete_everything, sign_in};

fn assert_protected(what: &str, r: &Response) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert!(csp.contains("script-src 'sha256-"), "{what}: {csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(
        r.header("cross-origin-opener-policy"),
        Some("same-origin"),
        "{what}"
    );
}

#[tokio::test]
async fn own_pages_are_protected_and_upstream_answers_are_untouched() {
    let world = World::start().await;
    let url = |p: &str| format!("{}{p}", world.gate.url());
    let alice = Browser::new();

    // The sign-in redirect from a gated app path, and the provider hand-off.
    let first = alice.get(url("/echo/app")).await.unwrap();
    assert_eq!(first.status, 302);
    assert_protected("sign-in redirect", &first);
    let start = alice.get(url("/oauth2/start?rd=/echo/app")).await.unwrap();
    assert_protected("/oauth2/start", &start);

    // The block page on the app's own path.
    let blocked = sign_in(&world, &alice, "alice@example.com", "/echo/app").await;
    assert_eq!(blocked.status, 403);
    assert_protected("block page", &blocked);

    // A JSON error of the API, the manager pages' refusal, the health check.
    let api = Browser::new()
        .get_with(
            url("/.clearance/api/v1/denials"),
            &[("accept", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(api.status, 401);
    assert_protected("API error", &api);
    let manage = alice.get(url("/.clearance/manage")).await.unwrap();
    assert_eq!(manage.status, 403);
    assert_protected("manager pages", &manage);
    assert_protected("healthz", &alice.get(url("/healthz")).await.unwrap());

    // The upstream's own answer passes as the upstream sent it.
    complete_everything(&world, "alice@example.com").await;
    let app = alice.get(url("/echo/app")).await.unwrap();
    assert_eq!(app.status, 200, "{}", app.body);
    assert_eq!(app.header("content-security-policy"), None);
    assert_eq!(app.header("x-frame-options"), None);
}
