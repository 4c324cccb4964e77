//! The `rate_limit` Redis store against real `redis-server` processes (Debian's package), each
//! on a free loopback port, without persistence, in a temporary directory:
//! - two limiters of the same name (two proxy processes) share one budget: exactly `burst`
//!   checks pass, however they are spread;
//! - with the server killed, checks answer at once as store errors, let through or refused
//!   per `on_store_error`; with it restarted on the same port, checks work again;
//! - a check is one EVALSHA (one round trip), and a limiter keeps one connection however many
//!   checks run at once; the bucket's key expires once it would be full again.
//!
//! The tests fail (they do not skip) when `redis-server` is missing.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::redis::RedisServer;
use tracegate::middleware::rate_limit::{
    parse_redis_url, KeySource, OnStoreError, RateLimitSettings, RateLimiter, Store, CHECK_TIMEOUT,
};

fn settings(url: &str, burst: u64, on_store_error: OnStoreError) -> RateLimitSettings {
    RateLimitSettings {
        // One token an hour: nothing refills while a test runs.
        average: 1,
        period: Duration::from_secs(3600),
        burst,
        key: KeySource::ClientIp,
        store: Store::Redis(parse_redis_url(url).expect("the server's URL")),
        on_store_error,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_limiters_of_the_same_name_share_one_budget() {
    let server = RedisServer::start();
    let burst = 10;
    // As two proxy processes would have them: same name, same server, nothing else shared.
    let a = Arc::new(RateLimiter::new(
        "shared",
        settings(&server.url(), burst, OnStoreError::Deny),
        None,
    ));
    let b = Arc::new(RateLimiter::new(
        "shared",
        settings(&server.url(), burst, OnStoreError::Deny),
        None,
    ));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let limiter = Arc::clone(if i % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(
            async move { limiter.check("192.0.2.1").await },
        ));
    }
    let mut allowed = 0;
    for task in tasks {
        let d = task.await.expect("a check task");
        assert!(!d.store_error, "{d:?}");
        assert_eq!(d.limit, burst);
        if d.allowed {
            allowed += 1;
        } else {
            assert_eq!(d.remaining, 0);
            let retry = d.retry_after.expect("a refusal says when to retry");
            assert!(retry > Duration::from_secs(3500), "{retry:?}");
        }
    }
    assert_eq!(
        allowed, burst,
        "exactly `burst` of 30 checks pass across both"
    );
    assert_eq!(a.stats().allowed() + b.stats().allowed(), burst);
    assert_eq!(a.stats().limited() + b.stats().limited(), 30 - burst);
    let other = a.check("192.0.2.2").await;
    assert!(
        other.allowed && !other.store_error,
        "another key has its own bucket"
    );
    let elsewhere = RateLimiter::new(
        "other-route",
        settings(&server.url(), burst, OnStoreError::Deny),
        None,
    );
    assert!(
        elsewhere.check("192.0.2.1").await.allowed,
        "another middleware name has its own buckets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_open_or_closed_at_once_and_a_restarted_one_works_again() {
    let mut server = RedisServer::start();
    let open = RateLimiter::new(
        "open",
        settings(&server.url(), 100, OnStoreError::Allow),
        None,
    );
    let closed = RateLimiter::new(
        "closed",
        settings(&server.url(), 100, OnStoreError::Deny),
        None,
    );
    for limiter in [&open, &closed] {
        let d = limiter.check("192.0.2.1").await;
        assert!(d.allowed && !d.store_error, "{}: {d:?}", limiter.name());
    }

    server.kill();
    for round in 0..5 {
        for (limiter, allowed) in [(&open, true), (&closed, false)] {
            let started = Instant::now();
            let d = limiter.check("192.0.2.1").await;
            let took = started.elapsed();
            assert!(d.store_error, "{} round {round}: {d:?}", limiter.name());
            assert_eq!(d.allowed, allowed, "{} round {round}", limiter.name());
            assert!(
                took < CHECK_TIMEOUT + Duration::from_millis(300),
                "{} round {round}: took {took:?}",
                limiter.name()
            );
        }
    }
    assert_eq!(open.stats().store_errors(), 5);
    assert_eq!(closed.stats().store_errors(), 5);
    assert_eq!(open.stats().allowed(), 6);
    assert_eq!(closed.stats().limited(), 5);
    let refused = closed.check("192.0.2.1").await;
    let names: Vec<String> = refused
        .headers(Duration::from_secs(3600))
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        names,
        ["retry-after"],
        "a store error tells only when to retry"
    );

    server.restart();
    for limiter in [&open, &closed] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = limiter.check("192.0.2.1").await;
            if !d.store_error {
                // The new server is empty: a full bucket.
                assert!(d.allowed, "{}: {d:?}", limiter.name());
                assert_eq!(d.remaining, 99, "{}", limiter.name());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still failing 10 s after Redis came back",
                limiter.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `calls=N` of one command in `INFO commandstats` (0 when it never ran).
fn calls(commandstats: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    commandstats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a call count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_one_evalsha_and_a_limiter_keeps_one_connection() {
    let server = RedisServer::start();
    let limiters: Vec<Arc<RateLimiter>> = (0..2)
        .map(|_| {
            Arc::new(RateLimiter::new(
                "rt",
                settings(&server.url(), 1000, OnStoreError::Deny),
                None,
            ))
        })
        .collect();
    // The first check of each loads the script (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA).
    for limiter in &limiters {
        assert!(!limiter.check("warm-up").await.store_error);
    }
    server.cmd(redis::cmd("CONFIG").arg("RESETSTAT"));

    let mut tasks = Vec::new();
    for i in 0..100 {
        let limiter = Arc::clone(&limiters[i % 2]);
        tasks.push(tokio::spawn(async move {
            limiter.check(&format!("k{}", i % 10)).await
        }));
    }
    for task in tasks {
        let d = task.await.expect("a check task");
        assert!(d.allowed && !d.store_error, "{d:?}");
    }

    let stats = server.cmd(redis::cmd("INFO").arg("commandstats"));
    assert_eq!(
        calls(&stats, "evalsha"),
        100,
        "one EVALSHA per check:\n{stats}"
    );
    assert_eq!(
        calls(&stats, "eval"),
        0,
        "no script text sent again:\n{stats}"
    );
    assert_eq!(calls(&stats, "script|load"), 0, "loaded once:\n{stats}");

    let clients = server.cmd(redis::cmd("CLIENT").arg("LIST"));
    let theirs: Vec<&str> = clients
        .lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .collect();
    assert_eq!(
        theirs.len(),
        limiters.len(),
        "one connection per limiter:\n{clients}"
    );

    // The bucket is a hash under `tracegate:rl:<name>:<key>`, expiring once it is full again:
    // 10 checks of k0 spent 10 tokens, which take 10 hours to come back.
    let ttl: i64 = server
        .cmd(redis::cmd("PTTL").arg("tracegate:rl:rt:k0"))
        .parse()
        .expect("PTTL's number");
    let ten_hours = 10 * 3600 * 1000;
    assert!(
        ttl > ten_hours - 60_000 && ttl <= ten_hours + 1,
        "PTTL {ttl}"
    );
    assert_eq!(
        server.cmd(redis::cmd("TYPE").arg("tracegate:rl:rt:k0")),
        "hash"
    );
}
