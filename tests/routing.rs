//! End-to-end routing tests: the real `tracegate` binary on a port the OS picks, real HTTP
//! upstreams and, where spans are asserted, a real OTLP receiver. Assertions are on what
//! crossed the wire: the request line and headers the upstream received, the response the
//! client received, and the spans the receiver got.

mod common;

use common::{
    dead_addr, http_get, http_request, run_check, send_raw, OtlpReceiver, Proxy, ReceivedSpan,
    Upstream,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A config listening on `listen`, exporting spans to `rx` (or recording none), plus `body`.
fn config_on(listen: &str, rx: Option<&OtlpReceiver>, body: &str) -> String {
    let exporter = match rx {
        Some(rx) => format!(
            "exporter: {{ protocol: grpc, endpoint: \"{}\" }}\n  batch: {{ scheduled_delay: 50ms }}",
            rx.endpoint()
        ),
        None => "exporter: { protocol: none }".to_owned(),
    };
    format!(
        r#"listen: ["{listen}"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  service_name: tracegate-test
  {exporter}
{body}"#
    )
}

fn config(rx: Option<&OtlpReceiver>, body: &str) -> String {
    config_on("127.0.0.1:0", rx, body)
}

fn server_spans(spans: &[ReceivedSpan]) -> Vec<&ReceivedSpan> {
    spans.iter().filter(|s| s.is_server()).collect()
}

/// Every matching condition, and priority, decide which route answers; the proxied route's
/// SERVER span carries its name as `http.route`.
#[test]
fn conditions_and_priority_select_the_route() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("api-backend");
    let body = format!(
        r#"routes:
  - name: login
    match: {{ path: /login }}
    respond: {{ body: login }}
  - name: tenants
    match: {{ host: "*.example.com" }}
    respond: {{ body: tenants }}
  - name: apex
    match: {{ host: example.com }}
    respond: {{ body: apex }}
  - name: api-read
    match: {{ path_prefix: /api/, methods: [GET, HEAD] }}
    upstream: api
  - name: api-write
    match: {{ path_prefix: /api/ }}
    respond: {{ body: write }}
  - name: secure-only
    match: {{ path: /secure, scheme: https }}
    respond: {{ body: secure }}
  - name: fallback
    match: {{ path_prefix: / }}
    respond: {{ body: fallback }}
  - name: canary
    priority: 10
    match: {{ headers: {{ X-Env: canary }} }}
    respond: {{ body: canary }}
upstreams:
  api: {{ backends: ["{}"] }}
"#,
        up.addr()
    );
    let proxy = Proxy::start(&config(Some(&rx), &body));
    // (method, path, extra headers, body answered, reason)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        ("GET", "/login", &[], "login", "exact path"),
        (
            "GET",
            "/secure",
            &[],
            "fallback",
            "scheme: https does not match plain HTTP",
        ),
        (
            "GET",
            "/login/",
            &[],
            "fallback",
            "exact path: a trailing slash is another path",
        ),
        (
            "GET",
            "/x",
            &[("host", "a.example.com")],
            "tenants",
            "wildcard, one label",
        ),
        (
            "GET",
            "/x",
            &[("host", "a.b.Example.COM:8080")],
            "tenants",
            "wildcard, two labels, case and port ignored",
        ),
        (
            "GET",
            "/x",
            &[("host", "example.com")],
            "apex",
            "the wildcard skips the bare domain",
        ),
        (
            "GET",
            "/x",
            &[("host", "a.example.org")],
            "fallback",
            "another domain",
        ),
        ("POST", "/api/items", &[], "write", "POST is not in methods"),
        (
            "GET",
            "/api/items",
            &[],
            "api-backend",
            "GET is, and is proxied",
        ),
        (
            "GET",
            "/api/items",
            &[("x-env", "canary")],
            "canary",
            "priority 10 beats file order",
        ),
        (
            "GET",
            "/api/items",
            &[("x-env", "prod"), ("x-env", "canary")],
            "canary",
            "any line of the header may match",
        ),
        (
            "GET",
            "/api/items",
            &[("X-ENV", "Canary")],
            "api-backend",
            "values compare case-sensitively",
        ),
    ];
    for (method, path, headers, want, why) in cases {
        let resp = http_request(&proxy.addr(), method, path, headers, b"");
        assert_eq!(resp.status, 200, "{why}");
        assert_eq!(resp.body_str(), *want, "{why}");
    }
    let proxied = cases.iter().filter(|c| c.3 == "api-backend").count();
    assert_eq!(up.wait_for_requests(proxied, WAIT).len(), proxied);
    let spans = rx.wait_for_spans(cases.len() + proxied, WAIT);
    let routes: Vec<Option<&str>> = server_spans(&spans)
        .iter()
        .map(|s| s.attr_str("http.route"))
        .collect();
    assert!(
        routes.contains(&Some("api-read")),
        "the proxied route's SERVER span names it: {routes:?}"
    );
    assert!(routes.contains(&Some("canary")), "{routes:?}");
    let read = server_spans(&spans)
        .into_iter()
        .find(|s| s.attr_str("http.route") == Some("api-read"))
        .unwrap();
    assert_eq!(read.name, "GET api-read");
}

