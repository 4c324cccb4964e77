//! End-to-end tests of the connection layer: the whole-head deadline (slowloris), the keep-alive
//! idle timeout, the body read timeout, head size limits and the request-line grammar,
//! pipelined requests, and the connection limits with idle shedding. The real binary against a
//! real hyper backend, with raw TCP clients that write exactly the bytes under test.

mod common;

use common::{one_upstream, Proxy, Upstream};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Longest a test waits for something that must happen.
const WAIT: Duration = Duration::from_secs(15);

fn config(server: &str, listen: &str, up: &Upstream) -> String {
    format!(
        "listen: {listen}\nserver: {{ grace_period: 0s, shutdown_timeout: 1s, {server} }}\ntelemetry: {{ exporter: {{ protocol: none }} }}\n{}",
        one_upstream(up)
    )
}

fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(p.addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads until the proxy closes the connection (or `WAIT` passes: then panics).
fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the proxy did not close the connection: {e}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until `n` complete responses (bodiless or with Content-Length) have arrived.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<(u16, String)> {
    let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
    (0..n)
        .map(|_| {
            let r = common::read_response(&mut reader, false).expect("a response");
            (r.status, r.body_str())
        })
        .collect()
}

fn status_of(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// No line the proxy wrote is a warning or an error.
fn assert_quiet(p: &Proxy, what: &str) {
    let logs = p.logs();
    let loud: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(loud.is_empty(), "{what}: the proxy logged {loud:#?}");
}

#[test]
fn a_slow_head_gets_408_and_an_idle_keepalive_connection_is_closed() {
    let up = Upstream::start("app");
    let p = Proxy::start(&config(
        "header_read_timeout: 300ms, keepalive_timeout: 600ms",
        "[\"127.0.0.1:0\"]",
        &up,
    ));

    // Slowloris: a byte at a time, each well inside any per-read timeout. The head as a
    // whole is due within header_read_timeout.
    let mut s = connect(&p);
    let start = Instant::now();
    let mut answer = String::new();
    for b in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ".iter().cycle() {
        if s.write_all(&[*b]).is_err() || start.elapsed() > WAIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(n) => {
                answer.push_str(&String::from_utf8_lossy(&buf[..n]));
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        s.set_nonblocking(false).unwrap();
    }
    s.set_nonblocking(false).unwrap();
    answer.push_str(&read_to_close(&mut s));
    assert_eq!(status_of(&answer), Some(408), "slow head: {answer:?}");
    assert!(start.elapsed() < WAIT, "the slow head was cut off");

    // A connection that never sends a byte is closed without an answer.
    let mut s = connect(&p);
    assert_eq!(read_to_close(&mut s), "", "silent connection");

    // An idle keep-alive connection: the next request right away is served on it, and once
    // it has been idle for keepalive_timeout it is closed.
    let mut s = connect(&p);
    s.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut s, 1)[0].0, 200);
    s.write_all(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut s, 1)[0].0, 200, "kept alive");
    assert_eq!(
        read_to_close(&mut s),
        "",
        "closed when idle, with nothing written"
    );
    assert_eq!(
        up.requests()
            .iter()
            .map(|r| r.path_and_query.as_str())
            .collect::<Vec<_>>(),
        ["/one", "/two"],
        "the slow head never reached the backend"
    );
    assert_quiet(&p, "timeouts are not errors");
}

#[test]
fn a_stalled_request_body_is_cut_off_after_body_read_timeout() {
    let up = Upstream::start("app");
    let p = Proxy::start(&config(
        "body_read_timeout: 300ms",
        "[\"127.0.0.1:0\"]",
        &up,
    ));
    let mut s = connect(&p);
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let answer = read_to_close(&mut s);
    // Either an answer (408/400) or a plain close: never the backend served a short body.
    if let Some(status) = status_of(&answer) {
        assert!(status >= 400, "stalled body: {answer:?}");
    }
    // The backend saw the body break off (its recorder keeps no partial body).
    assert!(
        up.requests()
            .iter()
            .all(|r| r.body.is_empty() || r.body.len() == 10),
        "the backend never got a short body as complete: {:?}",
        up.requests()
    );
}

