//! Checks that the shared test harness in `tests/common` works on its own,
//! independently of the proxy.

mod common;

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, SystemTime};

use common::*;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use opentelemetry_sdk::Resource;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn upstream_answers_and_records_requests() {
    let up = Upstream::start("b1");

    let resp = http_get(
        &up.addr(),
        "/hello?x=1",
        &[("x-custom", "abc"), ("x-dup", "one"), ("x-dup", "two")],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "b1");
    assert_eq!(resp.header("x-backend"), Some("b1"));
    assert_eq!(resp.header("X-Backend"), Some("b1"));

    let reqs = up.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    let r = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path_and_query, "/hello?x=1");
    assert_eq!(r.header_values("x-custom"), vec!["abc"]);
    assert_eq!(r.header_values("X-Dup"), vec!["one", "two"]);
    assert_eq!(r.header_values("host"), vec![up.addr().as_str()]);
    assert!(r.headers.iter().all(|(k, _)| *k == k.to_ascii_lowercase()));

    let resp = http_get(&up.addr(), "/status/503", &[]);
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("x-backend"), Some("b1"));
    assert_eq!(resp.body_str(), "b1");

    let resp = http_get(&up.addr(), "/status/204/extra", &[]);
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());

    let resp = http_get(&up.addr(), "/slow/30", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "b1");

    let resp = http_request(
        &up.addr(),
        "POST",
        "/submit",
        &[("content-type", "text/plain")],
        b"payload",
    );
    assert_eq!(resp.status, 200);

    let reqs = up.wait_for_requests(5, WAIT);
    assert_eq!(reqs.len(), 5);
    assert_eq!(reqs[4].method, "POST");
    assert_eq!(reqs[4].body, b"payload");
    assert_eq!(reqs[4].header_values("content-length"), vec!["7"]);
}

#[test]
fn upstreams_are_independent_and_stop_on_drop() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    assert_ne!(a.addr(), b.addr());
    assert_eq!(http_get(&a.addr(), "/", &[]).body_str(), "a");
    assert_eq!(http_get(&b.addr(), "/", &[]).body_str(), "b");
    assert_eq!(a.requests().len(), 1);
    assert_eq!(b.requests().len(), 1);

    let addr = a.addr();
    drop(a);
    assert!(
        try_http_request(&addr, "GET", "/", &[], b"").is_err(),
        "dropped upstream still answers"
    );
}

#[test]
fn dead_addr_refuses_connections() {
    let addr = dead_addr();
    assert!(addr.starts_with("127.0.0.1:"));
    assert!(std::net::TcpStream::connect(&addr).is_err());
    assert!(try_http_request(&addr, "GET", "/", &[], b"").is_err());
}

/// A one-shot raw server: returns the exact request bytes it received and
/// answers with `response` verbatim.
fn raw_server(response: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(&stream);
        let mut got = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                break;
            }
            got.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        (&stream).write_all(response).unwrap();
        got
    });
    (addr, handle)
}

#[test]
fn client_writes_raw_headers_and_parses_chunked() {
    let (addr, server) = raw_server(
        b"HTTP/1.1 100 Continue\r\n\r\n\
          HTTP/1.1 207 Multi-Status\r\n\
          Transfer-Encoding: chunked\r\n\
          Set-Cookie: a=1\r\n\
          Set-Cookie: b=2\r\n\
          \r\n\
          5\r\nhello\r\n\
          7;ext=1\r\n, world\r\n\
          0\r\nx-trailer: t\r\n\r\n",
    );
    let resp = http_get(
        &addr,
        "/raw",
        &[("X-Dup", "1"), ("x-dup", "2"), ("x-bad", "a\tb")],
    );
    let request = String::from_utf8(server.join().unwrap()).unwrap();
    assert_eq!(
        request,
        format!(
            "GET /raw HTTP/1.1\r\nHost: {addr}\r\nX-Dup: 1\r\nx-dup: 2\r\nx-bad: a\tb\r\n\
             Connection: close\r\n\r\n"
        )
    );
    assert_eq!(resp.status, 207);
    assert_eq!(resp.body_str(), "hello, world");
    assert_eq!(resp.header_values("set-cookie"), vec!["a=1", "b=2"]);
}

