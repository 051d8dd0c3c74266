//! Validation of the post-sign-in redirect target (`rd=`) against open-redirect tricks.
//!
//! A redirect target is accepted in exactly two shapes:
//!
//! 1. **A local path**: starts with exactly one `/` followed by something other than `/` or
//!    `\` (or is just `/`).  Returned unchanged.
//! 2. **An absolute `http`/`https` URL** written as `scheme://host…` whose host is allowed,
//!    with no userinfo.  Returned as re-serialised by the `url` crate (lowercase scheme and
//!    host, IDN hosts in punycode, default port removed).
//!
//! Everything else — scheme-relative `//host`, `/\host`, `\\host`, `https:host`,
//! `javascript:`, `data:`, path-relative targets — is refused.  In addition, for both shapes:
//!
//! * the input must be non-empty and at most [`MAX_REDIRECT_LEN`] bytes;
//! * it must contain no control character, no whitespace and no `\` — neither as written nor
//!   after one round of percent-decoding (`/%09/evil`, `/%5Cevil`, `%0D%0A` header
//!   injection), because browsers strip tab/newline and treat `\` as `/`, and applications
//!   that decode the value once more would otherwise see a different target.  The one
//!   exception: an encoded space (`%20`) is allowed in the query and fragment
//!   (`/search?q=a%20b`), where it cannot change the destination;
//! * for a local path, the path part (before `?`/`#`) must not contain `//`, as written or
//!   after one decode (`/%2F%2Fevil`, `/..//evil`), so no later normalisation can turn it
//!   into a scheme-relative URL.
//!
//! # Allowed hosts
//!
//! Each entry of `allowed_hosts` is either
//!
//! * an exact host, optionally with a port: `app.example.com`, `app.example.com:8443`,
//!   `127.0.0.1`, `[::1]:8080`; or
//! * a leading-dot suffix, optionally with a port: `.example.com` matches any subdomain of
//!   `example.com` (`a.example.com`, `a.b.example.com`) but not `example.com` itself (list it
//!   separately), and never `evil-example.com` or `example.com.evil.net`.
//!
//! Entries are compared in the `url` crate's canonical host form, so they are
//! case-insensitive and may be written in Unicode or punycode.  An entry without a port
//! matches the host on any port (the same host is trusted whatever its port; this is what lets
//! `http://127.0.0.1:8080` deployments use a bare `127.0.0.1` entry); an entry with a port
//! matches only that port (the scheme's default port when the URL names none).
//! Hosts written with a trailing dot (`good.example.`) never match: they are an alternative
//! spelling that would otherwise slip past suffix checks elsewhere.  Entries that cannot be
//! parsed match nothing.

use percent_encoding::percent_decode_str;
use url::{Host, Url};

/// Longest accepted redirect target, in bytes.
pub const MAX_REDIRECT_LEN: usize = 2048;

/// Why a redirect target was refused.  Messages never echo the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// The target was empty.
    #[error("the redirect target is empty")]
    Empty,
    /// The target exceeded [`MAX_REDIRECT_LEN`].
    #[error("the redirect target is longer than {max} bytes")]
    TooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// A control character, whitespace or backslash, raw or percent-encoded.
    #[error("the redirect target contains a forbidden character")]
    ForbiddenCharacter,
    /// A local path that does not start with exactly one '/', or contains `//`.
    #[error("the redirect path must start with a single '/' and must not contain '//'")]
    InvalidPath,
    /// Neither a local path nor an `http(s)://` URL.
    #[error("the redirect target must be a local path or an http(s) URL")]
    UnsupportedScheme,
    /// An `http(s)` URL that could not be parsed, or has no host.
    #[error("the redirect URL is malformed")]
    MalformedUrl,
    /// The URL carries a username or password.
    #[error("the redirect URL must not contain user information")]
    UserInfo,
    /// The URL's host (and port) is not in the allow-list.
    #[error("the redirect URL points to a host that is not allowed")]
    HostNotAllowed,
}

