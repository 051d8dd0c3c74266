//! Configuration: load the TOML file, apply `CLEARANCE_` environment overrides and `*_FILE` secrets,
//! then validate everything into [`Settings`].

pub mod file;
pub mod followup;
pub mod limits;
mod settings;
pub mod webhooks;

/// Types of validated settings that other modules name directly.
pub mod settings_types {
    pub use super::settings::{LogFormat, TraceSettings};
}

pub use settings::{
    AdminToken, BearerSettings, CacheSettings, ClaimNames, DenialSettings, ForwardAuthMode,
    IdentityRules, MachineAccess, MachineClient, OidcSettings, RedisSettings, RedisTopology,
    SessionSettings, Settings,
};
pub use settings::{XapiCredential, XapiSettings};

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;
use std::path::Path;

/// Environment variables that configure the CLI itself rather than the file.
const ENV_PREFIX: &str = "CLEARANCE_";

/// Why the configuration was refused. Every message names the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{0}")]
    Parse(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|(k, m)| format!("  - {k}: {m}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<(String, String)>),
}

/// Loads and validates the configuration from a file plus the environment.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, &vars)
}

/// Like [`load`], with the environment given explicitly (tests).
pub fn load_with_env(path: &Path, vars: &[(String, String)]) -> Result<Settings, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::Read {
            path: path.display().to_string(),
            message: "no such file".into(),
        });
    }
    let figment = Figment::new().merge(Toml::file_exact(path));
    let file = extract(apply_env(figment, vars)?)?;
    settings::validate(file)
}

/// Parses and validates a configuration file's text (already read, so that its SHA-256 is the
/// one of what was validated) with the environment applied. Returns the file as read, for
/// comparing one version with the next (hot reload), and the settings.
pub fn load_text(
    text: &str,
    vars: &[(String, String)],
) -> Result<(file::FileConfig, Settings), ConfigError> {
    let file = extract(apply_env(Figment::new().merge(Toml::string(text)), vars)?)?;
    let settings = settings::validate(file.clone())?;
    Ok((file, settings))
}

/// Parses a configuration given as TOML text (the demo's embedded defaults, tests).
pub fn from_toml_str(text: &str) -> Result<Settings, ConfigError> {
    extract(Figment::new().merge(Toml::string(text))).and_then(settings::validate)
}

