//! The compact span record made on the request path, and its conversion to OpenTelemetry
//! `SpanData`.
//!
//! A request thread fills typed fields (ids, instants, status, a few strings it already owns) and
//! nothing more; attribute keys, events and status are derived on the exporter thread through
//! one view ([`SpanRecord::for_each_attribute`], [`SpanRecord::for_each_event`],
//! [`SpanRecord::error_description`]) that both the OTLP encoder (`super::export::otlp`) and the
//! `SpanData` conversion ([`SpanRecord::into_span_data`]) read. Attribute names are the stable OpenTelemetry HTTP semantic
//! conventions (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>); the handful of
//! tracegate-specific attributes live under the `tracegate.` namespace and are listed in README.

use super::capture::CapturedHeader;
use super::ids::{SpanId, TraceId};
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanKind, Status, TraceFlags, TraceState as OtelTraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One finished span, as recorded on the request path.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The parent span id, if any.
    pub parent: Option<SpanId>,
    /// True when the parent came from another process (an incoming `traceparent`).
    pub parent_is_remote: bool,
    /// W3C trace flags of this span's context.
    pub flags: u8,
    /// The validated `tracestate` carried with the trace.
    pub tracestate: Option<Arc<str>>,
    pub start: SystemTime,
    pub end: SystemTime,
    /// A context this span links to (an untrusted client's), not its parent.
    pub link: Option<SpanLink>,
    pub body: SpanBody,
}

/// A link to a span of another trace, from another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The W3C trace flags that came with it.
    pub flags: u8,
}

/// What kind of span this is, with the fields that kind records.
#[derive(Debug, Clone)]
pub enum SpanBody {
    Server(Box<ServerFields>),
    Client(Box<ClientFields>),
}

/// Fields of the SERVER span that covers one downstream request.
#[derive(Debug, Clone, Default)]
pub struct ServerFields {
    pub method: http::Method,
    /// The matched route's name: low-cardinality, used for `http.route` and the span name.
    pub route: Option<Arc<str>>,
    /// The route middleware that answered the request (`tracegate.middleware`).
    pub middleware: Option<Arc<str>>,
    /// The request path without the query string (`url.path`).
    pub path: String,
    /// `url.query`, already redacted as configured (see `super::capture`).
    pub query: Option<String>,
    pub scheme: &'static str,
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
    pub client_address: Option<IpAddr>,
    pub client_port: Option<u16>,
    pub user_agent: Option<String>,
    pub protocol_version: &'static str,
    /// The status written downstream; 0 when no response could be written.
    pub status: u16,
    /// `error.type` when the request failed without a response status (e.g. client gone).
    pub error_type: Option<Cow<'static, str>>,
    /// Request headers on the capture allowlist (`http.request.header.<name>`).
    pub request_headers: Vec<CapturedHeader>,
    /// Response headers on the capture allowlist (`http.response.header.<name>`).
    pub response_headers: Vec<CapturedHeader>,
}

/// Fields of the CLIENT span that covers one upstream attempt.
#[derive(Debug, Clone, Default)]
pub struct ClientFields {
    pub method: http::Method,
    /// The upstream pool's name (`tracegate.upstream`).
    pub upstream: Option<Arc<str>>,
    /// For a call a middleware made (an auth check): its name (`tracegate.middleware`).
    pub middleware: Option<Arc<str>>,
    /// The backend this attempt went to (`server.address`/`server.port`).
    pub backend: Option<SocketAddr>,
    /// The path sent upstream, without query (used for `url.full`).
    pub path: String,
    /// The attempt uses TLS (`https` in `url.scheme` and `url.full`).
    pub tls: bool,
    /// `network.protocol.version` of the upstream response (`1.1`, `2`), once one arrived.
    pub protocol_version: Option<&'static str>,
    /// The upstream's response status, when one arrived.
    pub status: Option<u16>,
    /// `error.type` for a failed attempt (`timeout`, `connection_refused`, ...).
    pub error_type: Option<Cow<'static, str>>,
    /// A human-readable description of the failure, for the span status.
    pub error_message: Option<String>,
    /// `http.request.resend_count`: 0 for the first attempt.
    pub resend_count: u32,
    /// Whether a pooled keep-alive connection was reused.
    pub connection_reused: Option<bool>,
    /// TCP connect time of a new connection.
    pub connect_duration: Option<Duration>,
    /// When the connection was ready (new or reused).
    pub connected_at: Option<SystemTime>,
    /// When the upstream response header arrived.
    pub first_byte_at: Option<SystemTime>,
}

