//! End-to-end tests of request-head strictness: the Host a request must carry (RFC 9112 §3.2,
//! RFC 9110 §7.2, RFC 9113 §8.3.1) and the request-target forms the proxy accepts (RFC 9112
//! §3.2.1-§3.2.4). Raw bytes from a socket (and hand-written HTTP/2 frames) to the real
//! binary, a raw backend that records exactly what reached it.

mod common;

use common::h2raw::{H2Conn, Hpack, Seen};
use common::raw::{RawBackend, RawClient};
use common::{OtlpReceiver, Proxy};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// One HTTP/1 case: the request as sent, the status wanted, what the backend must have seen
/// (`Some((target, host))`: exactly one request with this target and one Host line with this
/// value; `None`: nothing), and the reason.
struct Case {
    raw: &'static str,
    status: u16,
    seen: Option<(&'static str, &'static str)>,
    why: &'static str,
}

const fn case(
    raw: &'static str,
    status: u16,
    seen: Option<(&'static str, &'static str)>,
    why: &'static str,
) -> Case {
    Case {
        raw,
        status,
        seen,
        why,
    }
}

/// The Host and request-target rules over HTTP/1.x: each case on a fresh connection, its
/// status and what the backend received, all reported at once when any differs.
#[test]
fn http1_host_and_target_table() {
    let backend = RawBackend::ok();
    let proxy = Proxy::start(&backend.catch_all_config(r#"["127.0.0.1:0"]"#));
    let addr = proxy.addr();
    let cases = [
        // Host (RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without
        // Host, with more than one, or with an invalid one).
        case(
            "GET /ok HTTP/1.1\r\nHost: a.test\r\n\r\n",
            200,
            Some(("/ok", "a.test")),
            "control: one valid Host",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test:8080\r\n\r\n",
            200,
            Some(("/p", "a.test:8080")),
            "a Host with a port (RFC 9110 §7.2: uri-host [ \":\" port ])",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            200,
            Some(("/p", "[::1]:8080")),
            "an IPv6 literal in brackets (RFC 3986 §3.2.2)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test.\r\n\r\n",
            200,
            Some(("/p", "a.test.")),
            "a fully qualified name with its trailing dot",
        ),
        case(
            "GET /p HTTP/1.1\r\n\r\n",
            400,
            None,
            "HTTP/1.1 without Host (RFC 9112 §3.2)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost:\r\n\r\n",
            400,
            None,
            "an empty Host: an http URI has a non-empty host (RFC 9110 §4.2.1, §7.2)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n",
            400,
            None,
            "two Host lines, even equal (RFC 9112 §3.2)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            400,
            None,
            "two Host lines that differ (RFC 9112 §3.2)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n",
            400,
            None,
            "a list in one Host line is not a host (RFC 9110 §7.2)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a b\r\n\r\n",
            400,
            None,
            "a space in the host (RFC 3986 §3.2.2 reg-name)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test/evil\r\n\r\n",
            400,
            None,
            "a path in the Host (RFC 9110 §7.2)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: user@a.test\r\n\r\n",
            400,
            None,
            "userinfo in the Host (RFC 9110 §4.2.4)",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test:99999\r\n\r\n",
            400,
            None,
            "a port beyond 65535",
        ),
        case(
            "GET /p HTTP/1.1\r\nHost: a.test:x\r\n\r\n",
            400,
            None,
            "a port that is not digits (RFC 3986 §3.2.3)",
        ),
        case(
            "GET /p HTTP/1.0\r\n\r\n",
            200,
            Some(("/p", "")),
            "HTTP/1.0 may leave Host out (RFC 9112 §3.2 binds HTTP/1.1); the HTTP/1.1 request \
             sent on gets an empty one (RFC 9110 §7.2)",
        ),
        case(
            "GET /p HTTP/1.0\r\nHost: a b\r\n\r\n",
            400,
            None,
            "HTTP/1.0 with an invalid Host (RFC 9112 §3.2)",
        ),
        // Request-target forms (RFC 9112 §3.2).
        case(
            "GET http://a.test/abs?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
            200,
            Some(("/abs?q=1", "a.test")),
            "absolute-form: a server MUST accept it (RFC 9112 §3.2.2); sent on in origin-form",
        ),
        case(
            "GET HTTP://A.test/abs HTTP/1.1\r\nHost: A.test\r\n\r\n",
            200,
            Some(("/abs", "A.test")),
            "the scheme is case-insensitive (RFC 3986 §3.1)",
        ),
        case(
            "GET http://a.test/abs HTTP/1.0\r\n\r\n",
            200,
            Some(("/abs", "a.test")),
            "absolute-form in HTTP/1.0 without Host: its authority is the host (RFC 9112 §3.2.2)",
        ),
        case(
            "GET http://a.test/abs HTTP/1.1\r\n\r\n",
            400,
            None,
            "absolute-form does not make Host optional in HTTP/1.1 (RFC 9112 §3.2)",
        ),
        case(
            "GET http://a.test/abs HTTP/1.1\r\nHost: b.test\r\n\r\n",
            400,
            None,
            "a Host that differs from the absolute-form authority is refused, not ignored",
        ),
        case(
            "GET http:///abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            400,
            None,
            "an http URI with an empty host is invalid (RFC 9110 §4.2.1)",
        ),
        case(
            "GET ftp://a.test/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            400,
            None,
            "absolute-form of a scheme the proxy does not serve",
        ),
        case(
            "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n",
            200,
            None,
            "asterisk-form OPTIONS (RFC 9112 §3.2.4): answered by the proxy for itself",
        ),
        case(
            "GET * HTTP/1.1\r\nHost: a.test\r\n\r\n",
            400,
            None,
            "asterisk-form is only for OPTIONS (RFC 9112 §3.2.4)",
        ),
        case(
            "GET a.test:80 HTTP/1.1\r\nHost: a.test:80\r\n\r\n",
            400,
            None,
            "authority-form is only for CONNECT (RFC 9112 §3.2.3)",
        ),
        case(
            "GET p HTTP/1.1\r\nHost: a.test\r\n\r\n",
            400,
            None,
            "a target that is none of the four forms (RFC 9112 §3.2)",
        ),
        case(
            "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
            405,
            None,
            "CONNECT is not proxied (RFC 9110 §9.3.6; Pingora's default)",
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        backend.clear();
        let mut client = RawClient::connect(&addr);
        client.send(c.raw.as_bytes());
        let got = client.exchange(false).map(|x| x.response.status);
        let seen: Vec<(String, Vec<String>)> = backend
            .requests()
            .iter()
            .map(|r| {
                let hosts = r.header_values("host").into_iter().map(str::to_owned);
                (r.target().to_owned(), hosts.collect())
            })
            .collect();
        let want_seen: Vec<(String, Vec<String>)> = c
            .seen
            .iter()
            .map(|(t, h)| (t.to_string(), vec![h.to_string()]))
            .collect();
        if got.as_ref().ok() != Some(&c.status) || seen != want_seen {
            failures.push(format!(
                "{}\n    {:?}\n    want {} {want_seen:?}, got {got:?} {seen:?}",
                c.why, c.raw, c.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}\n--- proxy output ---\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        proxy.logs()
    );
}

/// The refusals are the proxy's own answers: a plain-text body naming what is wrong, and the
/// connection stays usable for the next request when the head itself could be read.
#[test]
fn a_refused_head_gets_a_reason_and_the_connection_stays_open() {
    let backend = RawBackend::ok();
    let proxy = Proxy::start(&backend.catch_all_config(r#"["127.0.0.1:0"]"#));
    let mut client = RawClient::connect(&proxy.addr());
    client.send(b"GET /p HTTP/1.1\r\n\r\n");
    let first = client.exchange(false).expect("a response");
    assert_eq!(first.response.status, 400);
    assert!(
        first.response.body_str().contains("Host"),
        "the body names the problem: {:?}",
        first.response.body_str()
    );
    client.send(b"GET /next HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    let second = client.exchange(false).expect("a second response");
    assert_eq!(second.response.status, 200);
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].target(), "/next");
}

/// A refusal is traced like the proxy's other answers: a SERVER span with the status and no
/// CLIENT span, since no backend was tried; `traceresponse` goes back with the answer.
#[test]
fn a_refused_head_is_traced() {
    let backend = RawBackend::ok();
    let rx = OtlpReceiver::grpc();
    let proxy = Proxy::start(&format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  traceresponse: true
  exporter: {{ protocol: grpc, endpoint: "{}" }}
  batch: {{ scheduled_delay: 50ms }}
routes:
  - {{ name: all, match: {{ path_prefix: / }}, upstream: app }}
upstreams:
  app: {{ backends: ["{}"] }}
"#,
        rx.endpoint(),
        backend.addr()
    ));
    let mut client = RawClient::connect(&proxy.addr());
    client.send(b"GET /traced HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n");
    let x = client.exchange(false).expect("a response");
    assert_eq!(x.response.status, 400);
    assert!(
        x.response.header("traceresponse").is_some(),
        "{:?}",
        x.response
    );
    let spans = rx.wait_for_spans(1, WAIT);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert!(spans[0].is_server());
    assert_eq!(spans[0].attr_int("http.response.status_code"), Some(400));
    assert!(backend.requests().is_empty());
}

/// One HTTP/2 case: the header block, what the server must do with the stream, whether the
/// backend gets the request, the reason.
struct H2Case {
    block: Hpack,
    want: Seen,
    reaches: bool,
    why: &'static str,
}

const OK: Seen = Seen::Response(Some(200));
/// RST_STREAM's code for a malformed request (RFC 9113 §7, §8.1.1).
const PROTOCOL_ERROR: u32 = 0x1;
const BAD: Seen = Seen::Response(Some(400));

/// `:authority` and Host over HTTP/2 (RFC 9113 §8.3.1), and the `:path` forms (RFC 9113
/// §8.3.1: origin-form, or `*` for OPTIONS). Each case on a fresh h2c connection.
#[test]
fn http2_authority_and_path_table() {
    let backend = RawBackend::ok();
    let proxy =
        Proxy::start(&backend.catch_all_config(r#"[{ addr: "127.0.0.1:0", http2: true }]"#));
    let addr = proxy.addr();
    let req = |path: &str, authority: &str| Hpack::request("GET", path, authority);
    let cases = vec![
        H2Case {
            block: req("/h2-ok", "a.test"),
            want: OK,
            reaches: true,
            why: "control: :authority alone",
        },
        H2Case {
            block: Hpack::default()
                .literal(b":method", b"GET")
                .literal(b":scheme", b"http")
                .literal(b":path", b"/h2-host")
                .literal(b"host", b"a.test"),
            want: OK,
            reaches: true,
            why: "Host instead of :authority (RFC 9113 §8.3.1 allows it)",
        },
        H2Case {
            block: Hpack::default()
                .literal(b":method", b"GET")
                .literal(b":scheme", b"http")
                .literal(b":path", b"/h2-none"),
            want: BAD,
            reaches: false,
            why: "neither :authority nor Host (RFC 9113 §8.3.1)",
        },
        H2Case {
            block: req("/h2-differ", "a.test").literal(b"host", b"b.test"),
            want: BAD,
            reaches: false,
            why: "Host that differs from :authority (RFC 9113 §8.3.1)",
        },
        H2Case {
            block: req("/h2-same", "a.test").literal(b"host", b"a.test"),
            want: OK,
            reaches: true,
            why: "Host equal to :authority",
        },
        H2Case {
            block: req("/h2-userinfo", "u@a.test"),
            want: BAD,
            reaches: false,
            why: "userinfo in :authority (RFC 9113 §8.3.1)",
        },
        H2Case {
            block: req("/h2-badhost", "a_b!.test"),
            want: BAD,
            reaches: false,
            why: "an :authority that is not a host name",
        },
        H2Case {
            block: req("/h2-port", "a.test:99999"),
            want: BAD,
            reaches: false,
            why: "a port beyond 65535",
        },
        H2Case {
            block: req("*", "a.test"),
            want: BAD,
            reaches: false,
            why: ":path * is only for OPTIONS (RFC 9113 §8.3.1)",
        },
        H2Case {
            block: Hpack::request("OPTIONS", "*", "a.test"),
            want: OK,
            reaches: false,
            why: "OPTIONS * is answered by the proxy for itself",
        },
        H2Case {
            block: req("h2-noslash", "a.test"),
            want: Seen::Reset(PROTOCOL_ERROR),
            reaches: false,
            why: ":path that is not origin-form: a malformed stream (RFC 9113 §8.1.1, §8.3.1)",
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        backend.clear();
        let mut conn = H2Conn::connect(&addr);
        conn.headers(1, &c.block, true);
        let seen = conn.outcome(1, WAIT);
        let reached = !backend.requests().is_empty();
        if seen != c.want || reached != c.reaches {
            failures.push(format!(
                "{}: got {seen:?}, backend reached: {reached} (want {:?}, {})",
                c.why, c.want, c.reaches
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}\n--- proxy output ---\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        proxy.logs()
    );
}
