//! End-to-end tests: the real `tracegate` binary on a port the OS picks, real HTTP upstreams
//! and a real OTLP receiver (gRPC or HTTP/protobuf), all started by each test. Assertions are
//! on what crosses the wire: the headers the upstream received and the spans the receiver got.

mod common;

use common::{
    dead_addr, http_get, one_upstream, run_check, OtlpReceiver, Proxy, ReceivedSpan, Upstream,
    UPSTREAM_TRACERESPONSE,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A config exporting to `rx` with a short batch delay, plus the given routes/upstreams YAML.
fn config(rx: &OtlpReceiver, protocol: &str, body: &str) -> String {
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  service_name: tracegate-test
  exporter: {{ protocol: {protocol}, endpoint: "{}" }}
  batch: {{ scheduled_delay: 50ms }}
{body}"#,
        rx.endpoint()
    )
}

fn server_span(spans: &[ReceivedSpan]) -> &ReceivedSpan {
    let s: Vec<_> = spans.iter().filter(|s| s.is_server()).collect();
    assert_eq!(s.len(), 1, "exactly one SERVER span: {spans:#?}");
    s[0]
}

fn client_spans(spans: &[ReceivedSpan]) -> Vec<&ReceivedSpan> {
    spans.iter().filter(|s| s.is_client()).collect()
}

/// The core contract, for one OTLP protocol: the upstream receives one traceparent naming the
/// exported trace and the client span; spans link server -> client; attributes follow semconv.
fn traceparent_matches_exported_spans(rx: OtlpReceiver, protocol: &str) {
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, protocol, &one_upstream(&up)));

    let resp = http_get(
        &proxy.addr(),
        "/items/42?q=shoes&api_key=secret",
        &[("user-agent", "tg-test/1")],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "b1");

    let spans = rx.wait_for_spans(2, WAIT);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = server_span(&spans);
    let client = client_spans(&spans)[0];

    let got = up.requests();
    assert_eq!(got.len(), 1);
    let tp = got[0].header_values("traceparent");
    assert_eq!(tp.len(), 1, "exactly one traceparent upstream: {tp:?}");
    let parts: Vec<&str> = tp[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{}", tp[0]);
    assert_eq!(parts[0], "00");
    assert_eq!(
        parts[1], server.trace_id,
        "traceparent trace-id = exported trace id"
    );
    assert_eq!(
        parts[2], client.span_id,
        "traceparent parent-id = the CLIENT span"
    );
    assert_eq!(
        parts[3], "03",
        "sampled + random (a new trace from our CSPRNG)"
    );
    assert!(
        got[0].header("tracestate").is_none(),
        "no tracestate without an incoming one"
    );

    assert!(
        server.is_root(),
        "no incoming context: the SERVER span is the root"
    );
    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(
        client.parent_span_id, server.span_id,
        "CLIENT is the SERVER span's child"
    );
    assert_ne!(server.trace_id, "0".repeat(32));

    assert_eq!(server.name, "GET all");
    assert_eq!(server.attr_str("http.request.method"), Some("GET"));
    assert_eq!(server.attr_str("url.path"), Some("/items/42"));
    assert_eq!(
        server.attr_str("url.query"),
        Some("q=shoes&api_key=REDACTED"),
        "the query is recorded with sensitive values redacted (the default)"
    );
    assert_eq!(server.attr_str("url.scheme"), Some("http"));
    assert_eq!(server.attr_str("http.route"), Some("all"));
    assert_eq!(server.attr_int("http.response.status_code"), Some(200));
    assert_eq!(server.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(server.attr_str("client.address"), Some("127.0.0.1"));
    assert_eq!(server.attr_str("user_agent.original"), Some("tg-test/1"));
    assert_eq!(server.attr_str("network.protocol.version"), Some("1.1"));
    assert_eq!(server.status_code, ReceivedSpan::STATUS_UNSET);
    assert!(
        !spans.iter().any(|s| s
            .attributes
            .values()
            .any(|v| format!("{v:?}").contains("secret"))),
        "no secret from the query string is recorded"
    );

    let (host, port) = up
        .addr()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.parse::<i64>().unwrap()))
        .unwrap();
    assert_eq!(client.name, "GET");
    assert_eq!(client.attr_str("server.address"), Some(host.as_str()));
    assert_eq!(client.attr_int("server.port"), Some(port));
    assert_eq!(client.attr_int("http.response.status_code"), Some(200));
    assert_eq!(client.attr_str("tracegate.upstream"), Some("app"));
    assert!(client.attributes.contains_key("tracegate.upstream.ttfb_ms"));
    assert!(client.event("upstream.first_byte").is_some());
    assert!(client.event("upstream.connected").is_some());

    // The server span covers the client span, in nanoseconds.
    assert!(
        server.start_ns <= client.start_ns && client.end_ns <= server.end_ns,
        "{spans:#?}"
    );
    assert!(client.start_ns < client.end_ns);
    assert_eq!(
        rx.service_names().first().map(String::as_str),
        Some("tracegate-test")
    );
}

