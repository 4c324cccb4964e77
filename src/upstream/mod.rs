//! Upstream pools: a named set of weighted backends, the choice of a backend for each attempt
//! (`lb`), their health (active checks, passive ejection) and one request's retry and time
//! budget.
//!
//! Pure code; the proxy turns a chosen backend into a Pingora peer and Pingora errors into
//! [`Failure`]s. Connections to backends are kept alive and reused by Pingora's connection pool.
//!
//! - [`settings`]: the checked pool settings the config loader builds.
//! - `balance`: the selection algorithms (round robin, least_conn, p2c, consistent hashing).
//! - `state`: each backend's health and load, in atomics, shared across config reloads.
//! - `health`: the active health checks' background thread.
//! - `attempt`: one request's attempts ([`Attempts`]).
//! - `key`: the hash key read from a request.
//! - `host`: the Host header sent to the backends ([`PassHost`]).
//!
//! Choosing a backend: among the backends this request has not tried, the available ones
//! (passing their health check and not ejected) first. When every backend is down, they are
//! tried anyway, as nginx does after marking all its peers failed: a request that may succeed
//! is better than a certain error, and health checks can be wrong.

mod attempt;
mod balance;
mod health;
mod host;
mod key;
pub mod settings;
mod state;

pub use attempt::{Attempts, Failure, FailureStage, OutOfTime};
pub use health::HealthChecks;
pub use host::{backend_host, parse_fixed_host, PassHost};
pub use key::{cookie, HashKey};
pub use settings::{
    Balance, HashOn, HealthCheck, PassiveHealth, Probe, StatusRanges, UpstreamSpec,
    UpstreamTimeouts,
};

use balance::{Algorithm, Selector};
use state::{millis, now_ms, BackendState, InFlight};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// A backend's health and load at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendStatus {
    /// Passing its health check and not ejected: chosen before the others.
    pub available: bool,
    /// Its active health check fails.
    pub failing_check: bool,
    /// Taken out for `fail_timeout` after `max_fails` failed attempts in a row.
    pub ejected: bool,
    /// Failed attempts in a row (passive health).
    pub fails: u32,
    /// Upstream attempts holding it now.
    pub in_flight: usize,
}

/// One upstream pool.
#[derive(Debug)]
pub struct UpstreamPool {
    pub name: Arc<str>,
    pub backends: Vec<SocketAddr>,
    pub timeouts: UpstreamTimeouts,
    /// The Host header sent to this pool's backends.
    pub pass_host: PassHost,
    balance: Balance,
    selector: Selector,
    states: Arc<[Arc<BackendState>]>,
    passive: PassiveHealth,
    /// More attempts allowed after the first.
    retries: u32,
    health_check: Option<Arc<HealthCheck>>,
}

impl UpstreamPool {
    /// The pool for a checked upstream, with its own fresh backend states; its backend list is
    /// never empty (the config loader refuses an empty list).
    pub fn new(spec: &UpstreamSpec) -> Self {
        Self::build(spec, |_| Arc::new(BackendState::default()))
    }

    /// The pool for a checked upstream, sharing each backend's state (health, failures,
    /// in-flight count) with live pools of earlier config generations that have the same
    /// upstream name, address and health check settings. Used by each config generation.
    pub fn with_shared_state(spec: &UpstreamSpec) -> Self {
        Self::build(spec, |addr| {
            state::shared_state(&spec.name, addr, spec.health_check.as_ref())
        })
    }

