//! The fact store in Redis (Memorystore, ElastiCache, any Redis 6.2+ or Valkey), shared by every
//! instance (`FACT_STORE=redis`).
//!
//! Keys are `<prefix>fact:<hex>`, `<prefix>row:<hex>` and `<prefix>dim:<hex>`, each with the
//! TTL (`FACT_TTL_SECS`, 8 days by default: longer than Pub/Sub's 7-day retention, so a fact is
//! remembered for as long as its record can be redelivered).
//!
//! * `reserve` = `SET key 1 NX EX ttl` (one round trip per fact);
//! * `release` = `DEL key`;
//! * `update_row` = read, apply the update in Rust, then a compare-and-set script (below);
//! * dimensions = `SET key value EX ttl` / `GET key`.
//!
//! One multiplexed connection ([`ConnectionManager`]) serves every request of the instance and
//! reconnects by itself; each request is bounded by the store timeout, so an unreachable server
//! is a [`StoreError`] within that time, never a hang.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{FactKey, FactStore, Key, Mark, RowKey, RowState, RowUpdate, StoreError};

/// Why `update_row` is a compare-and-set script and not WATCH/MULTI/EXEC: WATCH belongs to a
/// connection, and the connection manager multiplexes ONE connection among every concurrent
/// request of the instance. Two `update_row`s in flight on it would share (and reset) each
/// other's WATCH and interleave their MULTI blocks, so a transaction would need a connection of
/// its own per attempt (a pool). A Lua script runs atomically on the server instead: it writes
/// the new state only if the key still holds exactly the value the update was computed from
/// (`''` = absent; a stored state is never empty), else the update is recomputed from the fresh
/// value. The update itself cannot run in Lua (it is the profile's Rust logic), hence the
/// read-compute-swap loop; it costs a GET and one EVALSHA per attempt.
const COMPARE_AND_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
";

/// Attempts of one `update_row` under contention before it gives up (transient).
const MAX_ATTEMPTS: u32 = 50;

pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
    ttl_secs: u64,
    timeout: Duration,
    cas: redis::Script,
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if at > scheme.len() => {
            let host = &url[at + 1..];
            let user = rest.split('@').next().unwrap_or("").split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        // not a well-formed URL: nothing before the '@' is shown
        _ => crate::vars::mask_userinfo(url),
    }
}

impl Redis {
    /// Connects to `url` (`redis://[user:password@]host:port/db`) and checks the server with a
    /// PING, so that a wrong URL stops the process at startup.
    ///
    /// Errors: the URL is not a Redis URL, or the server cannot be reached within `timeout`.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration, timeout: Duration) -> Result<Redis, String> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|e| format!("{shown}: {e}"))?;
        // Reconnection: a couple of quick attempts in the background; a request made while the
        // server is away fails within `timeout` (and its record is retried by the transport).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(timeout * 2, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| format!("{shown}: no connection within {timeout:?}"))?
            .map_err(|e| format!("{shown}: {e}"))?;
        let store = Redis {
            conn,
            prefix: prefix.to_string(),
            ttl_secs: ttl.as_secs().max(1),
            timeout,
            cas: redis::Script::new(COMPARE_AND_SET),
        };
        store.ping().await.map_err(|e| format!("{shown}: {}", e.message))?;
        Ok(store)
    }

    /// One PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" { Ok(()) } else { Err(error(format!("PING answered {pong:?}"))) }
    }

    fn key(&self, kind: &str, key: Key) -> String {
        format!("{}{kind}:{}", self.prefix, key.hex())
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Ok(r) => r.map_err(|e| error(e.to_string())),
            Err(_) => Err(error(format!("no answer within {:?}", self.timeout))),
        }
    }
}

fn error(message: String) -> StoreError {
    StoreError { store: "redis", message }
}

#[async_trait::async_trait]
impl FactStore for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn reserve(&self, fact: FactKey) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key("fact", fact)).arg(1).arg("NX").arg("EX").arg(self.ttl_secs);
        // "OK" when set, nil when the key exists
        let set: Option<String> = self.query(&cmd).await?;
        Ok(set.is_some())
    }

    async fn release(&self, fact: FactKey) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key("fact", fact));
        let _: i64 = self.query(&cmd).await?;
        Ok(())
    }

    async fn update_row(&self, row: RowKey, update: RowUpdate<'_>) -> Result<Vec<Mark>, StoreError> {
        let key = self.key("row", row);
        for attempt in 0..MAX_ATTEMPTS {
            let mut get = redis::cmd("GET");
            get.arg(&key);
            let stored: Option<String> = self.query(&get).await?;
            let before: RowState = match &stored {
                Some(text) => {
                    serde_json::from_str(text).map_err(|e| error(format!("row state {key} is not a row state: {e}")))?
                }
                None => RowState::default(),
            };
            let mut after = before.clone();
            let marks = update(&mut after);
            if after == before {
                // nothing to write: the update is as if applied at the read
                return Ok(marks);
            }
            let text = serde_json::to_string(&after).map_err(|e| error(e.to_string()))?;
            let mut conn = self.conn.clone();
            let mut invocation = self.cas.key(&key);
            invocation.arg(stored.as_deref().unwrap_or("")).arg(&text).arg(self.ttl_secs);
            let swapped: i64 = match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
                Ok(r) => r.map_err(|e| error(e.to_string()))?,
                Err(_) => return Err(error(format!("no answer within {:?}", self.timeout))),
            };
            if swapped == 1 {
                return Ok(marks);
            }
            // another request changed the row in between: recompute from its state
            tracing::debug!(row = %row.hex(), attempt, "fact store: row changed in between, again");
            tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 2)).await;
        }
        Err(error(format!("row {key}: still contended after {MAX_ATTEMPTS} attempts")))
    }

    async fn put_dimension(&self, key: Key, value: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key("dim", key)).arg(value).arg("EX").arg(self.ttl_secs);
        let _: String = self.query(&cmd).await?;
        Ok(())
    }

    async fn get_dimension(&self, key: Key) -> Result<Option<String>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key("dim", key));
        self.query(&cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("redis://:s3cret@10.0.0.3:6379/0"), "redis://:***@10.0.0.3:6379/0");
        assert_eq!(redact("redis://app:s3cret@host/1"), "redis://app:***@host/1");
        assert_eq!(redact("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        // mistyped (then the startup error shows it): still no password
        for typo in ["rediss//user:S3cretPW@bad", "user:S3cretPW@host:6379", "redis:/user:S3cretPW@host:6379/0"] {
            assert!(!redact(typo).contains("S3cretPW"), "{typo}: {}", redact(typo));
        }
    }
}
