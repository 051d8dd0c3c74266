//! The one place Redis round trips are measured: a connection that wraps the connection manager
//! and records each command's or pipeline's duration and failures in [`crate::metrics`].

use super::redis_conn::Conn;
use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A [`Conn`] (one server, a cluster, or Sentinel's primary) whose every round trip is
/// measured, and counted for the store it belongs to. Cheap to clone, like the connection.
#[derive(Clone)]
pub struct MeasuredConnection(pub Conn, pub RoundTrips);

/// How many round trips (commands or pipelines sent and answered, or failed) one store has
/// made: shared by every clone of its connection. Read by tests and benchmarks that check how
/// many times a request goes to Redis.
#[derive(Clone, Debug, Default)]
pub struct RoundTrips(Arc<AtomicU64>);

impl RoundTrips {
    /// The number so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The command's name for the `command` label: its first argument, upper-cased, when it is a
/// plain word (commands come from code, so the set is small); `OTHER` otherwise.
fn command_name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name))
            if !name.is_empty()
                && name.len() <= 24
                && name.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_') =>
        {
            String::from_utf8_lossy(name).to_ascii_uppercase()
        }
        _ => "OTHER".to_owned(),
    }
}

/// A failed round trip's kind for the `kind` label.
fn failure(e: &RedisError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_io_error() || e.is_connection_dropped() || e.kind() == ErrorKind::Io {
        "io"
    } else {
        "other"
    }
}

/// A server error inside a reply. `NOSCRIPT` is not a failure: the script is loaded and run again.
fn server_error(value: &Value) -> Option<&'static str> {
    match value {
        Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript) => None,
        Value::ServerError(_) => Some("server"),
        _ => None,
    }
}

impl ConnectionLike for MeasuredConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let started = Instant::now();
            let reply = self.0.req_packed_command(cmd).await;
            self.1.add_one();
            let error = match &reply {
                Ok(value) => server_error(value),
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => None,
                Err(e) => Some(failure(e)),
            };
            crate::metrics::redis(&command_name(cmd), started.elapsed(), error);
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let started = Instant::now();
            let reply = self.0.req_packed_commands(pipeline, offset, count).await;
            self.1.add_one();
            let error = match &reply {
                Ok(values) => values.iter().find_map(server_error),
                Err(e) => Some(failure(e)),
            };
            crate::metrics::redis("pipeline", started.elapsed(), error);
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_named_by_their_first_word() {
        assert_eq!(command_name(redis::cmd("hvals").arg("k")), "HVALS");
        assert_eq!(command_name(redis::cmd("EVALSHA").arg("abc")), "EVALSHA");
        assert_eq!(command_name(&redis::cmd("GET k")), "OTHER");
    }
}
