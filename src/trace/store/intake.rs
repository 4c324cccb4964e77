//! The OTLP intake's decoding: an OTLP/HTTP `ExportTraceServiceRequest`, as protobuf or as
//! OTLP/JSON (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>), into stored spans.
//!
//! Messages come from `opentelemetry-proto` (its prost types, and its serde support for the
//! JSON mapping: hex ids, integer enums, 64-bit integers as strings). What a span may bring
//! is bounded before it is kept: [`MAX_ATTRIBUTES`] attributes, events and links per span,
//! values cut at [`MAX_VALUE_LEN`] bytes. A span with an invalid trace or span id (OTLP: 16 and
//! 8 bytes, not all zeros) is rejected and counted, as OTLP's partial success reports.

use super::span::{Attribute, Event, Link, Process, SpanKind, SpanSnapshot, Status, Value};
use crate::trace::ids::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use std::sync::Arc;

/// Attributes (and events, and links) kept per span, and per resource.
pub const MAX_ATTRIBUTES: usize = 128;
/// Bytes kept of a string or bytes value, and of a name.
pub const MAX_VALUE_LEN: usize = 4096;

/// The encoding of an intake request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// Decoded spans, and how many the request carried that were rejected.
#[derive(Debug, Default)]
pub struct Decoded {
    pub spans: Vec<SpanSnapshot>,
    pub rejected: u64,
}

/// Decodes an intake request body; `Err` says why it is not a valid request.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<Decoded, String> {
    let req: ExportTraceServiceRequest = match encoding {
        Encoding::Protobuf => {
            prost::Message::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"))?
        }
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON: {e}"))?
        }
    };
    Ok(convert(req))
}

fn convert(req: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for rs in req.resource_spans {
        let mut service = None;
        let mut tags = Vec::new();
        for kv in rs.resource.map(|r| r.attributes).unwrap_or_default() {
            let (k, v) = attribute(kv);
            if k == "service.name" {
                if let Value::Str(s) = &v {
                    service = Some(s.clone());
                    continue;
                }
            }
            if tags.len() < MAX_ATTRIBUTES {
                tags.push((k, v));
            }
        }
        let process = Arc::new(Process {
            // The SDKs' default when the resource names no service.
            service: service.unwrap_or_else(|| "unknown_service".to_owned()),
            tags,
        });
        for ss in rs.scope_spans {
            let scope = ss
                .scope
                .map(|s| (cut(s.name), cut(s.version)))
                .filter(|(n, _)| !n.is_empty());
            for s in ss.spans {
                let (Some(tid), Some(sid)) = (trace_id(&s.trace_id), span_id(&s.span_id)) else {
                    out.rejected += 1;
                    continue;
                };
                // An empty or invalid parent id means a root span.
                let parent = span_id(&s.parent_span_id);
                let start_us = s.start_time_unix_nano / 1000;
                let end_us = (s.end_time_unix_nano / 1000).max(start_us);
                let status = match s.status {
                    Some(st) if st.code == 2 => Status::Error(cut(st.message)),
                    Some(st) if st.code == 1 => Status::Ok,
                    _ => Status::Unset,
                };
                out.spans.push(SpanSnapshot {
                    trace_id: tid,
                    span_id: sid,
                    parent,
                    flags: (s.flags & 0xff) as u8,
                    name: cut(s.name),
                    kind: match s.kind {
                        1 => SpanKind::Internal,
                        2 => SpanKind::Server,
                        3 => SpanKind::Client,
                        4 => SpanKind::Producer,
                        5 => SpanKind::Consumer,
                        _ => SpanKind::Unspecified,
                    },
                    start_us,
                    duration_us: end_us - start_us,
                    attributes: attributes(s.attributes),
                    events: s
                        .events
                        .into_iter()
                        .take(MAX_ATTRIBUTES)
                        .map(|e| Event {
                            name: cut(e.name),
                            time_us: e.time_unix_nano / 1000,
                            attributes: attributes(e.attributes),
                        })
                        .collect(),
                    links: s
                        .links
                        .into_iter()
                        .filter_map(|l| {
                            Some(Link {
                                trace_id: trace_id(&l.trace_id)?,
                                span_id: span_id(&l.span_id)?,
                            })
                        })
                        .take(MAX_ATTRIBUTES)
                        .collect(),
                    status,
                    scope: scope.clone(),
                    process: Arc::clone(&process),
                });
            }
        }
    }
    out
}