#[test]
fn otlp_grpc_traceparent_matches_exported_spans() {
    traceparent_matches_exported_spans(OtlpReceiver::grpc(), "grpc");
}

#[test]
fn otlp_http_protobuf_traceparent_matches_exported_spans() {
    traceparent_matches_exported_spans(OtlpReceiver::http(), "http/protobuf");
}

#[test]
fn continues_incoming_trace_and_carries_tracestate() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "grpc", &one_upstream(&up)));
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = http_get(
        &proxy.addr(),
        "/",
        &[
            ("traceparent", incoming),
            ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ],
    );
    assert_eq!(resp.status, 200);
    let spans = rx.wait_for_spans(2, WAIT);
    let server = server_span(&spans);
    let client = client_spans(&spans)[0];
    assert_eq!(server.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        server.parent_span_id, "00f067aa0ba902b7",
        "the SERVER span's parent is the caller's span"
    );
    assert_eq!(client.parent_span_id, server.span_id);

    let got = &up.requests()[0];
    let tp = got.header_values("traceparent");
    assert_eq!(
        tp.len(),
        1,
        "the incoming traceparent is replaced, not duplicated: {tp:?}"
    );
    assert_eq!(
        tp[0],
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", client.span_id)
    );
    assert_eq!(
        got.header_values("tracestate"),
        vec!["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]
    );
}