#[test]
fn client_respects_caller_host_and_reads_to_eof() {
    let (addr, server) = raw_server(b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nuntil eof");
    let resp = http_get(&addr, "/", &[("host", "example.test")]);
    let request = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(request.contains("\r\nhost: example.test\r\n"), "{request}");
    assert!(!request.contains("Host: 127.0.0.1"), "{request}");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-a"), Some("b"));
    assert_eq!(resp.body_str(), "until eof");
}

#[test]
fn listening_line_parsing() {
    assert_eq!(
        parse_listening_addr(
            "2024-01-01T00:00:00Z INFO tracegate: listening on http://127.0.0.1:4567"
        ),
        Some("127.0.0.1:4567".to_string())
    );
    assert_eq!(
        parse_listening_addr("\u{1b}[32m INFO\u{1b}[0m listening on http://127.0.0.1:80\u{1b}[0m"),
        Some("127.0.0.1:80".to_string())
    );
    assert_eq!(
        parse_listening_addr("listening on http://127.0.0.1:9000 (edge)"),
        Some("127.0.0.1:9000".to_string())
    );
    assert_eq!(parse_listening_addr("starting up"), None);
    assert_eq!(strip_ansi("\u{1b}[1;31mred\u{1b}[0m text"), "red text");
}

#[test]
fn write_temp_config_writes_file() {
    let (dir, path) = write_temp_config("listen: [\"127.0.0.1:0\"]\n");
    assert!(path.starts_with(dir.path()));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "listen: [\"127.0.0.1:0\"]\n"
    );
    drop(dir);
    assert!(!path.exists());
}

const TRACE_ID: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const TRACE_ID_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
const SPAN_ID_HEX: &str = "00f067aa0ba902b7";
const PARENT_ID: [u8; 8] = [0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8];
const PARENT_ID_HEX: &str = "53995c3f42cd8ad8";

fn sample_span(name: &'static str, kind: SpanKind, with_event: bool) -> SpanData {
    let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_000);
    let end = start + Duration::from_millis(5);
    let mut events = SpanEvents::default();
    if with_event {
        events.events.push(Event::new(
            "upstream.retry",
            start + Duration::from_millis(1),
            vec![KeyValue::new("retry.attempt", 1i64)],
            0,
        ));
    }
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(TRACE_ID),
            SpanId::from_bytes(SPAN_ID),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from_bytes(PARENT_ID),
        parent_span_is_remote: true,
        span_kind: kind,
        name: Cow::Borrowed(name),
        start_time: start,
        end_time: end,
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 502i64),
            KeyValue::new("tracegate.selftest", true),
        ],
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: Status::error("bad gateway"),
        instrumentation_scope: InstrumentationScope::builder("harness-selftest").build(),
    }
}

fn check_span(s: &ReceivedSpan, name: &str, kind: i32) {
    assert_eq!(s.trace_id, TRACE_ID_HEX);
    assert_eq!(s.span_id, SPAN_ID_HEX);
    assert_eq!(s.parent_span_id, PARENT_ID_HEX);
    assert!(!s.is_root());
    assert_eq!(s.name, name);
    assert_eq!(s.kind, kind);
    assert_eq!(s.start_ns, 1_700_000_000_000_000_000);
    assert_eq!(s.end_ns, 1_700_000_000_005_000_000);
    assert_eq!(s.attr_str("http.request.method"), Some("GET"));
    assert_eq!(s.attr_int("http.response.status_code"), Some(502));
    assert_eq!(s.attr_bool("tracegate.selftest"), Some(true));
    assert_eq!(s.attr("tracegate.selftest"), Some(&AttrValue::Bool(true)));
    assert_eq!(s.attr_str("http.response.status_code"), None);
    assert_eq!(s.status_code, ReceivedSpan::STATUS_ERROR);
    assert_eq!(s.status_message, "bad gateway");
    // Sampled bit, plus the "has remote parent" bits the SDK encodes.
    assert_eq!(s.flags & 0xff, 0x01);
}

