//! Jaeger `uber-trace-id` parsing (the plain and the URL-encoded `%3A` forms).
//!
//! Input: `\n`-separated header values, each parsed on its own.
//!
//! Invariants: parsed ids are never zero, the sampling decision is always known, and the
//! context formatted the way tracegate sends it parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracegate::trace::propagation::jaeger::{format_jaeger, parse_jaeger};

fuzz_target!(|data: &[u8]| {
    for v in data.split(|&b| b == b'\n') {
        let Ok(c) = parse_jaeger(v) else {
            continue;
        };
        assert!(!c.trace_id.is_zero() && !c.span_id.is_zero());
        let sampled = c
            .sampled
            .expect("jaeger always carries a sampling decision");
        let out = format_jaeger(&c.trace_id, &c.span_id, sampled);
        assert_eq!(parse_jaeger(&out), Ok(c), "jaeger round trip");
    }
});
