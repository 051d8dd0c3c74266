//! The connection to Redis for every topology: one server, a Redis Cluster, or the primary that
//! Redis Sentinel names. Each reconnects by itself (after a restart, a failover or a resharding),
//! and every command is bounded by `redis.response_timeout_ms`, so that a hung Redis is a fast
//! failure (a 503 at the gate) and never a hang.

use crate::config::{RedisSettings, RedisTopology};
use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A connection to Redis in any topology; cheap to clone (clones share the connections).
#[derive(Clone)]
pub struct Conn {
    inner: Inner,
    /// The longest one command (with its redirects or reconnection) may take.
    deadline: Duration,
}

#[derive(Clone)]
enum Inner {
    /// The manager, and the client that opens subscriptions.
    Single(ConnectionManager, redis::Client),
    Cluster(Arc<LazyCluster>),
    Sentinel(Arc<SentinelPrimary>),
}

fn manager_config(settings: &RedisSettings) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(settings.response_timeout))
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

fn invalid(key: &str, e: impl std::fmt::Display) -> String {
    format!("invalid {key}: {e}")
}

impl Conn {
    /// Prepares the connection without connecting: the process starts (and fails closed) while
    /// Redis is down, and connects on first use.
    pub fn new(settings: &RedisSettings) -> Result<Self, String> {
        let inner = match &settings.topology {
            RedisTopology::Single => {
                let client = redis::Client::open(settings.url.as_str())
                    .map_err(|e| invalid("redis.url", e))?;
                Inner::Single(
                    ConnectionManager::new_lazy_with_config(
                        client.clone(),
                        manager_config(settings),
                    )
                    .map_err(|e| invalid("redis.url", e))?,
                    client,
                )
            }
            RedisTopology::Cluster { nodes } => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.response_timeout)
                    .retries(3)
                    .min_retry_wait(20)
                    .max_retry_wait(200)
                    .build()
                    .map_err(|e| invalid("redis.nodes", e))?;
                let subscribe_to = nodes
                    .iter()
                    .map(|n| redis::Client::open(n.as_str()))
                    .collect::<RedisResult<Vec<_>>>()
                    .map_err(|e| invalid("redis.nodes", e))?;
                Inner::Cluster(Arc::new(LazyCluster {
                    client,
                    subscribe_to,
                    conn: Mutex::new(ClusterState::default()),
                }))
            }
            RedisTopology::Sentinel {
                sentinels,
                master_name,
            } => {
                // The primary's user, password and database come from `redis.url`.
                let info = settings
                    .url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| invalid("redis.url", e))?;
                let node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(info.redis_settings().clone());
                let client = SentinelClient::build(
                    sentinels.clone(),
                    master_name.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| invalid("redis.sentinels", e))?;
                Inner::Sentinel(Arc::new(SentinelPrimary {
                    sentinel: Mutex::new(Resolver {
                        client,
                        failed_at: None,
                    }),
                    primary: ArcSwapOption::empty(),
                    config: manager_config(settings),
                }))
            }
        };
        Ok(Self {
            inner,
            // Room for one reconnection or redirect, still short enough to fail fast.
            deadline: settings.connect_timeout + settings.response_timeout * 2,
        })
    }

    /// A connection subscribed to nothing yet, for pub/sub: to the server, to the first cluster
    /// node that answers (a classic `PUBLISH` reaches subscribers on every node of a cluster),
    /// or to the primary Sentinel names now. Bounded like every command.
    pub async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        self.bounded(async {
            match &self.inner {
                Inner::Single(_, client) => client.get_async_pubsub().await,
                Inner::Cluster(lazy) => {
                    let mut last = not_now("redis.nodes is empty");
                    for client in &lazy.subscribe_to {
                        match client.get_async_pubsub().await {
                            Ok(pubsub) => return Ok(pubsub),
                            Err(e) => last = e,
                        }
                    }
                    Err(last)
                }
                Inner::Sentinel(primary) => {
                    let client = primary
                        .sentinel
                        .lock()
                        .await
                        .client
                        .async_get_client()
                        .await?;
                    client.get_async_pubsub().await
                }
            }
        })
        .await
    }

    /// Whether this is a Redis Cluster (where no key-space scan is meaningful).
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Inner::Cluster(_))
    }

    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        match tokio::time::timeout(self.deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis did not answer in time",
            ))),
        }
    }
}

