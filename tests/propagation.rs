//! End-to-end tests of the propagation formats (`telemetry.propagators`, `OTEL_PROPAGATORS`):
//! B3 single and multi, Jaeger and W3C Baggage next to W3C Trace Context. The real binary, a
//! real upstream that records the headers it received, and a real OTLP receiver: every
//! assertion is about what crossed the wire.

mod common;

use common::{
    http_get, one_upstream, run_check, run_check_with_env, OtlpReceiver, Proxy, ReceivedSpan,
    RecordedRequest, Upstream,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// The caller's trace (128-bit) and span.
const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const CALLER_SPAN: &str = "e457b5a2e4d86bd1";
/// A 64-bit trace id, and how it travels after the edge: left-padded to 128 bits.
const TRACE64: &str = "a3ce929d0e0e4736";
const TRACE64_PADDED: &str = "0000000000000000a3ce929d0e0e4736";
/// A second caller context, for requests that carry two formats.
const OTHER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER_SPAN: &str = "00f067aa0ba902b7";

/// A config exporting to `rx` over gRPC, with `telemetry` lines added, routing to `up`.
fn config(rx: &OtlpReceiver, telemetry: &str, up: &Upstream) -> String {
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  exporter: {{ protocol: grpc, endpoint: "{}" }}
  batch: {{ scheduled_delay: 20ms }}
{telemetry}
{}"#,
        rx.endpoint(),
        one_upstream(up)
    )
}

/// The only request the upstream received.
fn only_request(up: &Upstream) -> RecordedRequest {
    let reqs = up.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    reqs.into_iter().next().unwrap()
}

/// The one value of header `name` the upstream received (panics on none or several).
fn one_header<'a>(req: &'a RecordedRequest, name: &str) -> &'a str {
    let v = req.header_values(name);
    assert_eq!(v.len(), 1, "{name} exactly once: {:#?}", req.headers);
    v[0]
}

/// `traceparent` split into (trace id, parent id, flags).
fn traceparent_fields(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "{tp}");
    assert_eq!(p[0], "00", "{tp}");
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

/// The SERVER and CLIENT span of the one request the proxy served.
fn server_and_client(rx: &OtlpReceiver) -> (ReceivedSpan, ReceivedSpan) {
    let spans = rx.wait_for_spans(2, WAIT);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = spans.iter().find(|s| s.is_server()).expect("server span");
    let client = spans.iter().find(|s| s.is_client()).expect("client span");
    assert_eq!(client.parent_span_id, server.span_id);
    (server.clone(), client.clone())
}

fn stop_and_collect(mut proxy: Proxy, rx: &OtlpReceiver) -> Vec<ReceivedSpan> {
    proxy.sigterm();
    assert!(proxy.wait_exit(WAIT).expect("exits").success());
    rx.spans()
}

#[test]
fn b3_single_continues_the_trace_and_goes_upstream_with_the_client_span() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "  propagators: [tracecontext, b3]", &up));
    let b3 = format!("{TRACE}-{CALLER_SPAN}-1-05e3ac9a4f6e3b90");
    assert_eq!(http_get(&proxy.addr(), "/", &[("b3", &b3)]).status, 200);
    let req = only_request(&up);
    let (server, client) = server_and_client(&rx);

    assert_eq!(server.trace_id, TRACE, "the caller's trace is continued");
    assert_eq!(
        server.parent_span_id, CALLER_SPAN,
        "the SERVER span's parent is the incoming b3 span id"
    );
    assert!(server.links.is_empty());
    let (tp_trace, tp_parent, tp_flags) = traceparent_fields(one_header(&req, "traceparent"));
    assert_eq!(
        (tp_trace.as_str(), tp_parent.as_str(), tp_flags.as_str()),
        (TRACE, client.span_id.as_str(), "01"),
        "traceparent names the CLIENT span; no random flag for a B3 trace id"
    );
    assert_eq!(
        one_header(&req, "b3"),
        format!("{TRACE}-{}-1", client.span_id),
        "b3 rewritten: our CLIENT span, no parent field, never 'd'"
    );
}

