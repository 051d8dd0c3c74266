//! Configuration: load the TOML file, apply `CLEARANCE_` environment overrides and `*_FILE` secrets,
//! then validate everything into [`Settings`].

pub mod file;
pub mod followup;
pub mod limits;
mod settings;
pub mod webhooks;

/// Types of validated settings that other modules name directly.
pub mod settings_types {
    pub use super::settings::LogFormat;
}

pub use settings::{
    AdminToken, BearerSettings, ClaimNames, DenialSettings, ForwardAuthMode, MachineAccess,
    MachineClient, OidcSettings, RedisSettings, SessionSettings, Settings,
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
    fn missing_file_is_reported() {
        let e = err_text(load_with_env(Path::new("/nonexistent.toml"), &[]));
        assert!(e.contains("/nonexistent.toml"), "{e}");
    }
}
