//! The proxy's metrics, exposed on the admin listener's `/metrics` with Prometheus's own Rust
//! client (`prometheus-client`): the Prometheus text format for a plain scrape, OpenMetrics 1.0
//! with exemplars when asked for.
//!
//! Names follow the OpenTelemetry HTTP semantic conventions as the OpenTelemetry-to-Prometheus
//! translation spells them (dots become underscores, the unit becomes a suffix:
//! `http.server.request.duration` in seconds is `http_server_request_duration_seconds`).
//!
//! Two kinds of metrics, by who does the work:
//! - **Per request** ([`Metrics`], recorded by [`record`] from the request's
//!   [`Exchange`](crate::exchange::Exchange)): `http_server_request_duration_seconds`, one
//!   `http_client_request_duration_seconds` observation per upstream attempt,
//!   `http_server_active_requests` and `tracegate_upstream_retries_total`. A request does
//!   table lookups and atomic updates only. The route and upstream names are resolved into
//!   handles when a config generation is built ([`Resolved`]), and the other labels are small
//!   integers ([`labels`]) that key a series map ([`series`]); label text is made once per
//!   series, when it first appears, and the number of series is capped. Exemplars carry the
//!   trace and span ids of sampled (exported) requests only, so each one opens a trace the
//!   tracing backend has.
//! - **At scrape time** (the admin listener's collector, `crate::admin`): backend health, open
//!   connections and the connection layer's counters, config reloads ([`ReloadStats`], counted
//!   by the reloader), certificate expiry and the span pipeline are read from the atomics their
//!   owners already keep; nothing is added to a request for them.
//!
//! There is no path or host label on any metric: a client must not be able to create series.

mod labels;
mod record;
mod series;

pub use labels::TraceExemplar;
pub use record::record;
pub use series::MAX_SERIES;

use labels::{Labels, METHODS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::{Exemplar, HistogramWithExemplars};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use series::SeriesMap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

/// The bucket boundaries of the duration histograms, in seconds: the semantic conventions'
/// advice for `http.server.request.duration` and `http.client.request.duration`.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

type Histogram = HistogramWithExemplars<TraceExemplar>;

fn histogram() -> Histogram {
    HistogramWithExemplars::new(DURATION_BUCKETS.into_iter())
}

/// A route or upstream name, as the number it is known by in series keys.
type NameId = u32;

/// The series key of a request has no route.
const NO_ROUTE: NameId = NameId::MAX;

/// The labels of `http_server_request_duration_seconds`, as small integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ServerKey {
    route: NameId,
    method: u8,
    /// 0: no response was written.
    status: u16,
    tls: bool,
    version: u8,
    error: Option<&'static str>,
}

/// The labels of `http_client_request_duration_seconds`, as small integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey {
    upstream: NameId,
    backend: Option<SocketAddr>,
    method: u8,
    /// 0: no response head arrived.
    status: u16,
    error: Option<&'static str>,
}

/// Route and upstream names, each given a number once (when a config generation is built) that
/// stays the same across reloads, so a series outlives the generation that made it.
#[derive(Debug, Default)]
struct Names {
    ids: Mutex<HashMap<Arc<str>, NameId>>,
    names: RwLock<Vec<Arc<str>>>,
}

impl Names {
    fn id(&self, name: &str) -> NameId {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = ids.get(name) {
            return *id;
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        let id = names.len() as NameId;
        let name: Arc<str> = Arc::from(name);
        names.push(Arc::clone(&name));
        ids.insert(name, id);
        id
    }

    fn name(&self, id: NameId) -> Arc<str> {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }
}

/// The per-request metrics of the process. One per process, made by [`Metrics::leak`] when
/// the admin listener is configured (without it nothing is recorded); a reload keeps it, so
/// counters never go back to zero while the process runs.
#[derive(Debug)]
pub struct Metrics {
    server: SeriesMap<ServerKey, Histogram>,
    client: SeriesMap<ClientKey, Histogram>,
    /// `tracegate_upstream_retries_total`, by upstream.
    retries: Mutex<HashMap<NameId, Counter>>,
    /// `http_server_active_requests` by method and scheme (index: `method * 2 + tls`), and
    /// whether each has been seen (a series that was never used is not shown).
    active: [AtomicI64; METHODS.len() * 2],
    active_seen: [AtomicBool; METHODS.len() * 2],
    names: Names,
    /// Sampled requests leave exemplars; off when no span is exported (`protocol: none`),
    /// since an exemplar must lead to a trace the backend has.
    exemplars: bool,
}

impl Metrics {
    /// The process's metrics, alive until it exits (requests in flight hold on to them without
    /// counting references). `exemplars`: spans are exported, so sampled requests leave
    /// exemplars.
    pub fn leak(exemplars: bool) -> &'static Metrics {
        Box::leak(Box::new(Metrics::with_limit(MAX_SERIES, exemplars)))
    }

    fn with_limit(limit: usize, exemplars: bool) -> Metrics {
        Metrics {
            server: SeriesMap::new(limit),
            client: SeriesMap::new(limit),
            retries: Mutex::default(),
            active: std::array::from_fn(|_| AtomicI64::new(0)),
            active_seen: std::array::from_fn(|_| AtomicBool::new(false)),
            names: Names::default(),
            exemplars,
        }
    }

    /// The handles of one config generation: `routes` gives, for each route in router order,
    /// its name and its upstream's name (none for a `respond` or `redirect` route). Runs when
    /// the generation is built, at start and on each reload.
    pub fn resolve<'a>(
        &'static self,
        routes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Resolved {
        let routes = routes
            .into_iter()
            .map(|(route, upstream)| RouteHandles {
                route: self.names.id(route),
                upstream: upstream.map(|u| self.upstream(u)),
            })
            .collect();
        Resolved {
            metrics: self,
            routes,
        }
    }

