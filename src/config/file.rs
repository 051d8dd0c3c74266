//! The configuration file as written by an admin: serde types that reject unknown keys.

use serde::{Deserialize, Serialize};

fn default_listen() -> String {
    "127.0.0.1:4180".into()
}
fn default_prefix() -> String {
    "clearance:".into()
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379/".into()
}
fn default_subject_claim() -> String {
    "email".into()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_person_type_claim() -> String {
    "employee_type".into()
}
fn default_unknown_person_type() -> String {
    "strictest".into()
}
fn default_manager_claim() -> String {
    "manager".into()
}
fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_cookie_name() -> String {
    "_clearance".into()
}
fn default_true() -> bool {
    true
}
fn default_session_hours() -> u64 {
    12
}
fn default_refresh_before() -> u64 {
    60
}
fn default_jwks_cooldown() -> u64 {
    30
}
fn default_upstream_timeout() -> u64 {
    30_000
}
fn default_connect_timeout() -> u64 {
    5_000
}
fn default_redis_timeout() -> u64 {
    1_000
}
fn default_denial_entries() -> u64 {
    1_000_000
}
fn default_denial_buffer() -> usize {
    10_000
}
fn default_shutdown_timeout() -> u64 {
    30
}
fn default_path_prefix() -> String {
    "/".into()
}
fn default_log_format() -> String {
    "pretty".into()
}
fn default_max_body() -> u64 {
    0
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub redis: RedisFile,
    #[serde(default)]
    pub oidc: OidcFile,
    #[serde(default)]
    pub session: SessionFile,
    #[serde(default)]
    pub admin: AdminFile,
    #[serde(default)]
    pub denials: DenialsFile,
    /// `[cache]`: the per-instance decision cache.
    #[serde(default)]
    pub cache: CacheFile,
    #[serde(default)]
    pub logging: LoggingFile,
    /// `[telemetry]`: OpenTelemetry traces (builds with the `otel` feature).
    #[serde(default)]
    pub telemetry: TelemetryFile,
    #[serde(default)]
    pub forward_auth: ForwardAuthFile,
    #[serde(default)]
    pub bearer: BearerFile,
    #[serde(default)]
    pub xapi: XapiFile,
    /// `[webhooks]`: e-signature services reporting signed agreements.
    #[serde(default)]
    pub webhooks: super::webhooks::WebhooksFile,
    /// `[audit]`: the key of the tamper-evident audit trail.
    #[serde(default)]
    pub audit: super::followup::AuditFile,
    /// `[manage]`: who may see and act on whom in `/.clearance/manage`.
    #[serde(default)]
    pub manage: super::followup::ManageFile,
    /// `[exemptions]`: limits on exemptions.
    #[serde(default)]
    pub exemptions: super::followup::ExemptionsFile,
    /// `[scim]`: SCIM 2.0 provisioning of the directory.
    #[serde(default)]
    pub scim: super::followup::ScimFile,
    /// `[notifications]`: denial digests and reminders by webhook.
    #[serde(default)]
    pub notifications: super::followup::NotificationsFile,
    /// `[limits]`: request rates and the largest request head.
    #[serde(default)]
    pub limits: super::limits::LimitsFile,
    #[serde(default)]
    pub requirements: Vec<RequirementFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL people reach Clearance at, e.g. `https://gate.example.com`.
    #[serde(default)]
    pub public_url: String,
    /// Upstream response timeout (headers), milliseconds.
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout_ms: u64,
    /// Upstream connect timeout, milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub upstream_connect_timeout_ms: u64,
    /// Largest declared request body (Content-Length) forwarded, bytes; 0 means unlimited.
    /// Chunked bodies are streamed without a limit.
    #[serde(default = "default_max_body")]
    pub max_request_body_bytes: u64,
    /// Number of worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Peers (CIDR or single addresses) whose `X-Forwarded-*`, `X-Original-*` and `Forwarded`
    /// headers are believed. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Extra hosts that `rd=` may send people back to after sign-in, besides the public URL's
    /// host and every route host. `.example.com` allows every subdomain.
    #[serde(default)]
    pub allowed_redirect_hosts: Vec<String>,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish, seconds.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// Identity headers of your own, besides the built-in list (docs/SECURITY.md): removed from
    /// every proxied request in every spelling, and a forward-auth request carrying one is refused.
    #[serde(default)]
    pub extra_identity_headers: Vec<String>,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: String::new(),
            upstream_timeout_ms: default_upstream_timeout(),
            upstream_connect_timeout_ms: default_connect_timeout(),
            max_request_body_bytes: default_max_body(),
            workers: 0,
            trusted_proxies: Vec::new(),
            allowed_redirect_hosts: Vec::new(),
            shutdown_timeout_secs: default_shutdown_timeout(),
            extra_identity_headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    #[serde(default = "default_redis_url")]
    pub url: String,
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// How long one command may take before the gate fails closed, milliseconds.
    #[serde(default = "default_redis_timeout")]
    pub response_timeout_ms: u64,
    #[serde(default = "default_redis_timeout")]
    pub connect_timeout_ms: u64,
    /// `single` (one server at `url`), `cluster` (a Redis Cluster, seeded by `nodes`) or
    /// `sentinel` (the primary that `sentinels` name for `master_name`).
    #[serde(default = "default_redis_mode")]
    pub mode: String,
    /// Cluster mode: some of the cluster's nodes (`redis://host:port`), a list or one string
    /// separated by commas.
    #[serde(default, deserialize_with = "list_or_commas")]
    pub nodes: Vec<String>,
    /// Sentinel mode: the Sentinels (`redis://host:26379`), a list or one string separated by
    /// commas.
    #[serde(default, deserialize_with = "list_or_commas")]
    pub sentinels: Vec<String>,
    /// Sentinel mode: the name of the monitored primary (`sentinel monitor <name> ...`).
    #[serde(default)]
    pub master_name: String,
}

fn default_redis_mode() -> String {
    "single".into()
}

/// A list of strings, or one string of items separated by commas (handy in an environment
/// variable: `CLEARANCE_REDIS__NODES=redis://a:6379,redis://b:6379`).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        One(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(v) => v,
        Raw::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl Default for RedisFile {
    fn default() -> Self {
        Self {
            url: default_redis_url(),
            key_prefix: default_prefix(),
            response_timeout_ms: default_redis_timeout(),
            connect_timeout_ms: default_redis_timeout(),
            mode: default_redis_mode(),
            nodes: Vec::new(),
            sentinels: Vec::new(),
            master_name: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Defaults to `<server.public_url>/oauth2/callback`.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Where the provider sends people after signing out; defaults to `<server.public_url>/oauth2/signed_out`.
    #[serde(default)]
    pub post_logout_redirect_url: Option<String>,
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    #[serde(default = "default_person_type_claim")]
    pub person_type_claim: String,
    #[serde(default = "default_manager_claim")]
    pub manager_claim: String,
    /// Refresh tokens this many seconds before the access token expires.
    #[serde(default = "default_refresh_before")]
    pub refresh_before_secs: u64,
    /// Minimum time between two JWKS refetches caused by an unknown key id.
    #[serde(default = "default_jwks_cooldown")]
    pub jwks_refetch_cooldown_secs: u64,
    /// Allow an `http://` issuer that is not on loopback (never do this in production).
    #[serde(default)]
    pub allow_insecure_issuer: bool,
    /// Accept an e-mail claim that the provider has not marked `email_verified: true`.
    #[serde(default)]
    pub allow_unverified_email: bool,
    /// Only people whose e-mail domain is one of these (`.example.com`: and subdomains).
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Only sign-ins whose `tid` claim (Entra ID tenant) is one of these.
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    /// Only sign-ins whose `hd` claim (Google Workspace domain) is one of these.
    #[serde(default)]
    pub allowed_hosted_domains: Vec<String>,
    /// What a person of unknown type is held to: `strictest` (every requirement any type has)
    /// or `untyped` (only requirements that name no person type).
    #[serde(default = "default_unknown_person_type")]
    pub unknown_person_type: String,
}

impl Default for OidcFile {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            scopes: default_scopes(),
            redirect_url: None,
            post_logout_redirect_url: None,
            subject_claim: default_subject_claim(),
            email_claim: default_email_claim(),
            name_claim: default_name_claim(),
            groups_claim: default_groups_claim(),
            person_type_claim: default_person_type_claim(),
            manager_claim: default_manager_claim(),
            refresh_before_secs: default_refresh_before(),
            jwks_refetch_cooldown_secs: default_jwks_cooldown(),
            allow_insecure_issuer: false,
            allow_unverified_email: false,
            allowed_email_domains: Vec::new(),
            allowed_tenants: Vec::new(),
            allowed_hosted_domains: Vec::new(),
            unknown_person_type: default_unknown_person_type(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// At least 32 random bytes, base64-encoded; encrypts and authenticates the cookie.
    #[serde(default)]
    pub cookie_secret: String,
    #[serde(default = "default_true")]
    pub cookie_secure: bool,
    /// e.g. `.example.com` so that one sign-in covers subdomains.
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// Absolute session lifetime, hours.
    #[serde(default = "default_session_hours")]
    pub lifetime_hours: u64,
}

impl Default for SessionFile {
    fn default() -> Self {
        Self {
            cookie_name: default_cookie_name(),
            cookie_secret: String::new(),
            cookie_secure: true,
            cookie_domain: None,
            lifetime_hours: default_session_hours(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Admin API tokens, each given as the hex SHA-256 of the token (never the token itself).
    #[serde(default)]
    pub tokens: Vec<AdminTokenFile>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`), e.g. `127.0.0.1:9090`; off when
    /// absent. Keep it on loopback or a private network.
    #[serde(default)]
    pub listen: Option<String>,
    /// Tokens Prometheus sends to read `/metrics` (`Authorization: Bearer`), by SHA-256; with
    /// none, `/metrics` on the admin listener is open.
    #[serde(default)]
    pub metrics_tokens: Vec<AdminTokenFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenFile {
    /// Who holds the token; written into records as `recorded_by`.
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DenialsFile {
    /// Keep at most this many denial entries.
    #[serde(default = "default_denial_entries")]
    pub max_entries: u64,
    /// Drop entries older than this many days (0 = keep until max_entries).
    #[serde(default)]
    pub max_age_days: u64,
    /// Refusals kept in memory (per instance) while the denial log cannot be written.
    #[serde(default = "default_denial_buffer")]
    pub buffer_max: usize,
}

/// `[cache]`: what each instance keeps of what a request reads from Redis.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// Off: every request reads Redis.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How many people's standing (records, directory entry, exemptions) each instance keeps.
    #[serde(default = "default_cache_subjects")]
    pub max_subjects: u64,
    /// How many sessions each instance keeps.
    #[serde(default = "default_cache_sessions")]
    pub max_sessions: u64,
    /// The longest an entry is kept, in seconds (a safety net under pub/sub invalidation).
    #[serde(default = "default_cache_ttl")]
    pub ttl_secs: u64,
}

impl Default for CacheFile {
    fn default() -> Self {
        Self {
            enabled: true,
            max_subjects: default_cache_subjects(),
            max_sessions: default_cache_sessions(),
            ttl_secs: default_cache_ttl(),
        }
    }
}

fn default_cache_subjects() -> u64 {
    100_000
}

fn default_cache_sessions() -> u64 {
    100_000
}

fn default_cache_ttl() -> u64 {
    60
}

impl Default for DenialsFile {
    fn default() -> Self {
        Self {
            max_entries: default_denial_entries(),
            max_age_days: 0,
            buffer_max: default_denial_buffer(),
        }
    }
}

fn default_leeway() -> u64 {
    60
}

/// `Authorization: Bearer` JWT access tokens from API clients.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BearerFile {
    /// Accept bearer tokens at all. When false, an `Authorization: Bearer` header is ignored by
    /// the gate (and passed to the upstream), and people must use the browser sign-in.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Accepted `aud` values: your API's identifier at the provider. None (the default): bearer
    /// tokens are off. Never the OIDC client id, which is what ID tokens are issued for.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Refuse access tokens whose header `typ` is not `at+jwt` (RFC 9068), for providers that
    /// issue every access token that way.
    #[serde(default)]
    pub require_at_jwt: bool,
    /// Clock leeway for `exp` and `nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Client-credentials (machine) clients, identified by the token's `client_id` or `azp`.
    #[serde(default)]
    pub machine_clients: Vec<MachineClientFile>,
}

impl Default for BearerFile {
    fn default() -> Self {
        Self {
            enabled: true,
            audiences: Vec::new(),
            require_at_jwt: false,
            leeway_secs: default_leeway(),
            machine_clients: Vec::new(),
        }
    }
}

/// A machine client: either exempt, or acting for a responsible person whose compliance it inherits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MachineClientFile {
    pub client_id: String,
    /// Admitted without any requirement (name it here only after a risk decision).
    #[serde(default)]
    pub exempt: bool,
    /// The person (subject) whose compliance this client inherits.
    #[serde(default)]
    pub acts_for: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthFile {
    /// How `/oauth2/auth` answers: `nginx` (default), `traefik`, `caddy` or `envoy`.
    /// `/oauth2/auth/<mode>` always answers in that mode.
    #[serde(default)]
    pub default_mode: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingFile {
    /// `pretty` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter such as `info,clearance=debug`.
    #[serde(default)]
    pub filter: Option<String>,
}

impl Default for LoggingFile {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            filter: None,
        }
    }
}

/// `[telemetry]`: where spans go.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryFile {
    /// OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`; no traces when absent.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; default `clearance`.
    #[serde(default)]
    pub service_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementFile {
    pub id: String,
    pub kind: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub version: VersionFile,
    /// Date (YYYY-MM-DD) or RFC 3339 time the current version took effect.
    #[serde(default)]
    pub version_since: Option<String>,
    #[serde(default)]
    pub validity_days: Option<u32>,
    #[serde(default)]
    pub grace_days: u32,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub applies_to: crate::domain::Selector,
    #[serde(default)]
    pub enforcement: Option<String>,
    /// For `enforcement = "warn"`: the due date (YYYY-MM-DD or RFC 3339) from which it blocks.
    #[serde(default)]
    pub enforce_from: Option<String>,
    /// For `warn`: show the interstitial again after this many hours (default 24).
    #[serde(default)]
    pub warn_every_hours: Option<u32>,
    /// A document people read and accept on Clearance's own page.
    #[serde(default)]
    pub document: Option<DocumentFile>,
    /// What changed in each version: `{ "3.0" = "Adds rules for AI assistants" }`.
    #[serde(default)]
    pub changes: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Host name to match (without port); omitted or `*` matches any host.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// Where to send admitted requests. Omit it for routes that only carry policy for
    /// forward-auth (nginx, Traefik, Caddy, Envoy pick the upstream themselves).
    #[serde(default)]
    pub upstream: Option<String>,
    /// `gated` (default): signed in and compliant; `induction`: signed in only, for the places
    /// where induction is completed; `public`: no sign-in.
    #[serde(default)]
    pub access: Option<String>,
    /// Requirement ids this route needs; omitted means all requirements.
    #[serde(default)]
    pub requirements: Option<Vec<String>>,
    /// Send the client's Host header upstream instead of the upstream's.
    #[serde(default)]
    pub preserve_host: bool,
}

/// A version as written in TOML: `"3.1"` or `3`. Floats are refused because `2.10` would read as `2.1`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum VersionFile {
    Text(String),
    Integer(u64),
    Float(f64),
}

/// `[xapi]`: the LMS posts xAPI statements to `/.clearance/xapi/statements` as to an LRS.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XapiFile {
    /// Who may post statements. Without any, the endpoint answers 404.
    #[serde(default)]
    pub credentials: Vec<XapiCredentialFile>,
    /// Which activities count as which requirement.
    #[serde(default)]
    pub activities: Vec<XapiActivityFile>,
    /// When set, `account` actors are mapped to people only with this `homePage`.
    #[serde(default)]
    pub account_home_page: Option<String>,
}

/// An LRS credential: HTTP Basic `username:password` (sha256 of the password), or, without a
/// username, a bearer token (sha256 of the token).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XapiCredentialFile {
    /// Written into records as `recorded_by = "xapi:<name>"`.
    pub name: String,
    #[serde(default)]
    pub username: Option<String>,
    pub sha256: String,
}

/// Completing `activity_id` counts as `requirement` at `version`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XapiActivityFile {
    pub activity_id: String,
    pub requirement: String,
    pub version: VersionFile,
}

/// A requirement's document, shown as text: a file, or a URL whose content is pinned by SHA-256.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentFile {
    /// Path of the file (relative paths are relative to the working directory).
    #[serde(default)]
    pub path: Option<String>,
    /// A URL serving the text (fetched at start and re-checked every few minutes); needs `sha256`.
    #[serde(default)]
    pub url: Option<String>,
    /// Expected SHA-256 (hex); when given, a different file is refused, so that a changed
    /// document cannot slip in without a new version.
    #[serde(default)]
    pub sha256: Option<String>,
}
