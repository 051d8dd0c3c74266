//! Prometheus metrics: one process-wide registry, small recording functions the rest of the code
//! calls, and the text exposition served on the admin listener's `/metrics`.
//!
//! Every label value is bounded: routes are named by their configured host and path prefix
//! (never a request path), requirements by their configured id, Redis commands by their name
//! (which comes from code), status codes by class. Counters get `_total` appended by
//! `prometheus-client` when they are encoded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    reason: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnmetLabels {
    requirement: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    handler: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedisErrorLabels {
    command: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s: Redis round trips, decisions and proxied requests all fit.
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

fn redis_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    ])
}

struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    unmet: Family<UnmetLabels, Counter>,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    upstream_responses: Family<UpstreamLabels, Counter>,
    upstream_duration: Family<CommandLabels, Histogram, fn() -> Histogram>,
    redis_duration: Family<CommandLabels, Histogram, fn() -> Histogram>,
    redis_errors: Family<RedisErrorLabels, Counter>,
    cache_hits: Family<KindLabels, Counter>,
    limited: Family<KindLabels, Counter>,
    cache_misses: Family<KindLabels, Counter>,
    sessions_live: Gauge,
    store_writable: Gauge,
    cache_entries: Family<KindLabels, Gauge>,
    notification_queue: Gauge,
    denial_log_failures: Counter,
    config_reloads: Family<ResultLabels, Counter>,
    config_last_reload: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let m = Metrics {
        registry: Registry::default(),
        decisions: Family::default(),
        unmet: Family::default(),
        requests: Family::new_with_constructor(latency_histogram),
        upstream_responses: Family::default(),
        upstream_duration: Family::new_with_constructor(latency_histogram),
        redis_duration: Family::new_with_constructor(redis_histogram),
        redis_errors: Family::default(),
        cache_hits: Family::default(),
        limited: Family::default(),
        cache_misses: Family::default(),
        sessions_live: Gauge::default(),
        store_writable: Gauge::default(),
        cache_entries: Family::default(),
        notification_queue: Gauge::default(),
        denial_log_failures: Counter::default(),
        config_reloads: Family::default(),
        config_last_reload: Gauge::default(),
    };
    // Writable until a probe says otherwise.
    m.store_writable.set(1);
    registry.register(
        "clearance_decisions",
        "Gate decisions by outcome, reason (of the first unmet requirement) and configured route",
        m.decisions.clone(),
    );
    registry.register(
        "clearance_unmet_requirements",
        "Unmet requirements in refusals and would-deny decisions, by requirement id and reason",
        m.unmet.clone(),
    );
    registry.register(
        "clearance_request_duration_seconds",
        "Time to answer a request on the public listener, by handler and status class",
        m.requests.clone(),
    );
    registry.register(
        "clearance_upstream_responses",
        "Answers from upstreams by configured upstream and status class (error, timeout when none came)",
        m.upstream_responses.clone(),
    );
    registry.register(
        "clearance_upstream_duration_seconds",
        "Time from sending a request upstream to its response head, by configured upstream",
        m.upstream_duration.clone(),
    );
    registry.register(
        "clearance_redis_command_duration_seconds",
        "Redis round trips by command (pipeline for pipelines and transactions)",
        m.redis_duration.clone(),
    );
    registry.register(
        "clearance_redis_errors",
        "Failed Redis round trips by command and kind (timeout, io, server)",
        m.redis_errors.clone(),
    );
    registry.register(
        "clearance_requests_limited",
        "Requests refused by [limits] before any work, by kind (rate_limited, headers_too_large)",
        m.limited.clone(),
    );
    registry.register(
        "clearance_cache_hits",
        "Decision-cache lookups answered from the cache, by kind",
        m.cache_hits.clone(),
    );
    registry.register(
        "clearance_cache_misses",
        "Decision-cache lookups that went to Redis, by kind",
        m.cache_misses.clone(),
    );
    registry.register(
        "clearance_store_writable",
        "1 while the state store takes writes, 0 while it answers but refuses them (checked every 15 s and by /readyz)",
        m.store_writable.clone(),
    );
    registry.register(
        "clearance_sessions_live",
        "Sessions not yet expired, counted in Redis every 15 s (the same value on every instance)",
        m.sessions_live.clone(),
    );
    registry.register(
        "clearance_cache_entries",
        "Entries this instance's decision cache holds, by kind (standing, session), every 15 s",
        m.cache_entries.clone(),
    );
    registry.register(
        "clearance_notification_queue_depth",
        "Notifications waiting for delivery or retry, counted in Redis every 15 s",
        m.notification_queue.clone(),
    );
    registry.register(
        "clearance_denial_log_failures",
        "Denials that could not be appended to the denial log (logged in full at error level instead)",
        m.denial_log_failures.clone(),
    );
    registry.register(
        "clearance_config_reloads",
        "Configuration reloads by result (ok, error)",
        m.config_reloads.clone(),
    );
    registry.register(
        "clearance_config_last_reload_success_timestamp_seconds",
        "Unix time of the last configuration load or reload that took effect",
        m.config_last_reload.clone(),
    );
    // Both results exist from the start, so that `increase()` sees the first error.
    for result in ["ok", "error"] {
        let _ = m.config_reloads.get_or_create(&ResultLabels { result });
    }
    Metrics { registry, ..m }
});

