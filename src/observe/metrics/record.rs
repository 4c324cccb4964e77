//! Recording one finished request: its `http_server_request_duration_seconds` observation, one
//! `http_client_request_duration_seconds` observation per upstream attempt, and its retries.

use super::labels;
use super::{histogram, ClientKey, Resolved, ServerKey, TraceExemplar, NO_ROUTE};
use crate::exchange::Exchange;

/// Records `x`, the request that `resolved`'s route `route` (an index in the router) matched.
/// Does nothing without metrics (no admin listener).
///
/// Cost: a series lookup per observation (one hash of a few integers in a map read without a
/// lock) and the histogram's own update; no allocation and no text once a series exists.
pub fn record(resolved: Option<&Resolved>, route: Option<usize>, x: &Exchange<'_>) {
    let Some(r) = resolved else {
        return;
    };
    let m = r.metrics;
    let handles = route.and_then(|i| r.routes.get(i));
    let method = labels::method(x.method);
    // Exemplars only from exported requests: an exemplar must open a trace the backend has.
    let trace = x.trace.filter(|t| t.sampled && m.exemplars);
    let at = Some(x.start + x.duration);
    let key = ServerKey {
        route: handles.map_or(NO_ROUTE, |h| h.route),
        method,
        status: x.status,
        tls: x.downstream.tls,
        version: labels::version(x.version),
        error: x.unanswered_error(),
    };
    m.server.with(
        &key,
        || (m.server_labels(&key), histogram()),
        histogram,
        |h| {
            let exemplar = trace.map(|t| TraceExemplar {
                trace_id: t.trace_id,
                span_id: t.span_id,
            });
            h.observe(x.duration.as_secs_f64(), exemplar, at);
        },
    );
    let Some(upstream) = handles.and_then(|h| h.upstream.as_ref()) else {
        return;
    };
    if x.attempts.len() > 1 {
        upstream.retries.inc_by(x.attempts.len() as u64 - 1);
    }
    for a in x.attempts {
        let key = ClientKey {
            upstream: upstream.id,
            backend: Some(a.backend),
            method,
            status: a.status.unwrap_or(0),
            error: a.error_type,
        };
        m.client.with(
            &key,
            || (m.client_labels(&key), histogram()),
            histogram,
            |h| {
                let exemplar = trace.zip(a.span_id).map(|(t, span_id)| TraceExemplar {
                    trace_id: t.trace_id,
                    span_id,
                });
                // Every attempt is closed by the time the request ends.
                let d = a.duration().unwrap_or_default();
                h.observe(d.as_secs_f64(), exemplar, at);
            },
        );
    }
}
