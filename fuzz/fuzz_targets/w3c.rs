//! W3C Trace Context: `traceparent` and `tracestate` parsing.
//!
//! Input: header lines separated by `\n` (a value never holds one). Each line is parsed as a
//! `traceparent` value; all lines together are the `traceparent` and the `tracestate` lines of
//! one request.
//!
//! Invariants:
//! - a parsed `traceparent` has no zero id and no unknown flag bit, and re-formatted as
//!   version 00 it parses to the same value;
//! - several `traceparent` lines are refused as a duplicate, one line reads as that line;
//! - a kept `tracestate` is a valid header value of at most 32 members with unique keys, a
//!   fixed point (parsing it again gives it back), and each of its members is one the input had.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tracegate::trace::ids::KNOWN_FLAGS;
use tracegate::trace::propagation::w3c::{
    format_traceparent, parse_traceparent, parse_traceparent_lines, parse_tracestate,
    TraceParentError, TRACESTATE_MAX_MEMBERS,
};

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for line in &lines {
        if let Ok(tp) = parse_traceparent(line) {
            assert!(!tp.trace_id.is_zero() && !tp.parent_id.is_zero());
            assert_eq!(tp.flags & !KNOWN_FLAGS, 0, "unknown flag bits kept");
            let out = format_traceparent(&tp.trace_id, &tp.parent_id, tp.flags);
            assert_eq!(
                parse_traceparent(&out),
                Ok(tp),
                "re-formatted traceparent differs"
            );
        }
    }
    let all = parse_traceparent_lines(lines.iter().copied());
    if lines.len() > 1 {
        assert_eq!(all, Err(TraceParentError::Duplicate));
    } else {
        assert_eq!(all, parse_traceparent(lines[0]).map(Some));
    }

    if let Some(ts) = parse_tracestate(lines.iter().copied()) {
        let s = ts.as_str();
        assert!(
            HeaderValue::from_str(s).is_ok(),
            "tracestate {s:?} is no header value"
        );
        let members: Vec<&str> = s
            .split(',')
            .map(|m| m.trim_matches([' ', '\t']))
            .filter(|m| !m.is_empty())
            .collect();
        assert!(!members.is_empty());
        assert!(
            members.len() <= TRACESTATE_MAX_MEMBERS,
            "{} members",
            members.len()
        );
        let keys: Vec<&str> = members
            .iter()
            .map(|m| m.split_once('=').map_or(*m, |(k, _)| k))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(!keys[..i].contains(k), "key {k:?} kept twice in {s:?}");
        }
        let input = String::from_utf8_lossy(data);
        for m in &members {
            assert!(input.contains(m), "member {m:?} is not in the input");
        }
        assert_eq!(
            parse_tracestate([s.as_bytes()]).as_ref(),
            Some(&ts),
            "tracestate is not a fixed point"
        );
    }
});