#[test]
fn oversized_and_malformed_heads_are_refused_before_the_backend() {
    let up = Upstream::start("app");
    let p = Proxy::start(&config(
        "max_header_size: 8KiB, max_header_line: 2KiB, max_header_count: 20",
        "[\"127.0.0.1:0\"]",
        &up,
    ));
    let many: String = (0..21).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
                "a".repeat(3000)
            )
            .into_bytes(),
            431,
            "a header line over max_header_line",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n",
                "a".repeat(1_000_000)
            )
            .into_bytes(),
            431,
            "a 1 MB header line is refused before it has all arrived",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
                format!("x-a: {}\r\n", "b".repeat(1000)).repeat(9)
            )
            .into_bytes(),
            431,
            "the head over max_header_size",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").into_bytes(),
            431,
            "more header lines than max_header_count",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "p".repeat(3000)).into_bytes(),
            414,
            "a request line over max_header_line",
        ),
        (
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
            "RFC 9112 §3.2: a raw space in the target is not percent-encoded and forwarded",
        ),
        (
            b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
            "a control byte (DEL) in the target",
        ),
        (
            b"GET /a\x00 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
            "a NUL in the target",
        ),
        (
            b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
            "RFC 3986 §2: raw non-ASCII bytes in the target",
        ),
        (
            b"GET / HTTP/3.0\r\nHost: a\r\n\r\n".to_vec(),
            505,
            "RFC 9110 §15.6.6: an HTTP version other than 1.x",
        ),
    ];
    for (raw, want, why) in &cases {
        let mut s = connect(&p);
        // The proxy may answer and close before a big head is written whole.
        let _ = s.write_all(raw);
        let answer = read_to_close(&mut s);
        assert_eq!(status_of(&answer), Some(*want), "{why}: {answer:?}");
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    // A head just inside the limits passes.
    let mut s = connect(&p);
    s.write_all(
        format!(
            "GET /ok HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(1900)
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(status_of(&read_to_close(&mut s)), Some(200));
    assert_quiet(&p, "refused heads are not errors");
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let up = Upstream::start("app");
    let p = Proxy::start(&config("", "[\"127.0.0.1:0\"]", &up));
    let mut s = connect(&p);
    // RFC 9112 §9.3.2: a server MAY process pipelined requests in parallel, but MUST send
    // the responses in the order the requests were received. A POST with a body among them.
    s.write_all(
        b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /p2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
          GET /p3 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let got = read_responses(&mut s, 3);
    assert!(got.iter().all(|(st, _)| *st == 200), "{got:?}");
    let seen: Vec<(String, Vec<u8>)> = up
        .wait_for_requests(3, WAIT)
        .into_iter()
        .map(|r| (r.path_and_query, r.body))
        .collect();
    assert_eq!(
        seen,
        [
            ("/p1".to_string(), vec![]),
            ("/p2".to_string(), b"hello".to_vec()),
            ("/p3".to_string(), vec![])
        ]
    );
    // And the connection is still usable afterwards.
    s.write_all(b"GET /p4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(status_of(&read_to_close(&mut s)), Some(200));
}

#[test]
fn at_the_connection_limit_an_idle_connection_makes_room_and_busy_ones_do_not() {
    let up = Upstream::start("app");
    let p = Proxy::start(&config(
        "header_read_timeout: 10s",
        "[{ addr: \"127.0.0.1:0\", max_connections: 2 }]",
        &up,
    ));
    // Two idle keep-alive connections fill the listener.
    let mut a = connect(&p);
    a.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut a, 1)[0].0, 200);
    let mut b = connect(&p);
    b.write_all(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut b, 1)[0].0, 200);
    // A third is served: an idle one is closed to make room.
    let mut c = connect(&p);
    c.write_all(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    // (`c` stays open and idle: the busy connections below shed it.)
    assert_eq!(read_responses(&mut c, 1)[0].0, 200, "served at the limit");
    let mut closed = 0;
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 1];
        if matches!(s.read(&mut buf), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1, "exactly one idle connection was shed");
    drop((a, b));

    // Now fill the limit with connections in the middle of a head: they are not idle, so
    // once two are open a new connection is refused (closed without an answer) instead of
    // waiting. Idle connections left from above are shed on the way.
    let mut busy = Vec::new();
    let mut refused = false;
    for _ in 0..10 {
        let mut s = connect(&p);
        let _ = s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                refused = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                refused = true;
                break;
            }
            Ok(n) => panic!(
                "a half-sent head got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => busy.push(s),
        }
    }
    assert!(refused, "a connection over the limit is refused");
    assert_eq!(busy.len(), 2, "busy connections are never shed");
    p.wait_for_log("connection limit reached", WAIT);
    drop(c);
}
