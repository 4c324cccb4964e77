//! The line formats, case by case (each with its reason), and by property: any method, path,
//! query and user agent gives one line that parses back to what was sent.

use super::*;
use crate::exchange::{AttemptRecord, Downstream, Failure, TraceRef, UpstreamPart};
use crate::trace::capture::QueryMode;
use proptest::prelude::*;
use regex::Regex;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const TRACE: TraceRef = TraceRef {
    trace_id: [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ],
    span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
    sampled: true,
};

/// 2023-11-14T22:13:20.042Z.
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_042)
}

fn redacted() -> Capture {
    Capture::new(&[], &[], QueryMode::Redacted, &[])
}

fn downstream() -> Downstream {
    Downstream::new(
        false,
        Some("Shop.Example.com:8080"),
        Some("192.0.2.7:51000".parse().unwrap()),
        Some("127.0.0.1:8080".parse().unwrap()),
    )
}

/// A GET of `/items` answered by the proxy with 200 and 5 body bytes, in 1.234 ms.
fn base<'a>(d: &'a Downstream, m: &'a http::Method) -> Exchange<'a> {
    Exchange {
        downstream: d,
        method: m,
        path: "/items",
        query: None,
        version: http::Version::HTTP_11,
        user_agent: Some("curl/8.5.0"),
        referer: None,
        start: start(),
        duration: Duration::from_micros(1234),
        request_body_bytes: 0,
        response_body_bytes: 5,
        attempts: &[],
        route: Some("shop"),
        middleware: None,
        auth: None,
        status: 200,
        upstream: None,
        failure: None,
        trace: Some(TRACE),
    }
}

fn json_of(x: &Exchange<'_>, q: &Capture) -> Value {
    let mut v = Vec::new();
    json(&mut v, x, q);
    assert!(
        !v.contains(&b'\n'),
        "one line: {}",
        String::from_utf8_lossy(&v)
    );
    serde_json::from_slice(&v).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&v)))
}

fn combined_of(x: &Exchange<'_>, q: &Capture) -> String {
    let mut v = Vec::new();
    combined(&mut v, x, q);
    String::from_utf8(v).expect("combined lines are ASCII")
}

/// A change to the base request, borrowing what the test keeps (`'s`).
type Edit<'s> = Box<dyn Fn(&mut Exchange<'s>) + 's>;

fn attempt(backend: &str, status: Option<u16>, error: Option<&'static str>) -> AttemptRecord {
    let t0 = Instant::now();
    AttemptRecord {
        backend: backend.parse().unwrap(),
        started: t0,
        connect: Some(Duration::from_micros(250)),
        ttfb: status.map(|_| Duration::from_micros(900)),
        status,
        error_type: error,
        ended: Some(t0 + Duration::from_micros(1100)),
        span_id: None,
    }
}

/// The exact bytes of one line: key order, number formats, the timestamp.
#[test]
fn a_json_line_exactly() {
    let (d, m) = (downstream(), http::Method::GET);
    let mut line = Vec::new();
    json(&mut line, &base(&d, &m), &redacted());
    assert_eq!(
        String::from_utf8(line).unwrap(),
        r#"{"timestamp":"2023-11-14T22:13:20.042Z","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","sampled":true,"client.address":"192.0.2.7","http.request.method":"GET","server.address":"shop.example.com","url.path":"/items","network.protocol.version":"1.1","user_agent.original":"curl/8.5.0","http.route":"shop","http.response.status_code":200,"http.request.body.size":0,"http.response.body.size":5,"duration_ms":1.234}"#
    );
}

