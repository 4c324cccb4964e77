//! The viewer's answers from a store filled in the test: Jaeger's JSON shapes, the list's
//! filters, and the page's embedded data.

use super::*;
use crate::trace::ids::{SpanId, TraceId};
use crate::trace::span::{ClientFields, ServerFields, SpanBody, SpanRecord};
use crate::trace::store::{Process, SpanKind, SpanSnapshot, Status, StoreSettings};
use http::StatusCode;
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const T0_US: u64 = 1_700_000_000_000_000;

fn at(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(T0_US + us)
}

fn viewer() -> Viewer {
    let store = Arc::new(TraceStore::new(
        StoreSettings::default(),
        Process {
            service: "edge".into(),
            tags: vec![(
                "deployment.environment.name".into(),
                crate::trace::store::Value::Str("prod".into()),
            )],
        },
    ));
    let trace = TraceId([0x4b; 16]);
    let server = SpanRecord {
        trace_id: trace,
        span_id: SpanId([1; 8]),
        parent: None,
        parent_is_remote: false,
        flags: 1,
        tracestate: None,
        start: at(0),
        end: at(1000),
        link: None,
        body: SpanBody::Server(Box::new(ServerFields {
            method: http::Method::GET,
            route: Some("api</script><script>alert(1)</script>".into()),
            path: "/api".into(),
            scheme: "http",
            protocol_version: "1.1",
            status: 502,
            ..ServerFields::default()
        })),
    };
    let attempt = SpanRecord {
        trace_id: trace,
        span_id: SpanId([2; 8]),
        parent: Some(SpanId([1; 8])),
        start: at(100),
        end: at(400),
        body: SpanBody::Client(Box::new(ClientFields {
            method: http::Method::GET,
            backend: Some("127.0.0.1:9".parse().unwrap()),
            path: "/api".into(),
            error_type: Some(Cow::Borrowed("connection_refused")),
            error_message: Some("connection refused".into()),
            connected_at: None,
            ..ClientFields::default()
        })),
        ..server.clone()
    };
    store.record(&[attempt, server]);
    store.ingest(vec![SpanSnapshot {
        trace_id: trace,
        span_id: SpanId([3; 8]),
        parent: Some(SpanId([2; 8])),
        flags: 1,
        name: "GET /users".into(),
        kind: SpanKind::Server,
        start_us: T0_US + 200,
        duration_us: 50,
        attributes: vec![],
        events: vec![],
        links: vec![],
        status: Status::Unset,
        scope: None,
        process: Arc::new(Process {
            service: "users".into(),
            tags: vec![],
        }),
    }]);
    Viewer {
        store,
        otlp_intake: true,
        trace_url: Some("http://jaeger:16686/trace/{trace_id}".into()),
    }
}

fn get_json(v: &Viewer, path: &str, query: Option<&str>) -> (StatusCode, serde_json::Value) {
    let (status, ty, body) = answer(v, path, query).expect("a viewer path");
    assert_eq!(ty, JSON, "{path}");
    (status, serde_json::from_slice(&body).expect("JSON"))
}

