//! End-to-end tests of a backend's interim (1xx) responses: how many reach the client, which
//! ones (RFC 9110 §10.1.1 `Expect: 100-continue`, §15.2 no 1xx to HTTP/1.0), and how long the
//! proxy waits for the final response. A raw backend scripts the 1xx; a raw client counts
//! what it gets.

mod common;

use common::edge::h2c_request;
use common::raw::{RawBackend, RawClient, Reply};
use common::Proxy;
use std::time::{Duration, Instant};

/// The pool's `read_timeout` in these tests.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Interim responses a request may get (the proxy's limit).
const MAX_INTERIM: usize = 5;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const PROCESSING: &[u8] = b"HTTP/1.1 102 Processing\r\n\r\n";
const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The backend's answer for each path.
fn script(path: &str) -> Reply {
    match path {
        "/endless-100" => Reply::Repeat(CONTINUE.to_vec()),
        "/endless-103" => Reply::Repeat(EARLY_HINTS.to_vec()),
        "/hints" => Reply::Send(concat(&[EARLY_HINTS, OK])),
        "/continue" => Reply::Send(concat(&[CONTINUE, OK])),
        "/mixed" => Reply::Send(concat(&[EARLY_HINTS, CONTINUE, EARLY_HINTS, OK])),
        "/five" => Reply::Send(
            concat(&[EARLY_HINTS; MAX_INTERIM])
                .into_iter()
                .chain(OK.to_vec())
                .collect(),
        ),
        // Each 102 comes before the per-read timeout would fire, but together they outlast it.
        "/slow" => {
            let step = (READ_TIMEOUT * 2 / 5, PROCESSING.to_vec());
            let mut steps = vec![step; 4];
            steps.push((Duration::ZERO, OK.to_vec()));
            Reply::Paced(steps)
        }
        _ => Reply::Send(OK.to_vec()),
    }
}

/// A proxy for `backend` listening as `listen` says.
fn proxy_for(listen: &str, backend: &RawBackend) -> Proxy {
    Proxy::start(&format!(
        r#"listen: [{listen}]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry: {{ exporter: {{ protocol: none }} }}
routes:
  - {{ name: all, match: {{ path_prefix: / }}, upstream: app }}
upstreams:
  app: {{ backends: ["{}"], read_timeout: {}ms }}
"#,
        backend.addr(),
        READ_TIMEOUT.as_millis()
    ))
}

/// One case: the request, the interim statuses the client must get, the final status, how
/// long it may take at most, the reason.
struct Case {
    request: &'static str,
    interim: Interim,
    status: u16,
    within: Duration,
    why: &'static str,
}

