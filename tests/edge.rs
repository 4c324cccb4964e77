//! End-to-end tests of the edge features: TLS termination with SNI, HTTP/2 (ALPN and h2c), the
//! HTTP→HTTPS redirect, TLS and HTTP/2 to upstreams, WebSocket, and streaming bodies. The real
//! binary, real TLS clients and servers (rustls), real HTTP/2 (hyper) and a real OTLP receiver.

mod common;

use common::edge::{
    block_on, h2c_request, https_request, peak_rss_kib, wait_listening, ws_connect, EdgeCa,
    StreamUpstream, Trust, VersionUpstream, WsEchoUpstream,
};
use common::{
    http_get, http_request, run_check, OtlpReceiver, Proxy, ReceivedSpan, TestCa, Upstream,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(15);
const ALPN_H2: &[&[u8]] = &[b"h2", b"http/1.1"];
const ALPN_H1: &[&[u8]] = &[b"http/1.1"];

/// A config with the given `listen` list, exporting to `rx`, plus routes/upstreams YAML.
fn config(listen: &str, rx: Option<&OtlpReceiver>, body: &str) -> String {
    let telemetry = match rx {
        Some(rx) => format!(
            "telemetry:\n  exporter: {{ protocol: grpc, endpoint: \"{}\" }}\n  batch: {{ scheduled_delay: 50ms }}\n",
            rx.endpoint()
        ),
        None => "telemetry: { exporter: { protocol: none } }\n".to_string(),
    };
    format!(
        "listen: {listen}\nserver: {{ grace_period: 0s, shutdown_timeout: 1s }}\n{telemetry}{body}"
    )
}

const HELLO: &str =
    "routes:\n  - { name: hello, match: { path_prefix: / }, respond: { status: 200, body: hi } }\n";

fn tls_listener(certs: &[&common::edge::IssuedCert], extra: &str) -> String {
    let list: Vec<String> = certs.iter().map(|c| c.yaml()).collect();
    format!(
        "{{ addr: \"127.0.0.1:0\", tls: {{ certificates: [{}] }}{extra} }}",
        list.join(", ")
    )
}

/// The address of the listener announced with `scheme`, the `nth` of that scheme.
fn listener(found: &[(String, String)], scheme: &str, nth: usize) -> String {
    found
        .iter()
        .filter(|(s, _)| s == scheme)
        .nth(nth)
        .unwrap_or_else(|| panic!("no {scheme} listener #{nth} in {found:?}"))
        .1
        .clone()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn sni_picks_the_certificate_that_names_the_host_and_others_get_the_default() {
    let ca = EdgeCa::new();
    let default = ca.issue(&["default.test"]);
    let a = ca.issue(&["a.test", "www.a.test"]);
    let wild = ca.issue(&["*.wild.test"]);
    let proxy = Proxy::start(&config(
        &format!("[{}]", tls_listener(&[&default, &a, &wild], "")),
        None,
        HELLO,
    ));
    let found = wait_listening(&proxy, 1);
    assert_eq!(
        found[0].0, "https",
        "a TLS listener is announced as https://"
    );
    let addr = &found[0].1;

    // (SNI, trust, expected certificate, why)
    let cases: &[(Option<&str>, bool, &common::edge::IssuedCert, &str)] = &[
        (
            Some("a.test"),
            true,
            &a,
            "exact SAN, verified against the CA",
        ),
        (
            Some("www.a.test"),
            true,
            &a,
            "second SAN of the same certificate",
        ),
        (
            Some("x.wild.test"),
            true,
            &wild,
            "one label under a wildcard",
        ),
        (
            Some("default.test"),
            true,
            &default,
            "the default by its own name",
        ),
        (
            Some("unknown.test"),
            false,
            &default,
            "an unknown name gets the default",
        ),
        (
            Some("x.y.wild.test"),
            false,
            &default,
            "a wildcard covers one label only",
        ),
        (
            None,
            false,
            &default,
            "no SNI (connected by IP address): the default",
        ),
    ];
    for (sni, verify, want, why) in cases {
        let trust = if *verify {
            Trust::Roots(&ca)
        } else {
            Trust::Any
        };
        let r = https_request(addr, *sni, trust, ALPN_H1, "/")
            .unwrap_or_else(|e| panic!("{why}: {e}\n{}", proxy.logs()));
        assert_eq!(r.status, 200, "{why}");
        assert_eq!(r.body, b"hi", "{why}");
        assert_eq!(
            r.peer_cert.as_deref(),
            Some(want.der.as_slice()),
            "{why}: the server presented another certificate"
        );
    }
    // The readiness check and the clients above did not make the listener log errors.
    assert!(
        !proxy.logs().contains("handshake error"),
        "{}",
        proxy.logs()
    );
    // A client that checks the name refuses the default for a name it does not cover: one
    // log line, and the listener keeps serving.
    assert!(https_request(addr, Some("unknown.test"), Trust::Roots(&ca), ALPN_H1, "/").is_err());
    let logs = proxy.wait_for_log("Downstream handshake error", WAIT);
    assert_eq!(logs.matches("handshake error").count(), 1, "{logs}");
    let r = https_request(addr, Some("a.test"), Trust::Roots(&ca), ALPN_H1, "/").unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn http2_by_alpn_on_tls_listeners_unless_turned_off() {
    let rx = OtlpReceiver::grpc();
    let ca = EdgeCa::new();
    let cert = ca.issue(&["edge.test"]);
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        &format!(
            "[{}, {}]",
            tls_listener(&[&cert], ""),
            tls_listener(&[&cert], ", http2: false")
        ),
        Some(&rx),
        &common::one_upstream(&up),
    ));
    let found = wait_listening(&proxy, 2);
    let (h2_addr, h1_addr) = (listener(&found, "https", 0), listener(&found, "https", 1));
    // Announcement order is `listen` order.
    let r = https_request(
        &h2_addr,
        Some("edge.test"),
        Trust::Roots(&ca),
        ALPN_H2,
        "/two",
    )
    .unwrap();
    assert_eq!(r.alpn.as_deref(), Some(&b"h2"[..]), "h2 chosen by ALPN");
    assert_eq!(r.version, hyper::Version::HTTP_2);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"b1"[..]));
    let r = https_request(
        &h1_addr,
        Some("edge.test"),
        Trust::Roots(&ca),
        ALPN_H2,
        "/one",
    )
    .unwrap();
    assert_eq!(
        r.alpn.as_deref(),
        Some(&b"http/1.1"[..]),
        "http2: false offers HTTP/1.1 only"
    );
    assert_eq!(r.version, hyper::Version::HTTP_11);
    assert_eq!(r.status, 200);

    let spans = rx.wait_for_spans(4, WAIT);
    let server = |path: &str| -> ReceivedSpan {
        spans
            .iter()
            .find(|s| s.is_server() && s.attr_str("url.path") == Some(path))
            .unwrap_or_else(|| panic!("SERVER span of {path}: {spans:#?}"))
            .clone()
    };
    let two = server("/two");
    assert_eq!(two.attr_str("network.protocol.version"), Some("2"));
    assert_eq!(two.attr_str("url.scheme"), Some("https"));
    assert_eq!(
        two.attr_str("server.address"),
        Some("edge.test"),
        ":authority of HTTP/2"
    );
    let one = server("/one");
    assert_eq!(one.attr_str("network.protocol.version"), Some("1.1"));
    assert_eq!(one.attr_str("url.scheme"), Some("https"));
    // The upstream was reached over plain HTTP/1.1 both times.
    let client = spans
        .iter()
        .find(|s| s.is_client() && s.parent_span_id == two.span_id)
        .expect("CLIENT span of /two");
    assert_eq!(client.attr_str("url.scheme"), Some("http"));
    assert_eq!(client.attr_str("network.protocol.version"), Some("1.1"));
    assert_eq!(up.requests().len(), 2);
}