    fn build(spec: &UpstreamSpec, state: impl Fn(SocketAddr) -> Arc<BackendState>) -> Self {
        assert!(
            !spec.backends.is_empty(),
            "upstream pool {} has no backends",
            spec.name
        );
        let weights: Vec<u32> = (0..spec.backends.len())
            .map(|i| spec.weights.get(i).copied().unwrap_or(1).max(1))
            .collect();
        let algorithm = match spec.balance {
            Balance::RoundRobin => Algorithm::RoundRobin,
            Balance::LeastConn => Algorithm::LeastConn,
            Balance::PowerOfTwo => Algorithm::PowerOfTwo,
            Balance::Hash(_) => Algorithm::Hash,
        };
        UpstreamPool {
            name: spec.name.as_str().into(),
            backends: spec.backends.clone(),
            timeouts: spec.timeouts,
            pass_host: spec.pass_host.clone(),
            balance: spec.balance.clone(),
            selector: Selector::new(algorithm, &spec.backends, &weights),
            states: spec.backends.iter().map(|a| state(*a)).collect(),
            passive: spec.passive,
            retries: spec
                .retries
                .unwrap_or(spec.backends.len().saturating_sub(1) as u32),
            health_check: spec.health_check.clone().map(Arc::new),
        }
    }

    /// How this pool chooses backends.
    pub fn balance(&self) -> &Balance {
        &self.balance
    }

    /// The hash rule, for `lb: hash`.
    pub fn hash_on(&self) -> Option<&HashOn> {
        match &self.balance {
            Balance::Hash(h) => Some(h),
            _ => None,
        }
    }

    /// The weight of backend `i`.
    pub fn weight(&self, i: usize) -> u32 {
        self.selector.weight(i)
    }

    /// Whether backend `i` is available (passing its health check, not ejected).
    pub fn is_available(&self, i: usize) -> bool {
        self.states[i].available()
    }

    /// The health and load of backend `i` now, for the admin listener.
    pub fn status(&self, i: usize) -> BackendStatus {
        let s = &self.states[i];
        let until = s.ejected_until_ms.load(Relaxed);
        BackendStatus {
            available: s.available(),
            failing_check: s.down.load(Relaxed),
            ejected: until != 0 && now_ms() < until,
            fails: s.fails.load(Relaxed),
            in_flight: s.load(),
        }
    }

    /// Begins an attempt: chooses its backend, starts the `timeout` clock on the first one and
    /// holds the backend's in-flight count (for `least_conn`/`p2c`). `key` is the hash key
    /// (`lb: hash`). A retry goes to a backend this request has not tried yet, healthy ones
    /// first; when every backend has been tried, to any. Errs when `timeout` ran out.
    pub fn begin_attempt(&self, a: &mut Attempts, key: Option<&[u8]>) -> Result<usize, OutOfTime> {
        if let Some(total) = self.timeouts.total {
            match a.deadline {
                // The config bounds `timeout` (at most a day); checked all the same, so no
                // value can make the clock overflow on a request.
                None => a.deadline = Instant::now().checked_add(total),
                Some(_) if a.out_of_time() => return Err(OutOfTime),
                Some(_) => {}
            }
        }
        // Release the previous attempt's slot before counting the next one.
        a.slot = None;
        let i = match (a.repeat, a.current) {
            (true, Some(c)) => c,
            _ => self.choose(key, &a.tried),
        };
        a.repeat = false;
        a.responded = false;
        a.tried.insert(i);
        a.current = Some(i);
        a.count += 1;
        // Held for every balancer, not only those that read it (`least_conn`, `p2c`): the
        // admin listener's `/upstreams` shows each backend's requests in flight.
        a.slot = Some(InFlight::hold(&self.states[i]));
        Ok(i)
    }

    fn choose(&self, key: Option<&[u8]>, tried: &attempt::Tried) -> usize {
        let states = &self.states;
        let load = |i: usize| states[i].load();
        let tiers: [&dyn Fn(usize) -> bool; 4] = [
            &|i| !tried.contains(i) && states[i].available(),
            &|i| !tried.contains(i),
            &|i| states[i].available(),
            &|_| true,
        ];
        let retry = tried.any();
        self.selector.pick(key, &tiers, &load, retry).unwrap_or(0)
    }

