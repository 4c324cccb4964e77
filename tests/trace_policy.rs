//! End-to-end tests of the trace policies: head sampling (`telemetry.sampler`, a route's
//! `sample_ratio`), the keep rules that export what the sampler dropped, and trust of incoming
//! context (`telemetry.trust_incoming`). The real binary, real upstreams that record the
//! `traceparent` they receive, and a real OTLP receiver.

mod common;

use common::{dead_addr, http_get, one_upstream, OtlpReceiver, Proxy, ReceivedSpan, Upstream};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A config exporting to `rx` over gRPC with `telemetry` lines added, plus routes/upstreams.
fn config(rx: &OtlpReceiver, telemetry: &str, body: &str) -> String {
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  exporter: {{ protocol: grpc, endpoint: "{}" }}
  batch: {{ scheduled_delay: 20ms }}
{telemetry}
{body}"#,
        rx.endpoint()
    )
}

/// The `traceparent` the upstream received with its `n`-th request: (trace id, flags).
fn sent_upstream(up: &Upstream, n: usize) -> (String, String) {
    let reqs = up.requests();
    let tp = reqs[n]
        .header("traceparent")
        .unwrap_or_else(|| panic!("request {n} has no traceparent"))
        .to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    (parts[1].to_owned(), parts[3].to_owned())
}

/// Stops the proxy (flushing its queue) and returns every span the receiver got.
fn stop_and_collect(mut proxy: Proxy, rx: &OtlpReceiver) -> Vec<ReceivedSpan> {
    proxy.sigterm();
    assert!(proxy.wait_exit(WAIT).expect("exits").success());
    rx.spans()
}

const LOW: &str = "4bf92f3577b34da6a300000000000001"; // randomness near 0
const HIGH: &str = "4bf92f3577b34da6a3fffffffffffffe"; // randomness near 2^56
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str, flags: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN}-{flags}")
}

#[test]
fn always_off_propagates_an_unsampled_context_and_exports_nothing() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        &rx,
        "  sampler: { name: always_off }",
        &one_upstream(&up),
    ));
    for _ in 0..3 {
        assert_eq!(http_get(&proxy.addr(), "/", &[]).status, 200);
    }
    for n in 0..3 {
        let (trace_id, flags) = sent_upstream(&up, n);
        assert_ne!(trace_id, "0".repeat(32));
        // Level 2: a new trace id is random (0x02), not sampled (no 0x01).
        assert_eq!(flags, "02", "the trace id is made at the edge either way");
    }
    let spans = stop_and_collect(proxy, &rx);
    assert!(spans.is_empty(), "nothing recorded: {spans:#?}");
}

/// `traceidratio` ignores the caller's flag and decides from the trace id's randomness, so the
/// outcome is known in advance for chosen trace ids.
#[test]
fn traceidratio_decides_from_the_trace_id() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        &rx,
        "  sampler: { name: traceidratio, ratio: 0.5 }",
        &one_upstream(&up),
    ));
    // (trace id, caller's flags, sampled, reason)
    let cases = [
        (
            HIGH,
            "00",
            true,
            "high randomness: kept, although the caller did not sample",
        ),
        (
            LOW,
            "01",
            false,
            "low randomness: dropped, although the caller sampled",
        ),
    ];
    for (i, (trace_id, flags, _, _)) in cases.iter().enumerate() {
        let tp = traceparent(trace_id, flags);
        assert_eq!(
            http_get(&proxy.addr(), &format!("/{i}"), &[("traceparent", &tp)]).status,
            200
        );
    }
    for (i, (trace_id, _, sampled, why)) in cases.iter().enumerate() {
        let (sent_id, sent_flags) = sent_upstream(&up, i);
        assert_eq!(&sent_id, trace_id, "{why}: the trace is continued");
        assert_eq!(sent_flags, if *sampled { "01" } else { "00" }, "{why}");
    }
    let spans = stop_and_collect(proxy, &rx);
    assert_eq!(
        spans.len(),
        2,
        "server + client of the kept request: {spans:#?}"
    );
    assert!(spans.iter().all(|s| s.trace_id == HIGH));
}

#[test]
fn a_route_ratio_applies_to_new_traces_and_a_trusted_parent_still_decides() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let body = format!(
        "routes:\n  - name: health\n    match: {{ path_prefix: /healthz }}\n    upstream: app\n    sample_ratio: 0\n  - name: all\n    match: {{ path_prefix: / }}\n    upstream: app\nupstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    );
    let proxy = Proxy::start(&config(&rx, "", &body));
    let sampled_parent = traceparent(HIGH, "01");
    // (path, headers, sampled flag upstream, reason)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: [Case; 3] = [
        (
            "/healthz",
            vec![],
            "02",
            "new trace on a ratio-0 route: not sampled",
        ),
        (
            "/healthz",
            vec![("traceparent", sampled_parent.as_str())],
            "01",
            "parentbased: the caller's decision wins over the route ratio",
        ),
        (
            "/app",
            vec![],
            "03",
            "another route: the default sampler keeps it",
        ),
    ];
    for (path, headers, _, _) in &cases {
        assert_eq!(http_get(&proxy.addr(), path, headers).status, 200);
    }
    for (i, (_, _, flags, why)) in cases.iter().enumerate() {
        assert_eq!(&sent_upstream(&up, i).1, flags, "{why}");
    }
    let spans = stop_and_collect(proxy, &rx);
    assert_eq!(
        spans.len(),
        4,
        "two sampled requests, two spans each: {spans:#?}"
    );
    assert!(!spans
        .iter()
        .any(|s| s.attr_str("http.route") == Some("health") && s.trace_id != HIGH));
}