#[test]
fn h2c_with_prior_knowledge_only_on_plain_listeners_that_enable_it() {
    let rx = OtlpReceiver::grpc();
    let proxy = Proxy::start(&config(
        "[\"127.0.0.1:0\", { addr: \"127.0.0.1:0\", http2: true }]",
        Some(&rx),
        HELLO,
    ));
    let found = wait_listening(&proxy, 2);
    let (plain, h2c) = (listener(&found, "http", 0), listener(&found, "http", 1));
    let r = h2c_request(&h2c, "/h2c").unwrap_or_else(|e| panic!("h2c: {e}\n{}", proxy.logs()));
    assert_eq!((r.status, r.version), (200, hyper::Version::HTTP_2));
    assert_eq!(r.body, b"hi");
    // HTTP/1.1 still works on the h2c listener; the other listener does not speak h2c.
    assert_eq!(http_get(&h2c, "/h1", &[]).status, 200);
    assert!(
        h2c_request(&plain, "/nope").is_err(),
        "h2c is off by default"
    );
    assert_eq!(http_get(&plain, "/h1", &[]).status, 200);

    let spans = rx.wait_for_spans(3, WAIT);
    let s = spans
        .iter()
        .find(|s| s.attr_str("url.path") == Some("/h2c"))
        .expect("SERVER span of the h2c request");
    assert_eq!(s.attr_str("network.protocol.version"), Some("2"));
    assert_eq!(s.attr_str("url.scheme"), Some("http"));
}