/// The decision for one request to a route, as counted in `clearance_decisions_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted: every requirement of the route is met (or the route is public or induction).
    Allow,
    /// Admitted because current exemptions cover every unmet requirement.
    Exempt,
    /// Refused (403): a requirement is unmet, or the person is deactivated.
    Deny,
    /// Shown the `warn` interstitial.
    Warn,
    /// Not signed in, or the session or token was refused (302 / 401).
    SignIn,
    /// State could not be read or another fault (503 / 5xx): never an admit.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Exempt => "exempt",
            Self::Deny => "deny",
            Self::Warn => "warn",
            Self::SignIn => "sign_in",
            Self::Error => "error",
        }
    }
}

/// Counts one decision. `reason` is the reason of the first unmet requirement (`none` when
/// nothing is unmet); `route` is the route's configured name (see [`route_name`]).
pub fn decision(outcome: Outcome, reason: &'static str, route: &str) {
    METRICS
        .decisions
        .get_or_create(&DecisionLabels {
            outcome: outcome.as_str(),
            reason,
            route: route.to_owned(),
        })
        .inc();
}

/// Counts one unmet requirement of a refusal or a would-deny decision.
pub fn unmet(requirement: &str, reason: &'static str) {
    METRICS
        .unmet
        .get_or_create(&UnmetLabels {
            requirement: requirement.to_owned(),
            reason,
        })
        .inc();
}

/// A route's label: its configured host (`*` for any) and path prefix, e.g. `*/wiki`.
pub fn route_name(host: Option<&str>, path_prefix: &str) -> String {
    format!("{}{}", host.unwrap_or("*"), path_prefix)
}

/// `2xx` .. `5xx` for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Which of Clearance's handlers answered a path (a bounded label, never the path itself).
pub fn handler(path: &str) -> &'static str {
    if path == "/healthz" || path == "/readyz" {
        "health"
    } else if path == "/oauth2/auth" || path.starts_with("/oauth2/auth/") {
        "forward_auth"
    } else if path.starts_with("/oauth2/") {
        "sign_in"
    } else if path.starts_with("/.clearance/api/") || path.starts_with("/.clearance/scim/") {
        "api"
    } else if path.starts_with("/.clearance/") || path == "/.clearance" {
        "pages"
    } else {
        "proxy"
    }
}

/// Observes one answered request on the public listener.
pub fn request(handler: &'static str, status: u16, took: Duration) {
    METRICS
        .requests
        .get_or_create(&RequestLabels {
            handler,
            status_class: status_class(status),
        })
        .observe(took.as_secs_f64());
}

/// Counts one upstream answer (`status` `None` with `failure` `error` or `timeout` when no
/// answer came) and observes the time to its head.
pub fn upstream(upstream: &str, status: Result<u16, &'static str>, took: Duration) {
    let status_class = match status {
        Ok(s) => status_class(s),
        Err(failure) => failure,
    };
    METRICS
        .upstream_responses
        .get_or_create(&UpstreamLabels {
            upstream: upstream.to_owned(),
            status_class,
        })
        .inc();
    METRICS
        .upstream_duration
        .get_or_create(&CommandLabels {
            command: upstream.to_owned(),
        })
        .observe(took.as_secs_f64());
}

/// Observes one Redis round trip; `error` names the failure kind when it failed.
pub fn redis(command: &str, took: Duration, error: Option<&'static str>) {
    let command = command.to_owned();
    if let Some(kind) = error {
        METRICS
            .redis_errors
            .get_or_create(&RedisErrorLabels {
                command: command.clone(),
                kind,
            })
            .inc();
    }
    METRICS
        .redis_duration
        .get_or_create(&CommandLabels { command })
        .observe(took.as_secs_f64());
}

/// The decision cache answered a lookup of `kind` (e.g. `standing`) without Redis.
pub fn cache_hit(kind: &'static str) {
    METRICS.cache_hits.get_or_create(&KindLabels { kind }).inc();
}

/// A request was refused by `[limits]` (`kind`: the error code, `rate_limited` or
/// `headers_too_large`).
pub fn limited(kind: &'static str) {
    METRICS.limited.get_or_create(&KindLabels { kind }).inc();
}

/// The decision cache did not have `kind`; it was read from Redis.
pub fn cache_miss(kind: &'static str) {
    METRICS
        .cache_misses
        .get_or_create(&KindLabels { kind })
        .inc();
}

