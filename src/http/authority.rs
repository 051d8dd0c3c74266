//! The `Host` a request names, checked before anything routes on it: `host[:port]` and nothing else.
//!
//! A gate that routes by one reading of an authority while the upstream reads another can be
//! talked past: `app.example.com@evil`, `app.example.com:`, `app.example.com:80x`,
//! `app.example.com:80:81` or `app.example.com%2F` each mean one thing to Clearance's route
//! table and may mean another to an upstream framework. So an authority is accepted only in
//! the one form every reader agrees on, and anything else is a 400:
//!
//! * a host: a DNS-style name of letters, digits, `-`, `_` and `.` (RFC 3986's reg-name without
//!   percent-encoding and sub-delims), an IPv4 address, or an IPv6 literal in brackets;
//! * optionally `:` and a port of 1 to 5 digits that is at most 65535.
//!
//! No userinfo (`@`), no empty port, no percent-encoding, no whitespace, no other characters.
//! Host names are compared case-insensitively by the route table, so case is left alone here.

/// Why an authority was refused. The messages never echo the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("the Host header is empty")]
    Empty,
    #[error("the Host header is longer than 255 characters")]
    TooLong,
    #[error("the Host header must not contain user information ('@')")]
    UserInfo,
    #[error("the Host header's port must be 1 to 5 digits, at most 65535")]
    BadPort,
    #[error("the Host header's IPv6 address is not valid")]
    BadIpv6,
    #[error("the Host header contains a character that is not allowed in a host name")]
    BadCharacter,
    #[error("the request names two different hosts (its target and its Host header)")]
    Conflicting,
    #[error("an HTTP/1.1 request must have a Host header")]
    Missing,
}

/// Longest authority accepted.
const MAX_AUTHORITY_LEN: usize = 255;

/// Checks that `raw` is exactly `host[:port]` (see the module documentation).
pub fn check_authority(raw: &str) -> Result<(), AuthorityError> {
    if raw.is_empty() {
        return Err(AuthorityError::Empty);
    }
    if raw.len() > MAX_AUTHORITY_LEN {
        return Err(AuthorityError::TooLong);
    }
    if raw.contains('@') {
        return Err(AuthorityError::UserInfo);
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return Err(AuthorityError::BadIpv6);
        };
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AuthorityError::BadIpv6);
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(AuthorityError::BadCharacter),
            },
        }
    } else {
        match raw.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(raw), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(AuthorityError::Empty);
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(AuthorityError::BadCharacter);
        }
    }
    if let Some(port) = port {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u32>().map_or(true, |p| p > 65_535) {
            return Err(AuthorityError::BadPort);
        }
    }
    Ok(())
}

/// Checks the authority of a request as it arrived: the `Host` header, the target's authority
/// (absolute-form), or both, which must then agree. An HTTP/1.1 request with neither is refused
/// (RFC 9112 §3.2); an HTTP/1.0 request may have none.
pub fn check_request(req: &actix_web::HttpRequest) -> Result<(), AuthorityError> {
    let header = match req.headers().get_all(actix_web::http::header::HOST).count() {
        0 => None,
        1 => Some(
            req.headers()
                .get(actix_web::http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthorityError::BadCharacter)?,
        ),
        _ => return Err(AuthorityError::Conflicting),
    };
    let target = req.uri().authority().map(|a| a.as_str());
    if let Some(header) = header {
        check_authority(header)?;
    }
    if let Some(target) = target {
        check_authority(target)?;
        if header.is_some_and(|h| !h.eq_ignore_ascii_case(target)) {
            return Err(AuthorityError::Conflicting);
        }
    }
    if header.is_none() && target.is_none() && req.version() >= actix_web::http::Version::HTTP_11 {
        return Err(AuthorityError::Missing);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_accepted() {
        for ok in [
            "app.example.com",
            "App.Example.COM",
            "app.example.com:443",
            "localhost",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:4180",
            "[2001:db8::1]:443",
            "internal_host.corp",
            "a:1",
            "a:65535",
        ] {
            assert_eq!(check_authority(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for (bad, why) in [
            ("", AuthorityError::Empty),
            (":443", AuthorityError::Empty),
            ("app.example.com@evil.example", AuthorityError::UserInfo),
            ("user:pw@app.example.com", AuthorityError::UserInfo),
            ("app.example.com:", AuthorityError::BadPort),
            ("app.example.com:80x", AuthorityError::BadPort),
            ("app.example.com:80:81", AuthorityError::BadPort),
            ("app.example.com:+80", AuthorityError::BadPort),
            ("app.example.com:65536", AuthorityError::BadPort),
            ("app.example.com:123456", AuthorityError::BadPort),
            ("app.example.com: 80", AuthorityError::BadPort),
            ("app.example.com%2Fadmin", AuthorityError::BadCharacter),
            ("app.example.com/admin", AuthorityError::BadCharacter),
            ("app.example.com\\admin", AuthorityError::BadCharacter),
            ("app .example.com", AuthorityError::BadCharacter),
            ("app.example.com,evil", AuthorityError::BadCharacter),
            ("app.example.com;x", AuthorityError::BadCharacter),
            ("app.example.com?x", AuthorityError::BadCharacter),
            ("app.example.com#x", AuthorityError::BadCharacter),
            ("äpp.example.com", AuthorityError::BadCharacter),
            ("[::1", AuthorityError::BadIpv6),
            ("[not-ip]:80", AuthorityError::BadIpv6),
            ("[::1]x", AuthorityError::BadCharacter),
            ("[::1]:", AuthorityError::BadPort),
            ("::1", AuthorityError::Empty),
        ] {
            assert_eq!(check_authority(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            check_authority(&"a".repeat(256)),
            Err(AuthorityError::TooLong)
        );
    }

    #[test]
    fn the_request_must_name_one_host() {
        use actix_web::test::TestRequest;
        let req = TestRequest::default()
            .insert_header(("host", "app.example.com"))
            .to_http_request();
        assert_eq!(check_request(&req), Ok(()));
        let req = TestRequest::default()
            .insert_header(("host", "app.example.com@evil"))
            .to_http_request();
        assert_eq!(check_request(&req), Err(AuthorityError::UserInfo));
        let req = TestRequest::default()
            .uri("http://app.example.com/x")
            .insert_header(("host", "evil.example"))
            .to_http_request();
        assert_eq!(check_request(&req), Err(AuthorityError::Conflicting));
        let req = TestRequest::default()
            .uri("http://app.example.com/x")
            .insert_header(("host", "APP.example.com"))
            .to_http_request();
        assert_eq!(check_request(&req), Ok(()));
        let req = TestRequest::default().to_http_request();
        assert_eq!(check_request(&req), Err(AuthorityError::Missing));
        let req = TestRequest::default()
            .append_header(("host", "a.example"))
            .append_header(("host", "b.example"))
            .to_http_request();
        assert_eq!(check_request(&req), Err(AuthorityError::Conflicting));
    }
}
