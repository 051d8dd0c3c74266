//! Boots Clearance itself in-process (on its own actix system thread) against the real services.

use crate::support::{OidcProvider, ProviderConfig, RedisServer, Upstream, free_port};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// The admin API token every test gate accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A clock that runs with the system clock, shifted by an offset the test moves forward.
#[derive(Default)]
pub struct TestClock {
    offset_secs: AtomicI64,
}

impl TestClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.offset_secs
            .fetch_add(by.num_seconds(), Ordering::SeqCst);
    }
}

impl clearance::http::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::SeqCst))
    }
}

/// A running gate.
pub struct Gate {
    pub port: u16,
    /// How many round trips the gate's store has made to Redis.
    pub round_trips: clearance::store::RoundTrips,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Gate {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts a gate with `toml` (a complete configuration).
    pub fn start_with(port: u16, toml: String) -> Self {
        let settings =
            clearance::config::from_toml_str(&toml).expect("test configuration is valid");
        Self::start_settings(port, settings)
    }

    /// Starts a gate with validated settings.
    pub fn start_settings(port: u16, settings: clearance::config::Settings) -> Self {
        Self::start_clocked(port, settings, None)
    }

    /// Starts a gate whose notion of "now" is `clock` (the system clock if `None`).
    pub fn start_clocked(
        port: u16,
        settings: clearance::config::Settings,
        clock: Option<Arc<dyn clearance::http::Clock>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let listener =
                    std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind gate port");
                let (store, round_trips) =
                    clearance::counted_redis_store(&settings).expect("redis store");
                let mut state = clearance::build_state(settings, store).expect("state");
                if let Some(clock) = clock {
                    state.clock = clock;
                }
                let server = clearance::server(state.clone(), listener).expect("server");
                tx.send((server.handle(), round_trips))
                    .expect("send handle");
                let _ = server.await;
                // As `serve` does: the last attempt to write buffered denials.
                clearance::finish(&state).await;
            });
        });
        let (handle, round_trips) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gate started");
        Self {
            port,
            round_trips,
            handle,
            thread: Some(thread),
        }
    }

    /// Starts a gate from a configuration file, as `clearance serve` does, with the file watched
    /// for changes every `poll` (no SIGHUP handler: the test process is shared).
    pub fn start_from_file(port: u16, path: std::path::PathBuf, poll: Duration) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let settings = clearance::config::load(&path).expect("test configuration is valid");
                let sha256 = hex::encode(Sha256::digest(std::fs::read(&path).expect("config")));
                let listener =
                    std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind gate port");
                let (store, round_trips) =
                    clearance::counted_redis_store(&settings).expect("redis store");
                let state = clearance::build_state(settings, store).expect("state");
                let reloader = Arc::new(clearance::reload::Reloader::new(
                    path,
                    state.clone(),
                    sha256,
                ));
                let _watch = clearance::reload::spawn(
                    reloader,
                    clearance::reload::Triggers {
                        poll: Some(poll),
                        sighup: false,
                    },
                );
                let server = clearance::server(state, listener).expect("server");
                tx.send((server.handle(), round_trips))
                    .expect("send handle");
                let _ = server.await;
            });
        });
        let (handle, round_trips) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gate started");
        Self {
            port,
            round_trips,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops the gate as SIGTERM stops `clearance serve`: no new connections, requests in flight
    /// finish. The returned future completes when the server has stopped.
    pub fn stop_gracefully(&self) -> impl std::future::Future<Output = ()> + use<> {
        self.handle.stop(true)
    }

    /// Waits until `/readyz` says the provider metadata is loaded and Redis answers.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/readyz", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gate did not become ready");
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for completion,
        // which joining the thread below does too.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The configuration tests run with. `extra` is appended (more routes, overrides by section).
/// `server_extra` goes into `[server]`.
pub fn config(
    port: u16,
    redis: &str,
    issuer: &str,
    upstream: &str,
    server_extra: &str,
    extra: &str,
) -> String {
    let admin_sha = hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes()));
    let extra = extra.replace("@UPSTREAM@", upstream);
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
upstream_timeout_ms = 2000
upstream_connect_timeout_ms = 1000
workers = 2
{server_extra}