#[test]
fn b3_multi_continues_the_trace_and_replaces_every_x_b3_header() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "  propagators: [tracecontext, b3multi]", &up));
    let headers = [
        ("X-B3-TraceId", TRACE),
        ("X-B3-SpanId", CALLER_SPAN),
        ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"),
        ("X-B3-Sampled", "0"),
        ("X-B3-Flags", "1"),
    ];
    assert_eq!(http_get(&proxy.addr(), "/", &headers).status, 200);
    let req = only_request(&up);
    let (server, client) = server_and_client(&rx);
    assert_eq!(server.trace_id, TRACE);
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(
        traceparent_fields(one_header(&req, "traceparent")),
        (TRACE.to_owned(), client.span_id.clone(), "01".to_owned()),
        "debug (X-B3-Flags: 1) means sampled, whatever X-B3-Sampled says"
    );
    assert_eq!(one_header(&req, "x-b3-traceid"), TRACE);
    assert_eq!(one_header(&req, "x-b3-spanid"), client.span_id);
    assert_eq!(one_header(&req, "x-b3-sampled"), "1");
    assert!(
        req.header("x-b3-parentspanid").is_none() && req.header("x-b3-flags").is_none(),
        "the caller's parent and debug headers do not describe our span: {:#?}",
        req.headers
    );
}

#[test]
fn jaeger_64_bit_trace_id_is_padded_and_continued() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "  propagators: [tracecontext, jaeger]", &up));
    // Leading zeros of the span id left out, as Jaeger clients may.
    let uber = format!("{TRACE64}:{}:0:1", CALLER_SPAN.trim_start_matches('0'));
    assert_eq!(
        http_get(&proxy.addr(), "/", &[("uber-trace-id", &uber)]).status,
        200
    );
    let req = only_request(&up);
    let (server, client) = server_and_client(&rx);
    assert_eq!(server.trace_id, TRACE64_PADDED, "64 bits, left-padded");
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(
        traceparent_fields(one_header(&req, "traceparent")),
        (
            TRACE64_PADDED.to_owned(),
            client.span_id.clone(),
            "01".to_owned()
        )
    );
    assert_eq!(
        one_header(&req, "uber-trace-id"),
        format!("{TRACE64_PADDED}:{}:0:01", client.span_id)
    );
}

/// A B3 "deny" from a trusted caller is followed by the default `parentbased_always_on`.
#[test]
fn b3_not_sampled_is_followed_by_a_parentbased_sampler() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "  propagators: [tracecontext, b3]", &up));
    let b3 = format!("{TRACE}-{CALLER_SPAN}-0");
    assert_eq!(http_get(&proxy.addr(), "/", &[("b3", &b3)]).status, 200);
    let req = only_request(&up);
    let (trace_id, _, flags) = traceparent_fields(one_header(&req, "traceparent"));
    assert_eq!((trace_id.as_str(), flags.as_str()), (TRACE, "00"));
    assert!(one_header(&req, "b3").ends_with("-0"));
    let spans = stop_and_collect(proxy, &rx);
    assert!(
        spans.is_empty(),
        "not sampled, nothing exported: {spans:#?}"
    );
}

/// With `traceparent` and `b3` both sent, the configured order decides which is the parent;
/// both go upstream describing that one trace.
#[test]
fn the_configured_order_decides_between_formats() {
    let tp = format!("00-{OTHER_TRACE}-{OTHER_SPAN}-01");
    let b3 = format!("{TRACE}-{CALLER_SPAN}-1");
    // (propagators, winning trace, its span, reason)
    let cases = [
        (
            "[tracecontext, b3]",
            OTHER_TRACE,
            OTHER_SPAN,
            "traceparent first",
        ),
        ("[b3, tracecontext]", TRACE, CALLER_SPAN, "b3 first"),
    ];
    for (names, trace, span, why) in cases {
        let rx = OtlpReceiver::grpc();
        let up = Upstream::start("b1");
        let proxy = Proxy::start(&config(&rx, &format!("  propagators: {names}"), &up));
        let resp = http_get(
            &proxy.addr(),
            "/",
            &[("traceparent", &tp), ("tracestate", "rojo=1"), ("b3", &b3)],
        );
        assert_eq!(resp.status, 200);
        let req = only_request(&up);
        let (server, client) = server_and_client(&rx);
        assert_eq!(
            (server.trace_id.as_str(), server.parent_span_id.as_str()),
            (trace, span),
            "{why}"
        );
        let (tp_trace, tp_parent, _) = traceparent_fields(one_header(&req, "traceparent"));
        assert_eq!(
            (tp_trace.as_str(), tp_parent.as_str()),
            (trace, client.span_id.as_str()),
            "{why}"
        );
        assert_eq!(
            one_header(&req, "b3"),
            format!("{trace}-{}-1", client.span_id),
            "{why}"
        );
        let want_ts = (trace == OTHER_TRACE).then_some("rojo=1");
        assert_eq!(
            req.header("tracestate"),
            want_ts,
            "{why}: tracestate only travels with the traceparent it came with"
        );
    }
}

