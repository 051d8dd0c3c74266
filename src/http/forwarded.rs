//! Trusted proxies: whose `X-Forwarded-*` / `X-Original-*` / `Forwarded` headers are believed, and
//! the client address and scheme that follow from that. The peer is checked BEFORE any forwarded
//! header is read; with no trusted proxies configured (the default) none ever is.

use actix_web::HttpRequest;
use ipnet::IpNet;
use std::net::IpAddr;

/// Is the connecting peer one of the configured trusted proxies?
pub fn peer_is_trusted(req: &HttpRequest, trusted: &[IpNet]) -> bool {
    req.peer_addr()
        .is_some_and(|peer| is_trusted(peer.ip(), trusted))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

/// A header's value, but only when the peer is trusted.
pub fn trusted_header<'a>(req: &'a HttpRequest, trusted: &[IpNet], name: &str) -> Option<&'a str> {
    if !peer_is_trusted(req, trusted) {
        return None;
    }
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The client's address: the peer, or — behind trusted proxies — the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_addr(req: &HttpRequest, trusted: &[IpNet]) -> String {
    let peer = req.peer_addr().map(|a| a.ip());
    let chain = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    client_addr_from(peer, chain, trusted)
}

/// [`client_addr`] on plain values: the connecting `peer` and the raw `X-Forwarded-For` value.
/// The chain is read only when the peer is trusted.
pub fn client_addr_from(
    peer: Option<IpAddr>,
    x_forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> String {
    if let Some(chain) = believed(peer, x_forwarded_for, trusted) {
        let hops: Vec<IpAddr> = chain
            .split(',')
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .collect();
        if let Some(client) = hops.iter().rev().find(|ip| !is_trusted(**ip, trusted)) {
            return client.to_string();
        }
        if let Some(first) = hops.first() {
            return first.to_string();
        }
    }
    peer.map(|p| p.to_string()).unwrap_or_default()
}

/// A forwarded header's trimmed, non-empty value when `peer` is a trusted proxy.
fn believed<'a>(
    peer: Option<IpAddr>,
    value: Option<&'a str>,
    trusted: &[IpNet],
) -> Option<&'a str> {
    if !peer.is_some_and(|p| is_trusted(p, trusted)) {
        return None;
    }
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The `X-Forwarded-For` value to send upstream: the trusted chain plus the peer, or just the peer.
pub fn forwarded_for(req: &HttpRequest, trusted: &[IpNet]) -> String {
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    match trusted_header(req, trusted, "x-forwarded-for") {
        Some(chain) => format!("{chain}, {peer}"),
        None => peer,
    }
}

/// The scheme the client used: `X-Forwarded-Proto` from a trusted proxy, else this listener's.
pub fn scheme(req: &HttpRequest, trusted: &[IpNet]) -> &'static str {
    let proto = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok());
    scheme_from(
        req.peer_addr().map(|a| a.ip()),
        proto,
        req.app_config().secure(),
        trusted,
    )
}

/// [`scheme`] on plain values: the connecting `peer`, the raw `X-Forwarded-Proto` value and
/// whether this listener is TLS. Always `"http"` or `"https"`.
pub fn scheme_from(
    peer: Option<IpAddr>,
    x_forwarded_proto: Option<&str>,
    listener_secure: bool,
    trusted: &[IpNet],
) -> &'static str {
    match believed(peer, x_forwarded_proto, trusted) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        _ if listener_secure => "https",
        _ => "http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.9:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        assert_eq!(client_addr(&req, &[]), "203.0.113.9");
        assert_eq!(client_addr(&req, &nets(&["10.0.0.0/8"])), "203.0.113.9");
        assert_eq!(scheme(&req, &[]), "http");
        assert_eq!(forwarded_for(&req, &[]), "203.0.113.9");
    }

    #[test]
    fn trusted_chain_yields_the_first_untrusted_hop() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        let trusted = nets(&["10.0.0.0/8"]);
        assert!(peer_is_trusted(&req, &trusted));
        assert_eq!(
            client_addr(&req, &trusted),
            "198.51.100.7",
            "spoofed left-most hop ignored"
        );
        assert_eq!(scheme(&req, &trusted), "https");
        assert_eq!(
            forwarded_for(&req, &trusted),
            "6.6.6.6, 198.51.100.7, 10.0.0.5, 10.0.0.2"
        );
    }

    #[test]
    fn mapped_ipv6_peers_match_ipv4_ranges() {
        let req = TestRequest::default()
            .peer_addr("[::ffff:127.0.0.1]:5000".parse().unwrap())
            .to_http_request();
        assert!(peer_is_trusted(&req, &nets(&["127.0.0.1/32"])));
    }

    #[test]
    fn plain_value_forms_follow_the_trust_rules() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        let chain = Some(" 198.51.100.7, 10.0.0.2 ");
        assert_eq!(
            client_addr_from(Some(proxy), chain, &trusted),
            "198.51.100.7"
        );
        assert_eq!(
            client_addr_from(Some(outsider), chain, &trusted),
            "203.0.113.9"
        );
        assert_eq!(
            client_addr_from(Some(proxy), Some("junk, 10.0.0.3"), &trusted),
            "10.0.0.3"
        );
        assert_eq!(
            client_addr_from(Some(proxy), Some("junk"), &trusted),
            "10.0.0.5"
        );
        assert_eq!(client_addr_from(None, chain, &trusted), "");
        assert_eq!(
            scheme_from(Some(proxy), Some(" HTTPS "), false, &trusted),
            "https"
        );
        assert_eq!(
            scheme_from(Some(proxy), Some("http"), true, &trusted),
            "http"
        );
        assert_eq!(
            scheme_from(Some(outsider), Some("https"), false, &trusted),
            "http"
        );
        assert_eq!(
            scheme_from(Some(proxy), Some("gopher"), true, &trusted),
            "https"
        );
    }
}
