//! Hot reload of the configuration file, on SIGHUP and when the file's content changes.
//!
//! The file's SHA-256 is polled (every second in `serve`) rather than watched with inotify:
//! polling one small file costs nothing, and it follows every way a file gets replaced
//! (editors that write a new file and rename it, Kubernetes ConfigMaps that swap a symlink,
//! network file systems, bind mounts) where a watch on the old inode goes quiet. A change is
//! acted on once the same content was read on two polls in a row, so that a file caught
//! half-written is not reported as an error.
//!
//! A reload reads and validates the whole file ([`crate::config::load_text`]); if it is valid
//! the new settings are swapped in atomically (requests already running finish with the
//! settings they took), except the sections that cannot change without a restart, which keep
//! their running values and are named in a warning. A bad file is logged with the key or line
//! at fault, and the settings in force stay. Every reload that takes effect appends a
//! `config.loaded` audit event with the file's SHA-256.

use crate::config::Settings;
use crate::config::file::FileConfig;
use crate::http::AppState;
use sha2::Digest as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often `serve` looks at the file.
pub const POLL: Duration = Duration::from_secs(1);

/// Keys that are read once at start. `None`: every key of the section.
const RESTART_ONLY: &[(&str, Option<&[&str]>)] = &[
    (
        "server",
        Some(&[
            "listen",
            "public_url",
            "workers",
            "upstream_timeout_ms",
            "upstream_connect_timeout_ms",
            "max_request_body_bytes",
        ]),
    ),
    ("admin", Some(&["listen"])),
    ("redis", None),
    ("oidc", None),
    ("session", None),
    ("denials", None),
    ("logging", None),
    ("telemetry", None),
    ("audit", None),
    ("notifications", None),
    (
        "bearer",
        Some(&["audiences", "leeway_secs", "require_at_jwt"]),
    ),
];

/// Why a reload did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {error}")]
    Invalid {
        path: String,
        error: crate::config::ConfigError,
    },
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The file's content is the one last looked at.
    Unchanged,
    /// The new settings are in force; `restart_needed` names the keys that changed but keep
    /// their running values until a restart.
    Applied {
        sha256: String,
        restart_needed: Vec<String>,
    },
}

struct Current {
    /// SHA-256 of the content last looked at (applied or refused): a refused file is reported
    /// once, not on every poll.
    seen: String,
    /// The file as applied last, to name the restart-only keys that change.
    file: Option<FileConfig>,
}

/// Reloads one server's configuration from its file.
pub struct Reloader {
    path: PathBuf,
    state: AppState,
    current: tokio::sync::Mutex<Current>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn env() -> Vec<(String, String)> {
    std::env::vars().collect()
}

impl Reloader {
    /// For the server running `state`, whose settings came from `path` with SHA-256 `sha256`.
    pub fn new(path: PathBuf, state: AppState, sha256: String) -> Self {
        let file = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| crate::config::load_text(&text, &env()).ok())
            .map(|(file, _)| file);
        Self {
            path,
            state,
            current: tokio::sync::Mutex::new(Current { seen: sha256, file }),
        }
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// The SHA-256 of the file's content now.
    fn file_sha256(&self) -> Option<String> {
        std::fs::read(&self.path).ok().map(|b| sha256_hex(&b))
    }

