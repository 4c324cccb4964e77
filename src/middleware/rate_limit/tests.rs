//! Unit tests of the rate limiter: bucket math on a hand-moved clock, the local store's memory
//! bound, reload carry-over, request keys, `redis://` URLs and the header fields.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::local::{Clock, SWEEP_INTERVAL};
use super::*;

/// A clock that moves only when told.
#[derive(Default)]
struct ManualClock(AtomicU64);

impl ManualClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

fn settings(average: u64, period: Duration, burst: u64) -> RateLimitSettings {
    RateLimitSettings {
        average,
        period,
        burst,
        key: KeySource::ClientIp,
        store: Store::Local,
        on_store_error: OnStoreError::Allow,
    }
}

fn local(s: RateLimitSettings, max_keys: usize) -> (RateLimiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let limiter = RateLimiter::local_with("api", s, None, max_keys, clock.clone());
    (limiter, clock)
}

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

/// One check: advance the clock by `advance`, check, and what the decision must be.
struct Step {
    advance: Duration,
    allowed: bool,
    remaining: u64,
    reset: Duration,
    retry_after: Option<Duration>,
}

fn step(
    advance: Duration,
    allowed: bool,
    remaining: u64,
    reset: Duration,
    retry_after: Option<Duration>,
) -> Step {
    Step {
        advance,
        allowed,
        remaining,
        reset,
        retry_after,
    }
}

#[tokio::test]
async fn bucket_math() {
    let z = Duration::ZERO;
    let cases: Vec<(&str, RateLimitSettings, Vec<Step>)> = vec![
        (
            "the first `burst` requests pass at once, the next is refused until a token is due",
            settings(1, S, 3),
            vec![
                step(z, true, 2, S, None),
                step(z, true, 1, 2 * S, None),
                step(z, true, 0, 3 * S, None),
                step(z, false, 0, 3 * S, Some(S)),
                step(400 * MS, false, 0, 2600 * MS, Some(600 * MS)),
                step(600 * MS, true, 0, 3 * S, None),
            ],
        ),
        (
            "the refill is continuous and fractional: 10/s gives a token every 100 ms",
            settings(10, S, 1),
            vec![
                step(z, true, 0, 100 * MS, None),
                step(50 * MS, false, 0, 50 * MS, Some(50 * MS)),
                step(50 * MS, true, 0, 100 * MS, None),
            ],
        ),
        (
            "a long idle time refills to `burst`, never beyond",
            settings(1, S, 2),
            vec![
                step(z, true, 1, S, None),
                step(z, true, 0, 2 * S, None),
                step(100 * S, true, 1, S, None),
                step(z, true, 0, 2 * S, None),
                step(z, false, 0, 2 * S, Some(S)),
            ],
        ),
        (
            "a period of a minute: 2 per minute is a token every 30 s",
            settings(2, Duration::from_secs(60), 1),
            vec![
                step(z, true, 0, 30 * S, None),
                step(10 * S, false, 0, 20 * S, Some(20 * S)),
                step(20 * S, true, 0, 30 * S, None),
            ],
        ),
        (
            "remaining counts whole tokens; a fraction does not pass",
            settings(1, S, 3),
            vec![
                step(z, true, 2, S, None),
                step(z, true, 1, 2 * S, None),
                step(1500 * MS, true, 1, 1500 * MS, None),
                step(z, true, 0, 2500 * MS, None),
                step(z, false, 0, 2500 * MS, Some(500 * MS)),
            ],
        ),
    ];
    for (reason, s, steps) in cases {
        let (limiter, clock) = local(s, 1000);
        for (i, st) in steps.iter().enumerate() {
            clock.advance(st.advance);
            let d = limiter.check("10.0.0.1").await;
            let want = RateDecision {
                allowed: st.allowed,
                limit: limiter.settings().burst,
                remaining: st.remaining,
                reset: st.reset,
                retry_after: st.retry_after,
                store_error: false,
            };
            assert_eq!(d, want, "{reason}: step {i}");
        }
    }
}

#[tokio::test]
async fn keys_have_buckets_of_their_own_and_stats_count() {
    let (limiter, _clock) = local(settings(1, S, 1), 1000);
    assert!(limiter.check("a").await.allowed);
    assert!(!limiter.check("a").await.allowed, "a's one token is spent");
    assert!(
        limiter.check("b").await.allowed,
        "b has a bucket of its own"
    );
    let stats = limiter.stats();
    assert_eq!(
        (stats.allowed(), stats.limited(), stats.store_errors()),
        (2, 1, 0)
    );
    assert_eq!(limiter.local_keys(), 2);
}

