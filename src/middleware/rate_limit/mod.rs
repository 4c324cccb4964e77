//! The `rate_limit` middleware's core: a token bucket per key (client IP, a header's value or
//! the route), kept in this process ([`local`]) or cluster-wide in Redis ([`redis`]), the
//! decision for one request and its response header fields.
//!
//! Owns the checked settings ([`RateLimitSettings`], built by the config module; nothing here
//! imports config), the `redis://` URL parser, [`RateLimiter`] (one per middleware and config
//! generation, shared by all its requests), [`RateDecision`] and its header fields
//! (`RateLimit-Policy`, `RateLimit`, `Retry-After`), and the request key helpers.
//!
//! The bucket is Traefik's `rateLimit` model: it holds at most `burst` tokens, gains
//! `average / period` tokens per second continuously (fractions count), and each request takes
//! one token; a request that finds less than one token is refused. A key never seen, or idle
//! long enough to refill, has a full bucket.

mod local;
mod redis;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use local::LocalStore;
use redis::RedisStore;

pub use redis::CHECK_TIMEOUT;

/// The most keys one local limiter keeps by default; past it the idlest buckets are dropped.
pub const DEFAULT_MAX_LOCAL_KEYS: usize = 1_000_000;

/// `rate_limit:` settings, checked (the config module builds these; no domain imports config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Tokens added per `period` (> 0).
    pub average: u64,
    /// > 0.
    pub period: Duration,
    /// The bucket's size (>= 1): the first `burst` requests of a key pass at once.
    pub burst: u64,
    /// What a bucket is kept for.
    pub key: KeySource,
    /// Where the buckets live.
    pub store: Store,
    /// What a request gets when the store cannot answer (default: `Allow`, fail open).
    pub on_store_error: OnStoreError,
}

/// What one bucket is kept for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The client's address (as the proxy resolved it, after the trusted-forwarder check).
    ClientIp,
    /// The value of this request header (its first value).
    Header(HeaderName),
    /// One bucket for the whole route.
    Route,
}

/// Where the buckets live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// In this process: each proxy instance has its own budget.
    Local,
    /// In Redis: every instance that names the same server and middleware shares one budget.
    Redis(RedisSettings),
}

/// What a request gets when Redis does not answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStoreError {
    /// Let it pass (fail open): an outage of Redis is not an outage of the routes.
    #[default]
    Allow,
    /// Refuse it (fail closed).
    Deny,
}

/// Where and how to reach a Redis server: what `redis::ConnectionInfo` is built from.
///
/// `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub addr: RedisAddr,
    /// The logical database (`SELECT`), 0 by default.
    pub db: i64,
    /// The ACL user (Redis 6+); `None`: `default`.
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A Redis server's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisAddr {
    /// A host name or IP address (IPv6 without brackets) and a port.
    Tcp { host: String, port: u16 },
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl fmt::Display for RedisSettings {
    /// The settings as a URL, with the password left out (for log lines).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addr {
            RedisAddr::Tcp { host, port } => {
                f.write_str("redis://")?;
                if let Some(user) = &self.username {
                    write!(f, "{user}@")?;
                }
                if host.contains(':') {
                    write!(f, "[{host}]:{port}")?;
                } else {
                    write!(f, "{host}:{port}")?;
                }
                write!(f, "/{}", self.db)
            }
            RedisAddr::Unix(path) => {
                write!(f, "redis+unix://{}", path.display())?;
                write!(f, "?db={}", self.db)?;
                if let Some(user) = &self.username {
                    write!(f, "&user={user}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("addr", &self.addr)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// Parses `redis://[user:password@]host[:port][/db]` (port 6379 by default) or
/// `redis+unix:///path/to/socket[?db=N][&user=U][&pass=P]`. User and password are
/// percent-decoded. `Err(reason)` names what is wrong; `rediss://` (TLS) is refused.
pub fn parse_redis_url(s: &str) -> Result<RedisSettings, String> {
    if s.is_empty() {
        return Err("the Redis URL is empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the Redis URL has a {c:?} in it"));
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "{s:?} is not a URL: expected redis://host[:port][/db] or redis+unix:///path"
        ));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" => parse_tcp_url(rest),
        "redis+unix" | "unix" => parse_unix_url(rest),
        "rediss" => Err(
            "rediss:// (Redis over TLS) is not supported: use redis:// on a \
                         trusted network or a Unix socket"
                .into(),
        ),
        other => Err(format!(
            "unknown scheme {other:?}: expected redis:// or redis+unix://"
        )),
    }
}

fn parse_tcp_url(rest: &str) -> Result<RedisSettings, String> {
    if rest.contains(['?', '#']) {
        return Err("query parameters and fragments are not supported in redis:// URLs".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (username, password, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, pass) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            let user = if user.is_empty() {
                None
            } else {
                Some(decode(user, "user")?)
            };
            let pass = match pass {
                Some(p) if !p.is_empty() => Some(decode(p, "password")?),
                _ => None,
            };
            (user, pass, hostport)
        }
        None => (None, None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((ip, after)) = v6.split_once(']') else {
            return Err("an IPv6 address lacks its closing ']'".into());
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{ip:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {p:?} after the IPv6 address"))?,
            ),
        };
        (ip.to_string(), port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("the Redis URL names no host".into());
    }
    if !host.contains(':')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    let port = match port {
        None => 6379,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{p:?} is not a port (1-65535)")),
            Ok(n) => n,
        },
    };
    let db = match path {
        "" => 0,
        p => parse_db(p)?,
    };
    Ok(RedisSettings {
        addr: RedisAddr::Tcp { host, port },
        db,
        username,
        password,
    })
}

fn parse_unix_url(rest: &str) -> Result<RedisSettings, String> {
    if rest.contains('#') {
        return Err("fragments are not supported in redis+unix:// URLs".into());
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if !path.starts_with('/') || path.len() < 2 {
        return Err(format!(
            "{path:?} is not an absolute socket path: expected redis+unix:///path/to/socket"
        ));
    }
    let mut settings = RedisSettings {
        addr: RedisAddr::Unix(PathBuf::from(decode(path, "socket path")?)),
        db: 0,
        username: None,
        password: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "db" => settings.db = parse_db(value)?,
            "user" => settings.username = Some(decode(value, "user")?),
            "pass" | "password" => settings.password = Some(decode(value, "password")?),
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (known: db, user, pass)"
                ))
            }
        }
    }
    Ok(settings)
}

