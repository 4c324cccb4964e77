//! W3C Baggage: validation of a request's `baggage` lines.
//!
//! Input: header lines separated by `\n`.
//!
//! Invariants: what is kept is a valid header value, at most 64 members and 8192 bytes, a
//! fixed point (validating it again gives it back), and each of its members is one the input had.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tracegate::trace::propagation::baggage::{
    parse_baggage, BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS,
};

fuzz_target!(|data: &[u8]| {
    let Some(b) = parse_baggage(data.split(|&b| b == b'\n')) else {
        return;
    };
    let s = b.as_str();
    assert!(
        HeaderValue::from_str(s).is_ok(),
        "baggage {s:?} is no header value"
    );
    assert!(s.len() <= BAGGAGE_MAX_BYTES, "{} bytes kept", s.len());
    let members: Vec<&str> = s.split(',').map(|m| m.trim_matches([' ', '\t'])).collect();
    assert!(
        members.iter().all(|m| !m.is_empty()),
        "empty member kept in {s:?}"
    );
    assert!(
        members.len() <= BAGGAGE_MAX_MEMBERS,
        "{} members kept",
        members.len()
    );
    let input = String::from_utf8_lossy(data);
    for m in &members {
        assert!(input.contains(m), "member {m:?} is not in the input");
    }
    assert_eq!(
        parse_baggage([s.as_bytes()]).as_ref(),
        Some(&b),
        "baggage is not a fixed point"
    );
});