    /// The current attempt's response head arrived: it counts as a success for passive health,
    /// and the attempt can no longer be retried.
    pub fn attempt_responded(&self, a: &mut Attempts) {
        a.responded = true;
        if let Some(i) = a.current {
            self.record_success(i);
        }
    }

    /// The current attempt failed. Counts it against the backend (passive health; not for a
    /// stale keep-alive connection, nor once the response head arrived) and says whether to
    /// try again:
    /// - never once the response head arrived or `timeout` ran out;
    /// - a connect failure: while retries are left, for any method (nothing was sent);
    /// - after the request was sent: the same, only when it is replayable;
    /// - a stale keep-alive connection: once per request on the same backend without using a
    ///   retry (the connection, not the backend, failed), then as above; only when replayable.
    pub fn attempt_failed(&self, a: &mut Attempts, f: Failure) -> bool {
        let Some(i) = a.current else {
            return false;
        };
        a.slot = None;
        if f.stage != FailureStage::StaleConnection && !a.responded {
            self.record_failure(i, f.reason);
        }
        if a.responded || a.out_of_time() {
            return false;
        }
        let mut spend = || {
            let left = a.retries_used < self.retries;
            if left {
                a.retries_used += 1;
            }
            left
        };
        match f.stage {
            FailureStage::Connect => spend(),
            FailureStage::Sent => f.replayable && spend(),
            FailureStage::StaleConnection if !f.replayable => false,
            FailureStage::StaleConnection if !a.stale_retry_used => {
                a.stale_retry_used = true;
                a.repeat = true;
                true
            }
            FailureStage::StaleConnection => spend(),
        }
    }

    fn record_failure(&self, i: usize, reason: &str) {
        let p = self.passive;
        if p.max_fails == 0 {
            return;
        }
        let s = &self.states[i];
        let fails = s.fails.fetch_add(1, Relaxed).saturating_add(1);
        if fails < p.max_fails {
            return;
        }
        let now = now_ms();
        let before = s
            .ejected_until_ms
            .swap(now.saturating_add(millis(p.fail_timeout)), Relaxed);
        if before == 0 || before <= now {
            log::warn!(
                "upstream {}: backend {} is down: {fails} failed attempt{} in a row \
                 (last: {reason}); not used for {:?}",
                self.name,
                self.backends[i],
                if fails == 1 { "" } else { "s" },
                p.fail_timeout
            );
            if self.states.iter().all(|s| !s.available()) {
                log::warn!(
                    "upstream {}: every backend is down; requests are still sent to them",
                    self.name
                );
            }
        }
    }

    fn record_success(&self, i: usize) {
        let p = self.passive;
        if p.max_fails == 0 {
            return;
        }
        let s = &self.states[i];
        // A load, not a write, on the common path: the counter is shared by every thread.
        if s.fails.load(Relaxed) == 0 {
            return;
        }
        let fails = s.fails.swap(0, Relaxed);
        let ejected = s.ejected_until_ms.swap(0, Relaxed);
        if fails >= p.max_fails && ejected != 0 {
            log::info!(
                "upstream {}: backend {} is up again",
                self.name,
                self.backends[i]
            );
        }
    }

    /// The health check targets of this pool (none without `health_check`).
    pub(crate) fn health_targets(&self) -> Vec<health::Target> {
        let Some(check) = &self.health_check else {
            return Vec::new();
        };
        self.backends
            .iter()
            .enumerate()
            .map(|(index, addr)| health::Target {
                upstream: Arc::clone(&self.name),
                addr: *addr,
                index,
                pool: Arc::clone(&self.states),
                check: Arc::clone(check),
            })
            .collect()
    }
}

