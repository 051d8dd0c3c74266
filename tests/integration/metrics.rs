//! Prometheus metrics on the admin listener: decision counters that move with allowed and
//! refused requests, latency histograms, Redis and upstream metrics; nothing on the public
//! listener; the request id the client sees is the one the upstream got.

use crate::gate::World;
use crate::support::{Browser, free_port};
use crate::{complete_everything, sign_in};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The admin listener's `/metrics` text.
pub async fn scrape(admin_port: u16) -> String {
    let r = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .await
        .expect("the admin listener answers");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "Prometheus text format"
    );
    r.text().await.unwrap()
}

/// The value of the sample `line_prefix` (metric name with its exact label set), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A route prefix no other test uses, so that its counters move only with this test.
fn unique_prefix() -> String {
    format!("/m{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// An `[admin]` section putting the admin listener on `port`.
pub fn admin_section(port: u16) -> String {
    format!("\n[admin]\nlisten = \"127.0.0.1:{port}\"\n")
}

#[tokio::test]
async fn decisions_latency_redis_and_upstreams_on_the_admin_listener_only() {
    let admin = free_port();
    let p = unique_prefix();
    let world = World::start_with(
        |c| c,
        "",
        &format!(
            r#"
[[routes]]
path_prefix = "{p}/open"
upstream = "@UPSTREAM@"
requirements = []

[[routes]]
path_prefix = "{p}/gated"
upstream = "@UPSTREAM@"
{admin}"#,
            admin = admin_section(admin)
        ),
    )
    .await;
    let browser = Browser::new();

    // Not signed in -> sign in -> refused (nothing done yet) -> completed -> admitted.
    let page = sign_in(
        &world,
        &browser,
        "alice@example.com",
        &format!("{p}/gated/x"),
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let open = browser
        .get(format!("{}{p}/open/x", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(
        open.status, 404,
        "the upstream's own answer for an unknown path"
    );
    complete_everything(&world, "alice@example.com").await;
    let admitted = browser
        .get(format!("{}{p}/gated/x", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(
        admitted.status, 404,
        "admitted; the upstream has no such page"
    );

    let text = scrape(admin).await;
    let gated = format!("*{p}/gated");
    let open_route = format!("*{p}/open");
    for (series, expected) in [
        (
            format!(
                "clearance_decisions_total{{outcome=\"sign_in\",reason=\"sign_in_required\",route=\"{gated}\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "clearance_decisions_total{{outcome=\"deny\",reason=\"never_completed\",route=\"{gated}\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "clearance_decisions_total{{outcome=\"allow\",reason=\"none\",route=\"{gated}\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "clearance_decisions_total{{outcome=\"allow\",reason=\"none\",route=\"{open_route}\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "clearance_upstream_responses_total{{upstream=\"{}\",status_class=\"4xx\"}}",
                world.upstream.url()
            ),
            2.0,
        ),
    ] {
        assert_eq!(
            sample(&text, &series),
            Some(expected),
            "{series} in\n{text}"
        );
    }
    // No other outcome was counted for these routes.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("clearance_decisions_total") && l.contains(&p))
        .collect();
    assert_eq!(ours.len(), 4, "{ours:#?}");

    // Latency histograms with their buckets, by handler and status class.
    for series in [
        "clearance_request_duration_seconds_bucket{le=\"+Inf\",handler=\"proxy\",status_class=\"4xx\"}",
        "clearance_request_duration_seconds_bucket{le=\"+Inf\",handler=\"proxy\",status_class=\"3xx\"}",
        "clearance_request_duration_seconds_bucket{le=\"+Inf\",handler=\"sign_in\",status_class=\"3xx\"}",
    ] {
        assert!(
            sample(&text, series).is_some_and(|n| n >= 1.0),
            "{series} in\n{text}"
        );
    }
    assert!(text.contains("# TYPE clearance_request_duration_seconds histogram"));
    // Redis round trips: the standing read is a pipeline, sessions are GET.
    for series in [
        "clearance_redis_command_duration_seconds_count{command=\"pipeline\"}",
        "clearance_redis_command_duration_seconds_count{command=\"GET\"}",
    ] {
        assert!(
            sample(&text, series).is_some_and(|n| n >= 1.0),
            "{series} in\n{text}"
        );
    }
    for name in [
        "clearance_sessions_live",
        "clearance_cache_entries",
        "clearance_notification_queue_depth",
        "clearance_denial_log_failures",
        "clearance_config_reloads",
        "clearance_config_last_reload_success_timestamp_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} declared");
    }

    // The admin listener serves health checks, and nothing of the gate.
    let client = reqwest::Client::new();
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/oauth2/start", 404)] {
        let r = client
            .get(format!("http://127.0.0.1:{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path} on the admin listener");
    }
    let r = client
        .get(format!("http://127.0.0.1:{admin}{p}/open/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "routes are not reachable through the admin listener"
    );

    // The public listener does not serve metrics: /metrics is an ordinary gated path there.
    let public = client
        .get(format!("{}/metrics", world.gate.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 401);
    assert!(
        !public
            .text()
            .await
            .unwrap()
            .contains("clearance_decisions_total")
    );
    let signed_in = browser
        .get(format!("{}/metrics", world.gate.url()))
        .await
        .unwrap();
    assert!(
        !signed_in.body.contains("clearance_"),
        "proxied to the upstream, never Clearance's metrics: {}",
        signed_in.body
    );

    // Live sessions are counted from the session index; signing out takes one off.
    let store =
        clearance::redis_store(&clearance::config::from_toml_str(&world.config_text("")).unwrap())
            .unwrap();
    let live = store.live_sessions(chrono::Utc::now()).await.unwrap();
    assert_eq!(live, 1, "alice's session");
    clearance::metrics::refresh_gauges(store.as_ref()).await;
    let r = browser
        .get(format!("{}/oauth2/sign_out", world.gate.url()))
        .await
        .unwrap();
    assert!(r.status.is_redirection(), "{}", r.body);
    assert_eq!(store.live_sessions(chrono::Utc::now()).await.unwrap(), 0);
}

#[tokio::test]
async fn redis_errors_are_counted_and_the_decision_fails_closed() {
    let admin = free_port();
    let p = unique_prefix();
    let mut world = World::start_with(
        |c| c,
        "",
        &format!(
            // Without the cache, so that the request after Redis stopped has to read it.
            "\n[cache]\nenabled = false\n\n[[routes]]\npath_prefix = \"{p}\"\nupstream = \"@UPSTREAM@\"\n{}",
            admin_section(admin)
        ),
    )
    .await;
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", &format!("{p}/x")).await;
    let before = scrape(admin).await;
    let errors = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("clearance_redis_errors_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    world.redis.stop().await;
    let r = browser
        .get(format!("{}{p}/x", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "state that cannot be read never admits");
    let after = scrape(admin).await;
    assert!(
        errors(&after) > errors(&before),
        "Redis errors counted:\n{after}"
    );
    assert_eq!(
        sample(
            &after,
            &format!(
                "clearance_decisions_total{{outcome=\"error\",reason=\"state_unavailable\",route=\"*{p}\"}}"
            )
        ),
        Some(1.0),
        "{after}"
    );
}

#[tokio::test]
async fn the_upstream_gets_the_request_id_the_client_sees_and_client_ids_are_replaced() {
    let world = World::start().await;
    let client = reqwest::Client::new();
    for sent in [None, Some("client-chosen-id")] {
        let mut req = client.get(format!("{}/echo/public/id", world.gate.url()));
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let seen = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let echo: Value = r.json().await.unwrap();
        assert_eq!(
            echo["headers"]["x-request-id"],
            serde_json::json!([seen.clone()]),
            "exactly one id upstream, the client's"
        );
        assert!(uuid::Uuid::parse_str(&seen).is_ok(), "a fresh UUID: {seen}");
        assert_ne!(Some(seen.as_str()), sent, "a client cannot choose its id");
    }
}

#[tokio::test]
async fn a_trusted_proxys_safe_request_id_is_kept() {
    let world = World::start_with(|c| c, "trusted_proxies = [\"127.0.0.1\"]", "").await;
    let client = reqwest::Client::new();
    for (sent, kept) in [
        ("nginx-4f1c2a9e.77", true),
        ("two words", false),
        (&*"x".repeat(200), false),
    ] {
        let r = client
            .get(format!("{}/echo/public/id", world.gate.url()))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let seen = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let echo: Value = r.json().await.unwrap();
        assert_eq!(echo["headers"]["x-request-id"], serde_json::json!([seen]));
        assert_eq!(seen == sent, kept, "{sent:?} -> {seen:?}");
    }
}

/// Polls `/metrics` until `series` reaches `at_least`, or fails after 30 s.
pub async fn wait_for_sample(admin_port: u16, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(admin_port).await;
        if sample(&text, series).is_some_and(|n| n >= at_least) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_tokens_guard_the_exposition() {
    use sha2::{Digest, Sha256};
    let admin = free_port();
    let token = "prometheus-scrape-token-42";
    let world = World::start_with(
        |c| c,
        "",
        &format!(
            "{}\n[[admin.metrics_tokens]]\nname = \"prometheus\"\nsha256 = \"{}\"\n",
            admin_section(admin),
            hex::encode(Sha256::digest(token.as_bytes()))
        ),
    )
    .await;
    let url = format!("http://127.0.0.1:{admin}/metrics");
    let client = reqwest::Client::new();
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(!anonymous.text().await.unwrap().contains("clearance_"));
    let wrong = client.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("# TYPE clearance_sessions_live gauge")
    );
    let health = client
        .get(format!("http://127.0.0.1:{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health checks stay open for probes");
    drop(world);
}
