//! The compact span record made on the request path, and its conversion to OpenTelemetry
//! `SpanData`.
//!
//! A request thread fills typed fields (ids, instants, status, a few strings it already owns) and
//! nothing more; attribute keys, events and the OTLP shape are built on the exporter thread by
//! [`SpanRecord::into_span_data`]. Attribute names are the stable OpenTelemetry HTTP semantic
//! conventions (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>); the handful of
//! tracegate-specific attributes live under the `tracegate.` namespace and are listed in README.

use super::w3c::{SpanId, TraceId};
use opentelemetry::trace::{
    Event, SpanContext, SpanKind, Status, TraceFlags, TraceState as OtelTraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
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
    pub body: SpanBody,
    /// Attributes added by an embedding application, appended as they are.
    pub extra: Vec<KeyValue>,
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
    /// The request path without the query string (`url.path`).
    pub path: String,
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
}

/// Fields of the CLIENT span that covers one upstream attempt.
#[derive(Debug, Clone, Default)]
pub struct ClientFields {
    pub method: http::Method,
    /// The upstream pool's name (`tracegate.upstream`).
    pub upstream: Option<Arc<str>>,
    /// The backend this attempt went to (`server.address`/`server.port`).
    pub backend: Option<SocketAddr>,
    /// The path sent upstream, without query (used for `url.full`).
    pub path: String,
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

impl SpanRecord {
    /// The span name: `{METHOD} {route}` for server spans (semconv: `{method} {http.route}`),
    /// `{METHOD}` for client spans (semconv: no URL template is known at the edge).
    pub fn name(&self) -> String {
        match &self.body {
            SpanBody::Server(s) => match &s.route {
                Some(r) => format!("{} {}", s.method, r),
                None => s.method.to_string(),
            },
            SpanBody::Client(c) => c.method.to_string(),
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

    /// Builds the OpenTelemetry span. Runs on the exporter thread.
    pub fn into_span_data(self, scope: &InstrumentationScope) -> SpanData {
        let name = self.name();
        let is_error = self.is_error();
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
        let mut attributes = Vec::with_capacity(12 + self.extra.len());
        let mut events = SpanEvents::default();
        let (kind, status) = match self.body {
            SpanBody::Server(s) => {
                let s = *s;
                attributes.push(KeyValue::new("http.request.method", s.method.to_string()));
                attributes.push(KeyValue::new("url.path", s.path));
                attributes.push(KeyValue::new("url.scheme", s.scheme));
                if let Some(r) = s.route {
                    attributes.push(KeyValue::new("http.route", r.to_string()));
                }
                if s.status > 0 {
                    attributes.push(KeyValue::new("http.response.status_code", s.status as i64));
                }
                if let Some(a) = s.server_address {
                    attributes.push(KeyValue::new("server.address", a));
                }
                if let Some(p) = s.server_port {
                    attributes.push(KeyValue::new("server.port", p as i64));
                }
                if let Some(a) = s.client_address {
                    attributes.push(KeyValue::new("client.address", a.to_string()));
                }
                if let Some(p) = s.client_port {
                    attributes.push(KeyValue::new("client.port", p as i64));
                }
                if let Some(ua) = s.user_agent {
                    attributes.push(KeyValue::new("user_agent.original", ua));
                }
                attributes.push(KeyValue::new(
                    "network.protocol.version",
                    s.protocol_version,
                ));
                // semconv: error.type is the status code when no better class is known.
                let error_type = s
                    .error_type
                    .or_else(|| (s.status >= 500).then(|| Cow::Owned(s.status.to_string())));
                let status = if is_error {
                    Status::error(error_type.clone().unwrap_or(Cow::Borrowed("_OTHER")))
                } else {
                    Status::Unset
                };
                if let Some(e) = error_type {
                    attributes.push(KeyValue::new("error.type", e));
                }
                (SpanKind::Server, status)
            }
            SpanBody::Client(c) => {
                let c = *c;
                attributes.push(KeyValue::new("http.request.method", c.method.to_string()));
                if let Some(b) = c.backend {
                    attributes.push(KeyValue::new("server.address", b.ip().to_string()));
                    attributes.push(KeyValue::new("server.port", b.port() as i64));
                    attributes.push(KeyValue::new("url.full", format!("http://{b}{}", c.path)));
                }
                if let Some(u) = c.upstream {
                    attributes.push(KeyValue::new("tracegate.upstream", u.to_string()));
                }
                if let Some(s) = c.status {
                    attributes.push(KeyValue::new("http.response.status_code", s as i64));
                }
                if c.resend_count > 0 {
                    attributes.push(KeyValue::new(
                        "http.request.resend_count",
                        c.resend_count as i64,
                    ));
                }
                if let Some(r) = c.connection_reused {
                    attributes.push(KeyValue::new("tracegate.upstream.connection_reused", r));
                }
                if let Some(d) = c.connect_duration {
                    attributes.push(KeyValue::new("tracegate.upstream.connect_ms", millis(d)));
                }
                if let Some(fb) = c.first_byte_at {
                    let ttfb = fb.duration_since(self.start).unwrap_or_default();
                    attributes.push(KeyValue::new("tracegate.upstream.ttfb_ms", millis(ttfb)));
                }
                if let Some(at) = c.connected_at {
                    events.events.push(Event::new(
                        "upstream.connected",
                        at,
                        vec![KeyValue::new(
                            "tracegate.upstream.connection_reused",
                            c.connection_reused.unwrap_or(false),
                        )],
                        0,
                    ));
                }
                if let Some(fb) = c.first_byte_at {
                    events
                        .events
                        .push(Event::new("upstream.first_byte", fb, Vec::new(), 0));
                }
                let error_type = c.error_type.or_else(|| {
                    c.status
                        .filter(|s| *s >= 400)
                        .map(|s| Cow::Owned(s.to_string()))
                });
                let status = if is_error {
                    Status::error(
                        c.error_message
                            .map(Cow::Owned)
                            .or_else(|| error_type.clone())
                            .unwrap_or(Cow::Borrowed("_OTHER")),
                    )
                } else {
                    Status::Unset
                };
                if let Some(e) = error_type {
                    attributes.push(KeyValue::new("error.type", e));
                }
                (SpanKind::Client, status)
            }
        };
        attributes.extend(self.extra);
        SpanData {
            span_context,
            parent_span_id: self
                .parent
                .map(|p| opentelemetry::trace::SpanId::from_bytes(p.0))
                .unwrap_or(opentelemetry::trace::SpanId::INVALID),
            parent_span_is_remote: self.parent_is_remote,
            span_kind: kind,
            name: Cow::Owned(name),
            start_time: self.start,
            end_time: self.end,
            attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
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
            body,
            extra: vec![],
        }
    }

    fn attr<'a>(d: &'a SpanData, k: &str) -> Option<&'a opentelemetry::Value> {
        d.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| &kv.value)
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
        assert_eq!(attr(&d, "server.port"), Some(&opentelemetry::Value::I64(9)));
    }
}
