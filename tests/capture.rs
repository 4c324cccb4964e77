//! End-to-end tests of what the SERVER span records beyond the fixed attributes
//! (`telemetry.capture`): request and response headers from an allowlist
//! (`http.request.header.<name>`, `http.response.header.<name>`) and `url.query` with the
//! values of sensitive keys redacted. The real binary, a real upstream and a real OTLP
//! receiver; the upstream shows that redaction touches only the span, never the request.

mod common;

use common::{
    http_get, one_upstream, AttrValue, OtlpProtocol, OtlpReceiver, Proxy, ReceivedSpan, Upstream,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn config(rx: &OtlpReceiver, telemetry: &str, body: &str) -> String {
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  exporter: {{ protocol: {}, endpoint: "{}" }}
  batch: {{ scheduled_delay: 20ms }}
{telemetry}
{body}"#,
        match rx.protocol() {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        },
        rx.endpoint()
    )
}

fn server_spans(rx: &OtlpReceiver, n: usize) -> Vec<ReceivedSpan> {
    let mut spans: Vec<ReceivedSpan> = rx
        .wait_for_spans(n, WAIT)
        .into_iter()
        .filter(ReceivedSpan::is_server)
        .collect();
    spans.sort_by_key(|s| s.start_ns);
    spans
}

fn list(values: &[&str]) -> AttrValue {
    AttrValue::StrList(values.iter().map(|v| v.to_string()).collect())
}

/// No attribute key or value of `span` mentions `needle`.
fn assert_nowhere(span: &ReceivedSpan, needle: &str) {
    for (k, v) in &span.attributes {
        assert!(
            !k.contains(needle) && !format!("{v:?}").contains(needle),
            "{needle:?} leaked into {k} = {v:?}"
        );
    }
}

const SECRET: &str = "s3cr3t-value";

#[test]
fn listed_headers_and_a_redacted_query_are_recorded_and_nothing_else() {
    let rx = OtlpReceiver::http();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        &rx,
        "  capture:\n    request_headers: [X-Request-Id, accept]\n    response_headers: [x-backend, content-type]\n    sensitive_query_keys: [tenant]",
        &one_upstream(&up),
    ));
    let auth = format!("Bearer {SECRET}");
    let cookie = format!("sid={SECRET}");
    let path = format!("/search?q=shoes&access_token={SECRET}&tenant={SECRET}&page=2");
    let resp = http_get(
        &proxy.addr(),
        &path,
        &[
            ("x-request-id", "req-42"),
            ("accept", "text/html"),
            ("accept", "application/json"),
            ("authorization", &auth),
            ("cookie", &cookie),
        ],
    );
    assert_eq!(resp.status, 200);
    // Redaction is for the span only: the upstream gets the request as sent.
    assert_eq!(up.requests()[0].path_and_query, path);
    assert_eq!(
        up.requests()[0].header("authorization"),
        Some(auth.as_str())
    );

    let s = &server_spans(&rx, 2)[0];
    // (attribute, expected, reason)
    let cases = [
        (
            "http.request.header.x-request-id",
            Some(list(&["req-42"])),
            "listed in any case, recorded lower-case",
        ),
        (
            "http.request.header.accept",
            Some(list(&["text/html", "application/json"])),
            "one array element per header line",
        ),
        (
            "http.response.header.x-backend",
            Some(list(&["b1"])),
            "response header from the upstream",
        ),
        (
            "http.response.header.content-type",
            None,
            "listed but not sent: no attribute",
        ),
        (
            "http.request.header.authorization",
            None,
            "never recorded unless listed",
        ),
        (
            "http.request.header.cookie",
            None,
            "never recorded unless listed",
        ),
        (
            "url.query",
            Some(AttrValue::Str(
                "q=shoes&access_token=REDACTED&tenant=REDACTED&page=2".into(),
            )),
            "built-in and configured sensitive keys redacted, the rest kept",
        ),
        (
            "url.path",
            Some(AttrValue::Str("/search".into())),
            "the path has no query",
        ),
    ];
    for (key, want, why) in cases {
        assert_eq!(s.attributes.get(key), want.as_ref(), "{key}: {why}");
    }
    assert_nowhere(s, SECRET);
    assert!(
        !proxy.logs().contains(SECRET),
        "secrets never reach the log"
    );
}

#[test]
fn defaults_capture_no_headers_and_redact_the_query() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "", &one_upstream(&up)));
    let auth = format!("Bearer {SECRET}");
    let path = format!("/x?password={SECRET}&X-Amz-Signature={SECRET}&id=7");
    assert_eq!(
        http_get(&proxy.addr(), &path, &[("authorization", &auth)]).status,
        200
    );
    let s = &server_spans(&rx, 2)[0];
    assert!(
        !s.attributes.keys().any(
            |k| k.starts_with("http.request.header.") || k.starts_with("http.response.header.")
        ),
        "no header is captured unless listed: {:?}",
        s.attributes.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        s.attr_str("url.query"),
        Some("password=REDACTED&X-Amz-Signature=REDACTED&id=7")
    );
    assert_nowhere(s, SECRET);
}

#[test]
fn query_modes_and_explicitly_listed_credentials() {
    // (capture config, expected url.query, expected authorization capture, reason)
    let cases = [
        (
            "  capture: { query: \"off\" }",
            None,
            None,
            "off: no url.query at all",
        ),
        (
            "  capture: { query: full, request_headers: [authorization] }",
            Some(format!("token={SECRET}")),
            Some(list(&["Bearer x"])),
            "full and an explicitly listed Authorization are the operator's choice",
        ),
    ];
    for (capture, query, auth, why) in cases {
        let rx = OtlpReceiver::http();
        let up = Upstream::start("b1");
        let proxy = Proxy::start(&config(&rx, capture, &one_upstream(&up)));
        let path = format!("/?token={SECRET}");
        let resp = http_get(&proxy.addr(), &path, &[("authorization", "Bearer x")]);
        assert_eq!(resp.status, 200, "{why}");
        let s = &server_spans(&rx, 2)[0];
        assert_eq!(s.attr_str("url.query"), query.as_deref(), "{why}");
        assert_eq!(
            s.attributes.get("http.request.header.authorization"),
            auth.as_ref(),
            "{why}"
        );
        drop(proxy);
    }
}

#[test]
fn the_proxys_own_responses_capture_response_headers() {
    let rx = OtlpReceiver::grpc();
    let proxy = Proxy::start(&config(
        &rx,
        "  capture: { response_headers: [content-type] }",
        "routes:\n  - name: hello\n    match: { path_prefix: /hello }\n    respond: { status: 200, body: hi }\n",
    ));
    assert_eq!(http_get(&proxy.addr(), "/hello", &[]).status, 200);
    assert_eq!(http_get(&proxy.addr(), "/nowhere", &[]).status, 404);
    let spans = server_spans(&rx, 2);
    for s in &spans {
        assert_eq!(
            s.attributes.get("http.response.header.content-type"),
            Some(&list(&["text/plain; charset=utf-8"])),
            "{}: the respond route and the 404 are the proxy's own answers",
            s.name
        );
    }
}
