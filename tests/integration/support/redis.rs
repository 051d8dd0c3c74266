//! `RedisServer`: a throwaway `redis-server` child process on a loopback port, for tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A `redis-server` on 127.0.0.1 with no persistence, killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING. Panics on failure.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(server) => server,
            Err(err) => panic!("starting redis-server failed: {err:#}"),
        }
    }

    /// Like [`RedisServer::start`], but returns the error.
    pub async fn try_start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("clearance-redis-")
            .tempdir()
            .context("creating a temp dir for redis")?;
        let mut server = RedisServer {
            port: super::free_port(),
            child: None,
            dir,
        };
        // A port found free can be taken before redis binds it: try a few.
        let mut attempts = 1;
        loop {
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(_) if attempts < 5 => {
                    attempts += 1;
                    server.kill().await;
                    server.port = super::free_port();
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running (it may still be starting).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server and waits for it to exit; the port is free afterwards.
    pub async fn stop(&mut self) {
        self.kill().await;
    }

    /// Starts the server again on the same port (stopping it first if it runs). All data is
    /// gone: nothing is persisted. Panics on failure.
    pub async fn restart(&mut self) {
        self.kill().await;
        if let Err(err) = self.spawn_and_wait().await {
            panic!(
                "restarting redis-server on port {} failed: {err:#}",
                self.port
            );
        }
    }

    /// Sends one raw RESP command line (e.g. `"PING"`) and returns the first reply chunk.
    pub async fn raw_command(&self, line: &str) -> anyhow::Result<String> {
        raw_command(self.port, line).await
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning redis-server (is it installed? run scripts/install-test-deps.sh)")?;
        self.child = Some(child);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let child = self.child.as_mut().expect("child just spawned");
            if let Ok(reply) = raw_command(self.port, "PING").await
                && reply.starts_with("+PONG")
            {
                // Make sure it is our process that answers, not another test's server
                // that won the race for the port.
                let info = raw_command(self.port, "INFO server")
                    .await
                    .unwrap_or_default();
                let ours = child
                    .id()
                    .is_some_and(|pid| info.contains(&format!("process_id:{pid}\r\n")));
                if ours {
                    return Ok(());
                }
            }
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr).await;
                }
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                self.child = None;
                bail!(
                    "redis-server on port {} exited with {status}: {stderr}{log}",
                    self.port
                );
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                bail!(
                    "redis-server on port {} did not answer PING within 10 s: {log}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn raw_command(port: u16, line: &str) -> anyhow::Result<String> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(format!("{line}\r\n").as_bytes()).await?;
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .context("redis did not reply within 2 s")?
}
