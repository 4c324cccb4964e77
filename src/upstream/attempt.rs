//! One request's upstream attempts: the backends it tried, the retries it has left, its
//! deadline (`timeout`) and the in-flight count it holds. It lives in the request context, so
//! everything it holds is released when the request ends, however it ends.

use super::state::InFlight;
use std::time::{Duration, Instant};

/// Backend indices a request has tried (a bit set; no allocation below 64 backends).
#[derive(Debug, Default)]
pub(crate) struct Tried {
    low: u64,
    more: Vec<usize>,
}

impl Tried {
    pub(crate) fn insert(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
        } else if !self.more.contains(&i) {
            self.more.push(i);
        }
    }

    /// Whether any backend was tried (the next attempt is a retry).
    pub(crate) fn any(&self) -> bool {
        self.low != 0 || !self.more.is_empty()
    }

    #[inline]
    pub(crate) fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.low & (1 << i) != 0
        } else {
            self.more.contains(&i)
        }
    }
}

/// A request's attempts against one pool. Start with `Attempts::default()`.
#[derive(Debug, Default)]
pub struct Attempts {
    pub(crate) tried: Tried,
    /// The backend of the current attempt.
    pub(crate) current: Option<usize>,
    /// Attempts begun.
    pub(crate) count: u32,
    pub(crate) retries_used: u32,
    /// The one free retry after a stale keep-alive connection has been used.
    pub(crate) stale_retry_used: bool,
    /// The next attempt goes to the current backend again (after a stale connection).
    pub(crate) repeat: bool,
    /// The current attempt's response head arrived: it can no longer be retried.
    pub(crate) responded: bool,
    pub(crate) deadline: Option<Instant>,
    /// The in-flight count of the current attempt's backend (`least_conn`, `p2c`).
    pub(crate) slot: Option<InFlight>,
}

impl Attempts {
    /// How many attempts have begun.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Time left before the pool's `timeout` runs out, when one is set. Read it right after
    /// [`super::UpstreamPool::begin_attempt`] to bound the attempt's own timeouts.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// When an attempt failed, as far as retrying and passive health are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureStage {
    /// No connection was made: nothing reached the backend, so any method may be retried.
    Connect,
    /// After the request (or part of it) was sent and before the response head arrived.
    Sent,
    /// A keep-alive connection from the pool turned out to be closed by the backend before it
    /// answered: the connection's fault, not the backend's.
    StaleConnection,
}

/// A failed attempt, described without the proxy's error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub stage: FailureStage,
    /// The request may be sent again: its method is idempotent (RFC 9110 §9.2.2) and its body
    /// is still fully buffered.
    pub replayable: bool,
    /// The `error.type` of the failure, named in the log line of an ejection.
    pub reason: &'static str,
}

/// The total `timeout` ran out before another attempt could begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfTime;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tried_set_table() {
        // (inserted, probed, expected, reason)
        let cases: &[(&[usize], usize, bool, &str)] = &[
            (&[], 0, false, "empty"),
            (&[0], 0, true, "first bit"),
            (&[63], 63, true, "last inline bit"),
            (&[63], 62, false, "neighbour not set"),
            (&[64, 200], 200, true, "beyond 64 backends"),
            (&[64], 65, false, "beyond 64, not set"),
        ];
        for (ins, probe, want, why) in cases {
            let mut t = Tried::default();
            for &i in *ins {
                t.insert(i);
            }
            assert_eq!(t.contains(*probe), *want, "{why}");
        }
    }
}
