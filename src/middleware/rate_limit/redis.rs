//! The Redis bucket store: one Lua script does the whole check atomically, in one round trip
//! (EVALSHA; redis-rs falls back to loading the script on NOSCRIPT), on Redis's own clock
//! (`TIME`), so that proxies with skewed clocks agree. Keys are `tracegate:rl:<name>:<key>`, a
//! hash of the tokens and the time they were counted, expiring once the bucket would be full.
//! A key longer than [`MAX_PLAIN_KEY`] (a client's header value can be kilobytes) is sent as
//! `#` and its SHA-256, so what a client sends cannot size Redis's keys.
//!
//! Each limiter owns a small runtime on a thread of its own, where its one multiplexed
//! connection (redis-rs `ConnectionManager`, which also reconnects) is driven: Pingora polls
//! requests on runtimes of its own, and a connection's driver task must live on a runtime that
//! lives as long as the limiter. A check is spawned there and awaited from the request's task.
//!
//! Failure: a check that has no answer within [`CHECK_TIMEOUT`] is a store error; after a
//! connection error or timeout, checks fail at once for [`RETRY_AFTER_ERROR`] (no pile-up of
//! requests waiting on a dead server), then try again. One warning per [`WARN_EVERY`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, Script};

use super::{OnStoreError, Rate, RateDecision, RedisAddr, RedisSettings};

/// How long a check waits for Redis (connecting included) before it counts as a store error.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(200);

/// After a connection error or a timeout, checks do not try Redis for this long.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_millis(500);

/// At most one warning about an unreachable Redis per limiter in this time.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// KEYS[1]: the bucket. ARGV: burst, average, period in µs. Returns {allowed (0/1), tokens
/// left (a decimal string: Lua numbers are truncated to integers on the way out)}.
///
/// A refused check writes nothing: the stored tokens and time still give the same refill.
const BUCKET_LUA: &str = r"
local burst = tonumber(ARGV[1])
local average = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * average / period)
  at = now
end
if tokens < 1 - 1e-9 then
  return {0, string.format('%.17g', tokens)}
end
tokens = math.max(0, tokens - 1)
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'at', string.format('%d', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * period / average / 1000) + 1)
return {1, string.format('%.17g', tokens)}
";

static BUCKET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BUCKET_LUA));

/// Why a check got no answer.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// Redis answered with an error, or the connection failed.
    Redis(redis::RedisError),
    /// No answer within `CHECK_TIMEOUT`.
    Timeout,
    /// A recent failure: Redis is not tried until `RETRY_AFTER_ERROR` has passed.
    Backoff,
    /// The answer was not the script's.
    BadReply(String),
    /// The limiter's runtime is gone (the limiter is being dropped).
    Shutdown,
    /// No runtime thread or client could be made.
    NoClient(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Redis(e) => write!(f, "{e}"),
            StoreError::Timeout => write!(f, "no answer within {CHECK_TIMEOUT:?}"),
            StoreError::Backoff => write!(f, "unreachable (retrying shortly)"),
            StoreError::BadReply(s) => write!(f, "unexpected reply: {s}"),
            StoreError::Shutdown => write!(f, "limiter shutting down"),
            StoreError::NoClient(e) => write!(f, "no client: {e}"),
        }
    }
}

/// The connection and its runtime, shared by the limiters of successive config generations
/// that name the same server.
struct Connection {
    settings: RedisSettings,
    /// `Err`: no runtime thread or client could be made (every check is a store error).
    live: Result<Live, String>,
    epoch: Instant,
    /// Until when (ms since `epoch`) checks fail without trying Redis.
    backoff_until: AtomicU64,
}

struct Live {
    conn: ConnectionManager,
    runtime: tokio::runtime::Handle,
    /// Dropping it ends the runtime thread (and with it the connection).
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) struct RedisStore {
    connection: Arc<Connection>,
    name: String,
    prefix: String,
    /// When the last warning was logged (ms since the connection's epoch, + 1; 0: never).
    last_warn: AtomicU64,
}

impl RedisStore {
    /// A store for the limiter `name`; shares `previous`'s connection when it names the same
    /// server.
    pub(crate) fn new(
        name: &str,
        settings: &RedisSettings,
        previous: Option<&RedisStore>,
    ) -> RedisStore {
        let connection = match previous {
            Some(p) if p.connection.settings == *settings => Arc::clone(&p.connection),
            _ => Arc::new(Connection::start(name, settings)),
        };
        RedisStore {
            connection,
            name: name.to_string(),
            prefix: format!("tracegate:rl:{name}:"),
            last_warn: AtomicU64::new(0),
        }
    }

