//! The tracing plugin's Pingora adapter: one function per `ProxyHttp` phase.
//!
//! Any Pingora proxy can trace its requests by keeping a [`RequestTrace`] in its `CTX` and
//! calling these from the matching phases (see `examples/embed.rs`):
//!
//! | phase                           | call                     |
//! |---------------------------------|--------------------------|
//! | `early_request_filter`          | [`start`]                |
//! | `upstream_peer`                 | [`RequestTrace::begin_attempt`] |
//! | `connected_to_upstream`         | [`connected`]            |
//! | `upstream_request_filter`       | [`inject`]               |
//! | `upstream_response_filter`      | [`upstream_response`]    |
//! | `upstream_response_body_filter` | [`upstream_body`]        |
//! | `response_filter` (and the proxy's own responses) | [`response`] |
//! | `fail_to_connect`, `error_while_proxy` | [`attempt_error`] |
//! | `logging`                       | [`finish`]               |

use super::request::{RequestInfo, RequestTrace, Tracer};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::Digest;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};
use std::borrow::Cow;

/// True when the downstream connection is TLS (the request's scheme is `https`).
pub fn downstream_is_tls(session: &Session) -> bool {
    digest_is_tls(session.digest())
}

/// A connection is TLS when its digest carries TLS details (Pingora fills `ssl_digest` for
/// every TLS connection, downstream and upstream).
fn digest_is_tls(digest: Option<&Digest>) -> bool {
    digest.is_some_and(|d| d.ssl_digest.is_some())
}

/// Starts the request's trace from the downstream request head (trust and sampling per the
/// tracer's options). Call it in `early_request_filter`, the first phase after the request
/// head has been read.
pub fn start(tracer: &Tracer, session: &Session) -> RequestTrace {
    let req = session.req_header();
    RequestTrace::start(
        tracer,
        &RequestInfo {
            method: &req.method,
            uri: &req.uri,
            version: req.version,
            headers: &req.headers,
            scheme: if downstream_is_tls(session) {
                "https"
            } else {
                "http"
            },
            client_addr: session.client_addr().and_then(|a| a.as_inet()).copied(),
            local_port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port()),
        },
    )
}

/// Records that the attempt has a connection; a new one's TCP connect time comes from the
/// connection digest (`timing_digest[0]`, the transport layer).
pub fn connected(trace: &mut RequestTrace, reused: bool, digest: Option<&Digest>) {
    let connect = digest
        .and_then(|d| d.timing_digest.first())
        .and_then(|t| t.as_ref())
        .and_then(|t| t.establishment_duration);
    trace.attempt_connected(reused, connect);
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

/// Records a failed upstream attempt.
pub fn attempt_error(trace: &mut RequestTrace, e: &Error) {
    trace.attempt_failed(Cow::Borrowed(error_type(e)), e.to_string());
}

/// Ends the request's spans. `e` is the error Pingora passes to `logging`, if any.
pub fn finish(trace: RequestTrace, tracer: &Tracer, session: &Session, e: Option<&Error>) {
    let mut trace = trace;
    if let Some(e) = e {
        if e.esource() == &ErrorSource::Upstream {
            attempt_error(&mut trace, e);
        }
    }
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let error_type = match e {
        Some(e) if status == 0 => Some(Cow::Borrowed(error_type(e))),
        _ => None,
    };
    trace.finish(tracer, status, error_type);
}

/// True when the error is a timeout (the proxy answers 504 for these).
pub fn is_timeout(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout
    )
}

/// The `error.type` value for a Pingora error: low-cardinality, stable names.
pub fn error_type(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => "timeout",
        ErrorType::ConnectRefused => "connection_refused",
        ErrorType::ConnectNoRoute => "no_route",
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
            "tls_error"
        }
        ErrorType::ConnectError | ErrorType::BindError | ErrorType::SocketError => "connect_error",
        ErrorType::ConnectionClosed => match e.esource() {
            ErrorSource::Downstream => "client_closed",
            _ => "connection_closed",
        },
        ErrorType::ReadError | ErrorType::WriteError => match e.esource() {
            ErrorSource::Downstream => "client_io_error",
            _ => "io_error",
        },
        ErrorType::InvalidHTTPHeader
        | ErrorType::H1Error
        | ErrorType::H2Error
        | ErrorType::InvalidH2 => "protocol_error",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::protocols::tls::SslDigest;
    use std::sync::Arc;

    /// The TLS branch, without a TLS listener: a digest with TLS details is TLS, one without
    /// (plain TCP) and none at all are not.
    #[test]
    fn tls_from_digest_table() {
        let plain = Digest::default();
        let tls = Digest {
            ssl_digest: Some(Arc::new(SslDigest::new(
                "TLS_AES_128_GCM_SHA256",
                "TLSv1.3",
                None,
                None,
                Vec::new(),
            ))),
            ..Digest::default()
        };
        // (digest, is TLS, reason)
        let cases = [
            (None, false, "no digest (e.g. a request built in a test)"),
            (Some(&plain), false, "plain TCP"),
            (Some(&tls), true, "TLS details present"),
        ];
        for (d, want, why) in cases {
            assert_eq!(digest_is_tls(d), want, "{why}");
        }
    }
}
