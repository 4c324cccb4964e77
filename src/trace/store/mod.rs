//! Recent traces in memory, for the trace viewer: a ring of the latest traces, and a reserve
//! that keeps each route's failed and slowest traces longer.
//!
//! **What goes in.** Every span the export pipeline takes (recorded on the exporter thread,
//! never on a request thread: [`TraceStore::record`]) and the spans services send to the OTLP
//! intake ([`TraceStore::ingest`]). Spans are grouped by trace id, so a backend's spans join the
//! proxy's trace whatever order they arrive in.
//!
//! **What stays.** Three places, each trace in exactly one:
//! - the *ring*: the latest [`StoreSettings::max_traces`] traces, in arrival order;
//! - the *error reserve*: up to [`StoreSettings::keep_errors`] traces with a failed span. A
//!   trace that leaves the ring with an error moves here instead of being dropped; when it is
//!   full, the oldest trace of the route holding the most goes, so one failing route cannot
//!   push out another's only 502;
//! - the *slow reserve*: per route, the [`StoreSettings::keep_slow`] slowest traces that left
//!   the ring.
//!
//! A flood of fast 200s only turns the ring over. **Memory** is bounded by
//! [`StoreSettings::max_bytes`] over all three (an estimate of what each span holds): over it,
//! the oldest ring traces go first, then the reserves' oldest. A trace holds at most
//! [`MAX_SPANS_PER_TRACE`] spans; more are counted and dropped.
//!
//! **Counts.** Per route, since start: requests, failed requests and their latency buckets
//! (the buckets of the OpenTelemetry Collector's zPages `tracez`), counted from tracegate's
//! own SERVER spans as they arrive.

pub mod intake;
mod span;

pub use span::{Attribute, Event, Link, Process, SpanKind, SpanSnapshot, Status, Value};

use crate::trace::ids::{SpanId, TraceId};
use crate::trace::span::{AttrScratch, SpanBody, SpanRecord};
use span::Stored;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Spans kept per trace at most.
pub const MAX_SPANS_PER_TRACE: usize = 1000;
/// Routes counted and kept in the slow reserve at most; more routes are counted as one.
pub const MAX_ROUTES: usize = 1024;
/// The route key of requests that matched no route (and of traces without a tracegate SERVER
/// span).
pub const NO_ROUTE: &str = "-";
/// What a trace costs besides its spans (its map slot, its place in a queue).
const TRACE_OVERHEAD: usize = 160;

/// Upper bounds of the latency buckets, in microseconds, as zPages `tracez` draws them:
/// `[0, 10µs)`, `[10µs, 100µs)`, … `[100s, ∞)`.
pub const BUCKET_BOUNDS_US: [u64; 8] = [
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The bucket a duration falls in (0 to 8).
pub fn bucket_of(duration_us: u64) -> usize {
    BUCKET_BOUNDS_US
        .iter()
        .position(|&b| duration_us < b)
        .unwrap_or(BUCKET_BOUNDS_US.len())
}

/// The checked `admin.traces` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSettings {
    /// Traces in the ring.
    pub max_traces: usize,
    /// Bytes all stored traces may hold (an estimate).
    pub max_bytes: usize,
    /// Failed traces kept after they leave the ring.
    pub keep_errors: usize,
    /// Slowest traces kept per route after they leave the ring.
    pub keep_slow: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            max_traces: 1000,
            max_bytes: 64 << 20,
            keep_errors: 200,
            keep_slow: 10,
        }
    }
}

/// Where a stored trace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Ring,
    /// Kept because a span failed.
    Error,
    /// Kept as one of its route's slowest.
    Slow,
}

impl Place {
    /// `None` for the ring, else why the trace is kept: `error` or `slow`.
    pub fn reserved(self) -> Option<&'static str> {
        match self {
            Place::Ring => None,
            Place::Error => Some("error"),
            Place::Slow => Some("slow"),
        }
    }
}