/// One attribute value, borrowed from the record (or from a scratch buffer the record formatted
/// it into). Both the OTLP encoder and the `SpanData` conversion read spans through this view, so
/// the two outputs cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    F64(f64),
    /// A string array (captured header values, one per header line).
    StrList(&'a [String]),
}

/// Reusable buffers for formatting attribute values on the exporter thread: a scratch string,
/// and the text forms of upstream backends (`server.address` and the `http://ip:port` prefix of
/// `url.full`), formatted once per backend rather than once per span.
#[derive(Debug, Default)]
pub struct AttrScratch {
    text: String,
    backends: HashMap<SocketAddr, (Box<str>, Box<str>)>,
}

/// Backends whose text forms are kept; the cache starts over when it is full.
const BACKEND_CACHE_MAX: usize = 1024;

/// The cached text forms of backend `b`: its IP, and `http://ip:port`.
fn backend_text(
    cache: &mut HashMap<SocketAddr, (Box<str>, Box<str>)>,
    b: SocketAddr,
) -> (&str, &str) {
    if !cache.contains_key(&b) {
        if cache.len() >= BACKEND_CACHE_MAX {
            cache.clear();
        }
        let mut ip = String::new();
        push_ip(&mut ip, b.ip());
        let base = format!("http://{b}");
        cache.insert(b, (ip.into(), base.into()));
    }
    let (ip, base) = &cache[&b];
    (ip, base)
}

/// Appends the text form of `ip` (dotted quad for IPv4, RFC 5952 for IPv6).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out.push_str(crate::net::ipv4_text(v4, &mut [0; 15])),
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// The OpenTelemetry span kind of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

/// A span event: a name, a time and at most one attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventView {
    pub name: &'static str,
    pub time: SystemTime,
}

impl SpanRecord {
    /// The span kind.
    pub fn kind(&self) -> Kind {
        match self.body {
            SpanBody::Server(_) => Kind::Server,
            SpanBody::Client(_) => Kind::Client,
        }
    }

    /// The span name in two parts: `{METHOD} {route}` for server spans (semconv: `{method}
    /// {http.route}`), `{METHOD}` for client spans (semconv: no URL template is known at the
    /// edge), `{METHOD} {middleware}` for a middleware's own call (`GET sso`). Joined with one space when the second part is present.
    pub fn name_parts(&self) -> (&str, Option<&str>) {
        match &self.body {
            SpanBody::Server(s) => (s.method.as_str(), s.route.as_deref()),
            SpanBody::Client(c) => (c.method.as_str(), c.middleware.as_deref()),
        }
    }

    /// The span name as one string.
    pub fn name(&self) -> String {
        match self.name_parts() {
            (m, Some(r)) => format!("{m} {r}"),
            (m, None) => m.to_owned(),
        }
    }

    /// True when the span's status is Error: 5xx or a failure for server spans (semconv: 4xx
    /// is the client's fault); any failed attempt or status >= 400 for client spans.
    pub fn is_error(&self) -> bool {
        match &self.body {
            SpanBody::Server(s) => s.status >= 500 || (s.status == 0 && s.error_type.is_some()),
            SpanBody::Client(c) => c.error_type.is_some() || c.status.is_some_and(|s| s >= 400),
        }
    }

    /// `error.type`: the recorded failure class, else the status code when it marks a failure
    /// (semconv: the status code is the error type when no better class is known).
    fn error_type<'a>(&'a self, scratch: &'a mut String) -> Option<&'a str> {
        let (recorded, failed_status) = match &self.body {
            SpanBody::Server(s) => (
                s.error_type.as_deref(),
                Some(s.status).filter(|s| *s >= 500),
            ),
            SpanBody::Client(c) => (c.error_type.as_deref(), c.status.filter(|s| *s >= 400)),
        };
        if recorded.is_some() {
            return recorded;
        }
        let status = failed_status?;
        scratch.clear();
        let _ = write!(scratch, "{status}");
        Some(scratch.as_str())
    }

    /// The span status description when the status is Error, `None` when it is Unset. Client
    /// spans describe the failure in words when they can; otherwise it is `error.type`.
    pub fn error_description<'a>(&'a self, scratch: &'a mut AttrScratch) -> Option<&'a str> {
        if !self.is_error() {
            return None;
        }
        if let SpanBody::Client(c) = &self.body {
            if let Some(m) = &c.error_message {
                return Some(m);
            }
        }
        Some(self.error_type(&mut scratch.text).unwrap_or("_OTHER"))
    }