/// Validates a post-sign-in redirect target.  Returns the URL to redirect to: a local path
/// exactly as given, or an allowed absolute URL as re-serialised by the `url` crate.
pub fn safe_redirect(rd: &str, allowed_hosts: &[String]) -> Result<String, RedirectError> {
    if rd.is_empty() {
        return Err(RedirectError::Empty);
    }
    if rd.len() > MAX_REDIRECT_LEN {
        return Err(RedirectError::TooLong {
            max: MAX_REDIRECT_LEN,
        });
    }
    check_characters(rd)?;
    if rd.starts_with('/') {
        return check_local_path(rd).map(|()| rd.to_owned());
    }
    check_absolute(rd, allowed_hosts)
}

/// Character checks shared by both shapes.
///
/// * As written: no control character, whitespace, backslash or invisible character.
/// * After one percent-decode of the whole target: no control character, backslash,
///   invisible character or non-space whitespace.
/// * After one percent-decode of the part before the first `?`/`#` (which decides where the
///   browser goes): no whitespace at all, not even a space.  An encoded space in the query
///   or fragment (`/search?q=a%20b`) is harmless and allowed.
fn check_characters(rd: &str) -> Result<(), RedirectError> {
    let strict = |c: char| c.is_control() || c.is_whitespace() || c == '\\' || is_invisible(c);
    let lenient =
        |c: char| c.is_control() || (c.is_whitespace() && c != ' ') || c == '\\' || is_invisible(c);
    let head = rd.split(['?', '#']).next().unwrap_or_default();
    let decoded_all = percent_decode_str(rd).decode_utf8_lossy();
    let decoded_head = percent_decode_str(head).decode_utf8_lossy();
    if rd.chars().any(strict)
        || decoded_all.chars().any(lenient)
        || decoded_head.chars().any(strict)
    {
        return Err(RedirectError::ForbiddenCharacter);
    }
    Ok(())
}

/// Zero-width and direction-changing characters that browsers do not strip but that make a
/// target look like something else.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

fn check_local_path(rd: &str) -> Result<(), RedirectError> {
    let path = rd.split(['?', '#']).next().unwrap_or_default();
    let decoded_path = percent_decode_str(path).decode_utf8_lossy();
    for candidate in [path, decoded_path.as_ref()] {
        if !candidate.starts_with('/') || candidate.contains("//") {
            return Err(RedirectError::InvalidPath);
        }
    }
    Ok(())
}

fn check_absolute(rd: &str, allowed_hosts: &[String]) -> Result<String, RedirectError> {
    let Some((scheme, rest)) = rd.split_once("://") else {
        return Err(RedirectError::UnsupportedScheme);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(RedirectError::UnsupportedScheme);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        // `https:///evil.example` would be re-parsed with `evil.example` as host.
        return Err(RedirectError::MalformedUrl);
    }
    if authority.contains('@') {
        return Err(RedirectError::UserInfo);
    }
    let url = Url::parse(rd).map_err(|_| RedirectError::MalformedUrl)?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(RedirectError::UnsupportedScheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectError::UserInfo);
    }
    let host = url.host().ok_or(RedirectError::MalformedUrl)?;
    let allowed = allowed_hosts
        .iter()
        .filter_map(|entry| AllowedHost::parse(entry))
        .any(|entry| entry.matches(&host, url.port_or_known_default()));
    if !allowed {
        return Err(RedirectError::HostNotAllowed);
    }
    Ok(url.into())
}

/// One parsed entry of the allow-list.
#[derive(Debug, PartialEq, Eq)]
struct AllowedHost {
    /// Canonical host (punycode domain, dotted IPv4, or bracketed IPv6) or, for a suffix
    /// entry, the canonical domain without its leading dot.
    host: String,
    /// Whether this is a `.example.com` suffix entry.
    suffix: bool,
    /// Explicit port, if any.
    port: Option<u16>,
}