/// Whether the state store took the last write probe (`refused`: why not); each change is
/// logged once.
pub fn store_writable(refused: Option<&str>) {
    let before = METRICS.store_writable.set(i64::from(refused.is_none()));
    match refused {
        Some(error) if before == 1 => tracing::error!(
            error.message = %error,
            "the state store refuses writes: nothing can be changed and refusals wait in the denial buffer; decisions go on from the state it holds"
        ),
        None if before == 0 => tracing::info!("the state store takes writes again"),
        _ => {}
    }
}

/// Sets the number of live sessions (see `SessionStore::live_sessions`).
pub fn sessions_live(count: u64) {
    METRICS
        .sessions_live
        .set(i64::try_from(count).unwrap_or(i64::MAX));
}

/// Sets how many entries of `kind` the decision cache holds.
pub fn cache_entries(kind: &'static str, count: usize) {
    METRICS
        .cache_entries
        .get_or_create(&KindLabels { kind })
        .set(i64::try_from(count).unwrap_or(i64::MAX));
}

/// Sets the number of queued notifications.
pub fn notification_queue(count: u64) {
    METRICS
        .notification_queue
        .set(i64::try_from(count).unwrap_or(i64::MAX));
}

/// A denial could not be written to the denial log.
pub fn denial_log_failure() {
    METRICS.denial_log_failures.inc();
}

/// A configuration reload was attempted; `ok` when it took effect.
pub fn config_reload(ok: bool) {
    METRICS
        .config_reloads
        .get_or_create(&ResultLabels {
            result: if ok { "ok" } else { "error" },
        })
        .inc();
    if ok {
        config_loaded();
    }
}

/// The configuration in force was loaded now (at start or by a reload).
pub fn config_loaded() {
    METRICS
        .config_last_reload
        .set(chrono::Utc::now().timestamp());
}

/// How often the gauges read from Redis are refreshed.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(15);

/// Refreshes the gauges that come from the store (live sessions, notification queue) now and
/// then every `every`, until the runtime stops. A failed read leaves the old value (the Redis
/// error is counted by the store's own metrics).
pub fn spawn_gauges(
    store: crate::store::SharedStore,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            refresh_gauges(store.as_ref()).await;
        }
    })
}

/// Reads the store's gauges once.
pub async fn refresh_gauges(store: &dyn crate::store::Store) {
    if let Some((standings, sessions)) = store.cache_entries() {
        cache_entries("standing", standings);
        cache_entries("session", sessions);
    }
    match store.live_sessions(chrono::Utc::now()).await {
        Ok(n) => sessions_live(n),
        Err(e) => tracing::debug!(error.message = %e, "live sessions not counted"),
    }
    match store.probe_writes().await {
        Ok(()) => store_writable(None),
        Err(crate::store::StoreError::ReadOnly(e)) => store_writable(Some(&e)),
        Err(e) => tracing::debug!(error.message = %e, "writes not probed"),
    }
    match store.queued().await {
        Ok(n) => notification_queue(u64::try_from(n).unwrap_or(u64::MAX)),
        Err(e) => tracing::debug!(error.message = %e, "notification queue not counted"),
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &METRICS.registry).is_err() {
        tracing::error!("metrics could not be encoded");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_show_in_the_exposition() {
        decision(Outcome::Deny, "expired", "*/unit-test-route");
        unmet("unit-test-requirement", "expired");
        request("proxy", 503, Duration::from_millis(3));
        cache_hit("unit");
        cache_miss("unit");
        redis("UNITCMD", Duration::from_micros(300), Some("timeout"));
        let text = render();
        for line in [
            "clearance_decisions_total{outcome=\"deny\",reason=\"expired\",route=\"*/unit-test-route\"} 1",
            "clearance_unmet_requirements_total{requirement=\"unit-test-requirement\",reason=\"expired\"} 1",
            "clearance_cache_hits_total{kind=\"unit\"} 1",
            "clearance_cache_misses_total{kind=\"unit\"} 1",
            "clearance_redis_errors_total{command=\"UNITCMD\",kind=\"timeout\"} 1",
            "clearance_redis_command_duration_seconds_bucket{le=\"0.0005\",command=\"UNITCMD\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.contains(
            "clearance_request_duration_seconds_bucket{le=\"0.005\",handler=\"proxy\",status_class=\"5xx\"}"
        ));
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(handler("/oauth2/auth/envoy/x"), "forward_auth");
        assert_eq!(handler("/oauth2/callback"), "sign_in");
        assert_eq!(handler("/.clearance/api/v1/records"), "api");
        assert_eq!(handler("/.clearance/manage"), "pages");
        assert_eq!(handler("/anything/else?x"), "proxy");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(999), "5xx");
        assert_eq!(route_name(None, "/wiki"), "*/wiki");
        assert_eq!(route_name(Some("a.example.com"), "/"), "a.example.com/");
    }
}
