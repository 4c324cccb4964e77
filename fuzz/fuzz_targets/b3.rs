//! B3 parsing: the single `b3` header and the `X-B3-*` multi headers.
//!
//! Input: the first byte says which multi headers are present (bit 0 `X-B3-TraceId`, 1
//! `X-B3-SpanId`, 2 `X-B3-ParentSpanId`, 3 `X-B3-Sampled`, 4 `X-B3-Flags`); the rest is
//! `\n`-separated values, handed in that order to the present headers. Every value is also
//! parsed as a single `b3` header.
//!
//! Invariants: parsed ids are never zero; a parsed context, formatted the way tracegate sends
//! B3 (single and multi), parses back to the same ids and sampling decision.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracegate::trace::propagation::b3::{
    format_b3_multi, format_b3_single, parse_b3_multi, parse_b3_single, B3MultiHeaders,
};
use tracegate::trace::propagation::{Extracted, RemoteContext};

/// The context a peer reads from what tracegate sends for `c`.
fn sent(c: &RemoteContext) -> Extracted {
    Extracted::Context(RemoteContext {
        sampled: Some(c.sampled == Some(true)),
        ..*c
    })
}

fn round_trip(e: &Extracted) {
    let Extracted::Context(c) = e else {
        return;
    };
    assert!(!c.trace_id.is_zero() && !c.span_id.is_zero());
    assert!(!c.random, "B3 makes no randomness promise");
    let sampled = c.sampled == Some(true);
    let single = format_b3_single(&c.trace_id, &c.span_id, sampled);
    assert_eq!(
        parse_b3_single(&single),
        Ok(sent(c)),
        "b3 single round trip"
    );
    let m = format_b3_multi(&c.trace_id, &c.span_id, sampled);
    let h = B3MultiHeaders {
        trace_id: Some(&m.trace_id),
        span_id: Some(&m.span_id),
        sampled: Some(m.sampled),
        ..Default::default()
    };
    assert_eq!(parse_b3_multi(&h), Ok(Some(sent(c))), "b3 multi round trip");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mask, rest)) = data.split_first() else {
        return;
    };
    let mut values = rest.split(|&b| b == b'\n');
    for v in rest.split(|&b| b == b'\n') {
        if let Ok(e) = parse_b3_single(v) {
            round_trip(&e);
        }
    }
    let mut take = |bit: u8| {
        if mask & (1 << bit) != 0 {
            Some(values.next().unwrap_or_default())
        } else {
            None
        }
    };
    let h = B3MultiHeaders {
        trace_id: take(0),
        span_id: take(1),
        parent_span_id: take(2),
        sampled: take(3),
        flags: take(4),
    };
    match parse_b3_multi(&h) {
        Ok(Some(e)) => round_trip(&e),
        Ok(None) => assert!(
            h.trace_id.is_none() && h.span_id.is_none() && h.sampled.is_none() && h.flags.is_none(),
            "headers present but nothing read and nothing refused"
        ),
        Err(_) => {}
    }
});
