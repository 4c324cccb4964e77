//! Trace-context propagation formats other than plain W3C parsing: which formats a proxy reads and
//! writes (`telemetry.propagators`, `OTEL_PROPAGATORS`), the B3 (single and multi header) and
//! Jaeger parsers and formatters, W3C Baggage validation, and the header edits for the request
//! that goes upstream.
//!
//! Pure code on `http` types only (no Pingora), like [`w3c`], which it uses for
//! `traceparent`/`tracestate`. The names are OpenTelemetry's (SDK environment variables,
//! `OTEL_PROPAGATORS`). The formats follow:
//! - B3: <https://github.com/openzipkin/b3-propagation> (README, "Single Header" and
//!   "Multiple Headers");
//! - Jaeger: "Propagation Format" in the Jaeger client documentation
//!   (<https://www.jaegertracing.io/docs/1.x/client-libraries/#propagation-format>);
//! - W3C Baggage: <https://www.w3.org/TR/baggage/>, §3 "The baggage HTTP Header Format".
//!
//! Extraction reads the configured formats in the configured order; the first one present and
//! valid gives the incoming context ([`extract`]). Injection ([`upstream_edits`]) replaces the
//! headers of every configured format and leaves the headers of formats that are not configured
//! exactly as the client sent them.

pub mod w3c;

use super::ids::{SpanId, TraceId, FLAG_RANDOM, FLAG_SAMPLED};
use http::{HeaderMap, HeaderName};
use std::fmt;
use w3c::{join_lines, parse_traceparent_lines, trim_ows, TraceParentError};

/// The `traceparent` header name (W3C Trace Context).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` header name (W3C Trace Context).
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// The `baggage` header name (W3C Baggage §3, "Header Name").
pub static BAGGAGE: HeaderName = HeaderName::from_static("baggage");
/// The B3 single header.
pub static B3: HeaderName = HeaderName::from_static("b3");
/// B3 multi: the trace id.
pub static X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// B3 multi: the span id.
pub static X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// B3 multi: the parent span id (never sent by tracegate, removed when `b3multi` is injected).
pub static X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// B3 multi: the sampling decision.
pub static X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// B3 multi: `1` means debug (never sent by tracegate, removed when `b3multi` is injected).
pub static X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
/// The Jaeger header.
pub static UBER_TRACE_ID: HeaderName = HeaderName::from_static("uber-trace-id");

/// One propagation format, by its `OTEL_PROPAGATORS` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Propagator {
    /// `tracecontext`: W3C `traceparent` + `tracestate`.
    TraceContext,
    /// `baggage`: W3C `baggage`, forwarded from trusted clients.
    Baggage,
    /// `b3`: the B3 single header `b3`.
    B3,
    /// `b3multi`: the `X-B3-*` headers.
    B3Multi,
    /// `jaeger`: `uber-trace-id`.
    Jaeger,
}

/// The names [`Propagator::from_name`] accepts, for error messages.
pub const PROPAGATOR_NAMES: &str = "tracecontext, baggage, b3, b3multi, jaeger or none";

impl Propagator {
    /// Every format, in the order of the enum.
    pub const ALL: [Propagator; 5] = [
        Propagator::TraceContext,
        Propagator::Baggage,
        Propagator::B3,
        Propagator::B3Multi,
        Propagator::Jaeger,
    ];

    /// The OpenTelemetry name (`OTEL_PROPAGATORS` value).
    pub fn name(self) -> &'static str {
        match self {
            Propagator::TraceContext => "tracecontext",
            Propagator::Baggage => "baggage",
            Propagator::B3 => "b3",
            Propagator::B3Multi => "b3multi",
            Propagator::Jaeger => "jaeger",
        }
    }

    /// The format called `name`, after trimming whitespace. Names are case-sensitive, as in
    /// the OpenTelemetry SDK configuration spec. `none` is not a format: see
    /// [`Propagators::from_names`].
    pub fn from_name(name: &str) -> Result<Propagator, String> {
        let name = name.trim();
        if let Some(p) = Propagator::ALL.into_iter().find(|p| p.name() == name) {
            return Ok(p);
        }
        Err(match name {
            "" => "empty propagator name".to_owned(),
            "xray" | "ottrace" | "xray-lambda" => format!(
                "propagator {name:?} is not supported by tracegate; expected {PROPAGATOR_NAMES}"
            ),
            _ if Propagator::ALL
                .iter()
                .any(|p| p.name().eq_ignore_ascii_case(name)) =>
            {
                format!(
                    "unknown propagator {name:?}: names are case-sensitive (write {:?})",
                    name.to_ascii_lowercase()
                )
            }
            _ => format!("unknown propagator {name:?}: expected {PROPAGATOR_NAMES}"),
        })
    }
}

