//! Canonical request-path normalisation used for route matching and for forwarding upstream.
//!
//! Access rules are matched against the path produced by [`normalize_path`], and the very same
//! string is what the proxy forwards upstream.  Matching one spelling of a path while the
//! upstream resolves another is the root cause of most gatekeeper bypasses (`/admin;x/`,
//! `/public/..;/admin`, `/%2e%2e/admin`, `/admin%2F`, `//admin`, `/admin%20` …), so the
//! normaliser either produces one unambiguous spelling or refuses the request.
//!
//! # Rules
//!
//! The input is the request-target path **without** the query string (the caller splits at
//! the first `?`).  In order:
//!
//! 1. **Origin form only.**  The path must be non-empty, at most [`MAX_PATH_LEN`] bytes and
//!    start with `/`.  Absolute-form (`http://host/x`), authority-form and asterisk-form (`*`)
//!    targets are rejected.
//! 2. **Raw characters.**  A raw `\` (some servers treat it as `/`), `?`, `#`, whitespace or
//!    any control character is rejected; none of them is valid in a request-target.
//! 3. **Path parameters are stripped.**  The path is split on raw `/`, and in every segment
//!    everything from the first raw `;` onward is removed, so `/admin;x=1/panel` becomes
//!    `/admin/panel` and `/..;/admin` becomes `/../admin` (which is then resolved).  Servlet
//!    containers (Tomcat, Jetty) strip parameters the same way before routing, so stripping
//!    keeps our view identical to theirs, and because the stripped path is what is forwarded,
//!    the upstream never sees the parameters at all.  Rejecting was the alternative, but `;`
//!    parameters (`;jsessionid=…`) are still emitted by legitimate Java applications and
//!    stripping is just as safe given that the canonical path is what gets forwarded.  An
//!    *encoded* semicolon (`%3B`) is rejected, because servers disagree about whether it
//!    delimits parameters.
//! 4. **Decode exactly once.**  Each segment is percent-decoded once.  A `%` that is not
//!    followed by two hex digits is rejected.  Decoding must not produce `/` (`%2F`),
//!    `\` (`%5C`) or `;` (`%3B`), and the decoded bytes must be valid UTF-8 (this also rejects
//!    overlong forms such as `%C0%AE`).
//! 5. **No double encoding.**  If the decoded segment still contains a valid `%XX` escape
//!    (e.g. `%252e` decoded to `%2e`), the request is rejected: a component that decodes
//!    again would see a different path.
//! 6. **Decoded characters.**  Control characters (C0, DEL, C1, including NUL) are rejected;
//!    so is any whitespace other than a plain space, Unicode look-alikes that NFKC or
//!    Windows "best fit" mappings turn into `.`, `/`, `\`, `;` or `%` (fullwidth solidus,
//!    one-dot leader, Greek question mark …), and invisible format characters (zero-width
//!    spaces, bidi controls, BOM …).
//! 7. **No trimmable segment edges.**  A segment that starts or ends with a space, or ends
//!    with `.` (other than `.` and `..` themselves), is rejected: IIS/Windows and several Java
//!    frameworks silently trim these, turning `/admin.` or `/admin%20` into `/admin`.
//! 8. **Dot segments and empty segments.**  Empty segments (`//`) are collapsed, `.` is
//!    dropped and `..` removes the previous segment — including dot segments spelled with
//!    escapes such as `%2e`, `%2E%2e` or `.%2E`.  A `..` that would climb above the root is
//!    rejected rather than clamped.
//! 9. **Trailing slash.**  A trailing `/` is kept, and a path whose last segment was `.`,
//!    `..` or a parameter-only segment also ends with `/` (as in RFC 3986 §5.2.4).
//! 10. **Re-encoding.**  Every decoded segment is re-encoded: unreserved characters, sub-delims
//!     other than `;`, `:` and `@` are written literally, everything else (space, `%`, `?`,
//!     `#`, `"`, `<`, `>`, non-ASCII …) as UTF-8 `%XX` with upper-case hex.  The result is a
//!     valid absolute path, and normalising it again yields the same string.
//!
//! Matching is case-sensitive: `/Admin` and `/admin` are different paths.  Route prefixes
//! in configuration are checked with [`normalize_path`] when the configuration loads, so that
//! they use the same spelling as request paths (see `domain::route::prefix_matches`).

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Longest raw request path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 8192;

