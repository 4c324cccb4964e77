//! End-to-end tests of HTTP/2 abuse against the proxy's h2c listener, with frames written by
//! hand: rapid reset (CVE-2023-44487), CONTINUATION flood (CVE-2024-27316), an HPACK bomb
//! (RFC 7541 §7.3), and requests that would smuggle a second HTTP/1.1 request when turned into
//! one for the backend (RFC 9113 §8.1.1, §8.2). Each must be refused without the backend seeing
//! a smuggled request, and the proxy must go on serving other connections. Also the limits
//! the proxy announces, and the one on concurrent streams at work.

mod common;

use common::edge::{h2c_request, peak_rss_kib};
use common::h2raw::{
    frame, rst_stream, H2Conn, Hpack, Seen, ACK, CANCEL, CONTINUATION, DATA, END_HEADERS,
    END_STREAM, HEADERS, SETTINGS, WINDOW_UPDATE,
};
use common::raw::{RawBackend, Reply};
use common::{http_get, Proxy};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// GOAWAY and RST_STREAM error codes (RFC 9113 §7).
const PROTOCOL_ERROR: u32 = 0x1;
const REFUSED_STREAM: u32 = 0x7;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The target a smuggled request would have: the backend must never see it.
const SMUGGLED: &str = "/smuggled";

fn proxy(backend: &RawBackend) -> Proxy {
    Proxy::start(&backend.catch_all_config(r#"[{ addr: "127.0.0.1:0", http2: true }]"#))
}

/// The proxy still answers a well-behaved HTTP/2 and HTTP/1.1 client.
fn still_serving(proxy: &Proxy) {
    let h2 = h2c_request(&proxy.addr(), "/after").expect("an h2c request after the attack");
    assert_eq!(h2.status, 200, "{}", proxy.logs());
    let h1 = http_get(&proxy.addr(), "/after-h1", &[]);
    assert_eq!(h1.status, 200, "{}", proxy.logs());
}

/// Rapid reset (CVE-2023-44487): streams opened and cancelled at once, far more than the
/// concurrent-stream limit, in one burst. The server must end the connection (GOAWAY
/// ENHANCE_YOUR_CALM, h2's `max_pending_accept_reset_streams`) instead of doing the work of
/// each, and keep serving others.
#[test]
fn rapid_reset_ends_the_connection() {
    let backend = RawBackend::ok();
    let proxy = proxy(&backend);
    let mut conn = H2Conn::connect(&proxy.addr());
    let block = Hpack::request("GET", "/reset", "a.test");
    let mut burst = Vec::new();
    const STREAMS: u32 = 2000;
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block.0));
        burst.extend(rst_stream(id, CANCEL));
    }
    conn.send(&burst);
    let seen = conn.until_goaway(WAIT);
    assert!(
        matches!(seen, Seen::GoAway(ENHANCE_YOUR_CALM) | Seen::Closed),
        "got {seen:?}"
    );
    let reached = backend.requests().len();
    assert!(
        reached < 200,
        "{reached} of {STREAMS} cancelled requests reached the backend"
    );
    still_serving(&proxy);
}

/// CONTINUATION flood (CVE-2024-27316): a header block that never ends, in CONTINUATION frames
/// without END_HEADERS. The server must give up after a bounded number of frames (h2 allows as
/// many as `max_header_list_size` needs, at least 5) or bytes, with GOAWAY, without buffering
/// the block.
#[test]
fn continuation_flood_is_cut_off() {
    let backend = RawBackend::ok();
    let proxy = proxy(&backend);
    let rss_before = peak_rss_kib(proxy.pid());
    let request = || Hpack::request("GET", "/flood", "a.test");
    let mut fields = Hpack::default();
    while fields.0.len() < 16_000 {
        fields = fields.literal(b"x-flood", &[b'a'; 100]);
    }
    // (HEADERS block, each CONTINUATION's payload, reason)
    let cases: [(Hpack, Vec<u8>, &str); 3] = [
        (
            request(),
            Vec::new(),
            "empty CONTINUATION frames: no bytes, only frames",
        ),
        (
            request(),
            fields.0,
            "CONTINUATION frames full of small fields",
        ),
        (
            // A header whose value is declared 1 GiB long: every frame is more of it.
            request().literal_start(b"x-flood", 1 << 30),
            vec![b'a'; 16_384],
            "one endless header value",
        ),
    ];
    for (block, payload, why) in cases {
        let mut conn = H2Conn::connect(&proxy.addr());
        conn.send(&frame(HEADERS, END_STREAM, 1, &block.0));
        let chunk = frame(CONTINUATION, 0, 1, &payload);
        let mut sent = 0usize;
        // 64 MiB of header block, or 100 000 empty frames, unless the server stops it first.
        while sent < 100_000 && sent * payload.len() < 64 << 20 {
            if !conn.send(&chunk) {
                break;
            }
            sent += 1;
        }
        let seen = conn.until_goaway(WAIT);
        assert!(
            matches!(seen, Seen::GoAway(_) | Seen::Closed),
            "{why}: after {sent} frames, got {seen:?}"
        );
    }
    let grown = peak_rss_kib(proxy.pid()).saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "peak memory grew by {grown} KiB");
    assert!(backend.requests().is_empty(), "{:#?}", backend.requests());
    still_serving(&proxy);
}

