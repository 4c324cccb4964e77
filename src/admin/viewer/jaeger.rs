//! The Jaeger-compatible query API: the shapes of Jaeger's HTTP query service (`/api/...`,
//! JSON `{"data": ...}`), so Grafana's Jaeger data source and the Jaeger UI read tracegate's
//! recent traces directly.
//!
//! - `GET /api/services` → `{"data": ["tracegate", ...]}`
//! - `GET /api/services/{service}/operations` → `{"data": ["GET api", ...]}`
//! - `GET /api/operations?service=&spanKind=` → `{"data": [{"name", "spanKind"}]}`
//! - `GET /api/traces?service=&operation=&tags=&minDuration=&maxDuration=&lookback=&start=&end=&limit=`
//! - `GET /api/traces/{trace_id}`
//!
//! Times are microseconds since the epoch and durations microseconds, as Jaeger has them; span
//! kinds, statuses and the instrumentation scope become the tags Jaeger's own OTLP translation
//! makes (`span.kind`, `otel.status_code`, `otel.status_description`, `error`,
//! `otel.scope.name`). An unknown trace is `404` with Jaeger's error shape.

use crate::trace::ids::TraceId;
use crate::trace::store::{
    Attribute, Process, SpanKind, SpanSnapshot, Status, TraceQuery, TraceStore, Value,
};
use serde_json::{json, Value as Json};
use std::sync::Arc;

/// Traces a search returns when it names no limit (Jaeger's UI asks for 20).
const DEFAULT_LIMIT: usize = 20;
/// The most a search returns.
const MAX_LIMIT: usize = 1500;

/// A JSON answer and its status.
pub(super) type Answer = (http::StatusCode, Json);

/// `{"data": …}` with Jaeger's envelope.
fn data(v: Json) -> Answer {
    (
        http::StatusCode::OK,
        json!({"data": v, "total": count(&v), "limit": 0, "offset": 0, "errors": null}),
    )
}

fn count(v: &Json) -> usize {
    v.as_array().map_or(0, Vec::len)
}

/// Jaeger's error shape.
pub(super) fn error(status: http::StatusCode, msg: &str) -> Answer {
    (
        status,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0,
               "errors": [{"code": status.as_u16(), "msg": msg}]}),
    )
}

/// Answers a `/api/...` request; `None` for a path the API does not have.
pub(super) fn answer(store: &TraceStore, path: &str, query: Option<&str>) -> Option<Answer> {
    let rest = path.strip_prefix("/api/")?;
    let params = super::params(query);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    Some(match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["services"] => data(json!(store.services())),
        ["services", service, "operations"] => {
            let service = super::decode_path(service);
            let names: Vec<String> = {
                let mut n: Vec<String> = store
                    .operations(&service)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                n.dedup();
                n
            };
            data(json!(names))
        }
        ["operations"] => {
            let Some(service) = param("service") else {
                return Some(error(
                    http::StatusCode::BAD_REQUEST,
                    "parameter 'service' is required",
                ));
            };
            let kind = param("spanKind").filter(|k| !k.is_empty());
            let ops: Vec<Json> = store
                .operations(service)
                .into_iter()
                .filter(|(_, k)| kind.is_none_or(|want| k.as_str() == want))
                .map(|(name, k)| json!({"name": name, "spanKind": k.as_str()}))
                .collect();
            data(Json::Array(ops))
        }
        ["traces"] => search(store, &params),
        ["traces", id] => match parse_trace_id(id) {
            None => error(
                http::StatusCode::BAD_REQUEST,
                &format!("cannot parse traceID {id:?}: expected up to 32 hex digits"),
            ),
            Some(id) => match store.trace(&id) {
                Some(spans) => data(json!([trace_json(&spans)])),
                None => error(http::StatusCode::NOT_FOUND, "trace not found"),
            },
        },
        _ => return None,
    })
}

