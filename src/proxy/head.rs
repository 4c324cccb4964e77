//! Request-head strictness: what a request must carry before anything routes on it or sends
//! it on. Checked once per request, first thing in `request_filter`; a refused request gets
//! `400` through the one answer writer (so it is traced like the proxy's other answers), with
//! the reason in its body, and never reaches a backend.
//!
//! What Pingora refuses itself, before the proxy sees the request (with a bare `400` of its
//! own): a head it cannot parse, more than one Host line, user information in Host or in the
//! target, an absolute-form authority that differs from Host (stricter than RFC 9112 §3.2.2,
//! which would have Host ignored), framing it cannot trust; `CONNECT` gets `405`. Over HTTP/2
//! the `h2` crate and Pingora refuse malformed streams, a missing `:authority` (and Host), and
//! a Host that differs from `:authority` (RFC 9113 §8.3.1).
//!
//! What this module adds:
//! - **Host** (RFC 9112 §3.2, RFC 9110 §7.2): an HTTP/1.1 request carries exactly one Host; an
//!   HTTP/1.0 request may carry none. Whatever names the host (Host, `:authority`, or an
//!   absolute-form target) must be a valid `host[:port]` ([`crate::net::is_authority`]): not
//!   empty, no whitespace, list, path or user information, a port up to 65535.
//! - **Request target** (RFC 9112 §3.2): origin-form (`/path?query`); absolute-form
//!   (`http://host/path` or `https://…`, which a server MUST accept, §3.2.2; its authority
//!   names the host and it is sent on in origin-form); asterisk-form `*` for `OPTIONS` only
//!   (§3.2.4), which the proxy answers itself with `200` as a request about the server in
//!   general (RFC 9110 §9.3.7). Authority-form is for `CONNECT` only (§3.2.3). Over HTTP/2,
//!   `:path` is origin-form or `*` (RFC 9113 §8.3.1).

use crate::net::is_authority;
use crate::routing::Answer;
use bytes::Bytes;
use http::{header, Method, Version};
use pingora::http::RequestHeader;
use pingora::protocols::http::authority::{raw_target_authority, RawTargetAuthority};

/// The proxy's own answer to `req` when its head is refused (`400`) or is `OPTIONS *`
/// (`200`); `None` when the request goes on to the router.
pub(super) fn check(req: &RequestHeader) -> Option<Answer> {
    match verdict(req) {
        Ok(Form::Resource) => None,
        Ok(Form::Server) => Some(Answer::new(200, Bytes::new())),
        Err(reason) => {
            log::debug!(
                "bad request: 400 {} {:?}: {reason}",
                req.method,
                String::from_utf8_lossy(req.raw_path())
            );
            Some(Answer::new(
                400,
                Bytes::from(format!("400 Bad Request: {reason}\n")),
            ))
        }
    }
}

/// What an accepted request asks about.
#[derive(Debug, PartialEq, Eq)]
enum Form {
    /// A resource (origin-, absolute- or authority-form): it goes to the router.
    Resource,
    /// The server in general (`OPTIONS *`).
    Server,
}

/// The head's verdict: the form it asks in, or why it is refused.
fn verdict(req: &RequestHeader) -> Result<Form, &'static str> {
    let form = target_form(req)?;
    host(req)?;
    Ok(form)
}

/// The request target's form (RFC 9112 §3.2; RFC 9113 §8.3.1 for HTTP/2's `:path`).
fn target_form(req: &RequestHeader) -> Result<Form, &'static str> {
    let raw = req.raw_path();
    if raw.first() == Some(&b'/') {
        return Ok(Form::Resource);
    }
    if raw == b"*" {
        return if req.method == Method::OPTIONS {
            Ok(Form::Server)
        } else {
            Err("the asterisk-form target * is only for OPTIONS")
        };
    }
    if req.method == Method::CONNECT {
        // Authority-form; Pingora answers CONNECT with 405 before this runs unless
        // CONNECT proxying is turned on, and checks its authority then.
        return Ok(Form::Resource);
    }
    if req.version == Version::HTTP_2 {
        return Err("the :path is not a path");
    }
    match raw_target_authority(raw) {
        RawTargetAuthority::Absolute {
            scheme,
            authority,
            path_and_query,
        } => {
            if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
                return Err("an absolute-form target must be an http or https URI");
            }
            if !std::str::from_utf8(authority).is_ok_and(is_authority) {
                return Err("the authority of the absolute-form target is not a valid host[:port]");
            }
            if !(path_and_query.is_empty() || matches!(path_and_query[0], b'/' | b'?')) {
                return Err("the absolute-form target has no path");
            }
            Ok(Form::Resource)
        }
        RawTargetAuthority::AmbiguousAuthority => {
            Err("the absolute-form target's authority is ambiguous")
        }
        RawTargetAuthority::None => {
            Err("the request target is not a path (authority-form is only for CONNECT)")
        }
    }
}