impl AllowedHost {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        let (suffix, entry) = match entry.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        let (host_part, port) = split_port(entry)?;
        let host_part = host_part.strip_suffix('.').unwrap_or(host_part);
        if host_part.is_empty() || host_part.ends_with('.') || host_part.starts_with('.') {
            return None;
        }
        let host = Host::parse(host_part).ok()?;
        if suffix && !matches!(host, Host::Domain(_)) {
            return None;
        }
        Some(Self {
            host: host.to_string(),
            suffix,
            port,
        })
    }

    fn matches(&self, host: &Host<&str>, port: Option<u16>) -> bool {
        if self.port.is_some_and(|wanted| port != Some(wanted)) {
            return false;
        }
        match host {
            Host::Domain(domain) => {
                if domain.ends_with('.') || domain.is_empty() {
                    return false;
                }
                if self.suffix {
                    domain
                        .strip_suffix(self.host.as_str())
                        .and_then(|label| label.strip_suffix('.'))
                        .is_some_and(|label| !label.is_empty() && !label.ends_with('.'))
                } else {
                    *domain == self.host
                }
            }
            Host::Ipv4(_) | Host::Ipv6(_) => !self.suffix && host.to_string() == self.host,
        }
    }
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 literal.  Returns `None` for a
/// malformed port.
fn split_port(entry: &str) -> Option<(&str, Option<u16>)> {
    if entry.starts_with('[') {
        let close = entry.find(']')?;
        let (host, rest) = entry.split_at_checked(close + 1)?;
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, Some(parse_port(port)?))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match entry.matches(':').count() {
        0 => Some((entry, None)),
        1 => {
            let (host, port) = entry.split_once(':')?;
            Some((host, Some(parse_port(port)?)))
        }
        // A bare IPv6 literal such as `::1`; `Host::parse` needs the brackets.
        _ => None,
    }
}

fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| (*h).to_owned()).collect()
    }

    fn allowed() -> Vec<String> {
        hosts(&[
            "good.example",
            ".apps.example.com",
            "admin.example.org:8443",
            "127.0.0.1:8080",
            "[::1]",
            "bücher.example",
        ])
    }

    fn ok(rd: &str, expected: &str) {
        assert_eq!(
            safe_redirect(rd, &allowed()),
            Ok(expected.to_owned()),
            "input {rd:?}"
        );
    }

    fn err(rd: &str, expected: RedirectError) {
        assert_eq!(safe_redirect(rd, &allowed()), Err(expected), "input {rd:?}");
    }

    #[test]
    fn local_paths_are_returned_as_given() {
        for rd in [
            "/",
            "/dashboard",
            "/a/b/c?x=1&y=2#frag",
            "/?next=//evil.example",
            "/search?q=a%20b",
            "/#/route",
            "/a:b",
            "/café",
            "/%E2%9C%93",
            "/a/./b",
            "/a/../b",
        ] {
            ok(rd, rd);
        }
    }

    #[test]
    fn rejects_empty_and_overlong() {
        err("", RedirectError::Empty);
        let at_limit = format!("/{}", "a".repeat(MAX_REDIRECT_LEN - 1));
        assert_eq!(safe_redirect(&at_limit, &[]), Ok(at_limit.clone()));
        let over = format!("/{}", "a".repeat(MAX_REDIRECT_LEN));
        err(
            &over,
            RedirectError::TooLong {
                max: MAX_REDIRECT_LEN,
            },
        );
    }

    #[test]
    fn rejects_scheme_relative_and_backslash_tricks() {
        err("//evil.example", RedirectError::InvalidPath);
        err("//evil.example/path", RedirectError::InvalidPath);
        err("///evil.example", RedirectError::InvalidPath);
        err("/\\evil.example", RedirectError::ForbiddenCharacter);
        err("\\\\evil", RedirectError::ForbiddenCharacter);
        err("\\/evil.example", RedirectError::ForbiddenCharacter);
        err("/a\\b", RedirectError::ForbiddenCharacter);
        err("/%5Cevil", RedirectError::ForbiddenCharacter);
        err("/%5cevil", RedirectError::ForbiddenCharacter);
        err("/%2F%2Fevil", RedirectError::InvalidPath);
        err("/%2f/evil.example", RedirectError::InvalidPath);
        err("/%2Fevil.example", RedirectError::InvalidPath);
        err("/a//b", RedirectError::InvalidPath);
        err("/..//evil.example", RedirectError::InvalidPath);
        err("/.//evil.example", RedirectError::InvalidPath);
    }

    #[test]
    fn rejects_whitespace_and_control_characters() {
        err("/\t/evil.example", RedirectError::ForbiddenCharacter);
        err("/\n/evil.example", RedirectError::ForbiddenCharacter);
        err("/\r/evil.example", RedirectError::ForbiddenCharacter);
        err("/ /evil.example", RedirectError::ForbiddenCharacter);
        err(" /x", RedirectError::ForbiddenCharacter);
        err("/x ", RedirectError::ForbiddenCharacter);
        err("/%09/evil.example", RedirectError::ForbiddenCharacter);
        err("/%0A/evil.example", RedirectError::ForbiddenCharacter);
        err(
            "/%0d%0aSet-Cookie:%20a=b",
            RedirectError::ForbiddenCharacter,
        );
        err("/%00", RedirectError::ForbiddenCharacter);
        err("/a%20b", RedirectError::ForbiddenCharacter);
        err("/%20/evil.example", RedirectError::ForbiddenCharacter);
        err("/?%09", RedirectError::ForbiddenCharacter);
        err("/#%0a", RedirectError::ForbiddenCharacter);
        err("/?q=%C2%A0", RedirectError::ForbiddenCharacter);
        err("/?q=%5C", RedirectError::ForbiddenCharacter);
        err("/%3F%20", RedirectError::ForbiddenCharacter);
        err(
            "https://good.example/a%20b",
            RedirectError::ForbiddenCharacter,
        );
        ok(
            "https://good.example/?q=a%20b",
            "https://good.example/?q=a%20b",
        );
        err("/\u{0}", RedirectError::ForbiddenCharacter);
        err("/\u{7f}", RedirectError::ForbiddenCharacter);
        err("/\u{a0}evil", RedirectError::ForbiddenCharacter);
        err("/%C2%A0evil", RedirectError::ForbiddenCharacter);
        err("/\u{3000}evil", RedirectError::ForbiddenCharacter);
        err("/\u{200b}/evil", RedirectError::ForbiddenCharacter);
        err("/%E2%80%AEevil", RedirectError::ForbiddenCharacter);
        err("\thttps://good.example/", RedirectError::ForbiddenCharacter);
        err("https://good.example/\t", RedirectError::ForbiddenCharacter);
        err(
            "https://good.example/%0d%0a",
            RedirectError::ForbiddenCharacter,
        );
        err(
            "https://good.\u{0}example/",
            RedirectError::ForbiddenCharacter,
        );
    }

    #[test]
    fn rejects_non_http_schemes_and_relative_forms() {
        err("javascript:alert(1)", RedirectError::UnsupportedScheme);
        err("JavaScript:alert(1)", RedirectError::UnsupportedScheme);
        err(
            "javascript://good.example/%0aalert(1)",
            RedirectError::ForbiddenCharacter,
        );
        err(
            "javascript://good.example/",
            RedirectError::UnsupportedScheme,
        );
        err(
            "data:text/html,<script>alert(1)</script>",
            RedirectError::UnsupportedScheme,
        );
        err("vbscript:msgbox", RedirectError::UnsupportedScheme);
        err("ftp://good.example/", RedirectError::UnsupportedScheme);
        err("file:///etc/passwd", RedirectError::UnsupportedScheme);
        err("ws://good.example/", RedirectError::UnsupportedScheme);
        err("https:evil.example", RedirectError::UnsupportedScheme);
        err("https:good.example", RedirectError::UnsupportedScheme);
        err("https:/good.example", RedirectError::UnsupportedScheme);
        err("dashboard", RedirectError::UnsupportedScheme);
        err("good.example/x", RedirectError::UnsupportedScheme);
        err("./x", RedirectError::UnsupportedScheme);
        err("?x=1", RedirectError::UnsupportedScheme);
        err("#x", RedirectError::UnsupportedScheme);
        err("%2F%2Fevil.example", RedirectError::UnsupportedScheme);
        err("x://good.example/", RedirectError::UnsupportedScheme);
        err("https+x://good.example/", RedirectError::UnsupportedScheme);
    }

    #[test]
    fn accepts_allowed_absolute_urls() {
        ok("https://good.example/", "https://good.example/");
        ok("https://good.example", "https://good.example/");
        ok("http://good.example/a?b=c#d", "http://good.example/a?b=c#d");
        ok("HTTPS://GOOD.EXAMPLE/Path", "https://good.example/Path");
        ok("HtTpS://Good.Example/", "https://good.example/");
        ok("https://good.example:443/", "https://good.example/");
        ok("http://good.example:80/", "http://good.example/");
        ok("https://x.apps.example.com/", "https://x.apps.example.com/");
        ok(
            "https://a.b.apps.example.com/p",
            "https://a.b.apps.example.com/p",
        );
        ok("https://X.Apps.Example.Com/", "https://x.apps.example.com/");
        ok(
            "https://admin.example.org:8443/x",
            "https://admin.example.org:8443/x",
        );
        ok("http://127.0.0.1:8080/", "http://127.0.0.1:8080/");
        ok("https://[::1]/", "https://[::1]/");
        ok("https://[0:0:0:0:0:0:0:1]/", "https://[::1]/");
    }

    #[test]
    fn idn_hosts_compare_in_punycode() {
        ok("https://bücher.example/", "https://xn--bcher-kva.example/");
        ok(
            "https://xn--bcher-kva.example/",
            "https://xn--bcher-kva.example/",
        );
        ok("https://BÜCHER.example/", "https://xn--bcher-kva.example/");
        // Cyrillic 'о' look-alike of "good".
        err("https://gооd.example/", RedirectError::HostNotAllowed);
        let list = hosts(&["xn--bcher-kva.example"]);
        assert_eq!(
            safe_redirect("https://bücher.example/", &list),
            Ok("https://xn--bcher-kva.example/".to_owned())
        );
    }

    #[test]
    fn rejects_other_hosts() {
        err("https://evil.example/", RedirectError::HostNotAllowed);
        err(
            "https://good.example.evil.net/",
            RedirectError::HostNotAllowed,
        );
        err("https://evilgood.example/", RedirectError::HostNotAllowed);
        err("https://sub.good.example/", RedirectError::HostNotAllowed);
        err("https://apps.example.com/", RedirectError::HostNotAllowed);
        err(
            "https://evil-apps.example.com/",
            RedirectError::HostNotAllowed,
        );
        err(
            "https://apps.example.com.evil.net/",
            RedirectError::HostNotAllowed,
        );
        err("https://xapps.example.com/", RedirectError::HostNotAllowed);
        err("https://example.com/", RedirectError::HostNotAllowed);
        err("https://127.0.0.2:8080/", RedirectError::HostNotAllowed);
        err("https://[::2]/", RedirectError::HostNotAllowed);
        err("https://1.2.3.4/", RedirectError::HostNotAllowed);
    }

    #[test]
    fn wildcard_rules() {
        let list = hosts(&[".example.com"]);
        let check = |rd: &str| safe_redirect(rd, &list);
        assert!(check("https://a.example.com/").is_ok());
        assert!(check("https://a.b.example.com/").is_ok());
        assert_eq!(
            check("https://example.com/"),
            Err(RedirectError::HostNotAllowed)
        );
        assert_eq!(
            check("https://evil-example.com/"),
            Err(RedirectError::HostNotAllowed)
        );
        assert_eq!(
            check("https://example.com.evil.net/"),
            Err(RedirectError::HostNotAllowed)
        );
        assert_eq!(
            check("https://aexample.com/"),
            Err(RedirectError::HostNotAllowed)
        );
        assert_eq!(
            check("https://a.example.com./"),
            Err(RedirectError::HostNotAllowed)
        );
        assert!(check("https://a.example.com:8443/").is_ok());

        let both = hosts(&[".example.com", "example.com"]);
        assert!(safe_redirect("https://example.com/", &both).is_ok());
        assert!(safe_redirect("https://a.example.com/", &both).is_ok());

        let with_port = hosts(&[".example.com:8443"]);
        assert!(safe_redirect("https://a.example.com:8443/", &with_port).is_ok());
        assert_eq!(
            safe_redirect("https://a.example.com/", &with_port),
            Err(RedirectError::HostNotAllowed)
        );
    }

    #[test]
    fn bare_entries_allow_any_port_and_port_entries_pin_it() {
        ok("https://good.example:8443/", "https://good.example:8443/");
        ok("http://good.example:443/", "http://good.example:443/");
        ok("https://[::1]:9000/x", "https://[::1]:9000/x");
        err("https://evil.example:8443/", RedirectError::HostNotAllowed);
        err("https://admin.example.org/", RedirectError::HostNotAllowed);
        err(
            "https://admin.example.org:8444/",
            RedirectError::HostNotAllowed,
        );
        err("http://127.0.0.1/", RedirectError::HostNotAllowed);
        err("http://127.0.0.1:8081/", RedirectError::HostNotAllowed);
        let list = hosts(&["good.example:443"]);
        assert_eq!(
            safe_redirect("https://good.example/", &list),
            Ok("https://good.example/".to_owned())
        );
        assert_eq!(
            safe_redirect("http://good.example/", &list),
            Err(RedirectError::HostNotAllowed)
        );
        assert_eq!(
            safe_redirect("https://good.example:8443/", &list),
            Err(RedirectError::HostNotAllowed)
        );
        // A bare IP entry, as built from a public URL's host, allows its dev port.
        let dev = hosts(&["127.0.0.1"]);
        assert_eq!(
            safe_redirect("http://127.0.0.1:41234/x", &dev),
            Ok("http://127.0.0.1:41234/x".to_owned())
        );
    }

    #[test]
    fn rejects_trailing_dot_hosts() {
        err("https://good.example./", RedirectError::HostNotAllowed);
        err("https://good.example../", RedirectError::HostNotAllowed);
        err(
            "https://x.apps.example.com./",
            RedirectError::HostNotAllowed,
        );
        let list = hosts(&["good.example."]);
        assert!(safe_redirect("https://good.example/", &list).is_ok());
        assert_eq!(
            safe_redirect("https://good.example./", &list),
            Err(RedirectError::HostNotAllowed)
        );
    }

    #[test]
    fn rejects_userinfo_tricks() {
        err(
            "https://good.example@evil.example/",
            RedirectError::UserInfo,
        );
        err(
            "https://good.example:443@evil.example/",
            RedirectError::UserInfo,
        );
        err("https://user:pass@good.example/", RedirectError::UserInfo);
        err("https://user@good.example/", RedirectError::UserInfo);
        err("https://@good.example/", RedirectError::UserInfo);
        err(
            "https://good.example%40evil.example/",
            RedirectError::MalformedUrl,
        );
        // '@' after the authority is just part of the path.
        ok(
            "https://good.example/@evil.example",
            "https://good.example/@evil.example",
        );
    }

    #[test]
    fn rejects_malformed_urls() {
        err("https://", RedirectError::MalformedUrl);
        err("https:///evil.example", RedirectError::MalformedUrl);
        err("https:////evil.example", RedirectError::MalformedUrl);
        err("https://good.example:99999/", RedirectError::MalformedUrl);
        err("https://[::1/", RedirectError::MalformedUrl);
        err("https://good%2Fexample/", RedirectError::MalformedUrl);
        err(
            "https://good.example%2F.evil.net/",
            RedirectError::MalformedUrl,
        );
    }

    #[test]
    fn encoded_hosts_are_canonicalised_before_matching() {
        // The url crate percent-decodes hosts; the result still has to be allowed.
        ok("https://good%2Eexample/", "https://good.example/");
        ok("https://%67ood.example/", "https://good.example/");
    }

    #[test]
    fn ipv4_forms_are_canonicalised() {
        let list = hosts(&["127.0.0.1"]);
        for rd in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://127.1/",
        ] {
            assert_eq!(
                safe_redirect(rd, &list),
                Ok("http://127.0.0.1/".to_owned()),
                "{rd}"
            );
        }
    }

    #[test]
    fn ipv6_entries() {
        let list = hosts(&["[::1]:8443", "::2", "[fe80::1"]);
        assert!(safe_redirect("https://[::1]:8443/", &list).is_ok());
        assert_eq!(
            safe_redirect("https://[::1]/", &list),
            Err(RedirectError::HostNotAllowed)
        );
        // Unbracketed and malformed entries match nothing.
        assert_eq!(
            safe_redirect("https://[::2]/", &list),
            Err(RedirectError::HostNotAllowed)
        );
        assert_eq!(
            safe_redirect("https://[fe80::1]/", &list),
            Err(RedirectError::HostNotAllowed)
        );
    }

    #[test]
    fn bad_or_empty_allow_list_entries_match_nothing() {
        let list = hosts(&[
            "",
            ".",
            "..",
            ".:443",
            "good.example:",
            "good.example:x",
            ":443",
        ]);
        for rd in ["https://good.example/", "https://a.b/", "https://x/"] {
            assert_eq!(
                safe_redirect(rd, &list),
                Err(RedirectError::HostNotAllowed),
                "{rd}"
            );
        }
        assert_eq!(
            safe_redirect("https://good.example/", &[]),
            Err(RedirectError::HostNotAllowed)
        );
        // Suffix entries never match IP addresses.
        let ip_suffix = hosts(&[".0.0.1"]);
        assert_eq!(
            safe_redirect("http://127.0.0.1/", &ip_suffix),
            Err(RedirectError::HostNotAllowed)
        );
    }

    #[test]
    fn allow_list_entries_are_case_and_space_insensitive() {
        let list = hosts(&["  GOOD.Example  ", ".APPS.example.COM"]);
        assert!(safe_redirect("https://good.example/", &list).is_ok());
        assert!(safe_redirect("https://x.apps.example.com/", &list).is_ok());
    }

    #[test]
    fn errors_have_human_messages_without_echoing_input() {
        let e = safe_redirect("https://evil.example/<x>", &allowed()).expect_err("rejected");
        assert_eq!(
            e.to_string(),
            "the redirect URL points to a host that is not allowed"
        );
        assert!(!e.to_string().contains("evil"));
        assert_eq!(
            RedirectError::TooLong { max: 2048 }.to_string(),
            "the redirect target is longer than 2048 bytes"
        );
    }

    /// Whatever is accepted, resolved by a WHATWG parser against our own origin — as written
    /// and after one more percent-decode — lands on our origin or an allowed host.
    #[test]
    fn property_accepted_targets_stay_on_allowed_origins() {
        let tokens = [
            "/",
            "\\",
            "%2f",
            "%5c",
            "%09",
            "%20",
            "evil.example",
            "good.example",
            "@",
            ":",
            "https:",
            "//",
            "http://",
            "HTTPS://",
            "?",
            "#",
            ".",
            "..",
            "%2e",
            "x",
            "%40",
            ":443",
            "[::1]",
            "\t",
            "javascript:",
            "%0a",
            "%252f",
        ];
        let counts = ["1", "2", "3", "4", "5", "6", "7"];
        let list = hosts(&["good.example"]);
        let base = Url::parse("https://clearance.local/some/page").expect("base");
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let count: usize = rng.pick(&counts).parse().expect("digit");
            let mut rd = String::new();
            for _ in 0..count {
                rd.push_str(rng.pick(&tokens));
            }
            let Ok(out) = safe_redirect(&rd, &list) else {
                continue;
            };
            accepted += 1;
            let decoded = percent_decode_str(&out).decode_utf8_lossy().into_owned();
            for candidate in [out.as_str(), decoded.as_str()] {
                let Ok(resolved) = base.join(candidate) else {
                    continue;
                };
                let host = resolved.host_str().unwrap_or_default();
                assert!(
                    host == "clearance.local" || host == "good.example",
                    "{rd:?} -> {candidate:?} -> {resolved}"
                );
                assert!(resolved.username().is_empty(), "{rd:?} -> {resolved}");
            }
        }
        assert!(accepted > 100, "only {accepted} inputs were accepted");
    }
}
