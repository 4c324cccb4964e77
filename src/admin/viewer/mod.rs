//! The trace viewer on the admin listener (on when `admin.traces` is set): recent traces from
//! the store ([`crate::trace::store`]), shown to a person and to trace tools.
//!
//! - `GET /traces`: the page (one self-contained HTML file, `page.html`: no CDN, no external
//!   font or script, held in by a Content-Security-Policy) with the trace list, its filters and
//!   the per-route overview; it renders from data embedded in the page, then refreshes from
//!   `GET /traces/summary`.
//! - `GET /traces/{trace_id}`: the same page showing one trace: its waterfall, span details and
//!   the latency breakdown (`404` when the trace is not in memory).
//! - `GET /traces/summary?route=&status=&min_ms=&max_ms=&trace_id=&limit=`: the list as JSON.
//! - `/api/...`: the Jaeger-compatible query API ([`jaeger`]).
//! - `POST /v1/traces` (`admin.otlp_intake: true`): OTLP/HTTP spans, protobuf or JSON, gzip or
//!   not, from the services behind the proxy ([`intake`]).

mod intake;
pub(super) mod jaeger;

pub use intake::MAX_BODY as MAX_INTAKE_BODY;
pub(super) use intake::{answer as intake, too_large as intake_too_large};

use crate::trace::store::{
    bucket_of, StatusClass, SummaryFilter, TraceStore, TraceSummary, BUCKET_BOUNDS_US,
};
use bytes::Bytes;
use serde_json::{json, Value as Json};
use std::sync::Arc;

/// The page, with `__TG_DATA__` where its data goes.
const PAGE: &str = include_str!("page.html");
/// Traces the list shows when it names no limit, and at most.
const DEFAULT_LIST: usize = 200;
const MAX_LIST: usize = 1000;

/// What the viewer answers from.
#[derive(Debug)]
pub struct Viewer {
    pub store: Arc<TraceStore>,
    /// `POST /v1/traces` takes spans.
    pub otlp_intake: bool,
    /// `admin.trace_url`.
    pub trace_url: Option<String>,
}

/// A viewer answer: status, content type, body.
pub(super) type Answer = (http::StatusCode, &'static str, Bytes);

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

fn json_answer((status, v): (http::StatusCode, Json)) -> Answer {
    let mut body = serde_json::to_vec(&v).unwrap_or_default();
    body.push(b'\n');
    (status, JSON, Bytes::from(body))
}

/// Answers a GET or HEAD for a viewer path; `None` for a path the viewer does not have.
pub(super) fn answer(viewer: &Viewer, path: &str, query: Option<&str>) -> Option<Answer> {
    if path.starts_with("/api/") {
        return jaeger::answer(&viewer.store, path, query).map(json_answer);
    }
    match path {
        "/traces" | "/traces/" => {
            // The list as the address filters it (a link from the overview), so the first
            // paint already shows it; filters that do not parse are left to the refresh.
            let (f, limit) = filter(query).unwrap_or((SummaryFilter::default(), DEFAULT_LIST));
            Some(page(
                json!({"view": "list", "summary": summary(viewer, &f, limit)}),
                http::StatusCode::OK,
            ))
        }
        "/traces/summary" => Some(match filter(query) {
            Ok((f, limit)) => json_answer((http::StatusCode::OK, summary(viewer, &f, limit))),
            Err(m) => json_answer((http::StatusCode::BAD_REQUEST, json!({"error": m}))),
        }),
        _ => {
            let id = path.strip_prefix("/traces/")?;
            let id = jaeger::parse_trace_id(id).filter(|_| id.len() == 32)?;
            let spans = viewer.store.trace(&id);
            let status = if spans.is_some() {
                http::StatusCode::OK
            } else {
                http::StatusCode::NOT_FOUND
            };
            Some(page(
                json!({
                    "view": "trace",
                    "trace_id": id.to_hex(),
                    "trace": spans.map(|s| jaeger::trace_json(&s)),
                    "trace_url": viewer.trace_url,
                    "service": viewer.store.own_service(),
                }),
                status,
            ))
        }
    }
}

/// The page with `data` in it. `<` is escaped so that no string in the data can close the
/// script element it sits in.
fn page(data: Json, status: http::StatusCode) -> Answer {
    let text = serde_json::to_string(&data)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c");
    (
        status,
        HTML,
        Bytes::from(PAGE.replacen("__TG_DATA__", &text, 1)),
    )
}

/// The headers every viewer page carries: nothing but the page itself may load (no CDN, no
/// font, no script from elsewhere), and no other site may frame it.
pub(super) const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The list's filters and limit from the query string, or why they are invalid.
fn filter(query: Option<&str>) -> Result<(SummaryFilter, usize), String> {
    let mut f = SummaryFilter::default();
    let mut limit = DEFAULT_LIST;
    let ms = |k: &str, v: &str| -> Result<Option<u64>, String> {
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(|x| Some((x * 1000.0) as u64))
            .ok_or_else(|| format!("{k}={v:?}: expected milliseconds, e.g. 2.5"))
    };
    for (k, v) in params(query) {
        match k.as_str() {
            "route" if !v.is_empty() => f.route = Some(v),
            "status" if !v.is_empty() => {
                f.status = Some(StatusClass::parse(&v).ok_or_else(|| {
                    format!("status={v:?}: expected 1xx, 2xx, 3xx, 4xx, 5xx or error")
                })?)
            }
            "min_ms" => f.min_duration_us = ms("min_ms", &v)?,
            "max_ms" => f.max_duration_us = ms("max_ms", &v)?,
            "trace_id" if !v.is_empty() => {
                if v.len() > 32 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("trace_id={v:?}: expected hex digits"));
                }
                f.trace_id = Some(v)
            }
            "limit" if !v.is_empty() => {
                limit = v
                    .parse::<usize>()
                    .map_err(|_| format!("limit={v:?}: expected a number"))?
                    .clamp(1, MAX_LIST)
            }
            _ => {}
        }
    }
    Ok((f, limit))
}

