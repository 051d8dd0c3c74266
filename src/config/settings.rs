//! Validated settings: what the rest of Clearance runs on, built from the file types by `validate`.

use super::ConfigError;
use super::file::{FileConfig, RequirementFile, RouteFile, VersionFile};
use crate::domain::{
    Document, Enforcement, Policy, Requirement, RequirementId, RequirementKind, Route, RouteAccess,
    RouteTable, Selector, Version,
};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::Digest as _;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Everything Clearance needs, validated.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `[admin] listen`: the admin listener for `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: Option<SocketAddr>,
    /// `[[admin.metrics_tokens]]`: when any, `/metrics` needs one of them.
    pub metrics_tokens: Vec<AdminToken>,
    pub public_url: Url,
    pub workers: usize,
    pub upstream_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub max_request_body: Option<u64>,
    pub redis: RedisSettings,
    pub oidc: OidcSettings,
    pub session: SessionSettings,
    pub admin_tokens: Vec<AdminToken>,
    pub denials: DenialSettings,
    /// `[cache]`: the per-instance decision cache.
    pub cache: CacheSettings,
    /// `denials.buffer_max`: refusals held in memory while the denial log cannot be written.
    pub denial_buffer_max: usize,
    /// `server.shutdown_timeout_secs`: how long requests in flight may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub log_filter: Option<String>,
    /// `[telemetry]`: OpenTelemetry traces, when an endpoint is configured.
    pub traces: Option<TraceSettings>,
    pub policy: Arc<Policy>,
    pub routes: Arc<RouteTable>,
    /// Hosts that `rd=` may point at after sign-in: the public URL's host, every route host and
    /// `server.allowed_redirect_hosts`.
    pub redirect_hosts: Vec<String>,
    /// Peers whose forwarded headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `server.extra_identity_headers`: identity headers of the deployment's own, besides the
    /// built-in list, never taken from a client.
    pub identity_headers: Vec<String>,
    /// How `/oauth2/auth` answers when the path does not name a mode.
    pub forward_auth_mode: ForwardAuthMode,
    pub bearer: BearerSettings,
    /// `[xapi]`: LRS credentials and activity mappings.
    pub xapi: XapiSettings,
    /// `[webhooks]`: e-signature callbacks (DocuSign Connect, Dropbox Sign).
    pub webhooks: super::webhooks::WebhookSettings,
    /// `[audit]`, `[manage]`, `[exemptions]`, `[scim]`, `[notifications]`.
    pub followup: super::followup::FollowUpSettings,
    /// `[limits]`: request rates and the largest request head.
    pub limits: super::limits::LimitSettings,
}

/// xAPI statement intake, validated.
#[derive(Clone, Debug, Default)]
pub struct XapiSettings {
    pub credentials: Vec<XapiCredential>,
    pub mappings: crate::domain::xapi::Mappings,
}

/// An LRS credential, known only by the SHA-256 of its secret.
#[derive(Clone, Debug)]
pub struct XapiCredential {
    pub name: String,
    /// `Some`: HTTP Basic with this user name and the password's hash; `None`: a bearer token.
    pub username: Option<String>,
    pub sha256: [u8; 32],
}

/// Bearer-token settings, validated.
#[derive(Clone, Debug)]
pub struct BearerSettings {
    /// `bearer.enabled`, and at least one audience configured.
    pub enabled: bool,
    pub audiences: Vec<String>,
    pub require_at_jwt: bool,
    pub leeway: Duration,
    pub machine_clients: Vec<MachineClient>,
}

/// What a machine client's token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineAccess {
    Exempt,
    ActsFor(crate::domain::SubjectKey),
}

#[derive(Clone, Debug)]
pub struct MachineClient {
    pub client_id: String,
    pub access: MachineAccess,
}

/// Which proxy's forward-auth contract to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardAuthMode {
    /// nginx `auth_request`: 200 / 401 / 403 with no body worth showing.
    Nginx,
    /// Traefik `ForwardAuth`: non-2xx answers go to the client as they are.
    Traefik,
    /// Caddy `forward_auth`: like Traefik.
    Caddy,
    /// Envoy `ext_authz` (HTTP service): 200 allows, anything else is returned to the client.
    Envoy,
}

impl ForwardAuthMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "nginx" => Some(Self::Nginx),
            "traefik" => Some(Self::Traefik),
            "caddy" => Some(Self::Caddy),
            "envoy" => Some(Self::Envoy),
            _ => None,
        }
    }
}

/// Where OpenTelemetry spans are exported (OTLP over HTTP).
#[derive(Clone, Debug)]
pub struct TraceSettings {
    pub otlp_endpoint: Url,
    pub service_name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// Single mode: the server. Sentinel mode: only its user, password and database are used,
    /// for the primary.
    pub url: String,
    pub topology: RedisTopology,
    pub key_prefix: String,
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
}

/// How Redis is deployed (`redis.mode`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server at `redis.url`.
    Single,
    /// A Redis Cluster, found through some of its nodes.
    Cluster { nodes: Vec<String> },
    /// The primary that the Sentinels name for `master_name`.
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

impl RedisTopology {
    /// The `redis.mode` value, for logs.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Cluster { .. } => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }
}

/// Checks `redis.mode` and the keys it needs.
fn redis_topology(p: &mut Problems, f: &super::file::RedisFile) -> RedisTopology {
    let urls = |p: &mut Problems, key: &str, list: &[String]| {
        if list.is_empty() {
            p.add(key, format!("is required when redis.mode is {:?}", f.mode));
        }
        for u in list {
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                p.add(key, format!("{u:?} must start with redis:// or rediss://"));
            }
        }
        list.to_vec()
    };
    match f.mode.as_str() {
        "single" => RedisTopology::Single,
        "cluster" => RedisTopology::Cluster {
            nodes: urls(p, "redis.nodes", &f.nodes),
        },
        "sentinel" => {
            if f.master_name.trim().is_empty() {
                p.add(
                    "redis.master_name",
                    "is required when redis.mode is \"sentinel\": the name in `sentinel monitor <name> ...`",
                );
            }
            RedisTopology::Sentinel {
                sentinels: urls(p, "redis.sentinels", &f.sentinels),
                master_name: f.master_name.trim().to_owned(),
            }
        }
        other => {
            p.add(
                "redis.mode",
                format!("{other:?} must be \"single\", \"cluster\" or \"sentinel\""),
            );
            RedisTopology::Single
        }
    }
}

/// Names of the claims Clearance reads.
#[derive(Clone, Debug)]
pub struct ClaimNames {
    pub subject: String,
    pub email: String,
    pub name: String,
    pub groups: String,
    pub person_type: String,
    pub manager: String,
}

/// Who may be admitted at all, whatever their induction: checked on the claims of every
/// sign-in and every bearer token (`auth::claims::admissible`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityRules {
    /// `oidc.allow_unverified_email`: accept an e-mail claim without `email_verified: true`.
    pub allow_unverified_email: bool,
    /// `oidc.allowed_email_domains`, lowercased: `example.com` (exactly) or `.example.com`
    /// (it and its subdomains). Empty: any domain.
    pub email_domains: Vec<String>,
    /// `oidc.allowed_tenants`: the `tid` claim (Entra ID) must be one of these. Empty: not checked.
    pub tenants: Vec<String>,
    /// `oidc.allowed_hosted_domains`: the `hd` claim (Google) must be one of these. Empty: not checked.
    pub hosted_domains: Vec<String>,
}

#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub redirect_url: Url,
    pub post_logout_redirect_url: Url,
    pub claims: ClaimNames,
    /// Who may be admitted at all (verified e-mail, company domains and tenants).
    pub identity: IdentityRules,
    pub refresh_before: Duration,
    pub jwks_refetch_cooldown: Duration,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct SessionSettings {
    pub cookie_name: String,
    pub key: actix_web::cookie::Key,
    pub secure: bool,
    pub domain: Option<String>,
    pub lifetime: Duration,
}

/// Parses `[[<section>]]` token entries (name + hex SHA-256 of the token).
pub(super) fn tokens(
    p: &mut Vec<(String, String)>,
    section: &str,
    raw: &[super::file::AdminTokenFile],
) -> Vec<AdminToken> {
    let mut out = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(t.sha256.trim(), &mut digest).is_err() {
            p.push((format!("{section}[{i}].sha256"), "must be 64 hex characters: the SHA-256 of the token (e.g. `printf %s TOKEN | sha256sum`)".into()));
        } else if t.name.trim().is_empty() {
            p.push((format!("{section}[{i}].name"), "must not be empty".into()));
        } else {
            out.push(AdminToken {
                name: t.name.trim().to_owned(),
                sha256: digest,
            });
        }
    }
    out
}

/// An admin API token, known only by its SHA-256.
#[derive(Clone, Debug)]
pub struct AdminToken {
    pub name: String,
    pub sha256: [u8; 32],
}

#[derive(Clone, Debug)]
pub struct DenialSettings {
    pub max_entries: u64,
    pub max_age: Option<Duration>,
}

/// The per-instance decision cache (`[cache]`), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    pub enabled: bool,
    pub max_subjects: usize,
    pub max_sessions: usize,
    /// The longest an entry is kept.
    pub ttl: Duration,
}

/// The longest `cache.ttl_secs` may be: an hour.
const MAX_CACHE_TTL_SECS: u64 = 3600;

/// Collects every problem so that an admin sees them all at once.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push((key.into(), message.into()));
    }
}

fn parse_url(p: &mut Problems, key: &str, raw: &str, allow_http_non_loopback: bool) -> Option<Url> {
    match Url::parse(raw) {
        Ok(u) if u.scheme() == "https" => Some(u),
        Ok(u) if u.scheme() == "http" => {
            let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
                || u.host_str().is_some_and(|h| h.starts_with("127."));
            if loopback || allow_http_non_loopback {
                Some(u)
            } else {
                p.add(
                    key,
                    format!("{raw:?} uses http:// on a non-loopback host; use https://"),
                );
                None
            }
        }
        Ok(_) => {
            p.add(key, format!("{raw:?} must be an http(s) URL"));
            None
        }
        Err(e) => {
            p.add(key, format!("{raw:?} is not a URL: {e}"));
            None
        }
    }
}

fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn requirement(p: &mut Problems, i: usize, r: &RequirementFile) -> Option<Requirement> {
    let key = |field: &str| format!("requirements[{i}].{field}");
    let before = p.0.len();
    if !is_id(&r.id) {
        p.add(
            key("id"),
            format!("{:?} must be 1-64 characters of a-z, 0-9, '-' or '_'", r.id),
        );
    }
    let kind = match r.kind.as_str() {
        "training" => Some(RequirementKind::Training),
        "agreement" => Some(RequirementKind::Agreement),
        "policy" => Some(RequirementKind::Policy),
        other => {
            p.add(
                key("kind"),
                format!("{other:?} must be one of training, agreement, policy"),
            );
            None
        }
    };
    if r.title.trim().is_empty() {
        p.add(key("title"), "must not be empty");
    }
    let version = match &r.version {
        VersionFile::Text(t) => t.parse::<Version>().map_err(|e| e.to_string()),
        VersionFile::Integer(n) => u32::try_from(*n)
            .map(|major| Version { major, minor: 0 })
            .map_err(|_| format!("{n} is too large")),
        VersionFile::Float(f) => Err(format!(
            "{f} is a number with a fraction; write versions as strings, e.g. version = \"2.10\""
        )),
    };
    let version = version.map_err(|m| p.add(key("version"), m)).ok();
    let version_since = match r.version_since.as_deref() {
        None => None,
        Some(raw) => match parse_instant(raw) {
            Some(t) => Some(t),
            None => {
                p.add(
                    key("version_since"),
                    format!("{raw:?} must be a date YYYY-MM-DD or an RFC 3339 time"),
                );
                None
            }
        },
    };
    if r.grace_days > 0 && version_since.is_none() {
        p.add(
            key("grace_days"),
            "a grace period needs version_since (when the current version took effect)",
        );
    }
    if r.validity_days == Some(0) {
        p.add(
            key("validity_days"),
            "must be at least 1 (omit it for completions that never expire)",
        );
    }
    if let Some(u) = &r.url {
        parse_url(p, &key("url"), u, true);
    }
    let enforcement = match r.enforcement.as_deref() {
        None | Some("block") => Some(Enforcement::Block),
        Some("warn") => Some(Enforcement::Warn),
        Some("monitor") => Some(Enforcement::Monitor),
        Some(other) => {
            p.add(
                key("enforcement"),
                format!("{other:?} must be one of block, warn, monitor"),
            );
            None
        }
    };
    let enforce_from = match r.enforce_from.as_deref() {
        None => None,
        Some(raw) => match parse_instant(raw) {
            Some(t) => Some(t),
            None => {
                p.add(
                    key("enforce_from"),
                    format!("{raw:?} must be a date YYYY-MM-DD or an RFC 3339 time"),
                );
                None
            }
        },
    };
    match (enforcement, enforce_from) {
        (Some(Enforcement::Warn), None) => p.add(
            key("enforce_from"),
            "warn needs the due date from which it blocks (enforce_from = \"YYYY-MM-DD\")",
        ),
        (Some(Enforcement::Block | Enforcement::Monitor), Some(_)) => p.add(
            key("enforce_from"),
            "only applies to enforcement = \"warn\"",
        ),
        _ => {}
    }
    let document = r.document.as_ref().and_then(|d| match (&d.path, &d.url) {
        (Some(path), None) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    p.add(key("document.path"), format!("cannot read {path:?}: {e}"));
                    return None;
                }
            };
            let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
            if let Some(expected) = &d.sha256
                && !expected.eq_ignore_ascii_case(&sha256)
            {
                p.add(
                    key("document.sha256"),
                    format!(
                        "{path:?} has SHA-256 {sha256}, not {expected}: a changed document needs a new version (and this hash updated)"
                    ),
                );
                return None;
            }
            Some(Document {
                text,
                origin: path.clone(),
                url: None,
                sha256,
            })
        }
        (None, Some(url)) => {
            parse_url(p, &key("document.url"), url, true)?;
            let Some(sha256) = d
                .sha256
                .as_ref()
                .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            else {
                p.add(
                    key("document.sha256"),
                    "a URL document needs the SHA-256 (64 hex characters) of its content, so that a change is noticed",
                );
                return None;
            };
            Some(Document {
                text: String::new(),
                origin: url.clone(),
                url: Some(url.clone()),
                sha256: sha256.to_ascii_lowercase(),
            })
        }
        _ => {
            p.add(key("document"), "give exactly one of `path` or `url`");
            None
        }
    });
    if document.is_some() && kind == Some(RequirementKind::Training) {
        p.add(
            key("document"),
            "only agreements and policies are accepted on Clearance's page; trainings come from the LMS",
        );
    }
    let mut changes = Vec::new();
    for (v, text) in &r.changes {
        match v.parse::<Version>() {
            Ok(v) => changes.push((v, text.clone())),
            Err(e) => p.add(key("changes"), e.to_string()),
        }
    }
    changes.sort_by_key(|c| std::cmp::Reverse(c.0));
    if p.0.len() != before {
        return None;
    }
    Some(Requirement {
        id: RequirementId(r.id.clone()),
        kind: kind?,
        title: r.title.trim().to_owned(),
        description: r.description.clone(),
        version: version?,
        version_since,
        validity: r
            .validity_days
            .map(|d| chrono::Duration::days(i64::from(d))),
        grace: chrono::Duration::days(i64::from(r.grace_days)),
        url: r.url.clone(),
        applies_to: Selector {
            person_types: r
                .applies_to
                .person_types
                .iter()
                .map(|t| t.to_lowercase())
                .collect(),
            ..r.applies_to.clone()
        },
        enforcement: enforcement?,
        enforce_from,
        warn_every: chrono::Duration::hours(i64::from(r.warn_every_hours.unwrap_or(24).max(1))),
        document,
        changes,
    })
}

fn route(p: &mut Problems, i: usize, r: &RouteFile, policy: &Policy) -> Option<Route> {
    let key = |field: &str| format!("routes[{i}].{field}");
    let before = p.0.len();
    let host = match r.host.as_deref().map(str::trim) {
        None | Some("*") => None,
        Some("") => {
            p.add(
                key("host"),
                "must not be empty (omit it or use \"*\" for any host)",
            );
            None
        }
        Some(h) if h.contains(['/', ':', ' ', '*']) || h.trim_end_matches('.').is_empty() => {
            p.add(
                key("host"),
                format!("{h:?} must be a bare host name without scheme, port, path or wildcard"),
            );
            None
        }
        Some(h) => Some(h.trim_end_matches('.').to_ascii_lowercase()),
    };
    // A prefix must be spelled exactly as a normalised request path, or it could never match.
    match crate::http::normalize::normalize_path(&r.path_prefix) {
        Ok(n) if n.as_str() == r.path_prefix => {}
        Ok(n) => p.add(
            key("path_prefix"),
            format!(
                "{:?} is not normalised; write it as {:?}",
                r.path_prefix,
                n.as_str()
            ),
        ),
        Err(e) => p.add(
            key("path_prefix"),
            format!("{:?} is not a valid path: {e}", r.path_prefix),
        ),
    }
    let upstream = r
        .upstream
        .as_deref()
        .and_then(|raw| parse_url(p, &key("upstream"), raw, true));
    if let Some(u) = &upstream
        && (u.query().is_some() || u.fragment().is_some())
    {
        p.add(key("upstream"), "must not have a query or fragment");
    }
    let access = match r.access.as_deref() {
        None | Some("gated") => RouteAccess::Gated,
        Some("induction") => RouteAccess::Induction,
        Some("public") => RouteAccess::Public,
        Some(other) => {
            p.add(
                key("access"),
                format!("{other:?} must be one of gated, induction, public"),
            );
            RouteAccess::Gated
        }
    };
    let requirements = match &r.requirements {
        None => policy.requirements.iter().map(|r| r.id.clone()).collect(),
        Some(ids) => {
            for id in ids {
                if policy.get_str(id).is_none() {
                    p.add(key("requirements"), format!("unknown requirement {id:?}"));
                }
            }
            ids.iter().map(|id| RequirementId(id.clone())).collect()
        }
    };
    if p.0.len() != before {
        return None;
    }
    Some(Route {
        host,
        path_prefix: r.path_prefix.clone(),
        upstream: upstream.map(|u| u.as_str().trim_end_matches('/').to_owned()),
        access,
        requirements,
        preserve_host: r.preserve_host,
    })
}

/// Validates the file into settings, reporting every problem with its key.
pub(super) fn validate(f: FileConfig) -> Result<Settings, ConfigError> {
    let mut p = Problems::default();

    let listen = f
        .server
        .listen
        .parse::<SocketAddr>()
        .map_err(|e| {
            p.add(
                "server.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:4180: {e}",
                    f.server.listen
                ),
            )
        })
        .ok();
    let public_url = if f.server.public_url.is_empty() {
        p.add(
            "server.public_url",
            "is required, e.g. \"https://gate.example.com\"",
        );
        None
    } else {
        parse_url(&mut p, "server.public_url", &f.server.public_url, false)
    };

    if f.redis.url.is_empty()
        || !(f.redis.url.starts_with("redis://")
            || f.redis.url.starts_with("rediss://")
            || f.redis.url.starts_with("unix://"))
    {
        p.add(
            "redis.url",
            format!(
                "{:?} must start with redis://, rediss:// or unix://",
                f.redis.url
            ),
        );
    }
    let redis_topology = redis_topology(&mut p, &f.redis);
    if f.redis.key_prefix.contains(['{', '}', ' ']) {
        p.add("redis.key_prefix", "must not contain braces or spaces");
    }
    if f.redis.response_timeout_ms == 0 {
        p.add("redis.response_timeout_ms", "must be at least 1");
    }

    if f.oidc.issuer.is_empty() {
        p.add(
            "oidc.issuer",
            "is required, e.g. \"https://login.example.com\"",
        );
    }
    let issuer = if f.oidc.issuer.is_empty() {
        None
    } else {
        parse_url(
            &mut p,
            "oidc.issuer",
            &f.oidc.issuer,
            f.oidc.allow_insecure_issuer,
        )
    };
    if f.oidc.client_id.is_empty() {
        p.add("oidc.client_id", "is required");
    }
    if f.oidc.client_secret.is_empty() {
        p.add(
            "oidc.client_secret",
            "is required (or set CLEARANCE_OIDC__CLIENT_SECRET_FILE)",
        );
    }
    if !f.oidc.scopes.iter().any(|s| s == "openid") {
        p.add("oidc.scopes", "must include \"openid\"");
    }
    let join = |base: &Url, path: &str| base.join(path).ok();
    let redirect_url = match (&f.oidc.redirect_url, &public_url) {
        (Some(u), _) => parse_url(&mut p, "oidc.redirect_url", u, false),
        (None, Some(base)) => join(base, "/oauth2/callback"),
        (None, None) => None,
    };
    let post_logout = match (&f.oidc.post_logout_redirect_url, &public_url) {
        (Some(u), _) => parse_url(&mut p, "oidc.post_logout_redirect_url", u, false),
        (None, Some(base)) => join(base, "/oauth2/signed_out"),
        (None, None) => None,
    };

    let key = if f.session.cookie_secret.is_empty() {
        p.add("session.cookie_secret", "is required: 32+ random bytes, base64 (e.g. `openssl rand -base64 48`); or set CLEARANCE_SESSION__COOKIE_SECRET_FILE");
        None
    } else {
        let raw = f.session.cookie_secret.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw));
        match decoded {
            Ok(bytes) if bytes.len() >= 32 => Some(actix_web::cookie::Key::derive_from(&bytes)),
            Ok(bytes) => {
                p.add(
                    "session.cookie_secret",
                    format!("decodes to {} bytes; at least 32 are needed", bytes.len()),
                );
                None
            }
            Err(_) => {
                p.add("session.cookie_secret", "is not valid base64");
                None
            }
        }
    };
    if f.session.cookie_name.is_empty()
        || !f
            .session
            .cookie_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        p.add("session.cookie_name", "must be letters, digits, '_' or '-'");
    }
    if f.session.lifetime_hours == 0 {
        p.add("session.lifetime_hours", "must be at least 1");
    }

    let admin_tokens = tokens(&mut p.0, "admin.tokens", &f.admin.tokens);
    let metrics_tokens = tokens(&mut p.0, "admin.metrics_tokens", &f.admin.metrics_tokens);
    let admin_listen = match f.admin.listen.as_deref().map(str::trim) {
        None => None,
        Some(raw) => match raw.parse::<SocketAddr>() {
            Ok(a) if Some(a) == listen => {
                p.add(
                    "admin.listen",
                    format!("{raw:?} is server.listen; the admin listener needs its own address"),
                );
                None
            }
            Ok(a) => Some(a),
            Err(e) => {
                p.add(
                    "admin.listen",
                    format!("{raw:?} is not an address like 127.0.0.1:9090: {e}"),
                );
                None
            }
        },
    };

    if f.denials.max_entries == 0 {
        p.add("denials.max_entries", "must be at least 1");
    }
    for (key, value) in [
        ("cache.max_subjects", f.cache.max_subjects),
        ("cache.max_sessions", f.cache.max_sessions),
    ] {
        if value == 0 || usize::try_from(value).is_err() {
            p.add(
                key,
                "must be at least 1 (turn the cache off with cache.enabled = false)",
            );
        }
    }
    if f.cache.ttl_secs == 0 || f.cache.ttl_secs > MAX_CACHE_TTL_SECS {
        p.add(
            "cache.ttl_secs",
            format!("must be between 1 and {MAX_CACHE_TTL_SECS} seconds"),
        );
    }
    if f.denials.buffer_max == 0 {
        p.add("denials.buffer_max", "must be at least 1");
    }
    if f.server.shutdown_timeout_secs > 3600 {
        p.add(
            "server.shutdown_timeout_secs",
            "must be at most 3600 (one hour)",
        );
    }

    if let Some(filter) = &f.logging.filter
        && let Err(e) = tracing_subscriber::EnvFilter::try_new(filter)
    {
        p.add(
            "logging.filter",
            format!("{filter:?} is not a tracing filter: {e}"),
        );
    }
    for (key, value) in [
        (
            "oidc.jwks_refetch_cooldown_secs",
            f.oidc.jwks_refetch_cooldown_secs,
        ),
        ("server.upstream_timeout_ms", f.server.upstream_timeout_ms),
        (
            "server.upstream_connect_timeout_ms",
            f.server.upstream_connect_timeout_ms,
        ),
        ("redis.connect_timeout_ms", f.redis.connect_timeout_ms),
    ] {
        if value == 0 {
            p.add(key, "must be at least 1");
        }
    }
    if let Some(u) = &public_url
        && (u.path() != "/" || u.query().is_some())
    {
        p.add(
            "server.public_url",
            "must be an origin such as https://gate.example.com (no path or query)",
        );
    }
    let log_format = match f.logging.format.as_str() {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            p.add(
                "logging.format",
                format!("{other:?} must be pretty or json"),
            );
            LogFormat::Pretty
        }
    };

    let traces = f.telemetry.otlp_endpoint.as_deref().and_then(|raw| {
        let otlp_endpoint = parse_url(&mut p, "telemetry.otlp_endpoint", raw, true)?;
        Some(TraceSettings {
            otlp_endpoint,
            service_name: f
                .telemetry
                .service_name
                .clone()
                .unwrap_or_else(|| "clearance".to_owned()),
        })
    });
    if f.telemetry
        .service_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        p.add("telemetry.service_name", "must not be empty");
    }

    let mut trusted_proxies = Vec::new();
    for (i, raw) in f.server.trusted_proxies.iter().enumerate() {
        let parsed = raw
            .parse::<ipnet::IpNet>()
            .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => p.add(
                format!("server.trusted_proxies[{i}]"),
                format!("{raw:?} is not an address or CIDR range like 10.0.0.0/8"),
            ),
        }
    }
    for (i, name) in f.server.extra_identity_headers.iter().enumerate() {
        if actix_web::http::header::HeaderName::from_bytes(name.trim().as_bytes()).is_err() {
            p.add(
                format!("server.extra_identity_headers[{i}]"),
                format!("{name:?} is not a header name"),
            );
        }
    }
    let forward_auth_mode = match f.forward_auth.default_mode.as_deref() {
        None => ForwardAuthMode::Nginx,
        Some(raw) => ForwardAuthMode::parse(raw).unwrap_or_else(|| {
            p.add(
                "forward_auth.default_mode",
                format!("{raw:?} must be one of nginx, traefik, caddy, envoy"),
            );
            ForwardAuthMode::Nginx
        }),
    };

    for (i, aud) in f.bearer.audiences.iter().enumerate() {
        if aud.trim().is_empty() {
            p.add(format!("bearer.audiences[{i}]"), "must not be empty");
        } else if *aud == f.oidc.client_id {
            p.add(
                format!("bearer.audiences[{i}]"),
                "must not be the OIDC client id: ID tokens are issued for it, and an ID token is not an access token; name your API's own audience",
            );
        }
    }
    let mut machine_clients = Vec::new();
    for (i, m) in f.bearer.machine_clients.iter().enumerate() {
        let key = |field: &str| format!("bearer.machine_clients[{i}].{field}");
        if m.client_id.trim().is_empty() {
            p.add(key("client_id"), "must not be empty");
            continue;
        }
        let access = match (m.exempt, &m.acts_for) {
            (true, None) => MachineAccess::Exempt,
            (false, Some(who)) => match crate::domain::SubjectKey::parse(who) {
                Ok(s) => MachineAccess::ActsFor(s),
                Err(e) => {
                    p.add(key("acts_for"), e.to_string());
                    continue;
                }
            },
            _ => {
                p.add(
                    key("client_id"),
                    format!(
                        "{:?} needs exactly one of `exempt = true` or `acts_for = \"person\"`",
                        m.client_id
                    ),
                );
                continue;
            }
        };
        machine_clients.push(MachineClient {
            client_id: m.client_id.clone(),
            access,
        });
    }

    let identity = identity_rules(&mut p, &f.oidc);
    let untyped_escape = match f.oidc.unknown_person_type.as_str() {
        "strictest" => false,
        "untyped" => true,
        other => {
            p.add(
                "oidc.unknown_person_type",
                format!("{other:?} must be \"strictest\" (the default) or \"untyped\""),
            );
            false
        }
    };

    let mut seen = HashSet::new();
    let mut requirements = Vec::new();
    for (i, r) in f.requirements.iter().enumerate() {
        if !seen.insert(r.id.clone()) {
            p.add(
                format!("requirements[{i}].id"),
                format!("{:?} is declared twice", r.id),
            );
        }
        if let Some(r) = requirement(&mut p, i, r) {
            requirements.push(r);
        }
    }
    for r in &mut requirements {
        r.applies_to.untyped_escape = untyped_escape;
    }
    let policy = Policy { requirements };
    let xapi = xapi(&mut p, &f.xapi, &policy);
    let webhooks = super::webhooks::validate(&f.webhooks, &policy)
        .map_err(|problems| p.0.extend(problems))
        .unwrap_or_default();
    let limits = super::limits::validate(&f.limits)
        .map_err(|problems| p.0.extend(problems))
        .unwrap_or_default();
    let followup = super::followup::validate(super::followup::FollowUpFiles {
        audit: &f.audit,
        manage: &f.manage,
        exemptions: &f.exemptions,
        scim: &f.scim,
        notifications: &f.notifications,
    })
    .map_err(|problems| p.0.extend(problems))
    .ok();

    if f.routes.is_empty() {
        p.add("routes", "at least one [[routes]] entry is needed");
    }
    let mut routes = Vec::new();
    let mut redirect_hosts = Vec::new();
    if let Some(h) = public_url.as_ref().and_then(|u| u.host_str()) {
        redirect_hosts.push(h.to_owned());
    }
    for (i, h) in f.server.allowed_redirect_hosts.iter().enumerate() {
        if h.is_empty() || h.contains(['/', ' ', '@', '*']) {
            p.add(
                format!("server.allowed_redirect_hosts[{i}]"),
                format!(
                    "{h:?} must be a host name, optionally with :port, or .domain for subdomains"
                ),
            );
        } else {
            redirect_hosts.push(h.to_ascii_lowercase());
        }
    }
    for (i, r) in f.routes.iter().enumerate() {
        if let Some(r) = route(&mut p, i, r, &policy) {
            if let Some(h) = &r.host {
                redirect_hosts.push(h.clone());
            }
            routes.push(r);
        }
    }

    let (
        Some(listen),
        Some(public_url),
        Some(issuer),
        Some(redirect_url),
        Some(post_logout_redirect_url),
        Some(key),
        Some(followup),
        true,
    ) = (
        listen,
        public_url,
        issuer,
        redirect_url,
        post_logout,
        key,
        followup,
        p.0.is_empty(),
    )
    else {
        return Err(ConfigError::Invalid(p.0));
    };
    let ms = Duration::from_millis;
    Ok(Settings {
        listen,
        admin_listen,
        metrics_tokens,
        public_url,
        workers: f.server.workers,
        upstream_timeout: ms(f.server.upstream_timeout_ms),
        upstream_connect_timeout: ms(f.server.upstream_connect_timeout_ms),
        max_request_body: (f.server.max_request_body_bytes > 0)
            .then_some(f.server.max_request_body_bytes),
        redis: RedisSettings {
            url: f.redis.url,
            topology: redis_topology,
            key_prefix: f.redis.key_prefix,
            response_timeout: ms(f.redis.response_timeout_ms),
            connect_timeout: ms(f.redis.connect_timeout_ms),
        },
        oidc: OidcSettings {
            issuer,
            client_id: f.oidc.client_id,
            client_secret: f.oidc.client_secret,
            scopes: f.oidc.scopes,
            redirect_url,
            post_logout_redirect_url,
            claims: ClaimNames {
                subject: f.oidc.subject_claim,
                email: f.oidc.email_claim,
                name: f.oidc.name_claim,
                groups: f.oidc.groups_claim,
                person_type: f.oidc.person_type_claim,
                manager: f.oidc.manager_claim,
            },
            identity,
            refresh_before: Duration::from_secs(f.oidc.refresh_before_secs),
            jwks_refetch_cooldown: Duration::from_secs(f.oidc.jwks_refetch_cooldown_secs),
        },
        session: SessionSettings {
            cookie_name: f.session.cookie_name,
            key,
            secure: f.session.cookie_secure,
            domain: f.session.cookie_domain,
            lifetime: Duration::from_secs(f.session.lifetime_hours * 3600),
        },
        admin_tokens,
        denials: DenialSettings {
            max_entries: f.denials.max_entries,
            max_age: (f.denials.max_age_days > 0)
                .then(|| Duration::from_secs(f.denials.max_age_days * 86_400)),
        },
        cache: CacheSettings {
            enabled: f.cache.enabled,
            max_subjects: usize::try_from(f.cache.max_subjects).unwrap_or(usize::MAX),
            max_sessions: usize::try_from(f.cache.max_sessions).unwrap_or(usize::MAX),
            ttl: Duration::from_secs(f.cache.ttl_secs),
        },
        denial_buffer_max: f.denials.buffer_max,
        shutdown_timeout: Duration::from_secs(f.server.shutdown_timeout_secs),
        log_format,
        log_filter: f.logging.filter,
        traces,
        policy: Arc::new(policy),
        routes: Arc::new(RouteTable::new(routes)),
        redirect_hosts,
        trusted_proxies,
        identity_headers: f.server.extra_identity_headers,
        forward_auth_mode,
        bearer: BearerSettings {
            // No audience of its own: bearer tokens are off (an ID token's audience is the
            // client id, so that default would admit ID tokens).
            enabled: f.bearer.enabled && !f.bearer.audiences.is_empty(),
            audiences: f.bearer.audiences,
            require_at_jwt: f.bearer.require_at_jwt,
            leeway: Duration::from_secs(f.bearer.leeway_secs),
            machine_clients,
        },
        xapi,
        webhooks,
        limits,
        followup,
    })
}

