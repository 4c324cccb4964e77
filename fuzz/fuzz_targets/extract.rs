//! Propagation dispatch: reading the incoming context from a request's headers with a set of
//! formats, then writing this hop's context upstream.
//!
//! Input: the first byte picks the formats (bits 0-4 select among `tracecontext`, `baggage`,
//! `b3`, `b3multi`, `jaeger`, bits 5-7 rotate their order); the rest is `name: value` header
//! lines separated by `\n` (lines that are not a valid header are skipped).
//!
//! Invariants: what is found comes from a configured format; every header value the upstream
//! edits write is a valid header value; and after the edits are applied to the request, the
//! configured formats read back exactly this hop's context (ids and sampling decision).
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tracegate::trace::ids::{SpanId, TraceId, FLAG_SAMPLED};
use tracegate::trace::propagation::baggage::parse_baggage;
use tracegate::trace::propagation::w3c::parse_tracestate;
use tracegate::trace::propagation::{
    extract, upstream_edits, Extracted, Outgoing, Propagator, Propagators, BAGGAGE, TRACESTATE,
};

fn propagators(b: u8) -> Propagators {
    let rot = usize::from(b >> 5) % Propagator::ALL.len();
    let names: Vec<&str> = (0..Propagator::ALL.len())
        .map(|i| (i + rot) % Propagator::ALL.len())
        .filter(|&i| b & (1 << i) != 0)
        .map(|i| Propagator::ALL[i].name())
        .collect();
    if names.is_empty() {
        return Propagators::none();
    }
    Propagators::from_names(names.iter().copied()).expect("valid names")
}

fn headers(lines: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        h.append(n, v);
    }
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let props = propagators(sel);
    let mut h = headers(rest);
    let found = extract(&props, &h);
    if let Some((p, _)) = found.found {
        assert!(props.contains(p), "{p:?} is not configured");
        assert_ne!(p, Propagator::Baggage, "baggage carries no context");
    }

    let (trace_id, sampled) = match found.found {
        Some((_, Extracted::Context(c))) => (c.trace_id, c.sampled == Some(true)),
        Some((_, Extracted::SamplingOnly(s))) => (TraceId([0xab; 16]), s),
        None => (TraceId([0xab; 16]), true),
    };
    let tracestate = parse_tracestate(h.get_all(&TRACESTATE).iter().map(|v| v.as_bytes()));
    let baggage = parse_baggage(h.get_all(&BAGGAGE).iter().map(|v| v.as_bytes()));
    let out = Outgoing {
        trace_id,
        span_id: SpanId([0xcd; 8]),
        flags: if sampled { FLAG_SAMPLED } else { 0 },
        tracestate: tracestate.as_ref().map(|t| t.as_str()),
        baggage: baggage.as_ref().map(|b| b.as_str()),
    };
    upstream_edits(&props, &out, |name, value| match value {
        Some(v) => {
            let v = HeaderValue::from_bytes(v).expect("upstream edits write valid values");
            h.insert(name, v);
        }
        None => {
            h.remove(name);
        }
    });

    let again = extract(&props, &h);
    let first = props
        .as_slice()
        .iter()
        .copied()
        .find(|&p| p != Propagator::Baggage);
    match first {
        None => assert_eq!(again.found, None),
        Some(p) => {
            let Some((q, Extracted::Context(c))) = again.found else {
                panic!("nothing read back after injecting {p:?}: {again:?}");
            };
            assert_eq!(q, p, "the first configured format is read first");
            assert_eq!((c.trace_id, c.span_id), (out.trace_id, out.span_id));
            assert_eq!(c.sampled, Some(sampled));
        }
    }
});
