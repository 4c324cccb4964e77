//! The live state of one backend, read on every request and written by health checks and
//! failed attempts: all atomics, so choosing a backend takes no lock.
//!
//! A state is shared between config generations: a reload builds its pools from the same
//! registry, so a backend present before and after (same upstream name, address and health
//! check settings) keeps its health, its passive failures and its in-flight count.

use super::settings::HealthCheck;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Milliseconds on a process-wide monotonic clock, starting at 1 (0 means "never").
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One backend's health and load.
#[derive(Debug, Default)]
pub(crate) struct BackendState {
    /// Set by the active health check.
    pub(crate) down: AtomicBool,
    /// Passing / failing probes in a row.
    pub(crate) probe_passes: AtomicU32,
    pub(crate) probe_fails: AtomicU32,
    /// When the next probe is due ([`now_ms`]); the checker that moves it on runs the probe,
    /// so two generations' checkers never probe the same backend twice per interval.
    pub(crate) next_probe_ms: AtomicU64,
    /// Failed attempts in a row (passive health).
    pub(crate) fails: AtomicU32,
    /// Not used before this time ([`now_ms`]) after `max_fails`; 0 when never ejected.
    pub(crate) ejected_until_ms: AtomicU64,
    /// Attempts holding this backend now (read by `least_conn`, `p2c` and the admin listener).
    pub(crate) in_flight: AtomicUsize,
}

impl BackendState {
    /// Neither failing its health check nor ejected after failed attempts. Two relaxed loads;
    /// the clock is read only while an ejection is recorded.
    #[inline]
    pub(crate) fn available(&self) -> bool {
        if self.down.load(Relaxed) {
            return false;
        }
        let until = self.ejected_until_ms.load(Relaxed);
        until == 0 || now_ms() >= until
    }

    pub(crate) fn load(&self) -> usize {
        self.in_flight.load(Relaxed)
    }
}

/// An attempt's hold on a backend's in-flight count, released when dropped: when the request
/// moves on to another backend, ends, fails, or its client goes away (the request context that
/// owns it is dropped in every case).
#[derive(Debug)]
pub struct InFlight(Arc<BackendState>);

impl InFlight {
    pub(crate) fn hold(state: &Arc<BackendState>) -> InFlight {
        state.in_flight.fetch_add(1, Relaxed);
        InFlight(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    upstream: String,
    addr: SocketAddr,
    check: Option<HealthCheck>,
}

/// The states of every live pool, by upstream name, address and health check settings. Taken
/// only when a config generation is built, never on a request.
static REGISTRY: Mutex<Option<HashMap<Key, Weak<BackendState>>>> = Mutex::new(None);

/// The state of `addr` in upstream `upstream`: the one a live pool already uses for the same
/// backend and health check settings, or a new one (healthy, no failures, nothing in flight).
pub(crate) fn shared_state(
    upstream: &str,
    addr: SocketAddr,
    check: Option<&HealthCheck>,
) -> Arc<BackendState> {
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    map.retain(|_, w| w.strong_count() > 0);
    let key = Key {
        upstream: upstream.to_owned(),
        addr,
        check: check.cloned(),
    };
    if let Some(s) = map.get(&key).and_then(Weak::upgrade) {
        return s;
    }
    let s = Arc::new(BackendState::default());
    map.insert(key, Arc::downgrade(&s));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_table() {
        let now = now_ms();
        // (down, ejected until, available, reason)
        let cases = [
            (false, 0, true, "fresh backend"),
            (true, 0, false, "health check failed"),
            (false, now + 60_000, false, "ejected for another minute"),
            (false, now.saturating_sub(1).max(1), true, "ejection over"),
            (
                true,
                now.saturating_sub(1).max(1),
                false,
                "ejection over, still failing checks",
            ),
        ];
        for (down, until, want, why) in cases {
            let s = BackendState::default();
            s.down.store(down, Relaxed);
            s.ejected_until_ms.store(until, Relaxed);
            assert_eq!(s.available(), want, "{why}");
        }
    }

    #[test]
    fn in_flight_is_released_when_the_hold_is_dropped() {
        let s = Arc::new(BackendState::default());
        let a = InFlight::hold(&s);
        let b = InFlight::hold(&s);
        assert_eq!(s.load(), 2);
        drop(a);
        assert_eq!(s.load(), 1);
        drop(b);
        assert_eq!(s.load(), 0);
    }

    #[test]
    fn registry_shares_a_state_while_a_pool_holds_it() {
        let addr: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let a = shared_state("registry-test", addr, None);
        let b = shared_state("registry-test", addr, None);
        assert!(Arc::ptr_eq(&a, &b), "same upstream, address and check");
        let other = shared_state("registry-test-2", addr, None);
        assert!(
            !Arc::ptr_eq(&a, &other),
            "another upstream has its own state"
        );
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(
            weak.upgrade().is_none(),
            "the registry does not keep states alive"
        );
        let c = shared_state("registry-test", addr, None);
        assert_eq!(c.load(), 0);
    }
}