/// An ordered set of formats, without duplicates: the order in which incoming formats are
/// tried. Copy and allocation-free, so a request can keep its own.
#[derive(Clone, Copy)]
pub struct Propagators {
    items: [Propagator; 5],
    len: u8,
}

/// A refused list of propagator names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropagatorsError {
    /// The position of the offending name in the list, when one name is at fault.
    pub index: Option<usize>,
    /// Why it was refused.
    pub reason: String,
}

impl fmt::Display for PropagatorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Default for Propagators {
    /// `tracecontext,baggage`, the OpenTelemetry SDK default for `OTEL_PROPAGATORS`.
    fn default() -> Self {
        let mut p = Propagators::none();
        p.push(Propagator::TraceContext);
        p.push(Propagator::Baggage);
        p
    }
}

impl Propagators {
    /// No format: nothing is read, nothing is written (`none`).
    pub fn none() -> Self {
        Propagators {
            items: [Propagator::TraceContext; 5],
            len: 0,
        }
    }

    /// Parses a list of `OTEL_PROPAGATORS` names. Each is trimmed; a name given twice counts
    /// once, at its first position. `none` means no format and must be the only name.
    pub fn from_names<'a, I>(names: I) -> Result<Propagators, PropagatorsError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut out = Propagators::none();
        let mut saw_none = None;
        let mut count = 0;
        for (i, name) in names.into_iter().enumerate() {
            count += 1;
            if name.trim() == "none" {
                saw_none = Some(i);
                continue;
            }
            let p = Propagator::from_name(name).map_err(|reason| PropagatorsError {
                index: Some(i),
                reason,
            })?;
            out.push(p);
        }
        if count == 0 {
            return Err(PropagatorsError {
                index: None,
                reason: format!("no propagator given: expected {PROPAGATOR_NAMES}"),
            });
        }
        if let Some(i) = saw_none {
            if !out.is_empty() {
                return Err(PropagatorsError {
                    index: Some(i),
                    reason: "none cannot be combined with other propagators".to_owned(),
                });
            }
        }
        Ok(out)
    }

    fn push(&mut self, p: Propagator) {
        if !self.contains(p) {
            self.items[usize::from(self.len)] = p;
            self.len += 1;
        }
    }

    /// The formats, in order.
    pub fn as_slice(&self) -> &[Propagator] {
        &self.items[..usize::from(self.len)]
    }

    /// True when `p` is configured.
    pub fn contains(&self, p: Propagator) -> bool {
        self.as_slice().contains(&p)
    }

    /// True when no format is configured (`none`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for Propagators {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Propagators {}

impl fmt::Debug for Propagators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl fmt::Display for Propagators {
    /// The `OTEL_PROPAGATORS` spelling: `tracecontext,baggage`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, p) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(p.name())?;
        }
        Ok(())
    }
}

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

type Parsed<T> = Result<T, InvalidContext>;

fn invalid<T>(why: &'static str) -> Parsed<T> {
    Err(InvalidContext(why))
}

fn hex_digit(c: u8, upper_ok: bool) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if upper_ok => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Up to 32 hex digits as a 128-bit big-endian id, left-padded with zeros.
fn hex_u128(s: &[u8], upper_ok: bool) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for &c in s {
        v = v << 4 | u128::from(hex_digit(c, upper_ok)?);
    }
    Some(v)
}

