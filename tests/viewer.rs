//! The trace viewer on the real binary's admin listener: the Jaeger-compatible API against what
//! a real OTLP receiver got for the same requests, a backend's span sent by the OpenTelemetry
//! SDK's own OTLP/HTTP exporter joining the proxy's trace under the right attempt, the intake's
//! answers, the store's bounds, and the page as headless Chromium draws it.

mod common;

use common::browser;
use common::{dead_addr, http_get, http_request, OtlpReceiver, Proxy, ReceivedSpan, Upstream};
use serde_json::Value as Json;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A proxy with the viewer (and the intake) on, exporting to `rx` as well, with a retried route
/// (a dead backend, then a live one) and a route to a backend that answers 502.
fn proxy(rx: Option<&OtlpReceiver>, up: &Upstream, traces: &str, admin_extra: &str) -> Proxy {
    proxy_with(rx, up, traces, admin_extra, "")
}

/// [`proxy`] with more `telemetry` keys (`, sampler: …`).
fn proxy_with(
    rx: Option<&OtlpReceiver>,
    up: &Upstream,
    traces: &str,
    admin_extra: &str,
    telemetry_extra: &str,
) -> Proxy {
    let exporter = match rx {
        Some(rx) => format!(
            "{{ protocol: grpc, endpoint: \"{}\" }}, batch: {{ scheduled_delay: 20ms }}",
            rx.endpoint()
        ),
        None => "{ protocol: none }, batch: { scheduled_delay: 20ms }".to_owned(),
    };
    Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\n\
         admin: {{ listen: \"127.0.0.1:0\", traces: {traces}, otlp_intake: true{admin_extra} }}\n\
         telemetry: {{ service_name: edge, exporter: {exporter}{telemetry_extra} }}\n\
         routes:\n  \
         - {{ name: api, match: {{ path_prefix: /api }}, upstream: retry }}\n  \
         - {{ name: bad, match: {{ path_prefix: /status }}, upstream: one }}\n  \
         - {{ name: hello, match: {{ path: /hello }}, respond: {{ body: hi }} }}\n\
         upstreams:\n  \
         retry: {{ backends: [\"{dead}\", \"{a}\"] }}\n  \
         one: {{ backends: [\"{a}\"] }}\n",
        dead = dead_addr(),
        a = up.addr()
    ))
}

fn get_json(addr: &str, path: &str) -> (u16, Json) {
    let r = http_get(addr, path, &[]);
    let j = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", r.body_str()));
    (r.status, j)
}

/// Polls `/api/traces/{id}` until the trace has `n` spans.
fn wait_for_trace(admin: &str, id: &str, n: usize) -> Json {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, j) = get_json(admin, &format!("/api/traces/{id}"));
        if status == 200 && j["data"][0]["spans"].as_array().map_or(0, Vec::len) >= n {
            return j["data"][0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "trace {id} has not {n} spans: {j}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tag<'a>(span: &'a Json, key: &str) -> Option<&'a Json> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// The backend's side: the OpenTelemetry SDK's OTLP/HTTP (protobuf) exporter sends one SERVER
/// span of service `users`, a child of the span id the proxy's `traceparent` named.
fn backend_exports_its_span(
    admin: &str,
    traceparent: &str,
    start: std::time::SystemTime,
) -> String {
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
    let parts: Vec<&str> = traceparent.split('-').collect();
    let trace_id = TraceId::from_hex(parts[1]).unwrap();
    let parent = SpanId::from_hex(parts[2]).unwrap();
    let span_id = SpanId::from_hex("b0b0b0b0b0b0b0b0").unwrap();
    // reqwest without a default TLS provider; the proxy itself uses ring too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("http://{admin}/v1/traces"))
            .build()
            .expect("the SDK's exporter");
        exporter.set_resource(
            &opentelemetry_sdk::Resource::builder_empty()
                .with_service_name("users")
                .build(),
        );
        let span = SpanData {
            span_context: SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent,
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: "GET /users/{id}".into(),
            start_time: start,
            end_time: start + Duration::from_micros(250),
            attributes: vec![opentelemetry::KeyValue::new("db.system.name", "postgresql")],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("users-app")
                .build(),
        };
        exporter
            .export(vec![span])
            .await
            .expect("the intake took the span");
    });
    span_id.to_string()
}

