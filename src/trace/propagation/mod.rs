//! Trace-context propagation: which formats a proxy reads and writes (`telemetry.propagators`,
//! `OTEL_PROPAGATORS`), and the dispatch over them: reading the incoming context from a
//! request's headers and the header edits for the request that goes upstream.
//!
//! One file per format: [`w3c`] (`traceparent`/`tracestate`), [`b3`] (single and multi
//! header), [`jaeger`] (`uber-trace-id`) and [`baggage`] (W3C Baggage validation). What their
//! parsers return ([`RemoteContext`], [`Extracted`], [`InvalidContext`]) is defined in a leaf
//! file, `context`, and the hex ids B3 and Jaeger share in `hex`; no format imports this
//! dispatch.
//!
//! Pure code on `http` types only (no Pingora). The names are OpenTelemetry's (SDK environment
//! variables, `OTEL_PROPAGATORS`).
//!
//! Extraction reads the configured formats in the configured order; the first one present and
//! valid gives the incoming context ([`extract`]). Injection ([`upstream_edits`]) replaces the
//! headers of every configured format and leaves the headers of formats that are not configured
//! exactly as the client sent them.

pub mod b3;
pub mod baggage;
mod context;
mod hex;
pub mod jaeger;
pub mod w3c;

pub use context::{Extracted, InvalidContext, RemoteContext};

use super::ids::{SpanId, TraceId, FLAG_RANDOM, FLAG_SAMPLED};
use b3::{format_b3_multi, format_b3_single, parse_b3_multi, parse_b3_single, B3MultiHeaders};
use context::{invalid, Parsed};
use http::{HeaderMap, HeaderName};
use jaeger::{format_jaeger, parse_jaeger};
use std::fmt;
use w3c::{parse_traceparent_lines, TraceParentError};

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
/// context; read it with [`baggage::parse_baggage`]. Allocates nothing.
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
    use super::baggage::{parse_baggage, BAGGAGE_MAX_BYTES};
    use super::context::fixtures::{ctx, PSID, SID, TID, TID64};
    use super::w3c::parse_traceparent;
    use super::*;

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