/// `[oidc]`'s admission rules: domains must look like domains, tenants and hosted domains
/// must not be empty strings.
fn identity_rules(p: &mut Problems, f: &super::file::OidcFile) -> IdentityRules {
    let mut email_domains = Vec::new();
    for (i, raw) in f.allowed_email_domains.iter().enumerate() {
        let domain = raw.trim().to_ascii_lowercase();
        let bare = domain.strip_prefix('.').unwrap_or(&domain);
        let valid = !bare.is_empty()
            && bare.contains('.')
            && bare.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            email_domains.push(domain);
        } else {
            p.add(
                format!("oidc.allowed_email_domains[{i}]"),
                format!("{raw:?} must be a domain like example.com, or .example.com for it and its subdomains"),
            );
        }
    }
    let non_empty = |p: &mut Problems, key: &str, list: &[String]| -> Vec<String> {
        let mut out = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            if raw.trim().is_empty() {
                p.add(format!("oidc.{key}[{i}]"), "must not be empty");
            } else {
                out.push(raw.trim().to_owned());
            }
        }
        out
    };
    IdentityRules {
        allow_unverified_email: f.allow_unverified_email,
        email_domains,
        tenants: non_empty(p, "allowed_tenants", &f.allowed_tenants),
        hosted_domains: non_empty(p, "allowed_hosted_domains", &f.allowed_hosted_domains)
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
    }
}