enum Interim {
    Exactly(&'static [u16]),
    /// From `.0` up to [`MAX_INTERIM`], each of the statuses `.1`. Pingora writes the heads
    /// it has read in batches, and the batch with the one too many is not written, so fewer
    /// than the limit may arrive.
    Between(usize, &'static [u16]),
}

#[test]
fn interim_responses_table() {
    let backend = RawBackend::start(|r| script(r.target()));
    let proxy = proxy_for(r#""127.0.0.1:0""#, &backend);
    let addr = proxy.addr();
    let quick = READ_TIMEOUT;
    let cases = [
        Case {
            request: "GET /endless-100 HTTP/1.1\r\nHost: a\r\n\r\n",
            interim: Interim::Exactly(&[]),
            status: 502,
            within: quick,
            why: "endless 100 Continue, none asked for: dropped, and the 6th ends the attempt",
        },
        Case {
            request: "POST /endless-100 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\
                      Content-Length: 2\r\n\r\nhi",
            interim: Interim::Between(1, &[100]),
            status: 502,
            within: quick,
            why: "endless 100 Continue, asked for (RFC 9110 §10.1.1): up to five pass, then 502",
        },
        Case {
            request: "GET /endless-103 HTTP/1.1\r\nHost: a\r\n\r\n",
            interim: Interim::Between(1, &[103]),
            status: 502,
            within: quick,
            why: "endless 103 Early Hints: up to five pass, then 502",
        },
        Case {
            request: "GET /five HTTP/1.1\r\nHost: a\r\n\r\n",
            interim: Interim::Exactly(&[103; MAX_INTERIM]),
            status: 200,
            within: quick,
            why: "exactly the limit is fine",
        },
        Case {
            request: "GET /hints HTTP/1.1\r\nHost: a\r\n\r\n",
            interim: Interim::Exactly(&[103]),
            status: 200,
            within: quick,
            why: "103 then 200 (RFC 8297): the hint reaches the client",
        },
        Case {
            request: "GET /continue HTTP/1.1\r\nHost: a\r\n\r\n",
            interim: Interim::Exactly(&[]),
            status: 200,
            within: quick,
            why: "a 100 Continue the client did not ask for is dropped",
        },
        Case {
            request: "POST /continue HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\
                      Content-Length: 2\r\n\r\nhi",
            interim: Interim::Exactly(&[100]),
            status: 200,
            within: quick,
            why: "a 100 Continue the client asked for reaches it",
        },
        Case {
            request: "GET /hints HTTP/1.0\r\n\r\n",
            interim: Interim::Exactly(&[]),
            status: 200,
            within: quick,
            why: "no 1xx to an HTTP/1.0 client (RFC 9110 §15.2)",
        },
        Case {
            request:
                "POST /continue HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
            interim: Interim::Exactly(&[]),
            status: 200,
            within: quick,
            why: "an HTTP/1.0 client's Expect is ignored (RFC 9110 §10.1.1)",
        },
        Case {
            request: "GET /mixed HTTP/1.1\r\nHost: a\r\n\r\n",
            interim: Interim::Between(0, &[103]),
            status: 200,
            within: quick,
            why: "103, an unasked 100, 103: the 100 never reaches the client",
        },
        Case {
            request: "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n",
            interim: Interim::Between(0, &[102]),
            status: 504,
            within: READ_TIMEOUT * 2,
            why: "1xx that each come within read_timeout do not extend the wait for the final \
                  response past it",
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let started = Instant::now();
        let mut client = RawClient::connect(&addr);
        client.send(c.request.as_bytes());
        let got = client.exchange(false);
        let took = started.elapsed();
        let ok = match &got {
            Err(_) => false,
            Ok(x) => {
                let interim_ok = match &c.interim {
                    Interim::Exactly(want) => x.interim == *want,
                    Interim::Between(min, allowed) => {
                        (*min..=MAX_INTERIM).contains(&x.interim.len())
                            && x.interim.iter().all(|s| allowed.contains(s))
                    }
                };
                interim_ok && x.response.status == c.status && took <= c.within
            }
        };
        if !ok {
            failures.push(format!(
                "{}\n    want {} within {:?}; got {:?} after {took:?}",
                c.why,
                c.status,
                c.within,
                got.map(|x| (x.interim, x.response.status))
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
    // The failed attempts say why.
    proxy.wait_for_log("error=too_many_interim_responses", Duration::from_secs(5));
    proxy.wait_for_log("error=timeout", Duration::from_secs(5));
}

/// An HTTP/2 client gets no 1xx from Pingora at all; the limit still ends a backend that
/// streams them.
#[test]
fn an_http2_client_of_a_backend_streaming_1xx_gets_502() {
    let backend = RawBackend::start(|r| script(r.target()));
    let proxy = proxy_for(r#"{ addr: "127.0.0.1:0", http2: true }"#, &backend);
    let started = Instant::now();
    // A proxy that waited for ever would hang the client: give it a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = proxy.addr();
    std::thread::spawn(move || {
        let _ = tx.send(h2c_request(&addr, "/endless-103"));
    });
    let resp = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("an answer within 15 s")
        .expect("h2c request");
    assert_eq!(resp.status, 502, "{}", proxy.logs());
    assert!(started.elapsed() < READ_TIMEOUT, "{:?}", started.elapsed());
    let hints = h2c_request(&proxy.addr(), "/hints").expect("h2c request");
    assert_eq!(hints.status, 200);
}