/// Starts the active health checks of `pools` (`None` when no pool has any).
pub fn start_health_checks<'a>(
    pools: impl IntoIterator<Item = &'a UpstreamPool>,
) -> Option<HealthChecks> {
    HealthChecks::start(pools.into_iter().flat_map(|p| p.health_targets()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(n: usize) -> UpstreamSpec {
        UpstreamSpec::for_test(
            "x",
            (0..n)
                .map(|i| format!("127.0.0.1:{}", i + 1).parse().unwrap())
                .collect(),
        )
    }

    fn failure(stage: FailureStage, replayable: bool) -> Failure {
        Failure {
            stage,
            replayable,
            reason: "test",
        }
    }

    #[test]
    fn round_robin_visits_every_backend_in_turn() {
        let p = UpstreamPool::new(&spec(2));
        let picks: Vec<_> = (0..4)
            .map(|_| p.begin_attempt(&mut Attempts::default(), None).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
    }

    #[test]
    fn a_retry_goes_to_an_untried_backend() {
        let p = UpstreamPool::new(&spec(3));
        let mut a = Attempts::default();
        let first = p.begin_attempt(&mut a, None).unwrap();
        assert!(p.attempt_failed(&mut a, failure(FailureStage::Connect, false)));
        let second = p.begin_attempt(&mut a, None).unwrap();
        assert!(p.attempt_failed(&mut a, failure(FailureStage::Connect, false)));
        let third = p.begin_attempt(&mut a, None).unwrap();
        let mut all = vec![first, second, third];
        all.sort();
        assert_eq!(all, [0, 1, 2], "each backend once");
        assert!(
            !p.attempt_failed(&mut a, failure(FailureStage::Connect, false)),
            "default: retries = backends - 1"
        );
    }

    /// (stage, replayable, retries configured, responded, expected retry, reason)
    #[test]
    fn retry_decision_table() {
        type Case = (FailureStage, bool, Option<u32>, bool, bool, &'static str);
        use FailureStage::*;
        let cases: &[Case] = &[
            (
                Connect,
                false,
                None,
                false,
                true,
                "connect failure: any method",
            ),
            (
                Connect,
                false,
                Some(0),
                false,
                false,
                "retries: 0 turns retrying off",
            ),
            (
                Sent,
                true,
                None,
                false,
                true,
                "sent, idempotent with a buffered body",
            ),
            (
                Sent,
                false,
                None,
                false,
                false,
                "sent, not replayable: never",
            ),
            (
                Sent,
                true,
                None,
                true,
                false,
                "the response head arrived: never",
            ),
            (
                StaleConnection,
                true,
                Some(0),
                false,
                true,
                "stale connection: one free retry",
            ),
            (
                StaleConnection,
                false,
                None,
                false,
                false,
                "stale, not replayable",
            ),
        ];
        for (stage, replayable, retries, responded, want, why) in cases {
            let mut s = spec(3);
            s.retries = *retries;
            let p = UpstreamPool::new(&s);
            let mut a = Attempts::default();
            p.begin_attempt(&mut a, None).unwrap();
            if *responded {
                p.attempt_responded(&mut a);
            }
            assert_eq!(
                p.attempt_failed(&mut a, failure(*stage, *replayable)),
                *want,
                "{why}"
            );
        }
    }

    #[test]
    fn stale_connection_retries_the_same_backend_once_without_counting() {
        let mut s = spec(2);
        s.retries = Some(1);
        let p = UpstreamPool::new(&s);
        let mut a = Attempts::default();
        let first = p.begin_attempt(&mut a, None).unwrap();
        assert!(p.attempt_failed(&mut a, failure(FailureStage::StaleConnection, true)));
        assert_eq!(
            p.begin_attempt(&mut a, None).unwrap(),
            first,
            "same backend"
        );
        assert!(
            p.is_available(first),
            "a stale connection is not the backend's failure"
        );
        assert!(p.attempt_failed(&mut a, failure(FailureStage::StaleConnection, true)));
        assert_ne!(
            p.begin_attempt(&mut a, None).unwrap(),
            first,
            "then a real retry"
        );
        assert!(
            !p.attempt_failed(&mut a, failure(FailureStage::Sent, true)),
            "budget spent"
        );
    }

    #[test]
    fn passive_ejection_and_recovery() {
        let mut s = spec(2);
        s.passive.max_fails = 2;
        let p = UpstreamPool::new(&s);
        let fail_on = |want: usize| {
            let mut a = Attempts::default();
            let mut i = p.begin_attempt(&mut a, None).unwrap();
            while i != want {
                a = Attempts::default();
                i = p.begin_attempt(&mut a, None).unwrap();
            }
            p.attempt_failed(&mut a, failure(FailureStage::Connect, false));
        };
        fail_on(0);
        assert!(p.is_available(0), "one failure of max_fails 2");
        fail_on(0);
        assert!(!p.is_available(0), "two in a row: ejected");
        for _ in 0..4 {
            assert_eq!(p.begin_attempt(&mut Attempts::default(), None), Ok(1));
        }
        // A success clears it (as when fail_timeout has passed and a request got through).
        let mut a = Attempts {
            current: Some(0),
            ..Attempts::default()
        };
        p.attempt_responded(&mut a);
        assert!(p.is_available(0));
        let mut off = spec(1);
        off.passive.max_fails = 0;
        let p = UpstreamPool::new(&off);
        let mut a = Attempts::default();
        p.begin_attempt(&mut a, None).unwrap();
        p.attempt_failed(&mut a, failure(FailureStage::Connect, false));
        assert!(p.is_available(0), "max_fails: 0 never ejects");
    }

    #[test]
    fn every_backend_down_still_gets_requests() {
        let p = UpstreamPool::new(&spec(2));
        for s in p.states.iter() {
            s.down.store(true, Relaxed);
        }
        let picks: Vec<_> = (0..4)
            .map(|_| p.begin_attempt(&mut Attempts::default(), None).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 1], "round robin over all of them");
        p.states[1].down.store(false, Relaxed);
        for _ in 0..3 {
            assert_eq!(p.begin_attempt(&mut Attempts::default(), None), Ok(1));
        }
    }

    #[test]
    fn least_conn_holds_and_releases_in_flight() {
        let mut s = spec(2);
        s.balance = Balance::LeastConn;
        let p = UpstreamPool::new(&s);
        let mut busy = Attempts::default();
        let held = p.begin_attempt(&mut busy, None).unwrap();
        for _ in 0..3 {
            assert_ne!(
                p.begin_attempt(&mut Attempts::default(), None).unwrap(),
                held,
                "the other one has nothing in flight"
            );
        }
        drop(busy);
        let picks: Vec<_> = (0..2)
            .map(|_| p.begin_attempt(&mut Attempts::default(), None).unwrap())
            .collect();
        assert_ne!(picks[0], picks[1], "released: ties go round robin again");
        let mut failed = Attempts::default();
        let i = p.begin_attempt(&mut failed, None).unwrap();
        p.attempt_failed(&mut failed, failure(FailureStage::Sent, false));
        assert_eq!(p.states[i].load(), 0, "a failed attempt releases its slot");
    }

    #[test]
    fn total_timeout_refuses_an_attempt_past_the_deadline() {
        let mut s = spec(2);
        s.timeouts.total = Some(Duration::from_millis(1));
        let p = UpstreamPool::new(&s);
        let mut a = Attempts::default();
        p.begin_attempt(&mut a, None).unwrap();
        assert!(a.time_left().unwrap() <= Duration::from_millis(1));
        let deadline = a.deadline.unwrap();
        while Instant::now() < deadline {
            std::hint::spin_loop();
        }
        assert!(
            !p.attempt_failed(&mut a, failure(FailureStage::Connect, false)),
            "no retry after the deadline"
        );
        assert_eq!(p.begin_attempt(&mut a, None), Err(OutOfTime));
        assert_eq!(a.time_left(), Some(Duration::ZERO));
    }
}