fn extract(figment: Figment) -> Result<file::FileConfig, ConfigError> {
    figment.extract::<file::FileConfig>().map_err(|e| {
        ConfigError::Parse(
            e.into_iter()
                .map(|e| describe(&e))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

fn describe(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let source = e
        .metadata
        .as_ref()
        .map(|m| {
            format!(
                " (from {})",
                m.source
                    .as_ref()
                    .map_or(m.name.to_string(), |s| s.to_string())
            )
        })
        .unwrap_or_default();
    if key.is_empty() {
        format!("configuration error: {}{source}", e.kind)
    } else {
        format!("configuration key `{key}`: {}{source}", e.kind)
    }
}

/// Applies `CLEARANCE_<SECTION>__<KEY>` overrides and `CLEARANCE_<SECTION>__<KEY>_FILE` secrets.
///
/// Only variables with a `__` separator are configuration; the others (for example
/// `CLEARANCE_CONFIG`) belong to the command line.
fn apply_env(mut figment: Figment, vars: &[(String, String)]) -> Result<Figment, ConfigError> {
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort();
    for (name, raw) in sorted {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let (key, value) = match rest.strip_suffix("_FILE") {
            Some(key) => {
                let text = std::fs::read_to_string(raw).map_err(|e| ConfigError::Read {
                    path: format!("{raw} (named by {name})"),
                    message: e.to_string(),
                })?;
                let text = text.trim_end_matches(['\r', '\n']).to_owned();
                (key, Value::from(text))
            }
            // Parsed like figment's own Env provider: numbers, booleans, arrays `[a, b]`.
            None => (
                rest,
                raw.parse::<Value>().unwrap_or_else(|never| match never {}),
            ),
        };
        let dotted = key.to_ascii_lowercase().replace("__", ".");
        figment = figment.merge((dotted, value));
    }
    Ok(figment)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    fn example() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/clearance.example.toml")
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn err_text(r: Result<Settings, ConfigError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    /// The example leaves secrets to the environment, as a deployment should.
    pub(crate) fn secrets() -> Vec<(String, String)> {
        vec![
            ("CLEARANCE_OIDC__CLIENT_SECRET".into(), "s3cret".into()),
            (
                "CLEARANCE_SESSION__COOKIE_SECRET".into(),
                "dGVzdC1jb29raWUtc2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWNsZWFyYW5jZQ==".into(),
            ),
            (
                "CLEARANCE_AUDIT__KEY".into(),
                "test-audit-key-0123456789abcdefghijklmnop".into(),
            ),
        ]
    }

    #[test]
    fn example_config_needs_its_secrets() {
        let e = err_text(load_with_env(&example(), &[]));
        assert!(
            e.contains("oidc.client_secret")
                && e.contains("session.cookie_secret")
                && e.contains("audit.key"),
            "{e}"
        );
    }

    #[test]
    fn example_config_is_valid() {
        let s = load_with_env(&example(), &secrets()).unwrap();
        assert_eq!(s.policy.requirements.len(), 3);
        assert_eq!(s.routes.routes().len(), 4);
        assert_eq!(
            s.oidc.redirect_url.as_str(),
            "https://gate.example.com/oauth2/callback"
        );
        assert!(s.redirect_hosts.contains(&"wiki.example.com".to_string()));
    }

    #[test]
    fn redis_topologies_from_the_environment_and_their_errors() {
        use super::RedisTopology;
        let with = |extra: &[(&str, &str)]| {
            let mut vars = secrets();
            vars.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            load_with_env(&example(), &vars)
        };
        assert_eq!(
            with(&[]).unwrap().redis.topology,
            RedisTopology::Single,
            "single by default"
        );
        let s = with(&[
            ("CLEARANCE_REDIS__MODE", "cluster"),
            (
                "CLEARANCE_REDIS__NODES",
                "redis://10.0.0.1:6379, redis://10.0.0.2:6379",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.redis.topology,
            RedisTopology::Cluster {
                nodes: vec![
                    "redis://10.0.0.1:6379".into(),
                    "redis://10.0.0.2:6379".into()
                ]
            }
        );
        let s = with(&[
            ("CLEARANCE_REDIS__MODE", "sentinel"),
            ("CLEARANCE_REDIS__SENTINELS", "[redis://10.0.0.9:26379]"),
            ("CLEARANCE_REDIS__MASTER_NAME", "clearance"),
        ])
        .unwrap();
        assert_eq!(
            s.redis.topology,
            RedisTopology::Sentinel {
                sentinels: vec!["redis://10.0.0.9:26379".into()],
                master_name: "clearance".into()
            }
        );
        let e = err_text(with(&[("CLEARANCE_REDIS__MODE", "cluster")]));
        assert!(e.contains("redis.nodes") && e.contains("required"), "{e}");
        let e = err_text(with(&[("CLEARANCE_REDIS__MODE", "sentinel")]));
        assert!(
            e.contains("redis.sentinels") && e.contains("redis.master_name"),
            "{e}"
        );
        let e = err_text(with(&[
            ("CLEARANCE_REDIS__MODE", "cluster"),
            ("CLEARANCE_REDIS__NODES", "10.0.0.1:6379"),
        ]));
        assert!(e.contains("redis.nodes") && e.contains("redis://"), "{e}");
        let e = err_text(with(&[("CLEARANCE_REDIS__MODE", "replicated")]));
        assert!(
            e.contains("redis.mode") && e.contains("\"sentinel\""),
            "{e}"
        );
    }

    #[test]
    fn env_overrides_and_file_secrets() {
        let secret = write("from-a-file\n");
        let mut vars = secrets();
        vars.retain(|(k, _)| k != "CLEARANCE_OIDC__CLIENT_SECRET");
        vars.extend(vec![
            (
                "CLEARANCE_SERVER__LISTEN".to_string(),
                "0.0.0.0:9999".to_string(),
            ),
            (
                "CLEARANCE_REDIS__RESPONSE_TIMEOUT_MS".to_string(),
                "250".to_string(),
            ),
            (
                "CLEARANCE_OIDC__CLIENT_SECRET_FILE".to_string(),
                secret.path().display().to_string(),
            ),
            // Not configuration: no `__`.
            ("CLEARANCE_CONFIG".to_string(), "whatever".to_string()),
        ]);
        let s = load_with_env(&example(), &vars).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(s.redis.response_timeout.as_millis(), 250);
        assert_eq!(s.oidc.client_secret, "from-a-file");
    }

    #[test]
    fn missing_secret_file_names_the_variable() {
        let vars = vec![(
            "CLEARANCE_OIDC__CLIENT_SECRET_FILE".to_string(),
            "/nonexistent/secret".to_string(),
        )];
        let e = err_text(load_with_env(&example(), &vars));
        assert!(e.contains("CLEARANCE_OIDC__CLIENT_SECRET_FILE"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = std::fs::read_to_string(example())
            .unwrap()
            .replace("[redis]\n", "[redis]\nurll = \"redis://x\"\n");
        let f = write(&text);
        let e = err_text(load_with_env(f.path(), &secrets()));
        assert!(e.contains("urll") && e.contains("redis"), "{e}");
        let mut bad_env = secrets();
        bad_env.push(("CLEARANCE_OIDC__CLIENT_SECRTE".to_string(), "x".to_string()));
        let e = err_text(load_with_env(&example(), &bad_env));
        assert!(e.contains("client_secrte"), "{e}");
    }

    #[test]
    fn invalid_values_are_named() {
        let text = std::fs::read_to_string(example())
            .unwrap()
            .replace("kind = \"agreement\"", "kind = \"contract\"")
            .replace("version = \"3.0\"", "version = 3.0")
            .replace("listen = \"127.0.0.1:4180\"", "listen = \"localhost\"")
            .replace(
                "requirements = [\"acceptable-use-policy\"]",
                "requirements = [\"nope\"]",
            );
        let f = write(&text);
        let e = err_text(load_with_env(f.path(), &secrets()));
        for key in [
            "requirements[1].kind",
            "requirements[2].version",
            "server.listen",
            "routes[1].requirements",
        ] {
            assert!(e.contains(key), "missing {key} in {e}");
        }
    }

    #[test]
    fn wrong_types_are_named() {
        let text = std::fs::read_to_string(example())
            .unwrap()
            .replace("lifetime_hours = 12", "lifetime_hours = \"twelve\"");
        let e = err_text(load_with_env(write(&text).path(), &secrets()));
        assert!(e.contains("session.lifetime_hours"), "{e}");
    }

    #[test]
    fn short_cookie_secret_is_refused() {
        let mut vars = secrets();
        vars[1].1 = "c2hvcnQ=".into();
        let e = err_text(load_with_env(&example(), &vars));
        assert!(
            e.contains("session.cookie_secret") && e.contains("32"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_issuer_refused_off_loopback() {
        let text = std::fs::read_to_string(example())
            .unwrap()
            .replace("https://login.example.com", "http://login.example.com");
        let e = err_text(load_with_env(write(&text).path(), &secrets()));
        assert!(e.contains("oidc.issuer"), "{e}");
    }

    #[test]
    fn route_prefixes_must_be_normalised() {
        let text = std::fs::read_to_string(example()).unwrap().replace(
            "path_prefix = \"/public-handbook\"",
            "path_prefix = \"/a/../public-handbook\"",
        );
        let e = err_text(load_with_env(write(&text).path(), &secrets()));
        assert!(
            e.contains("routes[1].path_prefix") && e.contains("/public-handbook"),
            "{e}"
        );
    }

    #[test]
    fn admin_listener_and_telemetry_are_validated() {
        let ok = load_with_env(&example(), &secrets()).unwrap();
        let example = std::fs::read_to_string(example()).unwrap();
        assert_eq!(ok.admin_listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert!(ok.traces.is_none());
        let bad = example
            .replace("listen = \"127.0.0.1:9090\"", "listen = \"nine-thousand\"")
            .replace("# [telemetry]", "[telemetry]")
            .replace(
                "# otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"",
                "otlp_endpoint = \"ftp://collector\"",
            );
        let e = err_text(load_with_env(write(&bad).path(), &secrets()));
        assert!(
            e.contains("admin.listen") && e.contains("telemetry.otlp_endpoint"),
            "{e}"
        );
        let same = example.replace("listen = \"127.0.0.1:9090\"", "listen = \"127.0.0.1:4180\"");
        let e = err_text(load_with_env(write(&same).path(), &secrets()));
        assert!(
            e.contains("admin.listen") && e.contains("server.listen"),
            "{e}"
        );
        let traced = example
            .replace("# [telemetry]", "[telemetry]")
            .replace("# otlp_endpoint", "otlp_endpoint");
        let t = load_with_env(write(&traced).path(), &secrets()).unwrap();
        let traces = t.traces.unwrap();
        assert_eq!(
            traces.otlp_endpoint.as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(traces.service_name, "clearance");
    }

    #[test]
    fn missing_file_is_reported() {
        let e = err_text(load_with_env(Path::new("/nonexistent.toml"), &[]));
        assert!(e.contains("/nonexistent.toml"), "{e}");
    }
}