impl Settings {
    /// Settings that relax one of Clearance's fail-closed defaults, in words for an admin:
    /// `check-config` prints them and `serve` logs them at start.
    pub fn relaxations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.oidc.identity.allow_unverified_email {
            out.push("oidc.allow_unverified_email = true: people are admitted on e-mail addresses their provider has not verified; anyone who can set an address at the provider can sign in as its owner".to_owned());
        }
        if self
            .policy
            .requirements
            .iter()
            .any(|r| r.applies_to.untyped_escape)
        {
            out.push("oidc.unknown_person_type = \"untyped\": a person whose type is unknown escapes every requirement that names person types".to_owned());
        }
        out
    }
}

fn version_of(v: &VersionFile) -> Result<Version, String> {
    match v {
        VersionFile::Text(t) => t.parse::<Version>().map_err(|e| e.to_string()),
        VersionFile::Integer(n) => u32::try_from(*n)
            .map(|major| Version { major, minor: 0 })
            .map_err(|_| format!("{n} is too large")),
        VersionFile::Float(f) => Err(format!(
            "{f} is a number with a fraction; write versions as strings, e.g. version = \"2.10\""
        )),
    }
}

fn xapi(p: &mut Problems, f: &super::file::XapiFile, policy: &Policy) -> XapiSettings {
    use crate::domain::xapi::{ActivityMapping, Mappings};
    let mut credentials = Vec::new();
    let mut names = HashSet::new();
    let mut usernames = HashSet::new();
    for (i, c) in f.credentials.iter().enumerate() {
        let key = |field: &str| format!("xapi.credentials[{i}].{field}");
        let name = c.name.trim();
        if name.is_empty() {
            p.add(key("name"), "must not be empty");
        } else if !names.insert(name.to_owned()) {
            p.add(key("name"), format!("{name:?} is used twice"));
        }
        let username = match c.username.as_deref() {
            None => None,
            Some(u) if u.is_empty() || u.contains(':') => {
                p.add(
                    key("username"),
                    "must not be empty or contain ':' (omit it for a bearer token)",
                );
                None
            }
            Some(u) => {
                if !usernames.insert(u.to_owned()) {
                    p.add(key("username"), format!("{u:?} is used twice"));
                }
                Some(u.to_owned())
            }
        };
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(c.sha256.trim(), &mut digest).is_err() {
            p.add(
                key("sha256"),
                "must be 64 hex characters: the SHA-256 of the password (or bearer token), e.g. `printf %s SECRET | sha256sum`",
            );
            continue;
        }
        credentials.push(XapiCredential {
            name: name.to_owned(),
            username,
            sha256: digest,
        });
    }
    let mut activities: Vec<ActivityMapping> = Vec::new();
    for (i, a) in f.activities.iter().enumerate() {
        let key = |field: &str| format!("xapi.activities[{i}].{field}");
        let before = p.0.len();
        if let Err(e) = Url::parse(&a.activity_id) {
            p.add(
                key("activity_id"),
                format!("{:?} is not an absolute IRI: {e}", a.activity_id),
            );
        } else if activities.iter().any(|m| m.activity_id == a.activity_id) {
            p.add(
                key("activity_id"),
                format!("{:?} is mapped twice", a.activity_id),
            );
        }
        let requirement = policy.get_str(&a.requirement);
        if requirement.is_none() {
            p.add(
                key("requirement"),
                format!("unknown requirement {:?}", a.requirement),
            );
        }
        let version = version_of(&a.version)
            .map_err(|m| p.add(key("version"), m))
            .ok();
        if let (Some(r), Some(v)) = (requirement, version)
            && v > r.version
        {
            p.add(
                key("version"),
                format!("{v} is newer than {}'s current version {}", r.id, r.version),
            );
        }
        if let (Some(r), Some(version), true) = (requirement, version, p.0.len() == before) {
            activities.push(ActivityMapping {
                activity_id: a.activity_id.clone(),
                requirement: r.id.clone(),
                version,
            });
        }
    }
    if !f.activities.is_empty() && f.credentials.is_empty() {
        p.add(
            "xapi.credentials",
            "at least one credential is needed for the LMS to post the statements of xapi.activities",
        );
    }
    let account_home_page = match f.account_home_page.as_deref() {
        None => None,
        Some(raw) => match Url::parse(raw) {
            Ok(_) => Some(raw.to_owned()),
            Err(e) => {
                p.add(
                    "xapi.account_home_page",
                    format!("{raw:?} is not a URL: {e}"),
                );
                None
            }
        },
    };
    XapiSettings {
        credentials,
        mappings: Mappings {
            activities,
            account_home_page,
        },
    }
}