#[test]
fn plain_listener_redirects_to_https_except_acme_challenges() {
    let rx = OtlpReceiver::grpc();
    let ca = EdgeCa::new();
    let cert = ca.issue(&["shop.test"]);
    let body = "routes:\n  - { name: acme, match: { path_prefix: /.well-known/acme-challenge/ }, respond: { status: 200, body: token } }\n  - { name: hello, match: { path_prefix: / }, respond: { status: 200, body: hi } }\n";
    let proxy = Proxy::start(&config(
        &format!(
            "[{{ addr: \"127.0.0.1:0\", redirect_https: true }}, {}, {{ addr: \"127.0.0.1:0\", redirect_https: 8443 }}]",
            tls_listener(&[&cert], "")
        ),
        Some(&rx),
        body,
    ));
    let found = wait_listening(&proxy, 3);
    let plain = listener(&found, "http", 0);
    let fixed = listener(&found, "http", 1);
    let tls = listener(&found, "https", 0);
    let tls_port = tls.rsplit(':').next().unwrap();

    // (listener, method, path, Host, expected status, expected Location, why)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        u16,
        Option<String>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            &plain,
            "GET",
            "/a/b?x=1&y=%20",
            "shop.test:8080",
            308,
            Some(format!("https://shop.test:{tls_port}/a/b?x=1&y=%20")),
            "to the TLS listener's port, path and query kept",
        ),
        (
            &plain,
            "POST",
            "/form",
            "shop.test",
            308,
            Some(format!("https://shop.test:{tls_port}/form")),
            "308 keeps the method",
        ),
        (
            &fixed,
            "GET",
            "/",
            "shop.test:80",
            308,
            Some("https://shop.test:8443/".into()),
            "a configured port",
        ),
        (
            &plain,
            "GET",
            "/.well-known/acme-challenge/abc",
            "shop.test",
            200,
            None,
            "ACME HTTP-01 goes to the routes",
        ),
        (
            &plain,
            "GET",
            "/",
            "bad host/x",
            400,
            None,
            "a Host that is no host name is refused",
        ),
    ];
    for (addr, method, path, host, status, location, why) in &cases {
        let r = http_request(addr, method, path, &[("host", host)], b"");
        assert_eq!(r.status, *status, "{why}: {r:?}");
        assert_eq!(r.header("location").map(str::to_owned), *location, "{why}");
    }
    // The HTTPS listener itself serves the request.
    let r = https_request(&tls, Some("shop.test"), Trust::Roots(&ca), ALPN_H1, "/a/b").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));

    let spans = rx.wait_for_spans(cases.len() + 1, WAIT);
    let redirects: Vec<_> = spans
        .iter()
        .filter(|s| s.is_server() && s.attr_int("http.response.status_code") == Some(308))
        .collect();
    assert_eq!(
        redirects.len(),
        3,
        "each redirect has its SERVER span: {spans:#?}"
    );
    assert!(redirects
        .iter()
        .all(|s| s.attr_str("url.scheme") == Some("http")));
}