fn parse_db(s: &str) -> Result<i64, String> {
    match s.parse::<u32>() {
        Ok(n) if n <= i32::MAX as u32 && !s.starts_with('+') => Ok(i64::from(n)),
        _ => Err(format!("{s:?} is not a database number (0, 1, …)")),
    }
}

fn decode(s: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("the {what} is not UTF-8 once percent-decoded"))
}

/// Counters of one limiter (monotonic, relaxed atomics).
#[derive(Debug, Default)]
pub struct RateLimitStats {
    allowed: AtomicU64,
    limited: AtomicU64,
    store_errors: AtomicU64,
}

impl RateLimitStats {
    /// Requests let through (including those let through because the store failed).
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Requests refused (including those refused because the store failed, under `Deny`).
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Checks the store could not answer (Redis down, slow or refusing the script).
    pub fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The bucket's size (`burst`), for `RateLimit-Policy`.
    pub limit: u64,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// When refused: until one token is there.
    pub retry_after: Option<Duration>,
    /// The store failed; `allowed` then follows `on_store_error` and the other fields say
    /// nothing about the bucket.
    pub store_error: bool,
}

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10 §3).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10 §4).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The policy name in the header fields: one policy per middleware, so a fixed name that does
/// not reveal the middleware's.
const POLICY_NAME: &str = "default";

impl RateDecision {
    /// The response header fields for this decision, per draft-ietf-httpapi-ratelimit-headers-10
    /// (the `RateLimit-Policy` and `RateLimit` fields, Structured Field Lists):
    ///
    /// - `RateLimit-Policy: "default";q=<burst>;w=<policy_window in s, rounded up, >= 1>`
    /// - `RateLimit: "default";r=<remaining>;t=<s>`, where `t` is the time until the bucket is
    ///   full (`reset`) when the request passed, and the time until the next token
    ///   (`retry_after`) when it was refused, so that `Retry-After` never names a time before
    ///   `t` (the draft's §5: it SHOULD NOT);
    /// - `Retry-After: <s>` (RFC 9110 §10.2.3, delay-seconds, at least 1) when refused.
    ///
    /// Seconds are rounded up. After a store error only `Retry-After` is sent (when refused):
    /// the bucket's state is unknown.
    pub fn headers(&self, policy_window: Duration) -> Vec<(HeaderName, HeaderValue)> {
        let retry_after = self.retry_after.map(|d| ceil_secs(d).max(1));
        let mut out = Vec::with_capacity(3);
        if !self.store_error {
            let window = ceil_secs(policy_window).max(1);
            let t = match retry_after {
                Some(r) if !self.allowed => r,
                _ => ceil_secs(self.reset),
            };
            out.push((
                RATELIMIT_POLICY,
                header_value(&[("q", self.limit), ("w", window)]),
            ));
            out.push((RATELIMIT, header_value(&[("r", self.remaining), ("t", t)])));
        }
        if let (false, Some(r)) = (self.allowed, retry_after) {
            out.push((http::header::RETRY_AFTER, HeaderValue::from(r)));
        }
        out
    }
}

