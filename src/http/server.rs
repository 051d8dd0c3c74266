//! The HTTP server: one HTTP/1.1 service per listener (public and admin), each answering
//! `Expect: 100-continue` through the gate ([`super::expect`]).
//!
//! actix-web's `HttpServer` builds the same services but offers no hook for the expect service,
//! so they are built here from actix-server and actix-http, with `HttpServer`'s defaults (5 s
//! keep-alive, 5 s to send a request head, 1 s to close, idle connections closed at a graceful
//! stop).

use super::{Listener, expect};
use crate::http::AppState;
use actix_http::{HttpService, KeepAlive};
use actix_service::{IntoServiceFactory as _, map_config};
use actix_web::dev::AppConfig;
use std::net::TcpListener;
use std::time::Duration;

/// Starts the workers on the public listener and, when given, the admin listener.
pub fn start(
    state: &AppState,
    public: TcpListener,
    admin: Option<TcpListener>,
    workers: usize,
    shutdown_timeout: Duration,
) -> std::io::Result<actix_server::Server> {
    let mut builder = actix_server::Server::build()
        .workers(workers)
        .shutdown_timeout(shutdown_timeout.as_secs())
        .disable_signals();
    let stopping = builder.graceful_shutdown_signal();
    let listeners = std::iter::once((public, Listener::Public))
        .chain(admin.map(|admin| (admin, Listener::Admin)));
    for (socket, listener) in listeners {
        let addr = socket.local_addr()?;
        let state = state.clone();
        let stopping = stopping.clone();
        builder = builder.listen(
            format!("clearance-{listener:?}-{addr}"),
            socket,
            move || {
                let state = state.clone();
                let app = move || super::app(state.clone(), listener).into_factory();
                let stopping = stopping.clone();
                HttpService::build()
                    .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(addr)
                    .graceful_shutdown_signal(move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    })
                    .expect(expect::service(app.clone()))
                    .finish(map_config(app(), |()| AppConfig::default()))
                    .tcp()
            },
        )?;
    }
    Ok(builder.run())
}