/// One line of the trace list.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    /// The earliest span start, in microseconds since the Unix epoch.
    pub start_us: u64,
    /// The top tracegate SERVER span's route (`-`: none matched); `None` without such a span.
    pub route: Option<Arc<str>>,
    pub method: Option<String>,
    /// The status tracegate answered (`None` without a SERVER span, or when none was written).
    pub status: Option<u16>,
    /// The top SERVER span's duration, or the trace's extent without one.
    pub duration_us: u64,
    /// Upstream attempts: the CLIENT spans under the top SERVER span.
    pub attempts: usize,
    /// A span of the trace failed.
    pub error: bool,
    pub spans: usize,
    pub services: Vec<String>,
    /// The root span's name.
    pub name: String,
    pub place: Place,
}

/// What a trace list is filtered by; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryFilter {
    /// The route (`-` for none).
    pub route: Option<String>,
    /// `2xx` … `5xx`, or `error` (a failed span).
    pub status: Option<StatusClass>,
    pub min_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    /// A prefix of the hex trace id.
    pub trace_id: Option<String>,
}

/// A status class filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// `1xx` … `5xx`: the hundreds digit.
    Hundreds(u16),
    /// Any failed span.
    Error,
}

impl StatusClass {
    pub fn parse(s: &str) -> Option<StatusClass> {
        match s {
            "error" => Some(StatusClass::Error),
            "1xx" | "2xx" | "3xx" | "4xx" | "5xx" => {
                Some(StatusClass::Hundreds(u16::from(s.as_bytes()[0] - b'0')))
            }
            _ => None,
        }
    }
}

impl SummaryFilter {
    fn matches(&self, s: &TraceSummary) -> bool {
        if let Some(r) = &self.route {
            if s.route.as_deref() != Some(r.as_str()) {
                return false;
            }
        }
        match self.status {
            Some(StatusClass::Error) if !s.error => return false,
            Some(StatusClass::Hundreds(h)) if s.status.map(|c| c / 100) != Some(h) => return false,
            _ => {}
        }
        if self.min_duration_us.is_some_and(|m| s.duration_us < m) {
            return false;
        }
        if self.max_duration_us.is_some_and(|m| s.duration_us >= m) {
            return false;
        }
        if let Some(p) = &self.trace_id {
            if !s.trace_id.to_hex().starts_with(&p.to_ascii_lowercase()) {
                return false;
            }
        }
        true
    }
}

/// Per-route counts since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteCounts {
    pub count: u64,
    pub errors: u64,
    pub buckets: [u64; BUCKET_BOUNDS_US.len() + 1],
}

/// How full the store is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub traces: usize,
    pub spans: usize,
    pub bytes: usize,
    /// Traces in the two reserves.
    pub reserved: usize,
    /// Traces dropped since start.
    pub evicted: u64,
    /// Spans dropped since start (a trace over [`MAX_SPANS_PER_TRACE`]).
    pub dropped_spans: u64,
}

/// A Jaeger-style trace search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub min_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    /// Spans starting at or after this (µs since the epoch).
    pub start_us: Option<u64>,
    /// Spans starting at or before this.
    pub end_us: Option<u64>,
    /// Tags a matching span must carry, compared as text.
    pub tags: Vec<(String, String)>,
    pub limit: usize,
}

struct Entry {
    spans: Vec<Stored>,
    bytes: usize,
    /// Arrival order of the trace's first span.
    seq: u64,
    place: Place,
    /// Set when the trace left the ring.
    route: Option<Arc<str>>,
}

struct Inner {
    traces: HashMap<TraceId, Entry>,
    ring: VecDeque<TraceId>,
    errors: VecDeque<TraceId>,
    /// Per route: (duration µs, trace), the route's slowest.
    slow: HashMap<Arc<str>, Vec<(u64, TraceId)>>,
    bytes: usize,
    spans: usize,
    seq: u64,
    routes: BTreeMap<Arc<str>, RouteCounts>,
    no_route: Arc<str>,
    evicted: u64,
    dropped_spans: u64,
}