[redis]
url = "{redis}"
key_prefix = "clearance:"
response_timeout_ms = 500
connect_timeout_ms = 500

[oidc]
issuer = "{issuer}"
client_id = "clearance"
client_secret = "clearance-secret"
scopes = ["openid", "email", "profile", "groups", "offline_access"]
jwks_refetch_cooldown_secs = 1
refresh_before_secs = 10

[session]
cookie_secret = "dGVzdC1jb29raWUtc2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWNsZWFyYW5jZQ=="

[[admin.tokens]]
name = "tests"
sha256 = "{admin_sha}"

[denials]
max_entries = 1000

[audit]
key = "test-audit-key-0123456789abcdefghijklmnop"

[[requirements]]
id = "security-awareness"
kind = "training"
title = "Security awareness training"
version = "2026.1"
validity_days = 365
url = "https://lms.example.com/courses/security"
applies_to = {{ person_types = ["employee", "contractor", "temp"] }}

[[requirements]]
id = "confidentiality-agreement"
kind = "agreement"
title = "Confidentiality agreement"
version = "1"
url = "https://sign.example.com/nda"

[[requirements]]
id = "acceptable-use-policy"
kind = "policy"
title = "Acceptable use policy"
version = "3.0"
url = "https://intranet.example.com/aup"

[[routes]]
path_prefix = "/"
upstream = "{upstream}"

[[routes]]
path_prefix = "/echo/open"
upstream = "{upstream}"
requirements = []

[[routes]]
path_prefix = "/echo/lms"
upstream = "{upstream}"
access = "induction"

[[routes]]
path_prefix = "/echo/public"
upstream = "{upstream}"
access = "public"

[[routes]]
path_prefix = "/dead"
upstream = "http://127.0.0.1:9"
requirements = []
{extra}
"#
    )
}

/// Every real service plus a gate, ready to use.
pub struct World {
    pub redis: RedisServer,
    pub provider: OidcProvider,
    pub upstream: Upstream,
    pub gate: Gate,
}

impl World {
    pub async fn start() -> Self {
        Self::start_with(|p| p, "", "").await
    }

    /// `server_extra` is added to `[server]`, `extra` to the end of the configuration.
    pub async fn start_with(
        provider_config: impl FnOnce(ProviderConfig) -> ProviderConfig,
        server_extra: &str,
        extra: &str,
    ) -> Self {
        Self::start_clocked(provider_config, server_extra, extra, None).await
    }

    /// [`World::start_with`], with the validated settings changed by `tune` before the gate
    /// starts (for settings of sections the test configuration already has, like `[oidc]`).
    pub async fn start_tuned(
        provider_config: impl FnOnce(ProviderConfig) -> ProviderConfig,
        extra: &str,
        tune: impl FnOnce(&mut clearance::config::Settings),
    ) -> Self {
        let redis = RedisServer::start().await;
        Self::boot(redis, None, provider_config, "", extra, None, tune).await
    }

    /// [`World::start_with`] with the gate's clock injected.
    pub async fn start_clocked(
        provider_config: impl FnOnce(ProviderConfig) -> ProviderConfig,
        server_extra: &str,
        extra: &str,
        clock: Option<Arc<dyn clearance::http::Clock>>,
    ) -> Self {
        let redis = RedisServer::start().await;
        Self::boot(
            redis,
            None,
            provider_config,
            server_extra,
            extra,
            clock,
            |_| {},
        )
        .await
    }

    /// Every real service plus a gate whose Redis is `topology` (a cluster, or a primary behind
    /// Sentinel); `redis` is one of its servers, kept as the world's (direct looks go to it).
    pub async fn start_on(redis: RedisServer, topology: clearance::config::RedisTopology) -> Self {
        Self::boot(redis, Some(topology), |p| p, "", "", None, |_| {}).await
    }