    /// Calls `f` with each attribute, in a fixed order. Values that need formatting (addresses,
    /// URLs, numbers as strings) are written into `scratch` first, so nothing is allocated once
    /// `scratch` has grown to fit.
    pub fn for_each_attribute(
        &self,
        scratch: &mut AttrScratch,
        mut f: impl FnMut(&str, AttrValue<'_>),
    ) {
        use AttrValue::{Bool, Int, Str, StrList, F64};
        match &self.body {
            SpanBody::Server(s) => {
                f("http.request.method", Str(s.method.as_str()));
                f("url.path", Str(&s.path));
                if let Some(q) = &s.query {
                    f("url.query", Str(q));
                }
                f("url.scheme", Str(s.scheme));
                if let Some(r) = &s.route {
                    f("http.route", Str(r));
                }
                if let Some(m) = &s.middleware {
                    f("tracegate.middleware", Str(m));
                }
                if s.status > 0 {
                    f("http.response.status_code", Int(s.status.into()));
                }
                if let Some(a) = &s.server_address {
                    f("server.address", Str(a));
                }
                if let Some(p) = s.server_port {
                    f("server.port", Int(p.into()));
                }
                if let Some(a) = s.client_address {
                    scratch.text.clear();
                    push_ip(&mut scratch.text, a);
                    f("client.address", Str(&scratch.text));
                }
                if let Some(p) = s.client_port {
                    f("client.port", Int(p.into()));
                }
                if let Some(ua) = &s.user_agent {
                    f("user_agent.original", Str(ua));
                }
                f("network.protocol.version", Str(s.protocol_version));
                for h in s.request_headers.iter().chain(&s.response_headers) {
                    f(&h.key, StrList(&h.values));
                }
            }
            SpanBody::Client(c) => {
                f("http.request.method", Str(c.method.as_str()));
                if let Some(b) = c.backend {
                    let AttrScratch { text, backends } = scratch;
                    let (ip, base) = backend_text(backends, b);
                    f("server.address", Str(ip));
                    f("server.port", Int(b.port().into()));
                    text.clear();
                    if c.tls {
                        // The cached base is `http://ip:port`.
                        text.push_str("https");
                        text.push_str(&base["http".len()..]);
                    } else {
                        text.push_str(base);
                    }
                    text.push_str(&c.path);
                    f("url.full", Str(text));
                }
                f("url.scheme", Str(if c.tls { "https" } else { "http" }));
                if let Some(v) = c.protocol_version {
                    f("network.protocol.version", Str(v));
                }
                if let Some(u) = &c.upstream {
                    f("tracegate.upstream", Str(u));
                }
                if let Some(m) = &c.middleware {
                    f("tracegate.middleware", Str(m));
                }
                if let Some(s) = c.status {
                    f("http.response.status_code", Int(s.into()));
                }
                if c.resend_count > 0 {
                    f("http.request.resend_count", Int(c.resend_count.into()));
                }
                if let Some(r) = c.connection_reused {
                    f("tracegate.upstream.connection_reused", Bool(r));
                }
                if let Some(d) = c.connect_duration {
                    f("tracegate.upstream.connect_ms", F64(millis(d)));
                }
                if let Some(fb) = c.first_byte_at {
                    let ttfb = fb.duration_since(self.start).unwrap_or_default();
                    f("tracegate.upstream.ttfb_ms", F64(millis(ttfb)));
                }
            }
        }
        if let Some(e) = self.error_type(&mut scratch.text) {
            f("error.type", Str(e));
        }
    }

    /// Calls `f` with each event, in time order: `upstream.connected` and
    /// `upstream.first_byte` on client spans.
    pub fn for_each_event(&self, mut f: impl FnMut(EventView)) {
        if let SpanBody::Client(c) = &self.body {
            if let Some(time) = c.connected_at {
                f(EventView {
                    name: "upstream.connected",
                    time,
                });
            }
            if let Some(time) = c.first_byte_at {
                f(EventView {
                    name: "upstream.first_byte",
                    time,
                });
            }
        }
    }

    /// Builds the OpenTelemetry SDK span, for exporters that take `SpanData` (stdout, or any
    /// `SpanExporter` an embedding application brings). Runs on the exporter thread.
    pub fn into_span_data(self, scope: &InstrumentationScope) -> SpanData {
        let mut scratch = AttrScratch::default();
        let trace_state = self
            .tracestate
            .as_deref()
            .and_then(|s| OtelTraceState::from_str(s).ok())
            .unwrap_or_default();
        let span_context = SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(self.trace_id.0),
            opentelemetry::trace::SpanId::from_bytes(self.span_id.0),
            TraceFlags::new(self.flags),
            false,
            trace_state,
        );
        let mut attributes = Vec::with_capacity(14);
        self.for_each_attribute(&mut scratch, |k, v| {
            let value: Value = match v {
                AttrValue::Str(s) => s.to_owned().into(),
                AttrValue::Int(i) => i.into(),
                AttrValue::Bool(b) => b.into(),
                AttrValue::F64(x) => x.into(),
                AttrValue::StrList(l) => Value::Array(opentelemetry::Array::String(
                    l.iter().map(|s| s.clone().into()).collect(),
                )),
            };
            attributes.push(KeyValue::new(k.to_owned(), value));
        });
        let mut events = SpanEvents::default();
        self.for_each_event(|e| {
            events
                .events
                .push(Event::new(e.name, e.time, Vec::new(), 0));
        });
        let status = match self.error_description(&mut scratch) {
            Some(d) => Status::error(d.to_owned()),
            None => Status::Unset,
        };
        SpanData {
            span_context,
            parent_span_id: self
                .parent
                .map(|p| opentelemetry::trace::SpanId::from_bytes(p.0))
                .unwrap_or(opentelemetry::trace::SpanId::INVALID),
            parent_span_is_remote: self.parent_is_remote,
            span_kind: match self.kind() {
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
            },
            name: Cow::Owned(self.name()),
            start_time: self.start,
            end_time: self.end,
            attributes,
            dropped_attributes_count: 0,
            events,
            links: {
                let mut links = SpanLinks::default();
                if let Some(l) = self.link {
                    links.links.push(Link::with_context(SpanContext::new(
                        opentelemetry::trace::TraceId::from_bytes(l.trace_id.0),
                        opentelemetry::trace::SpanId::from_bytes(l.span_id.0),
                        TraceFlags::new(l.flags),
                        true,
                        OtelTraceState::default(),
                    )));
                }
                links
            },
            status,
            instrumentation_scope: scope.clone(),
        }
    }
}

