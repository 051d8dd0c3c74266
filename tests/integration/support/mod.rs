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
mod oidc;
mod proxies;
pub mod raw;
mod redis;
mod upstream;

#[cfg(test)]
mod harness_tests;

pub use browser::{
    Browser, HtmlForm, Response, Start, host_port, login_at_provider, logout_at_provider,
};
pub use oidc::{
    Account, CLIENT_ID, CLIENT_SECRET, ClientConfig, OidcProvider, ProviderConfig, repo_root,
};
pub use proxies::{Caddy, Nginx};
pub use redis::{RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, sentinel_names};
pub use upstream::{Upstream, policy_text};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub async fn port_is_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}