#[test]
fn tls_upstream_is_verified_with_its_ca_and_a_wrong_ca_is_a_502() {
    let rx = OtlpReceiver::grpc();
    let ca = TestCa::new();
    let other = TestCa::new();
    let good = VersionUpstream::tls(&ca, false);
    let bad = VersionUpstream::tls(&other, false);
    let mtls = VersionUpstream::mtls(&ca);
    let (cert, key) = ca.client_files();
    let body = format!(
        r#"routes:
  - {{ name: good, match: {{ path_prefix: /good }}, upstream: good }}
  - {{ name: bad, match: {{ path_prefix: /bad }}, upstream: bad }}
  - {{ name: lax, match: {{ path_prefix: /lax }}, upstream: lax }}
  - {{ name: named, match: {{ path_prefix: /named }}, upstream: named }}
  - {{ name: nocert, match: {{ path_prefix: /nocert }}, upstream: nocert }}
  - {{ name: mtls, match: {{ path_prefix: /mtls }}, upstream: mtls }}
upstreams:
  good: {{ backends: ["{g}"], tls: {{ ca_file: "{ca}" }} }}
  bad: {{ backends: ["{b}"], tls: {{ ca_file: "{ca}" }} }}
  lax: {{ backends: ["{b}"], tls: {{ verify: false }} }}
  named: {{ backends: ["{gn}"], tls: {{ ca_file: "{ca}" }} }}
  nocert: {{ backends: ["{m}"], tls: {{ ca_file: "{ca}" }} }}
  mtls: {{ backends: ["{m}"], tls: {{ sni: localhost, ca_file: "{ca}", cert_file: "{cert}", key_file: "{key}" }} }}
"#,
        g = good.addr(),
        gn = good.addr().replace("127.0.0.1", "localhost"),
        b = bad.addr(),
        m = mtls.addr(),
        ca = ca.ca_path().display(),
        cert = cert.display(),
        key = key.display(),
    );
    let proxy = Proxy::start(&config("[\"127.0.0.1:0\"]", Some(&rx), &body));
    let addr = proxy.addr();
    // (path, status, why)
    let cases = [
        (
            "/good",
            200,
            "the certificate names 127.0.0.1 and is signed by the CA",
        ),
        (
            "/named",
            200,
            "a backend written as localhost:PORT sends and checks that name",
        ),
        ("/bad", 502, "signed by another CA: refused"),
        ("/lax", 200, "verify: false accepts it"),
        (
            "/nocert",
            502,
            "an upstream that requires a client certificate",
        ),
        ("/mtls", 200, "with the client certificate"),
    ];
    for (path, status, why) in cases {
        let r = http_get(&addr, path, &[]);
        assert_eq!(
            r.status,
            status,
            "{why}: {}\n{}",
            r.body_str(),
            proxy.logs()
        );
        if status == 200 {
            assert_eq!(r.body_str(), "upstream", "{why}");
        }
    }
    assert!(good.requests().len() == 2 && mtls.requests().len() == 1);
    let logs = proxy.wait_for_log("route=bad", WAIT);
    let failures: Vec<&str> = logs.lines().filter(|l| l.contains("route=bad")).collect();
    assert_eq!(failures.len(), 1, "one log line for the failure: {logs}");
    assert!(
        failures[0].contains("upstream failed: 502") && failures[0].contains("error=tls_error"),
        "{}",
        failures[0]
    );

    let spans = rx.wait_for_spans(cases.len() * 2, WAIT);
    let client_of = |path: &str| {
        let server = spans
            .iter()
            .find(|s| s.is_server() && s.attr_str("url.path") == Some(path))
            .unwrap_or_else(|| panic!("SERVER span of {path}"));
        spans
            .iter()
            .find(|s| s.is_client() && s.parent_span_id == server.span_id)
            .unwrap_or_else(|| panic!("CLIENT span of {path}"))
            .clone()
    };
    let c = client_of("/good");
    assert_eq!(c.attr_str("url.scheme"), Some("https"));
    assert_eq!(
        c.attr_str("url.full"),
        Some(format!("https://{}/good", good.addr()).as_str())
    );
    assert_eq!(c.attr_str("network.protocol.version"), Some("1.1"));
    let c = client_of("/bad");
    assert_eq!(c.attr_str("error.type"), Some("tls_error"));
    assert_eq!(c.status_code, ReceivedSpan::STATUS_ERROR);
}

