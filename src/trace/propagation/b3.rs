//! B3, Zipkin's propagation format: parsing and formatting of the single `b3` header and of the
//! `X-B3-*` multi headers.
//!
//! The format follows <https://github.com/openzipkin/b3-propagation> (README, "Single Header"
//! and "Multiple Headers").

use super::context::{invalid, Extracted, InvalidContext, Parsed, RemoteContext};
use super::hex::{span_id_from, trace_id_from};
use crate::trace::ids::{SpanId, TraceId};

/// B3 ids are 32 or 16 lower-hex characters (B3 README, "Multiple Headers" and "Single Header",
/// "TraceId" and "SpanId").
fn b3_trace_id(s: &[u8]) -> Parsed<TraceId> {
    if s.len() != 16 && s.len() != 32 {
        return invalid("B3 trace id must be 16 or 32 hex digits");
    }
    trace_id_from(s, false)
}

fn b3_span_id(s: &[u8]) -> Parsed<SpanId> {
    if s.len() != 16 {
        return invalid("B3 span id must be 16 hex digits");
    }
    span_id_from(s, false)
}

/// Parses one `b3` header value: `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`, or a
/// sampling state alone (`0`, `1`, `d`). `d` (debug) counts as sampled. The parent span id is
/// checked but not kept: this hop only needs the caller's span.
///
/// ```
/// use tracegate::trace::propagation::b3::parse_b3_single;
/// use tracegate::trace::propagation::Extracted;
///
/// let Extracted::Context(c) =
///     parse_b3_single(b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1").unwrap()
/// else { panic!() };
/// assert_eq!(c.span_id.to_hex(), "e457b5a2e4d86bd1");
/// assert_eq!(c.sampled, Some(true));
/// assert_eq!(parse_b3_single(b"0"), Ok(Extracted::SamplingOnly(false)));
/// ```
pub fn parse_b3_single(value: &[u8]) -> Result<Extracted, InvalidContext> {
    let v = value.trim_ascii();
    if v.len() == 1 {
        return b3_sampling_state(v).map(Extracted::SamplingOnly);
    }
    let mut parts = v.split(|&c| c == b'-');
    let trace_id = b3_trace_id(parts.next().unwrap_or_default())?;
    let span_id = b3_span_id(parts.next().ok_or(InvalidContext("no span id"))?)?;
    let sampled = match parts.next() {
        None => None,
        Some(s) => Some(b3_sampling_state(s)?),
    };
    if let Some(parent) = parts.next() {
        b3_span_id(parent)?;
    }
    if parts.next().is_some() {
        return invalid("more than four fields");
    }
    Ok(Extracted::Context(RemoteContext {
        trace_id,
        span_id,
        sampled,
        random: false,
    }))
}

/// B3 README, "Single Header" > "Sampling State": `1` (accept), `0` (deny) or `d` (debug, which
/// "implies accept", "Sampling State").
fn b3_sampling_state(s: &[u8]) -> Parsed<bool> {
    match s {
        b"1" | b"d" => Ok(true),
        b"0" => Ok(false),
        _ => invalid("B3 sampling state must be 0, 1 or d"),
    }
}

/// The values of the B3 multi headers of one request (each header at most once).
#[derive(Clone, Copy, Debug, Default)]
pub struct B3MultiHeaders<'a> {
    pub trace_id: Option<&'a [u8]>,
    pub span_id: Option<&'a [u8]>,
    pub parent_span_id: Option<&'a [u8]>,
    pub sampled: Option<&'a [u8]>,
    pub flags: Option<&'a [u8]>,
}