/// `strip_prefix` then `add_prefix`, query kept; the CLIENT span records the path sent (its
/// `url.full`, the semantic conventions' client attribute), the SERVER span the path received.
#[test]
fn path_rewrite_reaches_the_upstream_and_the_client_span() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let body = format!(
        r#"routes:
  - name: app
    match: {{ path_prefix: /app/ }}
    strip_prefix: /app
    add_prefix: /v2
    upstream: app
upstreams:
  app: {{ backends: ["{}"] }}
"#,
        up.addr()
    );
    let proxy = Proxy::start(&config(Some(&rx), &body));
    let resp = http_get(&proxy.addr(), "/app/items?q=1&r=%2F", &[]);
    assert_eq!(resp.status, 200);
    let got = up.wait_for_requests(1, WAIT);
    assert_eq!(got[0].path_and_query, "/v2/items?q=1&r=%2F");
    let spans = rx.wait_for_spans(2, WAIT);
    let client = spans.iter().find(|s| s.is_client()).expect("a CLIENT span");
    let server = spans.iter().find(|s| s.is_server()).expect("a SERVER span");
    assert_eq!(
        client.attr_str("url.full"),
        Some(format!("http://{}/v2/items", up.addr()).as_str()),
        "the path sent"
    );
    assert_eq!(
        server.attr_str("url.path"),
        Some("/app/items"),
        "the path received"
    );
    assert_eq!(server.attr_str("http.route"), Some("app"));
}

/// Request edits reach the upstream; response edits reach the client, on proxied responses,
/// on a `respond` route and on the proxy's own 502.
#[test]
fn header_edits_reach_both_sides() {
    let up = Upstream::start("origin");
    let body = format!(
        r#"routes:
  - name: app
    match: {{ path_prefix: /app }}
    request_headers:
      set: {{ X-Tenant: acme }}
      add: {{ X-Extra: [one, two] }}
      remove: [Cookie]
    response_headers:
      set: {{ Strict-Transport-Security: "max-age=63072000" }}
      add: {{ X-Served-By: edge }}
      remove: [X-Backend]
    upstream: app
  - name: down
    match: {{ path_prefix: /down }}
    response_headers: {{ set: {{ X-Edge: "1" }} }}
    upstream: dead
  - name: health
    match: {{ path: /healthz }}
    response_headers: {{ set: {{ Content-Type: application/json, Cache-Control: no-store }} }}
    respond: {{ body: '{{"ok":true}}' }}
upstreams:
  app: {{ backends: ["{}"] }}
  dead: {{ backends: ["{}"] }}
"#,
        up.addr(),
        dead_addr()
    );
    let proxy = Proxy::start(&config(None, &body));
    let resp = http_get(
        &proxy.addr(),
        "/app/x",
        &[
            ("x-tenant", "evil"),
            ("x-extra", "zero"),
            ("cookie", "session=secret"),
            ("x-keep", "k"),
        ],
    );
    assert_eq!(resp.status, 200);
    let got = &up.wait_for_requests(1, WAIT)[0];
    // (header, lines the upstream received, reason)
    let cases: [(&str, Vec<&str>, &str); 4] = [
        ("x-tenant", vec!["acme"], "set replaces the client's value"),
        (
            "x-extra",
            vec!["zero", "one", "two"],
            "add appends after the client's line",
        ),
        ("cookie", vec![], "removed"),
        ("x-keep", vec!["k"], "other headers pass"),
    ];
    for (name, want, why) in cases {
        assert_eq!(got.header_values(name), want, "upstream {name}: {why}");
    }
    assert_eq!(
        resp.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(resp.header_values("x-served-by"), ["edge"]);
    assert!(
        resp.header("x-backend").is_none(),
        "the upstream's header is hidden"
    );
    assert_eq!(resp.body_str(), "origin");

    let resp = http_get(&proxy.addr(), "/down", &[]);
    assert_eq!(resp.status, 502);
    assert_eq!(
        resp.header("x-edge"),
        Some("1"),
        "the route's edits reach its 502"
    );

    let resp = http_get(&proxy.addr(), "/healthz", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header_values("content-type").len(), 1);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.body_str(), "{\"ok\":true}");

    let resp = http_get(&proxy.addr(), "/nothing", &[]);
    assert_eq!(resp.status, 404);
    assert!(resp.header("x-edge").is_none() && resp.header("x-served-by").is_none());
}