fn bucket_label(i: usize) -> String {
    fn us(v: u64) -> String {
        match v {
            v if v >= 1_000_000 => format!("{}s", v / 1_000_000),
            v if v >= 1_000 => format!("{}ms", v / 1_000),
            v => format!("{v}µs"),
        }
    }
    match i {
        0 => format!("<{}", us(BUCKET_BOUNDS_US[0])),
        i if i == BUCKET_BOUNDS_US.len() => format!("≥{}", us(BUCKET_BOUNDS_US[i - 1])),
        i => format!(
            "{}–{}",
            us(BUCKET_BOUNDS_US[i - 1]),
            us(BUCKET_BOUNDS_US[i])
        ),
    }
}

/// The list, the overview and the store's usage, as the page reads them.
fn summary(viewer: &Viewer, f: &SummaryFilter, limit: usize) -> Json {
    let store = &viewer.store;
    let usage = store.usage();
    let settings = store.settings();
    let buckets: Vec<Json> = (0..=BUCKET_BOUNDS_US.len())
        .map(|i| {
            let min = if i == 0 { 0 } else { BUCKET_BOUNDS_US[i - 1] };
            let max = BUCKET_BOUNDS_US.get(i).copied();
            debug_assert_eq!(bucket_of(min), i);
            json!({"label": bucket_label(i), "min_ms": min as f64 / 1000.0,
                   "max_ms": max.map(|m| m as f64 / 1000.0)})
        })
        .collect();
    let routes: Vec<Json> = store
        .route_counts()
        .into_iter()
        .map(|(r, c)| json!({"route": r, "count": c.count, "errors": c.errors, "buckets": c.buckets}))
        .collect();
    let traces: Vec<Json> = store.summaries(f, limit).iter().map(trace_line).collect();
    json!({
        "service": store.own_service(),
        "trace_url": viewer.trace_url,
        "stored": {
            "traces": usage.traces, "spans": usage.spans, "bytes": usage.bytes,
            "max_traces": settings.max_traces, "max_bytes": settings.max_bytes,
            "reserved": usage.reserved, "evicted": usage.evicted,
            "dropped_spans": usage.dropped_spans, "intake": viewer.otlp_intake,
        },
        "buckets": buckets,
        "routes": routes,
        "traces": traces,
    })
}

fn trace_line(t: &TraceSummary) -> Json {
    json!({
        "trace_id": t.trace_id.to_hex(),
        "start_us": t.start_us,
        "route": t.route.as_deref(),
        "method": t.method,
        "status": t.status,
        "duration_us": t.duration_us,
        "attempts": t.attempts,
        "error": t.error,
        "spans": t.spans,
        "services": t.services,
        "name": t.name,
        "reserved": t.place.reserved(),
    })
}

/// The query string's parameters, percent-decoded (`+` is a space, as forms send it).
pub(super) fn params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A percent-decoded query or path component.
pub(super) fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// A percent-decoded path segment (`+` is itself).
pub(super) fn decode_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Now, in microseconds since the Unix epoch.
pub(super) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests;