/// `"default";k1=v1;k2=v2`: the policy name and its parameters, written without the formatting
/// machinery (this runs for every request a limiter sees).
fn header_value(params: &[(&str, u64)]) -> HeaderValue {
    let mut s = String::with_capacity(40);
    s.push('"');
    s.push_str(POLICY_NAME);
    s.push('"');
    let mut digits = itoa::Buffer::new();
    for (k, v) in params {
        s.push(';');
        s.push_str(k);
        s.push('=');
        s.push_str(digits.format(*v));
    }
    // Digits, letters, quotes, '=' and ';' only: always a valid field value.
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Tokens below 1 by less than this still count as one: float error of the refill (a token
/// that is due exactly now must be there).
const EPSILON: f64 = 1e-9;

/// The bucket arithmetic of one settings: the same for both stores (the Redis script does the
/// same sums in Lua).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rate {
    burst: f64,
    average: f64,
    period_nanos: f64,
    limit: u64,
    average_int: u64,
    period_micros: u64,
}

impl Rate {
    pub(crate) fn new(settings: &RateLimitSettings) -> Rate {
        Rate {
            burst: settings.burst.max(1) as f64,
            average: settings.average.max(1) as f64,
            period_nanos: (settings.period.as_nanos() as f64).max(1.0),
            limit: settings.burst.max(1),
            average_int: settings.average.max(1),
            period_micros: u64::try_from(settings.period.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        }
    }

    /// The Redis script's arguments: burst, average, period in µs.
    pub(crate) fn script_args(&self) -> (u64, u64, u64) {
        (self.limit, self.average_int, self.period_micros)
    }

    /// The tokens of a bucket that held `tokens` `elapsed_nanos` ago.
    pub(crate) fn refill(&self, tokens: f64, elapsed_nanos: u64) -> f64 {
        let gained = elapsed_nanos as f64 * self.average / self.period_nanos;
        (tokens + gained).min(self.burst)
    }

    /// A full bucket.
    pub(crate) fn full(&self) -> f64 {
        self.burst
    }

    /// Whether a bucket holding `tokens` is full.
    pub(crate) fn is_full(&self, tokens: f64) -> bool {
        tokens >= self.burst - EPSILON
    }

    /// Takes one token from a bucket holding `tokens`: (allowed, tokens after).
    pub(crate) fn take(&self, tokens: f64) -> (bool, f64) {
        if tokens >= 1.0 - EPSILON {
            (true, (tokens - 1.0).max(0.0))
        } else {
            (false, tokens)
        }
    }

    /// The time `tokens` more tokens take to arrive.
    fn time_for(&self, tokens: f64) -> Duration {
        // To the nearest nanosecond: float error must not turn 20 s into 20.000000001 s (21 s
        // once rounded up to whole seconds).
        let nanos = (tokens.max(0.0) * self.period_nanos / self.average).round();
        Duration::from_nanos(if nanos >= u64::MAX as f64 {
            u64::MAX
        } else {
            nanos as u64
        })
    }

    /// The decision for a check that left `tokens` in the bucket.
    pub(crate) fn decision(&self, allowed: bool, tokens: f64) -> RateDecision {
        let remaining = ((tokens + EPSILON).floor().max(0.0) as u64).min(self.limit);
        RateDecision {
            allowed,
            limit: self.limit,
            remaining,
            reset: self.time_for(self.burst - tokens),
            retry_after: (!allowed).then(|| self.time_for(1.0 - tokens)),
            store_error: false,
        }
    }
}

enum Backend {
    Local(Arc<LocalStore>),
    Redis(RedisStore),
}

/// The token buckets of one `rate_limit` middleware in one config generation; `Send + Sync`,
/// shared by all its requests.
pub struct RateLimiter {
    name: String,
    settings: RateLimitSettings,
    rate: Rate,
    backend: Backend,
    stats: RateLimitStats,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `name` is the middleware's name (in the Redis key prefix and log lines).
    ///
    /// `previous`: the limiter of the same name in the config being replaced (reload). When
    /// both keep their buckets in this process, the new limiter shares the old one's buckets
    /// (keys that stay keep their tokens; a smaller `burst` caps them at the next check). When
    /// both use the same Redis server, the new one shares the old one's connection; the state
    /// is in Redis anyway. Otherwise the buckets start full.
    ///
    /// Does not block: a Redis connection is made at the first check.
    pub fn new(
        name: &str,
        settings: RateLimitSettings,
        previous: Option<&RateLimiter>,
    ) -> RateLimiter {
        Self::build(name, settings, previous, || {
            Arc::new(LocalStore::new(DEFAULT_MAX_LOCAL_KEYS, local::monotonic()))
        })
    }

    fn build(
        name: &str,
        settings: RateLimitSettings,
        previous: Option<&RateLimiter>,
        new_local: impl FnOnce() -> Arc<LocalStore>,
    ) -> RateLimiter {
        let backend = match (&settings.store, previous.map(|p| &p.backend)) {
            (Store::Local, Some(Backend::Local(store))) => Backend::Local(Arc::clone(store)),
            (Store::Local, _) => Backend::Local(new_local()),
            (Store::Redis(redis), Some(Backend::Redis(old))) => {
                Backend::Redis(RedisStore::new(name, redis, Some(old)))
            }
            (Store::Redis(redis), _) => Backend::Redis(RedisStore::new(name, redis, None)),
        };
        RateLimiter {
            name: name.to_string(),
            rate: Rate::new(&settings),
            settings,
            backend,
            stats: RateLimitStats::default(),
        }
    }

    /// A local limiter with its own key cap and clock (tests).
    #[cfg(test)]
    pub(crate) fn local_with(
        name: &str,
        settings: RateLimitSettings,
        previous: Option<&RateLimiter>,
        max_keys: usize,
        clock: Arc<dyn local::Clock>,
    ) -> RateLimiter {
        Self::build(name, settings, previous, || {
            Arc::new(LocalStore::new(max_keys, clock))
        })
    }

    /// The middleware's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    /// One request with this key. Never blocks the calling thread: the local store takes a
    /// short lock; Redis is one round trip on the limiter's own runtime thread, bounded by
    /// [`CHECK_TIMEOUT`].
    pub async fn check(&self, key: &str) -> RateDecision {
        let decision = match &self.backend {
            Backend::Local(store) => store.check(key, &self.rate),
            Backend::Redis(store) => match store.check(key, &self.rate).await {
                Ok(decision) => decision,
                Err(error) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    store.warn(&error, self.settings.on_store_error);
                    self.store_error_decision()
                }
            },
        };
        let counter = if decision.allowed {
            &self.stats.allowed
        } else {
            &self.stats.limited
        };
        counter.fetch_add(1, Ordering::Relaxed);
        decision
    }

    fn store_error_decision(&self) -> RateDecision {
        let allowed = self.settings.on_store_error == OnStoreError::Allow;
        RateDecision {
            allowed,
            limit: self.rate.limit,
            remaining: 0,
            reset: Duration::ZERO,
            retry_after: (!allowed).then_some(Duration::from_secs(1)),
            store_error: true,
        }
    }

    pub fn stats(&self) -> &RateLimitStats {
        &self.stats
    }

    /// How many keys the local store holds (0 for Redis).
    pub fn local_keys(&self) -> usize {
        match &self.backend {
            Backend::Local(store) => store.len(),
            Backend::Redis(_) => 0,
        }
    }
}

/// The key of one request, borrowed from it or formatted on the stack (an IP address):
/// computing it does not allocate.
#[derive(Clone, Debug)]
pub enum RequestKey<'a> {
    Str(&'a str),
    Ip(IpKey),
}

impl RequestKey<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            RequestKey::Str(s) => s,
            RequestKey::Ip(ip) => ip.as_str(),
        }
    }
}

