//! The one integration-test binary: real redis-server, the real `oidc-provider`, a real upstream,
//! and Clearance booted in-process. Run `scripts/test.sh` (it installs what is missing).

mod support;

mod bad_input;
mod bearer_gate;
mod bearer_tokens;
mod browser_e2e;
mod csv_import;
mod demo;
mod deployment;
mod evidence;
mod failures;
mod faults;
mod followup;
mod forward_auth;
mod gate;
mod hostile;
mod identity;
mod journey;
mod manage;
mod metrics;
mod modes;
mod notify;
mod openapi;
mod proxying;
mod real_proxies;
mod reload;
mod revocation;
mod round_trips;
mod security_headers;
mod selfservice;
mod store;
mod tokens;
mod topologies;
mod webhooks;
mod xapi;

use chrono::{DateTime, Utc};
use gate::{ADMIN_TOKEN, World};
use serde_json::{Value, json};
use support::{Browser, Response, login_at_provider};

/// Opens `path` on the gate in `browser` and signs in as `login` at the provider; returns the
/// page the person lands on after the callback.
pub async fn sign_in(world: &World, browser: &Browser, login: &str, path: &str) -> Response {
    let first = browser
        .get(format!("{}{path}", world.gate.url()))
        .await
        .expect("gate answers");
    assert_eq!(
        first.status, 302,
        "unauthenticated browsers are sent to sign in: {}",
        first.body
    );
    let start = first.location().expect("Location");
    assert_eq!(start.path(), "/oauth2/start");
    login_at_provider(browser, first, login)
        .await
        .expect("signed in at the provider")
}

/// Posts a completion through the records API.
pub async fn record(
    world: &World,
    subject: &str,
    requirement: &str,
    version: &str,
    completed_at: DateTime<Utc>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/.clearance/api/v1/records", world.gate.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "subject": subject,
            "requirement": requirement,
            "version": version,
            "completed_at": completed_at,
            "source": "api",
            "evidence": { "ticket": "TEST-1" }
        }))
        .send()
        .await
        .expect("records API answers")
}

/// `/oauth2/userinfo` for the browser's session: asserts a 200 and returns its JSON.
pub async fn userinfo(world: &World, browser: &Browser) -> Value {
    let info = browser
        .get(format!("{}/oauth2/userinfo", world.gate.url()))
        .await
        .expect("userinfo answers");
    assert_eq!(info.status, 200, "{}", info.body);
    info.json().expect("userinfo JSON")
}

/// Records every requirement of the test configuration as done now.
pub async fn complete_everything(world: &World, subject: &str) {
    for (req, version) in [
        ("security-awareness", "2026.1"),
        ("confidentiality-agreement", "1"),
        ("acceptable-use-policy", "3.0"),
    ] {
        let r = record(world, subject, req, version, Utc::now()).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    }
}

/// Reads the newest denials through the admin API.
pub async fn denials(world: &World) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!(
            "{}/.clearance/api/v1/denials?count=100",
            world.gate.url()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("denials API")
        .json()
        .await
        .expect("denials JSON");
    body["denials"].as_array().cloned().unwrap_or_default()
}

/// The requirement ids listed on a blocked page, with their reasons.
pub fn blocked_items(page: &Response) -> Vec<(String, String)> {
    let html = page.html();
    let selector = scraper::Selector::parse("section[data-requirement]").expect("selector");
    html.select(&selector)
        .map(|e| {
            (
                e.value()
                    .attr("data-requirement")
                    .unwrap_or_default()
                    .to_owned(),
                e.value().attr("data-reason").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Runs the `clearance` binary against the world's Redis with the test configuration, its
/// `[redis]` server line replaced by `redis` when given (e.g. `mode = "cluster"` and `nodes`).
/// Returns the exit code, stdout and stderr.
pub async fn clearance_cli(
    world: &World,
    redis: Option<&str>,
    args: &[&str],
) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("clearance.toml");
    let mut toml = gate::config(
        support::free_port(),
        &world.redis.url(),
        "http://127.0.0.1:9/issuer",
        "http://127.0.0.1:9",
        "",
        "",
    );
    if let Some(redis) = redis {
        toml = toml.replace(&format!("url = \"{}\"", world.redis.url()), redis);
    }
    std::fs::write(&config, toml).expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_clearance"))
        .args(args)
        .arg("--config")
        .arg(&config)
        .env_remove("CLEARANCE_AUDIT__KEY")
        .output()
        .await
        .expect("run clearance");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A direct connection to the test Redis, to look at what Clearance stored.
pub async fn redis(world: &World) -> redis::aio::MultiplexedConnection {
    redis::Client::open(world.redis.url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// Every link target on a page.
pub fn links(page: &Response) -> Vec<String> {
    let html = page.html();
    let selector = scraper::Selector::parse("a[href]").expect("selector");
    html.select(&selector)
        .filter_map(|a| a.value().attr("href").map(str::to_owned))
        .collect()
}

/// GET on the admin API (`path` relative to `/.clearance/api/v1/`), as JSON.
pub async fn admin_get(world: &World, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!(
            "{}/.clearance/api/v1/{}",
            world.gate.url(),
            path.trim_start_matches('/')
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin API answers")
        .json()
        .await
        .expect("admin API JSON")
}

/// POST JSON to the admin API.
pub async fn admin_post(world: &World, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{}/.clearance/api/v1/{}",
            world.gate.url(),
            path.trim_start_matches('/')
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("admin API answers")
}

/// A subject's current records, through the admin API.
pub async fn records(world: &World, subject: &str) -> Vec<Value> {
    admin_get(world, &format!("subjects/{subject}")).await["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A subject's history, through the admin API.
pub async fn history(world: &World, subject: &str) -> Vec<Value> {
    admin_get(world, &format!("subjects/{subject}/history")).await["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
