//! Benchmarks of the per-request hot path: W3C header parsing and formatting, routing, path
//! normalisation, the request-thread side of tracing, and the span conversion done on the exporter thread.
//!
//! Run with `cargo bench --bench hot_path` (append `-- --quick` for a shorter run, or a filter
//! such as `-- trace/` to run one group).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracegate::routing::path::normalize;
use tracegate::routing::{
    Conditions, HostMatch, PathMatch, PathPolicy, RequestHead, Route, RouteAction, Router, Scheme,
};
use tracegate::trace::export::otlp::OtlpEncoder;
use tracegate::trace::export::pipeline::PipelineStats;
use tracegate::trace::ids::{SpanId, TraceId};
use tracegate::trace::propagation::w3c::{format_traceparent, parse_traceparent, parse_tracestate};
use tracegate::trace::span::{ClientFields, ServerFields, SpanBody, SpanRecord};
use tracegate::trace::{
    BatchExporter, Pipeline, PipelineSettings, RequestInfo, RequestTrace, Tracer,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACEPARENT_ZERO_TRACE_ID: &str = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
const TRACESTATE_3: &str =
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,fw529a3039@dt=lZWRzIHRoNhcm5hbCBwbGVhc3VyZS4";

/// Short runs: every benchmark here takes nanoseconds to a few microseconds, so two seconds of
/// measurement per benchmark give a stable median and the whole file runs in well under a minute.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .nresamples(20_000)
}

/// W3C Trace Context headers, done once per request on the request thread: parsing an incoming
/// `traceparent` (valid, or rejected and restarted), formatting the one sent upstream, and
/// validating an incoming `tracestate` before it is forwarded.
fn w3c(c: &mut Criterion) {
    let mut g = c.benchmark_group("w3c");
    g.bench_function("parse_traceparent", |b| {
        b.iter(|| parse_traceparent(black_box(TRACEPARENT.as_bytes())))
    });
    g.bench_function("parse_traceparent_invalid", |b| {
        b.iter(|| parse_traceparent(black_box(TRACEPARENT_ZERO_TRACE_ID.as_bytes())))
    });
    let tp = parse_traceparent(TRACEPARENT.as_bytes()).expect("valid traceparent");
    let span = SpanId([0x6c, 0x7d, 0x01, 0x02, 0x03, 0x04, 0xf5, 0xc1]);
    g.bench_function("format_traceparent", |b| {
        b.iter(|| format_traceparent(black_box(&tp.trace_id), black_box(&span), black_box(1)))
    });
    let members_32: Vec<String> = (0..32)
        .map(|i| format!("vendor{i}=opaque-value-{i:04}"))
        .collect();
    let tracestate_32 = members_32.join(",");
    for (name, header) in [
        ("3_members", TRACESTATE_3),
        ("32_members", tracestate_32.as_str()),
    ] {
        g.bench_with_input(
            BenchmarkId::new("parse_tracestate", name),
            header,
            |b, header| b.iter(|| parse_tracestate([black_box(header.as_bytes())])),
        );
    }
    g.finish();
}

fn route(name: &str, host: Option<&str>, path_prefix: Option<&str>) -> Route {
    Route {
        conditions: Conditions {
            host: host.map(|h| HostMatch::parse(h).expect("valid host pattern")),
            path: path_prefix.map(|p| PathMatch::Prefix(p.into())),
            ..Conditions::default()
        },
        ..Route::new(name, RouteAction::Proxy { upstream: 0 })
    }
}

