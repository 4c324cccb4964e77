//! Upstream pools: a named set of backends, chosen round robin, with the pool's timeouts.
//!
//! Pure code; the proxy turns a chosen backend into a Pingora peer. Connections to backends are
//! kept alive and reused by Pingora's connection pool.

use crate::config::UpstreamSpec;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Timeouts for talking to one pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// TCP connect (a timeout answers 504).
    pub connect: Duration,
    /// Waiting for each read from the backend, including the response header (504).
    pub read: Duration,
    /// Waiting for each write to the backend (504).
    pub write: Duration,
}

/// One upstream pool.
#[derive(Debug)]
pub struct UpstreamPool {
    pub name: Arc<str>,
    pub backends: Vec<SocketAddr>,
    pub timeouts: UpstreamTimeouts,
    /// The Host header sent to this pool's backends.
    pub pass_host: crate::routing::PassHost,
    next: AtomicUsize,
}

impl UpstreamPool {
    /// The pool for a checked upstream; its backend list is never empty (the config loader
    /// refuses an empty list).
    pub fn new(spec: &UpstreamSpec) -> Self {
        assert!(
            !spec.backends.is_empty(),
            "upstream pool {} has no backends",
            spec.name
        );
        UpstreamPool {
            name: spec.name.as_str().into(),
            backends: spec.backends.clone(),
            timeouts: spec.timeouts,
            pass_host: spec.pass_host.clone(),
            next: AtomicUsize::new(0),
        }
    }

    /// The index of the next backend, round robin.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len()
    }

    /// The backend for a retry: the `attempt`-th one after `first`, so a retry never lands on
    /// the backend that just failed while another exists (nginx `proxy_next_upstream`).
    pub fn after(&self, first: usize, attempt: usize) -> usize {
        (first + attempt) % self.backends.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_every_backend_in_turn() {
        let t = UpstreamTimeouts {
            connect: Duration::from_secs(1),
            read: Duration::from_secs(1),
            write: Duration::from_secs(1),
        };
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let p = UpstreamPool::new(&UpstreamSpec {
            name: "x".into(),
            backends: vec![a, b],
            timeouts: t,
            tls: None,
            http2: false,
            pass_host: Default::default(),
        });
        let picks: Vec<_> = (0..4).map(|_| p.backends[p.pick()]).collect();
        assert_eq!(picks, vec![a, b, a, b]);
        assert_eq!(
            p.backends[p.after(1, 1)],
            a,
            "a retry moves to the next backend"
        );
    }
}