/// HPACK bomb (RFC 7541 §7.3): one 4 KiB header enters the dynamic table, then one byte per
/// reference repeats it. What counts is the decoded size: over `max_header_list_size`
/// (64 KiB) the stream is refused, far over it the connection.
#[test]
fn hpack_bomb_is_refused() {
    let backend = RawBackend::ok();
    let proxy = proxy(&backend);
    let value = vec![b'a'; 4000];
    // (references, reason)
    let cases = [
        (
            20,
            "80 KB decoded from about 4 KB: over the header list limit",
        ),
        (1000, "4 MB decoded from about 5 KB: far over it"),
    ];
    for (refs, why) in cases {
        let mut conn = H2Conn::connect(&proxy.addr());
        let mut block = Hpack::request("GET", "/bomb", "a.test").indexed_literal(b"x-bomb", &value);
        for _ in 0..refs {
            block = block.indexed(62);
        }
        conn.headers(1, &block, true);
        let seen = conn.outcome(1, WAIT);
        assert!(seen.is_refusal(), "{why}: got {seen:?}");
    }
    assert!(backend.requests().is_empty(), "{:#?}", backend.requests());
    still_serving(&proxy);
}

/// One request that an HTTP/2-to-HTTP/1.1 translation could turn into two.
struct Downgrade {
    block: Hpack,
    /// DATA frames after the HEADERS (the last with END_STREAM); none: HEADERS ends the stream.
    data: Vec<&'static [u8]>,
    /// What the server must do with the stream.
    want: fn(&Seen) -> bool,
    why: &'static str,
}

fn reset_or_goaway(s: &Seen) -> bool {
    matches!(
        s,
        Seen::Reset(PROTOCOL_ERROR) | Seen::GoAway(_) | Seen::Closed
    )
}

fn refused(s: &Seen) -> bool {
    s.is_refusal()
}

