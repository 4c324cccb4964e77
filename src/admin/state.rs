//! The metrics of the process's state, read at scrape time from the atomics their owners keep
//! (nothing here adds work to a request), beside the per-request metrics of
//! [`crate::observe::metrics`].
//!
//! - `tracegate_upstream_backend_up`: 1 while a backend is available (passing its health check
//!   and not ejected after failed attempts), from the current config generation's pools.
//! - `tracegate_open_connections` and `tracegate_connections_closed_total{reason}`, from the
//!   connection layer ([`crate::proxy::connection`]).
//! - `tracegate_config_reloads_total{result}`, from the reloader.
//! - `tracegate_tls_certificate_expiry_timestamp_seconds`, from the listeners' certificates in
//!   use (a reload replaces them).
//! - The span pipeline, by the OpenTelemetry SDK's self-observability names:
//!   `otel_sdk_processor_span_queue_size`, `otel_sdk_processor_span_queue_capacity`,
//!   `otel_sdk_processor_span_processed_total{error_type}` and
//!   `otel_sdk_exporter_span_exported_total{error_type}`.
//! - `tracegate_access_log_dropped_total`, from the access log's writer (0 while no config
//!   generation has an access log).
//! - The trace viewer's store: `tracegate_trace_store_traces`, `tracegate_trace_store_bytes`,
//!   `tracegate_trace_store_evicted_total` (traces dropped to stay within its limits) and
//!   `tracegate_trace_store_spans_dropped_total` (spans over a trace's limit).

use crate::listeners::ListenerCertificates;
use crate::observe::metrics::{encode_counter, Metrics, ReloadStats};
use crate::proxy::connection::Gates;
use crate::proxy::SharedGateway;
use crate::trace::SpanSink;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Where the state metrics are read from. Each source is optional: a part that does not run
/// (no reloader for a config built in code, no span pipeline with `protocol: none`, no access
/// log) has no metrics.
#[derive(Debug, Default)]
pub struct StateSources {
    /// The live config generation: its upstreams' backends.
    pub gateway: Option<SharedGateway>,
    /// The connection limits and the connection layer's counters.
    pub connections: Option<Gates>,
    /// The TLS listeners' certificates.
    pub certificates: Option<ListenerCertificates>,
    /// The reloader's counts of applied and refused reloads.
    pub reloads: Option<Arc<ReloadStats>>,
    /// The span pipeline.
    pub spans: Option<SpanSink>,
    /// `tracegate_access_log_dropped_total`: access-log lines dropped because the log's queue
    /// was full ([`crate::observe::access_log::AccessLogStats::dropped`]).
    pub access_log_dropped: Option<Arc<AtomicU64>>,
    /// The trace viewer's store.
    pub trace_store: Option<Arc<crate::trace::store::TraceStore>>,
}

/// A registry with the per-request `metrics` and the process state of `sources`, for
/// `/metrics`. Another part of the proxy with metrics of its own (the access log's
/// `tracegate_access_log_dropped_total`) adds them through [`StateSources`].
pub fn registry(metrics: &'static Metrics, sources: StateSources) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics.collector()));
    registry.register_collector(Box::new(sources));
    registry
}

/// A family of counters, one per label set.
fn counters<'l>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'l [(&'static str, &'l str)], u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        encode_counter(&mut family.encode_family(&labels)?, v)?;
    }
    Ok(())
}

/// A gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