    /// Every real service plus a gate on `redis` (started by the caller, with its own
    /// arguments), with the validated settings changed by `tune`.
    pub async fn start_on_tuned(
        redis: RedisServer,
        tune: impl FnOnce(&mut clearance::config::Settings),
    ) -> Self {
        Self::boot(redis, None, |p| p, "", "", None, tune).await
    }

    async fn boot(
        redis: RedisServer,
        topology: Option<clearance::config::RedisTopology>,
        provider_config: impl FnOnce(ProviderConfig) -> ProviderConfig,
        server_extra: &str,
        extra: &str,
        clock: Option<Arc<dyn clearance::http::Clock>>,
        tune: impl FnOnce(&mut clearance::config::Settings),
    ) -> Self {
        let port = free_port();
        let gate_url = format!("http://127.0.0.1:{port}");
        let provider = OidcProvider::start(provider_config(ProviderConfig::standard(
            &format!("{gate_url}/oauth2/callback"),
            &format!("{gate_url}/oauth2/signed_out"),
        )))
        .await;
        let upstream = Upstream::start().await;
        let toml = config(
            port,
            &redis.url(),
            &provider.issuer(),
            &upstream.url(),
            server_extra,
            extra,
        );
        let mut settings =
            clearance::config::from_toml_str(&toml).expect("test configuration is valid");
        if let Some(topology) = topology {
            settings.redis.topology = topology;
        }
        tune(&mut settings);
        let gate = Gate::start_clocked(port, settings, clock);
        gate.wait_ready().await;
        Self {
            redis,
            provider,
            upstream,
            gate,
        }
    }

    /// Every real service plus a gate booted from the configuration file `file` (written here
    /// from [`config`] with `extra`), watched for changes every `poll`.
    pub async fn start_from_file(file: &std::path::Path, extra: &str, poll: Duration) -> Self {
        let port = free_port();
        let gate_url = format!("http://127.0.0.1:{port}");
        let redis = RedisServer::start().await;
        let provider = OidcProvider::start(ProviderConfig::standard(
            &format!("{gate_url}/oauth2/callback"),
            &format!("{gate_url}/oauth2/signed_out"),
        ))
        .await;
        let upstream = Upstream::start().await;
        let text = config(
            port,
            &redis.url(),
            &provider.issuer(),
            &upstream.url(),
            "",
            extra,
        );
        std::fs::write(file, text).expect("write the configuration file");
        let gate = Gate::start_from_file(port, file.to_owned(), poll);
        gate.wait_ready().await;
        Self {
            redis,
            provider,
            upstream,
            gate,
        }
    }

    /// The configuration this world's gate runs with, with `extra` appended.
    pub fn config_text(&self, extra: &str) -> String {
        config(
            self.gate.port,
            &self.redis.url(),
            &self.provider.issuer(),
            &self.upstream.url(),
            "",
            extra,
        )
    }

    /// Every real service plus a gate that sits behind a reverse proxy at `public_url` (the
    /// proxy's URL, with no trailing slash): the provider's client redirects to
    /// `<public_url>/oauth2/callback`. `settings` builds the gate's settings from its port and the
    /// running services, e.g. from a configuration file with their addresses put in.
    pub async fn start_behind_proxy(
        public_url: &str,
        settings: impl FnOnce(
            u16,
            &RedisServer,
            &OidcProvider,
            &Upstream,
        ) -> clearance::config::Settings,
    ) -> Self {
        let port = free_port();
        let redis = RedisServer::start().await;
        let provider = OidcProvider::start(ProviderConfig::standard(
            &format!("{public_url}/oauth2/callback"),
            &format!("{public_url}/oauth2/signed_out"),
        ))
        .await;
        let upstream = Upstream::start().await;
        let settings = settings(port, &redis, &provider, &upstream);
        let gate = Gate::start_settings(port, settings);
        gate.wait_ready().await;
        Self {
            redis,
            provider,
            upstream,
            gate,
        }
    }
}