fn trace_id(b: &[u8]) -> Option<TraceId> {
    let id = TraceId(b.try_into().ok()?);
    (!id.is_zero()).then_some(id)
}

fn span_id(b: &[u8]) -> Option<SpanId> {
    let id = SpanId(b.try_into().ok()?);
    (!id.is_zero()).then_some(id)
}

/// `s` cut to at most [`MAX_VALUE_LEN`] bytes, at a character boundary.
fn cut(mut s: String) -> String {
    if s.len() > MAX_VALUE_LEN {
        let mut end = MAX_VALUE_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        // `truncate` keeps the whole buffer: without this a 16 MiB value would hold 16 MiB
        // while the store counts 4 KiB of it.
        s.shrink_to_fit();
    }
    s
}

fn attributes(kvs: Vec<KeyValue>) -> Vec<Attribute> {
    kvs.into_iter()
        .take(MAX_ATTRIBUTES)
        .map(attribute)
        .collect()
}

fn attribute(kv: KeyValue) -> Attribute {
    (cut(kv.key), value(kv.value))
}

fn value(v: Option<AnyValue>) -> Value {
    match v.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => Value::Str(cut(s)),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => Value::Int(i),
        Some(any_value::Value::DoubleValue(x)) => Value::F64(x),
        Some(any_value::Value::BytesValue(mut b)) => {
            if b.len() > MAX_VALUE_LEN {
                b.truncate(MAX_VALUE_LEN);
                b.shrink_to_fit();
            }
            Value::Bytes(b)
        }
        Some(other) => Value::Json(cut(json(&other).to_string())),
        None => Value::Str(String::new()),
    }
}