/// Parses the B3 multi headers. `Ok(None)`: none of them was sent. `X-B3-Sampled` is `1`/`0`
/// (and, leniently, `true`/`false` from older tracers: B3 README, "Multiple Headers" >
/// "Sampling State"); `X-B3-Flags: 1` is debug, which implies sampled ("Debug Flag"). Of a
/// header sent twice, the first value counts ("Multiple Headers"). A sampling decision without ids is
/// [`Extracted::SamplingOnly`]; ids without each other are refused.
pub fn parse_b3_multi(h: &B3MultiHeaders<'_>) -> Result<Option<Extracted>, InvalidContext> {
    let debug = match h.flags.map(<[u8]>::trim_ascii) {
        None => false,
        Some(b"1") => true,
        Some(_) => return invalid("X-B3-Flags must be 1"),
    };
    let sampled = match h.sampled.map(<[u8]>::trim_ascii) {
        None => None,
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        Some(_) => return invalid("X-B3-Sampled must be 1 or 0"),
    };
    // "Debug implies an accept decision" (B3 README, "Multiple Headers" > "Debug Flag").
    let sampled = if debug { Some(true) } else { sampled };
    match (h.trace_id, h.span_id) {
        (None, None) => Ok(sampled.map(Extracted::SamplingOnly)),
        (Some(t), Some(s)) => {
            let trace_id = b3_trace_id(t.trim_ascii())?;
            let span_id = b3_span_id(s.trim_ascii())?;
            if let Some(p) = h.parent_span_id {
                b3_span_id(p.trim_ascii())?;
            }
            Ok(Some(Extracted::Context(RemoteContext {
                trace_id,
                span_id,
                sampled,
                random: false,
            })))
        }
        _ => invalid("X-B3-TraceId and X-B3-SpanId must be sent together"),
    }
}

/// The length of [`format_b3_single`]'s output.
pub const B3_SINGLE_LEN: usize = 51;

/// `{32 hex trace id}-{16 hex span id}-{1|0}`: tracegate always decides, so it never defers
/// the decision and never sends `d`.
pub fn format_b3_single(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> [u8; 51] {
    let mut out = [b'-'; B3_SINGLE_LEN];
    let mut t = [0u8; 32];
    trace_id.write_hex(&mut t);
    out[..32].copy_from_slice(&t);
    let mut s = [0u8; 16];
    span_id.write_hex(&mut s);
    out[33..49].copy_from_slice(&s);
    out[50] = if sampled { b'1' } else { b'0' };
    out
}

/// The values of the B3 multi headers tracegate sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B3MultiValues {
    /// `X-B3-TraceId`: 32 lower-hex digits.
    pub trace_id: [u8; 32],
    /// `X-B3-SpanId`: 16 lower-hex digits.
    pub span_id: [u8; 16],
    /// `X-B3-Sampled`: `1` or `0`.
    pub sampled: &'static [u8],
}