/// The key that requests share when theirs is missing: no client address (a Unix socket
/// listener), no such header, or a header value that is not visible ASCII. They share one
/// bucket, so leaving the header out does not escape the limit.
pub const MISSING_KEY: &str = "";

impl KeySource {
    /// The bucket key of one request: the client's address (`client_ip`, as the proxy resolved
    /// it), the first value of the header, or `route` (the route's name).
    pub fn key<'a>(
        &self,
        client_ip: Option<IpAddr>,
        headers: &'a HeaderMap,
        route: &'a str,
    ) -> RequestKey<'a> {
        match self {
            KeySource::ClientIp => match client_ip {
                Some(ip) => RequestKey::Ip(IpKey::new(ip)),
                None => RequestKey::Str(MISSING_KEY),
            },
            KeySource::Header(name) => RequestKey::Str(
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(MISSING_KEY),
            ),
            KeySource::Route => RequestKey::Str(route),
        }
    }
}

/// An IP address as text, in a fixed buffer (the longest IPv6 text is 45 bytes).
#[derive(Clone)]
pub struct IpKey {
    buf: [u8; 48],
    len: u8,
}

impl IpKey {
    pub fn new(ip: IpAddr) -> IpKey {
        use std::fmt::Write;
        let mut key = IpKey {
            buf: [0; 48],
            len: 0,
        };
        // Canonical text; an IPv4-mapped IPv6 address counts as the IPv4 one.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let _ = match ip {
            IpAddr::V4(v4) => key.write_str(crate::net::ipv4_text(v4, &mut [0; 15])),
            v6 => write!(key, "{v6}"),
        };
        key
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Write for IpKey {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let end = start + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[start..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl fmt::Debug for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