/// The recent traces. Shared by the exporter thread (which records), the admin listener (which
/// reads, and ingests OTLP), behind one lock taken once per batch or request.
pub struct TraceStore {
    settings: StoreSettings,
    own: Arc<Process>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for TraceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceStore")
            .field("settings", &self.settings)
            .finish()
    }
}

impl TraceStore {
    /// An empty store; tracegate's own spans are reported as `own`'s.
    pub fn new(settings: StoreSettings, own: Process) -> TraceStore {
        let no_route: Arc<str> = Arc::from(NO_ROUTE);
        TraceStore {
            settings,
            own: Arc::new(own),
            inner: Mutex::new(Inner {
                traces: HashMap::new(),
                ring: VecDeque::new(),
                errors: VecDeque::new(),
                slow: HashMap::new(),
                bytes: 0,
                spans: 0,
                seq: 0,
                routes: BTreeMap::new(),
                no_route,
                evicted: 0,
                dropped_spans: 0,
            }),
        }
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// The service tracegate's own spans are reported under.
    pub fn own_service(&self) -> &str {
        &self.own.service
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a copy of tracegate's own spans. Runs on the exporter thread, once per batch.
    pub fn record(&self, batch: &[SpanRecord]) {
        if batch.is_empty() {
            return;
        }
        let mut g = self.lock();
        for r in batch {
            if let SpanBody::Server(s) = &r.body {
                let route = s.route.clone().unwrap_or_else(|| Arc::clone(&g.no_route));
                let dur = span::unix_us(r.end).saturating_sub(span::unix_us(r.start));
                g.count(route, r.is_error(), dur);
            }
            g.insert(Stored::Own(r.clone()), 0);
        }
        g.enforce(&self.settings);
    }

    /// Keeps spans that came in through the OTLP intake.
    pub fn ingest(&self, spans: Vec<SpanSnapshot>) {
        if spans.is_empty() {
            return;
        }
        let mut g = self.lock();
        // A resource is shared by the spans of its group: its bytes count with the first.
        let mut seen: HashSet<usize> = HashSet::new();
        for s in spans {
            let extra = if seen.insert(Arc::as_ptr(&s.process) as usize) {
                s.process.bytes()
            } else {
                0
            };
            g.insert(Stored::Foreign(Box::new(s)), extra);
        }
        g.enforce(&self.settings);
    }

    /// How full the store is.
    pub fn usage(&self) -> StoreUsage {
        let g = self.lock();
        StoreUsage {
            traces: g.traces.len(),
            spans: g.spans,
            bytes: g.bytes,
            reserved: g.errors.len() + g.slow.values().map(Vec::len).sum::<usize>(),
            evicted: g.evicted,
            dropped_spans: g.dropped_spans,
        }
    }

    /// Per-route counts since start, by route name.
    pub fn route_counts(&self) -> Vec<(String, RouteCounts)> {
        let g = self.lock();
        g.routes
            .iter()
            .map(|(r, c)| (r.to_string(), c.clone()))
            .collect()
    }

    /// The stored traces that pass `filter`, newest first, at most `limit`.
    pub fn summaries(&self, filter: &SummaryFilter, limit: usize) -> Vec<TraceSummary> {
        let g = self.lock();
        let mut entries: Vec<(&TraceId, &Entry)> = g.traces.iter().collect();
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.1.seq));
        entries
            .into_iter()
            .map(|(id, e)| summarize(*id, e, &self.own))
            .filter(|s| filter.matches(s))
            .take(limit)
            .collect()
    }

    /// Every stored span of trace `id`, in start order; `None` when the trace is not stored.
    pub fn trace(&self, id: &TraceId) -> Option<Vec<SpanSnapshot>> {
        let g = self.lock();
        let e = g.traces.get(id)?;
        Some(snapshots(e, &self.own))
    }

