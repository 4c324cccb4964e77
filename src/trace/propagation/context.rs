//! What the propagation formats read from a request: a [`RemoteContext`], or B3's sampling
//! decision alone ([`Extracted`]), or why a header was refused ([`InvalidContext`]).
//!
//! Shared by every format and by the dispatch in `super`; imports none of them.

use crate::trace::ids::{SpanId, TraceId, FLAG_RANDOM, FLAG_SAMPLED};
use std::fmt;

/// A trace context read from a request, in any format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteContext {
    /// 128 bits; a 64-bit id is left-padded with zeros.
    pub trace_id: TraceId,
    /// The caller's span: the parent of the span this hop creates.
    pub span_id: SpanId,
    /// The caller's sampling decision; `None` when it deferred it (B3 without a sampling state).
    pub sampled: Option<bool>,
    /// The W3C Level 2 random flag (`traceparent` only; the other formats make no such promise).
    pub random: bool,
}

impl RemoteContext {
    /// W3C trace-flags equivalent to this context: sampled and random bits.
    pub fn w3c_flags(&self) -> u8 {
        let sampled = if self.sampled == Some(true) {
            FLAG_SAMPLED
        } else {
            0
        };
        sampled | if self.random { FLAG_RANDOM } else { 0 }
    }
}

/// What a format carried: a context, or (B3 only) a sampling decision without ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extracted {
    /// A trace id, a span id and maybe a sampling decision.
    Context(RemoteContext),
    /// B3's sampling state sent on its own, without identifiers (`b3: 0`, `X-B3-Sampled: 0`
    /// alone; B3 README, "Single Header" > "Sampling State"): a decision for a trace the
    /// receiver starts.
    SamplingOnly(bool),
}

/// Why a header of a propagation format was refused (the request then ignores that format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidContext(pub &'static str);

impl fmt::Display for InvalidContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

pub(super) type Parsed<T> = Result<T, InvalidContext>;

pub(super) fn invalid<T>(why: &'static str) -> Parsed<T> {
    Err(InvalidContext(why))
}

/// Ids and contexts the format tests share.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    pub(crate) const TID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    pub(crate) const TID64: &str = "a3ce929d0e0e4736";
    pub(crate) const SID: &str = "e457b5a2e4d86bd1";
    pub(crate) const PSID: &str = "05e3ac9a4f6e3b90";

    pub(crate) fn ctx(trace_id: &str, span_id: &str, sampled: Option<bool>) -> Extracted {
        let mut t = [0u8; 16];
        let tv = u128::from_str_radix(trace_id, 16).unwrap();
        t.copy_from_slice(&tv.to_be_bytes());
        let s = u64::from_str_radix(span_id, 16).unwrap();
        Extracted::Context(RemoteContext {
            trace_id: TraceId(t),
            span_id: SpanId(s.to_be_bytes()),
            sampled,
            random: false,
        })
    }
}
