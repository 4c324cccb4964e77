//! `rate_limit` on the real binary: a local limit (429, `Retry-After`, the RateLimit headers,
//! per client behind a trusted proxy), and a cluster-wide one: **two tracegate processes and a
//! real `redis-server`**, whose shared budget a burst across both cannot exceed, and which
//! fail open (the documented default) or closed while Redis is killed, and recover when it is
//! back.

mod common;

use common::redis::RedisServer;
use common::{http_get, Proxy, Upstream};
use std::time::{Duration, Instant};

fn limited(up: &Upstream, limit: &str, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\ntelemetry: {{ exporter: {{ protocol: none }} }}\n{extra}\
         middlewares:\n  limit: {{ rate_limit: {limit} }}\n\
         routes:\n  - {{ name: api, match: {{ path_prefix: / }}, middlewares: [limit], upstream: app }}\n\
         upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    ))
}

#[test]
fn a_local_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let up = Upstream::start("app");
    // One token an hour after a burst of 3: nothing refills during the test.
    let p = limited(
        &up,
        "{ average: 1, period: 1h, burst: 3, key: client_ip }",
        "forwarded: { trusted: [\"127.0.0.1/32\"] }\n",
    );
    let statuses: Vec<u16> = (0..5)
        .map(|_| http_get(&p.addr(), "/x", &[("x-forwarded-for", "198.51.100.1")]).status)
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429],
        "the burst, then refused"
    );
    let r = http_get(&p.addr(), "/x", &[("x-forwarded-for", "198.51.100.1")]);
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (3000..=3600).contains(&retry),
        "an hour for the next token: {retry}"
    );
    assert!(
        r.header("ratelimit-policy").unwrap().contains("q=3"),
        "{r:?}"
    );
    assert!(r.header("ratelimit").unwrap().contains("r=0"), "{r:?}");
    // Another client behind the same proxy has a budget of its own.
    let other = http_get(&p.addr(), "/x", &[("x-forwarded-for", "198.51.100.2")]);
    assert_eq!(other.status, 200);
    assert!(
        other.header("ratelimit").unwrap().contains("r=2"),
        "a passed request is told what is left"
    );
    assert_eq!(
        up.requests().len(),
        4,
        "refused requests never reach the upstream"
    );
}

#[test]
fn the_limiters_counts_are_metrics() {
    let up = Upstream::start("app");
    let p = limited(
        &up,
        "{ average: 1, period: 1h, burst: 2 }",
        "admin: { listen: \"127.0.0.1:0\" }\n",
    );
    for _ in 0..5 {
        http_get(&p.addr(), "/x", &[]);
    }
    let m = common::admin::scrape(&p.admin_addr());
    let v = |result: &str| {
        common::admin::sample(
            &m,
            "tracegate_rate_limit_requests_total",
            &[("middleware", "limit"), ("result", result)],
        )
    };
    assert_eq!((v("allowed"), v("limited")), (Some(2.0), Some(3.0)));
    // The refusals are HTTP metrics like any answer, by route and status.
    let http = |status: &str| {
        common::admin::sample(
            &m,
            "http_server_request_duration_seconds_count",
            &[("http_route", "api"), ("http_response_status_code", status)],
        )
    };
    assert_eq!((http("200"), http("429")), (Some(2.0), Some(3.0)));
}

