//! W3C Trace Context: parsing and formatting of `traceparent` and `tracestate`.
//!
//! Pure code with no I/O and no Pingora types, so any proxy (or test) can use it. The rules
//! follow W3C Trace Context Level 2 (<https://www.w3.org/TR/trace-context-2/>); each subtle rule
//! cites its section.

use crate::trace::ids::{hex_encode, SpanId, TraceId, KNOWN_FLAGS};
use std::fmt;

/// A parsed, valid `traceparent`, normalised for forwarding as version `00`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The caller's span id: the parent of the span this hop creates.
    pub parent_id: SpanId,
    /// Trace flags with unknown bits already cleared.
    pub flags: u8,
}

/// Why a `traceparent` value was rejected. Any of these restarts the trace (§3.2.2, §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceParentError {
    /// Shorter than 55 characters, or version 00 with a length other than 55.
    Length,
    /// A separator is not `-` where the format requires one.
    Separator,
    /// A field holds something other than lowercase hex digits.
    NotLowerHex,
    /// Version `ff` is forbidden (§3.2.2.2).
    ForbiddenVersion,
    /// The trace id is all zeros (§3.2.2.3).
    ZeroTraceId,
    /// The parent id is all zeros (§3.2.2.4).
    ZeroParentId,
    /// More than one `traceparent` header was received.
    Duplicate,
}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Length => "wrong length",
            Self::Separator => "bad separator",
            Self::NotLowerHex => "not lowercase hex",
            Self::ForbiddenVersion => "version ff is forbidden",
            Self::ZeroTraceId => "all-zero trace-id",
            Self::ZeroParentId => "all-zero parent-id",
            Self::Duplicate => "more than one traceparent header",
        })
    }
}

/// Parses one `traceparent` header value.
///
/// Version `00` must be exactly 55 characters. A higher version (not `ff`) is parsed with the
/// version-00 rules on its first 55 characters; anything after them must start with `-`
/// (§4.3, "versioning of traceparent"). Leading/trailing whitespace is not allowed by the ABNF
/// but optional whitespace around header values is stripped by HTTP itself, so it is trimmed here.
///
/// ```
/// use tracegate::trace::propagation::w3c::{
///     format_traceparent, parse_traceparent, TraceParentError,
/// };
///
/// let tp = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(tp.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(tp.parent_id.to_hex(), "00f067aa0ba902b7");
/// let out = format_traceparent(&tp.trace_id, &tp.parent_id, tp.flags);
/// assert_eq!(&out[..], b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
///
/// let zero = b"00-00000000000000000000000000000000-00f067aa0ba902b7-01";
/// assert_eq!(parse_traceparent(zero), Err(TraceParentError::ZeroTraceId));
/// ```
pub fn parse_traceparent(value: &[u8]) -> Result<TraceParent, TraceParentError> {
    let v = value.trim_ascii();
    if v.len() < 55 {
        return Err(TraceParentError::Length);
    }
    let version = hex_byte(&v[0..2]).ok_or(TraceParentError::NotLowerHex)?;
    if version == 0xff {
        return Err(TraceParentError::ForbiddenVersion);
    }
    if version == 0 && v.len() != 55 {
        return Err(TraceParentError::Length);
    }
    if v.len() > 55 && v[55] != b'-' {
        return Err(TraceParentError::Separator);
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(TraceParentError::Separator);
    }
    let mut trace_id = [0u8; 16];
    hex_decode(&v[3..35], &mut trace_id).ok_or(TraceParentError::NotLowerHex)?;
    let mut parent_id = [0u8; 8];
    hex_decode(&v[36..52], &mut parent_id).ok_or(TraceParentError::NotLowerHex)?;
    let flags = hex_byte(&v[53..55]).ok_or(TraceParentError::NotLowerHex)?;
    let trace_id = TraceId(trace_id);
    let parent_id = SpanId(parent_id);
    if trace_id.is_zero() {
        return Err(TraceParentError::ZeroTraceId);
    }
    if parent_id.is_zero() {
        return Err(TraceParentError::ZeroParentId);
    }
    Ok(TraceParent {
        trace_id,
        parent_id,
        // §3.2.2.5: a forwarder only propagates the flags it understands.
        flags: flags & KNOWN_FLAGS,
    })
}

