//! Route middlewares on the real binary, against a real upstream: what the client gets, what
//! the upstream did or did not receive, and what the SERVER span and the access log say.
//! `compress` is decoded by independent libraries (flate2, brotli, zstd).

mod common;

use common::{http_get, http_request, OtlpReceiver, Proxy, Upstream};
use std::io::{Read, Write};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn proxy(up: &Upstream, rx: Option<&OtlpReceiver>, extra: &str) -> Proxy {
    let telemetry = match rx {
        Some(rx) => format!(
            "telemetry: {{ exporter: {{ protocol: grpc, endpoint: \"{}\" }}, batch: {{ scheduled_delay: 20ms }} }}\n",
            rx.endpoint()
        ),
        None => "telemetry: { exporter: { protocol: none } }\n".to_owned(),
    };
    Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\n{telemetry}{extra}\nupstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    ))
}

#[test]
fn ip_allow_and_ip_deny_answer_403_and_read_the_client_behind_trusted_proxies() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("app");
    let p = proxy(
        &up,
        Some(&rx),
        "forwarded: { trusted: [\"127.0.0.1/32\"] }\n\
         middlewares:\n  office: { ip_allow: [\"10.0.0.0/8\", \"2001:db8::/32\"] }\n  \
         blocked: { ip_deny: [\"198.51.100.0/24\"] }\n\
         routes:\n  - { name: office, match: { path_prefix: /office }, middlewares: [office], upstream: app }\n  \
         - { name: open, match: { path_prefix: / }, middlewares: [blocked], upstream: app }\n",
    );
    // (path, X-Forwarded-For, status, why)
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        (
            "/office/a",
            None,
            403,
            "the peer 127.0.0.1 is not in the office",
        ),
        (
            "/office/b",
            Some("10.1.2.3"),
            200,
            "behind the trusted peer: the forwarded client is",
        ),
        (
            "/office/c",
            Some("10.1.2.3, 203.0.113.5"),
            403,
            "the right-most untrusted hop counts, not the spoofable left",
        ),
        ("/open/a", Some("198.51.100.7"), 403, "a denied network"),
        ("/open/b", Some("203.0.113.5"), 200, "another network"),
    ];
    for (path, xff, status, why) in cases {
        let headers: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
        let r = http_get(&p.addr(), path, &headers);
        assert_eq!(r.status, *status, "{why}: {}", r.body_str());
    }
    let reached: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        reached,
        ["/office/b", "/open/b"],
        "refused requests never reach the upstream"
    );
    // The SERVER spans of the refusals name the middleware.
    let spans = rx.wait_for_spans(5 + 2, WAIT);
    let refused: Vec<(&str, Option<&str>)> = spans
        .iter()
        .filter(|s| s.is_server() && s.attr_int("http.response.status_code") == Some(403))
        .map(|s| {
            (
                s.attr_str("url.path").unwrap(),
                s.attr_str("tracegate.middleware"),
            )
        })
        .collect();
    assert_eq!(refused.len(), 3);
    assert!(refused.contains(&("/office/a", Some("office"))));
    assert!(refused.contains(&("/open/a", Some("blocked"))));
    assert!(spans
        .iter()
        .filter(|s| s.is_server() && s.attr_int("http.response.status_code") == Some(200))
        .all(|s| s.attr_str("tracegate.middleware").is_none()));
}

