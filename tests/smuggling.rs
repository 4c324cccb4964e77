//! End-to-end tests of HTTP/1.1 request smuggling: messages whose framing a proxy and a backend
//! could read differently (RFC 9112 §6, §7; the CL.TE / TE.CL / TE.TE families). Raw bytes
//! from a socket to the real binary, a raw backend with a strict parser that records exactly
//! what reached it. Each message must be refused, or re-framed so that the backend gets exactly
//! one well-framed request with the body the proxy read; the bytes after it never become a
//! request of their own, and the connection is closed. (Only a message whose end is certain is
//! followed by a next, pipelined request, read from where the proxy and the backend both see
//! the first one end.)

mod common;

use common::raw::{RawBackend, RawClient};
use common::Proxy;
use std::time::Duration;

/// What follows each attack: the request a successful smuggle would deliver.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";

/// How long the proxy has to close a connection it must close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What the proxy may do with a message.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// `400`, or the connection closed without a response; the backend gets no complete
    /// request.
    Refused,
    /// Either refused, or `200` with the backend having received exactly one request whose
    /// body is this.
    RefusedOrReframed(&'static str),
    /// A well-framed message with bare LF line ends: served with this body, and the bytes
    /// after it are the next pipelined request (RFC 9112 §9.3.2), which the backend gets as
    /// its own well-framed request because proxy and backend agree where the first one ends.
    Pipelined(&'static str),
}

struct Case {
    /// The head (and body) of the attack; [`SMUGGLED`] is appended.
    raw: &'static str,
    want: Want,
    why: &'static str,
}

const fn case(raw: &'static str, want: Want, why: &'static str) -> Case {
    Case { raw, want, why }
}

#[test]
fn http1_framing_table() {
    use Want::{Pipelined, Refused, RefusedOrReframed};
    let backend = RawBackend::ok();
    let proxy = Proxy::start(&backend.catch_all_config(r#"["127.0.0.1:0"]"#));
    let addr = proxy.addr();
    let cases = [
        // Content-Length and Transfer-Encoding together (CL.TE, TE.CL).
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            RefusedOrReframed(""),
            "CL.TE: Transfer-Encoding wins (RFC 9112 §6.1, §6.3)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            RefusedOrReframed("hello"),
            "TE.CL: the same, with the headers the other way round (RFC 9112 §6.3)",
        ),
        // Content-Length values (RFC 9110 §8.6: 1*DIGIT; differing values are an error).
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 44\r\n\r\nhello",
            Refused,
            "two Content-Length lines that differ (RFC 9112 §6.3)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5, 44\r\n\r\nhello",
            Refused,
            "a Content-Length list that differs (RFC 9110 §8.6)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: +5\r\n\r\nhello",
            Refused,
            "Content-Length +5 is not 1*DIGIT (RFC 9110 §8.6)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: -1\r\n\r\nhello",
            Refused,
            "Content-Length -1 (RFC 9110 §8.6)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0x5\r\n\r\nhello",
            Refused,
            "Content-Length in hex (RFC 9110 §8.6)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5 5\r\n\r\nhello",
            Refused,
            "Content-Length with a space inside (RFC 9110 §8.6)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
            Refused,
            "a Content-Length that overflows (RFC 9112 §6.3)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nContent-Length : 5\r\n\r\nhello",
            Refused,
            "whitespace between the field name and the colon (RFC 9112 §5.1)",
        ),
        // Transfer-Encoding values (RFC 9112 §6.1, §7).
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused,
            "chunked not the final coding (RFC 9112 §6.3)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused,
            "xchunked is not chunked (RFC 9112 §6.3)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused,
            "identity alone: no framing the proxy can use (RFC 9112 §6.3)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            RefusedOrReframed("hello"),
            "chunked with a trailing tab: OWS, trimmed (RFC 9110 §5.5), so plain chunked",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused,
            "Transfer-Encoding folded onto a second line (obs-fold, RFC 9112 §5.2)",
        ),
        case(
            "POST /s HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Refused,
            "Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1)",
        ),
        // Chunks (RFC 9112 §7.1).
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nG\r\nhello\r\n0\r\n\r\n",
            Refused,
            "a chunk size that is not hex",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            Refused,
            "a negative chunk size",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
            Refused,
            "a chunk size with 0x",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
            Refused,
            "a chunk size that overflows 64 bits and would wrap to 5",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\nhello\r\n0\r\n\r\n",
            RefusedOrReframed("hello"),
            "a chunk extension ended by a bare LF (RFC 9112 §7.1.1, §2.2)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n",
            RefusedOrReframed("hello"),
            "a bare LF inside a quoted chunk extension: taken as part of it, and dropped",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            Refused,
            "chunk data not followed by CRLF (RFC 9112 §7.1)",
        ),
        // Header syntax.
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
            Refused,
            "obs-fold in a request (RFC 9112 §5.2: reject or replace with SP)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nX-A: a\rContent-Length: 5\r\n\r\nhello",
            Refused,
            "a bare CR inside the head (RFC 9112 §2.2)",
        ),
        case(
            "POST /s HTTP/1.1\r\nHost: a.test\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\nhello",
            Refused,
            "NUL in a field value (RFC 9110 §5.5)",
        ),
        case(
            "POST /s HTTP/1.1\nHost: a.test\nContent-Length: 5\n\nhello",
            Pipelined("hello"),
            "bare LF line ends (RFC 9112 §2.2 lets a recipient accept them): re-framed with CRLF",
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        backend.clear();
        let mut client = RawClient::connect(&addr);
        client.send(format!("{}{SMUGGLED}", c.raw).as_bytes());
        let got = client.exchange(false).ok().map(|x| x.response);
        // Bytes after a message whose framing is in doubt close the connection.
        let closed = matches!(c.want, Pipelined(_)) || client.closed_within(CLOSE_WAIT);
        let reqs = backend.requests();
        let smuggled = reqs.iter().any(|r| r.target() == "/smuggled");
        let refused = got.as_ref().is_none_or(|r| r.status == 400) && reqs.is_empty();
        let ok = match c.want {
            Pipelined(body) => {
                backend.wait_for(CLOSE_WAIT, |r| r.target() == "/smuggled");
                let reqs = backend.requests();
                got.as_ref().is_some_and(|r| r.status == 200)
                    && reqs.len() == 2
                    && reqs[0].body == body.as_bytes()
                    && reqs[1].target() == "/smuggled"
                    && backend.malformed().is_empty()
            }
            Refused => refused,
            RefusedOrReframed(body) => {
                refused
                    || (got.as_ref().is_some_and(|r| r.status == 200)
                        && reqs.len() == 1
                        && reqs[0].body == body.as_bytes())
            }
        } && (!smuggled || matches!(c.want, Pipelined(_)))
            && closed;
        if !ok {
            failures.push(format!(
                "{}\n    {:?}\n    want {:?} and close; got {:?}, closed: {closed}, backend: \
                 {reqs:?}, malformed at the backend: {:?}",
                c.why,
                c.raw,
                c.want,
                got.map(|r| (r.status, r.body_str())),
                backend.malformed()
            ));
        }
    }
    let logs = proxy.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "malformed requests are the client's fault, logged at debug: {errors:#?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}\n--- proxy output ---\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        proxy.logs()
    );
}

