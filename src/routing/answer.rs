//! The proxy's own answers: a status, a plain-text body and the headers that go with them (a
//! redirect's `Location`).
//!
//! Every response the proxy writes itself is an [`Answer`]: a `respond` or `redirect` route,
//! the HTTPS redirect of a listener, 404 for no route, 400 for a request a route cannot handle,
//! and 502/504 for a failed upstream. One writer in the proxy puts any of them on the wire,
//! with the route's `response_headers` edits and the trace response headers.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// A complete response of the proxy's own. The body is sent as `text/plain; charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// Headers besides `Content-Type` and `Content-Length`, which the writer sets.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Answer {
    /// `status` with this body.
    pub fn new(status: u16, body: Bytes) -> Answer {
        Answer {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// `status` with its standard text as the body: `404 Not Found\n`.
    pub fn status(status: u16) -> Answer {
        Answer::new(status, status_body(status))
    }

    /// A redirect to `location` with `status` (a 3xx) and its standard text.
    pub fn redirect(status: u16, location: HeaderValue) -> Answer {
        Answer::status(status).with_header(http::header::LOCATION, location)
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Answer {
        self.headers.push((name, value));
        self
    }
}

/// The body of an answer with this status: `404 Not Found\n`.
pub fn status_body(code: u16) -> Bytes {
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("Error");
    Bytes::from(format!("{code} {reason}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_table() {
        let loc = HeaderValue::from_static("https://a.test/");
        // (answer, status, body, headers, reason)
        let cases = [
            (
                Answer::status(404),
                404,
                "404 Not Found\n",
                vec![],
                "the standard text",
            ),
            (
                Answer::status(599),
                599,
                "599 Error\n",
                vec![],
                "a status without a standard reason",
            ),
            (
                Answer::redirect(308, loc.clone()),
                308,
                "308 Permanent Redirect\n",
                vec![(http::header::LOCATION, loc)],
                "a redirect carries its Location",
            ),
            (
                Answer::new(200, Bytes::from_static(b"hi")),
                200,
                "hi",
                vec![],
                "a body of its own",
            ),
        ];
        for (a, status, body, headers, why) in cases {
            assert_eq!(a.status, status, "{why}");
            assert_eq!(a.body, body.as_bytes(), "{why}");
            assert_eq!(a.headers, headers, "{why}");
        }
    }
}
