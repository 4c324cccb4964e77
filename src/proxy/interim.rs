//! Upstream interim (1xx) responses: how many a request may get, which go on to the client,
//! and how long the proxy waits for the final response.
//!
//! Pingora reads an HTTP/1 backend's 1xx heads one by one, calls `upstream_response_filter`
//! for each, passes each to the client, and restarts its per-read `read_timeout` on each: a
//! backend streaming `100 Continue` kept a request alive, and the client busy, for as long as
//! it liked. Here, per request:
//! - At most [`MAX_INTERIM`] interim responses; the next one fails the attempt with
//!   [`errors::TOO_MANY_INTERIM`] (`error.type` `too_many_interim_responses`, `502`).
//! - The pool's `read_timeout` bounds the wait for the final response from the moment the
//!   request head was sent: an interim response that arrives later than that fails the
//!   attempt as a read timeout (`504`). Interim responses do not restart it; the check runs
//!   when one arrives, so the final wait is at most one more `read_timeout` after the last.
//! - `100 Continue` reaches the client only when it sent `Expect: 100-continue` (RFC 9110
//!   §10.1.1); other 1xx (`103 Early Hints`) are passed on; an HTTP/1.0 client gets none
//!   (RFC 9110 §15.2: a server MUST NOT send it a 1xx). Pingora drops them all for HTTP/2
//!   clients. Pingora writes the heads of one batch with one drop setting, so once a
//!   `100 Continue` the client did not ask for is seen, the later 1xx of the request are
//!   dropped too: a 1xx is only a hint, an unasked `100` is not to be sent.
//! - `101 Switching Protocols` is a final response (an upgrade), not counted.
//!
//! An HTTP/2 backend's 1xx never reach the proxy's hooks: the `h2` client skips them, and
//! Pingora's `read_timeout` there covers the whole wait for the response head.

use super::errors;
use http::{header, StatusCode, Version};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use std::time::{Duration, Instant};

/// Interim responses a request may get from its backend; one more fails the attempt.
pub(super) const MAX_INTERIM: u32 = 5;

/// The interim responses of one request, and the current attempt's deadline for its final one.
#[derive(Debug, Default)]
pub(super) struct Interim {
    /// Interim responses received, over all attempts.
    count: u32,
    /// The current attempt's `read_timeout`.
    read_timeout: Option<Duration>,
    /// When the current attempt's request head went upstream.
    sent: Option<Instant>,
    /// A `100 Continue` the client did not ask for was seen: no 1xx goes to the client from
    /// here on.
    unasked_continue: bool,
}

impl Interim {
    /// A new attempt whose reads are bounded by `read_timeout`.
    pub(super) fn attempt(&mut self, read_timeout: Option<Duration>) {
        self.read_timeout = read_timeout;
        self.sent = None;
    }

    /// The attempt's request head is going upstream now.
    pub(super) fn sent(&mut self) {
        self.sent = Some(Instant::now());
    }
}

/// True for an interim response: 1xx other than `101 Switching Protocols`, which ends the
/// response (an upgrade).
pub(super) fn is_interim(head: &ResponseHeader) -> bool {
    head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS
}

/// Handles an upstream response head. `Ok(true)`: it is an interim response, within the
/// limits, and whether it reaches the client is settled; `Ok(false)`: the final response;
/// `Err`: the attempt fails (too many interim responses, or the final one is late).
pub(super) fn head(
    session: &mut Session,
    state: &mut Interim,
    head: &ResponseHeader,
) -> pingora::Result<bool> {
    if !is_interim(head) {
        return Ok(false);
    }
    state.count += 1;
    if state.count > MAX_INTERIM {
        return Err(Error::explain(
            errors::TOO_MANY_INTERIM,
            format!(
                "more than {MAX_INTERIM} interim (1xx) responses, the last {}",
                head.status.as_u16()
            ),
        )
        .into_up());
    }
    if let (Some(sent), Some(limit)) = (state.sent, state.read_timeout) {
        if sent.elapsed() >= limit {
            return Err(Error::explain(
                ErrorType::ReadTimedout,
                format!(
                    "no final response within read_timeout {limit:?} of sending the request \
                     ({} interim responses)",
                    state.count
                ),
            )
            .into_up());
        }
    }
    let req = session.req_header();
    let asked = req.version == Version::HTTP_11
        && req
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if head.status == StatusCode::CONTINUE && !asked {
        state.unasked_continue = true;
    }
    let http10 = req.version < Version::HTTP_11;
    // Pingora's setting drops every 1xx but `101` and a `100` answering `Expect`.
    session.set_ignore_info_resp(http10 || state.unasked_continue);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interim_or_final_table() {
        // (status, interim, reason)
        let cases = [
            (100, true, "Continue"),
            (102, true, "Processing"),
            (103, true, "Early Hints"),
            (101, false, "Switching Protocols ends the response"),
            (200, false, "a final response"),
            (404, false, "a final error"),
        ];
        for (status, want, why) in cases {
            let head = ResponseHeader::build(status, None).unwrap();
            assert_eq!(is_interim(&head), want, "{why}");
        }
    }
}