/// Route lookup, once per request on the request thread: a linear, first-match-wins scan over
/// a 10-route table that mixes host-only, prefix-only and host + prefix routes. Measured for the
/// first route, the last route and a request that matches nothing (every route is tried). A
/// second table puts a wildcard host, a method list and a header condition in front of the same
/// routes, and measures a request matched by the header route and one that falls through all of
/// them to the last route. The request head is the one the proxy passes: method, host, path and
/// a typical browser header map.
fn routing(c: &mut Criterion) {
    let table = || {
        vec![
            route("api-v2", Some("api.example.com"), Some("/v2/")),
            route("api-v1", Some("api.example.com"), Some("/v1/")),
            route("api-health", Some("api.example.com"), Some("/healthz")),
            route("auth", Some("auth.example.com"), None),
            route("admin", Some("admin.example.com"), Some("/admin")),
            route("images", None, Some("/images/")),
            route("static", None, Some("/static/")),
            route("ws", Some("www.example.com"), Some("/ws")),
            route("docs", Some("docs.example.com"), Some("/")),
            route("cdn", Some("cdn.example.com"), Some("/assets/")),
        ]
    };
    let router = Router::new(table());
    let mut mixed = vec![
        Route {
            conditions: Conditions {
                headers: vec![(
                    http::HeaderName::from_static("x-env"),
                    http::HeaderValue::from_static("canary"),
                )],
                ..Conditions::default()
            },
            ..route("canary", Some("*.example.com"), Some("/v2/"))
        },
        Route {
            conditions: Conditions {
                methods: vec![http::Method::POST, http::Method::PUT],
                ..Conditions::default()
            },
            ..route("writes", Some("*.example.com"), Some("/v2/"))
        },
        route("tenants", Some("*.tenants.example.com"), None),
    ];
    mixed.extend(table());
    let mixed = Router::new(mixed);
    let headers = typical_headers();
    let mut canary_headers = typical_headers();
    canary_headers.insert("x-env", http::HeaderValue::from_static("canary"));
    let get = http::Method::GET;
    let cases = [
        (
            "first_match",
            &router,
            "api.example.com",
            "/v2/users/42",
            &headers,
            Some("api-v2"),
        ),
        (
            "last_match",
            &router,
            "CDN.example.com:443",
            "/assets/app.js",
            &headers,
            Some("cdn"),
        ),
        (
            "no_match",
            &router,
            "unknown.example.org",
            "/nothing/here",
            &headers,
            None,
        ),
        (
            "header_match",
            &mixed,
            "api.example.com",
            "/v2/users/42",
            &canary_headers,
            Some("canary"),
        ),
        (
            "mixed_last_match",
            &mixed,
            "CDN.example.com:443",
            "/assets/app.js",
            &headers,
            Some("cdn"),
        ),
    ];
    let mut g = c.benchmark_group("routing");
    for (case, router, host, path, headers, want) in cases {
        let head = RequestHead {
            scheme: Scheme::Http,
            method: &get,
            host: Some(host),
            path,
            headers,
        };
        assert_eq!(router.route(&head).map(|r| &*r.name), want, "{case}");
        g.bench_with_input(BenchmarkId::new("route", case), &head, |b, head| {
            b.iter(|| router.route(black_box(head)))
        });
    }
    g.finish();
}

/// Path normalisation, once per request on the request thread before routing (the default
/// `server.path`): a typical 30-byte path already in normal form (returned borrowed, the common
/// case), one with a `%20` kept as it is, one that is rewritten (encoded unreserved characters,
/// dot segments, a double slash), and one that is refused.
fn path(c: &mut Criterion) {
    let policy = PathPolicy::default();
    let cases = [
        ("borrowed", "/api/v2/users/12345/orders/678", true),
        ("borrowed_encoded", "/files/annual%20report%202024", true),
        ("rewriting", "/api/v2/./users/%31%32345//x/../orders", false),
        ("refused", "/api/v2/users/..;/admin/orders/67", false),
    ];
    let mut g = c.benchmark_group("path");
    for (case, input, borrowed) in cases {
        let out = normalize(input, &policy);
        assert_eq!(
            matches!(out, Ok(std::borrow::Cow::Borrowed(_))),
            borrowed,
            "{case}: {out:?}"
        );
        g.bench_with_input(BenchmarkId::new("normalize", case), input, |b, input| {
            b.iter(|| normalize(black_box(input), black_box(&policy)))
        });
    }
    g.finish();
}

const EXPORT_BATCH: usize = 512;
/// Time between two requests in the paced variants: several times what the exporter thread
/// needs for one request's spans.
const PACING_GAP: Duration = Duration::from_micros(20);

/// An exporter that encodes every batch as OTLP and discards the bytes, so the pipeline's
/// exporter thread does all of its own work (batching, encoding) without any I/O.
#[derive(Debug)]
struct DiscardExporter {
    encoder: OtlpEncoder,
    buf: Vec<u8>,
}

impl BatchExporter for DiscardExporter {
    async fn export(&mut self, batch: &mut Vec<SpanRecord>) -> Result<u64, String> {
        self.encoder.encode(batch, &mut self.buf);
        black_box(&self.buf);
        Ok(0)
    }
}

fn encoder() -> OtlpEncoder {
    let resource = Resource::builder().with_service_name("bench").build();
    OtlpEncoder::new(&resource, "tracegate", env!("CARGO_PKG_VERSION"))
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("tracegate")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn typical_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(http::header::HOST, "api.example.com".parse().unwrap());
    h.insert(
        http::header::USER_AGENT,
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
            .parse()
            .unwrap(),
    );
    h.insert(
        http::header::ACCEPT,
        "application/json, text/plain, */*".parse().unwrap(),
    );
    h.insert("traceparent", TRACEPARENT.parse().unwrap());
    h
}