#[test]
fn a_retried_request_and_the_backends_own_span_form_one_trace() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("users");
    let p = proxy(Some(&rx), &up, "{}", "");
    let admin = p.admin_addr();
    let sent = std::time::SystemTime::now();
    assert_eq!(http_get(&p.addr(), "/api/users/42", &[]).status, 200);

    // What the proxy exported: a SERVER span and two CLIENT attempts (the dead backend, then
    // the live one), the second attempt's id in the traceparent the backend got.
    let exported = rx.wait_for_spans(3, WAIT);
    let server = exported.iter().find(|s| s.is_server()).unwrap();
    let trace = server.trace_id.clone();
    let traceparent = up.requests()[0].header("traceparent").unwrap().to_owned();
    let live_attempt = exported
        .iter()
        .find(|s| s.is_client() && traceparent.contains(&s.span_id))
        .expect("the traceparent names the live attempt");
    let backend_id = backend_exports_its_span(&admin, &traceparent, sent);

    // The viewer's trace, in Jaeger's model: the three exported spans, the same ids, parents
    // and times (µs = the exported ns / 1000), and the backend's span under the live attempt.
    let t = wait_for_trace(&admin, &trace, 4);
    assert_eq!(t["traceID"], trace);
    let spans = t["spans"].as_array().unwrap();
    for e in &exported {
        let s = spans
            .iter()
            .find(|s| s["spanID"] == e.span_id.as_str())
            .unwrap_or_else(|| panic!("span {} is in the viewer", e.span_id));
        assert_eq!(s["operationName"], e.name.as_str());
        assert_eq!(s["startTime"].as_u64(), Some(e.start_ns / 1000), "µs");
        assert_eq!(
            s["duration"].as_u64(),
            Some(e.end_ns / 1000 - e.start_ns / 1000),
            "µs"
        );
        let parent = s["references"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["refType"] == "CHILD_OF")
            .map(|r| r["spanID"].as_str().unwrap().to_owned())
            .unwrap_or_default();
        assert_eq!(parent, e.parent_span_id, "the parent of {}", e.name);
        let kind = if e.kind == ReceivedSpan::KIND_SERVER {
            "server"
        } else {
            "client"
        };
        assert_eq!(tag(s, "span.kind"), Some(&Json::from(kind)));
    }
    let failed = exported
        .iter()
        .find(|s| s.is_client() && s.span_id != live_attempt.span_id)
        .unwrap();
    let f = spans
        .iter()
        .find(|s| s["spanID"] == failed.span_id.as_str())
        .unwrap();
    assert_eq!(tag(f, "error"), Some(&Json::Bool(true)));
    assert_eq!(
        tag(f, "error.type").and_then(Json::as_str),
        failed.attr_str("error.type")
    );
    let b = spans
        .iter()
        .find(|s| s["spanID"] == backend_id.as_str())
        .unwrap();
    assert_eq!(b["references"][0]["refType"], "CHILD_OF");
    assert_eq!(
        b["references"][0]["spanID"],
        live_attempt.span_id.as_str(),
        "the backend's span joins under the attempt that reached it"
    );
    assert_eq!(tag(b, "db.system.name"), Some(&Json::from("postgresql")));
    let procs = &t["processes"];
    assert_eq!(
        procs[b["processID"].as_str().unwrap()]["serviceName"],
        "users"
    );
    let server_v = spans
        .iter()
        .find(|s| s["spanID"] == server.span_id.as_str())
        .unwrap();
    assert_eq!(
        procs[server_v["processID"].as_str().unwrap()]["serviceName"],
        "edge"
    );

    // The list and the services.
    let (_, sum) = get_json(&admin, "/traces/summary");
    let line = sum["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["trace_id"] == trace.as_str())
        .unwrap();
    assert_eq!(line["route"], "api");
    assert_eq!(line["attempts"], 2);
    assert_eq!(line["status"], 200);
    assert_eq!(line["services"], serde_json::json!(["edge", "users"]));
    let (_, services) = get_json(&admin, "/api/services");
    assert_eq!(services["data"], serde_json::json!(["edge", "users"]));
    let (_, found) = get_json(&admin, "/api/traces?service=users&lookback=1h&limit=10");
    assert_eq!(found["data"][0]["traceID"], trace);
    let (status, missing) = get_json(&admin, "/api/traces/00000000000000000000000000000abc");
    assert_eq!(status, 404);
    assert_eq!(missing["errors"][0]["code"], 404);
}