/// Sends `n` requests, alternating between the two proxies, and counts 200s and 429s.
fn burst(a: &Proxy, b: &Proxy, n: usize, path: &str) -> (usize, usize) {
    let (mut ok, mut limited) = (0, 0);
    for i in 0..n {
        let p = if i % 2 == 0 { a } else { b };
        match http_get(&p.addr(), path, &[]).status {
            200 => ok += 1,
            429 => limited += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    (ok, limited)
}

#[test]
fn two_processes_share_one_budget_in_redis_and_fail_open_while_it_is_down() {
    let mut redis = RedisServer::start();
    let up = Upstream::start("app");
    let limit = format!(
        "{{ average: 1, period: 1h, burst: 10, key: route, store: \"{}/0\" }}",
        redis.url()
    );
    let (a, b) = (limited(&up, &limit, ""), limited(&up, &limit, ""));
    let (ok, refused) = burst(&a, &b, 30, "/x");
    assert_eq!(
        (ok, refused),
        (10, 20),
        "the burst of 10 is shared by both processes"
    );

    // Redis killed mid-test: requests pass (on_store_error: allow, the default), at once.
    redis.kill();
    let t = Instant::now();
    let (ok, refused) = burst(&a, &b, 10, "/x");
    assert_eq!((ok, refused), (10, 0), "fail open while the store is down");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "no request waits for Redis: {:?}",
        t.elapsed()
    );
    let log = a.wait_for_log("rate_limit limit: Redis", Duration::from_secs(10));
    assert!(
        log.to_lowercase().contains("redis"),
        "one line says why: {log}"
    );

    // Back, empty: each process reaches it again (its answers carry the RateLimit headers,
    // which a store error leaves out), and the budget is shared again.
    redis.restart();
    for p in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_get(&p.addr(), "/probe", &[])
            .header("ratelimit")
            .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "the limiter did not reconnect to Redis"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    redis.cmd(&redis::cmd("FLUSHALL"));
    let (ok, refused) = burst(&a, &b, 30, "/y");
    assert_eq!((ok, refused), (10, 20), "shared again after the restart");

    // Fail closed when configured.
    let closed = format!(
        "{{ average: 1, period: 1h, burst: 10, key: route, store: \"{}\", on_store_error: deny }}",
        redis.url()
    );
    let c = limited(&up, &closed, "");
    redis.kill();
    assert_eq!(
        http_get(&c.addr(), "/z", &[]).status,
        429,
        "on_store_error: deny"
    );
}

#[test]
fn a_bad_redis_url_is_refused_at_load() {
    let (code, out) = common::run_check(
        "listen: [\"127.0.0.1:0\"]\nmiddlewares:\n  l: { rate_limit: { average: 1, store: \"rediss://x\" } }\n",
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("middlewares.l.rate_limit.store: "), "{out}");
}

/// A reload swaps the middlewares with the routes; a limiter that keeps its name keeps its
/// buckets, so a reload does not hand every client a fresh burst.
#[test]
fn a_reload_keeps_the_buckets_of_a_limiter_that_keeps_its_name() {
    use nix::sys::signal::Signal;
    let up = Upstream::start("app");
    let config = |routes: &str| {
        format!(
            "listen: [\"127.0.0.1:0\"]\ntelemetry: {{ exporter: {{ protocol: none }} }}\n\
             middlewares:\n  limit: {{ rate_limit: {{ average: 1, period: 1h, burst: 2 }} }}\n\
             routes:\n{routes}\
             upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
            up.addr()
        )
    };
    let limited_route =
        "  - { name: api, match: { path_prefix: / }, middlewares: [limit], upstream: app }\n";
    let mut p = Proxy::start(&config(limited_route));
    let codes = |p: &Proxy| -> Vec<u16> {
        (0..3)
            .map(|_| http_get(&p.addr(), "/x", &[]).status)
            .collect()
    };
    assert_eq!(codes(&p), [200, 200, 429]);
    let reload = |p: &mut Proxy, yaml: &str, routes: usize| {
        let path = p.config_path().to_owned();
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        p.signal(Signal::SIGHUP);
        p.wait_for_log(
            &format!("config reloaded (SIGHUP): {routes} routes"),
            Duration::from_secs(15),
        );
    };
    // Same limiter, one more route: the bucket is still empty.
    reload(
        &mut p,
        &config(&format!(
            "{limited_route}  - {{ name: other, match: {{ path: /other }}, respond: {{ body: x }} }}\n"
        )),
        2,
    );
    assert_eq!(codes(&p), [429, 429, 429], "the buckets carried over");
    // The route no longer lists it: nothing is limited.
    reload(
        &mut p,
        &config("  - { name: api, match: { path_prefix: / }, upstream: app }\n"),
        1,
    );
    assert_eq!(codes(&p), [200, 200, 200]);
}
