//! What a Pingora error means to the proxy: its stable `error.type` name (for spans, logs and
//! passive health), whether it is a timeout, and the status the client gets for it.

use pingora::{Error, ErrorSource, ErrorType};

/// A backend sent more interim (1xx) responses than a request may get (see `interim`).
pub const TOO_MANY_INTERIM: ErrorType = ErrorType::Custom("TooManyInterimResponses");

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

/// The `error.type` value for a Pingora error: low-cardinality, stable names (OpenTelemetry
/// semantic conventions, `error.type`: "a class of error the operation ended with").
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
        t if *t == TOO_MANY_INTERIM => "too_many_interim_responses",
        _ => "_OTHER",
    }
}

/// The status the client gets when its request failed for good: 504 for an upstream timeout,
/// 502 for any other upstream failure, 400 for a request the proxy could not read, an explicit
/// HTTP status as it is, 500 otherwise. 0: nothing can be sent (the client's connection broke).
pub fn status_for(e: &Error) -> u16 {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => *code,
        (_, ErrorSource::Upstream) if is_timeout(e) => 504,
        (_, ErrorSource::Upstream) => 502,
        (
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_type_table() {
        let up = |t: ErrorType| Error::new(t).into_up();
        let down = |t: ErrorType| Error::new(t).into_down();
        // (error, status, error.type, reason)
        let cases: Vec<(Box<Error>, u16, &str, &str)> = vec![
            (
                up(ErrorType::ConnectTimedout),
                504,
                "timeout",
                "connect timeout",
            ),
            (up(ErrorType::ReadTimedout), 504, "timeout", "read timeout"),
            (
                up(ErrorType::ConnectRefused),
                502,
                "connection_refused",
                "refused",
            ),
            (up(ErrorType::TLSHandshakeFailure), 502, "tls_error", "TLS"),
            (
                up(ErrorType::ConnectionClosed),
                502,
                "connection_closed",
                "backend hung up",
            ),
            (
                down(ErrorType::ConnectionClosed),
                0,
                "client_closed",
                "client went away",
            ),
            (
                down(ErrorType::ReadError),
                0,
                "client_io_error",
                "client read failed",
            ),
            (
                down(ErrorType::InvalidHTTPHeader),
                400,
                "protocol_error",
                "bad request head",
            ),
            (
                up(TOO_MANY_INTERIM),
                502,
                "too_many_interim_responses",
                "a backend streaming 1xx",
            ),
            (
                up(ErrorType::HTTPStatus(503)),
                503,
                "_OTHER",
                "an explicit status",
            ),
            (
                Error::new(ErrorType::InternalError),
                500,
                "_OTHER",
                "the proxy's own",
            ),
        ];
        for (e, status, kind, why) in cases {
            assert_eq!(status_for(&e), status, "{why}");
            assert_eq!(error_type(&e), kind, "{why}");
        }
    }
}