/// A request the head sampler dropped but a keep rule exported is in the viewer too; one
/// that nothing exported is not. The viewer is the only sink here (`protocol: none`).
#[test]
fn requests_the_keep_rules_export_are_kept_and_unsampled_ones_are_not() {
    let up = Upstream::start("u");
    let p = proxy_with(
        None,
        &up,
        "{}",
        "",
        ", sampler: { name: always_off }, keep: { errors: true }",
    );
    let admin = p.admin_addr();
    p.wait_for_log("trace viewer on http://", WAIT);
    assert_eq!(http_get(&p.addr(), "/hello", &[]).status, 200);
    assert_eq!(http_get(&p.addr(), "/status/503", &[]).status, 503);
    let deadline = Instant::now() + WAIT;
    while get_json(&admin, "/traces/summary").1["traces"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "nothing reached the viewer");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The 503's spans went through the pipeline after the 200 was answered (and dropped), so
    // once they are here the 200 would have been too.
    let (_, sum) = get_json(&admin, "/traces/summary");
    let traces = sum["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "only the kept 503: {sum}");
    assert_eq!(traces[0]["status"], 503);
    assert_eq!(traces[0]["route"], "bad");
}

#[test]
fn the_intake_answers_like_an_otlp_receiver() {
    let up = Upstream::start("u");
    let p = proxy(None, &up, "{}", "");
    let admin = p.admin_addr();
    let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"},
        {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"bad id","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    let gzipped = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(json).unwrap();
        e.finish().unwrap()
    };
    let ct_json = ("content-type", "application/json");
    let ct_pb = ("content-type", "application/x-protobuf");
    // (method, headers, body, status, words in the answer, why)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a [u8],
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            vec![ct_json],
            json,
            200,
            "\"rejectedSpans\":\"1\"",
            "one span taken, the all-zero id rejected (partial success)",
        ),
        (
            "POST",
            vec![ct_json, ("content-encoding", "gzip")],
            &gzipped,
            200,
            "rejectedSpans",
            "gzip",
        ),
        (
            "POST",
            vec![ct_pb],
            b"",
            200,
            "",
            "an empty protobuf request is valid",
        ),
        (
            "POST",
            vec![ct_json],
            b"{\"resourceSpans\":",
            400,
            "invalid OTLP/JSON",
            "truncated JSON: 400 with a Status",
        ),
        (
            "POST",
            vec![ct_pb],
            b"\xff\xff\xff\xff",
            400,
            "invalid OTLP protobuf",
            "not protobuf",
        ),
        (
            "POST",
            vec![ct_json, ("content-encoding", "gzip")],
            b"not gzip",
            400,
            "invalid gzip",
            "a broken gzip body",
        ),
        (
            "POST",
            vec![ct_json, ("content-encoding", "br")],
            json,
            415,
            "gzip or none",
            "an encoding it does not take",
        ),
        (
            "POST",
            vec![("content-type", "text/plain")],
            json,
            415,
            "application/x-protobuf",
            "a form post from a web page",
        ),
        ("GET", vec![], b"", 405, "POST", "spans are POSTed"),
    ];
    for (method, headers, body, status, words, why) in &cases {
        let r = http_request(&admin, method, "/v1/traces", headers, body);
        assert_eq!(r.status, *status, "{why}: {}", r.body_str());
        assert!(r.body_str().contains(words), "{why}: {}", r.body_str());
    }
    let big = vec![b'x'; common_max_body() + 1];
    let r = http_request(&admin, "POST", "/v1/traces", &[ct_json], &big);
    assert_eq!(r.status, 413, "a body over the limit");

    let (status, t) = get_json(&admin, "/api/traces/5b8efff798038103d269b633813fc60c");
    assert_eq!(status, 200);
    assert_eq!(t["data"][0]["spans"][0]["duration"], 1_000_000, "1 s in µs");
    assert_eq!(
        t["data"][0]["spans"][0]["startTime"],
        1_544_712_660_000_000u64
    );

    // Without otlp_intake, the path does not exist; without traces, neither does the viewer.
    let off = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\nadmin: {{ listen: \"127.0.0.1:0\", traces: {{}} }}\n\
         routes: [{{ name: r, match: {{ path: / }}, respond: {{ body: x }} }}]\n{}",
        ""
    ));
    let r = http_request(&off.admin_addr(), "POST", "/v1/traces", &[ct_json], json);
    assert_eq!(r.status, 404, "{}", r.body_str());
    assert!(r.body_str().contains("admin.otlp_intake"));
    let none = Proxy::start(
        "listen: [\"127.0.0.1:0\"]\nadmin: { listen: \"127.0.0.1:0\" }\n\
         routes: [{ name: r, match: { path: / }, respond: { body: x } }]\n",
    );
    let r = http_get(&none.admin_addr(), "/traces", &[]);
    assert_eq!(r.status, 404);
    assert!(r.body_str().contains("admin.traces"));
    assert_eq!(
        http_get(&none.admin_addr(), "/api/services", &[]).status,
        404
    );
}

