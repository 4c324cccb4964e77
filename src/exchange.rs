//! The per-request record: what a request was ([`Downstream`], the facts about the connection
//! and the request head, read once) and how it ended ([`Exchange`]).
//!
//! A leaf of plain data. The proxy builds [`Downstream`] once, in its first phase
//! (`early_request_filter`), and hands it to routing, to the tracing plugin and to whatever
//! records the request; it builds the [`Exchange`] once, in its last phase (`logging`), and
//! hands it to every consumer of finished requests ([`crate::observe`], the tracing plugin's
//! end of the SERVER span). No consumer re-derives these facts from the Pingora session.

use crate::net::split_host_port;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Facts about the downstream connection and the request head, computed once per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Downstream {
    /// The connection is TLS (the request's scheme is `https`).
    pub tls: bool,
    /// The Host header, or the URI authority for HTTP/2 (which has no Host header), as
    /// received with its port; `None` when absent or not UTF-8.
    authority: Option<Box<str>>,
    /// Where the host ends in `authority` (the rest is `:port`).
    host_len: usize,
    /// The port written in `authority`, if one is there and valid.
    port: Option<u16>,
    /// The TCP peer (the client, or the last proxy before this one).
    pub client: Option<SocketAddr>,
    /// The local address the request arrived on (which listener).
    pub local: Option<SocketAddr>,
}

impl Downstream {
    /// The facts of one request: `authority` is the Host header (or the HTTP/2 authority).
    pub fn new(
        tls: bool,
        authority: Option<&str>,
        client: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Downstream {
        let (authority, host_len, port) = match authority.map(str::trim) {
            Some(a) => {
                let (host, port) = split_host_port(a);
                (Some(Box::<str>::from(a)), host.len(), port)
            }
            None => (None, 0, None),
        };
        Downstream {
            tls,
            authority,
            host_len,
            port,
            client,
            local,
        }
    }

    /// The Host header or HTTP/2 authority as received, port included.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// The request's host without its port (an IPv6 literal keeps its brackets), as received
    /// (not lower-cased); `None` when the request named none.
    pub fn host(&self) -> Option<&str> {
        self.authority.as_deref().map(|a| &a[..self.host_len])
    }

    /// The port written after the host, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The client's IP address (the TCP peer).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client.map(|a| a.ip())
    }
}

/// The trace a request belongs to, for records that lead to it (a log line, an exemplar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRef {
    pub trace_id: [u8; 16],
    /// The SERVER span's id.
    pub span_id: [u8; 8],
    /// The request's spans are exported.
    pub sampled: bool,
}

impl TraceRef {
    /// The trace id in lower-case hex (W3C Trace Context §3.2.2.3).
    pub fn trace_id(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }

    /// The SERVER span id in lower-case hex.
    pub fn span_id(&self) -> Hex<'_> {
        Hex(&self.span_id)
    }
}

/// Bytes written as lower-case hex, without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// How one request went upstream, when it was routed to an upstream. Its backends and their
/// outcomes are the exchange's [`Exchange::attempts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamPart {
    /// The upstream's name.
    pub name: Arc<str>,
}

/// One upstream attempt (the first try or a retry), timed by the proxy whether or not the
/// request is traced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The backend tried.
    pub backend: SocketAddr,
    /// When the attempt began (its backend was chosen).
    pub started: Instant,
    /// The TCP connect time of a new connection; `None` for a pooled one or before connecting.
    pub connect: Option<Duration>,
    /// From the start of the attempt to the final response head (time to first byte).
    pub ttfb: Option<Duration>,
    /// The final status the backend answered with (`None`: it did not answer).
    pub status: Option<u16>,
    /// Why the attempt failed, when it did (`error.type`).
    pub error_type: Option<&'static str>,
    /// When the attempt ended: its response read in full, or its failure. `None` while open
    /// (an exchange closes it when the request ends).
    pub ended: Option<Instant>,
    /// The attempt's CLIENT span, when the request is traced.
    pub span_id: Option<[u8; 8]>,
}

impl AttemptRecord {
    /// A new attempt to `backend`, starting now.
    pub fn begin(backend: SocketAddr, span_id: Option<[u8; 8]>) -> AttemptRecord {
        AttemptRecord {
            backend,
            started: Instant::now(),
            connect: None,
            ttfb: None,
            status: None,
            error_type: None,
            ended: None,
            span_id,
        }
    }

    /// The final response head arrived now; 1xx heads are interim and do not count
    /// (RFC 9110 §15.2), except 101 which ends the HTTP exchange.
    pub fn responded(&mut self, status: u16) {
        if self.ttfb.is_none() && (status >= 200 || status == 101) {
            self.ttfb = Some(self.started.elapsed());
            self.status = Some(status);
        }
    }

    /// The attempt ended now (its response read in full); a second call changes nothing.
    pub fn done(&mut self) {
        self.ended.get_or_insert_with(Instant::now);
    }

    /// The attempt failed now for `error_type` (the first failure is kept).
    pub fn failed(&mut self, error_type: &'static str) {
        self.error_type.get_or_insert(error_type);
        self.done();
    }

    /// From the start of the attempt to its end; `None` while it is open (every attempt of
    /// an exchange is closed).
    pub fn duration(&self) -> Option<Duration> {
        self.ended
            .map(|end| end.saturating_duration_since(self.started))
    }
}

/// Why a request failed, when it did.
#[derive(Clone, Copy)]
pub struct Failure<'a> {
    /// A short, stable name (`error.type`): `timeout`, `connection_refused`, `tls_error`, ...
    pub error_type: &'static str,
    /// The failure was the upstream's (an attempt failed for good), not the client's or the
    /// proxy's.
    pub upstream: bool,
    /// The error itself, for its message.
    pub message: &'a dyn std::fmt::Display,
}

