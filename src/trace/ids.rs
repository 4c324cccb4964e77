//! Trace and span id generation.
//!
//! W3C Trace Context §3.2.2.3/§3.2.2.4 require ids that are random and not all zeros; Level 2's
//! random flag (§3.2.2.5.2) promises that at least the right-most 7 bytes of the trace id are
//! random. Ids come from `rand`'s thread-local CSPRNG, so nothing is shared between threads.

use super::w3c::{SpanId, TraceId};
use rand::RngCore;

/// A new random, non-zero trace id.
pub fn new_trace_id() -> TraceId {
    let mut rng = rand::rng();
    loop {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        let id = TraceId(b);
        if !id.is_zero() {
            return id;
        }
    }
}

/// A new random, non-zero span id.
pub fn new_span_id() -> SpanId {
    let mut rng = rand::rng();
    loop {
        let id = SpanId(rng.next_u64().to_be_bytes());
        if !id.is_zero() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_non_zero_and_distinct() {
        let traces: HashSet<_> = (0..1000).map(|_| new_trace_id()).collect();
        let spans: HashSet<_> = (0..1000).map(|_| new_span_id()).collect();
        assert_eq!(traces.len(), 1000);
        assert_eq!(spans.len(), 1000);
        assert!(traces.iter().all(|t| !t.is_zero()));
        assert!(spans.iter().all(|s| !s.is_zero()));
    }
}
