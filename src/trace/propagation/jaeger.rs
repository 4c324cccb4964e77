//! Jaeger's `uber-trace-id` header: parsing (the URL-encoded form too) and formatting.
//!
//! The format follows "Propagation Format" in the Jaeger client documentation
//! (<https://www.jaegertracing.io/docs/1.x/client-libraries/#propagation-format>).

use super::context::{invalid, InvalidContext, RemoteContext};
use super::hex::{hex_u128, span_id_from, trace_id_from};
use crate::trace::ids::{SpanId, TraceId};

/// Splits a Jaeger value at `:` or, in the URL-encoded form, at `%3A`/`%3a`.
fn jaeger_fields(v: &[u8]) -> Option<[&[u8]; 4]> {
    let mut out: [&[u8]; 4] = [&[]; 4];
    let mut n = 0;
    let mut rest = v;
    let encoded = !v.contains(&b':');
    loop {
        let (field, next) = if encoded {
            match rest
                .windows(3)
                .position(|w| w[0] == b'%' && w[1] == b'3' && w[2].eq_ignore_ascii_case(&b'a'))
            {
                Some(i) => (&rest[..i], Some(&rest[i + 3..])),
                None => (rest, None),
            }
        } else {
            match rest.iter().position(|&c| c == b':') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            }
        };
        if n == 4 {
            return None;
        }
        out[n] = field;
        n += 1;
        match next {
            Some(r) => rest = r,
            None => break,
        }
    }
    (n == 4).then_some(out)
}

/// Parses an `uber-trace-id` value: `{trace-id}:{span-id}:{parent-span-id}:{flags}` (Jaeger,
/// "Propagation Format"). Ids are hex of up to 32/16 digits, leading zeros may be left out;
/// the parent span id is deprecated (`0`) and not kept; flags bit `0x01` is sampled and bit
/// `0x02` debug, which implies sampled. The URL-encoded form with `%3A` separators, which some
/// clients send, is accepted too.
///
/// ```
/// use tracegate::trace::propagation::jaeger::parse_jaeger;
///
/// let c = parse_jaeger(b"a3ce929d0e0e4736:f067aa0ba902b7:0:1").unwrap();
/// assert_eq!(c.trace_id.to_hex(), "0000000000000000a3ce929d0e0e4736");
/// assert_eq!(c.span_id.to_hex(), "00f067aa0ba902b7");
/// assert_eq!(c.sampled, Some(true));
/// ```
pub fn parse_jaeger(value: &[u8]) -> Result<RemoteContext, InvalidContext> {
    let [t, s, p, f] =
        jaeger_fields(value.trim_ascii()).ok_or(InvalidContext("expected four fields"))?;
    let trace_id = trace_id_from(t, true)?;
    let span_id = span_id_from(s, true)?;
    if p.is_empty() || p.len() > 16 || hex_u128(p, true).is_none() {
        return invalid("parent span id is not hex");
    }
    if f.is_empty() || f.len() > 2 {
        return invalid("flags must be one byte");
    }
    let flags = hex_u128(f, true).ok_or(InvalidContext("flags are not hex"))? as u8;
    Ok(RemoteContext {
        trace_id,
        span_id,
        sampled: Some(flags & 0x03 != 0),
        random: false,
    })
}

/// The length of [`format_jaeger`]'s output.
pub const JAEGER_LEN: usize = 54;

/// `{32 hex trace id}:{16 hex span id}:0:{01|00}` (the parent span id is deprecated: `0`).
pub fn format_jaeger(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> [u8; 54] {
    let mut out = [b':'; JAEGER_LEN];
    let mut t = [0u8; 32];
    trace_id.write_hex(&mut t);
    out[..32].copy_from_slice(&t);
    let mut s = [0u8; 16];
    span_id.write_hex(&mut s);
    out[33..49].copy_from_slice(&s);
    out[50] = b'0';
    out[52] = b'0';
    out[53] = if sampled { b'1' } else { b'0' };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::propagation::context::fixtures::{ctx, PSID, SID, TID, TID64};
    use crate::trace::propagation::context::Extracted;

    #[test]
    fn jaeger_table() {
        let full = format!("{TID}:{SID}:0:1");
        let encoded = format!("{TID}%3A{SID}%3a0%3A1");
        let short = format!("{TID64}:{SID}:0:1");
        let unsampled = format!("{TID}:{SID}:{PSID}:0");
        let debug = format!("{TID}:{SID}:0:2");
        let two_digit_flags = format!("{TID}:{SID}:0:03");
        let upper = format!("{}:{SID}:0:1", TID.to_ascii_uppercase());
        let zero_trace = format!("0:{SID}:0:1");
        let zero_span = format!("{TID}:0:0:1");
        let three = format!("{TID}:{SID}:1");
        let five = format!("{TID}:{SID}:0:1:x");
        let long_trace = format!("1{TID}:{SID}:0:1");
        let long_span = format!("{TID}:1{SID}:0:1");
        let bad_flags = format!("{TID}:{SID}:0:100");
        let mixed = format!("{TID}:{SID}%3A0:1");
        // (value, expected, reason citing "Propagation Format" in the Jaeger client docs,
        // https://www.jaegertracing.io/docs/1.x/client-libraries/#propagation-format)
        let cases: Vec<(&str, Option<Extracted>, &str)> = vec![
            (
                &full,
                Some(ctx(TID, SID, Some(true))),
                "trace-id:span-id:parent-span-id:flags",
            ),
            (
                &encoded,
                Some(ctx(TID, SID, Some(true))),
                "URL-encoded ':' (%3A), as some clients send the value",
            ),
            (
                &short,
                Some(ctx(TID64, SID, Some(true))),
                "trace-id: 64 or 128 bits; shorter values are 0-padded on the left",
            ),
            (
                "f1:2:0:1",
                Some(ctx("f1", "2", Some(true))),
                "trace-id, span-id: variable length hex, 0-padded on the left",
            ),
            (
                &unsampled,
                Some(ctx(TID, SID, Some(false))),
                "flags bit 1 (0x01) clear: not sampled",
            ),
            (
                &debug,
                Some(ctx(TID, SID, Some(true))),
                "flags bit 2 (0x02): debug, implies sampled",
            ),
            (
                &two_digit_flags,
                Some(ctx(TID, SID, Some(true))),
                "flags: one byte bitmap as two hex digits",
            ),
            (
                &upper,
                Some(ctx(TID, SID, Some(true))),
                "base16: either case",
            ),
            (&zero_trace, None, "trace-id: 0 is invalid"),
            (&zero_span, None, "all-zero span id"),
            (
                &three,
                None,
                "{trace-id}:{span-id}:{parent-span-id}:{flags}: four fields",
            ),
            (&five, None, "four fields at most"),
            (&long_trace, None, "trace id of more than 128 bits"),
            (&long_span, None, "span id of more than 64 bits"),
            (&bad_flags, None, "flags: one byte"),
            (&mixed, None, "one separator style per value"),
            ("", None, "empty value"),
        ];
        for (v, want, why) in cases {
            let got = parse_jaeger(v.as_bytes()).ok().map(Extracted::Context);
            assert_eq!(got, want, "{why}: {v:?}");
        }
    }
}