/// The tracing work one proxied request does on its request thread, phase by phase: start the
/// trace from the request head (continuing an incoming `traceparent`), record the route, open
/// the upstream attempt's CLIENT span, format the `traceparent` sent upstream, record connect,
/// response and end, and finish, which hands the CLIENT and SERVER spans to the bounded queue.
///
/// `recording` submits into a real pipeline whose exporter thread drains the queue into an
/// exporter that discards; `off` is `Tracer::new(None)` (exporter `none`: context is propagated,
/// nothing is recorded). Plain variants run requests back to back, which keeps the exporter
/// thread busy; `_paced` variants leave a gap between requests, so the exporter thread is idle
/// (parked on the queue) whenever a request submits its spans. The back-to-back `recording`
/// figure moves between runs (roughly 2x on a 2-core machine): both threads allocate and free
/// span memory at full speed and contend on the allocator, so compare it across runs with care.
fn request_lifecycle(c: &mut Criterion) {
    let pipeline = Pipeline::start(
        || {
            Ok(DiscardExporter {
                encoder: encoder(),
                buf: Vec::new(),
            })
        },
        PipelineSettings {
            max_queue_size: 1 << 20,
            max_export_batch_size: EXPORT_BATCH,
            scheduled_delay: Duration::from_millis(100),
            export_timeout: Duration::from_secs(5),
        },
    )
    .expect("pipeline starts");
    let recording = Tracer::new(Some(pipeline.sink()));
    let off = Tracer::new(None);

    let headers = typical_headers();
    let method = http::Method::GET;
    let uri: http::Uri = "/v2/users/42?expand=orders".parse().unwrap();
    let info = RequestInfo {
        method: &method,
        uri: &uri,
        version: http::Version::HTTP_11,
        headers: &headers,
        scheme: "http",
        host: Some("api.example.com"),
        host_port: None,
        client_addr: Some("203.0.113.7:51234".parse().unwrap()),
        local_port: Some(8080),
    };
    let route: Arc<str> = "api-v2".into();
    let upstream: Arc<str> = "api".into();
    let backend: SocketAddr = "10.0.0.1:8080".parse().unwrap();

    let one_request = |tracer: &Tracer| {
        let mut t = RequestTrace::start(tracer, black_box(&info));
        t.set_route(route.clone());
        t.begin_attempt(tracer, upstream.clone(), backend, "/v2/users/42".to_owned());
        t.attempt_connected(true, None);
        black_box(t.upstream_traceparent());
        t.attempt_response(200);
        t.attempt_done();
        t.finish(tracer, 200, None);
    };

    let stats = pipeline.sink().stats().clone();
    let mut g = c.benchmark_group("trace");
    g.bench_function(BenchmarkId::new("request_lifecycle", "off"), |b| {
        b.iter(|| one_request(&off))
    });
    // The exporter thread converts spans more slowly than requests produce them here, so the
    // backlog of the previous sample is drained (outside the timed section) before each sample:
    // every span of a sample is accepted by the queue, none takes the cheaper drop path, while
    // the exporter thread still runs alongside the measured requests.
    g.bench_function(BenchmarkId::new("request_lifecycle", "recording"), |b| {
        b.iter_custom(|iters| {
            wait_for_drain(&stats);
            let t = Instant::now();
            for _ in 0..iters {
                one_request(&recording);
            }
            t.elapsed()
        })
    });
    // Paced: one request every PACING_GAP, so the exporter thread catches up and goes idle
    // between requests, as it does in a proxy that is not saturated. Only the request itself is
    // timed (two clock reads per request are included in the figure, for both variants).
    for (name, tracer) in [("off_paced", &off), ("recording_paced", &recording)] {
        g.bench_function(BenchmarkId::new("request_lifecycle", name), |b| {
            b.iter_custom(|iters| {
                wait_for_drain(&stats);
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let gap = Instant::now();
                    while gap.elapsed() < PACING_GAP {
                        std::hint::spin_loop();
                    }
                    let t = Instant::now();
                    one_request(tracer);
                    timed += t.elapsed();
                }
                timed
            })
        });
    }
    g.finish();

    let dropped = stats.dropped_queue_full.load(Ordering::Relaxed);
    if !pipeline.shutdown(Duration::from_secs(30)) {
        eprintln!("span pipeline did not drain within 30s");
    }
    let queued = stats.queued.load(Ordering::Relaxed);
    let exported = stats.exported.load(Ordering::Relaxed);
    eprintln!(
        "span pipeline: {queued} spans queued, {exported} exported, {dropped} dropped (queue full)"
    );
    assert_eq!(
        dropped, 0,
        "the queue overflowed: the measurement mixed in dropped spans"
    );
}