impl std::fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failure")
            .field("error_type", &self.error_type)
            .field("upstream", &self.upstream)
            .field("message", &self.message.to_string())
            .finish()
    }
}

/// A finished request: built once when it ends, however it ended (proxied, answered by the
/// proxy itself, failed, or broken off by the client).
#[derive(Debug)]
pub struct Exchange<'a> {
    pub downstream: &'a Downstream,
    pub method: &'a http::Method,
    /// The request path without the query, as routed: normalised (`server.path`), or as
    /// received when it was refused.
    pub path: &'a str,
    /// The query as received (never changed by the proxy), without the `?`; raw, so a
    /// consumer that records it redacts it first.
    pub query: Option<&'a str>,
    /// The request's HTTP version (`network.protocol.version`).
    pub version: http::Version,
    /// The `User-Agent` header, when present and visible ASCII.
    pub user_agent: Option<&'a str>,
    /// The `Referer` header, when present and visible ASCII; raw like `query` (a consumer
    /// that records it redacts its query first).
    pub referer: Option<&'a str>,
    /// When the request head had been read (wall clock).
    pub start: SystemTime,
    /// From the request head read to the end of the request (the whole request).
    pub duration: Duration,
    /// Request body bytes read from the client (after de-chunking).
    pub request_body_bytes: u64,
    /// Response body bytes written to the client.
    pub response_body_bytes: u64,
    /// Every upstream attempt, in order (empty when the request was not proxied); the last
    /// is closed at the end of the request.
    pub attempts: &'a [AttemptRecord],
    /// The matched route's name (`http.route`).
    pub route: Option<&'a str>,
    /// The route middleware that answered the request itself, if one did.
    pub middleware: Option<&'a str>,
    /// The time spent in `forward_auth` calls, when the route made one.
    pub auth: Option<Duration>,
    /// The status written downstream; 0 when none was (the client went away, or the
    /// connection broke before a response).
    pub status: u16,
    pub upstream: Option<UpstreamPart>,
    pub failure: Option<Failure<'a>>,
    pub trace: Option<TraceRef>,
}

impl Exchange<'_> {
    /// The last upstream attempt, when there was one.
    pub fn last_attempt(&self) -> Option<&AttemptRecord> {
        self.attempts.last()
    }

    /// The `error.type` of a request that ended without a response, when there was an error.
    pub fn unanswered_error(&self) -> Option<&'static str> {
        match &self.failure {
            Some(f) if self.status == 0 => Some(f.error_type),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downstream_authority_table() {
        // (authority, host, port, reason)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<u16>, &'a str);
        let cases: &[Case] = &[
            (None, None, None, "no Host (HTTP/1.0)"),
            (
                Some("API.example.com:8443"),
                Some("API.example.com"),
                Some(8443),
                "case kept; the port split off",
            ),
            (Some("example.com"), Some("example.com"), None, "no port"),
            (Some("[::1]:80"), Some("[::1]"), Some(80), "IPv6 literal"),
            (Some(" a.test "), Some("a.test"), None, "whitespace trimmed"),
            (
                Some("a.test:x"),
                Some("a.test"),
                None,
                "a bad port is ignored",
            ),
            (Some(""), Some(""), None, "an empty Host is kept empty"),
        ];
        for (authority, host, port, why) in cases {
            let d = Downstream::new(false, *authority, None, None);
            assert_eq!(d.host(), *host, "{why}");
            assert_eq!(d.port(), *port, "{why}");
            assert_eq!(d.authority(), authority.map(str::trim), "{why}");
        }
    }

    #[test]
    fn attempt_record_keeps_the_final_response_and_the_first_failure() {
        let backend: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // (statuses seen, final status kept, reason)
        type Case<'a> = (&'a [u16], Option<u16>, &'a str);
        let cases: &[Case] = &[
            (
                &[],
                None,
                "no response head: no status, no time to first byte",
            ),
            (&[200], Some(200), "a plain response"),
            (
                &[100, 103, 204],
                Some(204),
                "1xx heads are interim (RFC 9110 §15.2)",
            ),
            (&[101], Some(101), "101 ends the HTTP exchange"),
            (
                &[502, 200],
                Some(502),
                "the first final head is the response",
            ),
        ];
        for (seen, want, why) in cases {
            let mut a = AttemptRecord::begin(backend, None);
            for s in *seen {
                a.responded(*s);
            }
            assert_eq!(a.status, *want, "{why}");
            assert_eq!(a.ttfb.is_some(), want.is_some(), "{why}");
        }
        let mut a = AttemptRecord::begin(backend, None);
        a.failed("timeout");
        a.failed("connection_refused");
        assert_eq!(
            a.error_type,
            Some("timeout"),
            "the first failure is the attempt's"
        );
        let end = a.ended.expect("a failure ends the attempt");
        a.done();
        assert_eq!(a.ended, Some(end), "a later end changes nothing");
        assert_eq!(
            a.duration(),
            Some(end - a.started),
            "a closed attempt keeps its length"
        );
    }

    #[test]
    fn trace_ids_print_as_lower_hex() {
        let t = TraceRef {
            trace_id: [0xab; 16],
            span_id: [0x0f; 8],
            sampled: false,
        };
        assert_eq!(t.trace_id().to_string(), "ab".repeat(16));
        assert_eq!(t.span_id().to_string(), "0f".repeat(8));
    }
}