#[test]
fn a_trace_in_jaegers_json_model() {
    let v = viewer();
    let id = "4b".repeat(16);
    let (status, j) = get_json(&v, &format!("/api/traces/{id}"), None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(j["errors"], serde_json::Value::Null);
    let t = &j["data"][0];
    assert_eq!(t["traceID"], id);
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let by_id = |sid: &str| spans.iter().find(|s| s["spanID"] == sid).unwrap();
    let server = by_id(&"01".repeat(8));
    assert_eq!(
        server["operationName"],
        "GET api</script><script>alert(1)</script>"
    );
    assert_eq!(server["startTime"], T0_US, "microseconds since the epoch");
    assert_eq!(server["duration"], 1000, "microseconds");
    assert_eq!(
        server["references"],
        serde_json::json!([]),
        "a root has none"
    );
    let tags = |s: &serde_json::Value| -> Vec<(String, String, serde_json::Value)> {
        s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap().to_owned(),
                    t["type"].as_str().unwrap().to_owned(),
                    t["value"].clone(),
                )
            })
            .collect()
    };
    let st = tags(server);
    assert!(st.contains(&("span.kind".into(), "string".into(), "server".into())));
    assert!(st.contains(&(
        "http.response.status_code".into(),
        "int64".into(),
        502.into()
    )));
    assert!(st.contains(&("error".into(), "bool".into(), true.into())));
    assert!(st.contains(&("otel.status_code".into(), "string".into(), "ERROR".into())));

    let attempt = by_id(&"02".repeat(8));
    assert_eq!(
        attempt["references"],
        serde_json::json!([{"refType": "CHILD_OF", "traceID": id, "spanID": "01".repeat(8)}])
    );
    assert!(tags(attempt).contains(&(
        "error.type".into(),
        "string".into(),
        "connection_refused".into()
    )));
    assert!(tags(attempt).contains(&(
        "otel.status_description".into(),
        "string".into(),
        "connection refused".into()
    )));

    let backend = by_id(&"03".repeat(8));
    assert_eq!(
        backend["references"][0]["spanID"],
        "02".repeat(8),
        "under the attempt"
    );
    let procs = &t["processes"];
    assert_eq!(
        procs[server["processID"].as_str().unwrap()]["serviceName"],
        "edge"
    );
    assert_eq!(
        procs[backend["processID"].as_str().unwrap()]["serviceName"],
        "users"
    );
    assert_eq!(
        server["processID"], attempt["processID"],
        "the proxy's spans share one process"
    );
    assert_eq!(
        procs[server["processID"].as_str().unwrap()]["tags"][0]["key"],
        "deployment.environment.name"
    );
}

#[test]
fn jaeger_api_answers_table() {
    let v = viewer();
    // (path, query, status, a JSON pointer and its value, why)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        StatusCode,
        &'a str,
        serde_json::Value,
        &'a str,
    );
    let cases: &[Case] = &[
        (
            "/api/services",
            None,
            StatusCode::OK,
            "/data",
            serde_json::json!(["edge", "users"]),
            "the proxy's own service first",
        ),
        (
            "/api/services/users/operations",
            None,
            StatusCode::OK,
            "/data",
            serde_json::json!(["GET /users"]),
            "names only",
        ),
        (
            "/api/operations",
            Some("service=edge&spanKind=client"),
            StatusCode::OK,
            "/data",
            serde_json::json!([{"name": "GET", "spanKind": "client"}]),
            "by kind",
        ),
        (
            "/api/operations",
            None,
            StatusCode::BAD_REQUEST,
            "/errors/0/code",
            400.into(),
            "service is required",
        ),
        (
            "/api/traces",
            Some("service=users&limit=5"),
            StatusCode::OK,
            "/data/0/traceID",
            "4b".repeat(16).into(),
            "a search by the backend's service",
        ),
        (
            "/api/traces",
            Some("service=edge&minDuration=2ms"),
            StatusCode::OK,
            "/data",
            serde_json::json!([]),
            "nothing that slow",
        ),
        (
            "/api/traces",
            Some("service=edge&tags=%7B%22error.type%22%3A%22connection_refused%22%7D"),
            StatusCode::OK,
            "/data/0/traceID",
            "4b".repeat(16).into(),
            "a tag search",
        ),
        (
            "/api/traces",
            Some("service=edge&minDuration=fast"),
            StatusCode::BAD_REQUEST,
            "/errors/0/code",
            400.into(),
            "a bad duration",
        ),
        (
            "/api/traces",
            None,
            StatusCode::BAD_REQUEST,
            "/errors/0/msg",
            "parameter 'service' is required".into(),
            "Jaeger requires a service",
        ),
        (
            "/api/traces/0123456789abcdef0123456789abcdef",
            None,
            StatusCode::NOT_FOUND,
            "/errors/0/code",
            404.into(),
            "an unknown id: Jaeger's error shape",
        ),
        (
            "/api/traces/0123456789abcdef0123456789abcdef",
            None,
            StatusCode::NOT_FOUND,
            "/data",
            serde_json::Value::Null,
            "no data with an error",
        ),
        (
            "/api/traces/nothex",
            None,
            StatusCode::BAD_REQUEST,
            "/errors/0/code",
            400.into(),
            "an id that is not hex",
        ),
    ];
    for (path, query, status, pointer, want, why) in cases {
        let (s, j) = get_json(&v, path, *query);
        assert_eq!(s, *status, "{why}: {j}");
        assert_eq!(j.pointer(pointer), Some(want), "{why}: {j}");
    }
    assert!(
        answer(&v, "/api/nothing", None).is_none(),
        "an unknown API path"
    );
}