/// A cluster connection made on first use (the cluster may be down when the process starts);
/// once made, it follows slot moves and failovers by itself.
struct LazyCluster {
    client: redis::cluster::ClusterClient,
    /// One client per configured node, for subscriptions.
    subscribe_to: Vec<redis::Client>,
    conn: Mutex<ClusterState>,
}

#[derive(Default)]
struct ClusterState {
    conn: Option<ClusterConnection>,
    /// When connecting last failed: commands meanwhile fail at once instead of queueing.
    failed_at: Option<Instant>,
}

impl LazyCluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        let mut state = self.conn.lock().await;
        if let Some(c) = state.conn.as_ref() {
            return Ok(c.clone());
        }
        if state.failed_at.is_some_and(|t| t.elapsed() < RETRY_PAUSE) {
            return Err(not_now(
                "the redis cluster could not be reached a moment ago",
            ));
        }
        match self.client.get_async_connection().await {
            Ok(c) => {
                state.conn = Some(c.clone());
                state.failed_at = None;
                Ok(c)
            }
            Err(e) => {
                state.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }
}

fn not_now(why: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, why))
}

/// The primary that Sentinel names. A connection error, a timeout or a `READONLY` answer (the
/// node was demoted) forgets the primary; the next command asks Sentinel again, so that service
/// resumes on the promoted replica once the failover is done.
struct SentinelPrimary {
    sentinel: Mutex<Resolver>,
    primary: ArcSwapOption<ConnectionManager>,
    config: ConnectionManagerConfig,
}

struct Resolver {
    client: SentinelClient,
    /// When asking Sentinel last failed: commands meanwhile fail at once instead of queueing.
    failed_at: Option<Instant>,
}

/// How long a failed connection to a cluster or Sentinel look-up is not repeated.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

impl SentinelPrimary {
    async fn get(&self) -> RedisResult<Arc<ConnectionManager>> {
        if let Some(c) = self.primary.load_full() {
            return Ok(c);
        }
        let mut resolver = self.sentinel.lock().await;
        // Another command may have found the primary while this one waited.
        if let Some(c) = self.primary.load_full() {
            return Ok(c);
        }
        if resolver
            .failed_at
            .is_some_and(|t| t.elapsed() < RETRY_PAUSE)
        {
            return Err(not_now("sentinel named no reachable primary a moment ago"));
        }
        let found = resolver.client.async_get_client().await.and_then(|client| {
            ConnectionManager::new_lazy_with_config(client, self.config.clone())
        });
        match found {
            Ok(manager) => {
                resolver.failed_at = None;
                let manager = Arc::new(manager);
                self.primary.store(Some(manager.clone()));
                Ok(manager)
            }
            Err(e) => {
                resolver.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Forgets `used` (unless another command replaced it already) when `result` says that it
    /// is gone or no longer the primary.
    fn forget_on_failure<T>(
        &self,
        used: Option<Arc<ConnectionManager>>,
        result: RedisResult<T>,
    ) -> RedisResult<T> {
        if let (Err(e), Some(used)) = (&result, used)
            && (e.is_io_error()
                || e.is_connection_refusal()
                || e.is_connection_dropped()
                || e.is_timeout()
                || matches!(
                    e.kind(),
                    redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                ))
        {
            let previous = self.primary.compare_and_swap(&Some(used.clone()), None);
            if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &used)) {
                tracing::warn!(error = %e, "the redis primary failed; asking sentinel for the primary again");
            }
        }
        result
    }
}

/// The connection one command goes over, and (behind Sentinel) the primary it was meant for.
enum Live {
    Manager(ConnectionManager, Option<Arc<ConnectionManager>>),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn live(&self) -> RedisResult<Live> {
        Ok(match &self.inner {
            Inner::Single(m, _) => Live::Manager(m.clone(), None),
            Inner::Cluster(lazy) => Live::Cluster(lazy.get().await?),
            Inner::Sentinel(primary) => {
                let m = primary.get().await?;
                Live::Manager((*m).clone(), Some(m))
            }
        })
    }

