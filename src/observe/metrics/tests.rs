//! The per-request metrics end to end inside the process: requests recorded from their
//! [`Exchange`], the scrape read back with a real parser (`prometheus-parse`) and, for the
//! exemplars, in the OpenMetrics text.

use super::*;
use crate::exchange::{AttemptRecord, Downstream, Exchange, TraceRef};
use prometheus_client::encoding::{prometheus_text, text};
use std::time::{Duration, Instant, SystemTime};

fn metrics(limit: usize) -> &'static Metrics {
    Box::leak(Box::new(Metrics::with_limit(limit, true)))
}

/// A finished request, as the proxy hands it over.
struct Req {
    method: http::Method,
    status: u16,
    tls: bool,
    version: http::Version,
    attempts: Vec<AttemptRecord>,
    trace: TraceRef,
    duration: Duration,
}

impl Req {
    fn get(status: u16) -> Req {
        Req {
            method: http::Method::GET,
            status,
            tls: false,
            version: http::Version::HTTP_11,
            attempts: Vec::new(),
            trace: TraceRef {
                trace_id: [0x11; 16],
                span_id: [0x22; 8],
                sampled: true,
            },
            duration: Duration::from_millis(30),
        }
    }

    fn record(&self, r: &Resolved, route: Option<usize>) {
        let downstream = Downstream::new(self.tls, Some("api.example.com"), None, None);
        let x = Exchange {
            downstream: &downstream,
            method: &self.method,
            path: "/secret/path/that/must/not/show",
            query: None,
            version: self.version,
            user_agent: None,
            referer: None,
            start: SystemTime::now(),
            duration: self.duration,
            request_body_bytes: 0,
            response_body_bytes: 0,
            attempts: &self.attempts,
            route: route.map(|_| "ignored: the handles carry the route"),
            middleware: None,
            auth: None,
            status: self.status,
            upstream: None,
            failure: None,
            trace: Some(self.trace),
        };
        record(Some(r), route, &x);
    }
}

fn attempt(port: u16, status: Option<u16>, error: Option<&'static str>, span: u8) -> AttemptRecord {
    let started = Instant::now();
    AttemptRecord {
        backend: SocketAddr::from(([10, 0, 0, 1], port)),
        started,
        connect: None,
        ttfb: None,
        status,
        error_type: error,
        ended: Some(started + Duration::from_millis(20)),
        span_id: Some([span; 8]),
    }
}

fn scrape(m: &'static Metrics) -> (prometheus_parse::Scrape, String, String) {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(m.collector()));
    let mut plain = String::new();
    prometheus_text::encode(&mut plain, &registry).unwrap();
    let mut om = String::new();
    text::encode(&mut om, &registry).unwrap();
    let scrape = prometheus_parse::Scrape::parse(plain.lines().map(|l| Ok(l.to_owned())))
        .expect("the text format parses");
    (scrape, plain, om)
}

/// The value of the sample `name` whose labels include all of `labels`.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => {
                h.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn requests_become_series_with_semconv_labels() {
    let m = metrics(MAX_SERIES);
    let r = m.resolve([("api", Some("backend")), ("hello", None)]);
    let mut retried = Req::get(200);
    retried.attempts = vec![
        attempt(81, None, Some("connection_refused"), 0xa1),
        attempt(82, Some(200), None, 0xa2),
    ];
    retried.record(&r, Some(0));
    Req::get(200).record(&r, Some(1));
    Req::get(200).record(&r, Some(1));
    let mut odd = Req::get(404);
    odd.method = http::Method::from_bytes(b"XYZZY").unwrap();
    odd.version = http::Version::HTTP_2;
    odd.tls = true;
    odd.record(&r, None);
    let mut failed = Req::get(502);
    failed.attempts = vec![attempt(81, Some(503), None, 0xa3)];
    failed.record(&r, Some(0));

    let (s, plain, _) = scrape(m);
    let count = "http_server_request_duration_seconds_count";
    // (metric, labels, value, why)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], f64, &'a str);
    let cases: &[Case] = &[
        (
            count,
            &[
                ("http_route", "hello"),
                ("http_response_status_code", "200"),
            ],
            2.0,
            "two answers of a respond route",
        ),
        (
            count,
            &[
                ("http_route", "api"),
                ("http_response_status_code", "200"),
                ("url_scheme", "http"),
                ("network_protocol_version", "1.1"),
                ("http_request_method", "GET"),
            ],
            1.0,
            "the retried request is one server request",
        ),
        (
            count,
            &[
                ("http_request_method", "_OTHER"),
                ("url_scheme", "https"),
                ("network_protocol_version", "2"),
            ],
            1.0,
            "an unknown method is _OTHER (semconv)",
        ),
        (
            count,
            &[("http_response_status_code", "502"), ("error_type", "502")],
            1.0,
            "a 5xx is its own error.type",
        ),
        (
            "http_client_request_duration_seconds_count",
            &[
                ("tracegate_upstream", "backend"),
                ("server_address", "10.0.0.1"),
                ("server_port", "81"),
                ("error_type", "connection_refused"),
            ],
            1.0,
            "a failed attempt, with its error",
        ),
        (
            "http_client_request_duration_seconds_count",
            &[("server_port", "82"), ("http_response_status_code", "200")],
            1.0,
            "the retry that answered",
        ),
        (
            "http_client_request_duration_seconds_count",
            &[
                ("server_port", "81"),
                ("http_response_status_code", "503"),
                ("error_type", "503"),
            ],
            1.0,
            "a backend's 5xx",
        ),
        (
            "tracegate_upstream_retries_total",
            &[("tracegate_upstream", "backend")],
            1.0,
            "one retry in all",
        ),
    ];
    for (name, labels, want, why) in cases {
        assert_eq!(value(&s, name, labels), Some(*want), "{why}\n{plain}");
    }
    let with_route_of_404 = s.samples.iter().any(|x| {
        x.metric == count
            && x.labels.get("http_response_status_code") == Some("404")
            && x.labels.get("http_route").is_some()
    });
    assert!(!with_route_of_404, "no route, no http_route label");
    for forbidden in [
        "url_path",
        "secret",
        "server_address=\"api",
        "api.example.com",
    ] {
        assert!(
            !plain.contains(forbidden),
            "{forbidden} in the scrape: no path or host label"
        );
    }
    assert!(
        !plain.contains("trace_id"),
        "the text format carries no exemplars"
    );
}