fn forwarding_config(up: &Upstream, forwarded: &str) -> String {
    format!(
        r#"routes:
  - name: all
    match: {{ path_prefix: / }}
    upstream: app
upstreams:
  app: {{ backends: ["{}"] }}
{forwarded}
"#,
        up.addr()
    )
}

/// The headers a client sends to pass itself off as someone else.
const SPOOF: &[(&str, &str)] = &[
    ("x-forwarded-for", "6.6.6.6"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-real-ip", "6.6.6.6"),
    ("forwarded", "for=6.6.6.6;proto=https"),
];

/// By default no client is trusted: every forwarding header is replaced with this hop's.
#[test]
fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(None, &forwarding_config(&up, "")));
    let addr = proxy.addr();
    let resp = http_get(&addr, "/x", SPOOF);
    assert_eq!(resp.status, 200);
    let got = &up.wait_for_requests(1, WAIT)[0];
    // (header, lines the upstream received, reason)
    let forwarded = format!("for=127.0.0.1;proto=http;host=\"{addr}\"");
    let cases: [(&str, Vec<&str>, &str); 6] = [
        (
            "x-forwarded-for",
            vec!["127.0.0.1"],
            "the client's address only",
        ),
        ("x-forwarded-proto", vec!["http"], "the real scheme"),
        (
            "x-forwarded-host",
            vec![&addr],
            "the Host the client asked for",
        ),
        ("x-real-ip", vec![], "removed"),
        (
            "forwarded",
            vec![&forwarded],
            "RFC 7239, host quoted for its ':'",
        ),
        (
            "host",
            vec![&addr],
            "pass_host: true keeps the client's Host",
        ),
    ];
    for (name, want, why) in cases {
        assert_eq!(got.header_values(name), want, "{name}: {why}");
    }
}

/// From a trusted network, the chains are kept and this hop is appended.
#[test]
fn forwarding_headers_from_a_trusted_proxy_are_appended_to() {
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        None,
        &forwarding_config(&up, "forwarded: { trusted: [\"127.0.0.0/8\"] }"),
    ));
    let addr = proxy.addr();
    let resp = http_get(
        &addr,
        "/x",
        &[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example.com"),
            (
                "forwarded",
                "for=198.51.100.1;proto=https, for=\"[2001:db8::7]\"",
            ),
        ],
    );
    assert_eq!(resp.status, 200);
    let got = &up.wait_for_requests(1, WAIT)[0];
    let forwarded = format!(
        "for=198.51.100.1;proto=https, for=\"[2001:db8::7]\", for=127.0.0.1;proto=http;host=\"{addr}\""
    );
    let cases: [(&str, Vec<&str>, &str); 4] = [
        (
            "x-forwarded-for",
            vec!["198.51.100.1, 198.51.100.2, 127.0.0.1"],
            "lines joined, this hop appended",
        ),
        (
            "x-forwarded-proto",
            vec!["https"],
            "the first hop's scheme kept",
        ),
        (
            "x-forwarded-host",
            vec!["shop.example.com"],
            "the first hop's host kept",
        ),
        ("forwarded", vec![&forwarded], "the RFC 7239 chain appended"),
    ];
    for (name, want, why) in cases {
        assert_eq!(got.header_values(name), want, "{name}: {why}");
    }
}

/// An IPv6 client: bare in `X-Forwarded-For`, bracketed and quoted in `Forwarded`.
#[test]
fn forwarding_headers_for_an_ipv6_client() {
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config_on("[::1]:0", None, &forwarding_config(&up, "")));
    let addr = proxy.addr();
    assert!(addr.starts_with("[::1]:"), "{addr}");
    assert_eq!(http_get(&addr, "/x", &[]).status, 200);
    let got = &up.wait_for_requests(1, WAIT)[0];
    assert_eq!(got.header_values("x-forwarded-for"), ["::1"]);
    assert_eq!(
        got.header_values("forwarded"),
        [format!("for=\"[::1]\";proto=http;host=\"{addr}\"")]
    );
}

