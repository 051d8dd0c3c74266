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
pub mod notify;
pub mod oversight;
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
use crate::store::SharedStore;
use crate::store::redis::RedisStore;
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
            leeway: settings.bearer.leeway,
            refetch_cooldown: settings.oidc.jwks_refetch_cooldown,
        },
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
    ));
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
    })
}

/// The Redis-backed store for `serve`.
pub fn redis_store(settings: &Settings) -> anyhow::Result<SharedStore> {
    Ok(Arc::new(RedisStore::new(
        &settings.redis,
        settings.denials.clone(),
        settings.followup.audit_key.clone(),
    )?))
}

/// Starts the HTTP server on a bound listener, the denial buffer's writer, and the notification
/// worker when `[notifications]` is configured (both stop with the runtime). Must run inside a
/// tokio runtime. The server does not watch signals itself: [`stop_on_signals`] does that for
/// `serve`, and `handle().stop(true)` stops it gracefully (requests in flight get up to
/// `server.shutdown_timeout_secs` to finish).
pub fn server(state: AppState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    // The workers run until the runtime that runs the server stops.
    let _worker = notify::spawn(&state);
    let _denials = state.denials.spawn();
    let workers = match state.settings().workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let shutdown_timeout = state.settings().shutdown_timeout.as_secs();
    let server = actix_web::HttpServer::new(move || http::app(state.clone()))
        .workers(workers)
        .shutdown_timeout(shutdown_timeout)
        .disable_signals()
        .listen(listener)?
        .run();
    Ok(server)
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
/// it gracefully, then the last flush of buffered denials.
/// `config` is the configuration file's path and SHA-256, recorded in the audit trail.
pub async fn serve(settings: Settings, config: (String, String)) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.listen).map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (server.listen): {e}", settings.listen)
    })?;
    let store = redis_store(&settings)?;
    let (path, sha256) = config;
    let loaded = store::audit_event::config_loaded(chrono::Utc::now(), &sha256, &path);
    if let Err(e) = store.append_audit(&loaded).await {
        // Redis may be down at start; the gate still starts (and fails closed) meanwhile.
        tracing::error!(error = %e, config.sha256 = %sha256, "the configuration change could not be written to the audit trail");
    }
    let state = build_state(settings, store)?;
    tracing::info!(
        listen = %state.settings().listen,
        public_url = %state.settings().public_url,
        requirements = state.settings().policy.requirements.len(),
        routes = state.settings().routes.routes().len(),
        "clearance is serving"
    );
    let running = server(state.clone(), listener)?;
    stop_on_signals(running.handle());
    running.await?;
    finish(&state).await;
    tracing::info!("clearance stopped");
    Ok(())
}
