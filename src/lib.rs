//! Clearance: an OIDC-aware gatekeeper that admits people only while their security induction is current.
//!
//! This file wires validated [`config::Settings`] into a running server.

pub mod auth;
pub mod config;
pub mod demo;
pub mod denial_buffer;
pub mod directory_import;
pub mod domain;
pub mod evidence;
pub mod http;
pub mod import;
pub mod metrics;
pub mod notify;
pub mod oversight;
pub mod reload;
pub mod report;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod testutil;

use crate::auth::bearer::{BearerConfig, BearerVerifier};
use crate::auth::oidc::Oidc;
use crate::auth::session::Sessions;
use crate::config::Settings;
use crate::http::{AppState, SystemClock};
use crate::store::redis::RedisStore;
use crate::store::{RoundTrips, SharedStore};
use std::net::TcpListener;
use std::sync::Arc;

/// Builds the shared state from settings and a store, and starts loading provider metadata in
/// the background (the gate answers 503 for sign-ins until it is loaded).
pub fn build_state(settings: Settings, store: SharedStore) -> anyhow::Result<AppState> {
    let oidc = Arc::new(Oidc::new(settings.oidc.clone())?);
    oidc.spawn_discovery();
    let bearer = Arc::new(BearerVerifier::new(
        BearerConfig {
            issuer: settings.oidc.issuer.as_str().to_owned(),
            audiences: settings.bearer.audiences.clone(),
            client_id: settings.oidc.client_id.clone(),
            require_at_jwt: settings.bearer.require_at_jwt,
            leeway: settings.bearer.leeway,
            refetch_cooldown: settings.oidc.jwks_refetch_cooldown,
        },
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
    ));
    let limits = settings.limits.clone();
    let documents = Arc::new(crate::http::documents::Documents::default());
    documents.spawn(
        &settings.policy,
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
    );
    let denials = Arc::new(crate::denial_buffer::DenialBuffer::new(
        Arc::new(crate::denial_buffer::StoreSink(store.clone())),
        settings.denial_buffer_max,
    ));
    Ok(AppState {
        denials,
        documents,
        bearer,
        sessions: Sessions::new(store.clone(), settings.session.clone()),
        live: Arc::new(arc_swap::ArcSwap::from_pointee(settings)),
        store,
        oidc,
        clock: Arc::new(SystemClock),
        known_subjects: Arc::default(),
        limits: Arc::new(crate::http::limits::RateLimits::new(&limits)),
        outbound: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
    })
}

/// The Redis-backed store for `serve`.
/// With `[cache] enabled`, it keeps a decision cache that serves only while [`server`]'s
/// invalidation subscription is up (CLI commands never subscribe, so they always read Redis).
pub fn redis_store(settings: &Settings) -> anyhow::Result<SharedStore> {
    Ok(counted_redis_store(settings)?.0)
}

/// [`redis_store`], with the count of the round trips it makes to Redis (for tests and
/// benchmarks that check how often a request reaches Redis).
pub fn counted_redis_store(settings: &Settings) -> anyhow::Result<(SharedStore, RoundTrips)> {
    let store = cached(new_redis_store(settings)?, settings);
    let round_trips = store.round_trips();
    Ok((Arc::new(store), round_trips))
}

/// The store with the decision cache of `[cache]` attached, when it is enabled.
fn cached(store: RedisStore, settings: &Settings) -> RedisStore {
    if settings.cache.enabled {
        store.with_cache(Arc::new(store::cache::DecisionCache::new(&settings.cache)))
    } else {
        store
    }
}

fn new_redis_store(settings: &Settings) -> anyhow::Result<RedisStore> {
    Ok(RedisStore::new(
        &settings.redis,
        settings.denials.clone(),
        settings.followup.audit_key.clone(),
    )?)
}

/// Starts the HTTP server on a bound listener, the decision cache's invalidation subscription,
/// the denial buffer's writer, and the notification worker when `[notifications]` is configured
/// (they stop with the runtime). Must run inside a tokio runtime. The server does not watch
/// signals itself: [`stop_on_signals`] does that for `serve`, and `handle().stop(true)` stops it
/// gracefully (requests in flight get up to `server.shutdown_timeout_secs` to finish).
///
/// With `[admin] listen` set, the admin listener (`/metrics`, `/healthz`, `/readyz`) is bound
/// too; [`server_with_admin`] takes it already bound instead.
pub fn server(state: AppState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let admin = match state.settings().admin_listen {
        Some(addr) => Some(TcpListener::bind(addr).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} (admin.listen): {e}"),
            )
        })?),
        None => None,
    };
    server_with_admin(state, listener, admin)
}

