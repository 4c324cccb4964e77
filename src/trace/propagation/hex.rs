//! Hex ids as B3 and Jaeger write them: up to 32 (trace) or 16 (span) hex digits, left-padded
//! with zeros to 128 or 64 bits, all zeros refused; upper case only where the caller allows it.

use super::context::{invalid, InvalidContext, Parsed};
use crate::trace::ids::{SpanId, TraceId};

fn hex_digit(c: u8, upper_ok: bool) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if upper_ok => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Up to 32 hex digits as a 128-bit big-endian id, left-padded with zeros.
pub(super) fn hex_u128(s: &[u8], upper_ok: bool) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for &c in s {
        v = v << 4 | u128::from(hex_digit(c, upper_ok)?);
    }
    Some(v)
}

pub(super) fn trace_id_from(s: &[u8], upper_ok: bool) -> Parsed<TraceId> {
    let v = hex_u128(s, upper_ok).ok_or(InvalidContext("trace id is not 1 to 32 hex digits"))?;
    let id = TraceId(v.to_be_bytes());
    if id.is_zero() {
        return invalid("all-zero trace id");
    }
    Ok(id)
}

pub(super) fn span_id_from(s: &[u8], upper_ok: bool) -> Parsed<SpanId> {
    if s.len() > 16 {
        return invalid("span id longer than 16 hex digits");
    }
    let v = hex_u128(s, upper_ok).ok_or(InvalidContext("span id is not 1 to 16 hex digits"))?;
    let id = SpanId((v as u64).to_be_bytes());
    if id.is_zero() {
        return invalid("all-zero span id");
    }
    Ok(id)
}