#[cfg(test)]
mod xapi_tests {
    const BASE: &str = r#"
[server]
public_url = "https://gate.example.com"
[oidc]
issuer = "https://login.example.com"
client_id = "clearance"
client_secret = "s"
[session]
cookie_secret = "dGVzdC1jb29raWUtc2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWNsZWFyYW5jZQ=="

[audit]
key = "test-audit-key-0123456789abcdefghijklmnop"
[[requirements]]
id = "security-awareness"
kind = "training"
title = "Security awareness"
version = "2026.1"
[[routes]]
upstream = "http://127.0.0.1:9000"
"#;
    const SHA: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

    fn problems(extra: &str) -> Vec<(String, String)> {
        match super::super::from_toml_str(&format!("{BASE}{extra}")) {
            Ok(_) => Vec::new(),
            Err(super::ConfigError::Invalid(p)) => p,
            Err(e) => vec![("parse".into(), e.to_string())],
        }
    }

    #[test]
    fn cache_section_defaults_validates_and_names_its_keys() {
        let s = super::super::from_toml_str(BASE).unwrap();
        assert_eq!(
            s.cache,
            super::CacheSettings {
                enabled: true,
                max_subjects: 100_000,
                max_sessions: 100_000,
                ttl: std::time::Duration::from_secs(60),
            }
        );
        let s = super::super::from_toml_str(&format!(
            "{BASE}\n[cache]\nenabled = false\nmax_subjects = 5\nmax_sessions = 7\nttl_secs = 9\n"
        ))
        .unwrap();
        assert!(!s.cache.enabled);
        assert_eq!((s.cache.max_subjects, s.cache.max_sessions), (5, 7));
        assert_eq!(s.cache.ttl, std::time::Duration::from_secs(9));
        let keys: Vec<String> =
            problems("\n[cache]\nmax_subjects = 0\nmax_sessions = 0\nttl_secs = 3601\n")
                .into_iter()
                .map(|(k, _)| k)
                .collect();
        assert_eq!(
            keys,
            ["cache.max_subjects", "cache.max_sessions", "cache.ttl_secs"]
        );
        assert_eq!(problems("\n[cache]\nttl_secs = 0\n").len(), 1);
        assert!(
            !problems("\n[cache]\nsize = 1\n").is_empty(),
            "unknown keys"
        );
    }