/// [`server`] with the admin listener given (bound to a port chosen at run time, as the demo
/// does) or none. The public and admin listeners share the workers and stop together.
pub fn server_with_admin(
    state: AppState,
    listener: TcpListener,
    admin: Option<TcpListener>,
) -> std::io::Result<actix_web::dev::Server> {
    // The workers run until the runtime that runs the server stops.
    let _worker = notify::spawn(&state);
    let _denials = state.denials.spawn();
    // The gauges read Redis: only worth it where /metrics is served.
    let _gauges = admin
        .is_some()
        .then(|| metrics::spawn_gauges(state.store.clone(), metrics::GAUGE_REFRESH));
    metrics::config_loaded();
    // So does the decision cache's invalidation subscription.
    if let Some(watcher) = state.store.cache_watcher() {
        tokio::spawn(watcher);
    }
    let workers = match state.settings().workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    http::server::start(
        &state,
        listener,
        admin,
        workers,
        state.settings().shutdown_timeout,
    )
}

/// How long the last attempt to write buffered denials may take at shutdown.
pub const LAST_DENIAL_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// Stops the server gracefully on SIGTERM or SIGINT (Ctrl-C): no new connections, requests in
/// flight finish (up to `server.shutdown_timeout_secs`), then the server's future completes.
pub fn stop_on_signals(handle: actix_web::dev::ServerHandle) {
    tokio::spawn(async move {
        let signal = shutdown_signal().await;
        tracing::info!(
            signal,
            "stopping: no new connections, finishing requests in flight"
        );
        handle.stop(true).await;
    });
}

#[cfg(unix)]
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot watch SIGTERM/SIGINT; only Ctrl-C stops the server gracefully");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

/// After the server stopped: the last attempt to write buffered denials (those still unwritten
/// are logged in full). Returns how many were left unwritten.
pub async fn finish(state: &AppState) -> usize {
    let buffered = state.denials.len();
    if buffered == 0 {
        return 0;
    }
    tracing::info!(denials = buffered, "writing buffered denials before exit");
    let left = state.denials.drain(LAST_DENIAL_FLUSH).await;
    if left > 0 {
        tracing::error!(
            denials = left,
            "buffered denials could not be written before exit; each is in the log above"
        );
    }
    left
}

/// `clearance serve`: Redis store, provider discovery, HTTP server until SIGTERM or SIGINT stops
/// it gracefully, then the last flush of buffered denials. `config` is the configuration file's
/// path and SHA-256, recorded in the audit trail; the file is reloaded on SIGHUP and when its
/// content changes ([`reload`]).
pub async fn serve(settings: Settings, config: (String, String)) -> anyhow::Result<()> {
    for relaxed in settings.relaxations() {
        tracing::warn!("a fail-closed default is relaxed: {relaxed}");
    }
    let listener = TcpListener::bind(settings.listen).map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (server.listen): {e}", settings.listen)
    })?;
    let redis = new_redis_store(&settings)?;
    match redis.migrate_legacy_layout().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            redis.moved = n,
            "keys of an older layout moved to the current one"
        ),
        // Redis may be down at start: the next start moves them.
        Err(e) => {
            tracing::warn!(error = %e, "keys of an older layout could not be checked or moved")
        }
    }
    let store: SharedStore = Arc::new(cached(redis, &settings));
    let (path, sha256) = config;
    let loaded = store::audit_event::config_loaded(chrono::Utc::now(), &sha256, &path);
    if let Err(e) = store.append_audit(&loaded).await {
        // Redis may be down at start; the gate still starts (and fails closed) meanwhile.
        tracing::error!(error.message = %e, config.sha256 = %sha256, "the configuration change could not be written to the audit trail");
    }
    let state = build_state(settings, store)?;
    tracing::info!(
        server.listen = %state.settings().listen,
        server.public_url = %state.settings().public_url,
        admin.listen = %state.settings().admin_listen.map(|a| a.to_string()).unwrap_or_default(),
        config.requirements = state.settings().policy.requirements.len(),
        config.routes = state.settings().routes.routes().len(),
        redis.mode = state.settings().redis.topology.mode(),
        "clearance is serving"
    );
    let reloader = Arc::new(reload::Reloader::new(path.into(), state.clone(), sha256));
    let _watch = reload::spawn(
        reloader,
        reload::Triggers {
            poll: Some(reload::POLL),
            sighup: true,
        },
    );
    let running = server(state.clone(), listener)?;
    stop_on_signals(running.handle());
    running.await?;
    finish(&state).await;
    tracing::info!("clearance stopped");
    Ok(())
}