/// An untrusted client's B3 context starts a new trace linked to it, and its baggage stays out.
#[test]
fn untrusted_b3_becomes_a_link_and_its_baggage_is_dropped() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(
        &rx,
        "  trust_incoming: none\n  propagators: [b3, tracecontext, baggage]",
        &up,
    ));
    let b3 = format!("{TRACE}-{CALLER_SPAN}-0");
    let resp = http_get(
        &proxy.addr(),
        "/",
        &[("b3", &b3), ("baggage", "tenant=evil")],
    );
    assert_eq!(resp.status, 200);
    let req = only_request(&up);
    let (server, client) = server_and_client(&rx);
    assert_ne!(server.trace_id, TRACE, "a new trace");
    assert!(server.is_root(), "no parent: {server:?}");
    assert_eq!(
        server.links,
        vec![(TRACE.to_owned(), CALLER_SPAN.to_owned(), 0x300)],
        "the caller's B3 context is a remote link (not sampled, no random flag)"
    );
    assert_eq!(
        one_header(&req, "b3"),
        format!("{}-{}-1", server.trace_id, client.span_id),
        "the caller's 'deny' neither suppresses sampling nor travels on"
    );
    assert_eq!(
        req.header("baggage"),
        None,
        "untrusted baggage is not forwarded"
    );
}

#[test]
fn baggage_is_forwarded_as_sent_when_valid_and_cleaned_when_not() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    // The default propagators: tracecontext,baggage.
    let proxy = Proxy::start(&config(&rx, "", &up));
    // (baggage lines sent, the one value expected upstream, reason)
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (
            &["userId=alice, serverNode=DF%2028;ttl=60"],
            Some("userId=alice, serverNode=DF%2028;ttl=60"),
            "valid: byte for byte",
        ),
        (
            &["a=1,bad key=2,c=\"q\",d=4"],
            Some("a=1,d=4"),
            "invalid members dropped",
        ),
        (&["a=1", "b=2"], Some("a=1,b=2"), "lines combined"),
        (&["no equals sign"], None, "nothing valid: no header"),
    ];
    for (i, (lines, _, _)) in cases.iter().enumerate() {
        let headers: Vec<(&str, &str)> = lines.iter().map(|l| ("baggage", *l)).collect();
        assert_eq!(
            http_get(&proxy.addr(), &format!("/{i}"), &headers).status,
            200
        );
    }
    let reqs = up.wait_for_requests(cases.len(), WAIT);
    for (i, (_, want, why)) in cases.iter().enumerate() {
        let req = reqs
            .iter()
            .find(|r| r.path_and_query == format!("/{i}"))
            .unwrap();
        let got = req.header_values("baggage");
        assert_eq!(got, want.iter().copied().collect::<Vec<_>>(), "{why}");
    }
}

/// `OTEL_PROPAGATORS` replaces the file's list: only B3 multi is read and written, and the
/// formats no longer configured pass through untouched (`traceparent` is not added).
#[test]
fn otel_propagators_overrides_the_file() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start_with_env(
        &config(&rx, "  propagators: [b3, tracecontext]", &up),
        &[("OTEL_PROPAGATORS", "b3multi")],
    );
    let b3 = format!("{OTHER_TRACE}-{OTHER_SPAN}-1");
    let headers = [
        ("b3", b3.as_str()),
        ("X-B3-TraceId", TRACE64),
        ("X-B3-SpanId", CALLER_SPAN),
        ("X-B3-Sampled", "1"),
    ];
    assert_eq!(http_get(&proxy.addr(), "/", &headers).status, 200);
    let req = only_request(&up);
    let (server, client) = server_and_client(&rx);
    assert_eq!(
        (server.trace_id.as_str(), server.parent_span_id.as_str()),
        (TRACE64_PADDED, CALLER_SPAN)
    );
    assert_eq!(one_header(&req, "x-b3-traceid"), TRACE64_PADDED);
    assert_eq!(one_header(&req, "x-b3-spanid"), client.span_id);
    assert_eq!(
        one_header(&req, "b3"),
        b3,
        "b3 is not configured: passed through as sent"
    );
    assert_eq!(
        req.header("traceparent"),
        None,
        "tracecontext is not configured"
    );
}

#[test]
fn none_reads_and_writes_no_context() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "  propagators: [none]", &up));
    let tp = format!("00-{TRACE}-{CALLER_SPAN}-01");
    assert_eq!(http_get(&proxy.addr(), "/a", &[]).status, 200);
    assert_eq!(
        http_get(&proxy.addr(), "/b", &[("traceparent", &tp)]).status,
        200
    );
    let reqs = up.wait_for_requests(2, WAIT);
    for name in [
        "traceparent",
        "tracestate",
        "baggage",
        "b3",
        "x-b3-traceid",
        "uber-trace-id",
    ] {
        assert_eq!(reqs[0].header(name), None, "{name} is not injected");
    }
    assert_eq!(
        reqs[1].header_values("traceparent"),
        vec![tp.as_str()],
        "the client's traceparent passes through untouched"
    );
    let spans = rx.wait_for_spans(4, WAIT);
    assert!(
        spans
            .iter()
            .filter(|s| s.is_server())
            .all(|s| s.is_root() && s.trace_id != TRACE),
        "spans are still recorded, each request its own new trace: {spans:#?}"
    );
}