/// A trace id as Jaeger writes it: up to 32 hex digits (Jaeger drops the leading zeros of a
/// 64-bit id). Not all zeros.
pub(super) fn parse_trace_id(s: &str) -> Option<TraceId> {
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{s:0>32}");
    let mut b = [0u8; 16];
    for (i, chunk) in padded.as_bytes().chunks(2).enumerate() {
        b[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    let id = TraceId(b);
    (!id.is_zero()).then_some(id)
}

fn search(store: &TraceStore, params: &[(String, String)]) -> Answer {
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let bad = |m: String| error(http::StatusCode::BAD_REQUEST, &m);
    // `traceID=…` (repeatable) asks for those traces, whatever the other parameters say.
    let ids: Vec<&str> = params
        .iter()
        .filter(|(n, _)| n == "traceID")
        .map(|(_, v)| v.as_str())
        .collect();
    if !ids.is_empty() {
        let mut out = Vec::new();
        for id in ids {
            let Some(t) = parse_trace_id(id) else {
                return bad(format!("cannot parse traceID {id:?}"));
            };
            if let Some(spans) = store.trace(&t) {
                out.push(trace_json(&spans));
            }
        }
        return data(Json::Array(out));
    }
    let Some(service) = param("service") else {
        return bad("parameter 'service' is required".into());
    };
    let duration = |k: &str| -> Result<Option<u64>, Answer> {
        match param(k) {
            None => Ok(None),
            Some(v) => parse_go_duration(v)
                .map(Some)
                .ok_or_else(|| bad(format!("cannot parse {k} {v:?}: expected e.g. 1.2s, 100ms"))),
        }
    };
    let number = |k: &str| -> Result<Option<u64>, Answer> {
        match param(k) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("cannot parse {k} {v:?}: expected a number"))),
        }
    };
    let (min, max) = match (duration("minDuration"), duration("maxDuration")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let (mut start, end, limit) = match (number("start"), number("end"), number("limit")) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    if start.is_none() {
        if let Some(l) = param("lookback").filter(|l| *l != "custom") {
            let Some(us) = parse_go_duration(l) else {
                return bad(format!("cannot parse lookback {l:?}: expected e.g. 1h, 2d"));
            };
            let now = super::now_us();
            start = Some(now.saturating_sub(us));
        }
    }
    let tags = match param("tags") {
        None => Vec::new(),
        Some(t) => match serde_json::from_str::<serde_json::Map<String, Json>>(t) {
            Ok(m) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Json::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
            Err(e) => return bad(format!("cannot parse tags: {e}")),
        },
    };
    let q = TraceQuery {
        service: Some(service.to_owned()),
        operation: param("operation").map(str::to_owned),
        min_duration_us: min,
        max_duration_us: max,
        start_us: start,
        end_us: end,
        tags,
        limit: limit.map_or(DEFAULT_LIMIT, |l| (l as usize).clamp(1, MAX_LIMIT)),
    };
    let traces: Vec<Json> = store.find(&q).iter().map(|t| trace_json(t)).collect();
    data(Json::Array(traces))
}

/// A Go duration (`time.ParseDuration`, as Jaeger reads `minDuration` and `lookback`), plus
/// `d` for days, in microseconds: `1.5s`, `100ms`, `10us`, `1h30m`.
pub(super) fn parse_go_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 0.001,
            "us" | "µs" | "μs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3600e6,
            "d" => 86_400e6,
            _ => return None,
        };
        total += n * scale;
        rest = next;
    }
    (0.0..1e18).contains(&total).then_some(total as u64)
}

fn tag(key: &str, v: &Value) -> Json {
    let (ty, value) = match v {
        Value::Str(s) | Value::Json(s) => ("string", json!(s)),
        Value::Int(i) => ("int64", json!(i)),
        Value::Bool(b) => ("bool", json!(b)),
        Value::F64(x) => ("float64", json!(x)),
        Value::Bytes(b) => (
            "string",
            json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        ),
    };
    json!({"key": key, "type": ty, "value": value})
}

fn str_tag(key: &str, v: &str) -> Json {
    json!({"key": key, "type": "string", "value": v})
}

fn tags(attrs: &[Attribute]) -> Vec<Json> {
    attrs.iter().map(|(k, v)| tag(k, v)).collect()
}