/// Bytes that are percent-encoded when a decoded segment is written back out.
///
/// Everything except `pchar` from RFC 3986 minus `;` (unreserved, the sub-delims
/// `!$&'()*+,=`, `:` and `@`).
const SEGMENT_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Why a request path was refused.  The messages are safe to show in a 400 response: they
/// never echo the offending input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path was the empty string.
    #[error("the request path is empty")]
    Empty,
    /// The path exceeded [`MAX_PATH_LEN`].
    #[error("the request path is longer than {max} bytes")]
    TooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The request target was not in origin form (did not start with '/').
    #[error("the request path must start with '/'")]
    NotOriginForm,
    /// A backslash, raw or encoded as `%5C`.
    #[error("the request path must not contain a backslash")]
    Backslash,
    /// An encoded slash (`%2F`).
    #[error("the request path must not contain an encoded slash (%2F)")]
    EncodedSlash,
    /// An encoded semicolon (`%3B`).
    #[error("the request path must not contain an encoded semicolon (%3B)")]
    EncodedSemicolon,
    /// A `%` not followed by two hexadecimal digits.
    #[error("the request path contains a malformed percent-escape")]
    MalformedEscape,
    /// A valid percent-escape survived one round of decoding.
    #[error("the request path is percent-encoded more than once")]
    DoubleEncoding,
    /// The decoded bytes were not valid UTF-8.
    #[error("the request path does not decode to valid UTF-8")]
    InvalidUtf8,
    /// A control character (including NUL), raw or decoded.
    #[error("the request path contains a control character")]
    ControlCharacter,
    /// A character that is not allowed in a request path (raw whitespace, `?`, `#`, or
    /// non-space whitespace after decoding).
    #[error("the request path contains a character that is not allowed")]
    InvalidCharacter,
    /// A Unicode look-alike of a path delimiter, or an invisible formatting character.
    #[error("the request path contains an ambiguous Unicode character")]
    AmbiguousCharacter,
    /// A segment that some servers would trim (leading/trailing space, trailing dot).
    #[error("a request path segment starts or ends with a space or ends with a dot")]
    AmbiguousSegment,
    /// A `..` segment that would climb above the root.
    #[error("the request path climbs above the root")]
    AboveRoot,
    /// Forward-auth only: a `.` or `..` segment, in any spelling (`%2e`, `.%2E` …).
    #[error(
        "the request path contains a dot segment ('.' or '..'), which forward-auth does not judge"
    )]
    DotSegment,
    /// Forward-auth only: a `;` in a path segment (a path parameter).
    #[error("the request path contains ';', which forward-auth does not judge")]
    PathParameter,
    /// Forward-auth only: an empty segment (`//`).
    #[error("the request path contains an empty segment ('//'), which forward-auth does not judge")]
    EmptySegment,
    /// Forward-auth only: an encoded `?` (`%3F`) or `#` (`%23`).
    #[error("the request path contains an encoded '?' or '#', which forward-auth does not judge")]
    EncodedDelimiter,
    /// A raw `#` (a fragment never belongs in a request target).
    #[error("the request target contains '#', which never belongs in a request")]
    Fragment,
}

/// A request path in canonical form: decoded once, validated, dot segments resolved and
/// re-encoded.  Always starts with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    /// The canonical, percent-encoded path used both for matching and for forwarding.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the value, returning the canonical path.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NormalizedPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Normalises a raw request path (without its query string).  See the module documentation
/// for the exact rules.
pub fn normalize_path(raw_path: &str) -> Result<NormalizedPath, PathError> {
    if raw_path.is_empty() {
        return Err(PathError::Empty);
    }
    if raw_path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong { max: MAX_PATH_LEN });
    }
    let Some(rest) = raw_path.strip_prefix('/') else {
        return Err(PathError::NotOriginForm);
    };
    check_raw_chars(raw_path)?;

    let raw_segments: Vec<&str> = rest.split('/').collect();
    let last_index = raw_segments.len().saturating_sub(1);
    let mut segments: Vec<String> = Vec::with_capacity(raw_segments.len());
    let mut ends_as_directory = false;

    for (index, raw_segment) in raw_segments.iter().enumerate() {
        let is_last = index == last_index;
        let without_params = raw_segment
            .split_once(';')
            .map_or(*raw_segment, |(head, _params)| head);
        let segment = decode_segment(without_params)?;
        check_decoded_segment(&segment)?;
        match segment.as_str() {
            "" | "." => {
                if is_last {
                    ends_as_directory = true;
                }
            }
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                if is_last {
                    ends_as_directory = true;
                }
            }
            _ => segments.push(segment),
        }
    }

    let mut out = String::with_capacity(raw_path.len() + 8);
    for segment in &segments {
        out.push('/');
        out.extend(utf8_percent_encode(segment, SEGMENT_ENCODE_SET));
    }
    if segments.is_empty() || ends_as_directory {
        out.push('/');
    }
    Ok(NormalizedPath(out))
}