/// The B3 multi header values for a context.
pub fn format_b3_multi(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> B3MultiValues {
    let mut v = B3MultiValues {
        trace_id: [0; 32],
        span_id: [0; 16],
        sampled: if sampled { b"1" } else { b"0" },
    };
    trace_id.write_hex(&mut v.trace_id);
    span_id.write_hex(&mut v.span_id);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::propagation::context::fixtures::{ctx, PSID, SID, TID, TID64};

    #[test]
    fn b3_single_table() {
        let full = format!("{TID}-{SID}-1-{PSID}");
        let deferred = format!("{TID}-{SID}");
        let debug = format!("{TID}-{SID}-d");
        let deny = format!("{TID}-{SID}-0");
        let short = format!("{TID64}-{SID}-1");
        let upper = format!("{}-{SID}-1", TID.to_ascii_uppercase());
        let zero_trace = format!("{}-{SID}-1", "0".repeat(32));
        let zero_span = format!("{TID}-{}-1", "0".repeat(16));
        let bad_state = format!("{TID}-{SID}-2");
        let too_many = format!("{TID}-{SID}-1-{PSID}-x");
        let bad_parent = format!("{TID}-{SID}-1-123");
        let tid_24 = format!("{}-{SID}-1", &TID[..24]);
        // (value, expected, reason citing github.com/openzipkin/b3-propagation README, "Single
        // Header" and its subsections)
        let cases: Vec<(&str, Option<Extracted>, &str)> = vec![
            (
                &full,
                Some(ctx(TID, SID, Some(true))),
                "\"Single Header\": all four fields",
            ),
            (
                &deferred,
                Some(ctx(TID, SID, None)),
                "\"Sampling State\": Defer is absence of the sampling field",
            ),
            (
                &debug,
                Some(ctx(TID, SID, Some(true))),
                "\"Sampling State\": Debug d, which implies accept",
            ),
            (
                &deny,
                Some(ctx(TID, SID, Some(false))),
                "\"Sampling State\": Deny 0",
            ),
            (
                &short,
                Some(ctx(TID64, SID, Some(true))),
                "\"TraceId\": 32 or 16 lower-hex; 64 bits are left-padded to 128",
            ),
            (
                "0",
                Some(Extracted::SamplingOnly(false)),
                "\"Sampling State\": can be sent on its own: deny",
            ),
            (
                "1",
                Some(Extracted::SamplingOnly(true)),
                "\"Sampling State\": on its own: accept",
            ),
            (
                "d",
                Some(Extracted::SamplingOnly(true)),
                "\"Sampling State\": on its own: debug",
            ),
            ("2", None, "\"Sampling State\": only 1, 0 and d"),
            (&upper, None, "\"TraceId\": lower-hex encoded"),
            (
                &zero_trace,
                None,
                "\"TraceId\": an all-zero id identifies nothing",
            ),
            (
                &zero_span,
                None,
                "\"SpanId\": an all-zero id identifies nothing",
            ),
            (&bad_state, None, "\"Sampling State\": a single character"),
            (
                &too_many,
                None,
                "{TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}: four fields at most",
            ),
            (
                &bad_parent,
                None,
                "\"ParentSpanId\": 16 lower-hex characters when present",
            ),
            (
                &tid_24,
                None,
                "\"TraceId\": 32 or 16 characters, nothing between",
            ),
            (
                TID,
                None,
                "\"SpanId\": required unless only the sampling state is sent",
            ),
            ("", None, "empty value"),
        ];
        for (v, want, why) in cases {
            assert_eq!(parse_b3_single(v.as_bytes()).ok(), want, "{why}: {v:?}");
        }
    }

    #[test]
    fn b3_multi_table() {
        let h = |t: Option<&'static str>,
                 s: Option<&'static str>,
                 sampled: Option<&'static str>,
                 flags: Option<&'static str>| B3MultiHeaders {
            trace_id: t.map(str::as_bytes),
            span_id: s.map(str::as_bytes),
            parent_span_id: None,
            sampled: sampled.map(str::as_bytes),
            flags: flags.map(str::as_bytes),
        };
        // (headers, expected: Ok(Some) context, Ok(None) absent, Err invalid, reason citing the
        // openzipkin/b3-propagation README, "Multiple Headers" and its subsections)
        type Want = Result<Option<Extracted>, ()>;
        let cases: Vec<(B3MultiHeaders, Want, &str)> = vec![
            (
                h(Some(TID), Some(SID), Some("1"), None),
                Ok(Some(ctx(TID, SID, Some(true)))),
                "\"Sampling State\": accept is X-B3-Sampled: 1",
            ),
            (
                h(Some(TID), Some(SID), Some("0"), None),
                Ok(Some(ctx(TID, SID, Some(false)))),
                "\"Sampling State\": deny is 0",
            ),
            (
                h(Some(TID), Some(SID), Some("true"), None),
                Ok(Some(ctx(TID, SID, Some(true)))),
                "\"Sampling State\": a lenient implementation may accept true",
            ),
            (
                h(Some(TID), Some(SID), Some("false"), None),
                Ok(Some(ctx(TID, SID, Some(false)))),
                "\"Sampling State\": false likewise",
            ),
            (
                h(Some(TID), Some(SID), None, None),
                Ok(Some(ctx(TID, SID, None))),
                "\"Sampling State\": absent means defer",
            ),
            (
                h(Some(TID), Some(SID), Some("0"), Some("1")),
                Ok(Some(ctx(TID, SID, Some(true)))),
                "\"Debug Flag\": debug implies accept",
            ),
            (
                h(Some(TID64), Some(SID), Some("1"), None),
                Ok(Some(ctx(TID64, SID, Some(true)))),
                "\"TraceId\": 16 characters, left-padded to 128 bits",
            ),
            (
                h(None, None, Some("0"), None),
                Ok(Some(Extracted::SamplingOnly(false))),
                "FAQ: valid to propagate only a reject decision",
            ),
            (h(None, None, None, None), Ok(None), "nothing sent"),
            (
                h(Some(TID), None, Some("1"), None),
                Err(()),
                "\"SpanId\": required with a TraceId",
            ),
            (
                h(Some(TID), Some(SID), Some("yes"), None),
                Err(()),
                "\"Sampling State\": not 1/0",
            ),
            (
                h(Some(TID), Some(SID), None, Some("2")),
                Err(()),
                "\"Debug Flag\": only 1",
            ),
            (
                h(Some("0000000000000000"), Some(SID), None, None),
                Err(()),
                "\"TraceId\": all-zero",
            ),
        ];
        for (headers, want, why) in cases {
            assert_eq!(parse_b3_multi(&headers).map_err(|_| ()), want, "{why}");
        }
    }
}