fn resource(service: &'static str) -> Resource {
    Resource::builder_empty().with_service_name(service).build()
}

#[test]
fn grpc_receiver_records_exported_span() {
    let receiver = OtlpReceiver::grpc();
    assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(receiver.endpoint())
            .with_timeout(Duration::from_secs(10))
            .build()
            .expect("build gRPC exporter");
        exporter.set_resource(&resource("selftest-grpc"));
        exporter
            .export(vec![sample_span("GET /grpc", SpanKind::Server, true)])
            .await
    });
    result.expect("gRPC export succeeded");

    let spans = receiver.wait_for_spans(1, WAIT);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let s = &spans[0];
    check_span(s, "GET /grpc", 2);
    assert!(s.is_server());
    assert!(!s.is_client());
    assert_eq!(s.events.len(), 1);
    let (ev_name, ev_time, ev_attrs) = &s.events[0];
    assert_eq!(ev_name, "upstream.retry");
    assert_eq!(*ev_time, 1_700_000_000_001_000_000);
    assert_eq!(ev_attrs.get("retry.attempt"), Some(&AttrValue::Int(1)));
    assert!(s.event("upstream.retry").is_some());

    assert_eq!(receiver.requests(), 1);
    assert_eq!(receiver.service_names(), vec!["selftest-grpc".to_string()]);
    assert_eq!(
        receiver.resource_attributes()[0].get("service.name"),
        Some(&AttrValue::Str("selftest-grpc".into()))
    );
    assert_eq!(receiver.spans(), spans);
    let headers = &receiver.request_headers()[0];
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/grpc")),
        "{headers:?}"
    );
    drop(rt);
}

#[test]
fn http_receiver_records_exported_span() {
    // tracegate builds reqwest with rustls but no process-wide crypto provider (it hands its
    // clients a ready config); the SDK exporter's own reqwest client needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let receiver = OtlpReceiver::http();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", receiver.endpoint()))
            .with_timeout(Duration::from_secs(10))
            .build()
            .expect("build HTTP exporter");
        exporter.set_resource(&resource("selftest-http"));
        exporter
            .export(vec![sample_span("GET /http", SpanKind::Client, false)])
            .await
    });
    result.expect("HTTP export succeeded");

    let spans = receiver.wait_for_spans(1, WAIT);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let s = &spans[0];
    check_span(s, "GET /http", 3);
    assert!(s.is_client());
    assert!(!s.is_server());
    assert!(s.events.is_empty());
    assert_eq!(receiver.requests(), 1);
    assert_eq!(receiver.service_names(), vec!["selftest-http".to_string()]);
    let headers = &receiver.request_headers()[0];
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/x-protobuf"),
        "{headers:?}"
    );

    // Anything but POST /v1/traces with protobuf is refused and not recorded.
    let addr = receiver
        .endpoint()
        .trim_start_matches("http://")
        .to_string();
    assert_eq!(http_get(&addr, "/v1/metrics", &[]).status, 404);
    assert_eq!(http_get(&addr, "/", &[]).status, 404);
    assert_eq!(http_get(&addr, "/v1/traces", &[]).status, 405);
    assert_eq!(
        http_request(
            &addr,
            "POST",
            "/v1/traces",
            &[("content-type", "application/json")],
            b"{}"
        )
        .status,
        415
    );
    assert_eq!(
        http_request(
            &addr,
            "POST",
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            b"\xff\xff\xff"
        )
        .status,
        400
    );
    // An empty protobuf body is a valid (empty) export request.
    let ok = http_request(
        &addr,
        "POST",
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(receiver.requests(), 2);
    assert_eq!(receiver.spans().len(), 1);
    drop(rt);
}

#[test]
#[should_panic(expected = "timed out")]
fn wait_for_spans_panics_with_listing_on_timeout() {
    let receiver = OtlpReceiver::grpc();
    receiver.wait_for_spans(1, Duration::from_millis(100));
}