#[test]
fn exemplars_come_from_sampled_requests_and_lead_to_their_spans() {
    let m = metrics(MAX_SERIES);
    let r = m.resolve([("api", Some("backend"))]);
    let mut sampled = Req::get(200);
    sampled.attempts = vec![attempt(81, Some(200), None, 0xa1)];
    sampled.record(&r, Some(0));
    let mut unsampled = Req::get(200);
    unsampled.trace = TraceRef {
        trace_id: [0x99; 16],
        span_id: [0x98; 8],
        sampled: false,
    };
    unsampled.attempts = vec![attempt(81, Some(200), None, 0x97)];
    unsampled.record(&r, Some(0));
    let (_, _, om) = scrape(m);
    let server = format!(
        "# {{trace_id=\"{}\",span_id=\"{}\"}} 0.03 ",
        "11".repeat(16),
        "22".repeat(8)
    );
    let client = format!(
        "# {{trace_id=\"{}\",span_id=\"{}\"}} 0.02 ",
        "11".repeat(16),
        "a1".repeat(8)
    );
    let bucket_of = |needle: &str| {
        om.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no exemplar {needle} in\n{om}"))
            .to_owned()
    };
    assert!(
        bucket_of(&server).starts_with("http_server_request_duration_seconds_bucket{le=\"0.05\""),
        "the SERVER span on the bucket the 30 ms fell in"
    );
    assert!(
        bucket_of(&client).starts_with("http_client_request_duration_seconds_bucket{le=\"0.025\""),
        "the attempt's CLIENT span on its own bucket"
    );
    assert!(
        !om.contains(&"99".repeat(16)),
        "an unsampled request leaves no exemplar\n{om}"
    );
    assert!(om.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(om.contains("# UNIT http_server_request_duration_seconds seconds"));

    let quiet = Box::leak(Box::new(Metrics::with_limit(MAX_SERIES, false)));
    let r = quiet.resolve([("api", None)]);
    Req::get(200).record(&r, Some(0));
    let (_, _, om) = scrape(quiet);
    assert!(
        !om.contains("trace_id"),
        "no exporter: no exemplar, there is no trace to open"
    );
}

#[test]
fn series_stay_bounded_whatever_the_requests() {
    let m = metrics(3);
    let r = m.resolve([("a", None)]);
    for status in [200, 201, 202, 203, 204, 205] {
        Req::get(status).record(&r, Some(0));
    }
    let (s, plain, _) = scrape(m);
    let counts: Vec<_> = s
        .samples
        .iter()
        .filter(|x| x.metric == "http_server_request_duration_seconds_count")
        .collect();
    assert_eq!(
        counts.len(),
        4,
        "three series and the overflow series\n{plain}"
    );
    assert_eq!(
        value(
            &s,
            "http_server_request_duration_seconds_count",
            &[("otel_metric_overflow", "true")]
        ),
        Some(3.0),
        "past the limit, observations go to the overflow series"
    );
}

#[test]
fn active_requests_count_until_the_guard_drops() {
    let m = metrics(MAX_SERIES);
    let a = m.request_started(&http::Method::GET, false);
    let b = m.request_started(&http::Method::POST, true);
    let (s, _, _) = scrape(m);
    let active = "http_server_active_requests";
    assert_eq!(
        value(
            &s,
            active,
            &[("http_request_method", "GET"), ("url_scheme", "http")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            active,
            &[("http_request_method", "POST"), ("url_scheme", "https")]
        ),
        Some(1.0)
    );
    drop((a, b));
    let (s, _, _) = scrape(m);
    assert_eq!(
        value(&s, active, &[("http_request_method", "GET")]),
        Some(0.0),
        "a series once seen stays, at 0"
    );
    assert_eq!(
        value(&s, active, &[("http_request_method", "PUT")]),
        None,
        "never seen: not shown"
    );
}

#[test]
fn a_reload_keeps_the_series_of_a_route_by_name() {
    let m = metrics(MAX_SERIES);
    let first = m.resolve([("a", Some("u")), ("b", None)]);
    Req::get(200).record(&first, Some(0));
    // The next generation lists the routes in another order.
    let second = m.resolve([("b", None), ("a", Some("u"))]);
    Req::get(200).record(&second, Some(1));
    let (s, _, _) = scrape(m);
    assert_eq!(
        value(
            &s,
            "http_server_request_duration_seconds_count",
            &[("http_route", "a")]
        ),
        Some(2.0),
        "one series across generations"
    );
}