#[test]
fn json_fields_table() {
    let (d, m) = (downstream(), http::Method::GET);
    let post = http::Method::POST;
    let v6 = Downstream::new(true, None, Some("[2001:db8::1]:443".parse().unwrap()), None);
    let one = [attempt("10.0.0.1:8080", Some(200), None)];
    let retried = [
        attempt("10.0.0.1:8080", None, Some("connection_refused")),
        attempt("10.0.0.2:8080", Some(200), None),
    ];
    let failed = [
        attempt("10.0.0.1:8080", None, Some("connection_refused")),
        attempt("10.0.0.2:8080", None, Some("connection_refused")),
    ];
    let up = || UpstreamPart {
        name: Arc::from("api"),
    };
    let refused = "connection refused";
    // (edit of the base request, query rules, fields expected beside the base's, fields the
    // base has that must be gone, reason)
    let cases: Vec<(Edit<'_>, Capture, Value, &[&str], &str)> = vec![
        (
            Box::new(|_| {}),
            redacted(),
            json!({}),
            &[],
            "the base line: answered by the proxy",
        ),
        (
            Box::new(|x| {
                x.upstream = Some(up());
                x.attempts = &one;
            }),
            redacted(),
            json!({"upstream": "api", "upstream.address": "10.0.0.1:8080", "upstream.status_code": 200,
                   "upstream.duration_ms": 1.1, "upstream.connect_ms": 0.25, "upstream.ttfb_ms": 0.9, "attempts": 1}),
            &[],
            "proxied: the upstream part",
        ),
        (
            Box::new(|x| {
                x.upstream = Some(up());
                x.attempts = &retried;
            }),
            redacted(),
            json!({"upstream": "api", "upstream.address": "10.0.0.2:8080", "upstream.status_code": 200,
                   "upstream.duration_ms": 1.1, "upstream.connect_ms": 0.25, "upstream.ttfb_ms": 0.9, "attempts": 2}),
            &[],
            "a retry: the last backend and its timings, two attempts",
        ),
        (
            Box::new(|x| {
                x.upstream = Some(up());
                x.attempts = &failed;
                x.status = 502;
                x.response_body_bytes = 0;
                x.failure = Some(Failure {
                    error_type: "connection_refused",
                    upstream: true,
                    message: &refused,
                });
            }),
            redacted(),
            json!({"upstream": "api", "upstream.address": "10.0.0.2:8080", "upstream.duration_ms": 1.1,
                   "upstream.connect_ms": 0.25, "attempts": 2, "http.response.status_code": 502,
                   "http.response.body.size": 0, "error.type": "connection_refused"}),
            &[],
            "every attempt failed: 502, the failure's class, no upstream status",
        ),
        (
            Box::new(|x| x.status = 503),
            redacted(),
            json!({"http.response.status_code": 503, "error.type": "503"}),
            &[],
            "a 5xx without a failure: the status is the error type",
        ),
        (
            Box::new(|x| {
                x.status = 404;
                x.route = None;
            }),
            redacted(),
            json!({"http.response.status_code": 404}),
            &["http.route"],
            "no route: 404, no route, no error (4xx is the client's)",
        ),
        (
            Box::new(|x| {
                x.status = 0;
                x.response_body_bytes = 0;
                x.failure = Some(Failure {
                    error_type: "client_closed",
                    upstream: false,
                    message: &"closed",
                });
            }),
            redacted(),
            json!({"http.response.status_code": 499, "http.response.body.size": 0, "error.type": "client_closed"}),
            &[],
            "the client left before a response: nginx's 499",
        ),
        (
            Box::new(|x| x.query = Some("q=shoes&access_token=abc&Sig=x")),
            redacted(),
            json!({"url.query": "q=shoes&access_token=REDACTED&Sig=REDACTED"}),
            &[],
            "the span's redaction rules",
        ),
        (
            Box::new(|x| x.query = Some("tenant=acme")),
            Capture::new(&[], &[], QueryMode::Redacted, &["tenant".into()]),
            json!({"url.query": "tenant=REDACTED"}),
            &[],
            "sensitive_query_keys apply too",
        ),
        (
            Box::new(|x| x.query = Some("token=abc")),
            Capture::new(&[], &[], QueryMode::Off, &[]),
            json!({}),
            &[],
            "query off: no url.query",
        ),
        (
            Box::new(|x| x.query = Some("token=abc")),
            Capture::new(&[], &[], QueryMode::Full, &[]),
            json!({"url.query": "token=abc"}),
            &[],
            "query full: as received",
        ),
        (
            Box::new(|x| x.query = Some("")),
            redacted(),
            json!({}),
            &[],
            "an empty query is no query",
        ),
        (
            Box::new(|x| {
                x.trace = Some(TraceRef {
                    sampled: false,
                    ..TRACE
                })
            }),
            redacted(),
            json!({"sampled": false}),
            &[],
            "not sampled: the ids are there all the same",
        ),
        (
            Box::new(|x| x.trace = None),
            redacted(),
            json!({}),
            &["trace_id", "span_id", "sampled"],
            "no trace: no ids",
        ),
        (
            Box::new(|x| {
                x.user_agent = None;
                x.route = None;
            }),
            redacted(),
            json!({}),
            &["user_agent.original", "http.route"],
            "absent values are left out, not null",
        ),
        (
            Box::new(|x| {
                x.downstream = &v6;
                x.method = &post;
                x.version = http::Version::HTTP_2;
                x.request_body_bytes = 17;
            }),
            redacted(),
            json!({"client.address": "2001:db8::1", "http.request.method": "POST",
                   "network.protocol.version": "2", "http.request.body.size": 17}),
            &["server.address"],
            "IPv6 client, HTTP/2 without an authority, a body",
        ),
        (
            Box::new(|x| x.duration = Duration::from_nanos(2_000_999_999)),
            redacted(),
            json!({"duration_ms": 2000.999}),
            &[],
            "milliseconds with microsecond digits, truncated",
        ),
    ];
    let base_line = json_of(&base(&d, &m), &redacted());
    for (edit, q, extra, gone, why) in cases {
        let mut x = base(&d, &m);
        edit(&mut x);
        let mut want = base_line.clone();
        let obj = want.as_object_mut().unwrap();
        for k in gone {
            assert!(obj.remove(*k).is_some(), "{why}: the base has {k}");
        }
        for (k, v) in extra.as_object().unwrap() {
            obj.insert(k.clone(), v.clone());
        }
        assert_eq!(json_of(&x, &q), want, "{why}");
    }
}