#[test]
fn the_summary_lists_and_filters() {
    let v = viewer();
    let (s, j) = get_json(&v, "/traces/summary", None);
    assert_eq!(s, StatusCode::OK);
    let t = &j["traces"][0];
    assert_eq!(t["trace_id"], "4b".repeat(16));
    assert_eq!(t["status"], 502);
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["error"], true);
    assert_eq!(t["duration_us"], 1000);
    assert_eq!(t["services"], serde_json::json!(["edge", "users"]));
    assert_eq!(j["trace_url"], "http://jaeger:16686/trace/{trace_id}");
    assert_eq!(j["buckets"].as_array().unwrap().len(), 9);
    assert_eq!(j["buckets"][0]["label"], "<10µs");
    assert_eq!(j["buckets"][8]["label"], "≥100s");
    assert_eq!(j["routes"][0]["buckets"][3], 1, "1 ms falls in [1ms, 10ms)");
    // (query, traces listed, why)
    let cases: &[(&str, usize, &str)] = &[
        ("status=5xx", 1, "the 502"),
        ("status=2xx", 0, "no 200"),
        ("min_ms=2", 0, "shorter than 2 ms"),
        ("min_ms=1&max_ms=10", 1, "in the bucket"),
        ("trace_id=4B4B", 1, "an id prefix"),
        ("route=nope", 0, "another route"),
        ("route=&status=&min_ms=", 1, "empty filters do not filter"),
    ];
    for (q, n, why) in cases {
        let (s, j) = get_json(&v, "/traces/summary", Some(q));
        assert_eq!(s, StatusCode::OK, "{why}");
        assert_eq!(j["traces"].as_array().unwrap().len(), *n, "{why}");
    }
    for q in [
        "status=6xx",
        "min_ms=-1",
        "min_ms=abc",
        "trace_id=xyz",
        "limit=x",
    ] {
        let (s, j) = get_json(&v, "/traces/summary", Some(q));
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert!(j["error"].as_str().unwrap().contains('='), "{q}: {j}");
    }
}

#[test]
fn pages_embed_their_data_without_breaking_out_of_it() {
    let v = viewer();
    let (status, ty, body) = answer(&v, "/traces", None).unwrap();
    assert_eq!((status, ty), (StatusCode::OK, HTML));
    let html = std::str::from_utf8(&body).unwrap();
    assert!(!html.contains("__TG_DATA__"));
    assert!(
        !html.contains("</script><script>alert(1)"),
        "a route name cannot close the data's script element"
    );
    let start = html
        .find(r#"<script id="tg-data" type="application/json">"#)
        .unwrap();
    let data = &html[start..];
    let data = &data[data.find('>').unwrap() + 1..data.find("</script>").unwrap()];
    let j: serde_json::Value = serde_json::from_str(data).expect("the embedded data is JSON");
    assert_eq!(j["view"], "list");
    assert_eq!(
        j["summary"]["traces"][0]["route"], "api</script><script>alert(1)</script>",
        "and reads back as it was"
    );

    let (status, _, body) = answer(&v, &format!("/traces/{}", "4b".repeat(16)), None).unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(std::str::from_utf8(&body)
        .unwrap()
        .contains(r#""view":"trace""#));
    let (status, _, _) = answer(&v, &format!("/traces/{}", "ab".repeat(16)), None).unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "a trace not in memory");
    assert!(
        answer(&v, "/traces/4b4b", None).is_none(),
        "not a whole trace id"
    );
    assert!(answer(&v, "/tracesx", None).is_none());
}

#[test]
fn the_page_loads_nothing_from_elsewhere() {
    // The CSP holds it to itself; the file must not even try.
    for needle in ["http://", "https://", "//cdn", "@import", "<link", "src=\""] {
        let hits: Vec<&str> = PAGE.lines().filter(|l| l.contains(needle)).collect();
        assert!(
            hits.iter().all(|l| l.contains("w3.org/2000/svg")),
            "page.html refers to {needle}: {hits:?}"
        );
    }
    assert!(PAGE.contains("__TG_DATA__"));
    assert!(PAGE.len() < 64 * 1024, "{} bytes", PAGE.len());
}
