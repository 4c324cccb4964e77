//! The tracing plugin's Pingora adapter: one function per `ProxyHttp` phase.
//!
//! Any Pingora proxy can trace its requests by keeping a [`RequestTrace`] in its `CTX` and
//! calling these from the matching phases (see `examples/embed.rs`):
//!
//! | phase                           | call                     |
//! |---------------------------------|--------------------------|
//! | `early_request_filter`          | [`start`] (or [`request_info`] + [`RequestTrace::start`]) |
//! | `upstream_peer`                 | [`RequestTrace::begin_attempt`] |
//! | `connected_to_upstream`         | [`connected`]            |
//! | `upstream_request_filter`       | [`inject`]               |
//! | `upstream_response_filter`      | [`upstream_response`]    |
//! | `upstream_response_body_filter` | [`upstream_body`]        |
//! | `response_filter` (and the proxy's own responses) | [`response`] |
//! | `fail_to_connect`, `error_while_proxy` | [`attempt_error`] |
//! | `logging`                       | [`finish`]               |

use super::request::{RequestInfo, RequestTrace, Tracer};
use crate::net::{request_authority, split_host_port};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::Digest;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource};
use std::borrow::Cow;

/// What [`RequestTrace::start`] needs, read from the downstream session: the request head, the
/// scheme (TLS or not), the host and port (the Host header, or the URI authority for HTTP/2),
/// the client's address and the local port.
pub fn request_info(session: &Session) -> RequestInfo<'_> {
    let req = session.req_header();
    let (host, host_port) = match request_authority(&req.headers, &req.uri).map(split_host_port) {
        Some((h, p)) => (Some(h), p),
        None => (None, None),
    };
    // Pingora fills `ssl_digest` for every TLS connection.
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    RequestInfo {
        method: &req.method,
        uri: &req.uri,
        version: req.version,
        headers: &req.headers,
        scheme: if tls { "https" } else { "http" },
        host,
        host_port,
        client_addr: session.client_addr().and_then(|a| a.as_inet()).copied(),
        local_port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port()),
    }
}

/// Starts the request's trace from the downstream request head (trust and sampling per the
/// tracer's options). Call it in `early_request_filter`, the first phase after the request
/// head has been read. A proxy that has already read these facts builds the [`RequestInfo`]
/// itself and calls [`RequestTrace::start`].
pub fn start(tracer: &Tracer, session: &Session) -> RequestTrace {
    RequestTrace::start(tracer, &request_info(session))
}

/// Records that the attempt has a connection; a new one's TCP connect time comes from the
/// connection digest (`timing_digest[0]`, the transport layer).
pub fn connected(trace: &mut RequestTrace, reused: bool, digest: Option<&Digest>) {
    trace.attempt_connected(reused, connect_duration(digest));
}

/// The TCP connect time of a connection, from its digest (`timing_digest[0]`, the transport
/// layer); `None` when the digest has none (a pooled connection keeps its first).
pub fn connect_duration(digest: Option<&Digest>) -> Option<std::time::Duration> {
    digest
        .and_then(|d| d.timing_digest.first())
        .and_then(|t| t.as_ref())
        .and_then(|t| t.establishment_duration)
}

/// Writes the trace context onto the request going upstream, in every configured format
/// (`telemetry.propagators`; by default `traceparent`, `tracestate` and `baggage`), replacing
/// what the client sent in those formats. Headers of formats that are not configured are left
/// alone. Uses `insert_header` so Pingora's header-case map stays consistent.
pub fn inject(trace: &RequestTrace, upstream_request: &mut RequestHeader) -> pingora::Result<()> {
    let mut result = Ok(());
    trace.upstream_edits(|name, value| {
        if result.is_err() {
            return;
        }
        match value {
            None => {
                upstream_request.remove_header(name);
            }
            Some(v) => result = upstream_request.insert_header(name.clone(), v),
        }
    });
    result
}

/// Records the response headers on the capture allowlist, then adds the response headers the
/// tracer's options ask for (`traceresponse`, a trace-id header) to a response going
/// downstream, replacing any an upstream sent. Call it in `response_filter`, and wherever the
/// proxy writes its own responses.
pub fn response(
    trace: &mut RequestTrace,
    tracer: &Tracer,
    resp: &mut ResponseHeader,
) -> pingora::Result<()> {
    trace.capture_response_headers(tracer.options(), &resp.headers);
    let mut result = Ok(());
    trace.response_headers(tracer.options(), |name, value| {
        if result.is_ok() {
            result = resp.insert_header(name.clone(), value).map(|_| ());
        }
    });
    result
}

/// Records the upstream response header (time to first byte, status, HTTP version).
pub fn upstream_response(trace: &mut RequestTrace, resp: &ResponseHeader) {
    trace.attempt_protocol(resp.version);
    trace.attempt_response(resp.status.as_u16());
}

/// Records the end of the upstream response body.
pub fn upstream_body(trace: &mut RequestTrace, end_of_stream: bool) {
    if end_of_stream {
        trace.attempt_done();
    }
}

/// Records a failed upstream attempt. `error.type` is Pingora's name of the error's type
/// (`ConnectRefused`, `ReadTimedout`, ...); a proxy with names of its own records the attempt
/// with [`RequestTrace::attempt_failed`].
pub fn attempt_error(trace: &mut RequestTrace, e: &Error) {
    trace.attempt_failed(Cow::Borrowed(e.etype().as_str()), e.to_string());
}

/// Ends the request's spans. `e` is the error Pingora passes to `logging`, if any (named as
/// in [`attempt_error`]); a proxy that keeps its own record of the outcome calls
/// [`RequestTrace::finish`] with it instead.
pub fn finish(trace: RequestTrace, tracer: &Tracer, session: &Session, e: Option<&Error>) {
    let mut trace = trace;
    if let Some(e) = e {
        if e.esource() == &ErrorSource::Upstream {
            attempt_error(&mut trace, e);
        }
    }
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let error_type = match e {
        Some(e) if status == 0 => Some(Cow::Borrowed(e.etype().as_str())),
        _ => None,
    };
    trace.finish(tracer, status, error_type);
}