#[test]
fn http2_to_upstreams_over_tls_by_alpn_and_plain_with_prior_knowledge() {
    let rx = OtlpReceiver::grpc();
    let ca = TestCa::new();
    let tls_h2 = VersionUpstream::tls(&ca, true);
    let tls_h1 = VersionUpstream::tls(&ca, false);
    let h2c = VersionUpstream::h2c();
    let body = format!(
        r#"routes:
  - {{ name: tls, match: {{ path_prefix: /tls }}, upstream: tls }}
  - {{ name: fallback, match: {{ path_prefix: /fallback }}, upstream: fallback }}
  - {{ name: h2c, match: {{ path_prefix: /h2c }}, upstream: h2c }}
upstreams:
  tls: {{ backends: ["{a}"], tls: {{ ca_file: "{ca}" }}, http2: true }}
  fallback: {{ backends: ["{b}"], tls: {{ ca_file: "{ca}" }}, http2: true }}
  h2c: {{ backends: ["{c}"], http2: true }}
"#,
        a = tls_h2.addr(),
        b = tls_h1.addr(),
        c = h2c.addr(),
        ca = ca.ca_path().display(),
    );
    let proxy = Proxy::start(&config("[\"127.0.0.1:0\"]", Some(&rx), &body));
    for path in ["/tls", "/fallback", "/h2c"] {
        let r = http_get(&proxy.addr(), path, &[]);
        assert_eq!(r.status, 200, "{path}: {}\n{}", r.body_str(), proxy.logs());
    }
    assert_eq!(
        tls_h2.requests()[0].version,
        hyper::Version::HTTP_2,
        "h2 by ALPN"
    );
    assert_eq!(
        tls_h1.requests()[0].version,
        hyper::Version::HTTP_11,
        "a backend without h2 is spoken to over HTTP/1.1"
    );
    assert_eq!(h2c.requests()[0].version, hyper::Version::HTTP_2, "h2c");
    assert!(
        tls_h2.requests()[0]
            .headers
            .iter()
            .any(|(k, _)| k == "traceparent"),
        "trace context reaches an HTTP/2 upstream"
    );
    let spans = rx.wait_for_spans(6, WAIT);
    let version = |path: &str| {
        let server = spans
            .iter()
            .find(|s| s.is_server() && s.attr_str("url.path") == Some(path))
            .unwrap();
        let client = spans
            .iter()
            .find(|s| s.is_client() && s.parent_span_id == server.span_id)
            .unwrap();
        (
            client.attr_str("url.scheme").map(str::to_owned),
            client
                .attr_str("network.protocol.version")
                .map(str::to_owned),
        )
    };
    let s = |a: &str, b: &str| (Some(a.to_owned()), Some(b.to_owned()));
    assert_eq!(version("/tls"), s("https", "2"));
    assert_eq!(version("/fallback"), s("https", "1.1"));
    assert_eq!(version("/h2c"), s("http", "2"));
}