    /// Reads, validates and applies the file. Without `force`, a file whose content was already
    /// looked at is left alone (`Unchanged`).
    pub async fn reload(&self, force: bool) -> Result<Reloaded, ReloadError> {
        let mut current = self.current.lock().await;
        let path = self.shown();
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                return Err(self.refused(ReloadError::Read {
                    path,
                    message: e.to_string(),
                }));
            }
        };
        let sha256 = sha256_hex(&bytes);
        if !force && sha256 == current.seen {
            return Ok(Reloaded::Unchanged);
        }
        current.seen.clone_from(&sha256);
        let text = String::from_utf8(bytes).map_err(|_| {
            self.refused(ReloadError::Read {
                path: path.clone(),
                message: "the file is not UTF-8 text".into(),
            })
        })?;
        let (file, settings) = crate::config::load_text(&text, &env())
            .map_err(|error| self.refused(ReloadError::Invalid { path, error }))?;
        let restart_needed = current
            .file
            .as_ref()
            .map(|old| restart_only_changes(old, &file))
            .unwrap_or_default();
        let running = self.state.settings();
        let merged = keep_restart_only(&running, settings);
        self.state.documents.follow(&merged.policy);
        let (requirements, routes) = (
            merged.policy.requirements.len(),
            merged.routes.routes().len(),
        );
        self.state.live.store(Arc::new(merged));
        current.file = Some(file);
        drop(current);
        crate::metrics::config_reload(true);
        tracing::info!(
            config.path = %self.shown(),
            config.sha256 = %sha256,
            config.requirements = requirements,
            config.routes = routes,
            "configuration reloaded"
        );
        for key in &restart_needed {
            tracing::warn!(
                config.key = %key,
                "changed in the configuration file, but keeps its running value until a restart"
            );
        }
        let loaded = crate::store::audit_event::config_loaded(
            self.state.clock.now(),
            &sha256,
            &self.shown(),
        );
        if let Err(e) = self.state.store.append_audit(&loaded).await {
            tracing::error!(
                error.message = %e,
                config.sha256 = %sha256,
                "the configuration change could not be written to the audit trail"
            );
        }
        Ok(Reloaded::Applied {
            sha256,
            restart_needed,
        })
    }

    /// Logs and counts a refused reload; the settings in force stay.
    fn refused(&self, e: ReloadError) -> ReloadError {
        crate::metrics::config_reload(false);
        tracing::error!(
            config.path = %self.shown(),
            error.message = %e,
            "configuration not reloaded; the settings in force stay"
        );
        e
    }
}

/// Names each restart-only key (`section.key`) whose value differs between two versions of
/// the file. Values are never shown: some are secrets.
pub fn restart_only_changes(old: &FileConfig, new: &FileConfig) -> Vec<String> {
    let (Ok(old), Ok(new)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return Vec::new();
    };
    let mut changed = Vec::new();
    for (section, keys) in RESTART_ONLY {
        let (o, n) = (&old[*section], &new[*section]);
        let names: Vec<String> = match (keys, o.as_object(), n.as_object()) {
            (Some(keys), _, _) => keys.iter().map(|k| (*k).to_owned()).collect(),
            (None, Some(a), Some(b)) => {
                let mut all: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
                all.sort();
                all.dedup();
                all
            }
            (None, _, _) => {
                if o != n {
                    changed.push((*section).to_owned());
                }
                continue;
            }
        };
        for key in names {
            if o.get(&key) != n.get(&key) {
                changed.push(format!("{section}.{key}"));
            }
        }
    }
    changed
}

/// The new settings with the running values of everything that is read once at start (the
/// listeners, Redis, the OIDC client, sessions, the denial log's limits, logging, the audit key,
/// the notification worker, the bearer verifier's audiences and leeway, the upstream client).
pub fn keep_restart_only(running: &Settings, mut new: Settings) -> Settings {
    new.listen = running.listen;
    new.admin_listen = running.admin_listen;
    new.public_url = running.public_url.clone();
    new.workers = running.workers;
    new.upstream_timeout = running.upstream_timeout;
    new.upstream_connect_timeout = running.upstream_connect_timeout;
    new.max_request_body = running.max_request_body;
    new.redis = running.redis.clone();
    new.oidc = running.oidc.clone();
    new.session = running.session.clone();
    new.denials = running.denials.clone();
    new.log_format = running.log_format;
    new.log_filter = running.log_filter.clone();
    new.traces = running.traces.clone();
    new.followup.audit_key = running.followup.audit_key.clone();
    new.followup.notifications = running.followup.notifications.clone();
    new.bearer.audiences = running.bearer.audiences.clone();
    new.bearer.leeway = running.bearer.leeway;
    new.bearer.require_at_jwt = running.bearer.require_at_jwt;
    // Bearer tokens are on only while the running verifier has an audience of its own.
    new.bearer.enabled = new.bearer.enabled && !running.bearer.audiences.is_empty();
    // `oidc.unknown_person_type` is read at start like the rest of `[oidc]`; it lives on the
    // requirements' selectors, which a reload replaces.
    let untyped = running
        .policy
        .requirements
        .iter()
        .any(|r| r.applies_to.untyped_escape);
    if new
        .policy
        .requirements
        .iter()
        .any(|r| r.applies_to.untyped_escape != untyped)
    {
        let mut policy = (*new.policy).clone();
        for r in &mut policy.requirements {
            r.applies_to.untyped_escape = untyped;
        }
        new.policy = std::sync::Arc::new(policy);
    }
    new
}