#[test]
fn invalid_incoming_context_restarts_the_trace() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "grpc", &one_upstream(&up)));
    // (traceparent headers, reason)
    let cases: &[(&[&str], &str)] = &[
        (
            &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
            "all-zero trace-id",
        ),
        (
            &["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
            "version ff",
        ),
        (
            &[
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ],
            "duplicated header",
        ),
        (&["garbage"], "malformed"),
    ];
    for (i, (tps, why)) in cases.iter().enumerate() {
        let mut headers: Vec<(&str, &str)> = tps.iter().map(|v| ("traceparent", *v)).collect();
        headers.push(("tracestate", "rojo=1"));
        let resp = http_get(&proxy.addr(), "/", &headers);
        assert_eq!(
            resp.status, 200,
            "{why}: a bad traceparent is no reason to refuse the request"
        );
        let got = &up.requests()[i];
        let tp = got.header_values("traceparent");
        assert_eq!(tp.len(), 1, "{why}");
        assert!(
            !tp[0].contains("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{why}: new trace id"
        );
        assert!(
            !tp[0].starts_with("00-00000000000000000000000000000000"),
            "{why}"
        );
        assert!(
            got.header("tracestate").is_none(),
            "{why}: tracestate dropped with the context"
        );
    }
    let spans = rx.wait_for_spans(2 * cases.len(), WAIT);
    assert!(spans.iter().filter(|s| s.is_server()).all(|s| s.is_root()));
}

#[test]
fn routes_by_host_and_path_and_balances_round_robin() {
    let rx = OtlpReceiver::grpc();
    let (a1, a2, web) = (
        Upstream::start("api-1"),
        Upstream::start("api-2"),
        Upstream::start("web"),
    );
    let body = format!(
        r#"routes:
  - name: api
    match: {{ host: api.example.com, path_prefix: /api }}
    upstream: api
  - name: default
    match: {{ path_prefix: / }}
    upstream: web
upstreams:
  api: {{ backends: ["{}", "{}"] }}
  web: {{ backends: ["{}"] }}
"#,
        a1.addr(),
        a2.addr(),
        web.addr()
    );
    let proxy = Proxy::start(&config(&rx, "grpc", &body));
    let get = |host: &str, path: &str| {
        let r = http_get(&proxy.addr(), path, &[("host", host)]);
        assert_eq!(r.status, 200, "{host} {path}");
        r.body_str()
    };
    // (host, path, backend, reason)
    let cases = [
        (
            "api.example.com",
            "/api/users",
            "api-1",
            "host + prefix: api pool, first backend",
        ),
        (
            "API.EXAMPLE.COM:8080",
            "/api/users",
            "api-2",
            "host ignores case and port; round robin moves on",
        ),
        (
            "api.example.com",
            "/api/x",
            "api-1",
            "round robin wraps around",
        ),
        (
            "api.example.com",
            "/other",
            "web",
            "right host, wrong path: default route",
        ),
        (
            "www.example.com",
            "/api/users",
            "web",
            "right path, wrong host: default route",
        ),
    ];
    for (host, path, want, why) in cases {
        assert_eq!(get(host, path), want, "{why}");
    }
    assert_eq!(a1.requests().len(), 2);
    assert_eq!(a2.requests().len(), 1);
    assert_eq!(web.requests().len(), 2);
    let spans = rx.wait_for_spans(10, WAIT);
    let routes: Vec<_> = spans
        .iter()
        .filter(|s| s.is_server())
        .filter_map(|s| s.attr_str("http.route"))
        .collect();
    assert_eq!(routes.iter().filter(|r| **r == "api").count(), 3);
    assert_eq!(routes.iter().filter(|r| **r == "default").count(), 2);
}

#[test]
fn no_matching_route_is_404_with_a_span() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let body = format!(
        "routes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: app\nupstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    );
    let proxy = Proxy::start(&config(&rx, "grpc", &body));
    let resp = http_get(&proxy.addr(), "/nothing-here", &[]);
    assert_eq!(resp.status, 404);
    let spans = rx.wait_for_spans(1, WAIT);
    let server = server_span(&spans);
    assert_eq!(server.attr_int("http.response.status_code"), Some(404));
    assert_eq!(server.attr_str("http.route"), None, "no route matched");
    assert_eq!(server.name, "GET");
    assert_eq!(
        server.status_code,
        ReceivedSpan::STATUS_UNSET,
        "4xx is not a server error"
    );
    assert!(client_spans(&spans).is_empty());
    assert!(up.requests().is_empty());
}

/// With `traceresponse` and `trace_id_header` configured, every response carries the trace id
/// the caller can quote: proxied ones (replacing an upstream's own `traceresponse`), the
/// proxy's 404 and its 502. `traceresponse` names the exported SERVER span (W3C Trace Context
/// Level 2 `traceresponse`: version-trace-id-child-id-flags).
#[test]
fn responses_carry_the_trace_id_when_configured() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let dead = dead_addr();
    let body = format!(
        r#"routes:
  - name: dead
    match: {{ path_prefix: /dead }}
    upstream: dead
  - name: app
    match: {{ path_prefix: /app }}
    upstream: app
upstreams:
  dead: {{ backends: ["{dead}"] }}
  app: {{ backends: ["{}"] }}
"#,
        up.addr()
    );
    let cfg = config(&rx, "grpc", &body).replace(
        "  service_name: tracegate-test\n",
        "  service_name: tracegate-test\n  traceresponse: true\n  trace_id_header: X-Trace-Id\n",
    );
    let proxy = Proxy::start(&cfg);
    // (path, status, reason)
    let cases = [
        ("/app/x", 200, "a proxied response"),
        (
            "/app/upstream-traceresponse",
            200,
            "an upstream's own traceresponse is replaced by ours",
        ),
        ("/nothing", 404, "the proxy's own 404"),
        ("/dead", 502, "the proxy's own 502"),
    ];
    let mut seen = Vec::new();
    for (path, status, why) in cases {
        let resp = http_get(&proxy.addr(), path, &[]);
        assert_eq!(resp.status, status, "{why}");
        let tr = resp
            .header("traceresponse")
            .unwrap_or_else(|| panic!("{why}: no traceresponse in {:?}", resp.headers))
            .to_owned();
        let parts: Vec<&str> = tr.split('-').collect();
        assert_eq!(parts.len(), 4, "{why}: {tr}");
        assert_eq!((parts[0], parts[3]), ("00", "03"), "{why}: {tr}");
        assert_eq!(resp.header("x-trace-id"), Some(parts[1]), "{why}");
        assert_eq!(
            resp.headers
                .iter()
                .filter(|(n, _)| n == "traceresponse")
                .count(),
            1,
            "{why}: one traceresponse, ours"
        );
        seen.push((parts[1].to_owned(), parts[2].to_owned(), why));
    }
    // 4 SERVER spans and 3 CLIENT spans (the 404 has none).
    let spans = rx.wait_for_spans(7, WAIT);
    for (trace_id, span_id, why) in seen {
        let server = spans
            .iter()
            .find(|s| s.is_server() && s.span_id == span_id)
            .unwrap_or_else(|| panic!("{why}: no SERVER span {span_id} in {spans:#?}"));
        assert_eq!(server.trace_id, trace_id, "{why}");
    }
}

