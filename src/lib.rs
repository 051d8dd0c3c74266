//! Clearance: an OIDC-aware gatekeeper that admits people only while their security induction is current.
//!
//! This file wires validated [`config::Settings`] into a running server.

pub mod auth;
pub mod config;
pub mod demo;
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
    let limits = settings.limits.clone();
    let documents = Arc::new(crate::http::documents::Documents::default());
    documents.spawn(
        &settings.policy,
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
    );
    Ok(AppState {
        documents,
        bearer,
        sessions: Sessions::new(store.clone(), settings.session.clone()),
        live: Arc::new(arc_swap::ArcSwap::from_pointee(settings)),
        store,
        oidc,
        clock: Arc::new(SystemClock),
        known_subjects: Arc::default(),
        limits: Arc::new(crate::http::limits::RateLimits::new(&limits)),
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

/// Starts the HTTP server on a bound listener, and the notification worker when
/// `[notifications]` is configured (it stops with the runtime). Must run inside a tokio runtime.
pub fn server(state: AppState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    // The worker runs until the runtime that runs the server stops.
    let _worker = notify::spawn(&state);
    let workers = match state.settings().workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let server = actix_web::HttpServer::new(move || http::app(state.clone()))
        .workers(workers)
        .listen(listener)?
        .run();
    Ok(server)
}

/// `clearance serve`: Redis store, provider discovery, HTTP server until a signal stops it.
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
    server(state, listener)?.await?;
    Ok(())
}
