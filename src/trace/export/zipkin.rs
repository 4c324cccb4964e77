//! Zipkin export: encodes batches of [`SpanRecord`]s as Zipkin v2 JSON and POSTs them to a
//! Zipkin collector (`/api/v2/spans`).
//!
//! Mapping per the OpenTelemetry Zipkin exporter specification
//! (<https://opentelemetry.io/docs/specs/otel/trace/sdk_exporters/zipkin/>): ids in lowercase
//! hex, `parentId` only on child spans, `kind` `SERVER`/`CLIENT`, `timestamp` and `duration` in
//! microseconds, `localEndpoint.serviceName` from `service.name`, attributes as string `tags`,
//! an Error status as the tags `otel.status_code: ERROR` and `error: <description>`, the
//! instrumentation scope as `otel.scope.name`/`otel.scope.version`, events as `annotations`,
//! and the upstream backend of a CLIENT span as its `remoteEndpoint`. Zipkin has no links and
//! no `tracestate`; they are not sent.
//!
//! Written here rather than through the `opentelemetry-zipkin` crate: its 0.33 release is
//! deprecated upstream and never writes `localEndpoint.serviceName` (its endpoint type has no
//! such field and it ignores the resource), so every span would reach Zipkin without a
//! service. Like the OTLP encoder, this one writes a batch into one reused buffer.

use super::pipeline::BatchExporter;
use super::settings::ExporterSettings;
use super::transport::HttpPost;
use crate::trace::span::{AttrScratch, AttrValue, EventView, Kind, SpanBody, SpanRecord};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Appends `,"key":"value"` (a tag; values are always strings in Zipkin).
fn push_tag(out: &mut String, first: &mut bool, key: &str, v: AttrValue<'_>) {
    if !*first {
        out.push(',');
    }
    *first = false;
    push_json_str(out, key);
    out.push(':');
    match v {
        AttrValue::Str(s) => push_json_str(out, s),
        AttrValue::Int(i) => {
            let _ = write!(out, "\"{i}\"");
        }
        AttrValue::Bool(b) => {
            let _ = write!(out, "\"{b}\"");
        }
        AttrValue::F64(x) => {
            let _ = write!(out, "\"{x}\"");
        }
        AttrValue::StrList(l) => {
            // Arrays become the JSON text of the array (OpenTelemetry Zipkin spec).
            let mut text = String::from("[");
            for (i, s) in l.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                push_json_str(&mut text, s);
            }
            text.push(']');
            push_json_str(out, &text);
        }
    }
}

fn push_endpoint(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            let _ = write!(out, "{{\"ipv4\":\"{}\",\"port\":{}}}", a.ip(), a.port());
        }
        SocketAddr::V6(a) => {
            let _ = write!(out, "{{\"ipv6\":\"{}\",\"port\":{}}}", a.ip(), a.port());
        }
    }
}

/// Encodes batches of span records as a Zipkin v2 JSON array.
#[derive(Debug)]
pub struct ZipkinEncoder {
    /// `"localEndpoint":{...}`, written once.
    local_endpoint: String,
    /// `"otel.scope.name":...,"otel.scope.version":...`, written once.
    scope_tags: String,
    scratch: AttrScratch,
}

impl ZipkinEncoder {
    /// An encoder for spans of service `service_name`, reported under the instrumentation scope
    /// `scope_name`/`scope_version`.
    pub fn new(service_name: &str, scope_name: &str, scope_version: &str) -> Self {
        let mut local_endpoint = String::from("\"localEndpoint\":{\"serviceName\":");
        push_json_str(&mut local_endpoint, service_name);
        local_endpoint.push('}');
        let mut scope_tags = String::new();
        let mut first = true;
        push_tag(
            &mut scope_tags,
            &mut first,
            "otel.scope.name",
            AttrValue::Str(scope_name),
        );
        if !scope_version.is_empty() {
            push_tag(
                &mut scope_tags,
                &mut first,
                "otel.scope.version",
                AttrValue::Str(scope_version),
            );
        }
        ZipkinEncoder {
            local_endpoint,
            scope_tags,
            scratch: AttrScratch::default(),
        }
    }