/// h2→h1 downgrade tricks: fields HTTP/2 forbids (RFC 9113 §8.2.2), a `content-length` that
/// disagrees with the DATA (§8.1.1), names in upper case (§8.2.1) and CR, LF or NUL in names
/// and values (§8.2.1) — each one a way to make the HTTP/1.1 request to the backend say
/// something else, or carry a second request. All are refused, and the backend never sees the
/// smuggled request.
#[test]
fn downgrade_tricks_are_refused() {
    let backend = RawBackend::ok();
    let proxy = proxy(&backend);
    let smuggle = "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let get = || Hpack::request("GET", "/down", "a.test");
    let post = || Hpack::request("POST", "/down", "a.test");
    let cases = vec![
        Downgrade {
            block: post().literal(b"transfer-encoding", b"chunked"),
            data: vec![b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"],
            want: reset_or_goaway,
            why: "transfer-encoding is connection-specific (RFC 9113 §8.2.2)",
        },
        Downgrade {
            block: get().literal(b"connection", b"keep-alive"),
            data: vec![],
            want: reset_or_goaway,
            why: "connection is connection-specific (RFC 9113 §8.2.2)",
        },
        Downgrade {
            block: get().literal(b"upgrade", b"websocket"),
            data: vec![],
            want: reset_or_goaway,
            why: "upgrade is connection-specific (RFC 9113 §8.2.2)",
        },
        Downgrade {
            block: get().literal(b"te", b"gzip"),
            data: vec![],
            want: reset_or_goaway,
            why: "te other than trailers (RFC 9113 §8.2.2)",
        },
        Downgrade {
            block: post().literal(b"content-length", b"5"),
            data: vec![b"hello", b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"],
            want: reset_or_goaway,
            why: "more DATA than content-length (RFC 9113 §8.1.1)",
        },
        Downgrade {
            block: post().literal(b"content-length", b"50"),
            data: vec![b"hello"],
            want: reset_or_goaway,
            why: "less DATA than content-length (RFC 9113 §8.1.1)",
        },
        Downgrade {
            block: post()
                .literal(b"content-length", b"5")
                .literal(b"content-length", b"50"),
            data: vec![b"hello"],
            want: reset_or_goaway,
            why: "two content-length values that differ (RFC 9110 §8.6)",
        },
        Downgrade {
            block: get().literal(b"X-Upper", b"a"),
            data: vec![],
            want: reset_or_goaway,
            why: "a field name with upper case (RFC 9113 §8.2.1)",
        },
        Downgrade {
            block: get().literal(b"x-a", format!("b\r\n{smuggle}").leak().as_bytes()),
            data: vec![],
            want: reset_or_goaway,
            why: "CR LF in a field value (RFC 9113 §8.2.1)",
        },
        Downgrade {
            block: get().literal(b"x-a", b"b\nx-b: c"),
            data: vec![],
            want: reset_or_goaway,
            why: "a bare LF in a field value (RFC 9113 §8.2.1)",
        },
        Downgrade {
            block: get().literal(b"x-a", b"b\0c"),
            data: vec![],
            want: reset_or_goaway,
            why: "NUL in a field value (RFC 9113 §8.2.1)",
        },
        Downgrade {
            block: get().literal(b"x-a\r\nx-b", b"c"),
            data: vec![],
            want: reset_or_goaway,
            why: "CR LF in a field name (RFC 9113 §8.2.1)",
        },
        Downgrade {
            block: get().literal(b"x a", b"c"),
            data: vec![],
            want: reset_or_goaway,
            why: "a space in a field name (RFC 9113 §8.2.1)",
        },
        Downgrade {
            block: Hpack::request(
                "GET",
                "/down HTTP/1.1\r\nHost: a.test\r\n\r\nGET /smuggled",
                "a.test",
            ),
            data: vec![],
            want: refused,
            why: "CR LF in :path (RFC 9113 §8.3.1)",
        },
        Downgrade {
            block: get().literal(b"host", b"a.test\r\nx-b: c"),
            data: vec![],
            want: refused,
            why: "CR LF in host (RFC 9113 §8.2.1)",
        },
        Downgrade {
            block: Hpack::default()
                .literal(b":method", b"GET")
                .literal(b":scheme", b"http")
                .literal(b"x-a", b"b")
                .literal(b":authority", b"a.test")
                .literal(b":path", b"/down"),
            data: vec![],
            want: reset_or_goaway,
            why: "a pseudo-header after a regular field (RFC 9113 §8.3)",
        },
        Downgrade {
            block: Hpack::request("GET /smuggled HTTP/1.1\r\n\r\nGET", "/down", "a.test"),
            data: vec![],
            want: refused,
            why: "a :method that is not a token (RFC 9110 §9.1)",
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        backend.clear();
        let mut conn = H2Conn::connect(&proxy.addr());
        conn.headers(1, &c.block, c.data.is_empty());
        for (i, d) in c.data.iter().enumerate() {
            let flags = if i + 1 == c.data.len() { END_STREAM } else { 0 };
            conn.send(&frame(DATA, flags, 1, d));
        }
        let seen = conn.outcome(1, WAIT);
        // Whatever reached the backend, it was never a second request.
        let smuggled: Vec<String> = backend
            .requests()
            .iter()
            .map(|r| r.request_line.clone())
            .filter(|l| l.contains(SMUGGLED))
            .collect();
        if !(c.want)(&seen) || !smuggled.is_empty() {
            failures.push(format!(
                "{}: got {seen:?}, smuggled {smuggled:?}, backend saw {:?}",
                c.why,
                backend.requests()
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
    still_serving(&proxy);
}

/// The limits the proxy announces in its SETTINGS (RFC 9113 §6.5.2) and its connection window.
#[test]
fn settings_announce_the_limits() {
    let backend = RawBackend::ok();
    let proxy = proxy(&backend);
    let mut conn = H2Conn::connect(&proxy.addr());
    let deadline = std::time::Instant::now() + WAIT;
    let settings = loop {
        let f = conn.read_frame(deadline).expect("the server's SETTINGS");
        if f.kind == SETTINGS && f.flags & ACK == 0 {
            break f.payload;
        }
    };
    let announced: Vec<(u16, u32)> = settings
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    // (identifier, value, reason)
    let want = [
        (0x3, 100, "SETTINGS_MAX_CONCURRENT_STREAMS"),
        (0x4, 64 * 1024, "SETTINGS_INITIAL_WINDOW_SIZE"),
        (0x6, 64 * 1024, "SETTINGS_MAX_HEADER_LIST_SIZE"),
    ];
    for (id, value, why) in want {
        assert!(
            announced.contains(&(id, value)),
            "{why} = {value}: announced {announced:?}"
        );
    }
    // The connection window grows from the RFC's 65 535 to 1 MiB.
    let update = loop {
        let f = conn
            .read_frame(deadline)
            .expect("a WINDOW_UPDATE for the connection");
        if f.kind == WINDOW_UPDATE && f.stream == 0 {
            break u32::from_be_bytes([f.payload[0], f.payload[1], f.payload[2], f.payload[3]]);
        }
    };
    assert_eq!(65_535 + update, 1024 * 1024);
}

/// A stream past the 100 concurrent ones is refused (RST_STREAM REFUSED_STREAM, RFC 9113
/// §5.1.2) while the others stay open, and none of those past the limit reaches the backend.
#[test]
fn the_stream_past_the_concurrency_limit_is_refused() {
    // The backend never answers, so every accepted stream stays open.
    let backend = RawBackend::start(|_| Reply::Silence);
    let proxy = proxy(&backend);
    let mut conn = H2Conn::connect(&proxy.addr());
    let block = Hpack::request("GET", "/hold", "a.test");
    let mut burst = Vec::new();
    for i in 0..101 {
        burst.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            2 * i + 1,
            &block.0,
        ));
    }
    conn.send(&burst);
    let seen = conn.outcome(201, WAIT);
    assert_eq!(seen, Seen::Reset(REFUSED_STREAM), "{}", proxy.logs());
    let deadline = std::time::Instant::now() + WAIT;
    while backend.requests().len() < 100 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        backend.requests().len(),
        100,
        "the accepted streams reach the backend"
    );
}