    #[test]
    fn denial_buffer_and_shutdown_timeout_have_defaults_and_bounds() {
        let s = super::super::from_toml_str(BASE).unwrap();
        assert_eq!(s.denial_buffer_max, 10_000);
        assert_eq!(s.shutdown_timeout, std::time::Duration::from_secs(30));
        let s =
            super::super::from_toml_str(&format!("{BASE}\n[denials]\nbuffer_max = 5\n")).unwrap();
        assert_eq!(s.denial_buffer_max, 5);
        let named = |p: Vec<(String, String)>| p.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            named(problems("\n[denials]\nbuffer_max = 0\n")),
            ["denials.buffer_max"]
        );
        let long = BASE.replace("[server]\n", "[server]\nshutdown_timeout_secs = 7200\n");
        let Err(super::ConfigError::Invalid(p)) = super::super::from_toml_str(&long) else {
            panic!("a two-hour shutdown timeout is refused");
        };
        assert_eq!(named(p), ["server.shutdown_timeout_secs"]);
    }

    #[test]
    fn xapi_section_validates_into_settings() {
        let s = super::super::from_toml_str(&format!(
            r#"{BASE}
[xapi]
account_home_page = "https://lms.example.com"
credentials = [
  {{ name = "lms", username = "lms-client", sha256 = "{SHA}" }},
  {{ name = "lms-token", sha256 = "{SHA}" }},
]
[[xapi.activities]]
activity_id = "https://lms.example.com/course/security-2026"
requirement = "security-awareness"
version = "2026.1"
"#
        ))
        .unwrap();
        assert_eq!(s.xapi.credentials.len(), 2);
        assert_eq!(
            s.xapi.credentials[0].username.as_deref(),
            Some("lms-client")
        );
        assert_eq!(s.xapi.credentials[1].username, None);
        let m = &s.xapi.mappings;
        assert_eq!(
            m.account_home_page.as_deref(),
            Some("https://lms.example.com")
        );
        let a = m
            .activity("https://lms.example.com/course/security-2026")
            .unwrap();
        assert_eq!(
            (a.requirement.as_str(), a.version.to_string().as_str()),
            ("security-awareness", "2026.1")
        );
        assert!(
            super::super::from_toml_str(BASE)
                .unwrap()
                .xapi
                .credentials
                .is_empty()
        );
    }

    #[test]
    fn xapi_errors_name_the_key() {
        let p = problems(&format!(
            r#"
[xapi]
account_home_page = "lms"
credentials = [
  {{ name = "", sha256 = "{SHA}" }},
  {{ name = "a", username = "x:y", sha256 = "nothex" }},
]
[[xapi.activities]]
activity_id = "course-1"
requirement = "karate"
version = 2.1
[[xapi.activities]]
activity_id = "https://lms.example.com/c"
requirement = "security-awareness"
version = "2027"
"#
        ));
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        for key in [
            "xapi.credentials[0].name",
            "xapi.credentials[1].username",
            "xapi.credentials[1].sha256",
            "xapi.activities[0].activity_id",
            "xapi.activities[0].requirement",
            "xapi.activities[0].version",
            "xapi.activities[1].version",
            "xapi.account_home_page",
        ] {
            assert!(keys.contains(&key), "{key} in {p:?}");
        }
        let p = problems(
            r#"
[[xapi.activities]]
activity_id = "https://lms.example.com/c"
requirement = "security-awareness"
version = "1"
"#,
        );
        assert_eq!(p[0].0, "xapi.credentials", "{p:?}");
    }
}
