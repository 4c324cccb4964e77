//! The store's bounds: the ring, the error and slow reserves, the byte limit, and how a
//! backend's spans join the proxy's trace.

use super::*;
use crate::trace::span::{ClientFields, ServerFields};
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn at(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_micros(us)
}

fn tid(n: u32) -> TraceId {
    let mut b = [0x11; 16];
    b[12..].copy_from_slice(&n.to_be_bytes());
    TraceId(b)
}

fn server(trace: u32, route: &str, status: u16, duration_us: u64) -> SpanRecord {
    SpanRecord {
        trace_id: tid(trace),
        span_id: SpanId([1; 8]),
        parent: None,
        parent_is_remote: false,
        flags: 1,
        tracestate: None,
        start: at(0),
        end: at(duration_us),
        link: None,
        body: SpanBody::Server(Box::new(ServerFields {
            method: http::Method::GET,
            route: Some(route.into()),
            path: "/x".into(),
            scheme: "http",
            protocol_version: "1.1",
            status,
            ..ServerFields::default()
        })),
    }
}

fn client(trace: u32, span: u8, error: Option<&'static str>) -> SpanRecord {
    SpanRecord {
        trace_id: tid(trace),
        span_id: SpanId([span; 8]),
        parent: Some(SpanId([1; 8])),
        parent_is_remote: false,
        flags: 1,
        tracestate: None,
        start: at(10),
        end: at(90),
        link: None,
        body: SpanBody::Client(Box::new(ClientFields {
            method: http::Method::GET,
            backend: Some("127.0.0.1:9".parse().unwrap()),
            path: "/x".into(),
            status: error.is_none().then_some(200),
            error_type: error.map(Cow::Borrowed),
            connected_at: Some(at(20)),
            first_byte_at: error.is_none().then(|| at(60)),
            ..ClientFields::default()
        })),
    }
}

fn store(max_traces: usize, keep_errors: usize, keep_slow: usize) -> TraceStore {
    TraceStore::new(
        StoreSettings {
            max_traces,
            max_bytes: 1 << 30,
            keep_errors,
            keep_slow,
        },
        Process {
            service: "tracegate".into(),
            tags: vec![],
        },
    )
}