fn trace_id_from(s: &[u8], upper_ok: bool) -> Parsed<TraceId> {
    let v = hex_u128(s, upper_ok).ok_or(InvalidContext("trace id is not 1 to 32 hex digits"))?;
    let id = TraceId(v.to_be_bytes());
    if id.is_zero() {
        return invalid("all-zero trace id");
    }
    Ok(id)
}

fn span_id_from(s: &[u8], upper_ok: bool) -> Parsed<SpanId> {
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
/// use tracegate::trace::propagation::{parse_b3_single, Extracted};
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
/// use tracegate::trace::propagation::parse_jaeger;
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

/// The length of [`format_b3_single`]'s output.
pub const B3_SINGLE_LEN: usize = 51;
/// The length of [`format_jaeger`]'s output.
pub const JAEGER_LEN: usize = 54;

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

/// W3C Baggage §3, "Limits": a platform must propagate at least 64 list-members. tracegate
/// forwards at most that many; "Mutating baggage" allows dropping entries beyond the limits.
pub const BAGGAGE_MAX_MEMBERS: usize = 64;
/// W3C Baggage §3, "Limits": a platform must propagate a baggage-string of at least 8192 bytes.
/// tracegate forwards at most that many, dropping the members that do not fit.
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// A validated `baggage` value, ready to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baggage(Box<str>);

impl Baggage {
    /// The header value to send.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 9110 §5.6.2 `tchar` (a W3C Baggage key is a `token`, §3 "key").
fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// W3C Baggage §3 "Definition", `baggage-octet`: printable US-ASCII except `"`, `,`, `;`, `\`.
fn baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// `key OWS "=" OWS value` (value may be empty), or with `value_required` false also `key`
/// alone (a property, W3C Baggage §3 "property").
fn valid_pair(b: &[u8], value_required: bool) -> bool {
    let (key, value) = match b.iter().position(|&c| c == b'=') {
        Some(eq) => (trim_ows(&b[..eq]), Some(trim_ows(&b[eq + 1..]))),
        None => (trim_ows(b), None),
    };
    if key.is_empty() || !key.iter().all(|&c| tchar(c)) {
        return false;
    }
    match value {
        Some(v) => v.iter().all(|&c| baggage_octet(c)),
        None => !value_required,
    }
}

/// W3C Baggage §3 "Definition": `list-member = key OWS "=" OWS value *( OWS ";" OWS property )`.
fn valid_member(m: &[u8]) -> bool {
    let mut parts = m.split(|&c| c == b';');
    valid_pair(parts.next().unwrap_or_default(), true) && parts.all(|p| valid_pair(p, false))
}

/// Combines and validates the `baggage` header lines of one request (W3C Baggage §3).
///
/// Lines are joined as one comma-separated list (multiple `baggage` headers are allowed).
/// Invalid list-members are dropped, as are empty ones ("Mutating baggage": an entry not in the
/// format MAY be removed); at most [`BAGGAGE_MAX_MEMBERS`] are kept and the result is at most
/// [`BAGGAGE_MAX_BYTES`] long, dropping members that do not fit ("Limits"). When
/// nothing had to change the value is forwarded byte for byte. Values are not decoded: the
/// proxy passes baggage through and adds nothing. `None` when no valid member is left.
pub fn parse_baggage<'a, I>(lines: I) -> Option<Baggage>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let joined = join_lines(lines);
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut changed = false;
    for member in joined.split(|&c| c == b',') {
        let m = trim_ows(member);
        if m.is_empty() || !valid_member(m) {
            changed = true;
            continue;
        }
        if kept.len() == BAGGAGE_MAX_MEMBERS {
            changed = true;
            break;
        }
        kept.push(m);
    }
    if kept.is_empty() {
        return None;
    }
    let joined = trim_ows(&joined);
    if !changed && joined.len() <= BAGGAGE_MAX_BYTES {
        // Valid members are ASCII, and so is the OWS between them.
        return std::str::from_utf8(joined).ok().map(|s| Baggage(s.into()));
    }
    let mut out = String::with_capacity(joined.len().min(BAGGAGE_MAX_BYTES));
    for m in kept {
        let extra = m.len() + usize::from(!out.is_empty());
        if out.len() + extra > BAGGAGE_MAX_BYTES {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(m).unwrap_or_default());
    }
    (!out.is_empty()).then(|| Baggage(out.into_boxed_str()))
}

/// What [`extract`] found in a request's headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extraction {
    /// The first format, in the configured order, whose headers were present and valid, with
    /// what they carried.
    pub found: Option<(Propagator, Extracted)>,
    /// Why an incoming `traceparent` was refused, when it was read and found invalid.
    pub invalid_traceparent: Option<TraceParentError>,
}