    /// The traces a Jaeger search finds, newest first.
    pub fn find(&self, q: &TraceQuery) -> Vec<Vec<SpanSnapshot>> {
        let g = self.lock();
        let mut entries: Vec<&Entry> = g.traces.values().collect();
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.seq));
        let mut scratch = AttrScratch::default();
        let mut found = Vec::new();
        for e in entries {
            if found.len() >= q.limit {
                break;
            }
            let hit = e.spans.iter().any(|s| {
                if q.service
                    .as_deref()
                    .is_some_and(|v| s.service(&self.own) != v)
                {
                    return false;
                }
                if q.operation.as_deref().is_some_and(|o| s.name() != o) {
                    return false;
                }
                let (start, end) = s.times_us();
                let dur = end - start;
                if q.min_duration_us.is_some_and(|m| dur < m)
                    || q.max_duration_us.is_some_and(|m| dur > m)
                    || q.start_us.is_some_and(|t| start < t)
                    || q.end_us.is_some_and(|t| start > t)
                {
                    return false;
                }
                if q.tags.is_empty() {
                    return true;
                }
                let snap = s.snapshot(&self.own, &mut scratch);
                q.tags.iter().all(|(k, v)| {
                    snap.attribute(k).is_some_and(|a| value_text(a) == *v)
                        || snap
                            .process
                            .tags
                            .iter()
                            .any(|(pk, pv)| pk == k && value_text(pv) == *v)
                })
            });
            if hit {
                found.push(snapshots(e, &self.own));
            }
        }
        found
    }

    /// The services of the stored spans, sorted; tracegate's own always first.
    pub fn services(&self) -> Vec<String> {
        let g = self.lock();
        let mut set: HashSet<&str> = HashSet::new();
        for e in g.traces.values() {
            for s in &e.spans {
                set.insert(s.service(&self.own));
            }
        }
        let mut out: Vec<String> = set
            .into_iter()
            .filter(|s| *s != self.own.service)
            .map(str::to_owned)
            .collect();
        out.sort();
        out.insert(0, self.own.service.clone());
        out
    }

    /// The span names (operations) of `service`, with their kinds, sorted.
    pub fn operations(&self, service: &str) -> Vec<(String, SpanKind)> {
        let g = self.lock();
        let mut set: HashSet<(String, SpanKind)> = HashSet::new();
        for e in g.traces.values() {
            for s in &e.spans {
                if s.service(&self.own) == service {
                    let kind = match s {
                        Stored::Own(r) => match r.body {
                            SpanBody::Server(_) => SpanKind::Server,
                            SpanBody::Client(_) => SpanKind::Client,
                        },
                        Stored::Foreign(f) => f.kind,
                    };
                    set.insert((s.name().into_owned(), kind));
                }
            }
        }
        let mut out: Vec<_> = set.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
        out
    }
}

/// An attribute value as text, for tag searches.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) | Value::Json(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn snapshots(e: &Entry, own: &Arc<Process>) -> Vec<SpanSnapshot> {
    let mut scratch = AttrScratch::default();
    let mut out: Vec<SpanSnapshot> = e
        .spans
        .iter()
        .map(|s| s.snapshot(own, &mut scratch))
        .collect();
    out.sort_by_key(|s| s.start_us);
    out
}

/// The top tracegate SERVER span of a trace: one whose parent is not in the trace, the earliest
/// if there are several.
fn top_server(spans: &[Stored]) -> Option<&SpanRecord> {
    let ids: HashSet<SpanId> = spans.iter().map(Stored::span_id).collect();
    spans
        .iter()
        .filter_map(|s| match s {
            Stored::Own(r) if matches!(r.body, SpanBody::Server(_)) => Some(r),
            _ => None,
        })
        .filter(|r| r.parent.is_none_or(|p| !ids.contains(&p)))
        .min_by_key(|r| r.start)
}