#[test]
fn no_trace_response_headers_by_default() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "grpc", &one_upstream(&up)));
    let resp = http_get(&proxy.addr(), "/", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("traceresponse"), None);
    assert_eq!(resp.header("x-trace-id"), None);
    let resp = http_get(&proxy.addr(), "/upstream-traceresponse", &[]);
    assert_eq!(
        resp.header("traceresponse"),
        Some(UPSTREAM_TRACERESPONSE),
        "not configured: an upstream's traceresponse passes through untouched"
    );
}

#[test]
fn dead_backend_is_502_with_error_spans_and_the_proxy_keeps_serving() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("alive");
    let dead = dead_addr();
    let body = format!(
        r#"routes:
  - name: dead
    match: {{ path_prefix: /dead }}
    upstream: dead
  - name: alive
    match: {{ path_prefix: / }}
    upstream: alive
upstreams:
  dead: {{ backends: ["{dead}"] }}
  alive: {{ backends: ["{}"] }}
"#,
        up.addr()
    );
    let proxy = Proxy::start(&config(&rx, "grpc", &body));
    let resp = http_get(&proxy.addr(), "/dead", &[]);
    assert_eq!(resp.status, 502);
    let spans = rx.wait_for_spans(2, WAIT);
    let server = server_span(&spans);
    let clients = client_spans(&spans);
    assert_eq!(clients.len(), 1, "one backend, one attempt: {spans:#?}");
    let client = clients[0];
    assert_eq!(server.status_code, ReceivedSpan::STATUS_ERROR);
    assert_eq!(server.attr_int("http.response.status_code"), Some(502));
    assert_eq!(server.attr_str("error.type"), Some("502"));
    assert_eq!(client.status_code, ReceivedSpan::STATUS_ERROR);
    assert_eq!(client.attr_str("error.type"), Some("connection_refused"));
    assert_eq!(client.parent_span_id, server.span_id);
    let log = proxy.wait_for_log("upstream failed", WAIT);
    assert!(
        log.contains("502") && log.contains("route=dead") && log.contains(&dead),
        "{log}"
    );
    assert!(
        log.contains(&format!("trace_id={}", server.trace_id)),
        "the log line names the trace: {log}"
    );
    assert_eq!(
        proxy.logs().matches("upstream failed").count(),
        1,
        "one line per failure"
    );

    let resp = http_get(&proxy.addr(), "/still-here", &[]);
    assert_eq!(
        resp.status, 200,
        "the proxy keeps serving after an upstream failure"
    );
}