/// Parses the `traceparent` header lines of one request. Two or more lines make the context
/// invalid, as a comma-joined value would not match the format (§3.2.1 header name, RFC 9110 §5.3).
pub fn parse_traceparent_lines<'a, I>(lines: I) -> Result<Option<TraceParent>, TraceParentError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut it = lines.into_iter();
    let Some(first) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(TraceParentError::Duplicate);
    }
    parse_traceparent(first).map(Some)
}

/// Formats a version-00 `traceparent` into a fixed 55-byte buffer (no allocation).
pub fn format_traceparent(trace_id: &TraceId, span_id: &SpanId, flags: u8) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    let mut t = [0u8; 32];
    trace_id.write_hex(&mut t);
    out[3..35].copy_from_slice(&t);
    let mut s = [0u8; 16];
    span_id.write_hex(&mut s);
    out[36..52].copy_from_slice(&s);
    hex_encode(&[flags], &mut out[53..55]);
    out
}

/// The maximum number of list members in `tracestate` (§3.3.2, tracestate Header Field Values).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// The longest `tracestate` key and value: `key = (lcalpha / DIGIT) 0*255(keychar)` and
/// `value = 0*255(chr) nblk-chr` (§3.3.2.2.1 Key, §3.3.2.2.2 Value).
const TRACESTATE_MAX_KEY: usize = 256;
const TRACESTATE_MAX_VALUE: usize = 256;

/// A validated `tracestate` value, ready to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceState(String);

impl TraceState {
    /// The header value to send.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a `tracestate` header was discarded as a whole. The spec lets a vendor either drop invalid
/// members or discard the entire header (§5.1.2, "If the `tracestate` header cannot be parsed
/// the vendor MAY discard the entire header"); the W3C conformance suite (`test/test.py`,
/// strict level 2) expects the header discarded, so one bad member invalidates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    /// A non-empty list member without `=`.
    MissingEquals,
    /// A key outside the grammar of §3.3.2.2.1: empty, longer than 256 characters, not
    /// starting with a lowercase letter or digit, or holding another character than
    /// `a-z 0-9 _ - * / @`.
    InvalidKey,
    /// A value outside the grammar of §3.3.2.2.2: empty, longer than 256 characters, ending
    /// in a space, or holding a character outside 0x20..=0x7E, or `,` or `=`.
    InvalidValue,
    /// More than 32 list members with distinct keys (§3.3.2).
    TooManyMembers,
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingEquals => "list member without '='",
            Self::InvalidKey => "invalid key",
            Self::InvalidValue => "invalid value",
            Self::TooManyMembers => "more than 32 list members",
        })
    }
}

/// Combines and validates the `tracestate` header lines of one request; `None` when the header
/// is absent, empty or invalid (see [`check_tracestate`]).
pub fn parse_tracestate<'a, I>(lines: I) -> Option<TraceState>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    check_tracestate(lines).ok().flatten()
}