/// The route of a tracegate SERVER span (`-` when none matched).
fn route_of(r: &SpanRecord) -> Arc<str> {
    match &r.body {
        SpanBody::Server(s) => s.route.clone().unwrap_or_else(|| Arc::from(NO_ROUTE)),
        SpanBody::Client(_) => Arc::from(NO_ROUTE),
    }
}

/// A trace's duration: its top SERVER span's, or from its first span's start to its last
/// span's end without one.
fn duration_of(spans: &[Stored], top: Option<&SpanRecord>) -> u64 {
    if let Some(r) = top {
        let (a, b) = span::record_times_us(r);
        return b - a;
    }
    let start = spans.iter().map(|s| s.times_us().0).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.times_us().1).max().unwrap_or(0);
    end - start
}

/// What the reserves judge a leaving trace by: its route, whether a span failed, and its
/// duration, read as [`summarize`] reads them, without the rest of the summary.
fn outcome(e: &Entry) -> (Option<Arc<str>>, bool, u64) {
    let top = top_server(&e.spans);
    (
        top.map(route_of),
        e.spans.iter().any(Stored::is_error),
        duration_of(&e.spans, top),
    )
}

fn summarize(trace_id: TraceId, e: &Entry, own: &Process) -> TraceSummary {
    let start_us = e.spans.iter().map(|s| s.times_us().0).min().unwrap_or(0);
    let mut services: Vec<String> = Vec::new();
    for s in &e.spans {
        let name = s.service(own);
        if !services.iter().any(|x| x == name) {
            services.push(name.to_owned());
        }
    }
    let error = e.spans.iter().any(Stored::is_error);
    let top = top_server(&e.spans);
    let (route, method, status, duration_us, attempts, name) = match top {
        Some(r) => {
            let SpanBody::Server(s) = &r.body else {
                unreachable!("top_server returns SERVER spans")
            };
            let attempts = e
                .spans
                .iter()
                .filter(|x| {
                    matches!(x, Stored::Own(c) if matches!(c.body, SpanBody::Client(_)) && c.parent == Some(r.span_id))
                })
                .count();
            (
                Some(route_of(r)),
                Some(s.method.as_str().to_owned()),
                (s.status > 0).then_some(s.status),
                duration_of(&e.spans, Some(r)),
                attempts,
                r.name(),
            )
        }
        None => {
            let ids: HashSet<SpanId> = e.spans.iter().map(Stored::span_id).collect();
            let root = e
                .spans
                .iter()
                .filter(|s| s.parent().is_none_or(|p| !ids.contains(&p)))
                .min_by_key(|s| s.times_us().0);
            (
                None,
                None,
                None,
                duration_of(&e.spans, None),
                0,
                root.map(|s| s.name().into_owned()).unwrap_or_default(),
            )
        }
    };
    TraceSummary {
        trace_id,
        start_us,
        route,
        method,
        status,
        duration_us,
        attempts,
        error,
        spans: e.spans.len(),
        services,
        name,
        place: e.place,
    }
}

impl Inner {
    fn count(&mut self, route: Arc<str>, error: bool, duration_us: u64) {
        let key = if self.routes.len() >= MAX_ROUTES && !self.routes.contains_key(&route) {
            Arc::from("(other)")
        } else {
            route
        };
        let c = self.routes.entry(key).or_default();
        c.count += 1;
        if error {
            c.errors += 1;
        }
        c.buckets[bucket_of(duration_us)] += 1;
    }

    /// Adds a span, holding `extra` bytes besides its own (a resource it brought).
    fn insert(&mut self, s: Stored, extra: usize) {
        let id = s.trace_id();
        let bytes = s.bytes() + extra;
        match self.traces.get_mut(&id) {
            Some(e) => {
                if e.spans.len() >= MAX_SPANS_PER_TRACE {
                    self.dropped_spans += 1;
                    return;
                }
                e.spans.push(s);
                e.bytes += bytes;
                self.bytes += bytes;
            }
            None => {
                self.seq += 1;
                self.traces.insert(
                    id,
                    Entry {
                        spans: vec![s],
                        bytes: bytes + TRACE_OVERHEAD,
                        seq: self.seq,
                        place: Place::Ring,
                        route: None,
                    },
                );
                self.ring.push_back(id);
                self.bytes += bytes + TRACE_OVERHEAD;
            }
        }
        self.spans += 1;
    }