/// The intake's body limit (`tracegate::admin::MAX_INTAKE_BODY`).
fn common_max_body() -> usize {
    tracegate::admin::MAX_INTAKE_BODY
}

#[test]
fn the_ring_turns_over_and_the_502_stays() {
    let up = Upstream::start("u");
    let p = proxy(
        None,
        &up,
        "{ max_traces: 5, keep_errors: 2, keep_slow: 0 }",
        "",
    );
    let admin = p.admin_addr();
    assert_eq!(http_get(&p.addr(), "/status/502", &[]).status, 502);
    for _ in 0..30 {
        assert_eq!(http_get(&p.addr(), "/hello", &[]).status, 200);
    }
    let deadline = Instant::now() + WAIT;
    let sum = loop {
        let (_, s) = get_json(&admin, "/traces/summary");
        if s["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
            >= 31
        {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let traces = sum["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 6, "the ring's 5 and the reserved 502: {sum}");
    let kept: Vec<&Json> = traces.iter().filter(|t| t["status"] == 502).collect();
    assert_eq!(kept.len(), 1, "the 502 survived 30 newer traces");
    assert_eq!(kept[0]["reserved"], "error");
    assert_eq!(sum["stored"]["evicted"], 25);
    let m = common::admin::scrape(&admin);
    let sample = |name: &str| common::admin::sample(&m, name, &[]);
    assert_eq!(sample("tracegate_trace_store_evicted_total"), Some(25.0));
    assert_eq!(sample("tracegate_trace_store_traces"), Some(6.0));
    assert_eq!(
        sample("tracegate_trace_store_bytes"),
        sum["stored"]["bytes"].as_f64()
    );
    let bad = sum["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "bad")
        .unwrap();
    assert_eq!(bad["errors"], 1);
    // The 502 attempt is an error in the Jaeger view too.
    let id = kept[0]["trace_id"].as_str().unwrap();
    let (_, t) = get_json(&admin, &format!("/api/traces/{id}"));
    let client = t["data"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| tag(s, "span.kind") == Some(&Json::from("client")))
        .unwrap()
        .clone();
    assert_eq!(
        tag(&client, "http.response.status_code"),
        Some(&Json::from(502))
    );
    assert_eq!(tag(&client, "error"), Some(&Json::Bool(true)));
}

/// Text between `<tag …class="…name…"…>` and its end, for each element whose class list has
/// `class`: what a person reads in it (the DOM dump is plain HTML).
fn elements_with_class<'a>(html: &'a str, class: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("class=\"") {
        let after = &rest[i + 7..];
        let end = after.find('"').unwrap_or(0);
        let classes = &after[..end];
        let tag_start = rest[..i].rfind('<').unwrap_or(0);
        if classes.split(' ').any(|c| c == class) {
            out.push(&rest[tag_start..]);
        }
        rest = &after[end..];
    }
    out
}

/// The opening tag an element's text starts with.
fn opening_tag(elem: &str) -> &str {
    elem.split('>').next().unwrap_or("")
}

/// Whether an element's own class list (in its opening tag) has `class`.
fn has_class(elem: &str, class: &str) -> bool {
    opening_tag(elem)
        .split("class=\"")
        .nth(1)
        .and_then(|c| c.split('"').next())
        .is_some_and(|c| c.split(' ').any(|x| x == class))
}

#[test]
fn a_browser_shows_the_list_and_the_waterfall() {
    let up = Upstream::start("users");
    let p = proxy(
        None,
        &up,
        "{}",
        ", trace_url: \"http://jaeger.example:16686/trace/{trace_id}\"",
    );
    let admin = p.admin_addr();
    assert_eq!(http_get(&p.addr(), "/api/users/1", &[]).status, 200);
    assert_eq!(http_get(&p.addr(), "/status/502", &[]).status, 502);
    let deadline = Instant::now() + WAIT;
    let sum = loop {
        let (_, s) = get_json(&admin, "/traces/summary");
        if s["stored"]["spans"].as_u64() >= Some(5) {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let traces = sum["traces"].as_array().unwrap();
    let retried = traces.iter().find(|t| t["route"] == "api").unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = traces.iter().find(|t| t["status"] == 502).unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let dir = browser::artifact_dir();
    // The list: both trace ids, each in a row of its own; the 502 marked as an error.
    let list = browser::dump_dom(&format!("http://{admin}/traces"));
    let rows = elements_with_class(&list, "trace-row");
    assert_eq!(rows.len(), 2, "two traces listed:\n{list}");
    for id in [&retried, &failed] {
        assert!(
            list.contains(&format!("data-trace-id=\"{id}\"")),
            "{id} is listed"
        );
    }
    // Both traces have a failed span (the retried one its first attempt), so both rows are
    // marked; only the 502's status is a 5xx.
    assert!(rows.iter().all(|r| has_class(r, "error")), "{rows:?}");
    let five_xx: Vec<&str> = rows
        .iter()
        .filter(|r| r.split("</tr>").next().unwrap().contains("st-5xx"))
        .map(|r| opening_tag(r))
        .collect();
    assert_eq!(five_xx.len(), 1, "{five_xx:?}");
    assert!(five_xx[0].contains(&failed));
    assert!(
        list.contains("api") && list.contains("bad"),
        "the overview names the routes"
    );
    browser::screenshot(
        &format!("http://{admin}/traces"),
        &dir.join("viewer-list.png"),
        1280,
        800,
    );

    // The retried trace: the SERVER bar, two CLIENT bars, the failed one an error with its
    // error.type, and the breakdown in words.
    let page = browser::dump_dom(&format!("http://{admin}/traces/{retried}"));
    let spans = elements_with_class(&page, "span-row");
    assert_eq!(spans.len(), 3, "three bars:\n{page}");
    assert_eq!(
        elements_with_class(&page, "bar").len(),
        3,
        "each row has its bar"
    );
    assert_eq!(
        spans
            .iter()
            .filter(|r| r
                .split('>')
                .next()
                .unwrap()
                .contains("data-kind=\"client\""))
            .count(),
        2,
        "two attempts"
    );
    assert!(page.contains("GET api"), "the SERVER span's name");
    assert!(
        page.contains("connection_refused"),
        "the failed attempt's error.type"
    );
    let breakdown = page.split("id=\"breakdown\"").nth(1).expect("a breakdown");
    assert!(
        breakdown.contains("before the first upstream attempt") && breakdown.contains("Attempt 2"),
        "the breakdown in words: {}",
        &breakdown[..breakdown.len().min(600)]
    );
    assert!(
        page.contains(&format!("http://jaeger.example:16686/trace/{retried}")),
        "the link out"
    );
    browser::screenshot(
        &format!("http://{admin}/traces/{retried}"),
        &dir.join("viewer-trace.png"),
        1280,
        800,
    );

    // The 502: its attempt is marked as an error.
    let page = browser::dump_dom(&format!("http://{admin}/traces/{failed}"));
    let errors = elements_with_class(&page, "span-row")
        .into_iter()
        .filter(|r| opening_tag(r).contains("data-kind=\"client\"") && has_class(r, "error"))
        .count();
    assert_eq!(errors, 1, "the 502 attempt is an error:\n{page}");
    assert!(page.contains("502"));
}
