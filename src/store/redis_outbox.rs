//! The Redis implementation of [`Outbox`]: the notification queue shared by every instance.
//!
//! Keys (with the configured prefix `P`), all with the hash tag `{/notify}` because the worker's
//! scripts use them together (one cluster slot):
//! - `P{/notify}:dirty`: zset, subject -> time of the oldest unreported refusal (ms)
//! - `P{/notify}:sent`: hash, rate-limit key (a manager's subject) -> last send (ms)
//! - `P{/notify}:messages`: hash, message id -> message (JSON)
//! - `P{/notify}:queue`: zset, message id -> due time (ms); a claim moves it to the lease's end
//! - `P{/notify}:dead`: list of messages given up on (JSON), oldest first
//! - `P{/notify}:once:<name>`: string with TTL, once-a-day work taken with `SET NX`

use super::redis::{RedisStore, unavailable};
use super::{Outbox, OutboxBatch, StoreError};
use crate::domain::SubjectKey;
use crate::domain::notify::Message;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use std::time::Duration;

static COMMIT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/outbox_commit.lua")));
static CLAIM: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/outbox_claim.lua")));
/// Deletes a once-only lease only when it is still held with the caller's token.
static RELEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    )
});

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

fn parse(text: &str) -> Result<Message, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("outbox message: {e}")))
}

fn to_json(m: &Message) -> Result<String, StoreError> {
    serde_json::to_string(m).map_err(|e| StoreError::Corrupt(format!("outbox message: {e}")))
}

impl RedisStore {
    pub(super) fn notify_key(&self, name: &str) -> String {
        format!("{}{{/notify}}:{name}", self.prefix)
    }

    fn once_key(&self, name: &str) -> String {
        self.notify_key(&format!("once:{name}"))
    }

    /// Moves a claimed message that cannot be read to the dead list as it is stored, so that
    /// it no longer blocks the queue.
    async fn dead_raw(&self, id: &str, raw: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zrem(self.notify_key("queue"), id)
            .hdel(self.notify_key("messages"), id)
            .rpush(self.notify_key("dead"), raw)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl Outbox for RedisStore {
    async fn mark_dirty(&self, subject: &SubjectKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("ZADD")
            .arg(self.notify_key("dirty"))
            .arg("NX")
            .arg(ms(at))
            .arg(subject.as_str())
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn dirty(&self) -> Result<Vec<(SubjectKey, DateTime<Utc>)>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, f64)> = conn
            .zrange_withscores(self.notify_key("dirty"), 0, -1)
            .await
            .map_err(unavailable)?;
        Ok(all
            .into_iter()
            .filter_map(|(s, score)| {
                SubjectKey::parse(&s)
                    .ok()
                    .map(|s| (s, from_ms(score as i64)))
            })
            .collect())
    }

    async fn last_sent(&self, keys: &[String]) -> Result<Vec<Option<DateTime<Utc>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let all: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(self.notify_key("sent"))
            .arg(keys)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(all.into_iter().map(|v| v.map(from_ms)).collect())
    }

    async fn commit(&self, batch: &OutboxBatch) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = COMMIT.prepare_invoke();
        invocation
            .key(self.notify_key("dirty"))
            .key(self.notify_key("sent"))
            .key(self.notify_key("messages"))
            .key(self.notify_key("queue"))
            .arg(ms(batch.now))
            .arg(batch.marks.len());
        match &batch.rate {
            Some((key, latest)) => invocation.arg(key).arg(ms(*latest)),
            None => invocation.arg("").arg(0),
        };
        match &batch.guard {
            Some(g) => {
                invocation
                    .key(self.once_key(&g.name))
                    .arg(&g.token)
                    .arg(g.keep.as_millis().max(1) as u64);
            }
            None => {
                invocation.arg("").arg(0);
            }
        }
        for (subject, at) in &batch.marks {
            invocation.arg(subject.as_str()).arg(ms(*at));
        }
        for m in &batch.messages {
            invocation.arg(&m.id).arg(to_json(m)?);
        }
        let written: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(written == 1)
    }

    async fn once(&self, name: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.once_key(name))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn release_once(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        RELEASE
            .key(self.once_key(name))
            .arg(token)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let mut conn = self.conn.clone();
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
        let claimed: Vec<(String, String)> = CLAIM
            .key(self.notify_key("queue"))
            .key(self.notify_key("messages"))
            .arg(ms(now))
            .arg(ms(now + lease))
            .arg(max)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(claimed.len());
        for (id, json) in claimed {
            match parse(&json) {
                Ok(m) => out.push(m),
                Err(e) => {
                    // One bad message must not block the others: it goes to the dead list as
                    // it is (if that fails, its lease runs out and it is tried again).
                    tracing::error!(notify.id = %id, error.message = %e, "notification message cannot be read; moved to the dead list");
                    if let Err(e) = self.dead_raw(&id, &json).await {
                        tracing::warn!(notify.id = %id, error.message = %e, "unreadable notification message could not be moved to the dead list");
                    }
                }
            }
        }
        Ok(out)
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zrem(self.notify_key("queue"), id)
            .hdel(self.notify_key("messages"), id)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn retry(&self, message: &Message, next_at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset(self.notify_key("messages"), &message.id, to_json(message)?)
            .zadd(self.notify_key("queue"), &message.id, ms(next_at))
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn dead(&self, message: &Message) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zrem(self.notify_key("queue"), &message.id)
            .hdel(self.notify_key("messages"), &message.id)
            .rpush(self.notify_key("dead"), to_json(message)?)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn dead_letters(&self) -> Result<Vec<Message>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<String> = conn
            .lrange(self.notify_key("dead"), 0, -1)
            .await
            .map_err(unavailable)?;
        // Messages that could not be read when claimed are kept here as they were stored;
        // they are left out (and can be read with LRANGE).
        Ok(all
            .iter()
            .filter_map(|j| match parse(j) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error.message = %e, "a dead notification message cannot be read; left out");
                    None
                }
            })
            .collect())
    }

    async fn queued(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        conn.zcard(self.notify_key("queue"))
            .await
            .map_err(unavailable)
    }
}