    /// Brings the store back within its limits.
    fn enforce(&mut self, settings: &StoreSettings) {
        while self.ring.len() > settings.max_traces {
            if let Some(id) = self.ring.pop_front() {
                self.retire(id, settings);
            }
        }
        while self.bytes > settings.max_bytes {
            if let Some(id) = self.ring.pop_front() {
                self.retire(id, settings);
            } else if let Some(id) = self.errors.pop_front() {
                self.drop_trace(id);
            } else if let Some(id) = self.pop_fastest_slow() {
                self.drop_trace(id);
            } else {
                break;
            }
        }
    }

    /// A trace leaves the ring: into a reserve if it qualifies, else dropped.
    fn retire(&mut self, id: TraceId, settings: &StoreSettings) {
        let Some(e) = self.traces.get_mut(&id) else {
            return;
        };
        let (route, error, duration_us) = outcome(e);
        let route = route.unwrap_or_else(|| Arc::clone(&self.no_route));
        e.route = Some(Arc::clone(&route));
        if error && settings.keep_errors > 0 {
            if self.errors.len() >= settings.keep_errors {
                self.evict_fair_error();
            }
            if let Some(e) = self.traces.get_mut(&id) {
                e.place = Place::Error;
            }
            self.errors.push_back(id);
            return;
        }
        if settings.keep_slow > 0
            && (self.slow.len() < MAX_ROUTES || self.slow.contains_key(&route))
        {
            let list = self.slow.entry(route).or_default();
            if list.len() < settings.keep_slow {
                list.push((duration_us, id));
            } else {
                let (i, &(fastest, _)) = list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (d, _))| *d)
                    .expect("a full list is not empty");
                if duration_us <= fastest {
                    self.drop_trace(id);
                    return;
                }
                let (_, out) = std::mem::replace(&mut list[i], (duration_us, id));
                self.drop_trace(out);
            }
            if let Some(e) = self.traces.get_mut(&id) {
                e.place = Place::Slow;
            }
            return;
        }
        self.drop_trace(id);
    }

    /// Makes room in the full error reserve: the oldest trace of the route with the most.
    fn evict_fair_error(&mut self) {
        let mut per_route: HashMap<&str, usize> = HashMap::new();
        for id in &self.errors {
            if let Some(r) = self.traces.get(id).and_then(|e| e.route.as_deref()) {
                *per_route.entry(r).or_default() += 1;
            }
        }
        let busiest = per_route
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(r, _)| r.to_owned());
        let pos = busiest
            .and_then(|r| {
                self.errors.iter().position(|id| {
                    self.traces.get(id).and_then(|e| e.route.as_deref()) == Some(r.as_str())
                })
            })
            .unwrap_or(0);
        if let Some(id) = self.errors.remove(pos) {
            self.drop_trace(id);
        }
    }

    /// Removes the fastest trace of the route with the most slow traces.
    fn pop_fastest_slow(&mut self) -> Option<TraceId> {
        let route = self
            .slow
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .max_by_key(|(_, l)| l.len())
            .map(|(r, _)| Arc::clone(r))?;
        let list = self.slow.get_mut(&route)?;
        let (i, _) = list.iter().enumerate().min_by_key(|(_, (d, _))| *d)?;
        let (_, id) = list.swap_remove(i);
        if list.is_empty() {
            self.slow.remove(&route);
        }
        Some(id)
    }

    fn drop_trace(&mut self, id: TraceId) {
        if let Some(e) = self.traces.remove(&id) {
            self.bytes -= e.bytes;
            self.spans -= e.spans.len();
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests;