#[tokio::test]
async fn a_million_distinct_keys_stay_within_the_cap_and_the_hot_key_stays_limited() {
    let burst = 5;
    // 1 per hour: nothing refills during the test, so no bucket is dropped as refilled and
    // the cap alone must hold memory down.
    let (limiter, clock) = local(settings(1, Duration::from_secs(3600), burst), 10_000);
    let cap = match &limiter.backend {
        Backend::Local(store) => store.capacity(),
        Backend::Redis(_) => unreachable!("a local limiter"),
    };
    assert!(cap < 10_100, "cap {cap}");
    let mut hot_allowed = 0;
    let mut key = String::new();
    for i in 0..1_000_000u32 {
        clock.advance(Duration::from_micros(1));
        key.clear();
        key.push_str("flood-");
        key.push_str(itoa::Buffer::new().format(i));
        assert!(
            limiter.check(&key).await.allowed,
            "a new key has a full bucket"
        );
        if i % 100 == 0 {
            clock.advance(Duration::from_micros(1));
            if limiter.check("hot").await.allowed {
                hot_allowed += 1;
            }
        }
        if i % 50_000 == 0 {
            assert!(
                limiter.local_keys() <= cap,
                "{} keys at {i}",
                limiter.local_keys()
            );
        }
    }
    assert!(limiter.local_keys() <= cap, "{} keys", limiter.local_keys());
    assert!(
        limiter.local_keys() > cap / 2,
        "eviction drops an eighth, not all"
    );
    assert_eq!(
        hot_allowed, burst,
        "the hot key, in use all along, kept its bucket through the flood"
    );
}

#[tokio::test]
async fn refilled_buckets_are_dropped() {
    // 10/s, burst 2: a bucket is full again 200 ms after its last request.
    let (limiter, clock) = local(settings(10, S, 2), 100_000);
    for i in 0..500 {
        limiter.check(&format!("k{i}")).await;
    }
    assert_eq!(limiter.local_keys(), 500);
    clock.advance(SWEEP_INTERVAL);
    // Each shard sweeps when it next admits a new key: touch every shard.
    for i in 0..2000 {
        limiter.check(&format!("new{i}")).await;
    }
    clock.advance(SWEEP_INTERVAL);
    for i in 0..2000 {
        limiter.check(&format!("newer{i}")).await;
    }
    assert!(
        limiter.local_keys() <= 2000,
        "the 2,500 refilled buckets are gone: {} left",
        limiter.local_keys()
    );
}

