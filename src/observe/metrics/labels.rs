//! The fixed label values of the HTTP metrics, and the small integers a request's facts are
//! turned into for its series key. Everything here is a table lookup: no label text is built
//! for a request.

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use std::borrow::Cow;
use std::fmt::Write;

/// `http.request.method` values: the methods of RFC 9110 §9 and PATCH (RFC 5789), in the
/// semantic conventions' list; any other method is `_OTHER`, as they require, so a client
/// cannot create series by inventing methods.
pub(super) const METHODS: [&str; 10] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "_OTHER",
];

/// The index of `m` in [`METHODS`].
#[inline]
pub(super) fn method(m: &http::Method) -> u8 {
    match m.as_str() {
        "CONNECT" => 0,
        "DELETE" => 1,
        "GET" => 2,
        "HEAD" => 3,
        "OPTIONS" => 4,
        "PATCH" => 5,
        "POST" => 6,
        "PUT" => 7,
        "TRACE" => 8,
        _ => 9,
    }
}

/// `network.protocol.version` values, by [`version`].
pub(super) const VERSIONS: [&str; 5] = ["0.9", "1.0", "1.1", "2", "3"];

#[inline]
pub(super) fn version(v: http::Version) -> u8 {
    match v {
        http::Version::HTTP_09 => 0,
        http::Version::HTTP_10 => 1,
        http::Version::HTTP_2 => 3,
        http::Version::HTTP_3 => 4,
        _ => 2,
    }
}

/// `url.scheme` values, by whether the connection is TLS.
pub(super) fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// A series' labels, in the order they are written. Built once, when the series is created.
pub(super) type Labels = Vec<(&'static str, Cow<'static, str>)>;

/// `error.type` for a series: the failure's name when there is one, otherwise the status code
/// when it counts as an error (`error_from`: 500 for server metrics, 400 for client metrics,
/// as the HTTP span status rules), otherwise none (semconv `error.type`: "the status code
/// number, represented as a string" when no better class is known).
pub(super) fn error_label(
    error: Option<&'static str>,
    status: u16,
    error_from: u16,
) -> Option<Cow<'static, str>> {
    match error {
        Some(e) => Some(Cow::Borrowed(e)),
        None if status >= error_from => Some(Cow::Owned(status.to_string())),
        None => None,
    }
}

/// The exemplar of an observation from an exported request: the trace and span it leads to.
/// Kept as bytes and written as hex at scrape time. Names and values together take 63 of the
/// 128 characters OpenMetrics allows an exemplar's label set (OpenMetrics 1.0, "Exemplars").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceExemplar {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// Bytes as a lower-case hex label value (W3C Trace Context §3.2.2.3).
struct HexValue<'a>(&'a [u8]);

impl EncodeLabelValue for HexValue<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.iter().try_for_each(|b| write!(encoder, "{b:02x}"))
    }
}

impl EncodeLabelSet for TraceExemplar {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [
            ("trace_id", HexValue(&self.trace_id)),
            ("span_id", HexValue(&self.span_id)),
        ]
        .encode(encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_table() {
        // (method, label, why)
        let cases: &[(&str, &str, &str)] = &[
            ("GET", "GET", "a known method"),
            ("PATCH", "PATCH", "RFC 5789"),
            (
                "get",
                "_OTHER",
                "methods are case-sensitive (RFC 9110 §9.1)",
            ),
            ("PROPFIND", "_OTHER", "WebDAV is not in the list"),
            ("XYZZY", "_OTHER", "an invented method makes no series"),
        ];
        for (m, want, why) in cases {
            let m = http::Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(METHODS[usize::from(method(&m))], *want, "{why}");
        }
    }

    #[test]
    fn error_label_table() {
        // (error, status, error from, label, why)
        type Case<'a> = (Option<&'static str>, u16, u16, Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            (None, 200, 500, None, "success"),
            (None, 404, 500, None, "a 404 is no server error"),
            (
                None,
                404,
                400,
                Some("404"),
                "but a client error for a client",
            ),
            (None, 503, 500, Some("503"), "5xx: the status code"),
            (
                Some("timeout"),
                504,
                500,
                Some("timeout"),
                "a named failure wins",
            ),
            (
                Some("client_closed"),
                0,
                500,
                Some("client_closed"),
                "no response at all",
            ),
        ];
        for (e, status, from, want, why) in cases {
            assert_eq!(error_label(*e, *status, *from).as_deref(), *want, "{why}");
        }
    }
}