/// The path of a request that Clearance judges but does not forward (forward-auth), which must
/// already be in canonical form: the upstream receives the raw target from the proxy in front,
/// so judging any normalised spelling of it would judge a path the upstream may resolve
/// differently (`/public/..;/admin`, `/%2e%2e/admin`, `//admin` …). Such a path is refused.
///
/// Canonical here means: every rule of [`normalize_path`] holds, and in addition
///
/// * no `;` anywhere (no path parameters, which Tomcat and Jetty strip and nginx does not);
/// * no empty segment (`//`); only the last segment may be empty (a trailing `/`);
/// * no segment that is `.` or `..`, raw or after decoding (`%2e`, `.%2E`, `%2E%2e` …);
/// * no encoded `?` (`%3F`) or `#` (`%23`), on top of the encoded `/`, `\`, `;` and NUL,
///   double encoding and non-UTF-8 that [`normalize_path`] refuses already.
///
/// With these, the segments the upstream sees are exactly the segments judged: the only
/// difference left between the raw path and the returned one is how escapes are spelled
/// inside a segment (`%c3%a9` or `%C3%A9`, `%61` or `a`), which every decoder reads alike.
pub fn canonical_target_path(raw_path: &str) -> Result<NormalizedPath, PathError> {
    if raw_path.contains('#') {
        return Err(PathError::Fragment);
    }
    if raw_path.contains(';') {
        return Err(PathError::PathParameter);
    }
    let normalized = normalize_path(raw_path)?;
    // The normaliser accepted it, so every escape is valid and decodes once: the segments can
    // be judged on their raw bytes.
    let Some(rest) = raw_path.strip_prefix('/') else {
        return Err(PathError::NotOriginForm);
    };
    let mut segments = rest.split('/').peekable();
    let mut count = 0;
    while let Some(segment) = segments.next() {
        count += 1;
        if segment.is_empty() {
            if segments.peek().is_none() {
                continue;
            }
            return Err(PathError::EmptySegment);
        }
        if is_dot_segment(segment) {
            return Err(PathError::DotSegment);
        }
        if has_encoded(segment, b"?#") {
            return Err(PathError::EncodedDelimiter);
        }
    }
    // By construction the judged path has the same segments as the raw one.
    if normalized.as_str().split('/').count() != count + 1 {
        return Err(PathError::AmbiguousSegment);
    }
    Ok(normalized)
}

/// Whether a raw segment is `.` or `..` in any spelling (`%2e`, `.%2E`, `%2E%2e` ...).
fn is_dot_segment(raw: &str) -> bool {
    let mut rest = raw.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// Whether a raw segment holds one of `bytes` percent-encoded.
fn has_encoded(raw: &str, bytes: &[u8]) -> bool {
    raw.as_bytes().windows(3).any(|w| match w {
        [b'%', high, low] => match (hex_value(*high), hex_value(*low)) {
            (Some(h), Some(l)) => bytes.contains(&(h * 16 + l)),
            _ => false,
        },
        _ => false,
    })
}

fn check_raw_chars(raw_path: &str) -> Result<(), PathError> {
    for c in raw_path.chars() {
        if c == '\\' {
            return Err(PathError::Backslash);
        }
        if c.is_control() {
            return Err(PathError::ControlCharacter);
        }
        if c == '?' || c == '#' || c.is_whitespace() {
            return Err(PathError::InvalidCharacter);
        }
    }
    Ok(())
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one raw segment exactly once.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            decoded.push(byte);
            continue;
        }
        let high = bytes.next().and_then(hex_value);
        let low = bytes.next().and_then(hex_value);
        let (Some(high), Some(low)) = (high, low) else {
            return Err(PathError::MalformedEscape);
        };
        let value = high * 16 + low;
        match value {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::EncodedSemicolon),
            _ => decoded.push(value),
        }
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    if contains_percent_escape(&text) {
        return Err(PathError::DoubleEncoding);
    }
    Ok(text)
}