/// One trace in Jaeger's JSON model.
pub(super) fn trace_json(spans: &[SpanSnapshot]) -> Json {
    let mut processes: Vec<&Arc<Process>> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let pid = match processes
            .iter()
            .position(|p| Arc::ptr_eq(p, &s.process) || ***p == *s.process)
        {
            Some(i) => i,
            None => {
                processes.push(&s.process);
                processes.len() - 1
            }
        };
        let trace = s.trace_id.to_hex();
        let mut references = Vec::new();
        if let Some(p) = s.parent {
            // Kept when the parent is not in the trace (yet): Jaeger does the same.
            references.push(json!({"refType": "CHILD_OF", "traceID": trace, "spanID": p.to_hex()}));
        }
        for l in &s.links {
            references.push(
                json!({"refType": "FOLLOWS_FROM", "traceID": l.trace_id.to_hex(),
                                   "spanID": l.span_id.to_hex()}),
            );
        }
        let mut t = tags(&s.attributes);
        if s.kind != SpanKind::Unspecified {
            t.push(str_tag("span.kind", s.kind.as_str()));
        }
        match &s.status {
            Status::Unset => {}
            Status::Ok => t.push(str_tag("otel.status_code", "OK")),
            Status::Error(d) => {
                t.push(str_tag("otel.status_code", "ERROR"));
                if !d.is_empty() {
                    t.push(str_tag("otel.status_description", d));
                }
                t.push(json!({"key": "error", "type": "bool", "value": true}));
            }
        }
        if let Some((name, version)) = &s.scope {
            t.push(str_tag("otel.scope.name", name));
            if !version.is_empty() {
                t.push(str_tag("otel.scope.version", version));
            }
        }
        let logs: Vec<Json> = s
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![str_tag("event", &e.name)];
                fields.extend(tags(&e.attributes));
                json!({"timestamp": e.time_us, "fields": fields})
            })
            .collect();
        out.push(json!({
            "traceID": trace,
            "spanID": s.span_id.to_hex(),
            "flags": s.flags,
            "operationName": s.name,
            "references": references,
            "startTime": s.start_us,
            "duration": s.duration_us,
            "tags": t,
            "logs": logs,
            "processID": format!("p{}", pid + 1),
            "warnings": null,
        }));
    }
    let procs: serde_json::Map<String, Json> = processes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("p{}", i + 1),
                json!({"serviceName": p.service, "tags": tags(&p.tags)}),
            )
        })
        .collect();
    json!({
        "traceID": spans.first().map(|s| s.trace_id.to_hex()).unwrap_or_default(),
        "spans": out,
        "processes": procs,
        "warnings": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_table() {
        // (text, microseconds, why)
        let cases: &[(&str, Option<u64>, &str)] = &[
            ("1.5s", Some(1_500_000), "decimal seconds"),
            ("100ms", Some(100_000), "milliseconds"),
            ("10us", Some(10), "microseconds"),
            ("10µs", Some(10), "the micro sign"),
            ("1500ns", Some(1), "nanoseconds, rounded down"),
            ("1h30m", Some(5_400_000_000), "a compound duration"),
            ("2d", Some(172_800_000_000), "days, for lookback"),
            ("0", Some(0), "a bare zero"),
            ("", None, "empty"),
            ("10", None, "a number needs a unit"),
            ("1x", None, "an unknown unit"),
            ("-1s", None, "negative"),
        ];
        for (s, want, why) in cases {
            assert_eq!(parse_go_duration(s), *want, "{why}");
        }
    }

    #[test]
    fn trace_ids_as_jaeger_writes_them() {
        assert_eq!(
            parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").map(|t| t.to_hex()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".into())
        );
        assert_eq!(
            parse_trace_id("a3ce929d0e0e4736").map(|t| t.to_hex()),
            Some("0000000000000000a3ce929d0e0e4736".into()),
            "a 64-bit id without its leading zeros"
        );
        assert_eq!(parse_trace_id("0"), None, "all zeros");
        assert_eq!(parse_trace_id("xyz"), None);
        assert_eq!(parse_trace_id(&"a".repeat(33)), None);
    }
}