    /// Replaces `out` with the JSON array for `batch`.
    pub fn encode(&mut self, batch: &[SpanRecord], out: &mut String) {
        out.clear();
        out.push('[');
        for (i, r) in batch.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.encode_span(r, out);
        }
        out.push(']');
    }

    fn encode_span(&mut self, r: &SpanRecord, out: &mut String) {
        out.push_str("{\"traceId\":\"");
        push_hex(out, &r.trace_id.0);
        out.push_str("\",\"id\":\"");
        push_hex(out, &r.span_id.0);
        out.push('"');
        if let Some(p) = r.parent {
            out.push_str(",\"parentId\":\"");
            push_hex(out, &p.0);
            out.push('"');
        }
        out.push_str(",\"kind\":");
        out.push_str(match r.kind() {
            Kind::Server => "\"SERVER\"",
            Kind::Client => "\"CLIENT\"",
        });
        out.push_str(",\"name\":");
        match r.name_parts() {
            (m, Some(route)) => {
                let mut name = String::with_capacity(m.len() + 1 + route.len());
                name.push_str(m);
                name.push(' ');
                name.push_str(route);
                push_json_str(out, &name);
            }
            (m, None) => push_json_str(out, m),
        }
        let start = micros(r.start);
        // Zipkin wants a positive duration; a span shorter than 1 µs is reported as 1 µs.
        let duration = micros(r.end).saturating_sub(start).max(1);
        let _ = write!(out, ",\"timestamp\":{start},\"duration\":{duration},");
        out.push_str(&self.local_endpoint);
        if let SpanBody::Client(c) = &r.body {
            if let Some(b) = c.backend {
                out.push_str(",\"remoteEndpoint\":");
                push_endpoint(out, b);
            }
        }
        let mut first_event = true;
        r.for_each_event(|EventView { name, time }| {
            out.push_str(if first_event {
                ",\"annotations\":["
            } else {
                ","
            });
            first_event = false;
            let _ = write!(out, "{{\"timestamp\":{},\"value\":", micros(time));
            push_json_str(out, name);
            out.push('}');
        });
        if !first_event {
            out.push(']');
        }
        out.push_str(",\"tags\":{");
        out.push_str(&self.scope_tags);
        let mut first = self.scope_tags.is_empty();
        r.for_each_attribute(&mut self.scratch, |k, v| push_tag(out, &mut first, k, v));
        if let Some(d) = r.error_description(&mut self.scratch) {
            push_tag(out, &mut first, "otel.status_code", AttrValue::Str("ERROR"));
            push_tag(out, &mut first, "error", AttrValue::Str(d));
        }
        out.push_str("}}");
    }
}

/// The Zipkin exporter: encoder plus HTTP sender, driven by the pipeline's exporter thread.
#[derive(Debug)]
pub struct ZipkinExporter {
    encoder: ZipkinEncoder,
    post: HttpPost,
    json: String,
    body: Vec<u8>,
}

impl ZipkinExporter {
    /// An exporter posting to `settings.endpoint` (the full URL, e.g.
    /// `http://zipkin:9411/api/v2/spans`) with the configured headers, compression and TLS.
    pub fn new(encoder: ZipkinEncoder, settings: &ExporterSettings) -> Result<Self, String> {
        Ok(ZipkinExporter {
            encoder,
            post: HttpPost::new(
                &settings.endpoint,
                "application/json",
                settings.timeout,
                &settings.headers,
                settings.compression,
                &settings.tls,
            )?,
            json: String::new(),
            body: Vec::new(),
        })
    }
}