/// What sets off a reload.
#[derive(Clone, Copy, Debug)]
pub struct Triggers {
    /// Look at the file this often (`None`: never).
    pub poll: Option<Duration>,
    /// Reload on SIGHUP (the `serve` command; not in-process tests, which share the process).
    pub sighup: bool,
}

/// Watches the file and reloads on a change or SIGHUP until the runtime stops.
pub fn spawn(reloader: Arc<Reloader>, triggers: Triggers) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangups = if triggers.sighup { hangups() } else { None };
        let mut tick = tokio::time::interval(triggers.poll.unwrap_or(Duration::from_secs(3600)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The content read on the previous poll: a change is acted on once it is stable.
        let mut previous: Option<String> = None;
        loop {
            tokio::select! {
                () = next_hangup(&mut hangups) => {
                    tracing::info!(config.path = %reloader.shown(), "SIGHUP: reloading the configuration");
                    let _ = reloader.reload(true).await;
                }
                _ = tick.tick(), if triggers.poll.is_some() => {
                    let now = reloader.file_sha256();
                    if now.is_some() && now == previous {
                        let _ = reloader.reload(false).await;
                    }
                    previous = now;
                }
            }
        }
    })
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangups() -> Option<Hangups> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error.message = %e, "SIGHUP cannot be caught; the file is still watched");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Option<Hangups> {
    None
}

/// Waits for the next SIGHUP, or forever when there is none to wait for.
#[cfg(unix)]
async fn next_hangup(hangups: &mut Option<Hangups>) {
    if let Some(signal) = hangups
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending::<()>().await;
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<Hangups>) {
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/clearance.example.toml"),
        )
        .unwrap()
    }

    #[test]
    fn restart_only_keys_are_named_and_keep_their_running_values() {
        let vars = crate::config::tests::secrets();
        let (old_file, old) = crate::config::load_text(&example(), &vars).unwrap();
        let changed = example()
            .replace("listen = \"127.0.0.1:4180\"", "listen = \"127.0.0.1:4999\"")
            .replace("lifetime_hours = 12", "lifetime_hours = 8")
            .replace(
                "path_prefix = \"/public-handbook\"",
                "path_prefix = \"/handbook\"",
            );
        let (new_file, new) = crate::config::load_text(&changed, &vars).unwrap();
        assert_eq!(
            restart_only_changes(&old_file, &new_file),
            vec!["server.listen", "session.lifetime_hours"]
        );
        let merged = keep_restart_only(&old, new);
        assert_eq!(merged.listen, old.listen);
        assert_eq!(merged.session.lifetime, old.session.lifetime);
        assert!(
            merged
                .routes
                .routes()
                .iter()
                .any(|r| r.path_prefix == "/handbook"),
            "routes follow the file"
        );
        assert!(restart_only_changes(&old_file, &old_file).is_empty());
    }

    #[test]
    fn who_is_held_to_what_and_bearer_access_wait_for_a_restart() {
        let vars = crate::config::tests::secrets();
        let (old_file, old) = crate::config::load_text(&example(), &vars).unwrap();
        assert!(!old.bearer.enabled, "the example names no audience");
        let changed = example().replace(
            "unknown_person_type = \"strictest\"",
            "unknown_person_type = \"untyped\"\n[bearer]\naudiences = [\"api://x\"]",
        );
        let (new_file, new) = crate::config::load_text(&changed, &vars).unwrap();
        assert!(new.bearer.enabled);
        assert!(new.policy.requirements[0].applies_to.untyped_escape);
        assert_eq!(
            restart_only_changes(&old_file, &new_file),
            vec!["oidc.unknown_person_type", "bearer.audiences"]
        );
        let merged = keep_restart_only(&old, new);
        assert!(
            !merged.bearer.enabled,
            "the running verifier has no audience"
        );
        assert!(
            merged
                .policy
                .requirements
                .iter()
                .all(|r| !r.applies_to.untyped_escape),
            "unknown types stay held to everything until the restart"
        );
    }
}