fn stored_ids(s: &TraceStore) -> Vec<u32> {
    let mut ids: Vec<u32> = s
        .summaries(&SummaryFilter::default(), usize::MAX)
        .iter()
        .map(|t| u32::from_be_bytes(t.trace_id.0[12..].try_into().unwrap()))
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_ring_keeps_the_latest_traces() {
    let s = store(3, 0, 0);
    for i in 0..10 {
        s.record(&[server(i, "a", 200, 100)]);
    }
    assert_eq!(stored_ids(&s), vec![7, 8, 9]);
    assert_eq!(s.usage().evicted, 7);
    let newest = s.summaries(&SummaryFilter::default(), 1);
    assert_eq!(newest[0].trace_id, tid(9), "newest first");
}

#[test]
fn a_flood_of_fast_200s_does_not_push_out_a_502() {
    let s = store(10, 5, 0);
    s.record(&[client(0, 2, None), server(0, "api", 502, 100)]);
    for i in 1..=10_000 {
        s.record(&[server(i, "api", 200, 100)]);
    }
    let kept = s.trace(&tid(0)).expect("the 502 is kept");
    assert_eq!(kept.len(), 2, "with its attempt");
    let sum = s
        .summaries(
            &SummaryFilter {
                status: Some(StatusClass::Hundreds(5)),
                ..Default::default()
            },
            10,
        )
        .pop()
        .unwrap();
    assert_eq!(sum.place, Place::Error);
    assert_eq!(sum.place.reserved(), Some("error"));
    assert_eq!(s.usage().traces, 11, "the ring and the one reserved trace");
}

#[test]
fn the_error_reserve_is_shared_fairly_between_routes() {
    let s = store(1, 4, 0);
    // Route "b" fails once, then route "a" fails many times.
    s.record(&[server(1, "b", 503, 100)]);
    for i in 2..50 {
        s.record(&[server(i, "a", 500, 100)]);
    }
    s.record(&[server(100, "c", 200, 100)]);
    let reserved: Vec<_> = s
        .summaries(&SummaryFilter::default(), usize::MAX)
        .into_iter()
        .filter(|t| t.place == Place::Error)
        .collect();
    assert_eq!(reserved.len(), 4);
    assert!(
        reserved.iter().any(|t| t.trace_id == tid(1)),
        "route b's only failure stays: the busiest route gives way"
    );
}

#[test]
fn the_slowest_traces_of_each_route_are_kept() {
    let s = store(2, 0, 3);
    let durations = [5, 900, 7, 800, 6, 700, 1, 950, 3, 2, 4, 8];
    for (i, d) in durations.iter().enumerate() {
        s.record(&[server(i as u32, "r", 200, *d)]);
    }
    // Another route's slow traces do not compete with route r's.
    s.record(&[server(50, "other", 200, 1)]);
    s.record(&[server(51, "last", 200, 1)]);
    s.record(&[server(52, "last", 200, 1)]);
    let slow: Vec<u64> = {
        let mut v: Vec<u64> = s
            .summaries(
                &SummaryFilter {
                    route: Some("r".into()),
                    ..Default::default()
                },
                usize::MAX,
            )
            .iter()
            .filter(|t| t.place == Place::Slow)
            .map(|t| t.duration_us)
            .collect();
        v.sort();
        v
    };
    assert_eq!(slow, vec![800, 900, 950], "route r's three slowest");
    let other = s.summaries(
        &SummaryFilter {
            route: Some("other".into()),
            ..Default::default()
        },
        9,
    );
    assert_eq!(other.len(), 1, "route other keeps its one");
    assert_eq!(other[0].place, Place::Slow);
}

#[test]
fn memory_stays_under_the_byte_limit_whatever_comes() {
    let limit = 256 << 10;
    let s = TraceStore::new(
        StoreSettings {
            max_traces: 1_000_000,
            max_bytes: limit,
            keep_errors: 1000,
            keep_slow: 1000,
        },
        Process {
            service: "tracegate".into(),
            tags: vec![],
        },
    );
    for i in 0..20_000 {
        let status = if i % 3 == 0 { 500 } else { 200 };
        s.record(&[server(i, "a", status, u64::from(i)), client(i, 2, None)]);
        assert!(s.usage().bytes <= limit, "after trace {i}: {:?}", s.usage());
    }
    let u = s.usage();
    assert!(u.traces > 100, "the limit is used, not emptied: {u:?}");
    // The estimate is not far from what a span really holds.
    let per_span = u.bytes / u.spans;
    assert!((150..2000).contains(&per_span), "{per_span} bytes per span");
}

#[test]
fn a_trace_holds_a_bounded_number_of_spans() {
    let s = store(10, 0, 0);
    let spans: Vec<SpanRecord> = (0..MAX_SPANS_PER_TRACE + 5)
        .map(|i| {
            let mut c = client(1, 0, None);
            c.span_id = SpanId((i as u64 + 2).to_be_bytes());
            c
        })
        .collect();
    s.record(&spans);
    assert_eq!(s.trace(&tid(1)).unwrap().len(), MAX_SPANS_PER_TRACE);
    assert_eq!(s.usage().dropped_spans, 5);
}

#[test]
fn a_backends_spans_join_the_proxys_trace_in_any_order() {
    let s = store(10, 0, 0);
    let backend = SpanSnapshot {
        trace_id: tid(7),
        span_id: SpanId([9; 8]),
        parent: Some(SpanId([2; 8])),
        flags: 1,
        name: "GET /users".into(),
        kind: SpanKind::Server,
        start_us: unix_us_at(30),
        duration_us: 20,
        attributes: vec![],
        events: vec![],
        links: vec![],
        status: Status::Unset,
        scope: None,
        process: Arc::new(Process {
            service: "users".into(),
            tags: vec![],
        }),
    };
    // The backend's span arrives before the proxy's.
    s.ingest(vec![backend]);
    s.record(&[client(7, 2, None), server(7, "api", 200, 100)]);
    let t = s.trace(&tid(7)).unwrap();
    assert_eq!(t.len(), 3);
    let b = t.iter().find(|x| x.process.service == "users").unwrap();
    let c = t.iter().find(|x| x.kind == SpanKind::Client).unwrap();
    assert_eq!(
        b.parent,
        Some(c.span_id),
        "the backend span is the attempt's child"
    );
    let sum = &s.summaries(&SummaryFilter::default(), 1)[0];
    assert_eq!(
        sum.services,
        vec!["users".to_owned(), "tracegate".to_owned()]
    );
    assert_eq!(
        sum.route.as_deref(),
        Some("api"),
        "the proxy's span gives the route"
    );
    assert_eq!(sum.attempts, 1);
    assert_eq!(sum.status, Some(200));
    assert_eq!(
        s.services(),
        vec!["tracegate".to_owned(), "users".to_owned()]
    );
}

fn unix_us_at(us: u64) -> u64 {
    span::unix_us(at(us))
}

#[test]
fn route_counts_use_the_tracez_buckets() {
    let s = store(10, 0, 0);
    for (i, d) in [5, 50, 500, 5_000, 5_000, 200_000_000].iter().enumerate() {
        s.record(&[server(i as u32, "r", if i == 0 { 500 } else { 200 }, *d)]);
    }
    let counts = s.route_counts();
    let (name, c) = &counts[0];
    assert_eq!(name, "r");
    assert_eq!(c.count, 6);
    assert_eq!(c.errors, 1);
    assert_eq!(c.buckets, [1, 1, 1, 2, 0, 0, 0, 0, 1]);
}

#[test]
fn filters_table() {
    let s = store(100, 0, 0);
    s.record(&[server(1, "a", 200, 500)]);
    s.record(&[server(2, "a", 404, 5_000)]);
    s.record(&[
        server(3, "b", 502, 50_000),
        client(3, 2, Some("connection_refused")),
    ]);
    // (filter, expected traces, why)
    let cases: Vec<(SummaryFilter, Vec<u32>, &str)> = vec![
        (SummaryFilter::default(), vec![1, 2, 3], "no filter"),
        (
            SummaryFilter {
                route: Some("a".into()),
                ..Default::default()
            },
            vec![1, 2],
            "by route",
        ),
        (
            SummaryFilter {
                status: StatusClass::parse("4xx"),
                ..Default::default()
            },
            vec![2],
            "by status class",
        ),
        (
            SummaryFilter {
                status: StatusClass::parse("error"),
                ..Default::default()
            },
            vec![3],
            "a 404 is not an error of the server (semconv), a 502 is",
        ),
        (
            SummaryFilter {
                min_duration_us: Some(5_000),
                ..Default::default()
            },
            vec![2, 3],
            "the minimum is inclusive",
        ),
        (
            SummaryFilter {
                min_duration_us: Some(1_000),
                max_duration_us: Some(10_000),
                ..Default::default()
            },
            vec![2],
            "a bucket: [min, max)",
        ),
        (
            SummaryFilter {
                trace_id: Some(tid(3).to_hex().to_ascii_uppercase()),
                ..Default::default()
            },
            vec![3],
            "a trace id prefix, in any case",
        ),
    ];
    for (f, want, why) in cases {
        let mut got: Vec<u32> = s
            .summaries(&f, 100)
            .iter()
            .map(|t| u32::from_be_bytes(t.trace_id.0[12..].try_into().unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, want, "{why}");
    }
    assert_eq!(StatusClass::parse("6xx"), None);
}

#[test]
fn jaeger_search_by_service_operation_and_duration() {
    let s = store(100, 0, 0);
    s.record(&[server(1, "a", 200, 500), client(1, 2, None)]);
    s.record(&[server(2, "b", 200, 5_000)]);
    let q = |service: &str, op: Option<&str>, min: Option<u64>| TraceQuery {
        service: Some(service.into()),
        operation: op.map(Into::into),
        min_duration_us: min,
        limit: 20,
        ..Default::default()
    };
    assert_eq!(s.find(&q("tracegate", None, None)).len(), 2);
    assert_eq!(s.find(&q("tracegate", Some("GET b"), None)).len(), 1);
    assert_eq!(s.find(&q("tracegate", None, Some(1_000))).len(), 1);
    assert_eq!(s.find(&q("nobody", None, None)).len(), 0);
    let ops = s.operations("tracegate");
    assert!(ops.contains(&("GET a".into(), SpanKind::Server)));
    assert!(ops.contains(&("GET".into(), SpanKind::Client)));
}