/// From an untrusted client, a valid `traceparent` neither joins the trace nor forces
/// sampling: a new trace starts, with the client's context as a link on the SERVER span.
#[test]
fn untrusted_callers_get_a_new_trace_linked_to_theirs() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    // 127.0.0.1 (the test client) is outside the trusted network.
    let proxy = Proxy::start(&config(
        &rx,
        "  trust_incoming: [\"10.0.0.0/8\"]",
        &one_upstream(&up),
    ));
    let unsampled = traceparent(HIGH, "00");
    let resp = http_get(
        &proxy.addr(),
        "/",
        &[("traceparent", &unsampled), ("tracestate", "evil=1")],
    );
    assert_eq!(resp.status, 200);
    let (sent_id, sent_flags) = sent_upstream(&up, 0);
    assert_ne!(sent_id, HIGH, "a new trace, not the caller's");
    assert_eq!(
        sent_flags, "03",
        "the caller's 'not sampled' does not suppress sampling"
    );
    assert_eq!(
        up.requests()[0].header("tracestate"),
        None,
        "the caller's tracestate is not forwarded"
    );
    let spans = rx.wait_for_spans(2, WAIT);
    let server = spans.iter().find(|s| s.is_server()).expect("server span");
    assert_eq!(server.trace_id, sent_id);
    assert!(server.is_root(), "no parent: {server:?}");
    assert_eq!(
        server.links,
        vec![(HIGH.to_owned(), CALLER_SPAN.to_owned(), 0x300)],
        "the caller's context is a remote link"
    );
}

#[test]
fn untrusted_callers_cannot_force_sampling() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        &rx,
        "  trust_incoming: none\n  sampler: { name: parentbased_always_off }",
        &one_upstream(&up),
    ));
    let sampled = traceparent(HIGH, "01");
    assert_eq!(
        http_get(&proxy.addr(), "/", &[("traceparent", &sampled)]).status,
        200
    );
    let (sent_id, sent_flags) = sent_upstream(&up, 0);
    assert_ne!(sent_id, HIGH);
    assert_eq!(
        sent_flags, "02",
        "the sampler decides, not the caller's flag"
    );
    assert!(stop_and_collect(proxy, &rx).is_empty());
}

#[test]
fn trusted_networks_continue_the_trace() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        &rx,
        "  trust_incoming: [\"127.0.0.0/8\", \"::1\"]",
        &one_upstream(&up),
    ));
    let tp = traceparent(HIGH, "01");
    assert_eq!(
        http_get(
            &proxy.addr(),
            "/",
            &[("traceparent", &tp), ("tracestate", "ok=1")]
        )
        .status,
        200
    );
    assert_eq!(sent_upstream(&up, 0), (HIGH.to_owned(), "01".to_owned()));
    assert_eq!(up.requests()[0].header("tracestate"), Some("ok=1"));
    let spans = rx.wait_for_spans(2, WAIT);
    let server = spans.iter().find(|s| s.is_server()).expect("server span");
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert!(server.links.is_empty());
}

/// With keep rules, a request the head sampler dropped is exported when it fails or is slow:
/// the edge knows the outcome. Its upstream still got "not sampled" (decided before it left).
#[test]
fn keep_rules_export_failed_and_slow_requests_the_sampler_dropped() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let dead = dead_addr();
    let body = format!(
        "routes:\n  - name: dead\n    match: {{ path_prefix: /dead }}\n    upstream: dead\n  - name: app\n    match: {{ path_prefix: / }}\n    upstream: app\nupstreams:\n  dead: {{ backends: [\"{dead}\"] }}\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    );
    let proxy = Proxy::start(&config(
        &rx,
        "  sampler: { name: always_off }\n  keep: { errors: true, slower_than: 300ms }",
        &body,
    ));
    // (path, status, kept, reason)
    let cases = [
        ("/fast", 200, false, "fast success: dropped"),
        ("/dead", 502, true, "server error: kept"),
        ("/slow/400", 200, true, "slower than 300ms: kept"),
        (
            "/status/404",
            404,
            false,
            "a 4xx is the client's error: dropped",
        ),
    ];
    for (path, status, _, why) in cases {
        assert_eq!(http_get(&proxy.addr(), path, &[]).status, status, "{why}");
    }
    let spans = stop_and_collect(proxy, &rx);
    for (path, _, kept, why) in cases {
        let server: Vec<_> = spans
            .iter()
            .filter(|s| s.is_server() && s.attr_str("url.path") == Some(path))
            .collect();
        assert_eq!(server.len(), usize::from(kept), "{why}: {spans:#?}");
        if let Some(s) = server.first() {
            let clients = spans
                .iter()
                .filter(|c| c.is_client() && c.parent_span_id == s.span_id)
                .count();
            assert_eq!(clients, 1, "{why}: its CLIENT span is kept with it");
            assert_eq!(
                s.flags & 0x01,
                0,
                "{why}: exported, but flagged as not sampled"
            );
        }
    }
    assert_eq!(spans.len(), 4, "two kept requests, two spans each");
}