#[test]
fn websocket_echoes_both_ways_and_its_span_covers_the_whole_session() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let rx = OtlpReceiver::grpc();
    let ws_up = WsEchoUpstream::start();
    let body = format!(
        "routes:\n  - {{ name: ws, match: {{ path_prefix: /ws }}, upstream: ws }}\n  - {{ name: hello, match: {{ path_prefix: / }}, respond: {{ status: 200, body: hi }} }}\nupstreams:\n  ws: {{ backends: [\"{}\"], http2: true }}\n",
        ws_up.addr()
    );
    let proxy = Proxy::start(&config("[\"127.0.0.1:0\"]", Some(&rx), &body));
    let addr = proxy.addr();
    let (opened, last_message) = block_on(async {
        let opened = now_ns();
        let (mut ws, status) = ws_connect(&addr, "/ws/chat").await;
        assert_eq!(status, 101);
        let mut last = 0;
        for i in 0..5 {
            let msg = if i % 2 == 0 {
                Message::text(format!("hello {i}"))
            } else {
                Message::binary(vec![i as u8; 70_000])
            };
            ws.send(msg.clone()).await.unwrap();
            let echo = ws.next().await.expect("an echo").expect("a frame");
            assert_eq!(echo, msg, "message {i} echoes back unchanged");
            last = now_ns();
        }
        // While the session is open, its SERVER span is not exported: a request made now
        // shows up at the receiver first.
        let r = http_get(&addr, "/marker", &[]);
        assert_eq!(r.status, 200);
        let spans = rx.wait_for_spans(1, WAIT);
        assert!(
            spans
                .iter()
                .any(|s| s.attr_str("url.path") == Some("/marker")),
            "{spans:#?}"
        );
        assert!(
            !spans
                .iter()
                .any(|s| s.attr_str("url.path") == Some("/ws/chat")),
            "the WebSocket's span left before the session closed: {spans:#?}"
        );
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        (opened, last)
    });
    let spans = rx.wait_for_spans(3, WAIT);
    let server = spans
        .iter()
        .find(|s| s.is_server() && s.attr_str("url.path") == Some("/ws/chat"))
        .unwrap_or_else(|| panic!("the WebSocket's SERVER span: {spans:#?}"));
    assert_eq!(server.attr_int("http.response.status_code"), Some(101));
    assert_eq!(server.attr_str("http.route"), Some("ws"));
    assert!(
        server.start_ns >= opened,
        "the span starts with the upgrade request"
    );
    assert!(
        server.end_ns > last_message,
        "the span ends after the last message ({} <= {last_message})",
        server.end_ns
    );
    assert_ne!(server.status_code, ReceivedSpan::STATUS_ERROR, "{server:?}");
    let client = spans
        .iter()
        .find(|s| s.is_client() && s.parent_span_id == server.span_id)
        .expect("CLIENT span of the upgrade");
    assert_eq!(client.attr_int("http.response.status_code"), Some(101));
    assert_eq!(
        client.attr_str("network.protocol.version"),
        Some("1.1"),
        "upgrades use HTTP/1.1 even with http2: true"
    );
    let upgrades = ws_up.upgrades();
    assert_eq!(upgrades.len(), 1);
    let tp = upgrades[0]
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone())
        .expect("traceparent on the upgrade request");
    assert!(
        tp.contains(&server.trace_id) && tp.contains(&client.span_id),
        "{tp}"
    );
}

/// Bytes moved each way by the streaming test: big enough that buffering would show in the
/// proxy's memory, small enough for a debug build.
const BIG: u64 = 256 * 1024 * 1024;

#[test]
fn big_bodies_stream_through_without_being_held() {
    let up = StreamUpstream::start();
    let body = format!(
        "routes:\n  - {{ name: all, match: {{ path_prefix: / }}, upstream: big }}\nupstreams:\n  big: {{ backends: [\"{}\"] }}\n",
        up.addr()
    );
    let proxy = Proxy::start(&config("[\"127.0.0.1:0\"]", None, &body));
    let addr = proxy.addr();
    // Warm up (first connections, buffers), then take the baseline.
    let r = http_request(&addr, "POST", "/upload", &[], &[7u8; 100_000]);
    assert_eq!(r.body_str(), "100000");
    assert_eq!(http_get(&addr, "/download/100000", &[]).body.len(), 100_000);
    let baseline = peak_rss_kib(proxy.pid());

    // Upload: chunked, generated as it is written.
    let started = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'u'; 256 * 1024];
    let mut sent = 0u64;
    while sent < BIG {
        write!(s, "{:x}\r\n", chunk.len()).unwrap();
        s.write_all(&chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
        sent += chunk.len() as u64;
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let resp = common::read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(resp.status, 200, "{resp:?}\n{}", proxy.logs());
    assert_eq!(
        resp.body_str(),
        BIG.to_string(),
        "the upstream counted every byte"
    );
    let upload_time = started.elapsed();

    // Download: counted as it arrives.
    let started = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET /download/{BIG} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut line = String::new();
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse::<u64>().ok();
        }
    }
    assert_eq!(length, Some(BIG), "Content-Length passes through");
    let mut got = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    assert_eq!(got, BIG);
    let download_time = started.elapsed();

    let peak = peak_rss_kib(proxy.pid());
    let grew_mib = (peak.saturating_sub(baseline)) / 1024;
    eprintln!(
        "streamed {} MiB each way: upload {upload_time:?}, download {download_time:?}; peak RSS {} MiB (baseline {} MiB, +{grew_mib} MiB)",
        BIG >> 20,
        peak / 1024,
        baseline / 1024
    );
    assert!(
        grew_mib < 32,
        "the proxy's peak memory grew by {grew_mib} MiB moving {} MiB bodies",
        BIG >> 20
    );
}

