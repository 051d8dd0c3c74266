//! Forwarded headers (`http::forwarded::client_addr_from` / `scheme_from`): the client address is
//! the peer unless the peer is a trusted proxy, is always an IP address, and the scheme is http(s).
//! Input: a selector byte for the peer, then `X-Forwarded-For` and `X-Forwarded-Proto` separated
//! by a newline.
#![no_main]

use clearance::http::forwarded::{client_addr_from, scheme_from};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let trusted: Vec<IpNet> = ["10.0.0.0/8", "fd00::/8", "192.0.2.1/32"]
        .iter()
        .map(|n| n.parse().expect("a network"))
        .collect();
    let peers = [
        "10.1.2.3",
        "203.0.113.7",
        "::ffff:10.0.0.9",
        "fd00::1",
        "2001:db8::1",
    ];
    let peer: Option<IpAddr> = peers
        .get(usize::from(selector) % (peers.len() + 1))
        .map(|p| p.parse().expect("an address"));
    let (xff, proto) = text.split_once('\n').unwrap_or((text, ""));
    let peer_trusted = peer.is_some_and(|p| {
        let p = match p {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        trusted.iter().any(|n| n.contains(&p))
    });

    let client = client_addr_from(peer, Some(xff), &trusted);
    if peer_trusted {
        assert!(
            client.parse::<IpAddr>().is_ok(),
            "{client:?} is not an address"
        );
    } else {
        assert_eq!(client, peer.map(|p| p.to_string()).unwrap_or_default());
    }

    for secure in [false, true] {
        let scheme = scheme_from(peer, Some(proto), secure, &trusted);
        assert!(scheme == "http" || scheme == "https");
        if !peer_trusted {
            assert_eq!(scheme, if secure { "https" } else { "http" });
        }
    }
});