/// `forwarded.headers` picks the families written; one that is off is not touched.
#[test]
fn forwarding_headers_can_be_switched_off() {
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        None,
        &forwarding_config(&up, "forwarded: { headers: [forwarded] }"),
    ));
    assert_eq!(http_get(&proxy.addr(), "/x", SPOOF).status, 200);
    let got = &up.wait_for_requests(1, WAIT)[0];
    assert_eq!(
        got.header_values("x-forwarded-for"),
        ["6.6.6.6"],
        "X-Forwarded-* off: passed through as sent"
    );
    assert_eq!(
        got.header_values("forwarded"),
        [format!(
            "for=127.0.0.1;proto=http;host=\"{}\"",
            proxy.addr()
        )]
    );
}

/// `pass_host`: the client's Host (default), the backend as written, or a fixed `host`.
#[test]
fn pass_host_decides_the_upstream_host() {
    let (a, b, c) = (
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    );
    let body = format!(
        r#"routes:
  - {{ name: client, match: {{ path_prefix: /client }}, upstream: client }}
  - {{ name: backend, match: {{ path_prefix: /backend }}, upstream: backend }}
  - {{ name: fixed, match: {{ path_prefix: /fixed }}, upstream: fixed }}
upstreams:
  client: {{ backends: ["{}"] }}
  backend: {{ backends: ["{}"], pass_host: false }}
  fixed: {{ backends: ["{}"], host: api.internal }}
"#,
        a.addr(),
        b.addr(),
        c.addr()
    );
    let proxy = Proxy::start(&config(None, &body));
    let client_host = [("host", "shop.example.com")];
    // (path, upstream, Host it received, reason)
    let b_host = b.addr();
    let cases = [
        (
            "/client",
            &a,
            "shop.example.com",
            "the client's Host, as Traefik",
        ),
        (
            "/backend",
            &b,
            b_host.as_str(),
            "the backend's host:port, as nginx $proxy_host",
        ),
        ("/fixed", &c, "api.internal", "an explicit Host"),
    ];
    for (path, up, want, why) in cases {
        assert_eq!(
            http_get(&proxy.addr(), path, &client_host).status,
            200,
            "{why}"
        );
        let got = &up.wait_for_requests(1, WAIT)[0];
        assert_eq!(got.header_values("host"), [want], "{why}");
        assert_eq!(
            got.header("x-forwarded-host"),
            Some("shop.example.com"),
            "{why}: X-Forwarded-Host keeps the client's"
        );
    }
}

/// Redirects: Location from parts or a URL, the default and explicit statuses, HEAD, the
/// route's response edits, and the SERVER span.
#[test]
fn redirects_answer_with_location() {
    let rx = OtlpReceiver::grpc();
    let body = r#"routes:
  - name: moved
    match: { path_prefix: /old/ }
    strip_prefix: /old
    add_prefix: /new
    redirect: { status: 308 }
  - name: fixed
    match: { path: /promo }
    redirect: { url: "https://promo.example.com/spring", status: 301 }
  - name: login
    match: { path_prefix: /account }
    redirect: { path: /login }
  - name: to-https
    match: { path_prefix: /, scheme: http }
    response_headers: { set: { Cache-Control: no-store } }
    redirect: { scheme: https }
"#;
    let proxy = Proxy::start(&config(Some(&rx), body));
    let host = [("host", "shop.example.com:8080")];
    // (method, path, status, Location, reason)
    let cases = [
        (
            "GET",
            "/old/a/b?x=1",
            308,
            "/new/a/b?x=1",
            "strip/add prefix move a tree, query kept",
        ),
        (
            "GET",
            "/promo?utm=1",
            301,
            "https://promo.example.com/spring",
            "url is used as written",
        ),
        (
            "POST",
            "/account/settings?next=%2Fx",
            302,
            "/login?next=%2Fx",
            "path alone, default 302",
        ),
        (
            "GET",
            "/cart?id=7",
            302,
            "https://shop.example.com/cart?id=7",
            "http to https, port dropped",
        ),
        (
            "HEAD",
            "/cart",
            302,
            "https://shop.example.com/cart",
            "HEAD: same head, no body",
        ),
    ];
    for (method, path, status, location, why) in cases {
        let resp = http_request(&proxy.addr(), method, path, &host, b"");
        assert_eq!(resp.status, status, "{why}");
        assert_eq!(resp.header_values("location"), [location], "{why}");
        if method == "HEAD" {
            assert!(resp.body.is_empty(), "{why}");
        } else {
            assert!(resp.body_str().starts_with(&status.to_string()), "{why}");
        }
    }
    let resp = http_get(&proxy.addr(), "/cart", &host);
    assert_eq!(
        resp.header("cache-control"),
        Some("no-store"),
        "the route's edits"
    );

    let spans = rx.wait_for_spans(cases.len() + 1, WAIT);
    let moved = server_spans(&spans)
        .into_iter()
        .find(|s| s.attr_str("http.route") == Some("moved"))
        .expect("the redirect's SERVER span");
    assert_eq!(moved.attr_int("http.response.status_code"), Some(308));
    assert_eq!(moved.name, "GET moved");
    assert!(spans.iter().all(|s| !s.is_client()), "no upstream attempt");
}