/// Waits until at most one partial batch is left in the pipeline.
fn wait_for_drain(stats: &PipelineStats) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queued = stats.queued.load(Ordering::Relaxed);
        let done =
            stats.exported.load(Ordering::Relaxed) + stats.export_failed.load(Ordering::Relaxed);
        if queued.saturating_sub(done) <= EXPORT_BATCH as u64 || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn server_record() -> SpanRecord {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    SpanRecord {
        trace_id: TraceId([0x4b; 16]),
        span_id: SpanId([0xda; 8]),
        parent: Some(SpanId([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])),
        parent_is_remote: true,
        flags: 1,
        tracestate: None,
        start,
        end: start + Duration::from_micros(2421),
        link: None,
        body: SpanBody::Server(Box::new(ServerFields {
            method: http::Method::GET,
            route: Some("api-v2".into()),
            middleware: None,
            path: "/v2/users/42".into(),
            scheme: "http",
            server_address: Some("api.example.com".into()),
            server_port: Some(8080),
            client_address: Some("203.0.113.7".parse().unwrap()),
            client_port: Some(51234),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
            ),
            protocol_version: "1.1",
            status: 200,
            error_type: None,
            ..Default::default()
        })),
    }
}

fn client_record() -> SpanRecord {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    SpanRecord {
        trace_id: TraceId([0x4b; 16]),
        span_id: SpanId([0x6c; 8]),
        parent: Some(SpanId([0xda; 8])),
        parent_is_remote: false,
        flags: 1,
        tracestate: None,
        start: start + Duration::from_micros(300),
        end: start + Duration::from_micros(2117),
        link: None,
        body: SpanBody::Client(Box::new(ClientFields {
            method: http::Method::GET,
            middleware: None,
            upstream: Some("api".into()),
            backend: Some("10.0.0.1:8080".parse().unwrap()),
            path: "/v2/users/42".into(),
            tls: false,
            protocol_version: Some("1.1"),
            status: Some(200),
            error_type: None,
            error_message: None,
            resend_count: 0,
            connection_reused: Some(false),
            connect_duration: Some(Duration::from_micros(268)),
            connected_at: Some(start + Duration::from_micros(568)),
            first_byte_at: Some(start + Duration::from_micros(2106)),
        })),
    }
}

/// Exporter-thread work per span: turning the compact `SpanRecord` a request thread queued into
/// an OpenTelemetry `SpanData` (span name, semantic-convention attributes, events, status). A
/// proxied request produces one SERVER and one CLIENT span. Cloning the input record is
/// excluded from the measurement.
fn into_span_data(c: &mut Criterion) {
    let scope = scope();
    let mut g = c.benchmark_group("trace");
    for (kind, record) in [("server", server_record()), ("client", client_record())] {
        g.bench_with_input(
            BenchmarkId::new("into_span_data", kind),
            &record,
            |b, record| {
                b.iter_batched(
                    || record.clone(),
                    |r| r.into_span_data(&scope),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    g.finish();
}

/// The whole exporter-thread cost of one batch of 512 spans, without I/O, from the queued
/// records to the bytes of an OTLP `ExportTraceServiceRequest`. Half SERVER, half CLIENT spans,
/// as proxied requests produce them. Two ways:
/// - `records_to_otlp_bytes`: tracegate's encoder (`trace::export::otlp`), straight from the records;
/// - `sdk/records_to_otlp_bytes`: the OpenTelemetry SDK's way, as `opentelemetry-otlp` does it:
///   records to `SpanData`, opentelemetry-proto's transform, prost encoding (and `sdk/
///   span_data_to_otlp_bytes`, the same without our `SpanData` conversion).
fn export_batch(c: &mut Criterion) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use prost::Message;

    let scope = scope();
    let resource = Resource::builder().with_service_name("bench").build();
    let resource = ResourceAttributesWithSchema::from(&resource);
    let records: Vec<SpanRecord> = (0..EXPORT_BATCH)
        .map(|i| {
            if i % 2 == 0 {
                server_record()
            } else {
                client_record()
            }
        })
        .collect();
    let to_otlp = |data: Vec<SpanData>| {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(data, &resource),
        };
        request.encode_to_vec()
    };
    let mut g = c.benchmark_group("export");
    g.throughput(criterion::Throughput::Elements(EXPORT_BATCH as u64));
    let mut enc = encoder();
    let mut out = Vec::new();
    g.bench_function("batch_512/records_to_otlp_bytes", |b| {
        b.iter(|| {
            enc.encode(black_box(&records), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("batch_512/sdk/records_to_otlp_bytes", |b| {
        b.iter_batched(
            || records.clone(),
            |rs| {
                let data: Vec<SpanData> =
                    rs.into_iter().map(|r| r.into_span_data(&scope)).collect();
                to_otlp(data)
            },
            BatchSize::LargeInput,
        )
    });
    let data: Vec<SpanData> = records
        .iter()
        .cloned()
        .map(|r| r.into_span_data(&scope))
        .collect();
    g.bench_function("batch_512/sdk/span_data_to_otlp_bytes", |b| {
        b.iter_batched(|| data.clone(), to_otlp, BatchSize::LargeInput)
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = w3c, routing, path, request_lifecycle, into_span_data, export_batch
}
criterion_main!(benches);
