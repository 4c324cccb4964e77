//! A real Prometheus server (Debian's `prometheus` 2.42, with exemplar storage) scrapes the
//! real `tracegate` binary's admin listener in both formats, and its HTTP API agrees with what
//! the test sent and with what the test's OTLP receiver got:
//! - the request counts Prometheus stored equal the requests sent, in the OpenMetrics scrape
//!   and in the Prometheus text scrape alike;
//! - every exemplar `query_exemplars` returns names a trace the receiver received, the SERVER
//!   span for the server histogram and a CLIENT span for the client histogram;
//! - the text format carries no exemplars.
//!
//! The test fails (it does not skip) when the `prometheus` binary is missing.

mod common;

use common::admin::PrometheusServer;
use common::{http_get, OtlpReceiver, Proxy, Upstream};
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn prometheus_scrapes_both_formats_and_its_exemplars_open_received_traces() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("app");
    let p = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\n\
         admin: {{ listen: \"127.0.0.1:0\" }}\n\
         telemetry: {{ exporter: {{ protocol: grpc, endpoint: \"{}\" }}, batch: {{ scheduled_delay: 50ms }} }}\n\
         routes:\n  - {{ name: hello, match: {{ path: /hello }}, respond: {{ body: hi }} }}\n  \
         - {{ name: api, match: {{ path_prefix: /api }}, upstream: app }}\n\
         upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        rx.endpoint(),
        up.addr()
    ));
    let (api, hello) = (7, 3);
    for i in 0..api {
        assert_eq!(http_get(&p.addr(), &format!("/api/{i}"), &[]).status, 200);
    }
    for _ in 0..hello {
        assert_eq!(http_get(&p.addr(), "/hello", &[]).status, 200);
    }
    // Two spans per proxied request, one per answered one.
    let spans = rx.wait_for_spans(2 * api + hello, WAIT);
    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    let server_spans: HashSet<(&str, &str)> = spans
        .iter()
        .filter(|s| s.is_server())
        .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
        .collect();
    let client_spans: HashSet<(&str, &str)> = spans
        .iter()
        .filter(|s| s.is_client())
        .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
        .collect();

    // Prometheus 2.x asks for OpenMetrics first; the second job asks for the text format.
    let admin = p.admin_addr();
    let prom = PrometheusServer::start(&format!(
        "  - job_name: openmetrics\n    static_configs: [{{ targets: [\"{admin}\"] }}]\n\
         \x20 - job_name: text\n    params: {{ format: [prometheus] }}\n    static_configs: [{{ targets: [\"{admin}\"] }}]\n"
    ));
    for job in ["openmetrics", "text"] {
        prom.wait_for_value(&format!("up{{job=\"{job}\"}}"), 1.0, WAIT);
        // (query, value, why)
        let cases = [
            (
                format!("sum(http_server_request_duration_seconds_count{{job=\"{job}\",http_route=\"api\"}})"),
                api as f64,
                "proxied requests",
            ),
            (
                format!("sum(http_server_request_duration_seconds_count{{job=\"{job}\",http_route=\"hello\"}})"),
                hello as f64,
                "answered by the proxy",
            ),
            (
                format!("sum(http_client_request_duration_seconds_count{{job=\"{job}\",tracegate_upstream=\"app\"}})"),
                api as f64,
                "one attempt each",
            ),
            (
                format!("sum(http_server_request_duration_seconds_bucket{{job=\"{job}\",le=\"+Inf\"}})"),
                (api + hello) as f64,
                "the +Inf buckets add up to every request",
            ),
        ];
        for (query, want, why) in &cases {
            eprintln!("{job}: {why}");
            prom.wait_for_value(query, *want, WAIT);
        }
    }

    let server = |job: &str| {
        prom.query_exemplars(&format!(
            "http_server_request_duration_seconds_bucket{{job=\"{job}\"}}"
        ))
    };
    let exemplars = {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let e = server("openmetrics");
            if !e.is_empty() || std::time::Instant::now() >= deadline {
                break e;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert!(
        !exemplars.is_empty(),
        "Prometheus stored exemplars\n{}",
        prom.log()
    );
    for e in &exemplars {
        let (t, s) = (
            e["trace_id"].as_str().unwrap_or(""),
            e["span_id"].as_str().unwrap_or(""),
        );
        assert!(traces.contains(t), "exemplar trace {t} was received: {e}");
        assert!(
            server_spans.contains(&(t, s)),
            "a server exemplar names the request's SERVER span: {e}"
        );
    }
    let client =
        prom.query_exemplars("http_client_request_duration_seconds_bucket{job=\"openmetrics\"}");
    assert!(!client.is_empty(), "client exemplars too");
    for e in &client {
        let (t, s) = (
            e["trace_id"].as_str().unwrap_or(""),
            e["span_id"].as_str().unwrap_or(""),
        );
        assert!(
            client_spans.contains(&(t, s)),
            "a client exemplar names its attempt's CLIENT span: {e}"
        );
    }
    assert!(
        server("text").is_empty(),
        "the Prometheus text format carries no exemplars"
    );
}