/// Combines and validates the `tracestate` header lines of one request.
///
/// Multiple header lines are one comma-separated list (§3.3.2, RFC 9110 §5.3). Empty list
/// members and optional white space around members are allowed (§3.3.2). Every other member
/// must be `key "=" value` (§3.3.2.2); one that is not invalidates the whole header, which is
/// then discarded (`Err`), as are more than 32 members (§3.3.2). A member whose key was seen
/// earlier in the list is dropped (§3.3.3: a key appears once, the leftmost being the most
/// recent; §3.5: vendors MAY discard duplicate keys) and does not count towards the 32. When
/// nothing was dropped the value is forwarded as received, the lines joined with `,` (empty
/// lines and the white space around the whole value left out): tracegate adds no member of its
/// own, and the order of the members is kept (§3.5). `Ok(None)` when there is no member at all.
///
/// One pass over the bytes; each member is compared with at most 32 kept keys.
///
/// ```
/// use tracegate::trace::propagation::w3c::{check_tracestate, TraceStateError};
///
/// let ts = check_tracestate([&b"rojo=1"[..], b"congo=2"]).unwrap().unwrap();
/// assert_eq!(ts.as_str(), "rojo=1,congo=2");
/// assert_eq!(check_tracestate([&b"rojo=1,congo="[..]]), Err(TraceStateError::InvalidValue));
/// ```
pub fn check_tracestate<'a, I>(lines: I) -> Result<Option<TraceState>, TraceStateError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    // Kept members and the length of their keys; at most 32, so no allocation.
    let mut kept: [(&[u8], usize); TRACESTATE_MAX_MEMBERS] = [(&[], 0); TRACESTATE_MAX_MEMBERS];
    let mut n = 0;
    let mut dropped = false;
    // The lines joined with `,`: the value to forward when nothing is dropped.
    let mut joined: Vec<u8> = Vec::new();
    for line in lines {
        let line = trim_ows(line);
        if line.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(line);
        for member in line.split(|&b| b == b',') {
            let m = trim_ows(member);
            if m.is_empty() {
                continue;
            }
            let eq = m
                .iter()
                .position(|&b| b == b'=')
                .ok_or(TraceStateError::MissingEquals)?;
            let (key, value) = (&m[..eq], &m[eq + 1..]);
            if !valid_key(key) {
                return Err(TraceStateError::InvalidKey);
            }
            if !valid_value(value) {
                return Err(TraceStateError::InvalidValue);
            }
            if kept[..n].iter().any(|&(k, kl)| &k[..kl] == key) {
                dropped = true;
                continue;
            }
            if n == TRACESTATE_MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            kept[n] = (m, key.len());
            n += 1;
        }
    }
    if n == 0 {
        return Ok(None);
    }
    if !dropped {
        // Validated members are printable ASCII, and so is the OWS between them.
        return Ok(String::from_utf8(joined).ok().map(TraceState));
    }
    let mut out = String::with_capacity(joined.len());
    for (i, (m, _)) in kept[..n].iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(m).unwrap_or_default());
    }
    Ok(Some(TraceState(out)))
}

/// Joins the lines of a list-valued header with `,`, as one field value (RFC 9110 §5.3: a
/// recipient may combine field lines of the same name that way).
pub(crate) fn join_lines<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut joined: Vec<u8> = Vec::new();
    for line in lines {
        let line = trim_ows(line);
        if line.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(line);
    }
    joined
}

/// `b` without leading and trailing optional white space (spaces and tabs, RFC 9110 §5.6.3).
pub(crate) fn trim_ows(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// §3.3.2.2.1 (Level 2): `key = (lcalpha / DIGIT) 0*255(keychar)`, `keychar = lcalpha / DIGIT /
/// "_" / "-" / "*" / "/" / "@"`. Level 1's `tenant@system` split (241 + 14 characters) is gone:
/// `@` may appear anywhere but first, any number of times (`foo@`, `foo@@bar`, `a@b@c`), as the
/// W3C conformance suite checks.
fn valid_key(key: &[u8]) -> bool {
    fn keychar(c: u8) -> bool {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
    }
    match key.split_first() {
        Some((&first, rest)) => {
            key.len() <= TRACESTATE_MAX_KEY
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|&c| keychar(c))
        }
        None => false,
    }
}

/// §3.3.2.2.2: `value = 0*255(chr) nblk-chr`; `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`;
/// `chr = %x20 / nblk-chr` (no `,` or `=`, no trailing space).
fn valid_value(value: &[u8]) -> bool {
    fn nblk(c: u8) -> bool {
        matches!(c, 0x21..=0x2B | 0x2D..=0x3C | 0x3E..=0x7E)
    }
    !value.is_empty()
        && value.len() <= TRACESTATE_MAX_VALUE
        && nblk(value[value.len() - 1])
        && value.iter().all(|&c| c == 0x20 || nblk(c))
}

fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    Some(lower_hex_digit(two[0])? << 4 | lower_hex_digit(two[1])?)
}

fn hex_decode(src: &[u8], out: &mut [u8]) -> Option<()> {
    for (i, o) in out.iter_mut().enumerate() {
        *o = hex_byte(&src[2 * i..2 * i + 2])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PID: &str = "00f067aa0ba902b7";

    #[test]
    fn traceparent_table() {
        use TraceParentError::*;
        let long_future = format!("cc-{TID}-{PID}-01-what-the-future-holds");
        let cases: &[(&str, Result<u8, TraceParentError>, &str)] = &[
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Ok(0x01),
                "§3.2 canonical example, sampled",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Ok(0x00),
                "§3.2 not sampled",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                Ok(0x03),
                "§3.2.2.5.2 random flag is kept",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                Ok(0x03),
                "§3.2.2.5 unknown flag bits are cleared",
            ),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                Ok(0x01),
                "HTTP optional whitespace around the value",
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Ok(0x01),
                "§4.3 future version parsed with 00 rules",
            ),
            (
                &long_future,
                Ok(0x01),
                "§4.3 future version may carry more fields after '-'",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                Err(Length),
                "§3.2.2 version 00 is exactly 55 chars",
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                Err(Separator),
                "§4.3 extra data of a future version starts with '-'",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Err(ForbiddenVersion),
                "§3.2.2.2 version ff is invalid",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                Err(ZeroTraceId),
                "§3.2.2.3 all-zero trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                Err(ZeroParentId),
                "§3.2.2.4 all-zero parent-id",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                Err(NotLowerHex),
                "§3.2.2.3 uppercase hex is invalid",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                Err(NotLowerHex),
                "non-hex character in trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                Err(NotLowerHex),
                "non-hex character in parent-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                Err(NotLowerHex),
                "non-hex flags",
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Err(NotLowerHex),
                "non-hex version",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Err(Separator),
                "wrong separator after version",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                Err(Length),
                "flags missing",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
                Err(Length),
                "trace-id too short",
            ),
            ("", Err(Length), "empty value"),
        ];
        for (input, want, why) in cases {
            let got = parse_traceparent(input.as_bytes()).map(|tp| tp.flags);
            assert_eq!(&got, want, "{why}: {input:?}");
        }
    }

    #[test]
    fn traceparent_fields_and_roundtrip() {
        let tp = parse_traceparent(format!("00-{TID}-{PID}-01").as_bytes()).unwrap();
        assert_eq!(tp.trace_id.to_hex(), TID);
        assert_eq!(tp.parent_id.to_hex(), PID);
        let out = format_traceparent(&tp.trace_id, &tp.parent_id, tp.flags);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            format!("00-{TID}-{PID}-01")
        );
        // A future version is re-sent as 00 (§4.3): formatting always writes version 00.
        let fut = parse_traceparent(format!("42-{TID}-{PID}-09").as_bytes()).unwrap();
        let out = format_traceparent(&fut.trace_id, &fut.parent_id, fut.flags);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            format!("00-{TID}-{PID}-01")
        );
    }

    #[test]
    fn duplicate_traceparent_lines_are_invalid() {
        let a = format!("00-{TID}-{PID}-01");
        let lines = [a.as_bytes(), a.as_bytes()];
        assert_eq!(
            parse_traceparent_lines(lines),
            Err(TraceParentError::Duplicate)
        );
        assert_eq!(parse_traceparent_lines(std::iter::empty()), Ok(None));
        assert!(parse_traceparent_lines([a.as_bytes()]).unwrap().is_some());
    }

    /// Section numbers are those of W3C Trace Context Level 2; "suite" names the test of the
    /// W3C conformance suite (`test/test.py`, strict level 2) the row comes from.
    #[test]
    fn tracestate_table() {
        use TraceStateError::*;
        let bars = |from: usize, to: usize| -> String {
            (from..=to)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (b1, b2, b3, b4) = (bars(1, 10), bars(11, 20), bars(21, 30), bars(31, 32));
        let b4_33 = bars(31, 33);
        let all_32 = bars(1, 32);
        let all_32_dup = format!("{all_32},bar07=77");
        let key_256 = format!("{}=1", "z".repeat(256));
        let key_257 = format!("{}=1", "z".repeat(257));
        let key_241_14 = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
        let key_242_1 = format!("{}@v=1", "t".repeat(242));
        let key_1_15 = format!("t@{}=1", "v".repeat(15));
        let value_256 = format!("foo={}", "x".repeat(256));
        let value_257 = format!("foo={}", "x".repeat(257));
        let lc_key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let every_value_char: String = (0x20u8..=0x7e)
            .filter(|&c| c != b',' && c != b'=')
            .map(char::from)
            .collect();
        let all_chars = format!("{lc_key}={every_value_char}");
        let all_chars_at = format!("{lc_key}@a-z0-9_-*/={every_value_char}");
        let want_0 = format!("foo=1,{key_256}");
        let want_1 = format!("foo=1,{key_241_14}");
        let want_2 = format!("foo=1,{key_242_1}");
        let want_3 = format!("foo=1,{key_1_15}");
        let want_4 = format!("{b1},{b2},{b3},{b4}");
        type Row<'a> = (
            Vec<&'a str>,
            Result<Option<&'a str>, TraceStateError>,
            &'a str,
        );
        let cases: Vec<Row> = vec![
            // Valid headers: forwarded as received.
            (
                vec!["congo=t61rcWkgMzE"],
                Ok(Some("congo=t61rcWkgMzE")),
                "§3.3.4 single member",
            ),
            (
                vec!["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
                Ok(Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")),
                "§3.3.4 two members",
            ),
            (
                vec!["foo=1 \t , \t bar=2, \t baz=3"],
                Ok(Some("foo=1 \t , \t bar=2, \t baz=3")),
                "§3.3.2 OWS around members (suite: test_tracestate_ows_handling)",
            ),
            (
                vec!["\t foo=1 \t"],
                Ok(Some("foo=1")),
                "§3.3.2 OWS around the whole value is not part of it (suite: ows_handling)",
            ),
            (
                vec!["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
                Ok(Some("foo=1,bar=2,rojo=1,congo=2,baz=3")),
                "§3.3.2 header lines are combined in order (suite: multiple_headers_different_keys)",
            ),
            (
                vec!["rojo=1,,congo=2"],
                Ok(Some("rojo=1,,congo=2")),
                "§3.3.2 empty list members are allowed",
            ),
            (
                vec!["rojo=1, ,congo=2,"],
                Ok(Some("rojo=1, ,congo=2,")),
                "§3.3.2 whitespace-only and trailing empty members are allowed",
            ),
            (vec![""], Ok(None), "§3.3.2 an empty header is accepted and carries nothing (suite: empty_header)"),
            (vec![" \t ", ","], Ok(None), "§3.3.2 only empty members: nothing to forward"),
            (
                vec!["foo=1", ""],
                Ok(Some("foo=1")),
                "§3.3.2 an empty line after a member (suite: empty_header)",
            ),
            (
                vec!["", "foo=1"],
                Ok(Some("foo=1")),
                "§3.3.2 an empty line before a member (suite: empty_header)",
            ),
            (
                vec![all_chars.as_str()],
                Ok(Some(all_chars.as_str())),
                "§3.3.2.2 every allowed key and value character (suite: all_allowed_characters)",
            ),
            (
                vec![all_chars_at.as_str()],
                Ok(Some(all_chars_at.as_str())),
                "§3.3.2.2.1 the same with '@' and more after it (suite: all_allowed_characters)",
            ),
            (
                vec!["fw529a3039@dt=abc"],
                Ok(Some("fw529a3039@dt=abc")),
                "§3.3.2.2.1 tenant@system key",
            ),
            (
                vec!["foo@=1,bar=2"],
                Ok(Some("foo@=1,bar=2")),
                "§3.3.2.2.1 '@' may end a key (suite: key_illegal_vendor_format)",
            ),
            (
                vec!["foo@@bar=1,bar=2"],
                Ok(Some("foo@@bar=1,bar=2")),
                "§3.3.2.2.1 '@' twice in a row (suite: key_illegal_vendor_format)",
            ),
            (
                vec!["foo@bar@baz=1,bar=2"],
                Ok(Some("foo@bar@baz=1,bar=2")),
                "§3.3.2.2.1 '@' twice (suite: key_illegal_vendor_format)",
            ),
            (
                vec!["1abc=x", "a@1sys=y"],
                Ok(Some("1abc=x,a@1sys=y")),
                "§3.3.2.2.1 a key may start with a digit, and so may what follows '@'",
            ),
            (
                vec!["foo=1", key_256.as_str()],
                Ok(Some(want_0.as_str())),
                "§3.3.2.2.1 a key of 256 characters (suite: key_length_limit)",
            ),
            (
                vec!["foo=1", key_241_14.as_str()],
                Ok(Some(want_1.as_str())),
                "§3.3.2.2.1 241 + '@' + 14 characters (suite: key_length_limit)",
            ),
            (
                vec!["foo=1", key_242_1.as_str()],
                Ok(Some(want_2.as_str())),
                "§3.3.2.2.1 Level 2 has no 241-character tenant limit (suite: key_length_limit)",
            ),
            (
                vec!["foo=1", key_1_15.as_str()],
                Ok(Some(want_3.as_str())),
                "§3.3.2.2.1 Level 2 has no 14-character system limit (suite: key_length_limit)",
            ),
            (
                vec![value_256.as_str()],
                Ok(Some(value_256.as_str())),
                "§3.3.2.2.2 a value of 256 characters",
            ),
            (
                vec!["foo= 1"],
                Ok(Some("foo= 1")),
                "§3.3.2.2.2 leading spaces are part of the value",
            ),
            (
                vec!["foo=a b"],
                Ok(Some("foo=a b")),
                "§3.3.2.2.2 a space inside the value",
            ),
            (
                vec![&b1, &b2, &b3, &b4],
                Ok(Some(want_4.as_str())),
                "§3.3.2 exactly 32 members over 4 lines (suite: member_count_limit)",
            ),
            // Duplicate keys: the header is kept, later duplicates are dropped.
            (
                vec!["foo=1,foo=1"],
                Ok(Some("foo=1")),
                "§3.5 a duplicate key is dropped (suite: duplicated_keys)",
            ),
            (
                vec!["foo=1,foo=2"],
                Ok(Some("foo=1")),
                "§3.3.3 the leftmost is the most recent (suite: duplicated_keys)",
            ),
            (
                vec!["foo=1", "foo=2"],
                Ok(Some("foo=1")),
                "§3.3.3 duplicates across lines (suite: duplicated_keys)",
            ),
            (
                vec!["rojo=1 , congo=2,rojo=3"],
                Ok(Some("rojo=1,congo=2")),
                "§3.3.3 rewritten when a member is dropped: OWS is not kept",
            ),
            (
                vec![all_32_dup.as_str()],
                Ok(Some(all_32.as_str())),
                "§3.3.2 33 members of which one repeats a key: 32 distinct are kept",
            ),
            // Invalid headers: discarded whole (§5.1.2 step 3).
            (
                vec![&b1, &b2, &b3, &b4_33],
                Err(TooManyMembers),
                "§3.3.2 33 members discard the header (suite: member_count_limit)",
            ),
            (
                vec!["foo=1", key_257.as_str()],
                Err(InvalidKey),
                "§3.3.2.2.1 a key of 257 characters (suite: key_length_limit)",
            ),
            (
                vec!["@foo=1,bar=2"],
                Err(InvalidKey),
                "§3.3.2.2.1 a key starts with a letter or digit, not '@' (suite: key_illegal_vendor_format)",
            ),
            (
                vec!["foo =1"],
                Err(InvalidKey),
                "§3.3.2.2.1 space inside the member before '=' (suite: key_illegal_characters)",
            ),
            (
                vec!["FOO=1"],
                Err(InvalidKey),
                "§3.3.2.2.1 uppercase key (suite: key_illegal_characters)",
            ),
            (
                vec!["foo.bar=1"],
                Err(InvalidKey),
                "§3.3.2.2.1 '.' in a key (suite: key_illegal_characters)",
            ),
            (
                vec!["congo=2,Rojo=1"],
                Err(InvalidKey),
                "§5.1.2 one invalid member discards the valid ones too",
            ),
            (vec!["=1"], Err(InvalidKey), "§3.3.2.2.1 empty key"),
            (
                vec!["foo=bar=baz"],
                Err(InvalidValue),
                "§3.3.2.2.2 '=' in a value (suite: value_illegal_characters)",
            ),
            (
                vec!["foo=,bar=3"],
                Err(InvalidValue),
                "§3.3.2.2.2 empty value (suite: value_illegal_characters)",
            ),
            (
                vec![value_257.as_str()],
                Err(InvalidValue),
                "§3.3.2.2.2 a value of 257 characters",
            ),
            (
                vec!["foo=a\tb"],
                Err(InvalidValue),
                "§3.3.2.2.2 a tab inside a value",
            ),
            (
                vec!["foo=\u{e9}"],
                Err(InvalidValue),
                "§3.3.2.2.2 a non-ASCII value",
            ),
            (
                vec!["foo=a\u{7f}"],
                Err(InvalidValue),
                "§3.3.2.2.2 DEL is outside 0x20..=0x7E",
            ),
            (
                vec!["rojo=1,congo"],
                Err(MissingEquals),
                "§3.3.2.2 a member without '='",
            ),
            (
                vec!["rojo=1", "congo"],
                Err(MissingEquals),
                "§3.3.2 an invalid member on a later line discards the earlier lines too",
            ),
        ];
        for (lines, want, why) in &cases {
            let got = check_tracestate(lines.iter().map(|l| l.as_bytes()));
            let got = got
                .as_ref()
                .map(|t| t.as_ref().map(TraceState::as_str))
                .map_err(|e| *e);
            assert_eq!(got, *want, "{why}: {lines:?}");
            assert_eq!(
                parse_tracestate(lines.iter().map(|l| l.as_bytes())).is_some(),
                matches!(want, Ok(Some(_))),
                "{why}: parse_tracestate agrees"
            );
        }
    }

    #[test]
    fn tracestate_parsing_is_linear() {
        // 200,000 members: quadratic work (each member against every earlier one) would take
        // minutes; one pass with at most 32 comparisons each takes milliseconds.
        let dups = "k=1,".repeat(200_000);
        assert_eq!(
            check_tracestate([dups.as_bytes()])
                .unwrap()
                .unwrap()
                .as_str(),
            "k=1"
        );
        let many: String = (0..200_000).map(|i| format!("k{i}=1,")).collect();
        assert_eq!(
            check_tracestate([many.as_bytes()]),
            Err(TraceStateError::TooManyMembers)
        );
        let lines: Vec<&[u8]> = std::iter::repeat_n(&b"a=1"[..], 200_000).collect();
        assert_eq!(check_tracestate(lines).unwrap().unwrap().as_str(), "a=1");
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes() {
        // A cheap deterministic fuzz over lengths around the interesting boundaries.
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for len in 0..120 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF-=, @\t\xff\x00";
                        ALPHABET[(seed % ALPHABET.len() as u64) as usize]
                    })
                    .collect();
                if let Ok(tp) = parse_traceparent(&bytes) {
                    assert!(!tp.trace_id.is_zero() && !tp.parent_id.is_zero());
                    assert_eq!(tp.flags & !KNOWN_FLAGS, 0);
                }
                if let Some(ts) = parse_tracestate([bytes.as_slice()]) {
                    assert!(
                        ts.as_str()
                            .split(',')
                            .filter(|m| !m.trim().is_empty())
                            .count()
                            <= 32
                    );
                }
            }
        }
    }
}