    pub(crate) async fn check(&self, key: &str, rate: &Rate) -> Result<RateDecision, StoreError> {
        let c = &self.connection;
        let live = c
            .live
            .as_ref()
            .map_err(|e| StoreError::NoClient(e.clone()))?;
        if c.millis() < c.backoff_until.load(Ordering::Relaxed) {
            return Err(StoreError::Backoff);
        }
        let redis_key = bucket_key(&self.prefix, key);
        let (burst, average, period_us) = rate.script_args();
        let mut conn = live.conn.clone();
        let task = live.runtime.spawn(async move {
            let mut invocation = BUCKET_SCRIPT.key(redis_key);
            invocation.arg(burst).arg(average).arg(period_us);
            tokio::time::timeout(
                CHECK_TIMEOUT,
                invocation.invoke_async::<(i64, String)>(&mut conn),
            )
            .await
        });
        let result = match task.await {
            Err(_) => Err(StoreError::Shutdown),
            Ok(Err(_)) => Err(StoreError::Timeout),
            Ok(Ok(Err(e))) => Err(StoreError::Redis(e)),
            Ok(Ok(Ok((allowed, tokens)))) => match tokens.parse::<f64>() {
                Ok(tokens) if tokens.is_finite() => Ok(rate.decision(allowed == 1, tokens)),
                _ => Err(StoreError::BadReply(tokens)),
            },
        };
        if let Err(StoreError::Timeout | StoreError::Redis(_)) = &result {
            let backoff = u64::try_from(RETRY_AFTER_ERROR.as_millis()).unwrap_or(u64::MAX);
            c.backoff_until
                .store(c.millis().saturating_add(backoff), Ordering::Relaxed);
        }
        result
    }

    /// Logs the failure, at most once per `WARN_EVERY` for this limiter.
    pub(crate) fn warn(&self, error: &StoreError, on_error: OnStoreError) {
        let now = self.connection.millis() + 1;
        let last = self.last_warn.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every {
            return;
        }
        if self
            .last_warn
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let outcome = match on_error {
            OnStoreError::Allow => "let through (on_store_error: allow)",
            OnStoreError::Deny => "refused (on_store_error: deny)",
        };
        log::warn!(
            "rate_limit {}: Redis at {} failed: {error}; requests are {outcome} until it answers",
            self.name,
            self.connection.settings
        );
    }
}

impl Connection {
    fn start(name: &str, settings: &RedisSettings) -> Connection {
        let live = Live::start(name, settings);
        if let Err(e) = &live {
            log::warn!("rate_limit {name}: no Redis client for {settings}: {e}");
        }
        Connection {
            settings: settings.clone(),
            live,
            epoch: Instant::now(),
            backoff_until: AtomicU64::new(0),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Live {
    fn start(name: &str, settings: &RedisSettings) -> Result<Live, String> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let thread_name: String = format!("rl-redis-{name}").chars().take(15).collect();
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Until the limiter lets go of `stop`; dropping the runtime then cancels the
                // connection's tasks.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| format!("runtime thread: {e}"))?;
        let runtime = handle_rx
            .recv()
            .map_err(|e| format!("runtime thread: {e}"))??;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CHECK_TIMEOUT))
            .set_response_timeout(Some(CHECK_TIMEOUT))
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(RETRY_AFTER_ERROR);
        let conn = {
            // The manager spawns its tasks on the runtime it finds here: the limiter's own.
            let _entered = runtime.enter();
            connection_info(settings)
                .and_then(redis::Client::open)
                .and_then(|client| ConnectionManager::new_lazy_with_config(client, config))
                .map_err(|e| e.to_string())?
        };
        Ok(Live {
            conn,
            runtime,
            _stop: stop,
        })
    }
}

fn connection_info(settings: &RedisSettings) -> redis::RedisResult<ConnectionInfo> {
    let addr = match &settings.addr {
        RedisAddr::Tcp { host, port } => ConnectionAddr::Tcp(host.clone(), *port),
        RedisAddr::Unix(path) => ConnectionAddr::Unix(path.clone()),
    };
    let mut redis = RedisConnectionInfo::default().set_db(settings.db);
    if let Some(user) = &settings.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &settings.password {
        redis = redis.set_password(password);
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

/// Longest request key sent to Redis as it is.
pub const MAX_PLAIN_KEY: usize = 128;

/// The Redis key of a bucket: the limiter's prefix and the request key, or `#` and the key's
/// SHA-256 in hex when it is longer than [`MAX_PLAIN_KEY`].
fn bucket_key(prefix: &str, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + key.len().min(MAX_PLAIN_KEY + 1));
    out.push_str(prefix);
    if key.len() <= MAX_PLAIN_KEY {
        out.push_str(key);
    } else {
        use std::fmt::Write as _;
        out.push('#');
        for b in ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref() {
            let _ = write!(out, "{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed_to_a_bounded_length() {
        // (key, expected, why)
        let long = "k".repeat(5000);
        let cases: Vec<(&str, String, &str)> = vec![
            ("10.0.0.1", "p:10.0.0.1".into(), "a short key as it is"),
            (
                &long[..MAX_PLAIN_KEY],
                format!("p:{}", &long[..MAX_PLAIN_KEY]),
                "at the limit: as it is",
            ),
        ];
        for (key, want, why) in cases {
            assert_eq!(bucket_key("p:", key), want, "{why}");
        }
        let h = bucket_key("p:", &long);
        assert_eq!(h.len(), 2 + 1 + 64, "a hashed key is bounded: {h}");
        assert!(h.starts_with("p:#"));
        assert_ne!(
            h,
            bucket_key("p:", &"k".repeat(5001)),
            "different keys, different hashes"
        );
        assert_eq!(h, bucket_key("p:", &long), "the same key, the same bucket");
    }
}
