//! The end of a request (`logging`, which runs for every request however it ended): its
//! [`Exchange`] is built once, from the context and the response written, and handed to each
//! consumer: the error line of an upstream failure, the metrics, the access log and the end of
//! the request's spans.

use super::{errors, RequestCtx};
use crate::exchange::{Exchange, Failure, TraceRef, UpstreamPart};
use crate::observe;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource};
use std::borrow::Cow;
use std::time::Instant;

/// Builds the request's record and hands it to its consumers.
pub(super) fn finish(session: &Session, ctx: &mut RequestCtx, e: Option<&Error>) {
    let Some(mut trace) = ctx.trace.take() else {
        return;
    };
    let req = session.req_header();
    let now = Instant::now();
    // An attempt still open ended with the request: failed when the request failed upstream.
    if let Some(a) = ctx.attempts.last_mut().filter(|a| a.ended.is_none()) {
        match e.filter(|e| e.esource() == &ErrorSource::Upstream) {
            Some(e) => a.failed(errors::error_type(e)),
            None => a.ended = Some(now),
        }
    }
    let x = Exchange {
        downstream: &ctx.downstream,
        method: &req.method,
        path: req.uri.path(),
        query: req.uri.query(),
        version: req.version,
        user_agent: req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        referer: req
            .headers
            .get(http::header::REFERER)
            .and_then(|v| v.to_str().ok()),
        start: ctx.started.0,
        duration: now.saturating_duration_since(ctx.started.1),
        request_body_bytes: session.body_bytes_read() as u64,
        response_body_bytes: session.body_bytes_sent() as u64,
        attempts: &ctx.attempts,
        route: ctx.route().map(|r| &*r.name),
        middleware: ctx.mw.answered_by.as_deref(),
        auth: ctx.mw.auth_time,
        status: session.response_written().map_or(0, |r| r.status.as_u16()),
        upstream: ctx.upstream().map(|u| UpstreamPart {
            name: u.pool.name.clone(),
        }),
        failure: e.map(|e| Failure {
            error_type: errors::error_type(e),
            upstream: e.esource() == &ErrorSource::Upstream,
            message: e,
        }),
        trace: Some(TraceRef {
            trace_id: trace.trace_id().0,
            span_id: trace.span_id().0,
            sampled: trace.is_sampled(),
        }),
    };
    observe::upstream_failure(&x);
    observe::metrics::record(ctx.gateway.metrics.as_ref(), ctx.route, &x);
    if let Some(log) = &ctx.gateway.access_log {
        log.record(&x);
    }
    // The SERVER span ends with the record's outcome; an upstream failure also ends the
    // attempt that was open.
    if let Some(f) = x.failure.filter(|f| f.upstream) {
        trace.attempt_failed(Cow::Borrowed(f.error_type), f.message.to_string());
    }
    let error_type = x.unanswered_error().map(Cow::Borrowed);
    trace.finish(&ctx.gateway.tracer, x.status, error_type);
}