/// The value of a header sent at most once: two lines make the format invalid, as for
/// `traceparent` (a joined value would not match the format).
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Parsed<Option<&'h [u8]>> {
    let mut it = headers.get_all(name).iter();
    let first = it.next().map(|v| v.as_bytes());
    if it.next().is_some() {
        return invalid("header sent more than once");
    }
    Ok(first)
}

/// The first value of a B3 multi header: "When extracting state headers, the first value
/// wins" (B3 README, "Multiple Headers").
fn first<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// Reads one format's context from `headers`: `Ok(None)` when its headers are absent.
fn extract_one(p: Propagator, headers: &HeaderMap) -> Parsed<Option<Extracted>> {
    match p {
        Propagator::TraceContext | Propagator::Baggage => Ok(None),
        Propagator::B3 => match single(headers, &B3)? {
            None => Ok(None),
            Some(v) => parse_b3_single(v).map(Some),
        },
        Propagator::B3Multi => parse_b3_multi(&B3MultiHeaders {
            trace_id: first(headers, &X_B3_TRACEID),
            span_id: first(headers, &X_B3_SPANID),
            parent_span_id: first(headers, &X_B3_PARENTSPANID),
            sampled: first(headers, &X_B3_SAMPLED),
            flags: first(headers, &X_B3_FLAGS),
        }),
        Propagator::Jaeger => match single(headers, &UBER_TRACE_ID)? {
            None => Ok(None),
            Some(v) => parse_jaeger(v).map(|c| Some(Extracted::Context(c))),
        },
    }
}

/// Reads the incoming context: the configured formats are tried in order and the first one
/// present and valid wins; later formats are not read. An invalid format is skipped (an invalid
/// `traceparent` is reported in [`Extraction::invalid_traceparent`]). Baggage carries no trace
/// context; read it with [`parse_baggage`]. Allocates nothing.
pub fn extract(propagators: &Propagators, headers: &HeaderMap) -> Extraction {
    let mut out = Extraction::default();
    for &p in propagators.as_slice() {
        let found = if p == Propagator::TraceContext {
            let lines = headers.get_all(&TRACEPARENT).iter().map(|v| v.as_bytes());
            match parse_traceparent_lines(lines) {
                Ok(None) => None,
                Ok(Some(tp)) => Some(Extracted::Context(RemoteContext {
                    trace_id: tp.trace_id,
                    span_id: tp.parent_id,
                    sampled: Some(tp.flags & FLAG_SAMPLED != 0),
                    random: tp.flags & FLAG_RANDOM != 0,
                })),
                Err(e) => {
                    out.invalid_traceparent = Some(e);
                    None
                }
            }
        } else {
            extract_one(p, headers).ok().flatten()
        };
        if let Some(f) = found {
            out.found = Some((p, f));
            break;
        }
    }
    out
}

/// The context a request sends upstream.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    pub trace_id: TraceId,
    /// The span upstream services see as their parent (the CLIENT span of the attempt).
    pub span_id: SpanId,
    /// W3C trace-flags; bit 0 is the sampled decision every format carries.
    pub flags: u8,
    /// Forwarded with `traceparent` only.
    pub tracestate: Option<&'a str>,
    /// Forwarded when `baggage` is configured.
    pub baggage: Option<&'a str>,
}

