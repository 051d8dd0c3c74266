//! Routes: which upstream serves a host and path prefix, and which requirements it needs.

use super::requirement::RequirementId;
use serde::Serialize;

/// Who may use a route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAccess {
    /// Signed in and every requirement of the route met (the default).
    #[default]
    Gated,
    /// Signed in; requirements are not checked. For the LMS, the e-signature portal, the HR
    /// portal: the places where blocked people complete their induction.
    Induction,
    /// No sign-in at all (health pages, public assets). Identity headers are still stripped.
    Public,
}

/// One configured route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Lowercase host without port; `None` matches any host.
    pub host: Option<String>,
    /// Normalised path prefix, matched on segment boundaries.
    pub path_prefix: String,
    /// Upstream base URL (scheme, host, port, optional base path). `None` for routes that only
    /// carry policy for forward-auth (the proxy in front picks the upstream).
    pub upstream: Option<String>,
    pub access: RouteAccess,
    /// Requirements this route needs.
    pub requirements: Vec<RequirementId>,
    pub preserve_host: bool,
}

/// All routes, matched most-specific first: a route naming the host beats a wildcard host, then
/// the longest path prefix wins; among equals the one declared first wins.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> Self {
        // Stable sort keeps declaration order among equally specific routes.
        routes.sort_by_key(|r| {
            (
                std::cmp::Reverse(r.host.is_some()),
                std::cmp::Reverse(r.path_prefix.len()),
            )
        });
        Self { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for a normalised path on a host (any case, port ignored).
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        // `app.example.` and `app.example` are the same host.
        let host = host_without_port(host)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.routes.iter().find(|r| {
            r.host.as_deref().is_none_or(|h| h == host) && prefix_matches(path, &r.path_prefix)
        })
    }
}

/// Strips an optional port from a Host header value (IPv6 literals keep their brackets).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Path prefix match on segment boundaries: `/app` matches `/app`, `/app/` and `/app/x`, never
/// `/application`.
pub fn prefix_matches(path: &str, prefix: &str) -> bool {
    if prefix == "/" || prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: &str, up: &str) -> Route {
        Route {
            host: host.map(str::to_owned),
            path_prefix: prefix.into(),
            upstream: Some(up.into()),
            access: RouteAccess::Gated,
            requirements: vec![],
            preserve_host: false,
        }
    }

    #[test]
    fn most_specific_wins() {
        let t = RouteTable::new(vec![
            route(None, "/", "any-root"),
            route(None, "/api", "any-api"),
            route(Some("wiki.example.com"), "/", "wiki-root"),
            route(Some("wiki.example.com"), "/admin", "wiki-admin"),
        ]);
        let up = |h, p| t.find(h, p).and_then(|r| r.upstream.as_deref());
        assert_eq!(up("wiki.example.com", "/admin/x"), Some("wiki-admin"));
        assert_eq!(up("WIKI.example.com:8443", "/page"), Some("wiki-root"));
        assert_eq!(
            up("wiki.example.com.", "/page"),
            Some("wiki-root"),
            "trailing dot"
        );
        assert_eq!(
            up("wiki.example.com", "/api/x"),
            Some("wiki-root"),
            "host beats path"
        );
        assert_eq!(up("other", "/api/x"), Some("any-api"));
        assert_eq!(up("other", "/apix"), Some("any-root"));
    }

    #[test]
    fn no_route_no_match() {
        let t = RouteTable::new(vec![route(Some("a"), "/x", "u")]);
        assert!(t.find("a", "/y").is_none());
        assert!(t.find("b", "/x").is_none());
    }

    #[test]
    fn ports_are_ignored() {
        assert_eq!(host_without_port("a.example:80"), "a.example");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("a.example"), "a.example");
    }
}