#[test]
fn connect_failure_retries_on_the_next_backend_with_a_span_per_attempt() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("alive");
    let dead = dead_addr();
    let body = format!(
        "routes:\n  - name: all\n    match: {{ path_prefix: / }}\n    upstream: app\nupstreams:\n  app: {{ backends: [\"{dead}\", \"{}\"] }}\n",
        up.addr()
    );
    let proxy = Proxy::start(&config(&rx, "grpc", &body));
    let resp = http_get(&proxy.addr(), "/", &[]);
    assert_eq!(
        resp.status, 200,
        "the first pick is the dead backend; the retry succeeds"
    );
    let spans = rx.wait_for_spans(3, WAIT);
    let server = server_span(&spans);
    let mut clients = client_spans(&spans);
    clients.sort_by_key(|c| c.start_ns);
    assert_eq!(clients.len(), 2, "{spans:#?}");
    assert_eq!(
        clients[0].attr_str("error.type"),
        Some("connection_refused")
    );
    assert_eq!(
        clients[0].attr_int("http.request.resend_count"),
        None,
        "first attempt"
    );
    assert_eq!(clients[1].attr_int("http.request.resend_count"), Some(1));
    assert_eq!(clients[1].attr_int("http.response.status_code"), Some(200));
    assert!(clients.iter().all(|c| c.parent_span_id == server.span_id));
    let tp = up.requests()[0].header_values("traceparent")[0].to_owned();
    assert!(
        tp.contains(&clients[1].span_id),
        "the upstream hangs under the attempt that reached it"
    );
    assert_eq!(server.status_code, ReceivedSpan::STATUS_UNSET);
}

#[test]
fn upstream_timeout_is_504_with_a_timeout_span() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("slow");
    let body = format!(
        "routes:\n  - name: all\n    match: {{ path_prefix: / }}\n    upstream: app\nupstreams:\n  app: {{ backends: [\"{}\"], read_timeout: 200ms }}\n",
        up.addr()
    );
    let proxy = Proxy::start(&config(&rx, "grpc", &body));
    let resp = http_get(&proxy.addr(), "/slow/3000", &[]);
    assert_eq!(resp.status, 504);
    let spans = rx.wait_for_spans(2, WAIT);
    let server = server_span(&spans);
    let client = client_spans(&spans)[0];
    assert_eq!(server.attr_int("http.response.status_code"), Some(504));
    assert_eq!(server.status_code, ReceivedSpan::STATUS_ERROR);
    assert_eq!(client.attr_str("error.type"), Some("timeout"));
    assert_eq!(client.status_code, ReceivedSpan::STATUS_ERROR);
    let log = proxy.wait_for_log("upstream failed", WAIT);
    assert!(
        log.contains("504") && log.contains("error=timeout"),
        "{log}"
    );
    assert_eq!(
        http_get(&proxy.addr(), "/fast", &[]).status,
        200,
        "keeps serving"
    );
}

#[test]
fn respond_route_and_strip_prefix() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("app");
    let body = format!(
        r#"routes:
  - name: hello
    match: {{ path_prefix: /hello }}
    respond: {{ status: 201, body: "hi there" }}
  - name: app
    match: {{ path_prefix: /app }}
    strip_prefix: /app
    upstream: app
upstreams:
  app: {{ backends: ["{}"] }}
"#,
        up.addr()
    );
    let proxy = Proxy::start(&config(&rx, "grpc", &body));
    let r = http_get(&proxy.addr(), "/hello", &[]);
    assert_eq!((r.status, r.body_str().as_str()), (201, "hi there"));
    let r = http_get(&proxy.addr(), "/app/items?q=1", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].path_and_query, "/items?q=1");
    let spans = rx.wait_for_spans(3, WAIT);
    let hello = spans
        .iter()
        .find(|s| s.attr_str("http.route") == Some("hello"))
        .unwrap();
    assert_eq!(hello.attr_int("http.response.status_code"), Some(201));
    let client = client_spans(&spans)[0];
    assert!(client.attr_str("url.full").unwrap().ends_with("/items"));
}

