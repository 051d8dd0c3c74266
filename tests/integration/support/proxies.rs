//! `Nginx` and `Caddy`: the real reverse proxies as child processes on loopback ports, each with
//! its own temp directory (nginx prefix with logs/ and temp/; Caddy's HOME and XDG dirs), killed
//! on drop. Missing binaries: run `scripts/install-test-deps.sh`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (Debian packages `nginx` and `caddy`)";

/// Finds a proxy binary on PATH or in the usual sbin directories (nginx lives in /usr/sbin,
/// which is not on every PATH).
fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("`{name}` is not installed: {INSTALL_HINT}"))
}

/// A running proxy process: its port, its temp dir and where its output goes.
struct Proxy {
    name: &'static str,
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Files whose contents explain a failure (stderr, error log).
    logs: Vec<PathBuf>,
}

impl Proxy {
    fn logs_text(&self) -> String {
        self.logs
            .iter()
            .map(|p| {
                format!(
                    "--- {} ---\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails if the process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} exited with {status} (listening on 127.0.0.1:{} was the plan):\n{}",
                self.name,
                self.port,
                self.logs_text()
            );
        }
        Ok(())
    }

    /// Waits until something accepts connections on the port, failing early if the process
    /// exits (for instance because another process took the port first).
    async fn wait_for_port(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            self.check_running()?;
            if super::port_is_open(self.port).await {
                // Still ours a moment later: a failed bind would have ended the process.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return self.check_running();
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} did not listen on 127.0.0.1:{} within 15 s:\n{}",
                    self.name,
                    self.port,
                    self.logs_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Asks the process to stop (SIGTERM: nginx's master then stops its workers too), waits a
    /// little, then kills it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn output_file(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// nginx (`nginx -c FILE -p PREFIX -g 'daemon off;'`) in the foreground, stopped on drop.
pub struct Nginx {
    proxy: Proxy,
}

impl Nginx {
    /// Writes `config` (a complete nginx.conf that listens on 127.0.0.1:`port` and keeps its
    /// logs, pid and temp files relative to the prefix) into a fresh prefix directory with
    /// `logs/` and `temp/`, starts nginx and waits until the port answers. Panics on failure.
    pub async fn start(port: u16, config: &str) -> Self {
        match Self::try_start(port, config).await {
            Ok(nginx) => nginx,
            Err(err) => panic!("starting nginx failed: {err:#}"),
        }
    }

    pub async fn try_start(port: u16, config: &str) -> anyhow::Result<Self> {
        let binary = find_binary("nginx")?;
        let dir = tempfile::Builder::new()
            .prefix("clearance-nginx-")
            .tempdir()
            .context("creating nginx's prefix directory")?;
        let prefix = dir.path();
        for sub in ["logs", "temp"] {
            std::fs::create_dir_all(prefix.join(sub))?;
        }
        // Run as root, nginx's workers switch to `nobody`: they must be able to reach the
        // prefix and write their temp files.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(prefix, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(prefix.join("temp"), std::fs::Permissions::from_mode(0o777))?;
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let stderr = prefix.join("stderr.log");
        let output = output_file(&stderr)?;
        let error_log = prefix.join("logs/error.log");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            // nginx wants the prefix with a trailing slash.
            .arg("-p")
            .arg(format!("{}/", prefix.display()))
            // Errors before the configuration is read go here, not to /var/log/nginx.
            .args(["-e", "logs/error.log"])
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("spawning {} ({INSTALL_HINT})", binary.display()))?;
        let mut proxy = Proxy {
            name: "nginx",
            port,
            child: Some(child),
            dir,
            logs: vec![stderr, error_log],
        };
        proxy.wait_for_port().await?;
        Ok(Self { proxy })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy.port)
    }

    pub fn port(&self) -> u16 {
        self.proxy.port
    }

    /// The error log and stderr so far (for assertion messages).
    pub fn logs(&self) -> String {
        self.proxy.logs_text()
    }

    /// The access log so far, one line per request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.proxy.dir.path().join("logs/access.log")).unwrap_or_default()
    }
}

/// Caddy (`caddy run --config Caddyfile --adapter caddyfile`), stopped on drop. HOME and the
/// XDG directories point into its own temp dir, so nothing is written elsewhere.
pub struct Caddy {
    proxy: Proxy,
}

impl Caddy {
    /// Writes `caddyfile` (which must serve 127.0.0.1:`port`) into a fresh directory, starts
    /// Caddy and waits until the port answers. Panics on failure.
    pub async fn start(port: u16, caddyfile: &str) -> Self {
        match Self::try_start(port, caddyfile).await {
            Ok(caddy) => caddy,
            Err(err) => panic!("starting caddy failed: {err:#}"),
        }
    }

    pub async fn try_start(port: u16, caddyfile: &str) -> anyhow::Result<Self> {
        let binary = find_binary("caddy")?;
        let dir = tempfile::Builder::new()
            .prefix("clearance-caddy-")
            .tempdir()
            .context("creating caddy's directory")?;
        let home = dir.path();
        for sub in ["config", "data"] {
            std::fs::create_dir_all(home.join(sub))?;
        }
        let file = home.join("Caddyfile");
        std::fs::write(&file, caddyfile)?;
        let log = home.join("caddy.log");
        let output = output_file(&log)?;
        let child = Command::new(&binary)
            .arg("run")
            .arg("--config")
            .arg(&file)
            .args(["--adapter", "caddyfile"])
            .current_dir(home)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("spawning {} ({INSTALL_HINT})", binary.display()))?;
        let mut proxy = Proxy {
            name: "caddy",
            port,
            child: Some(child),
            dir,
            logs: vec![log],
        };
        proxy.wait_for_port().await?;
        Ok(Self { proxy })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy.port)
    }

    pub fn port(&self) -> u16 {
        self.proxy.port
    }

    /// Caddy's log so far (for assertion messages).
    pub fn logs(&self) -> String {
        self.proxy.logs_text()
    }
}