/// Milliseconds with microsecond precision (what a person reads in a trace view).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: SpanBody) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent: Some(SpanId([3; 8])),
            parent_is_remote: true,
            flags: 1,
            tracestate: Some("rojo=1".into()),
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            end: SystemTime::UNIX_EPOCH + Duration::from_secs(11),
            link: None,
            body,
        }
    }

    fn attr<'a>(d: &'a SpanData, k: &str) -> Option<&'a Value> {
        d.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| &kv.value)
    }

    #[test]
    fn ip_text_matches_display() {
        // (address, reason)
        let cases = [
            ("0.0.0.0", "all zero octets"),
            ("255.255.255.255", "three-digit octets"),
            ("10.0.20.100", "one, two and three digits"),
            ("2001:db8::7", "IPv6 goes through Display"),
            ("::ffff:10.0.0.1", "IPv4-mapped IPv6"),
        ];
        for (a, why) in cases {
            let ip: IpAddr = a.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string(), "{why}");
        }
    }

    #[test]
    fn server_span_status_follows_semconv() {
        // (status, expect error, reason)
        let cases = [
            (200, false, "success is Unset"),
            (404, false, "4xx is the client's fault, not the server's"),
            (502, true, "5xx is Error on a server span"),
        ];
        for (status, error, why) in cases {
            let r = record(SpanBody::Server(Box::new(ServerFields {
                method: http::Method::GET,
                route: Some("api".into()),
                status,
                scheme: "http",
                protocol_version: "1.1",
                ..Default::default()
            })));
            let d = r.into_span_data(&InstrumentationScope::builder("t").build());
            assert_eq!(matches!(d.status, Status::Error { .. }), error, "{why}");
            assert_eq!(d.name, "GET api");
            assert_eq!(d.span_kind, SpanKind::Server);
            assert_eq!(attr(&d, "error.type").is_some(), error, "{why}");
            assert_eq!(d.span_context.trace_state().header(), "rojo=1");
        }
    }

    #[test]
    fn client_span_failure_has_error_type() {
        let r = record(SpanBody::Client(Box::new(ClientFields {
            method: http::Method::POST,
            backend: Some("127.0.0.1:9".parse().unwrap()),
            error_type: Some("connection_refused".into()),
            error_message: Some("Connection refused".into()),
            ..Default::default()
        })));
        let d = r.into_span_data(&InstrumentationScope::builder("t").build());
        assert_eq!(d.name, "POST");
        assert_eq!(d.span_kind, SpanKind::Client);
        assert!(matches!(d.status, Status::Error { .. }));
        assert_eq!(
            attr(&d, "error.type").map(|v| v.as_str().into_owned()),
            Some("connection_refused".into())
        );
        assert_eq!(attr(&d, "server.port"), Some(&Value::I64(9)));
    }
}
