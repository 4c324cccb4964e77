//! Benchmarks of the `rate_limit` middleware's local store: one check of a key it already
//! holds (one bucket, and one of 100,000 in turn), and the request key of a client address.
//!
//! Run with `cargo bench --bench rate_limit` (append `-- --quick` for a shorter run).

use criterion::{criterion_group, criterion_main, Criterion};
use std::future::Future;
use std::hint::black_box;
use std::net::IpAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tracegate::middleware::rate_limit::{
    KeySource, OnStoreError, RateDecision, RateLimitSettings, RateLimiter, Store,
};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// A local check finishes at its first poll: no runtime needed.
fn check(limiter: &RateLimiter, key: &str) -> RateDecision {
    let mut fut = pin!(limiter.check(key));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(d) => d,
        Poll::Pending => unreachable!("a local check does not wait"),
    }
}

fn limiter() -> RateLimiter {
    RateLimiter::new(
        "bench",
        RateLimitSettings {
            average: 1_000_000,
            period: Duration::from_secs(1),
            burst: 1_000_000,
            key: KeySource::ClientIp,
            store: Store::Local,
            on_store_error: OnStoreError::Allow,
        },
        None,
    )
}

fn local(c: &mut Criterion) {
    let one = limiter();
    c.bench_function("rate_limit/local_check_one_key", |b| {
        b.iter(|| check(&one, black_box("192.0.2.1")))
    });
    let many = limiter();
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("10.{}.{}.1", i / 256, i % 256))
        .collect();
    for k in &keys {
        check(&many, k);
    }
    let mut i = 0;
    c.bench_function("rate_limit/local_check_100k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            check(&many, black_box(&keys[i]))
        })
    });
    let headers = http::HeaderMap::new();
    let ip: IpAddr = "2001:db8::1".parse().unwrap();
    c.bench_function("rate_limit/client_ip_key", |b| {
        b.iter(|| {
            KeySource::ClientIp
                .key(black_box(Some(ip)), &headers, "r")
                .as_str()
                .len()
        })
    });
}

criterion_group! {
    name = benches;
    config = config();
    targets = local
}
criterion_main!(benches);