/// An array or map value as JSON (strings, numbers and booleans as themselves).
fn json(v: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(x) => J::from(*x),
        any_value::Value::BytesValue(b) => {
            J::String(b.iter().map(|x| format!("{x:02x}")).collect())
        }
        any_value::Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .take(MAX_ATTRIBUTES)
                .filter_map(|v| v.value.as_ref().map(json))
                .collect(),
        ),
        any_value::Value::KvlistValue(l) => J::Object(
            l.values
                .iter()
                .take(MAX_ATTRIBUTES)
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value
                            .as_ref()
                            .and_then(|v| v.value.as_ref())
                            .map_or(J::Null, json),
                    )
                })
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OTLP/JSON example of the opentelemetry-proto repository (examples/trace.json,
    /// v1.3.2), cut to one span: hex ids, integer kind, nanoseconds as strings.
    const EXAMPLE_JSON: &str = r#"{
      "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
        "scopeSpans": [{
          "scope": {"name": "my.library", "version": "1.0.0",
                    "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
          "spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "EEE19B7EC3C1B173",
            "name": "I'm a server span",
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": "1544712661000000000",
            "kind": 2,
            "attributes": [
              {"key": "my.span.attr", "value": {"stringValue": "some value"}},
              {"key": "n", "value": {"intValue": "42"}},
              {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 1}]}}}
            ],
            "events": [{"timeUnixNano": "1544712660500000000", "name": "half"}],
            "status": {"code": 2, "message": "boom"}
          }]
        }]
      }]
    }"#;

    #[test]
    fn the_otlp_json_example_decodes() {
        let d = decode(EXAMPLE_JSON.as_bytes(), Encoding::Json).expect("decodes");
        assert_eq!(d.rejected, 0);
        assert_eq!(d.spans.len(), 1);
        let s = &d.spans[0];
        assert_eq!(s.trace_id.to_hex(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.span_id.to_hex(), "eee19b7ec3c1b174");
        assert_eq!(
            s.parent.map(|p| p.to_hex()).as_deref(),
            Some("eee19b7ec3c1b173")
        );
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.start_us, 1_544_712_660_000_000);
        assert_eq!(s.duration_us, 1_000_000, "one second, in microseconds");
        assert_eq!(s.process.service, "my.service");
        assert!(
            s.process.tags.is_empty(),
            "service.name is the process's name, not a tag"
        );
        assert_eq!(s.status, Status::Error("boom".into()));
        assert_eq!(
            s.attribute("n"),
            Some(&Value::Int(42)),
            "intValue as a string"
        );
        assert_eq!(
            s.attribute("list"),
            Some(&Value::Json(r#"["a",1]"#.into())),
            "an array is kept as JSON"
        );
        assert_eq!(s.events[0].name, "half");
        assert_eq!(s.events[0].time_us, 1_544_712_660_500_000);
        assert_eq!(s.scope, Some(("my.library".into(), "1.0.0".into())));
    }

    #[test]
    fn protobuf_and_json_decode_to_the_same_spans() {
        let req: ExportTraceServiceRequest = serde_json::from_str(EXAMPLE_JSON).unwrap();
        let bytes = prost::Message::encode_to_vec(&req);
        let a = decode(&bytes, Encoding::Protobuf).unwrap();
        let b = decode(EXAMPLE_JSON.as_bytes(), Encoding::Json).unwrap();
        assert_eq!(a.spans, b.spans);
    }

    #[test]
    fn invalid_bodies_and_ids_table() {
        // (body, encoding, Ok(rejected) or Err(words), why)
        type Case<'a> = (&'a [u8], Encoding, Result<u64, &'a str>, &'a str);
        let zero_trace = EXAMPLE_JSON.replace(
            "5B8EFFF798038103D269B633813FC60C",
            "00000000000000000000000000000000",
        );
        let short_span = EXAMPLE_JSON.replace("EEE19B7EC3C1B174", "EEE19B");
        let odd_span = EXAMPLE_JSON.replace("EEE19B7EC3C1B174", "EEE19B7");
        let cases: &[Case] = &[
            (b"{}", Encoding::Json, Ok(0), "an empty request is valid"),
            (
                b"",
                Encoding::Protobuf,
                Ok(0),
                "an empty protobuf message is valid",
            ),
            (
                b"{",
                Encoding::Json,
                Err("invalid OTLP/JSON"),
                "truncated JSON",
            ),
            (
                b"\xff\xff\xff",
                Encoding::Protobuf,
                Err("invalid OTLP protobuf"),
                "not protobuf",
            ),
            (
                zero_trace.as_bytes(),
                Encoding::Json,
                Ok(1),
                "an all-zero trace id is invalid (OTLP)",
            ),
            (
                short_span.as_bytes(),
                Encoding::Json,
                Ok(1),
                "a span id of 3 bytes is invalid",
            ),
            (
                odd_span.as_bytes(),
                Encoding::Json,
                Err("invalid OTLP/JSON"),
                "an odd-length hex id is not hex",
            ),
        ];
        for (body, enc, want, why) in cases {
            match (decode(body, *enc), want) {
                (Ok(d), Ok(n)) => assert_eq!(d.rejected, *n, "{why}"),
                (Err(e), Err(words)) => assert!(e.contains(words), "{why}: {e}"),
                (got, _) => panic!("{why}: {:?}", got.map(|d| d.rejected)),
            }
        }
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_let_go_of_the_rest() {
        let s = "é".repeat(MAX_VALUE_LEN);
        let c = cut(s);
        assert!(c.len() <= MAX_VALUE_LEN && c.is_char_boundary(c.len()));
        assert!(
            c.capacity() <= MAX_VALUE_LEN,
            "the cut value does not keep the original buffer: {}",
            c.capacity()
        );
    }
}