#[test]
fn spans_queued_at_sigterm_are_flushed_before_exit() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    // A batch delay far longer than the test: spans can only leave through the shutdown flush.
    let cfg = config(&rx, "grpc", &one_upstream(&up))
        .replace("scheduled_delay: 50ms", "scheduled_delay: 10m");
    let mut proxy = Proxy::start(&cfg);
    for _ in 0..5 {
        assert_eq!(http_get(&proxy.addr(), "/", &[]).status, 200);
    }
    assert!(
        rx.spans().is_empty(),
        "nothing is exported before the batch delay or shutdown"
    );
    proxy.sigterm();
    let status = proxy
        .wait_exit(WAIT)
        .expect("tracegate exits after SIGTERM");
    assert!(status.success(), "{status}");
    let spans = rx.spans();
    assert_eq!(
        spans.len(),
        10,
        "5 requests x (server + client), all flushed: {spans:#?}"
    );
    assert!(
        proxy.logs().contains("10 spans exported"),
        "{}",
        proxy.logs()
    );
}

/// OTLP partial success (the receiver took the batch but refused some spans) is not a failed
/// export: the spans are counted as rejected, the receiver's message is logged, and requests are
/// unaffected. Both transports carry it in the response body.
#[test]
fn spans_rejected_by_the_receiver_are_counted_and_logged() {
    for (rx, protocol) in [
        (OtlpReceiver::grpc(), "grpc"),
        (OtlpReceiver::http(), "http/protobuf"),
    ] {
        rx.reject_all_spans("over quota");
        let up = Upstream::start("b1");
        let mut proxy = Proxy::start(&config(&rx, protocol, &one_upstream(&up)));
        for _ in 0..3 {
            assert_eq!(http_get(&proxy.addr(), "/", &[]).status, 200, "{protocol}");
        }
        rx.wait_for_spans(6, WAIT);
        // The spans may arrive in more than one batch and the loss log is rate-limited, so the
        // first line may count only some; the `stopped:` line below has the total.
        proxy.wait_for_log("spans: over quota", WAIT);
        proxy.sigterm();
        assert!(proxy.wait_exit(WAIT).expect("exits").success());
        let logs = proxy.logs();
        assert!(
            logs.contains("stopped: 0 spans exported, 0 dropped (queue full), 0 in failed exports, 6 rejected by the receiver"),
            "{protocol}:\n{logs}"
        );
    }
}

#[test]
fn a_dead_collector_never_blocks_requests() {
    let up = Upstream::start("b1");
    let cfg = format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  exporter: {{ protocol: grpc, endpoint: "http://{}", timeout: 500ms }}
  batch: {{ scheduled_delay: 20ms }}
{}"#,
        dead_addr(),
        one_upstream(&up)
    );
    let mut proxy = Proxy::start(&cfg);
    for _ in 0..50 {
        assert_eq!(http_get(&proxy.addr(), "/", &[]).status, 200);
    }
    assert_eq!(up.requests().len(), 50);
    proxy.wait_for_log("span export failed", WAIT);
    proxy.sigterm();
    assert!(proxy
        .wait_exit(WAIT)
        .expect("exits with the collector down")
        .success());
    let logs = proxy.logs();
    assert!(
        logs.matches("span export failed").count() <= 2,
        "export errors are rate-limited:\n{logs}"
    );
}

#[test]
fn stdout_exporter_prints_linked_spans() {
    let up = Upstream::start("b1");
    let cfg = format!(
        "listen: [\"127.0.0.1:0\"]\nserver: {{ grace_period: 0s }}\ntelemetry: {{ batch: {{ scheduled_delay: 20ms }} }}\n{}",
        one_upstream(&up)
    );
    let mut proxy = Proxy::start(&cfg);
    assert_eq!(http_get(&proxy.addr(), "/x", &[]).status, 200);
    proxy.sigterm();
    proxy.wait_exit(WAIT).expect("exits");
    let out = proxy.stdout();
    let tp = up.requests()[0].header_values("traceparent")[0].to_owned();
    let trace_id = tp.split('-').nth(1).unwrap();
    let client_id = tp.split('-').nth(2).unwrap();
    assert!(
        out.lines()
            .any(|l| l.contains(trace_id) && l.contains(client_id) && l.contains(" client ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(trace_id) && l.contains(" server ") && l.contains("\"GET all\"")),
        "{out}"
    );
}