impl BatchExporter for ZipkinExporter {
    async fn export(&mut self, batch: &mut Vec<SpanRecord>) -> Result<u64, String> {
        self.encoder.encode(batch, &mut self.json);
        self.body.clear();
        self.body.extend_from_slice(self.json.as_bytes());
        self.post.post(&mut self.body).await?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::capture::CapturedHeader;
    use crate::trace::ids::{SpanId, TraceId};
    use crate::trace::span::{ClientFields, ServerFields};
    use std::borrow::Cow;
    use std::time::Duration;

    fn at(us: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_micros(us)
    }

    fn server(parent: Option<SpanId>, status: u16) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId([0x4b; 16]),
            span_id: SpanId([0xda; 8]),
            parent,
            parent_is_remote: true,
            flags: 1,
            tracestate: None,
            start: at(0),
            end: at(2421),
            link: None,
            body: SpanBody::Server(Box::new(ServerFields {
                method: http::Method::GET,
                route: Some("api \"v2\"".into()),
                middleware: None,
                path: "/v2/users/42".into(),
                scheme: "http",
                server_address: None,
                server_port: None,
                client_address: None,
                client_port: None,
                user_agent: Some("curl\n\u{1}".into()),
                protocol_version: "1.1",
                status,
                error_type: None,
                query: Some("page=2".into()),
                request_headers: vec![CapturedHeader {
                    key: "http.request.header.accept".into(),
                    values: vec!["text/html".into(), "a\"b".into()],
                }],
                response_headers: Vec::new(),
            })),
        }
    }

    fn client() -> SpanRecord {
        SpanRecord {
            trace_id: TraceId([0x4b; 16]),
            span_id: SpanId([0x6c; 8]),
            parent: Some(SpanId([0xda; 8])),
            parent_is_remote: false,
            flags: 1,
            tracestate: None,
            start: at(300),
            end: at(300),
            link: None,
            body: SpanBody::Client(Box::new(ClientFields {
                method: http::Method::GET,
                middleware: None,
                upstream: Some("api".into()),
                backend: Some("[2001:db8::1]:8080".parse().unwrap()),
                path: "/users/42".into(),
                tls: false,
                protocol_version: None,
                status: None,
                error_type: Some(Cow::Borrowed("connection_refused")),
                error_message: Some("Connection refused".into()),
                resend_count: 0,
                connection_reused: Some(false),
                connect_duration: None,
                connected_at: Some(at(350)),
                first_byte_at: None,
            })),
        }
    }

    /// The output is valid JSON with the fields Zipkin reads, checked with a real JSON parser.
    #[test]
    fn zipkin_json_fields() {
        let mut enc = ZipkinEncoder::new("edge \"1\"", "tracegate", "1.2.3");
        let mut out = String::new();
        enc.encode(
            &[
                server(None, 200),
                server(Some(SpanId([7; 8])), 503),
                client(),
            ],
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        let spans = v.as_array().unwrap();
        // (index, field pointer, expected, reason)
        let cases: &[(usize, &str, serde_json::Value, &str)] = &[
            (0, "/traceId", "4b".repeat(16).into(), "trace id in hex"),
            (0, "/id", "da".repeat(8).into(), "span id in hex"),
            (0, "/parentId", serde_json::Value::Null, "root: no parentId"),
            (1, "/parentId", "07".repeat(8).into(), "child: parentId"),
            (0, "/kind", "SERVER".into(), "server kind"),
            (2, "/kind", "CLIENT".into(), "client kind"),
            (0, "/name", "GET api \"v2\"".into(), "name escaped"),
            (
                0,
                "/timestamp",
                1_700_000_000_000_000u64.into(),
                "µs timestamp",
            ),
            (0, "/duration", 2421.into(), "µs duration"),
            (2, "/duration", 1.into(), "zero duration becomes 1 µs"),
            (
                0,
                "/localEndpoint/serviceName",
                "edge \"1\"".into(),
                "service name",
            ),
            (
                2,
                "/remoteEndpoint/ipv6",
                "2001:db8::1".into(),
                "backend as remote endpoint",
            ),
            (2, "/remoteEndpoint/port", 8080.into(), "backend port"),
            (0, "/tags/http.request.method", "GET".into(), "string tag"),
            (
                0,
                "/tags/http.response.status_code",
                "200".into(),
                "int tag as string",
            ),
            (
                0,
                "/tags/user_agent.original",
                "curl\n\u{1}".into(),
                "control chars escaped",
            ),
            (0, "/tags/url.query", "page=2".into(), "query tag"),
            (
                0,
                "/tags/http.request.header.accept",
                r#"["text/html","a\"b"]"#.into(),
                "string array as JSON text",
            ),
            (0, "/tags/otel.scope.name", "tracegate".into(), "scope name"),
            (
                0,
                "/tags/otel.scope.version",
                "1.2.3".into(),
                "scope version",
            ),
            (
                0,
                "/tags/otel.status_code",
                serde_json::Value::Null,
                "unset status: no tag",
            ),
            (
                1,
                "/tags/otel.status_code",
                "ERROR".into(),
                "5xx: error status",
            ),
            (1, "/tags/error", "503".into(), "error description"),
            (
                2,
                "/tags/error",
                "Connection refused".into(),
                "client failure description",
            ),
            (
                2,
                "/tags/tracegate.upstream.connection_reused",
                "false".into(),
                "bool tag",
            ),
            (
                2,
                "/annotations/0/value",
                "upstream.connected".into(),
                "event as annotation",
            ),
            (
                2,
                "/annotations/0/timestamp",
                1_700_000_000_000_350u64.into(),
                "event time",
            ),
            (
                0,
                "/annotations",
                serde_json::Value::Null,
                "no events: no annotations",
            ),
        ];
        for (i, ptr, want, why) in cases {
            let got = spans[*i]
                .pointer(ptr)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            assert_eq!(&got, want, "{why}: span {i} {ptr} in {out}");
        }
        enc.encode(&[], &mut out);
        assert_eq!(out, "[]");
    }
}
