//! The Redis implementation of [`Outbox`]: the notification queue shared by every instance.
//!
//! Keys (with the configured prefix `P`):
//! - `Pnotify:dirty`: zset, subject -> time of the oldest unreported refusal (ms)
//! - `Pnotify:sent`: hash, rate-limit key (a manager's subject) -> last send (ms)
//! - `Pnotify:messages`: hash, message id -> message (JSON)
//! - `Pnotify:queue`: zset, message id -> due time (ms); a claim moves it to the lease's end
//! - `Pnotify:dead`: list of messages given up on (JSON), oldest first
//! - `Pnotify:once:<name>`: string with TTL, once-a-day work taken with `SET NX`

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
    fn notify_key(&self, name: &str) -> String {
        format!("{}notify:{name}", self.prefix)
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

    async fn once(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.notify_key(&format!("once:{name}")))
            .arg(ms(Utc::now()))
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn release_once(&self, name: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.notify_key(&format!("once:{name}")))
            .await
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
        let claimed: Vec<String> = CLAIM
            .key(self.notify_key("queue"))
            .key(self.notify_key("messages"))
            .arg(ms(now))
            .arg(ms(now + lease))
            .arg(max)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        claimed.iter().map(|j| parse(j)).collect()
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
        all.iter().map(|j| parse(j)).collect()
    }

    async fn queued(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        conn.zcard(self.notify_key("queue"))
            .await
            .map_err(unavailable)
    }
}