/// A redirect that keeps the request's host cannot be built for a request without one: 400,
/// one log line, and the proxy keeps serving.
#[test]
fn redirect_without_a_host_is_a_bad_request() {
    let body = r#"routes:
  - name: to-https
    match: { path_prefix: /, scheme: http }
    redirect: { scheme: https }
"#;
    let proxy = Proxy::start(&config(None, body));
    let resp = send_raw(&proxy.addr(), b"GET /x HTTP/1.0\r\n\r\n", false).unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.header("location").is_none());
    proxy.wait_for_log(
        "bad request: 400 GET /x route=to-https: the request has no Host to redirect to",
        WAIT,
    );
    let resp = http_get(&proxy.addr(), "/x", &[("host", "a.example")]);
    assert_eq!(resp.header("location"), Some("https://a.example/x"));
}

/// Configs that cannot work are refused before start: exit 64, the key and the reason.
#[test]
fn bad_routing_configs_are_refused() {
    let head = "listen: [\"127.0.0.1:0\"]\nupstreams: { app: { backends: [\"127.0.0.1:9\"] } }\n";
    // (config after `head`, key, words in the reason, reason)
    let cases = [
        (
            "routes: [{ name: a, match: { host: \"a.*.example.com\" }, upstream: app }]",
            "routes[0].match.host",
            "whole first label",
            "a wildcard in the middle",
        ),
        (
            "routes: [{ name: a, match: { methods: [] }, upstream: app }]",
            "routes[0].match.methods",
            "matches no request",
            "an empty method list",
        ),
        (
            "routes: [{ name: a, request_headers: { set: { Content-Length: \"0\" } }, upstream: app }]",
            "routes[0].request_headers.set.Content-Length",
            "frames the message",
            "a framing header",
        ),
        (
            "routes: [{ name: a, request_headers: { set: { Host: a } }, upstream: app }]",
            "routes[0].request_headers.set.Host",
            "pass_host",
            "Host belongs to pass_host",
        ),
        (
            "routes: [{ name: a, response_headers: { remove: [Transfer-Encoding] }, upstream: app }]",
            "routes[0].response_headers.remove[0]",
            "frames the message",
            "framing on the response",
        ),
        (
            "routes: [{ name: a, redirect: { scheme: https, status: 200 } }]",
            "routes[0].redirect.status",
            "301, 302, 303, 307 or 308",
            "not a redirect status",
        ),
        (
            "routes: [{ name: a, redirect: {} }]",
            "routes[0].redirect.url",
            "needs a target",
            "a redirect to itself",
        ),
        (
            "routes: [{ name: a, add_prefix: /, upstream: app }]",
            "routes[0].add_prefix",
            "adds nothing",
            "add_prefix /",
        ),
        (
            "forwarded: { trusted: [\"10.0.0.1/8\"] }",
            "forwarded.trusted[0]",
            "bits set",
            "a network with host bits",
        ),
        (
            "upstreams2: 1",
            "upstreams2",
            "unknown field",
            "a typo at the top",
        ),
    ];
    for (body, key, words, why) in cases {
        let (code, out) = run_check(&format!("{head}{body}\n"));
        assert_eq!(code, 64, "{why}: {out}");
        assert!(
            out.contains(&format!("{key}: ")),
            "{why}: the key {key}: {out}"
        );
        assert!(out.contains(words), "{why}: {out}");
    }
    let (code, out) = run_check(
        "listen: [\"127.0.0.1:0\"]\nupstreams: { app: { backends: [\"127.0.0.1:9\"], pass_host: true, host: api.internal } }\n",
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("upstreams.app.host: "), "{out}");
}

/// The shipped configs, which show the routing keys, load.
#[test]
fn shipped_configs_pass_the_check() {
    for (name, yaml) in [
        ("tracegate.yaml", include_str!("../config/tracegate.yaml")),
        (
            "edge-example.yaml",
            include_str!("../config/edge-example.yaml"),
        ),
    ] {
        let (code, out) = run_check(yaml);
        assert_eq!(code, 0, "{name}: {out}");
    }
}