/// A message with both Content-Length and Transfer-Encoding is read by the latter, and the
/// connection is closed after the response even when nothing follows (RFC 9112 §6.1: the
/// server MUST close it); a message without that ambiguity leaves it open.
#[test]
fn cl_and_te_together_close_the_connection() {
    let backend = RawBackend::ok();
    let proxy = Proxy::start(&format!(
        r#"listen: ["127.0.0.1:0"]
telemetry: {{ exporter: {{ protocol: none }} }}
routes:
  - {{ name: all, match: {{ path_prefix: / }}, upstream: app }}
upstreams:
  app: {{ backends: ["{}"] }}
"#,
        backend.addr()
    ));
    let mut both = RawClient::connect(&proxy.addr());
    both.send(
        b"POST /both HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    let x = both.exchange(false).expect("a response");
    assert_eq!(x.response.status, 200);
    assert_eq!(x.response.header("connection"), Some("close"));
    assert!(both.closed_within(CLOSE_WAIT), "the connection stays open");
    assert_eq!(backend.requests()[0].body, b"hello");

    let mut plain = RawClient::connect(&proxy.addr());
    for i in 0..2 {
        plain.send(b"POST /plain HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello");
        let x = plain.exchange(false).expect("a response");
        assert_eq!(x.response.status, 200, "request {i} on the same connection");
    }
}