/// Whether `text` contains `%` followed by two hex digits.
fn contains_percent_escape(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| matches!(w, [b'%', high, low] if hex_value(*high).is_some() && hex_value(*low).is_some()))
}

/// Characters that some normalisation (NFKC, Windows best-fit code pages) turns into a path
/// delimiter, a dot, or a percent sign.
fn is_delimiter_lookalike(c: char) -> bool {
    matches!(
        c,
        // '.'
        '\u{2024}' | '\u{FE52}' | '\u{FF0E}'
        // '/'
        | '\u{2044}' | '\u{2215}' | '\u{29F8}' | '\u{FF0F}'
        // '\'
        | '\u{2216}' | '\u{29F5}' | '\u{29F9}' | '\u{FE68}' | '\u{FF3C}'
        // ';'
        | '\u{037E}' | '\u{FE54}' | '\u{FF1B}'
        // '%'
        | '\u{FE6A}' | '\u{FF05}'
        // '?' and '#'
        | '\u{FE56}' | '\u{FF1F}' | '\u{FE5F}' | '\u{FF03}'
    )
}

/// Invisible or direction-changing characters that make two different paths look alike.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
    )
}

fn check_decoded_segment(segment: &str) -> Result<(), PathError> {
    for c in segment.chars() {
        if c.is_control() {
            return Err(PathError::ControlCharacter);
        }
        if c.is_whitespace() && c != ' ' {
            return Err(PathError::InvalidCharacter);
        }
        if is_delimiter_lookalike(c) || is_invisible(c) {
            return Err(PathError::AmbiguousCharacter);
        }
    }
    if segment == "." || segment == ".." {
        return Ok(());
    }
    if segment.starts_with(' ') || segment.ends_with(' ') || segment.ends_with('.') {
        return Err(PathError::AmbiguousSegment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::route::prefix_matches;
    use crate::testutil::XorShift;

    fn norm(raw: &str) -> Result<String, PathError> {
        normalize_path(raw).map(NormalizedPath::into_string)
    }

    fn ok(raw: &str, expected: &str) {
        assert_eq!(norm(raw), Ok(expected.to_owned()), "input {raw:?}");
    }

    fn err(raw: &str, expected: PathError) {
        assert_eq!(norm(raw), Err(expected), "input {raw:?}");
    }

    #[test]
    fn plain_paths_are_unchanged() {
        ok("/", "/");
        ok("/a", "/a");
        ok("/a/b/c", "/a/b/c");
        ok("/a/b/c/", "/a/b/c/");
        ok("/index.html", "/index.html");
        ok(
            "/.well-known/openid-configuration",
            "/.well-known/openid-configuration",
        );
        ok("/a-b_c~d!$&'()*+,=:@", "/a-b_c~d!$&'()*+,=:@");
        ok("/.hidden/x", "/.hidden/x");
        ok("/..foo/x", "/..foo/x");
        ok("/a..b", "/a..b");
    }

    #[test]
    fn rejects_non_origin_form() {
        err("", PathError::Empty);
        err("*", PathError::NotOriginForm);
        err("http://evil.example/admin", PathError::NotOriginForm);
        err("evil.example:443", PathError::NotOriginForm);
        err("admin", PathError::NotOriginForm);
        err("%2Fadmin", PathError::NotOriginForm);
        err(" /admin", PathError::NotOriginForm);
    }

    #[test]
    fn rejects_overlong_paths() {
        let at_limit = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert!(normalize_path(&at_limit).is_ok());
        let over = format!("/{}", "a".repeat(MAX_PATH_LEN));
        err(&over, PathError::TooLong { max: MAX_PATH_LEN });
    }

    #[test]
    fn collapses_repeated_slashes() {
        ok("//", "/");
        ok("///", "/");
        ok("//admin", "/admin");
        ok("/a//b///c", "/a/b/c");
        ok("/a/b//", "/a/b/");
    }

    #[test]
    fn resolves_dot_segments() {
        ok("/.", "/");
        ok("/./", "/");
        ok("/a/./b", "/a/b");
        ok("/a/b/..", "/a/");
        ok("/a/b/../", "/a/");
        ok("/a/b/../c", "/a/c");
        ok("/a/..", "/");
        ok("/a/.", "/a/");
        ok("/public/../admin", "/admin");
        ok("/a/b/c/../../d", "/a/d");
        ok("/a/./../b", "/b");
    }

    #[test]
    fn resolves_encoded_dot_segments() {
        ok("/public/%2e%2e/admin", "/admin");
        ok("/public/%2E%2E/admin", "/admin");
        ok("/public/%2E%2e/admin", "/admin");
        ok("/public/.%2e/admin", "/admin");
        ok("/public/%2e./admin", "/admin");
        ok("/public/%2e/admin", "/public/admin");
        ok("/a/%2e%2e", "/");
    }

    #[test]
    fn rejects_climbing_above_root() {
        err("/..", PathError::AboveRoot);
        err("/../", PathError::AboveRoot);
        err("/../etc/passwd", PathError::AboveRoot);
        err("/a/../..", PathError::AboveRoot);
        err("/a/../../b", PathError::AboveRoot);
        err("/%2e%2e/admin", PathError::AboveRoot);
        err("//..//admin", PathError::AboveRoot);
        err("/..;/admin", PathError::AboveRoot);
    }

    #[test]
    fn strips_path_parameters() {
        ok("/admin;x=1/panel", "/admin/panel");
        ok("/admin;jsessionid=ABC", "/admin");
        ok("/admin;", "/admin");
        ok("/admin;/", "/admin/");
        ok("/a;b;c/d", "/a/d");
        ok("/;x/admin", "/admin");
        ok("/admin/;x", "/admin/");
        ok("/admin/.;x", "/admin/");
        // The classic Tomcat traversal: `..;` is still `..`.
        ok("/public/..;/admin", "/admin");
        ok("/public/..;x=y/admin", "/admin");
        ok("/public/%2e%2e;/admin", "/admin");
        // Parameter content ends at the next raw '/'.
        ok("/admin;x=/../panel", "/panel");
        // Escapes inside the stripped parameter do not matter.
        ok("/admin;%2F%00/x", "/admin/x");
    }

    #[test]
    fn rejects_encoded_delimiters() {
        err("/admin%2Fpanel", PathError::EncodedSlash);
        err("/admin%2fpanel", PathError::EncodedSlash);
        err("/%2F%2Fevil", PathError::EncodedSlash);
        err("/public/%2e%2e%2Fadmin", PathError::EncodedSlash);
        err("/admin%5Cpanel", PathError::Backslash);
        err("/admin%5cpanel", PathError::Backslash);
        err("/admin%3Bx", PathError::EncodedSemicolon);
        err("/admin%3bx", PathError::EncodedSemicolon);
    }

    #[test]
    fn rejects_backslashes() {
        err("/admin\\panel", PathError::Backslash);
        err("/\\evil", PathError::Backslash);
        err("/public/..\\admin", PathError::Backslash);
    }

    #[test]
    fn rejects_malformed_escapes() {
        err("/%", PathError::MalformedEscape);
        err("/a%", PathError::MalformedEscape);
        err("/a%2", PathError::MalformedEscape);
        err("/a%zz", PathError::MalformedEscape);
        err("/a%g0", PathError::MalformedEscape);
        err("/a%%41", PathError::MalformedEscape);
        err("/100%", PathError::MalformedEscape);
    }

    #[test]
    fn rejects_double_encoding() {
        err("/%252e%252e/admin", PathError::DoubleEncoding);
        err("/public/%252e%252e/admin", PathError::DoubleEncoding);
        err("/admin%252Fpanel", PathError::DoubleEncoding);
        err("/%2541", PathError::DoubleEncoding);
        err("/%25%34%31", PathError::DoubleEncoding);
    }

    #[test]
    fn literal_percent_survives_and_is_reencoded() {
        ok("/100%25", "/100%25");
        ok("/100%25zz", "/100%25zz");
        ok("/a%25g1", "/a%25g1");
    }

    #[test]
    fn rejects_control_characters() {
        err("/admin%00", PathError::ControlCharacter);
        err("/admin%00.html", PathError::ControlCharacter);
        err("/a%0d%0aSet-Cookie:x", PathError::ControlCharacter);
        err("/a%09b", PathError::ControlCharacter);
        err("/a%7f", PathError::ControlCharacter);
        err("/a%C2%85", PathError::ControlCharacter);
        err("/a\u{0}", PathError::ControlCharacter);
        err("/a\tb", PathError::ControlCharacter);
        err("/a\u{7f}", PathError::ControlCharacter);
        err("/a\u{85}", PathError::ControlCharacter);
    }

    #[test]
    fn rejects_invalid_utf8() {
        err("/%ff", PathError::InvalidUtf8);
        err("/%C3", PathError::InvalidUtf8);
        err("/%C0%AE%C0%AE/admin", PathError::InvalidUtf8);
        err("/%e0%80%ae", PathError::InvalidUtf8);
        err("/%ed%a0%80", PathError::InvalidUtf8);
    }

    #[test]
    fn rejects_raw_characters_not_allowed_in_a_target() {
        err("/a b", PathError::InvalidCharacter);
        err("/a?b", PathError::InvalidCharacter);
        err("/a#b", PathError::InvalidCharacter);
        err("/a\u{a0}b", PathError::InvalidCharacter);
        err("/a\u{3000}b", PathError::InvalidCharacter);
    }

    #[test]
    fn rejects_decoded_non_space_whitespace() {
        err("/a%C2%A0b", PathError::InvalidCharacter);
        err("/a%E3%80%80b", PathError::InvalidCharacter);
        err("/a%E2%80%A8b", PathError::InvalidCharacter);
    }

    #[test]
    fn rejects_unicode_lookalikes_and_invisibles() {
        err(
            "/public/%EF%BC%8E%EF%BC%8E/admin",
            PathError::AmbiguousCharacter,
        );
        err(
            "/public/\u{ff0e}\u{ff0e}/admin",
            PathError::AmbiguousCharacter,
        );
        err("/admin%EF%BC%8Fpanel", PathError::AmbiguousCharacter);
        err("/admin%E2%88%95panel", PathError::AmbiguousCharacter);
        err("/admin%EF%BC%BCpanel", PathError::AmbiguousCharacter);
        err("/admin%CD%BEx", PathError::AmbiguousCharacter);
        err("/%E2%80%A4%E2%80%A4/x", PathError::AmbiguousCharacter);
        err("/ad%E2%80%8Bmin", PathError::AmbiguousCharacter);
        err("/admin%EF%BB%BF", PathError::AmbiguousCharacter);
        err("/admin%E2%80%AE", PathError::AmbiguousCharacter);
        err("/admin%C2%AD", PathError::AmbiguousCharacter);
    }

    #[test]
    fn rejects_trimmable_segment_edges() {
        err("/admin%20", PathError::AmbiguousSegment);
        err("/admin%20/x", PathError::AmbiguousSegment);
        err("/%20admin", PathError::AmbiguousSegment);
        err("/%20", PathError::AmbiguousSegment);
        err("/admin.", PathError::AmbiguousSegment);
        err("/admin./x", PathError::AmbiguousSegment);
        err("/admin%2e", PathError::AmbiguousSegment);
        err("/...", PathError::AmbiguousSegment);
        err("/a/..../b", PathError::AmbiguousSegment);
        err("/%2e%2e%2e/x", PathError::AmbiguousSegment);
    }

    #[test]
    fn reencodes_characters_that_need_it() {
        ok("/my%20file.txt", "/my%20file.txt");
        ok("/a%3Fb", "/a%3Fb");
        ok("/a%23b", "/a%23b");
        ok("/caf%C3%A9", "/caf%C3%A9");
        ok("/caf%c3%a9", "/caf%C3%A9");
        ok("/café", "/caf%C3%A9");
        ok("/%E2%9C%93", "/%E2%9C%93");
        ok(
            "/a%22%3C%3E%60%7B%7D%7C%5E%5B%5D",
            "/a%22%3C%3E%60%7B%7D%7C%5E%5B%5D",
        );
        ok("/a\"b", "/a%22b");
        ok("/a[b]", "/a%5Bb%5D");
    }

    #[test]
    fn decodes_unnecessary_escapes() {
        ok("/%61dmin", "/admin");
        ok("/%41%42", "/AB");
        ok("/a%2Db", "/a-b");
        ok("/a%7Eb", "/a~b");
        ok("/a%40b", "/a@b");
        ok("/a%3Ab", "/a:b");
        ok("/a%2Bb", "/a+b");
    }

    #[test]
    fn display_and_accessors_agree() {
        let path = normalize_path("/a/../b%20c").expect("valid path");
        assert_eq!(path.as_str(), "/b%20c");
        assert_eq!(path.to_string(), "/b%20c");
        assert_eq!(path.as_ref(), "/b%20c");
        assert_eq!(path.clone().into_string(), "/b%20c");
    }

    #[test]
    fn normalisation_is_idempotent() {
        let inputs = [
            "/",
            "/a/b/",
            "/public/..;/admin",
            "/100%25zz",
            "/caf%C3%A9/x",
            "/a%22%3C%3E",
            "/my%20file.txt",
            "/a%3Fb%23c",
            "/x/%2e/y/%2E%2E/z/",
            "/a%2Bb+c",
            "/a[b]{c}",
        ];
        for input in inputs {
            let once = normalize_path(input).expect("valid input");
            let twice = normalize_path(once.as_str()).expect("canonical form is valid");
            assert_eq!(once, twice, "input {input:?}");
        }
    }

    #[test]
    fn output_always_starts_with_a_single_slash() {
        for input in ["/", "//", "///a", "/a/..", "/;x", "/./", "//.//"] {
            let out = norm(input).expect("valid input");
            assert!(out.starts_with('/'), "{input:?} -> {out:?}");
            assert!(!out.starts_with("//"), "{input:?} -> {out:?}");
        }
    }

    #[test]
    fn errors_have_human_messages_without_echoing_input() {
        let message = PathError::EncodedSlash.to_string();
        assert!(message.contains("encoded slash"));
        assert_eq!(
            PathError::TooLong { max: 10 }.to_string(),
            "the request path is longer than 10 bytes"
        );
        let err = normalize_path("/<script>%2F").expect_err("invalid");
        assert!(!err.to_string().contains("<script>"));
    }

    #[test]
    fn prefix_on_normalised_bypass_attempts() {
        let cases = [
            "/public/..;/admin/panel",
            "/public/%2e%2e/admin/panel",
            "//admin/panel",
            "/admin;x=1/panel",
            "/./admin/panel",
            "/%61dmin/panel",
        ];
        for raw in cases {
            let path = normalize_path(raw).expect("valid");
            assert!(prefix_matches(path.as_str(), "/admin"), "{raw} -> {path}");
            assert!(!prefix_matches(path.as_str(), "/public"), "{raw} -> {path}");
        }
    }

    #[test]
    fn multi_segment_prefix() {
        assert!(prefix_matches("/api/v1/users", "/api/v1"));
        assert!(!prefix_matches("/api/v10/users", "/api/v1"));
        assert!(prefix_matches("/my%20dir/x", "/my%20dir"));
    }

    #[test]
    fn property_canonical_output_is_unambiguous() {
        let tokens = [
            "/", "/", "a", "b", ".", "..", "%2e", "%2E", "%25", "%2f", "%5c", ";", ";x=1", "%3b",
            "%20", "%", "2e", "é", "%C3%A9", "%ff", "%00", "%41", "~", "+", "%2B", "%3F", "%23",
            "//", "..;", "%2e%2e;",
        ];
        let counts = ["0", "1", "2", "3", "4", "5", "6", "7"];
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut raw = String::from("/");
            let count: usize = rng.pick(&counts).parse().expect("digit");
            for _ in 0..count {
                raw.push_str(rng.pick(&tokens));
            }
            let Ok(path) = normalize_path(&raw) else {
                continue;
            };
            accepted += 1;
            let out = path.as_str();
            assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
            for forbidden in ["//", ";", "\\", " ", "?", "#"] {
                assert!(!out.contains(forbidden), "{raw:?} -> {out:?}");
            }
            let decoded = percent_encoding::percent_decode_str(out)
                .decode_utf8()
                .expect("utf-8");
            for segment in out.split('/').chain(decoded.split('/')) {
                assert!(segment != "." && segment != "..", "{raw:?} -> {out:?}");
            }
            let again = normalize_path(out).expect("canonical output is accepted");
            assert_eq!(again.as_str(), out, "{raw:?}");
        }
        assert!(accepted > 1_000, "only {accepted} inputs were accepted");
    }

    fn target(raw: &str) -> Result<String, PathError> {
        canonical_target_path(raw).map(NormalizedPath::into_string)
    }

    #[test]
    fn canonical_targets_are_judged_as_they_are() {
        for (raw, judged) in [
            ("/", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("/a/b/c.html", "/a/b/c.html"),
            ("/my%20file.txt", "/my%20file.txt"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/%61dmin", "/admin"),
            ("/a:b@c", "/a:b@c"),
            ("/a%3Ab", "/a:b"),
            ("/.well-known/x", "/.well-known/x"),
            ("/..foo/x", "/..foo/x"),
        ] {
            assert_eq!(target(raw), Ok(judged.to_owned()), "{raw:?}");
        }
    }

    #[test]
    fn non_canonical_targets_are_refused_not_normalised() {
        for (raw, why) in [
            ("/public/..;/admin", PathError::PathParameter),
            ("/lms/..;/admin", PathError::PathParameter),
            ("/admin;x=1", PathError::PathParameter),
            ("/admin;", PathError::PathParameter),
            ("/;/admin", PathError::PathParameter),
            ("/public/../admin", PathError::DotSegment),
            ("/public/./admin", PathError::DotSegment),
            ("/public/%2e%2e/admin", PathError::DotSegment),
            ("/public/%2E%2e/admin", PathError::DotSegment),
            ("/public/.%2e/admin", PathError::DotSegment),
            ("/public/%2e/admin", PathError::DotSegment),
            ("/admin/..", PathError::DotSegment),
            ("/admin/.", PathError::DotSegment),
            ("//admin", PathError::EmptySegment),
            ("/public//admin", PathError::EmptySegment),
            ("/admin%3Fx", PathError::EncodedDelimiter),
            ("/admin%23x", PathError::EncodedDelimiter),
            ("/admin#x", PathError::Fragment),
            ("/public/%252e%252e/admin", PathError::DoubleEncoding),
            ("/admin%2Fpanel", PathError::EncodedSlash),
            ("/admin%5Cpanel", PathError::Backslash),
            ("/public\\..\\admin", PathError::Backslash),
            ("/admin%00", PathError::ControlCharacter),
            ("/%C0%AE%C0%AE/admin", PathError::InvalidUtf8),
            ("/admin%3Bx", PathError::EncodedSemicolon),
            ("/../admin", PathError::AboveRoot),
        ] {
            assert_eq!(target(raw), Err(why), "{raw:?}");
        }
    }

    #[test]
    fn property_canonical_targets_keep_their_segments() {
        let tokens = [
            "/", "a", "b", ".", "..", "%2e", "%2E", ";", "%3f", "%23", "%20", "%41", "//", "..;",
        ];
        let counts = ["1", "2", "3", "4", "5", "6"];
        let mut rng = XorShift(0x0bad_cafe_f00d_1234);
        for _ in 0..20_000 {
            let mut raw = String::from("/");
            let count: usize = rng.pick(&counts).parse().expect("digit");
            for _ in 0..count {
                raw.push_str(rng.pick(&tokens));
            }
            let Ok(path) = canonical_target_path(&raw) else {
                continue;
            };
            // What is judged has exactly the raw path's segments, each decoding the same.
            let raw_segments: Vec<_> = raw.split('/').collect();
            let judged: Vec<_> = path.as_str().split('/').collect();
            assert_eq!(raw_segments.len(), judged.len(), "{raw:?} -> {path}");
            for (r, j) in raw_segments.iter().zip(&judged) {
                let r = percent_encoding::percent_decode_str(r).decode_utf8_lossy();
                let j = percent_encoding::percent_decode_str(j).decode_utf8_lossy();
                assert_eq!(r, j, "{raw:?} -> {path}");
                assert!(r != "." && r != "..", "{raw:?}");
            }
        }
    }
}