#[test]
fn bad_listener_and_upstream_tls_configs_are_refused_with_their_key() {
    let ca = EdgeCa::new();
    let good = ca.issue(&["ok.test"]);
    let other = ca.issue(&["other.test"]);
    let not_pem = ca.write("not.pem", b"not a certificate\n");
    let cert = |c: &str, k: &str| {
        format!("listen: [{{ addr: \"127.0.0.1:0\", tls: {{ certificates: [{{ cert_file: \"{c}\", key_file: \"{k}\" }}] }} }}]\n")
    };
    let (gc, gk) = (
        good.cert_file.display().to_string(),
        good.key_file.display().to_string(),
    );
    let ok = other.key_file.display().to_string();
    let np = not_pem.display().to_string();
    // (config, key and words expected in the output, why)
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        (cert("/nonexistent/edge.pem", &gk), vec!["listen[0].tls.certificates[0].cert_file".into(), "/nonexistent/edge.pem".into()], "missing certificate"),
        (cert(&gc, &np), vec!["listen[0].tls.certificates[0].key_file".into(), np.clone()], "key file that is not PEM"),
        (cert(&gc, &ok), vec!["listen[0].tls.certificates[0].key_file".into(), "does not fit".into()], "the key of another certificate"),
        ("listen: [{ addr: \"127.0.0.1:0\", tls: { certificates: [] } }]\n".into(), vec!["listen[0].tls.certificates".into()], "no certificate"),
        (format!("listen: [{{ addr: \"127.0.0.1:0\", redirect_https: true, tls: {{ certificates: [{}] }} }}]\n", good.yaml()), vec!["listen[0].redirect_https".into()], "redirect on a TLS listener"),
        ("listen: [{ addr: \"127.0.0.1:0\", tsl: {} }]\n".into(), vec!["listen[0].tsl".into(), "unknown field".into()], "unknown key in a listener"),
        ("listen: [\"127.0.0.1:0\"]\nupstreams: { a: { backends: [\"127.0.0.1:1\"], tls: { ca_file: /nonexistent/ca.pem } } }\n".into(), vec!["upstreams.a.tls.ca_file".into(), "/nonexistent/ca.pem".into()], "missing upstream CA file"),
        (format!("listen: [\"127.0.0.1:0\"]\nupstreams: {{ a: {{ backends: [\"127.0.0.1:1\"], tls: {{ cert_file: \"{gc}\" }} }} }}\n"), vec!["upstreams.a.tls.cert_file".into(), "key_file".into()], "client certificate without key"),
    ];
    for (yaml, words, why) in &cases {
        let (code, out) = run_check(yaml);
        assert_eq!(code, 64, "{why}: {out}");
        for w in words {
            assert!(out.contains(w.as_str()), "{why}: {w:?} not in {out}");
        }
        assert!(
            !out.contains("PRIVATE KEY"),
            "{why}: key material printed: {out}"
        );
    }
    let (code, out) = run_check(&format!(
        "listen: [\"127.0.0.1:0\", {}]\n",
        tls_listener(&[&good, &other], "")
    ));
    assert_eq!(code, 0, "{out}");
}