    /// Behind Sentinel, forgets the primary when the command's failure says it is gone.
    fn settle<T>(
        &self,
        used: Option<Arc<ConnectionManager>>,
        result: RedisResult<T>,
    ) -> RedisResult<T> {
        match &self.inner {
            Inner::Sentinel(primary) => primary.forget_on_failure(used, result),
            Inner::Single(..) | Inner::Cluster(_) => result,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut used = None;
            let result = self
                .bounded(async {
                    match self.live().await? {
                        Live::Manager(mut m, primary) => {
                            used = primary;
                            m.req_packed_command(cmd).await
                        }
                        Live::Cluster(mut c) => c.req_packed_command(cmd).await,
                    }
                })
                .await;
            self.settle(used, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut used = None;
            let result = self
                .bounded(async {
                    match self.live().await? {
                        Live::Manager(mut m, primary) => {
                            used = primary;
                            m.req_packed_commands(pipeline, offset, count).await
                        }
                        Live::Cluster(mut c) => {
                            c.req_packed_commands(pipeline, offset, count).await
                        }
                    }
                })
                .await;
            self.settle(used, result)
        })
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(m, _) => m.get_db(),
            Inner::Cluster(_) | Inner::Sentinel(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, topology: RedisTopology) -> RedisSettings {
        RedisSettings {
            url: url.into(),
            topology,
            key_prefix: "t:".into(),
            response_timeout: Duration::from_millis(100),
            connect_timeout: Duration::from_millis(100),
        }
    }

    #[tokio::test]
    async fn every_mode_is_prepared_without_connecting_and_bad_addresses_name_their_key() {
        let cluster = RedisTopology::Cluster {
            nodes: vec!["redis://127.0.0.1:1".into()],
        };
        let conn = Conn::new(&settings("redis://127.0.0.1:1/", cluster)).unwrap();
        assert!(conn.is_cluster());
        let sentinel = RedisTopology::Sentinel {
            sentinels: vec!["redis://127.0.0.1:1".into()],
            master_name: "m".into(),
        };
        assert!(
            !Conn::new(&settings("redis://127.0.0.1:1/", sentinel))
                .unwrap()
                .is_cluster()
        );
        let e = Conn::new(&settings("nonsense", RedisTopology::Single))
            .err()
            .unwrap();
        assert!(e.contains("redis.url"), "{e}");
        let sentinel = RedisTopology::Sentinel {
            sentinels: vec!["nonsense".into()],
            master_name: "m".into(),
        };
        let e = Conn::new(&settings("redis://127.0.0.1:1/", sentinel))
            .err()
            .unwrap();
        assert!(e.contains("redis.sentinels"), "{e}");
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_not_a_hang_in_every_mode() {
        for topology in [
            RedisTopology::Single,
            RedisTopology::Cluster {
                nodes: vec!["redis://127.0.0.1:1".into()],
            },
            RedisTopology::Sentinel {
                sentinels: vec!["redis://127.0.0.1:1".into()],
                master_name: "m".into(),
            },
        ] {
            let mut conn = Conn::new(&settings("redis://127.0.0.1:1/", topology.clone())).unwrap();
            let reply: RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
            assert!(reply.is_err(), "{topology:?}");
            // Asked again at once (a failed attempt is not repeated for a moment): still an error.
            let again: RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
            assert!(again.is_err(), "{topology:?}");
        }
    }
}
