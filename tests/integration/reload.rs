//! Hot reload: a good file takes effect under load (a new route to a new upstream), a bad file
//! is refused and the settings in force stay, nothing fails meanwhile; `clearance serve`
//! reloads on SIGHUP and writes JSON logs whose request lines carry the request id.

use crate::gate::{World, config};
use crate::metrics::{admin_section, scrape, wait_for_sample};
use crate::support::{OidcProvider, ProviderConfig, RedisServer, Upstream, free_port};
use redis::AsyncCommands as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn public_route(prefix: &str, upstream: &str) -> String {
    format!(
        "\n[[routes]]\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\naccess = \"public\"\n"
    )
}

/// GETs `url` until it answers `status`, or fails after 30 s.
async fn wait_for_status(url: &str, status: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status() == status
        {
            return r;
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Requests sent the whole time, and every one that failed with a connection error or a 5xx.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(gate: String) -> Self {
        let stop: Arc<AtomicBool> = Arc::default();
        let sent: Arc<AtomicUsize> = Arc::default();
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, n, f) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failures));
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !s.load(Ordering::SeqCst) {
                // A public route and a gated one (401 without a session): both decide.
                for path in ["/echo/public/load", "/echo/open/load"] {
                    let outcome = client.get(format!("{gate}{path}")).send().await;
                    n.fetch_add(1, Ordering::SeqCst);
                    match outcome {
                        Ok(r) if r.status().is_server_error() => {
                            f.lock().unwrap().push(format!("{path}: {}", r.status()));
                        }
                        Ok(_) => {}
                        Err(e) => f.lock().unwrap().push(format!("{path}: {e}")),
                    }
                }
            }
        });
        Self {
            stop,
            sent,
            failures,
            task,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (self.sent.load(Ordering::SeqCst), failures)
    }
}

async fn audit_log(world: &World) -> Vec<String> {
    let mut conn = crate::redis(world).await;
    conn.lrange("clearance:{/clearance}:audit:log", 0, -1)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_good_file_takes_effect_under_load_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clearance.toml");
    let admin = free_port();
    let world =
        World::start_from_file(&file, &admin_section(admin), Duration::from_millis(100)).await;
    let elsewhere = Upstream::start().await;
    let url = format!("{}/echo/reloaded/x", world.gate.url());
    let before = reqwest::get(&url).await.unwrap();
    assert_eq!(
        before.status(),
        401,
        "gated by the `/` route until the reload"
    );
    let load = Load::start(world.gate.url());

    // A good file: a new public route to an upstream the gate has never used.
    let good = world.config_text(&format!(
        "{}{}",
        admin_section(admin),
        public_route("/echo/reloaded", &elsewhere.url())
    ));
    std::fs::write(&file, &good).unwrap();
    let r = wait_for_status(&url, 200).await;
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["path"], "/echo/reloaded/x");
    assert!(
        elsewhere.request_count() >= 1,
        "the new upstream answered, not the old one"
    );
    let sha = hex::encode(Sha256::digest(good.as_bytes()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !audit_log(&world)
        .await
        .iter()
        .any(|e| e.contains("config.loaded") && e.contains(&sha))
    {
        assert!(
            Instant::now() < deadline,
            "config.loaded with the new SHA-256 in the audit trail"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reloads_ok = "clearance_config_reloads_total{result=\"ok\"}";
    wait_for_sample(admin, reloads_ok, 1.0).await;

    // A bad file: refused as a whole, the route from the good file stays.
    let bad = good
        .replacen("kind = \"training\"", "kind = \"course\"", 1)
        .replace("/echo/reloaded", "/echo/gone");
    assert_ne!(bad, good);
    std::fs::write(&file, &bad).unwrap();
    wait_for_sample(
        admin,
        "clearance_config_reloads_total{result=\"error\"}",
        1.0,
    )
    .await;
    for _ in 0..5 {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200, "the settings in force stay");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let bad_sha = hex::encode(Sha256::digest(bad.as_bytes()));
    assert!(
        !audit_log(&world).await.iter().any(|e| e.contains(&bad_sha)),
        "a refused file is not recorded as loaded"
    );
    let text = scrape(admin).await;
    assert_eq!(
        crate::metrics::sample(&text, reloads_ok),
        Some(1.0),
        "the bad file was not applied: {text}"
    );

    let (sent, failures) = load.finish().await;
    assert!(sent >= 10, "the load ran the whole time ({sent} requests)");
    assert!(failures.is_empty(), "failed during reloads: {failures:#?}");
}

/// A running `clearance serve` whose stderr goes to a file.
struct Served {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Served {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing every one of `needles`; returns that line.
    async fn wait_for_line(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_owned();
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "clearance exited:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serve_reloads_on_sighup_logs_refusals_and_writes_json_logs_with_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clearance.toml");
    let (port, admin) = (free_port(), free_port());
    let gate = format!("http://127.0.0.1:{port}");
    let redis = RedisServer::start().await;
    let provider = OidcProvider::start(ProviderConfig::standard(
        &format!("{gate}/oauth2/callback"),
        &format!("{gate}/oauth2/signed_out"),
    ))
    .await;
    let upstream = Upstream::start().await;
    let text = |extra: &str| {
        config(
            port,
            &redis.url(),
            &provider.issuer(),
            &upstream.url(),
            "",
            &format!(
                "{}\n[logging]\nformat = \"json\"\n{extra}",
                admin_section(admin)
            ),
        )
    };
    std::fs::write(&file, text("")).unwrap();
    let log = dir.path().join("stderr.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_clearance"));
    for (name, _) in std::env::vars() {
        if name.starts_with("CLEARANCE_") {
            command.env_remove(name);
        }
    }
    let child = command
        .args(["serve", "--config"])
        .arg(&file)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut served = Served { child, log };
    wait_for_status(&format!("http://127.0.0.1:{admin}/readyz"), 200).await;

    // JSON logs: the request's lines carry its id in the request span.
    let r = reqwest::get(format!("{gate}/echo/public/hello"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let line = served.wait_for_line(&["request answered", &id]).await;
    let json: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(json["span"]["request.id"], id.as_str(), "{line}");
    assert_eq!(json["span"]["http.path"], "/echo/public/hello", "{line}");
    assert_eq!(json["http.status_code"], 200, "{line}");

    // SIGHUP after a change: the new route works, the restart-only change is named.
    let hup = text(&public_route("/echo/hup", &upstream.url()))
        .replace("max_entries = 1000", "max_entries = 999");
    std::fs::write(&file, &hup).unwrap();
    let pid = served.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    served
        .wait_for_line(&["SIGHUP: reloading the configuration"])
        .await;
    wait_for_status(&format!("{gate}/echo/hup/x"), 200).await;
    served
        .wait_for_line(&["\"config.key\":\"denials.max_entries\"", "until a restart"])
        .await;

    // A bad file: the error names the key, the route stays, the process keeps serving.
    std::fs::write(
        &file,
        hup.replacen("kind = \"training\"", "kind = \"course\"", 1),
    )
    .unwrap();
    let line = served.wait_for_line(&["configuration not reloaded"]).await;
    assert!(line.contains("requirements[0].kind"), "{line}");
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    let r = reqwest::get(format!("{gate}/echo/hup/x")).await.unwrap();
    assert_eq!(r.status(), 200, "the settings in force stay");
    assert!(served.child.try_wait().unwrap().is_none(), "still serving");
}