/// The Host rules (RFC 9112 §3.2, RFC 9110 §7.2, RFC 9113 §8.3.1).
fn host(req: &RequestHeader) -> Result<(), &'static str> {
    let mut hosts = req.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err("more than one Host header"),
        (Some(h), None) => match h.to_str() {
            Ok(h) if is_authority(h) => Ok(()),
            _ if h.is_empty() => Err("the Host header is empty"),
            _ => Err("the Host header is not a valid host[:port]"),
        },
        (None, _) => match req.version {
            Version::HTTP_2 => match req.uri.authority() {
                Some(a) if is_authority(a.as_str()) => Ok(()),
                Some(_) => Err("the :authority is not a valid host[:port]"),
                None => Err("the request has neither :authority nor Host"),
            },
            Version::HTTP_11 => Err("an HTTP/1.1 request must carry a Host header"),
            // HTTP/1.0 (and 0.9) may leave Host out; an absolute-form authority was
            // checked with the target.
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, version: Version, hosts: &[&str]) -> RequestHeader {
        let mut req = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        req.set_version(version);
        for h in hosts {
            req.append_header(header::HOST, *h).unwrap();
        }
        req
    }

    #[test]
    fn verdict_table() {
        const HTTP_10: Version = Version::HTTP_10;
        const HTTP_11: Version = Version::HTTP_11;
        // (method, target, version, Host lines, verdict, reason)
        type Case<'a> = (
            &'a str,
            &'a str,
            Version,
            &'a [&'a str],
            Result<Form, ()>,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                "GET",
                "/",
                HTTP_11,
                &["a.test"],
                Ok(Form::Resource),
                "plain",
            ),
            ("GET", "/", HTTP_11, &[], Err(()), "HTTP/1.1 needs Host"),
            (
                "GET",
                "/",
                HTTP_10,
                &[],
                Ok(Form::Resource),
                "HTTP/1.0 need not",
            ),
            (
                "GET",
                "/",
                HTTP_10,
                &["a b"],
                Err(()),
                "but a Host it sends is valid",
            ),
            ("GET", "/", HTTP_11, &[""], Err(()), "empty Host"),
            ("GET", "/", HTTP_11, &["a", "a"], Err(()), "two Host lines"),
            ("GET", "/", HTTP_11, &["a.test:1:2"], Err(()), "two ports"),
            ("GET", "*", HTTP_11, &["a"], Err(()), "* is for OPTIONS"),
            (
                "OPTIONS",
                "*",
                HTTP_11,
                &["a"],
                Ok(Form::Server),
                "OPTIONS *",
            ),
            (
                "OPTIONS",
                "*",
                HTTP_11,
                &[],
                Err(()),
                "OPTIONS * still needs Host",
            ),
            (
                "GET",
                "http://a/x",
                HTTP_11,
                &["a"],
                Ok(Form::Resource),
                "absolute",
            ),
            (
                "GET",
                "https://a",
                HTTP_11,
                &["a"],
                Ok(Form::Resource),
                "no path: /",
            ),
            (
                "GET",
                "http://a?q",
                HTTP_11,
                &["a"],
                Ok(Form::Resource),
                "a query",
            ),
            (
                "GET",
                "http://a/x",
                HTTP_10,
                &[],
                Ok(Form::Resource),
                "1.0 absolute",
            ),
            (
                "GET",
                "http://a b/x",
                HTTP_10,
                &[],
                Err(()),
                "bad target authority",
            ),
            (
                "GET",
                "http:///x",
                HTTP_10,
                &[],
                Err(()),
                "empty target authority",
            ),
            ("GET", "ws://a/x", HTTP_11, &["a"], Err(()), "not http(s)"),
            ("GET", "a:80", HTTP_11, &["a:80"], Err(()), "authority-form"),
            (
                "CONNECT",
                "a:443",
                HTTP_11,
                &["a:443"],
                Ok(Form::Resource),
                "CONNECT",
            ),
            ("GET", "x", HTTP_11, &["a"], Err(()), "no form at all"),
        ];
        for (method, target, version, hosts, want, why) in cases {
            let got = verdict(&request(method, target, *version, hosts));
            assert_eq!(got.map_err(|_| ()), *want, "{why}");
        }
    }

    #[test]
    fn http2_authority_table() {
        // (URI as Pingora builds it from the pseudo-headers, Host, verdict ok, reason)
        let cases: &[(&str, Option<&str>, bool, &str)] = &[
            ("http://a.test/x", None, true, ":authority alone"),
            ("/x", Some("a.test"), true, "Host alone"),
            ("/x", None, false, "neither"),
            ("http://a.test:99999/x", None, false, "a port beyond 65535"),
            ("http://a!b/x", None, false, "not a host name"),
            ("*", None, false, "* for GET"),
        ];
        for (uri, host, ok, why) in cases {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.set_uri(uri.parse().unwrap());
            req.set_version(Version::HTTP_2);
            if let Some(h) = host {
                req.append_header(header::HOST, *h).unwrap();
            }
            assert_eq!(verdict(&req).is_ok(), *ok, "{why}");
        }
    }

    #[test]
    fn answers() {
        let refused = check(&request("GET", "/", Version::HTTP_11, &[])).unwrap();
        assert_eq!(refused.status, 400);
        assert!(std::str::from_utf8(&refused.body).unwrap().contains("Host"));
        let options = check(&request("OPTIONS", "*", Version::HTTP_11, &["a"])).unwrap();
        assert_eq!((options.status, options.body.len()), (200, 0));
        assert!(check(&request("GET", "/", Version::HTTP_11, &["a"])).is_none());
    }
}