    fn upstream(&self, name: &str) -> UpstreamHandles {
        let id = self.names.id(name);
        let mut retries = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        UpstreamHandles {
            id,
            retries: retries.entry(id).or_default().clone(),
        }
    }

    /// Counts a request in `http_server_active_requests` until the returned guard is dropped
    /// (with the request's context, however the request ends).
    #[inline]
    pub fn request_started(&'static self, method: &http::Method, tls: bool) -> ActiveRequest {
        let i = usize::from(labels::method(method)) * 2 + usize::from(tls);
        self.active[i].fetch_add(1, Relaxed);
        if !self.active_seen[i].load(Relaxed) {
            self.active_seen[i].store(true, Relaxed);
        }
        ActiveRequest(&self.active[i])
    }

    /// The collector of these metrics, for a registry.
    pub fn collector(&'static self) -> impl Collector {
        RequestCollector(self)
    }

    fn server_labels(&self, k: &ServerKey) -> Labels {
        let mut l: Labels = Vec::with_capacity(6);
        l.push(("http_request_method", METHODS[usize::from(k.method)].into()));
        if k.status > 0 {
            l.push(("http_response_status_code", k.status.to_string().into()));
        }
        if k.route != NO_ROUTE {
            l.push(("http_route", self.names.name(k.route).to_string().into()));
        }
        l.push(("url_scheme", labels::scheme(k.tls).into()));
        l.push((
            "network_protocol_version",
            labels::VERSIONS[usize::from(k.version)].into(),
        ));
        if let Some(e) = labels::error_label(k.error, k.status, 500) {
            l.push(("error_type", e));
        }
        l
    }

    fn client_labels(&self, k: &ClientKey) -> Labels {
        let mut l: Labels = Vec::with_capacity(6);
        l.push((
            "tracegate_upstream",
            self.names.name(k.upstream).to_string().into(),
        ));
        if let Some(b) = k.backend {
            l.push(("server_address", b.ip().to_string().into()));
            l.push(("server_port", b.port().to_string().into()));
        }
        l.push(("http_request_method", METHODS[usize::from(k.method)].into()));
        if k.status > 0 {
            l.push(("http_response_status_code", k.status.to_string().into()));
        }
        if let Some(e) = labels::error_label(k.error, k.status, 400) {
            l.push(("error_type", e));
        }
        l
    }
}

/// A request counted in `http_server_active_requests`; dropping it ends the count.
#[derive(Debug)]
pub struct ActiveRequest(&'static AtomicI64);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The metric handles of one config generation's routes and upstreams, by route index.
#[derive(Debug)]
pub struct Resolved {
    metrics: &'static Metrics,
    routes: Box<[RouteHandles]>,
}

impl Resolved {
    /// The process's metrics.
    pub fn metrics(&self) -> &'static Metrics {
        self.metrics
    }
}

#[derive(Debug)]
struct RouteHandles {
    route: NameId,
    upstream: Option<UpstreamHandles>,
}

#[derive(Debug)]
struct UpstreamHandles {
    id: NameId,
    retries: Counter,
}

/// Writes the per-request metrics at scrape time.
#[derive(Debug)]
struct RequestCollector(&'static Metrics);

impl Collector for RequestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let m = self.0;
        encode_histograms(
            &mut encoder,
            "http_server_request_duration",
            "Duration of HTTP server requests: from the request head to the end of the response",
            &m.server,
        )?;
        encode_histograms(
            &mut encoder,
            "http_client_request_duration",
            "Duration of HTTP client requests: one per upstream attempt, retries included",
            &m.client,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "http_server_active_requests",
                "Number of HTTP server requests in flight",
                None,
                MetricType::Gauge,
            )?;
            for (i, value) in m.active.iter().enumerate() {
                if !m.active_seen[i].load(Relaxed) {
                    continue;
                }
                let labels = [
                    ("http_request_method", METHODS[i / 2]),
                    ("url_scheme", labels::scheme(i % 2 == 1)),
                ];
                family
                    .encode_family(&labels)?
                    .encode_gauge(&value.load(Relaxed))?;
            }
        }
        let retries: Vec<(Arc<str>, u64)> = {
            let r = m.retries.lock().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<_> = r
                .iter()
                .map(|(id, c)| (m.names.name(*id), c.get()))
                .collect();
            v.sort();
            v
        };
        let mut family = encoder.encode_descriptor(
            "tracegate_upstream_retries",
            "Upstream attempts after the first of their request (retries)",
            None,
            MetricType::Counter,
        )?;
        for (name, n) in &retries {
            let labels = [("tracegate_upstream", &**name)];
            encode_counter(&mut family.encode_family(&labels)?, *n)?;
        }
        Ok(())
    }
}

fn encode_histograms<K: std::hash::Hash + Eq + Clone>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &SeriesMap<K, Histogram>,
) -> Result<(), std::fmt::Error> {
    if series.len() == 0 {
        return Ok(());
    }
    let mut family =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    let mut result = Ok(());
    series.each(|s| {
        if result.is_ok() {
            result = family
                .encode_family(&s.labels)
                .and_then(|e| s.metric.encode(e));
        }
    });
    result
}

/// A counter sample without exemplar.
pub fn encode_counter(e: &mut MetricEncoder<'_>, v: u64) -> Result<(), std::fmt::Error> {
    e.encode_counter::<NoLabelSet, u64, u64>(&v, None::<&Exemplar<NoLabelSet, u64>>)
}

/// How many config reloads were applied and refused since start
/// (`tracegate_config_reloads_total{result}`); the reloader counts, the admin listener reads.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub applied: AtomicU64,
    pub refused: AtomicU64,
}

#[cfg(test)]
mod tests;
