//! End-to-end tests of the one view of the request path: the real `tracegate` binary, a real
//! backend that reads paths as the most permissive application servers do
//! ([`common::backends::LenientBackend`]) and a guard route answering `/admin` with 403. Every
//! way of writing `/admin` that such a backend would read as `/admin` must meet the guard or a
//! 400; what the backend reads must be what the routes matched, with the query untouched.

mod common;

use common::backends::{lenient_read, LenientBackend};
use common::{http_get, OtlpReceiver, Proxy, ReceivedSpan};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A config for `backend` with a guard on `/admin`, a route allowing `%2F`, a rewriting route
/// and a catch-all, plus `server_path` as `server.path` and spans to `rx` if given.
fn config(backend: &LenientBackend, server_path: &str, rx: Option<&OtlpReceiver>) -> String {
    let exporter = match rx {
        Some(rx) => format!(
            "exporter: {{ protocol: grpc, endpoint: \"{}\" }}\n  batch: {{ scheduled_delay: 50ms }}",
            rx.endpoint()
        ),
        None => "exporter: { protocol: none }".to_owned(),
    };
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s, path: {server_path} }}
telemetry:
  service_name: tracegate-test
  {exporter}
routes:
  - name: admin-guard
    match: {{ path_prefix: /admin }}
    respond: {{ status: 403, body: "guarded\n" }}
  - name: files
    match: {{ path_prefix: /files/ }}
    allow_encoded: [slash]
    upstream: app
  - name: api
    match: {{ path_prefix: /api/ }}
    strip_prefix: /api
    add_prefix: /v2
    upstream: app
  - name: app
    match: {{ path_prefix: / }}
    upstream: app
upstreams:
  app: {{ backends: ["{}"] }}
"#,
        backend.addr()
    )
}

/// The backend used here reads each of these as `/admin…` (checked first, so the list cannot
/// rot into forms nobody reads as `/admin`); through the proxy each meets the guard (403) or
/// is refused (400), and the backend never serves a path it reads as `/admin…`.
#[test]
fn every_way_of_writing_admin_is_guarded_or_refused() {
    let backend = LenientBackend::start();
    let proxy = Proxy::start(&config(&backend, "{}", None));
    let forms = [
        "/admin",
        "/admin/users?id=1",
        "/%61dmin",
        "/%61%64min",
        "/%61%64%6D%69%6E",
        "/%61%64%6d%69%6e",
        "/./admin",
        "/x/../admin",
        "/x/y/../../admin",
        "/../admin",
        "//admin",
        "///admin/",
        "/%2e/admin",
        "/%2E%2e/admin",
        "/x/%2e%2E/admin",
        "/x/.%2e/admin",
        "/..;/admin",
        "/x/..;/admin",
        "/x/..;a=b/admin",
        "/.;/admin",
        "/;x/admin",
        "/admin;x",
        "/%2fadmin",
        "/%2Fadmin",
        "/admin%2f",
        "/x%2f..%2fadmin",
        "/%5cadmin",
        "/x/..%5cadmin",
        "/x\\..\\admin",
        "/admin%00",
        "/admin%00.png",
        "/%252e/admin",
        "/x/%252e%252e/admin",
        "/%2561dmin",
        "/x%3b/../admin",
        "/admin%23x",
        "/x/../admin%3F",
    ];
    // Absolute-form (RFC 9112 §3.2.2): the path inside it gets the same treatment.
    let absolute = |path: &str| format!("http://{}{path}", proxy.addr());
    let forms = forms
        .iter()
        .map(|f| f.to_string())
        .chain(["/x/../admin", "/%61dmin"].map(absolute));
    let mut wrong = Vec::new();
    for form in forms {
        let path = form.strip_prefix(&absolute("")).unwrap_or(&form);
        let read = lenient_read(path);
        assert!(
            read.starts_with("/admin"),
            "the backend reads {form:?} as {read:?}: not a bypass form"
        );
        let r = http_get(&proxy.addr(), &form, &[]);
        if !matches!(r.status, 400 | 403) {
            wrong.push(format!("{form:?}: {} {}", r.status, r.body_str()));
        }
    }
    // Dot or empty segments with parameters are refused, whatever a backend makes of them:
    // this one reads `/admin/..;/` as `/`, others as `/admin/..;`.
    for form in ["/admin/..;/", "/public/..;/admin/..;/", "/a/.;x"] {
        let r = http_get(&proxy.addr(), form, &[]);
        if r.status != 400 {
            wrong.push(format!("{form:?}: {} {}", r.status, r.body_str()));
        }
    }
    assert!(wrong.is_empty(), "not guarded:\n{}", wrong.join("\n"));
    let reached: Vec<_> = backend
        .served()
        .into_iter()
        .filter(|s| s.read.starts_with("/admin"))
        .collect();
    assert!(reached.is_empty(), "the backend served /admin: {reached:?}");

    // Paths are case-sensitive (RFC 3986 §6.2.2.1): `/ADMIN` is another path, and reaches
    // this (case-sensitive) backend as such. A case-insensitive backend needs its own guard.
    let r = http_get(&proxy.addr(), "/ADMIN", &[]);
    assert_eq!((r.status, r.body_str()), (200, "/ADMIN".to_owned()));
    // A refusal says why.
    let r = http_get(&proxy.addr(), "/..;/admin", &[]);
    assert_eq!(r.status, 400);
    assert!(r.body_str().contains("';' parameters"), "{}", r.body_str());
}