#[test]
fn combined_table() {
    let (d, m) = (downstream(), http::Method::GET);
    let t = "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7";
    let none = Downstream::default();
    // (edit, query rules, line, reason)
    let cases: Vec<(Edit<'_>, Capture, String, &str)> = vec![
        (
            Box::new(|_| {}),
            redacted(),
            format!(r#"192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] "GET /items HTTP/1.1" 200 5 "-" "curl/8.5.0" {t} rt=0.001"#),
            "nginx combined, then the trace and the request time",
        ),
        (
            Box::new(|x| {
                x.query = Some("q=1&password=hunter2");
                x.referer = Some("https://a.test/login?next=/x&session=s3cr3t");
            }),
            redacted(),
            format!(r#"192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] "GET /items?q=1&password=REDACTED HTTP/1.1" 200 5 "https://a.test/login?next=/x&session=REDACTED" "curl/8.5.0" {t} rt=0.001"#),
            "the request line and the Referer carry redacted queries",
        ),
        (
            Box::new(|x| {
                x.query = Some("token=1");
                x.referer = Some("https://a.test/?token=1#top");
            }),
            Capture::new(&[], &[], QueryMode::Off, &[]),
            format!(r#"192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] "GET /items HTTP/1.1" 200 5 "https://a.test/#top" "curl/8.5.0" {t} rt=0.001"#),
            "query off: no query in the request line nor in the Referer",
        ),
        (
            Box::new(|x| x.user_agent = Some("a \"quoted\" \\ agent\u{7f}")),
            redacted(),
            format!(r#"192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] "GET /items HTTP/1.1" 200 5 "-" "a \x22quoted\x22 \x5C agent\x7F" {t} rt=0.001"#),
            "quotes, backslashes and DEL as nginx escapes them",
        ),
        (
            Box::new(|x| x.path = "/caf\u{e9}\n"),
            redacted(),
            format!(r#"192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] "GET /caf\xC3\xA9\x0A HTTP/1.1" 200 5 "-" "curl/8.5.0" {t} rt=0.001"#),
            "bytes from 0x80 and control bytes as \\xHH: one line, ASCII only",
        ),
        (
            Box::new(|x| x.referer = Some("")),
            redacted(),
            format!(r#"192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] "GET /items HTTP/1.1" 200 5 "" "curl/8.5.0" {t} rt=0.001"#),
            "an empty Referer is empty, an absent one -",
        ),
        (
            Box::new(|x| {
                x.status = 0;
                x.response_body_bytes = 0;
                x.trace = None;
                x.downstream = &none;
                x.version = http::Version::HTTP_2;
                x.duration = Duration::from_millis(61_500);
            }),
            redacted(),
            r#"- - - [14/Nov/2023:22:13:20 +0000] "GET /items HTTP/2.0" 499 0 "-" "curl/8.5.0" trace_id=- span_id=- rt=61.500"#.to_owned(),
            "no response: 499; nothing known: -; HTTP/2 as nginx writes it",
        ),
    ];
    for (edit, q, want, why) in cases {
        let mut x = base(&d, &m);
        edit(&mut x);
        assert_eq!(combined_of(&x, &q), want, "{why}");
    }
}

/// Differential: the escaper against nginx's own table (`ngx_http_log_escape`'s bitmap,
/// copied from `src/http/modules/ngx_http_log_module.c`), for every byte.
#[test]
fn nginx_escaping_matches_nginx_table() {
    const ESCAPE: [u32; 8] = [
        0xffff_ffff, // 0x00-0x1f
        0x0000_0004, // " only
        0x1000_0000, // \ only
        0x8000_0000, // DEL
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
    ];
    for b in 0..=255u8 {
        let escaped = ESCAPE[usize::from(b >> 5)] & (1 << (b & 0x1f)) != 0;
        let want = if escaped {
            format!("\\x{b:02X}").into_bytes()
        } else {
            vec![b]
        };
        let mut got = Vec::new();
        push_nginx_escaped(&mut got, &[b]);
        assert_eq!(got, want, "byte {b:#04x}");
    }
}

/// Reverses nginx's escaping (what a parser of the log does).
fn nginx_unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn token() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}"
}

proptest! {
    /// Any method, path, query, user agent and Referer: one JSON line that parses, whose
    /// strings read back as sent (the query with `full`), and one combined line of printable
    /// ASCII whose quoted fields unescape to the bytes sent.
    #[test]
    fn any_request_gives_one_valid_line(
        method in token(),
        path in any::<String>(),
        query in any::<String>(),
        ua in any::<String>(),
        referer in any::<String>(),
        status in prop_oneof![Just(0u16), 100u16..1000],
    ) {
        let (d, m) = (downstream(), http::Method::from_bytes(method.as_bytes()).unwrap());
        let full = Capture::new(&[], &[], QueryMode::Full, &[]);
        let mut x = base(&d, &m);
        x.path = &path;
        x.query = Some(&query);
        x.user_agent = Some(&ua);
        x.referer = Some(&referer);
        x.status = status;
        let v = json_of(&x, &full);
        prop_assert_eq!(v["http.request.method"].as_str(), Some(method.as_str()));
        prop_assert_eq!(v["url.path"].as_str(), Some(path.as_str()));
        if !query.is_empty() {
            prop_assert_eq!(v["url.query"].as_str(), Some(query.as_str()));
        }
        prop_assert_eq!(v["user_agent.original"].as_str(), Some(ua.as_str()));
        for q in [full, redacted()] {
            let _ = json_of(&x, &q);
            let line = combined_of(&x, &q);
            prop_assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{}", line);
            let re = combined_regex();
            let c = re.captures(&line);
            prop_assert!(c.is_some(), "{}", line);
            let c = c.unwrap();
            prop_assert_eq!(nginx_unescape(&c["ua"]), ua.as_bytes());
            let request = nginx_unescape(&c["request"]);
            let want_start = format!("{method} {path}");
            prop_assert!(request.starts_with(want_start.as_bytes()));
        }
    }
}

/// nginx's `combined` as a log parser reads it, then the trace and the request time.
fn combined_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)" trace_id=(?P<trace>[0-9a-f]{32}|-) span_id=(?P<span>[0-9a-f]{16}|-) rt=(?P<rt>\d+\.\d{3})$"#,
        )
        .unwrap()
    })
}

