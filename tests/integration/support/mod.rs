//! Integration-test harness: real Redis, a real OpenID provider, an upstream app and a test browser.
//!
//! Everything here listens on 127.0.0.1 only and is torn down on drop.
//! - [`RedisServer`]: a throwaway `redis-server` process.
//! - [`OidcProvider`] / [`ProviderConfig`]: the `oidc-provider` fixture in `tests/support/oidc`.
//! - [`Upstream`]: an in-process actix-web app that Clearance proxies to.
//! - [`raw::send`]: a raw HTTP/1.1 client for malformed requests.
//! - [`Browser`], [`login_at_provider`], [`logout_at_provider`]: a cookie-keeping HTTP client
//!   that does not follow redirects by itself.
//!
//! Missing `redis-server`, `node` or the fixture's node modules: run `scripts/install-test-deps.sh`.
#![allow(dead_code, unused_imports)]

mod browser;
mod dropbox_sign;
mod oidc;
mod proxies;
pub mod raw;
mod redis;
mod tcp_proxy;
mod upstream;

#[cfg(test)]
mod harness_tests;

pub use browser::{
    Browser, HtmlForm, Response, Start, host_port, login_at_provider, logout_at_provider,
};
pub use dropbox_sign::DropboxSignApi;
pub use oidc::{
    Account, CLIENT_ID, CLIENT_SECRET, ClientConfig, OidcProvider, ProviderConfig, repo_root,
};
pub use proxies::{Caddy, Nginx};
pub use redis::{RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, sentinel_names};
pub use tcp_proxy::TcpProxy;
pub use upstream::{Upstream, policy_text};

/// Runs the server `start` builds on `listener` in a thread of its own, with its own actix
/// System (so that it works from any `#[tokio::test]`); returns its handle and thread once it
/// listens. Panics if it cannot start.
pub async fn serve_in_thread(
    name: String,
    listener: std::net::TcpListener,
    start: impl FnOnce(std::net::TcpListener) -> std::io::Result<actix_web::dev::Server>
    + Send
    + 'static,
) -> (actix_web::dev::ServerHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match start(listener) {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.handle()));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })
        .expect("spawn a server thread");
    let handle = rx
        .await
        .unwrap_or_else(|_| panic!("{name} ended before starting"))
        .unwrap_or_else(|e| panic!("{name} failed to start: {e}"));
    (handle, thread)
}

/// The first value of query parameter `name` in `url`, decoded.
pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), and
/// that this test process has not handed out before: tests run side by side, and the kernel
/// would otherwise offer a released port to the next caller before the first one binds it.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("bind 127.0.0.1:0 to find a free port");
        let mut handed_out = HANDED_OUT
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub async fn port_is_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}