#[test]
fn body_limit_refuses_a_long_content_length_and_aborts_a_long_chunked_body() {
    let up = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let p = proxy(
        &up,
        None,
        &format!(
            "access_log: {{ path: \"{}\", format: json }}\n\
             middlewares:\n  upload: {{ body_limit: 1KiB }}\n\
             routes:\n  - {{ name: up, match: {{ path_prefix: / }}, middlewares: [upload], upstream: app }}\n",
            log.display()
        ),
    );
    let r = http_request(&p.addr(), "POST", "/small", &[], &[b'x'; 1000]);
    assert_eq!(r.status, 200);
    let r = http_request(&p.addr(), "POST", "/declared", &[], &[b'x'; 2000]);
    assert_eq!(r.status, 413, "Content-Length over the limit");
    // A chunked body that passes the limit while streaming.
    let mut s = std::net::TcpStream::connect(p.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST /streamed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for _ in 0..8 {
        let chunk = [b'y'; 400];
        let _ = write!(s, "{:x}\r\n", chunk.len());
        let _ = s.write_all(&chunk);
        let _ = s.write_all(b"\r\n");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let got: Vec<(String, usize)> = up
        .requests()
        .iter()
        .map(|r| (r.path_and_query.clone(), r.body.len()))
        .collect();
    assert!(got.iter().any(|(p, n)| p == "/small" && *n == 1000));
    assert!(
        !got.iter().any(|(p, _)| p == "/declared"),
        "nothing sent upstream: {got:?}"
    );
    assert!(
        got.iter().all(|(p, n)| p != "/streamed" || *n < 3200),
        "the upstream never got the whole streamed body: {got:?}"
    );
    // The access log names the middleware that answered.
    for l in common::wait_for_json_lines(&log, 3, WAIT) {
        let want = (l["http.response.status_code"] == 413).then_some("upload");
        assert_eq!(l["tracegate.middleware"].as_str(), want, "{l}");
    }
}

#[test]
fn cors_answers_preflights_itself_and_marks_responses() {
    let up = Upstream::start("app");
    let p = proxy(
        &up,
        None,
        "middlewares:\n  cors: { cors: { allow_origins: [\"https://app.example.com\"], allow_methods: [GET, POST], \
         allow_headers: [content-type], max_age: 10m, allow_credentials: true } }\n  \
         office: { ip_allow: [\"10.0.0.0/8\"] }\n\
         routes:\n  - { name: locked, match: { path_prefix: /locked }, middlewares: [cors, office], upstream: app }\n  \
         - { name: api, match: { path_prefix: / }, middlewares: [cors], upstream: app }\n",
    );
    let origin = ("origin", "https://app.example.com");
    let r = http_request(
        &p.addr(),
        "OPTIONS",
        "/api/x",
        &[
            origin,
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("content-length"),
        None,
        "a 204 has no Content-Length"
    );
    assert!(
        up.requests().is_empty(),
        "a preflight never reaches the upstream"
    );

    let r = http_get(&p.addr(), "/api/x", &[origin]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(r.header_values("vary").iter().any(|v| v.contains("Origin")));
    let r = http_get(&p.addr(), "/api/y", &[("origin", "https://evil.example")]);
    assert_eq!(r.status, 200, "CORS does not refuse: the browser does");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert!(r.header_values("vary").iter().any(|v| v.contains("Origin")));
    // A refusal after cors carries the CORS headers, so the page can read it.
    let r = http_get(&p.addr(), "/locked", &[origin]);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(up.requests().len(), 2);
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        "zstd" => out = zstd::decode_all(body).expect("valid zstd"),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

#[test]
fn compress_by_accept_encoding_and_type_never_twice() {
    let up = Upstream::start("app");
    let p = proxy(
        &up,
        None,
        "middlewares:\n  z: { compress: { min_size: 1KiB, types: [text/*, application/json] } }\n\
         routes:\n  - { name: all, match: { path_prefix: / }, middlewares: [z], upstream: app }\n",
    );
    let plain = http_get(&p.addr(), "/big/20000", &[]).body;
    assert_eq!(plain.len(), 20000);
    for enc in ["gzip", "br", "zstd"] {
        let r = http_get(&p.addr(), "/big/20000", &[("accept-encoding", enc)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(enc), "{enc}");
        assert!(r.body.len() < 2000, "{enc}: {} bytes", r.body.len());
        assert_eq!(decode(enc, &r.body), plain, "{enc} decodes to the original");
        assert!(
            r.header_values("vary")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{enc}: Vary: Accept-Encoding"
        );
    }
    let json = http_get(
        &p.addr(),
        "/big/5000?type=application%2Fjson",
        &[("accept-encoding", "gzip")],
    );
    assert_eq!(
        json.header("content-encoding"),
        Some("gzip"),
        "a listed type"
    );
    // (path, why) of responses left as they are.
    let untouched: &[(&str, &str)] = &[
        ("/big/500", "under min_size"),
        ("/big/5000?type=image%2Fpng", "not a listed type"),
        ("/big/5000?encoding=gzip", "already encoded: never twice"),
    ];
    for (path, why) in untouched {
        let r = http_get(&p.addr(), path, &[("accept-encoding", "gzip, br, zstd")]);
        assert_eq!(r.status, 200, "{why}");
        let n: usize = path[5..].split('?').next().unwrap().parse().unwrap();
        assert_eq!(r.body.len(), n, "{why}: the body as the upstream sent it");
        assert_ne!(
            r.header("content-encoding")
                .filter(|_| !path.contains("encoding=")),
            Some("gzip"),
            "{why}"
        );
    }
    let none = http_get(&p.addr(), "/big/20000", &[("accept-encoding", "identity")]);
    assert_eq!(
        none.header("content-encoding"),
        None,
        "identity asked: not compressed"
    );
    assert_eq!(none.body, plain);
}

#[test]
fn unknown_middleware_names_and_bad_values_are_refused_at_load() {
    // (yaml, key in the message, why)
    let cases: &[(&str, &str, &str)] = &[
        (
            "routes: [{ name: r, match: { path: / }, middlewares: [nope], respond: { body: x } }]\n",
            "routes[0].middlewares[0]",
            "an unknown name",
        ),
        (
            "middlewares: { a: { ip_allow: [\"10.0.0.0/40\"] } }\n",
            "middlewares.a.ip_allow[0]",
            "a bad CIDR",
        ),
        (
            "middlewares: { a: { cors: { allow_origins: [\"*\"], allow_credentials: true } } }\n",
            "middlewares.a.cors.allow_credentials",
            "* with credentials",
        ),
    ];
    for (yaml, key, why) in cases {
        let (code, out) = common::run_check(&format!("listen: [\"127.0.0.1:0\"]\n{yaml}"));
        assert_eq!(code, 64, "{why}: {out}");
        assert!(out.contains(&format!("{key}: ")), "{why}: {out}");
    }
}