proptest! {
    /// Differential: the digit-by-digit writers against `Display`, for any address and number.
    #[test]
    fn number_and_address_writers_match_display(
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u16; 8]>(),
        port in any::<u16>(),
        scope in prop_oneof![Just(0u32), any::<u32>()],
        n in any::<u64>(),
        us in any::<u64>(),
        id in any::<[u8; 16]>(),
    ) {
        let text = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            String::from_utf8(v).unwrap()
        };
        let ip4 = IpAddr::from(v4);
        let ip6 = IpAddr::from(v6);
        prop_assert_eq!(text(&|v| push_ip(v, ip4)), ip4.to_string());
        prop_assert_eq!(text(&|v| push_ip(v, ip6)), ip6.to_string());
        let s4 = SocketAddr::new(ip4, port);
        let s6 = SocketAddr::V6(std::net::SocketAddrV6::new(v6.into(), port, 0, scope));
        prop_assert_eq!(text(&|v| push_socket_addr(v, s4)), s4.to_string());
        prop_assert_eq!(text(&|v| push_socket_addr(v, s6)), s6.to_string());
        prop_assert_eq!(text(&|v| push_u64(v, n)), n.to_string());
        prop_assert_eq!(
            text(&|v| push_ms(v, Duration::from_micros(us))),
            format!("{}.{:03}", us / 1000, us % 1000)
        );
        prop_assert_eq!(
            text(&|v| push_hex(v, &id)),
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
}