#[test]
fn bad_propagator_names_are_refused_at_load() {
    let (code, out) =
        run_check("listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: [tracecontext, xray]}\n");
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("telemetry.propagators[1]") && out.contains("not supported"),
        "{out}"
    );
    let (code, out) = run_check_with_env(
        "listen: [\"127.0.0.1:1\"]\n",
        &[("OTEL_PROPAGATORS", "tracecontext,B3")],
    );
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("OTEL_PROPAGATORS") && out.contains("case-sensitive"),
        "{out}"
    );
}

/// The `tracestate` cases of the W3C conformance suite (`test/test.py`, strict level 2), sent
/// to the real proxy: what the upstream receives, per case. Each request is answered before
/// the next is sent, so the upstream's requests come in the order of the table.
#[test]
fn tracestate_is_read_as_the_w3c_conformance_suite_expects() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let proxy = Proxy::start(&config(&rx, "", &up));
    let tp = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let long_key = format!("{}=1", "z".repeat(256));
    let too_long_key = format!("{}=1", "z".repeat(257));
    let with_long_key = format!("foo=1,{long_key}");
    let thirty_two: Vec<String> = (0..4)
        .map(|line| {
            let members =
                (line * 10 + 1..=(line * 10 + 10).min(32)).map(|i| format!("bar{i:02}={i:02}"));
            members.collect::<Vec<_>>().join(",")
        })
        .collect();
    let thirty_two_joined = thirty_two.join(",");
    let thirty_three_last = format!("{},bar33=33", thirty_two[3]);
    // (tracestate lines, what the upstream gets, why)
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec!["foo=1,bar=2"], Some("foo=1,bar=2"), "inherited"),
        (
            vec!["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3"),
            "lines combined in order",
        ),
        (vec!["", "foo=1"], Some("foo=1"), "an empty line is ignored"),
        (vec![""], None, "an empty header is not sent on"),
        (
            vec!["foo=1 \t , \t bar=2"],
            Some("foo=1 \t , \t bar=2"),
            "OWS allowed",
        ),
        (
            vec!["foo=1,foo=2"],
            Some("foo=1"),
            "a duplicate key is dropped",
        ),
        (
            vec!["foo@=1,bar=2"],
            Some("foo@=1,bar=2"),
            "'@' may end a key",
        ),
        (
            vec!["foo@bar@baz=1,bar=2"],
            Some("foo@bar@baz=1,bar=2"),
            "'@' twice",
        ),
        (
            vec!["@foo=1,bar=2"],
            None,
            "a key starting with '@' discards the header",
        ),
        (
            vec!["FOO=1,bar=2"],
            None,
            "an uppercase key discards the header",
        ),
        (
            vec!["foo=1", &long_key],
            Some(&with_long_key),
            "a 256-character key",
        ),
        (
            vec!["foo=1", &too_long_key],
            None,
            "a 257-character key discards the header",
        ),
        (
            vec!["foo=bar=baz"],
            None,
            "'=' in a value discards the header",
        ),
        (
            vec!["foo=,bar=3"],
            None,
            "an empty value discards the header",
        ),
        (
            thirty_two.iter().map(String::as_str).collect(),
            Some(&thirty_two_joined),
            "32 members are kept",
        ),
        (
            vec![
                &thirty_two[0],
                &thirty_two[1],
                &thirty_two[2],
                &thirty_three_last,
            ],
            None,
            "33 members discard the header",
        ),
    ];
    for (lines, _, _) in &cases {
        let mut headers = vec![("traceparent", tp.as_str())];
        headers.extend(lines.iter().map(|l| ("tracestate", *l)));
        assert_eq!(http_get(&proxy.addr(), "/", &headers).status, 200);
    }
    let reqs = up.wait_for_requests(cases.len(), WAIT);
    for ((lines, want, why), req) in cases.iter().zip(&reqs) {
        let got = req.header_values("tracestate");
        assert_eq!(
            got,
            want.iter().copied().collect::<Vec<_>>(),
            "{why}: {lines:?}"
        );
        let (trace, _, _) = traceparent_fields(one_header(req, "traceparent"));
        assert_eq!(
            trace, TRACE,
            "{why}: the trace goes on whatever tracestate holds"
        );
    }
}
