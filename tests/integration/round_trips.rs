//! How often a request through the gate goes to Redis (issue 7's target, counted here, never
//! timed): no round trip while the decision cache holds the person's session and standing, at
//! most one when it holds neither (a cold instance) or only the session (after an
//! invalidation), and exactly one per request with the cache off.

use crate::gate::{Gate, World};
use crate::revocation::{second_gate, second_gate_with, share_cookies};
use crate::support::Browser;
use crate::{complete_everything, record, sign_in};
use chrono::Utc;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.com";

/// Makes one request through `gate` and returns how many round trips to Redis it cost.
async fn cost(browser: &Browser, gate: &Gate, path: &str) -> u64 {
    let before = gate.round_trips.count();
    let r = browser
        .get(format!("{}{path}", gate.url()))
        .await
        .expect("gate answers");
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    gate.round_trips.count() - before
}

/// Requests through `gate` until one costs no round trip (its cache is live and warm), checking
/// that none costs more than one on the way. Fails after five seconds.
async fn until_cached(browser: &Browser, gate: &Gate, what: &str) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut costs = Vec::new();
    loop {
        let c = cost(browser, gate, "/echo/rt").await;
        costs.push(c);
        assert!(c <= 1, "{what}: a request cost {c} round trips: {costs:?}");
        if c == 0 {
            return costs;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still reading Redis on every request: {costs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cached_decision_costs_no_round_trip_and_a_miss_at_most_one() {
    let world = World::start().await;
    let browser = Browser::new();
    sign_in(&world, &browser, ALICE, "/").await;
    complete_everything(&world, ALICE).await;
    // The first admission also notes Alice's first access (once per person, ever).
    cost(&browser, &world.gate, "/echo/first").await;
    until_cached(&browser, &world.gate, "the gate that signed Alice in").await;
    for _ in 0..20 {
        assert_eq!(
            cost(&browser, &world.gate, "/echo/hit").await,
            0,
            "a warm cache answers without Redis"
        );
    }

    // A cold instance: neither the session nor the standing is cached. Its very first request
    // reads both in one round trip; once its subscription is up, it reads nothing.
    let b = second_gate(&world).await;
    share_cookies(&browser, &world, &b);
    let costs = until_cached(&browser, &b, "a second, cold gate").await;
    assert_eq!(costs[0], 1, "the first request is a miss: {costs:?}");

    // A new record invalidates the standing everywhere: the next request reads it again (one
    // round trip), the one after is served from the cache again.
    let r = record(&world, ALICE, "security-awareness", "2026.1", Utc::now()).await;
    assert_eq!(r.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let c = cost(&browser, &b, "/echo/after-record").await;
        assert!(
            c <= 1,
            "a standing miss costs at most one round trip, not {c}"
        );
        if c == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new record's invalidation did not reach the second gate"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cost(&browser, &b, "/echo/again").await, 0);

    // The cache off: every request reads the session and the standing, in one round trip.
    let c = second_gate_with(&world, "\n[cache]\nenabled = false\n").await;
    share_cookies(&browser, &world, &c);
    for _ in 0..10 {
        assert_eq!(cost(&browser, &c, "/echo/uncached").await, 1);
    }
}