#[test]
fn check_accepts_good_configs_and_refuses_bad_ones_with_file_key_reason() {
    let good = "listen: [\"127.0.0.1:8080\"]\nroutes:\n  - name: a\n    upstream: u\nupstreams:\n  u: { backends: [\"127.0.0.1:9001\"] }\n";
    let (code, out) = run_check(good);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");

    // (yaml, key and reason in the message, why)
    let bad: &[(&str, &str, &str)] = &[
        (
            "listen: [\"127.0.0.1:8080\"]\nlisten_typo: 1\n",
            "listen_typo: unknown field",
            "unknown key",
        ),
        (
            "listen: [\"127.0.0.1:8080\"]\nroutes:\n  - name: a\n    upstream: nope\n",
            "routes[0].upstream: no upstream named \"nope\"",
            "missing upstream",
        ),
        (
            "listen: [\"127.0.0.1:8080\"]\nupstreams:\n  u: { backends: [] }\n",
            "upstreams.u.backends: at least one backend",
            "empty backend list",
        ),
        (
            "listen: [\"127.0.0.1:8080\"]\nupstreams:\n  u: { backends: [\"nonsense\"] }\n",
            "upstreams.u.backends[0]: invalid backend",
            "bad backend address",
        ),
        (
            "listen: [\"8080\"]\n",
            "listen[0]: invalid address",
            "bad listen address",
        ),
    ];
    for (yaml, want, why) in bad {
        let (code, out) = run_check(yaml);
        assert_eq!(code, 64, "{why}: {out}");
        assert!(
            out.contains(".yaml: "),
            "{why}: the message names the file: {out}"
        );
        assert!(out.contains(want), "{why}: {out}");
        assert_eq!(
            out.trim().lines().count(),
            1,
            "{why}: one clear line: {out}"
        );
    }
}

#[test]
fn shipped_default_config_passes_check() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")).unwrap() {
        let path = entry.unwrap().path();
        let yaml = std::fs::read_to_string(&path).unwrap();
        let (code, out) = run_check(&yaml);
        assert_eq!(code, 0, "{}: {out}", path.display());
    }
}

/// The README's Jaeger example: no exporter in the file, only the standard OTEL_* variables.
#[test]
fn otel_environment_variables_select_the_exporter() {
    // (receiver, env, reason)
    type Case = (OtlpReceiver, Vec<(&'static str, String)>, &'static str);
    let cases: Vec<Case> = {
        let g = OtlpReceiver::grpc();
        let h = OtlpReceiver::http();
        let (ge, he) = (g.endpoint(), h.endpoint());
        vec![
            (
                g,
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", ge)],
                "an endpoint alone selects OTLP/gRPC",
            ),
            (
                h,
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", he),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
                ],
                "http/protobuf appends /v1/traces to the base endpoint",
            ),
        ]
    };
    for (rx, mut env, why) in cases {
        let up = Upstream::start("b1");
        env.push(("OTEL_SERVICE_NAME", "from-env".into()));
        env.push(("OTEL_BSP_SCHEDULE_DELAY", "50".into()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let cfg = format!(
            "listen: [\"127.0.0.1:0\"]\nserver: {{ grace_period: 0s }}\n{}",
            one_upstream(&up)
        );
        let proxy = Proxy::start_with_env(&cfg, &env);
        assert_eq!(http_get(&proxy.addr(), "/", &[]).status, 200, "{why}");
        let spans = rx.wait_for_spans(2, WAIT);
        assert_eq!(spans.len(), 2, "{why}");
        assert_eq!(
            rx.service_names()[0],
            "from-env",
            "{why}: OTEL_SERVICE_NAME"
        );
    }
}

#[test]
fn spans_queued_at_sigint_are_flushed_too() {
    let rx = OtlpReceiver::http();
    let up = Upstream::start("b1");
    let cfg = config(&rx, "http/protobuf", &one_upstream(&up))
        .replace("scheduled_delay: 50ms", "scheduled_delay: 10m");
    let mut proxy = Proxy::start(&cfg);
    assert_eq!(http_get(&proxy.addr(), "/", &[]).status, 200);
    proxy.signal(nix::sys::signal::Signal::SIGINT);
    proxy.wait_exit(WAIT).expect("tracegate exits after SIGINT");
    assert_eq!(rx.spans().len(), 2, "{}", proxy.logs());
}