/// The normalised path is what is routed, rewritten, sent upstream and shown as `url.path`;
/// the query is never changed; a route's `allow_encoded` lets `%2F` through, encoded.
#[test]
fn the_normalised_path_is_the_one_everyone_sees() {
    let rx = OtlpReceiver::grpc();
    let backend = LenientBackend::start();
    let proxy = Proxy::start(&config(&backend, "{}", Some(&rx)));
    // (request target, what the backend receives, reason)
    let cases = [
        (
            "/a/./b/%7Euser//c?a=%2F&b=..",
            "/a/b/~user/c?a=%2F&b=..",
            "normalised path, query byte for byte",
        ),
        (
            "/plain?x=%2f&y=/../&z=%zz",
            "/plain?x=%2f&y=/../&z=%zz",
            "a normal path: the target as received",
        ),
        (
            "/caf%c3%a9",
            "/caf%C3%A9",
            "other encodings in upper-case hex",
        ),
        (
            "/api/./x/../items?q=1",
            "/v2/items?q=1",
            "strip_prefix and add_prefix apply to the normalised path",
        ),
        (
            "//api//items",
            "/v2/items",
            "merged slashes, then rewritten",
        ),
        (
            "/files/a%2fb",
            "/files/a%2Fb",
            "the route allows %2F: kept encoded",
        ),
        (
            "/files/..%2Fadmin",
            "/files/..%2Fadmin",
            "allowing slash trusts the backend to keep %2F as data",
        ),
    ];
    for (target, want, why) in cases {
        let r = http_get(&proxy.addr(), target, &[]);
        assert_eq!(r.status, 200, "{why}: {target} {}", r.body_str());
        let served = backend.served();
        assert_eq!(served.last().map(|s| s.raw.as_str()), Some(want), "{why}");
    }
    assert_eq!(
        backend.served().last().unwrap().read,
        "/admin",
        "what allowing slash gives up with a backend that decodes %2F"
    );
    // Paths are normalised allowing what any route allows, so `%2F` reaches routing; the
    // catch-all does not allow it.
    let r = http_get(&proxy.addr(), "/other/a%2Fb", &[]);
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(
        r.body_str().contains("encoded slash (%2F)"),
        "{}",
        r.body_str()
    );
    let r = http_get(&proxy.addr(), "/x/%2e%2e/items/%61?q=1", &[]);
    assert_eq!(r.body_str(), "/items/a");
    // Refused before routing: traced with the path as received.
    let r = http_get(&proxy.addr(), "/x/../%5cx", &[]);
    assert_eq!(r.status, 400);

    let server_span = |spans: &[ReceivedSpan], path: &str| -> Option<ReceivedSpan> {
        spans
            .iter()
            .find(|s| s.is_server() && s.attr_str("url.path") == Some(path))
            .cloned()
    };
    let deadline = std::time::Instant::now() + WAIT;
    let (normalised, refused) = loop {
        let spans = rx.spans();
        if let (Some(a), Some(b)) = (
            server_span(&spans, "/items/a"),
            server_span(&spans, "/x/../%5cx"),
        ) {
            break (a, b);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SERVER spans of /items/a and /x/../%5cx: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(normalised.attr_str("http.route"), Some("app"));
    assert_eq!(
        normalised.attr_str("url.query"),
        Some("q=1"),
        "the query as received"
    );
    assert_eq!(
        refused.attr_int("http.response.status_code"),
        Some(400),
        "a refused path is traced with its 400"
    );
    assert!(
        server_span(&rx.spans(), "/other/a%2Fb").is_some(),
        "refused by the matched route: traced with the normalised path"
    );
    let client = rx
        .spans()
        .into_iter()
        .find(|s| s.is_client() && s.trace_id == normalised.trace_id)
        .expect("the CLIENT span of /items/a");
    assert!(
        client
            .attr_str("url.full")
            .is_some_and(|u| u.ends_with("/items/a")),
        "{client:#?}"
    );
}

/// `server.path.allow_encoded` lets an encoding through on every route; `normalize: false`
/// routes the path as received (and gives the guard up) but still refuses the encodings.
#[test]
fn global_allowance_and_raw_paths() {
    let backend = LenientBackend::start();
    let allowing = Proxy::start(&config(
        &backend,
        "{ allow_encoded: [slash, percent] }",
        None,
    ));
    let raw = Proxy::start(&config(&backend, "{ normalize: false }", None));
    // (proxy, target, status, what the backend receives, reason)
    let cases = [
        (
            &allowing,
            "/a%2fb",
            200,
            Some("/a%2Fb"),
            "allowed everywhere",
        ),
        (
            &allowing,
            "/a%252e",
            200,
            Some("/a%252e"),
            "%25 allowed: never decoded",
        ),
        (
            &allowing,
            "/a%5Cb",
            400,
            None,
            "what is not listed stays refused",
        ),
        (&allowing, "/%61dmin", 403, None, "still normalised"),
        (&raw, "/a/./b", 200, Some("/a/./b"), "as received"),
        (
            &raw,
            "/x/../admin",
            200,
            Some("/x/../admin"),
            "without normalising, the guard is walked around",
        ),
        (
            &raw,
            "/a%2Fb",
            400,
            None,
            "refused encodings are still refused",
        ),
    ];
    for (proxy, target, status, want, why) in cases {
        let before = backend.served().len();
        let r = http_get(&proxy.addr(), target, &[]);
        assert_eq!(r.status, status, "{why}: {target} {}", r.body_str());
        let served = backend.served();
        match want {
            Some(w) => assert_eq!(served.last().map(|s| s.raw.as_str()), Some(w), "{why}"),
            None => assert_eq!(served.len(), before, "{why}: nothing reaches the backend"),
        }
    }
}

/// Hosts are matched without case, port or trailing dot; an `xn--` label that is not valid
/// IDNA is refused.
#[test]
fn hosts_with_bad_a_labels_are_refused() {
    let backend = LenientBackend::start();
    let proxy = Proxy::start(&config(&backend, "{}", None));
    // (Host, status, reason)
    let cases = [
        ("xn--bcher-kva.example", 200, "a valid A-label"),
        (
            "XN--BCHER-KVA.example.:8080",
            200,
            "any case, a port, a trailing dot",
        ),
        ("xn--a-b_c.example", 400, "Punycode that does not decode"),
        ("www.xn--abc-.example", 400, "decodes to ASCII only"),
    ];
    for (host, status, why) in cases {
        let r = http_get(&proxy.addr(), "/x", &[("Host", host)]);
        assert_eq!(r.status, status, "{why}: {host} {}", r.body_str());
    }
}

/// HTTP/2 requests (here h2c) carry their authority in the URI: the normalised path replaces
/// the path only, and the request still reaches the backend.
#[test]
fn http2_paths_are_normalised_too() {
    let backend = LenientBackend::start();
    let yaml = config(&backend, "{}", None).replacen(
        r#"listen: ["127.0.0.1:0"]"#,
        r#"listen: [{ addr: "127.0.0.1:0", http2: true }]"#,
        1,
    );
    let proxy = Proxy::start(&yaml);
    // (path, status, what the backend receives, reason)
    let cases = [
        ("/x/../admin", 403, None, "the guard sees /admin"),
        ("/%2e%2e/%61dmin", 403, None, "decoded, then resolved"),
        (
            "/a/./b//c?q=%2F..",
            200,
            Some("/a/b/c?q=%2F.."),
            "normalised, query kept",
        ),
        ("/..;/admin", 400, None, "refused"),
    ];
    for (path, status, want, why) in cases {
        let r = common::edge::h2c_request(&proxy.addr(), path)
            .unwrap_or_else(|e| panic!("{why}: h2c {path}: {e}\n{}", proxy.logs()));
        assert_eq!(r.version, hyper::Version::HTTP_2, "{why}");
        assert_eq!(r.status, status, "{why}: {path}");
        if let Some(w) = want {
            assert_eq!(
                backend.served().last().map(|s| s.raw.as_str()),
                Some(w),
                "{why}"
            );
        }
    }
}
