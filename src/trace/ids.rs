//! Trace and span ids: the [`TraceId`] and [`SpanId`] types and the W3C trace-flag bits that
//! the request side, the span records, the encoders and every propagation format share, and the
//! generation of new ids.
//!
//! W3C Trace Context §3.2.2.3/§3.2.2.4 require ids that are random and not all zeros; Level 2's
//! random flag (§3.2.2.5.2) promises that at least the right-most 7 bytes of the trace id are
//! random. Ids come from `rand`'s thread-local CSPRNG, so nothing is shared between threads.

use rand::RngCore;
use std::fmt;

/// A 16-byte trace id. All zeros is invalid (§3.2.2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span (parent) id. All zeros is invalid (§3.2.2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

/// Bit 0 of trace-flags: the caller may have recorded this trace (§3.2.2.5.1).
pub const FLAG_SAMPLED: u8 = 0x01;
/// Bit 1 of trace-flags (Level 2): the rightmost 7 bytes of the trace id are random (§3.2.2.5.2).
pub const FLAG_RANDOM: u8 = 0x02;
/// Flags this implementation understands; any other bit is cleared before forwarding (§3.2.2.5).
pub const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

impl TraceId {
    /// True when every byte is zero (an invalid id).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
    /// Writes the 32 lowercase hex digits into `out`.
    pub fn write_hex(&self, out: &mut [u8; 32]) {
        hex_encode(&self.0, out);
    }
    /// The 32 lowercase hex digits as a `String`.
    pub fn to_hex(&self) -> String {
        let mut b = [0u8; 32];
        self.write_hex(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    }
}

impl SpanId {
    /// True when every byte is zero (an invalid id).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }
    /// Writes the 16 lowercase hex digits into `out`.
    pub fn write_hex(&self, out: &mut [u8; 16]) {
        hex_encode(&self.0, out);
    }
    /// The 16 lowercase hex digits as a `String`.
    pub fn to_hex(&self) -> String {
        let mut b = [0u8; 16];
        self.write_hex(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex digits, two per byte, into the start of `out`.
pub(crate) fn hex_encode(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

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
