//! `RedisServer`: a throwaway `redis-server` child process on a loopback port, for tests; and
//! the topologies built from them: `RedisCluster` (three primaries) and `RedisSentinel` (a
//! primary, a replica and one Sentinel).

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
    /// More `redis-server` arguments (cluster mode, `--replicaof`).
    args: Vec<String>,
    /// Sentinel mode: the configuration lines after `port`/`bind` (Sentinel rewrites the file).
    sentinel: Option<String>,
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
        Self::try_start_as(Vec::new(), None).await
    }

    /// Starts a server with more arguments (e.g. `--cluster-enabled yes`). Panics on failure.
    pub async fn start_with_args(args: &[&str]) -> Self {
        match Self::try_start_as(args.iter().map(|a| (*a).to_owned()).collect(), None).await {
            Ok(server) => server,
            Err(err) => panic!("starting redis-server {args:?} failed: {err:#}"),
        }
    }

    /// Starts a Sentinel with `config` (its `sentinel ...` lines). Panics on failure.
    pub async fn start_sentinel(config: &str) -> Self {
        match Self::try_start_as(Vec::new(), Some(config.to_owned())).await {
            Ok(server) => server,
            Err(err) => panic!("starting redis-server --sentinel failed: {err:#}"),
        }
    }

    async fn try_start_as(args: Vec<String>, sentinel: Option<String>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("clearance-redis-")
            .tempdir()
            .context("creating a temp dir for redis")?;
        let mut server = RedisServer {
            port: super::free_port(),
            child: None,
            dir,
            args,
            sentinel,
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

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered, and what is
    /// sent meanwhile runs when it is resumed, as with a hung host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("a running server");
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Sends one raw RESP command line (e.g. `"PING"`) and returns the first reply chunk.
    pub async fn raw_command(&self, line: &str) -> anyhow::Result<String> {
        raw_command(self.port, line).await
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
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
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.sentinel {
            let path = self.dir.path().join("sentinel.conf");
            std::fs::write(
                &path,
                format!("port {}\nbind 127.0.0.1\n{config}\n", self.port),
            )
            .context("writing sentinel.conf")?;
            command.arg(path).arg("--sentinel");
        } else {
            command
                .arg("--port")
                .arg(self.port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(&self.args);
        }
        let child = command
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

/// Whether `predicate` holds for the reply to `line` on `port` before `within` runs out.
async fn eventually(
    port: u16,
    line: &str,
    within: Duration,
    predicate: impl Fn(&str) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(reply) = raw_command(port, line).await
            && predicate(&reply)
        {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Redis Cluster of three primaries (and their replicas, if asked) on loopback ports, made
/// with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> Self {
        Self::start_with_replicas(0).await
    }

    /// Three primaries with `replicas` replicas each; the primaries come first in `nodes`.
    pub async fn start_with_replicas(replicas: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            nodes.push(
                RedisServer::start_with_args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
                .await,
            );
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("redis-cli runs (install redis-tools: scripts/install-test-deps.sh)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &nodes {
            assert!(
                eventually(n.port(), "CLUSTER INFO", Duration::from_secs(20), |r| r
                    .contains("cluster_state:ok"))
                .await,
                "the cluster did not become ready on port {}",
                n.port()
            );
            // A replica that never synced would not take over when its primary fails.
            assert!(
                eventually(n.port(), "INFO replication", Duration::from_secs(30), |r| r
                    .contains("role:master")
                    || r.contains("master_link_status:up"))
                .await,
                "the replica on port {} did not sync with its primary",
                n.port()
            );
        }
        Self { nodes }
    }

    /// The nodes' URLs, for `redis.nodes`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// How many keys each node holds (`DBSIZE`).
    pub async fn keys_per_node(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let reply = n.raw_command("DBSIZE").await.unwrap_or_default();
            out.push(reply.trim().trim_start_matches(':').parse().unwrap_or(0));
        }
        out
    }
}

/// The name Sentinel monitors the primary under in the tests.
pub const SENTINEL_MASTER: &str = "clearance-test";

/// A primary, a replica of it, and one Sentinel watching them (quorum 1, a primary is down after
/// 500 ms), ready for a failover.
pub struct RedisSentinel {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinel: RedisServer,
}

impl RedisSentinel {
    pub async fn start() -> Self {
        let primary = RedisServer::start().await;
        let replica = RedisServer::start_with_args(&[
            "--replicaof",
            "127.0.0.1",
            &primary.port().to_string(),
        ])
        .await;
        assert!(
            eventually(
                replica.port(),
                "INFO replication",
                Duration::from_secs(20),
                |r| r.contains("master_link_status:up")
            )
            .await,
            "the replica did not sync with the primary"
        );
        let p = primary.port();
        let m = SENTINEL_MASTER;
        let sentinel = RedisServer::start_sentinel(&format!(
            "sentinel monitor {m} 127.0.0.1 {p} 1\n\
             sentinel down-after-milliseconds {m} 500\n\
             sentinel failover-timeout {m} 5000\n\
             sentinel parallel-syncs {m} 1"
        ))
        .await;
        assert!(
            eventually(
                sentinel.port(),
                &format!("SENTINEL REPLICAS {m}"),
                Duration::from_secs(30),
                |r| r.contains(&replica.port().to_string())
            )
            .await,
            "the sentinel did not find the replica"
        );
        Self {
            primary,
            replica,
            sentinel,
        }
    }
}

/// Whether `sentinel` names `replica` as the primary now (the failover happened).
pub async fn sentinel_names(sentinel: &RedisServer, replica: &RedisServer) -> bool {
    raw_command(
        sentinel.port(),
        &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {SENTINEL_MASTER}"),
    )
    .await
    .is_ok_and(|r| r.contains(&replica.port().to_string()))
}