impl Collector for StateSources {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(g) = &self.gateway {
            backends(&mut encoder, g)?;
            rate_limits(&mut encoder, g)?;
        }
        if let Some(c) = &self.connections {
            gauge(
                &mut encoder,
                "tracegate_open_connections",
                "Client connections open now (HTTP/1 and HTTP/2)",
                i64::try_from(c.process.open()).unwrap_or(i64::MAX),
            )?;
            let s = &c.stats;
            let reasons: [(&str, &AtomicU64); 6] = [
                ("limit", &s.refused),
                ("shed", &s.shed),
                ("idle_timeout", &s.idle_timeouts),
                ("head_timeout", &s.head_timeouts),
                ("head_aborted", &s.head_aborts),
                ("head_refused", &s.head_refusals),
            ];
            let labels: Vec<[(&'static str, &str); 1]> =
                reasons.iter().map(|(r, _)| [("reason", *r)]).collect();
            counters(
                &mut encoder,
                "tracegate_connections_closed",
                "Client connections closed outside a request: refused at a connection limit, shed \
                 to make room, idle too long, or for their request head",
                labels
                    .iter()
                    .zip(reasons)
                    .map(|(l, (_, n))| (&l[..], n.load(Relaxed))),
            )?;
        }
        if let Some(r) = &self.reloads {
            let (applied, refused) = ([("result", "applied")], [("result", "refused")]);
            counters(
                &mut encoder,
                "tracegate_config_reloads",
                "Config reloads (SIGHUP or a changed file), applied or refused",
                [
                    (&applied[..], r.applied.load(Relaxed)),
                    (&refused[..], r.refused.load(Relaxed)),
                ],
            )?;
        }
        if let Some(c) = &self.certificates {
            certificates(&mut encoder, c)?;
        }
        if let Some(s) = &self.spans {
            spans(&mut encoder, s)?;
        }
        if let Some(d) = &self.access_log_dropped {
            counters(
                &mut encoder,
                "tracegate_access_log_dropped",
                "Access-log lines dropped because the log's queue was full",
                [(&[][..], d.load(Relaxed))],
            )?;
        }
        if let Some(t) = &self.trace_store {
            let u = t.usage();
            gauge(
                &mut encoder,
                "tracegate_trace_store_traces",
                "Traces the trace viewer holds now, ring and reserve",
                i64::try_from(u.traces).unwrap_or(i64::MAX),
            )?;
            gauge(
                &mut encoder,
                "tracegate_trace_store_bytes",
                "What the trace viewer's traces hold, estimated (at most admin.traces.max_bytes)",
                i64::try_from(u.bytes).unwrap_or(i64::MAX),
            )?;
            counters(
                &mut encoder,
                "tracegate_trace_store_evicted",
                "Traces the trace viewer dropped to stay within its limits",
                [(&[][..], u.evicted)],
            )?;
            counters(
                &mut encoder,
                "tracegate_trace_store_spans_dropped",
                "Spans the trace viewer dropped: their trace already held the most it keeps",
                [(&[][..], u.dropped_spans)],
            )?;
        }
        Ok(())
    }
}

/// `tracegate_rate_limit_requests_total{middleware, result}` (`allowed`, `limited`) and
/// `tracegate_rate_limit_store_errors_total{middleware}` (Redis did not answer: the request
/// followed `on_store_error`), for the current generation's limiters.
fn rate_limits(
    encoder: &mut DescriptorEncoder<'_>,
    g: &SharedGateway,
) -> Result<(), std::fmt::Error> {
    use crate::middleware::Kind;
    let gateway = g.load();
    let limiters: Vec<(&str, &crate::middleware::rate_limit::RateLimiter)> = gateway
        .middlewares
        .iter()
        .filter_map(|m| match &m.kind {
            Kind::RateLimit(l) => Some((&*m.name, &**l)),
            _ => None,
        })
        .collect();
    if limiters.is_empty() {
        return Ok(());
    }
    let labels: Vec<[(&'static str, &str); 2]> = limiters
        .iter()
        .flat_map(|(n, _)| {
            [
                [("middleware", *n), ("result", "allowed")],
                [("middleware", *n), ("result", "limited")],
            ]
        })
        .collect();
    let values: Vec<u64> = limiters
        .iter()
        .flat_map(|(_, l)| [l.stats().allowed(), l.stats().limited()])
        .collect();
    counters(
        encoder,
        "tracegate_rate_limit_requests",
        "Requests a rate_limit middleware let through or refused with 429",
        labels.iter().map(|l| &l[..]).zip(values),
    )?;
    let names: Vec<[(&'static str, &str); 1]> =
        limiters.iter().map(|(n, _)| [("middleware", *n)]).collect();
    counters(
        encoder,
        "tracegate_rate_limit_store_errors",
        "Checks of a Redis-backed rate_limit that Redis did not answer (the request followed \
         on_store_error)",
        names
            .iter()
            .map(|l| &l[..])
            .zip(limiters.iter().map(|(_, l)| l.stats().store_errors())),
    )
}

fn backends(encoder: &mut DescriptorEncoder<'_>, g: &SharedGateway) -> Result<(), std::fmt::Error> {
    let gateway = g.load();
    let mut family = encoder.encode_descriptor(
        "tracegate_upstream_backend_up",
        "1 while a backend is available (passing its health check, not ejected after failed \
         attempts), 0 otherwise",
        None,
        MetricType::Gauge,
    )?;
    for u in &gateway.upstreams {
        let pool = &u.pool;
        for (i, addr) in pool.backends.iter().enumerate() {
            let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
            let labels = [
                ("tracegate_upstream", &*pool.name),
                ("server_address", ip.as_str()),
                ("server_port", port.as_str()),
            ];
            family
                .encode_family(&labels)?
                .encode_gauge(&i64::from(pool.is_available(i)))?;
        }
    }
    Ok(())
}

fn certificates(
    encoder: &mut DescriptorEncoder<'_>,
    c: &ListenerCertificates,
) -> Result<(), std::fmt::Error> {
    let mut rows = Vec::new();
    for (addr, resolver) in c.listeners() {
        let Some(r) = resolver else { continue };
        for cert in r.current().certificates() {
            if let Some(t) = cert.not_after {
                rows.push((addr.to_string(), cert.cert_path.display().to_string(), t));
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(
        "tracegate_tls_certificate_expiry_timestamp",
        "When a listener certificate expires (its notAfter), as a Unix time",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for (listener, file, t) in &rows {
        let labels = [
            ("tracegate_listener", listener.as_str()),
            ("cert_file", file.as_str()),
        ];
        family.encode_family(&labels)?.encode_gauge(t)?;
    }
    Ok(())
}

fn spans(encoder: &mut DescriptorEncoder<'_>, sink: &SpanSink) -> Result<(), std::fmt::Error> {
    let s = sink.stats();
    let n = |a: &AtomicU64| a.load(Relaxed);
    gauge(
        encoder,
        "otel_sdk_processor_span_queue_size",
        "Spans waiting in the span processor's queue",
        i64::try_from(sink.queue_len()).unwrap_or(i64::MAX),
    )?;
    gauge(
        encoder,
        "otel_sdk_processor_span_queue_capacity",
        "The most spans the span processor's queue holds",
        i64::try_from(sink.queue_capacity()).unwrap_or(i64::MAX),
    )?;
    let failed = n(&s.export_failed);
    let timed_out = n(&s.export_timed_out).min(failed);
    let (ok, full) = ([], [("error_type", "queue_full")]);
    counters(
        encoder,
        "otel_sdk_processor_span_processed",
        "Spans the span processor finished with: handed to the exporter, or dropped \
         (error_type queue_full)",
        [
            (&ok[..], n(&s.exported) + failed + n(&s.rejected)),
            (&full[..], n(&s.dropped_queue_full)),
        ],
    )?;
    let (rejected, timeout, other) = (
        [("error_type", "rejected")],
        [("error_type", "timeout")],
        [("error_type", "_OTHER")],
    );
    counters(
        encoder,
        "otel_sdk_exporter_span_exported",
        "Spans the exporter sent: accepted, rejected by the receiver, lost to an export that \
         timed out or failed otherwise",
        [
            (&ok[..], n(&s.exported)),
            (&rejected[..], n(&s.rejected)),
            (&timeout[..], timed_out),
            (&other[..], failed - timed_out),
        ],
    )
}