#[tokio::test]
async fn reload_carries_local_buckets_over() {
    let (old, clock) = local(settings(1, Duration::from_secs(3600), 3), 1000);
    for _ in 0..3 {
        assert!(old.check("k").await.allowed);
    }
    let cases: Vec<(&str, RateLimitSettings, bool, bool)> = vec![
        (
            "same settings: k's bucket is still empty, a new key's is full",
            settings(1, Duration::from_secs(3600), 3),
            false,
            true,
        ),
        (
            "a larger burst: k keeps its (empty) bucket",
            settings(1, Duration::from_secs(3600), 10),
            false,
            true,
        ),
    ];
    for (reason, s, k_allowed, other_allowed) in cases {
        let new = RateLimiter::local_with("api", s, Some(&old), 1000, clock.clone());
        assert_eq!(new.check("k").await.allowed, k_allowed, "{reason}");
        assert_eq!(
            new.check(&format!("other-{reason}")).await.allowed,
            other_allowed,
            "{reason}"
        );
    }

    let (old, _clock) = local(settings(1, Duration::from_secs(3600), 5), 1000);
    for _ in 0..5 {
        old.check("k").await;
    }
    let smaller = RateLimiter::local_with(
        "api",
        settings(1, Duration::from_secs(3600), 2),
        Some(&old),
        1000,
        Arc::new(ManualClock::default()),
    );
    let d = smaller.check("k").await;
    assert!(!d.allowed, "a smaller burst does not refill a spent bucket");

    let redis = RateLimitSettings {
        store: Store::Redis(parse_redis_url("redis://127.0.0.1:1").unwrap()),
        ..settings(1, Duration::from_secs(3600), 3)
    };
    let from_redis = RateLimiter::new("api", redis.clone(), None);
    let local_again = RateLimiter::local_with(
        "api",
        settings(1, Duration::from_secs(3600), 3),
        Some(&from_redis),
        1000,
        Arc::new(ManualClock::default()),
    );
    assert!(
        local_again.check("k").await.allowed,
        "from Redis to local: new buckets"
    );
    let to_redis = RateLimiter::new("api", redis, Some(&old));
    assert_eq!(
        to_redis.local_keys(),
        0,
        "from local to Redis: nothing local"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_store_error_that_follows_on_store_error() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    for (on_store_error, allowed) in [(OnStoreError::Allow, true), (OnStoreError::Deny, false)] {
        let limiter = RateLimiter::new(
            "api",
            RateLimitSettings {
                store: Store::Redis(parse_redis_url(&url).unwrap()),
                on_store_error,
                ..settings(1, S, 1)
            },
            None,
        );
        for _ in 0..3 {
            let started = Instant::now();
            let d = limiter.check("k").await;
            assert!(started.elapsed() < CHECK_TIMEOUT + 300 * MS, "no hang");
            assert!(d.store_error, "{on_store_error:?}");
            assert_eq!(d.allowed, allowed, "{on_store_error:?}");
        }
        assert_eq!(limiter.stats().store_errors(), 3);
    }
}

#[test]
fn limiters_are_send_and_sync() {
    fn is<T: Send + Sync>() {}
    is::<RateLimiter>();
}

#[test]
fn request_keys() {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("abc"));
    headers.append("x-api-key", HeaderValue::from_static("second"));
    headers.insert("x-odd", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    let header = |n: &'static str| KeySource::Header(HeaderName::from_static(n));
    let cases: Vec<(&str, KeySource, Option<IpAddr>, &str)> = vec![
        (
            "an IPv4 client",
            KeySource::ClientIp,
            ip("192.0.2.7"),
            "192.0.2.7",
        ),
        (
            "an IPv6 client, canonical text",
            KeySource::ClientIp,
            ip("2001:DB8:0:0::1"),
            "2001:db8::1",
        ),
        (
            "an IPv4-mapped IPv6 client is its IPv4 address",
            KeySource::ClientIp,
            ip("::ffff:192.0.2.7"),
            "192.0.2.7",
        ),
        (
            "the longest IPv6 text fits",
            KeySource::ClientIp,
            ip("1111:2222:3333:4444:5555:6666:7777:8888"),
            "1111:2222:3333:4444:5555:6666:7777:8888",
        ),
        (
            "no client address: the shared key",
            KeySource::ClientIp,
            None,
            MISSING_KEY,
        ),
        ("the header's first value", header("x-api-key"), None, "abc"),
        (
            "no such header: the shared key",
            header("x-other"),
            None,
            MISSING_KEY,
        ),
        (
            "a value that is not visible ASCII: the shared key",
            header("x-odd"),
            None,
            MISSING_KEY,
        ),
        ("the route", KeySource::Route, ip("192.0.2.7"), "route-a"),
    ];
    for (reason, source, client, want) in cases {
        assert_eq!(
            source.key(client, &headers, "route-a").as_str(),
            want,
            "{reason}"
        );
    }
}

#[test]
fn redis_urls() {
    let tcp = |host: &str, port, db, user: Option<&str>, pass: Option<&str>| RedisSettings {
        addr: RedisAddr::Tcp {
            host: host.into(),
            port,
        },
        db,
        username: user.map(String::from),
        password: pass.map(String::from),
    };
    let accepted: Vec<(&str, &str, RedisSettings)> = vec![
        (
            "host only: port 6379, db 0",
            "redis://cache",
            tcp("cache", 6379, 0, None, None),
        ),
        (
            "port and db",
            "redis://10.0.0.5:6380/2",
            tcp("10.0.0.5", 6380, 2, None, None),
        ),
        (
            "a trailing slash is db 0",
            "redis://cache/",
            tcp("cache", 6379, 0, None, None),
        ),
        (
            "password only",
            "redis://:s3cret@cache",
            tcp("cache", 6379, 0, None, Some("s3cret")),
        ),
        (
            "user and password",
            "redis://app:pw@cache:7000/1",
            tcp("cache", 7000, 1, Some("app"), Some("pw")),
        ),
        (
            "user only",
            "redis://app@cache",
            tcp("cache", 6379, 0, Some("app"), None),
        ),
        (
            "percent-encoded password",
            "redis://:p%40ss%3Aw@cache",
            tcp("cache", 6379, 0, None, Some("p@ss:w")),
        ),
        (
            "an IPv6 address",
            "redis://[::1]:6390",
            tcp("::1", 6390, 0, None, None),
        ),
        (
            "the scheme in capitals",
            "REDIS://cache",
            tcp("cache", 6379, 0, None, None),
        ),
        (
            "a Unix socket",
            "redis+unix:///run/redis/redis.sock",
            RedisSettings {
                addr: RedisAddr::Unix("/run/redis/redis.sock".into()),
                db: 0,
                username: None,
                password: None,
            },
        ),
        (
            "a Unix socket with db and credentials",
            "redis+unix:///tmp/r.sock?db=3&user=app&pass=pw",
            RedisSettings {
                addr: RedisAddr::Unix("/tmp/r.sock".into()),
                db: 3,
                username: Some("app".into()),
                password: Some("pw".into()),
            },
        ),
    ];
    for (reason, url, want) in accepted {
        assert_eq!(parse_redis_url(url), Ok(want), "{reason}: {url}");
    }
    let refused: Vec<(&str, &str, &str)> = vec![
        ("empty", "", "empty"),
        ("not a URL", "cache:6379", "not a URL"),
        ("TLS is not supported", "rediss://cache", "TLS"),
        ("another scheme", "http://cache", "unknown scheme"),
        ("no host", "redis://:pw@", "no host"),
        ("port 0", "redis://cache:0", "not a port"),
        ("port out of range", "redis://cache:70000", "not a port"),
        ("port not a number", "redis://cache:abc", "not a port"),
        (
            "db not a number",
            "redis://cache/main",
            "not a database number",
        ),
        ("negative db", "redis://cache/-1", "not a database number"),
        ("a query", "redis://cache?protocol=resp3", "query"),
        ("a space", "redis://ca che", "' '"),
        (
            "a host with odd characters",
            "redis://ca$he",
            "not a host name",
        ),
        ("an unclosed IPv6 bracket", "redis://[::1:6379", "closing"),
        ("not an IPv6 address", "redis://[cache]:6379", "not an IPv6"),
        (
            "a relative socket path",
            "redis+unix://redis.sock",
            "absolute",
        ),
        (
            "an unknown socket parameter",
            "redis+unix:///tmp/r.sock?timeout=1",
            "unknown parameter",
        ),
        (
            "a password that is not UTF-8",
            "redis://:%ff@cache",
            "UTF-8",
        ),
    ];
    for (reason, url, words) in refused {
        match parse_redis_url(url) {
            Ok(s) => panic!("{reason}: {url:?} accepted as {s:?}"),
            Err(e) => assert!(
                e.contains(words),
                "{reason}: {url:?}: {e:?} lacks {words:?}"
            ),
        }
    }
}

#[test]
fn redis_settings_never_show_the_password() {
    let s = parse_redis_url("redis://app:hunter2@cache:6380/4").unwrap();
    assert_eq!(s.to_string(), "redis://app@cache:6380/4");
    assert!(!format!("{s:?}").contains("hunter2"));
    let v6 = parse_redis_url("redis://:pw@[::1]").unwrap();
    assert_eq!(v6.to_string(), "redis://[::1]:6379/0");
}

/// Why, the decision, the policy window, the header fields it must give.
type HeaderCase = (
    &'static str,
    RateDecision,
    Duration,
    Vec<(&'static str, &'static str)>,
);

#[test]
fn header_fields() {
    let decision = |allowed, remaining, reset, retry_after, store_error| RateDecision {
        allowed,
        limit: 10,
        remaining,
        reset,
        retry_after,
        store_error,
    };
    let cases: Vec<HeaderCase> = vec![
        (
            "passed: the policy, remaining tokens and seconds until full, rounded up",
            decision(true, 9, 1200 * MS, None, false),
            60 * S,
            vec![
                ("ratelimit-policy", "\"default\";q=10;w=60"),
                ("ratelimit", "\"default\";r=9;t=2"),
            ],
        ),
        (
            "passed with a full bucket's reset of zero",
            decision(true, 10, Duration::ZERO, None, false),
            S,
            vec![
                ("ratelimit-policy", "\"default\";q=10;w=1"),
                ("ratelimit", "\"default\";r=10;t=0"),
            ],
        ),
        (
            "refused: t and Retry-After are the time to the next token, at least 1 s",
            decision(false, 0, 10 * S, Some(300 * MS), false),
            10 * S,
            vec![
                ("ratelimit-policy", "\"default\";q=10;w=10"),
                ("ratelimit", "\"default\";r=0;t=1"),
                ("retry-after", "1"),
            ],
        ),
        (
            "refused: 2.5 s to the next token is 3",
            decision(false, 0, 25 * S, Some(2500 * MS), false),
            10 * S,
            vec![
                ("ratelimit-policy", "\"default\";q=10;w=10"),
                ("ratelimit", "\"default\";r=0;t=3"),
                ("retry-after", "3"),
            ],
        ),
        (
            "a sub-second window is 1 s (w is a positive integer)",
            decision(true, 3, 100 * MS, None, false),
            500 * MS,
            vec![
                ("ratelimit-policy", "\"default\";q=10;w=1"),
                ("ratelimit", "\"default\";r=3;t=1"),
            ],
        ),
        (
            "store error, let through: nothing is known about the bucket",
            decision(true, 0, Duration::ZERO, None, true),
            S,
            vec![],
        ),
        (
            "store error, refused: only Retry-After",
            decision(false, 0, Duration::ZERO, Some(S), true),
            S,
            vec![("retry-after", "1")],
        ),
    ];
    for (reason, d, window, want) in cases {
        let got: Vec<(String, String)> = d
            .headers(window)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want, "{reason}");
    }
}