/// The header changes for the request going upstream, one call of `edit` per header:
/// `Some(value)` replaces every value of that header, `None` removes it. For each configured
/// format, in order, the client's headers of that format are replaced by this hop's context;
/// headers of formats that are not configured are left as they are. Values are formatted into
/// stack buffers: nothing is allocated here, and nothing is formatted for formats that are not
/// configured.
pub fn upstream_edits(
    propagators: &Propagators,
    out: &Outgoing<'_>,
    mut edit: impl FnMut(&'static HeaderName, Option<&[u8]>),
) {
    let sampled = out.flags & FLAG_SAMPLED != 0;
    for &p in propagators.as_slice() {
        match p {
            Propagator::TraceContext => {
                let tp = w3c::format_traceparent(&out.trace_id, &out.span_id, out.flags);
                edit(&TRACEPARENT, Some(&tp));
                edit(&TRACESTATE, out.tracestate.map(str::as_bytes));
            }
            Propagator::Baggage => edit(&BAGGAGE, out.baggage.map(str::as_bytes)),
            Propagator::B3 => {
                edit(
                    &B3,
                    Some(&format_b3_single(&out.trace_id, &out.span_id, sampled)),
                );
            }
            Propagator::B3Multi => {
                let v = format_b3_multi(&out.trace_id, &out.span_id, sampled);
                edit(&X_B3_TRACEID, Some(&v.trace_id));
                edit(&X_B3_SPANID, Some(&v.span_id));
                edit(&X_B3_SAMPLED, Some(v.sampled));
                edit(&X_B3_PARENTSPANID, None);
                edit(&X_B3_FLAGS, None);
            }
            Propagator::Jaeger => {
                edit(
                    &UBER_TRACE_ID,
                    Some(&format_jaeger(&out.trace_id, &out.span_id, sampled)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::propagation::w3c::parse_traceparent;

    const TID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const TID64: &str = "a3ce929d0e0e4736";
    const SID: &str = "e457b5a2e4d86bd1";
    const PSID: &str = "05e3ac9a4f6e3b90";

    fn ctx(trace_id: &str, span_id: &str, sampled: Option<bool>) -> Extracted {
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

    #[test]
    fn propagator_names_table() {
        // (names, Ok(formats) or Err(words in the reason), reason for the case)
        use Propagator::*;
        type Case<'a> = (&'a [&'a str], Result<&'a [Propagator], &'a str>, &'a str);
        let cases: &[Case] = &[
            (
                &["tracecontext", "baggage"],
                Ok(&[TraceContext, Baggage]),
                "the OTel SDK default",
            ),
            (
                &["b3", "tracecontext"],
                Ok(&[B3, TraceContext]),
                "order is kept: it is the extraction order",
            ),
            (
                &[" jaeger ", "b3multi"],
                Ok(&[Jaeger, B3Multi]),
                "names are trimmed",
            ),
            (
                &["b3", "tracecontext", "b3"],
                Ok(&[B3, TraceContext]),
                "a repeated name counts once, at its first place",
            ),
            (&["none"], Ok(&[]), "none: nothing read or written"),
            (
                &["none", "b3"],
                Err("cannot be combined"),
                "none with others is a contradiction",
            ),
            (
                &["TraceContext"],
                Err("case-sensitive"),
                "OTel SDK config: values are case-sensitive",
            ),
            (
                &["xray"],
                Err("not supported"),
                "a known OTel name this proxy does not implement",
            ),
            (
                &["ottrace"],
                Err("not supported"),
                "a known OTel name this proxy does not implement",
            ),
            (&["zipkin"], Err("unknown propagator"), "not an OTel name"),
            (&["tracecontext", ""], Err("empty"), "an empty name"),
            (&[], Err("no propagator"), "an empty list"),
        ];
        for (names, want, why) in cases {
            let got = Propagators::from_names(names.iter().copied());
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g.as_slice(), *w, "{why}"),
                (Err(words), Err(e)) => assert!(e.reason.contains(words), "{why}: {e}"),
                (w, g) => panic!("{why}: want {w:?}, got {g:?}"),
            }
        }
        assert_eq!(
            Propagators::default().as_slice(),
            &[TraceContext, Baggage],
            "default: tracecontext,baggage (OTel SDK)"
        );
        assert_eq!(Propagators::default().to_string(), "tracecontext,baggage");
        assert_eq!(Propagators::none().to_string(), "none");
    }

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

    #[test]
    fn baggage_table() {
        let many: Vec<String> = (0..70).map(|i| format!("k{i}=v{i}")).collect();
        let first_64 = many[..64].join(",");
        let many = many.join(",");
        let big_value = "x".repeat(5000);
        let two_big = format!("a={big_value},b={big_value},c=1");
        let first_and_small = format!("a={big_value},c=1");
        // (lines, expected, reason citing W3C Baggage, https://www.w3.org/TR/baggage/)
        let cases: &[(&[&str], Option<&str>, &str)] = &[
            (&["userId=alice"], Some("userId=alice"), "§3 Definition: one list-member"),
            (
                &["userId=alice, serverNode=DF%2028,isProduction=false"],
                Some("userId=alice, serverNode=DF%2028,isProduction=false"),
                "§3 Examples of HTTP headers: OWS, percent-encoding kept as sent",
            ),
            (
                &["key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"],
                Some("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"),
                "§3 Example: properties",
            ),
            (&["a=1", "b=2"], Some("a=1,b=2"), "§3: multiple baggage headers combine"),
            (&["a="], Some("a="), "§3 Definition: value = *baggage-octet"),
            (&["a=1,b", "c=3"], Some("a=1,c=3"), "§3 Definition: key \"=\" value"),
            (&["a=\"q\",b=2"], Some("b=2"), "§3 Definition: DQUOTE is no baggage-octet"),
            (&["a b=1,c=2"], Some("c=2"), "§3 key: a token has no space"),
            (&["=1,c=2"], Some("c=2"), "§3 key: a token is not empty"),
            (&["a=1;,c=2"], Some("c=2"), "§3 property: never empty"),
            (&["a=1,,c=2"], Some("a=1,c=2"), "§3 Definition: no empty list-member"),
            (&["a=é"], None, "§3 value: UTF-8 is URL encoded"),
            (&[""], None, "nothing valid"),
            (&[many.as_str()], Some(first_64.as_str()), "§3 Limits: 64 list-members are kept"),
            (
                &[two_big.as_str()],
                Some(first_and_small.as_str()),
                "§3 Limits: 8192 bytes; members that do not fit are dropped",
            ),
        ];
        for (lines, want, why) in cases {
            let got = parse_baggage(lines.iter().map(|l| l.as_bytes()));
            assert_eq!(got.as_ref().map(Baggage::as_str), *want, "{why}: {lines:?}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn extraction_order_table() {
        use Propagator::*;
        let tp = format!("00-{TID}-{SID}-01");
        let b3 = format!("{TID64}-{PSID}-0");
        let bad_tp = format!("00-{TID}-{}-01", "0".repeat(16));
        let jaeger = format!("{TID}:{PSID}:0:1");
        let names = |n: &[&str]| Propagators::from_names(n.iter().copied()).unwrap();
        // (formats, headers, winning format and span id, invalid traceparent, reason)
        type Case<'a> = (
            Propagators,
            Vec<(&'a str, &'a str)>,
            Option<(Propagator, &'a str)>,
            bool,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                names(&["tracecontext", "b3"]),
                vec![("traceparent", &tp), ("b3", &b3)],
                Some((TraceContext, SID)),
                false,
                "first configured format wins",
            ),
            (
                names(&["b3", "tracecontext"]),
                vec![("traceparent", &tp), ("b3", &b3)],
                Some((B3, PSID)),
                false,
                "the order is the configured one",
            ),
            (
                names(&["tracecontext", "b3"]),
                vec![("b3", &b3)],
                Some((B3, PSID)),
                false,
                "an absent format is skipped",
            ),
            (
                names(&["tracecontext", "b3"]),
                vec![("traceparent", &bad_tp), ("b3", &b3)],
                Some((B3, PSID)),
                true,
                "an invalid traceparent is reported and skipped",
            ),
            (
                names(&["tracecontext"]),
                vec![("b3", &b3)],
                None,
                false,
                "formats not configured are not read",
            ),
            (
                names(&["b3", "jaeger"]),
                vec![("b3", "zzz"), ("uber-trace-id", &jaeger)],
                Some((Jaeger, PSID)),
                false,
                "an invalid b3 is skipped",
            ),
            (
                names(&["b3"]),
                vec![("b3", &b3), ("b3", &b3)],
                None,
                false,
                "b3 sent twice is invalid",
            ),
            (
                names(&["b3multi"]),
                vec![("x-b3-traceid", TID), ("x-b3-spanid", PSID)],
                Some((B3Multi, PSID)),
                false,
                "multi headers",
            ),
            (
                names(&["b3multi"]),
                vec![
                    ("x-b3-traceid", TID),
                    ("x-b3-spanid", PSID),
                    ("x-b3-spanid", SID),
                ],
                Some((B3Multi, PSID)),
                false,
                "B3 \"Multiple Headers\": the first value wins",
            ),
            (
                names(&["none"]),
                vec![("traceparent", &tp)],
                None,
                false,
                "none reads nothing",
            ),
        ];
        for (p, h, want, bad, why) in cases {
            let got = extract(&p, &headers(&h));
            let got_found = got.found.map(|(p, e)| match e {
                Extracted::Context(c) => (p, c.span_id.to_hex()),
                Extracted::SamplingOnly(_) => (p, String::new()),
            });
            assert_eq!(got_found, want.map(|(p, s)| (p, s.to_owned())), "{why}");
            assert_eq!(got.invalid_traceparent.is_some(), bad, "{why}");
        }
    }

    #[test]
    fn upstream_edits_touch_only_configured_formats() {
        let out = Outgoing {
            trace_id: match ctx(TID64, SID, None) {
                Extracted::Context(c) => c.trace_id,
                _ => unreachable!(),
            },
            span_id: SpanId([0xab; 8]),
            flags: FLAG_SAMPLED,
            tracestate: Some("rojo=1"),
            baggage: None,
        };
        let run = |names: &[&str]| {
            let p = Propagators::from_names(names.iter().copied()).unwrap();
            let mut got = Vec::new();
            upstream_edits(&p, &out, |n, v| {
                got.push((
                    n.as_str().to_owned(),
                    v.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                ))
            });
            got
        };
        let padded = format!("{}{TID64}", "0".repeat(16));
        let s = |v: String| Some(v);
        assert_eq!(
            run(&["tracecontext", "baggage"]),
            vec![
                (
                    "traceparent".into(),
                    s(format!("00-{padded}-abababababababab-01"))
                ),
                ("tracestate".into(), s("rojo=1".into())),
                ("baggage".into(), None),
            ],
            "W3C: tracestate with traceparent; no valid baggage removes the client's"
        );
        assert_eq!(
            run(&["b3", "jaeger"]),
            vec![
                ("b3".into(), s(format!("{padded}-abababababababab-1"))),
                (
                    "uber-trace-id".into(),
                    s(format!("{padded}:abababababababab:0:01"))
                ),
            ],
            "64-bit ids go out as 128 bits; no W3C headers when not configured"
        );
        assert_eq!(
            run(&["b3multi"]),
            vec![
                ("x-b3-traceid".into(), s(padded.clone())),
                ("x-b3-spanid".into(), s("abababababababab".into())),
                ("x-b3-sampled".into(), s("1".into())),
                ("x-b3-parentspanid".into(), None),
                ("x-b3-flags".into(), None),
            ],
            "b3multi: the client's parent and debug headers are removed"
        );
        assert!(run(&["none"]).is_empty(), "none: nothing is touched");
    }

    /// A small xorshift generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn roundtrip_context(c: &RemoteContext) {
        let sampled = c.sampled.unwrap_or(false);
        let same = |e: Extracted, why: &str| match e {
            Extracted::Context(r) => {
                assert_eq!(r.trace_id, c.trace_id, "{why}");
                assert_eq!(r.span_id, c.span_id, "{why}");
                assert_eq!(r.sampled, Some(sampled), "{why}");
            }
            other => panic!("{why}: {other:?}"),
        };
        let b3 = format_b3_single(&c.trace_id, &c.span_id, sampled);
        same(parse_b3_single(&b3).expect("b3 parses back"), "b3");
        let m = format_b3_multi(&c.trace_id, &c.span_id, sampled);
        let multi = parse_b3_multi(&B3MultiHeaders {
            trace_id: Some(&m.trace_id),
            span_id: Some(&m.span_id),
            sampled: Some(m.sampled),
            ..Default::default()
        });
        same(multi.expect("b3multi parses back").unwrap(), "b3multi");
        let j = format_jaeger(&c.trace_id, &c.span_id, sampled);
        same(
            Extracted::Context(parse_jaeger(&j).expect("jaeger parses back")),
            "jaeger",
        );
        let flags = if sampled { FLAG_SAMPLED } else { 0 };
        let tp = w3c::format_traceparent(&c.trace_id, &c.span_id, flags);
        let tp = parse_traceparent(&tp).expect("traceparent parses back");
        assert_eq!((tp.trace_id, tp.parent_id), (c.trace_id, c.span_id));
        for v in [&b3[..], &j[..], m.sampled] {
            assert!(http::HeaderValue::from_bytes(v).is_ok());
        }
    }

    #[test]
    fn parsers_never_panic_and_accepted_input_roundtrips() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF-:%3dAtrue,;= \t\"\xff\x00";
        for len in 0..90 {
            for _ in 0..150 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect();
                if let Ok(Extracted::Context(c)) = parse_b3_single(&bytes) {
                    roundtrip_context(&c);
                }
                if let Ok(c) = parse_jaeger(&bytes) {
                    roundtrip_context(&c);
                }
                let (a, b) = bytes.split_at(len / 2);
                if let Ok(Some(Extracted::Context(c))) = parse_b3_multi(&B3MultiHeaders {
                    trace_id: Some(a),
                    span_id: Some(b),
                    ..Default::default()
                }) {
                    roundtrip_context(&c);
                }
                // Sampling state and debug flag alone: never a context without ids.
                let state = parse_b3_multi(&B3MultiHeaders {
                    sampled: Some(a),
                    flags: Some(b),
                    parent_span_id: Some(&bytes),
                    ..Default::default()
                });
                assert!(matches!(
                    state,
                    Ok(None | Some(Extracted::SamplingOnly(_))) | Err(_)
                ));
                if let Some(bag) = parse_baggage([a, b]) {
                    let s = bag.as_str();
                    assert!(s.len() <= BAGGAGE_MAX_BYTES);
                    assert!(http::HeaderValue::from_str(s).is_ok(), "{s:?}");
                    let again = parse_baggage([s.as_bytes()]).expect("valid baggage stays valid");
                    assert_eq!(again.as_str(), s, "a forwarded value is stable");
                }
            }
        }
    }

    /// Random contexts written in every accepted spelling parse back to the same ids.
    #[test]
    fn generated_contexts_parse_in_every_spelling() {
        let mut rng = Rng(0x2545f4914f6cdd1d);
        let mut accepted = 0;
        for _ in 0..3000 {
            let wide = rng.below(2) == 0;
            let hi = if wide { rng.next() } else { 0 };
            let t = u128::from(hi) << 64 | u128::from(rng.next());
            let s = rng.next();
            if t == 0 || s == 0 {
                continue;
            }
            let c = RemoteContext {
                trace_id: TraceId(t.to_be_bytes()),
                span_id: SpanId(s.to_be_bytes()),
                sampled: Some(rng.below(2) == 0),
                random: false,
            };
            let bit = u8::from(c.sampled == Some(true));
            let tid = if wide {
                format!("{t:032x}")
            } else {
                format!("{t:016x}")
            };
            let spellings = [
                (format!("{tid}-{s:016x}-{bit}"), Propagator::B3),
                (format!("{t:x}:{s:x}:0:{bit}"), Propagator::Jaeger),
                (format!("{t:X}%3A{s:x}%3A0%3A0{bit}"), Propagator::Jaeger),
            ];
            for (v, p) in spellings {
                let got = match p {
                    Propagator::B3 => parse_b3_single(v.as_bytes()),
                    _ => parse_jaeger(v.as_bytes()).map(Extracted::Context),
                };
                assert_eq!(got, Ok(Extracted::Context(c)), "{v}");
                roundtrip_context(&c);
                accepted += 1;
            }
        }
        assert!(accepted > 8000);
    }
}
