//! Request filters: an ordered chain of middlewares that run on a request before it is answered
//! or proxied, each able to answer it (a redirect, a refusal) or let it pass.
//!
//! The shape follows River's request-filter chain and Pingora's `HttpModule`: filters run in
//! their configured order and the first one that answers ends the chain; the rest do not run.
//! A chain sits in two places:
//! - on each [`super::Route`] (`Route::filters`), run right after the route matched: the
//!   route's middlewares (rate limit, IP allow list, authentication, CORS, body limit come
//!   here);
//! - in front of the router, for filters that belong to the listener a request arrived on
//!   rather than to a route (Traefik's entry-point middlewares): today the HTTPS redirect of
//!   plain listeners (`listen[].redirect_https`), which answers every request on such a
//!   listener, matched by a route or not.
//!
//! A filter that changes the request instead of answering it (a header it adds upstream)
//! returns its edits through [`Verdict`] once one needs to; the chain and its callers keep
//! this signature.
//!
//! Pure code on the request head: no sockets, no Pingora types.

use super::answer::Answer;
use super::matching::{RequestHead, Scheme};
use super::redirect::{Redirect, RedirectRequest, RedirectTarget};
use super::rewrite::PathRewrite;
use crate::listeners::Redirects;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// The path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3), which the HTTPS redirect lets
/// through so a certificate can be obtained through the proxy.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What a filter sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct FilterRequest<'a> {
    pub head: RequestHead<'a>,
    /// The request target's path and query: the path normalised (see [`super::path`]), the
    /// query as received.
    pub path_and_query: &'a str,
    /// The local address the request arrived on (which listener).
    pub local: Option<SocketAddr>,
}

impl FilterRequest<'_> {
    /// The request as a redirect sees it (scheme, Host, path and query), for the one
    /// `Location` builder.
    pub fn redirect_request(&self) -> RedirectRequest<'_> {
        RedirectRequest {
            tls: self.head.scheme == Scheme::Https,
            host: self.head.host,
            path_and_query: self.path_and_query,
        }
    }
}

/// A filter's decision.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on: the next filter, then the route's action.
    Pass,
    /// Answer the request with this; no later filter runs and nothing goes upstream.
    Answer(Answer),
}

/// One filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `listen[].redirect_https`: a request on a redirecting listener gets a `308` to the same
    /// host and path on `https://`.
    RedirectHttps(HttpsRedirect),
}

impl Filter {
    fn run(&self, req: &FilterRequest<'_>) -> Verdict {
        match self {
            Filter::RedirectHttps(r) => r.run(req),
        }
    }
}

/// Filters in the order they run. Cheap to clone (shared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain(Arc<[Filter]>);

impl Chain {
    /// A chain running `filters` in this order.
    pub fn new(filters: Vec<Filter>) -> Chain {
        Chain(filters.into())
    }

    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs the filters in order until one answers.
    pub fn run(&self, req: &FilterRequest<'_>) -> Verdict {
        for f in self.0.iter() {
            if let v @ Verdict::Answer(_) = f.run(req) {
                return v;
            }
        }
        Verdict::Pass
    }
}

/// The HTTPS redirect of plain listeners: `308 Permanent Redirect` (which keeps the method
/// and body, RFC 9110 §15.4.9) to the same host and path on `https://` at the port of the
/// listener's TLS counterpart, except for ACME HTTP-01 challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsRedirect {
    listeners: Redirects,
}

impl HttpsRedirect {
    /// The redirect for requests arriving on `listeners`.
    pub fn new(listeners: Redirects) -> HttpsRedirect {
        HttpsRedirect { listeners }
    }

    fn run(&self, req: &FilterRequest<'_>) -> Verdict {
        let Some(port) = req.local.and_then(|l| self.listeners.port_for(l)) else {
            return Verdict::Pass;
        };
        if req.head.path.starts_with(ACME_CHALLENGE_PREFIX) {
            return Verdict::Pass;
        }
        // A routing redirect that keeps host, path and query and changes scheme and port;
        // the host is checked by the one `Location` builder.
        let redirect = Redirect {
            status: 308,
            target: RedirectTarget::Parts {
                scheme: Some(Scheme::Https),
                host: None,
                port: Some(port),
                path: None,
            },
        };
        let location = redirect.location(&PathRewrite::default(), &req.redirect_request());
        Verdict::Answer(match location {
            Ok(l) => Answer::redirect(redirect.status, l),
            Err(_) => Answer::new(
                400,
                Bytes::from_static(b"400 Bad Request: no valid Host to redirect to\n"),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listeners::{ListenerSpec, RedirectHttps};
    use http::{HeaderMap, Method};

    fn redirect_on(local: &str, port: u16) -> HttpsRedirect {
        let spec = ListenerSpec {
            addr: local.parse().unwrap(),
            tls: None,
            http2: false,
            redirect_https: Some(RedirectHttps::Port(port)),
            max_connections: None,
        };
        HttpsRedirect::new(Redirects::new(&[spec], &[local.parse().unwrap()]).unwrap())
    }

    fn request<'a>(
        local: &str,
        host: Option<&'a str>,
        pq: &'a str,
        headers: &'a HeaderMap,
    ) -> FilterRequest<'a> {
        FilterRequest {
            head: RequestHead {
                scheme: Scheme::Http,
                method: &Method::GET,
                host,
                path: pq.split('?').next().unwrap_or(pq),
                headers,
            },
            path_and_query: pq,
            local: Some(local.parse().unwrap()),
        }
    }

    fn location(v: &Verdict) -> Option<(u16, &str)> {
        match v {
            Verdict::Answer(a) => Some((
                a.status,
                a.headers
                    .iter()
                    .find(|(n, _)| n == http::header::LOCATION)
                    .map_or("", |(_, v)| v.to_str().unwrap()),
            )),
            Verdict::Pass => None,
        }
    }

    /// The `Location` of the HTTPS redirect, built by the routing redirect's one builder.
    #[test]
    fn https_location_table() {
        let h = HeaderMap::new();
        // (HTTPS port, host, path and query, expected (status, Location), why)
        type Case<'a> = (u16, &'a str, &'a str, Option<(u16, &'a str)>, &'a str);
        let cases: &[Case] = &[
            (
                443,
                "example.com",
                "/a?b=1",
                Some((308, "https://example.com/a?b=1")),
                "443 is left out",
            ),
            (
                443,
                "example.com:80",
                "/",
                Some((308, "https://example.com/")),
                "the plain port goes",
            ),
            (
                8443,
                "example.com:8080",
                "/x",
                Some((308, "https://example.com:8443/x")),
                "another HTTPS port is written",
            ),
            (
                443,
                "[::1]:80",
                "/",
                Some((308, "https://[::1]/")),
                "IPv6 literal keeps its brackets",
            ),
            (
                8443,
                "127.0.0.1:8080",
                "/p",
                Some((308, "https://127.0.0.1:8443/p")),
                "IPv4 literal",
            ),
            (
                443,
                "Example.COM",
                "/",
                Some((308, "https://Example.COM/")),
                "case is kept (hosts compare without case)",
            ),
            (443, "", "/", Some((400, "")), "empty host"),
            (
                443,
                "evil.com/x",
                "/",
                Some((400, "")),
                "a slash cannot smuggle a path",
            ),
            (443, "a@b.com", "/", Some((400, "")), "userinfo is refused"),
            (
                443,
                "[nope]:80",
                "/",
                Some((400, "")),
                "brackets around a non-address",
            ),
            (
                443,
                "example.com",
                "*",
                Some((308, "https://example.com/")),
                "asterisk-form becomes /",
            ),
            (
                443,
                "example.com",
                "/.well-known/acme-challenge/tok",
                None,
                "ACME HTTP-01 challenges pass",
            ),
        ];
        for (port, host, pq, want, why) in cases {
            let r = redirect_on("127.0.0.1:8080", *port);
            let v = r.run(&request("127.0.0.1:8080", Some(host), pq, &h));
            assert_eq!(location(&v), *want, "{why}");
        }
        let r = redirect_on("127.0.0.1:8080", 443);
        assert_eq!(
            r.run(&request("127.0.0.1:8081", Some("a.test"), "/", &h)),
            Verdict::Pass,
            "another listener is not redirected"
        );
        assert_eq!(
            location(&r.run(&request("127.0.0.1:8080", None, "/", &h))),
            Some((400, "")),
            "no Host at all"
        );
    }

    #[test]
    fn https_location_never_panics() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let r = redirect_on("127.0.0.1:8080", 8443);
        let h = HeaderMap::new();
        for _ in 0..20_000 {
            let host = crate::testing::random_text(&mut rng, b"[]:/.@a-Z9\xff%? ", 24);
            let v = r.run(&request("127.0.0.1:8080", Some(&host), "/p", &h));
            if let Some((308, l)) = location(&v) {
                assert!(l.starts_with("https://") && !l.contains('@'), "{l}");
            }
        }
    }

    #[test]
    fn the_first_answer_ends_the_chain() {
        let h = HeaderMap::new();
        let chain = Chain::new(vec![
            Filter::RedirectHttps(redirect_on("127.0.0.1:1", 443)),
            Filter::RedirectHttps(redirect_on("127.0.0.1:2", 8443)),
            Filter::RedirectHttps(redirect_on("127.0.0.1:2", 9443)),
        ]);
        // (listener, expected Location, why)
        let cases = [
            (
                "127.0.0.1:1",
                Some((308, "https://a.test/")),
                "the first filter answers",
            ),
            (
                "127.0.0.1:2",
                Some((308, "https://a.test:8443/")),
                "the first that answers wins; the third never runs",
            ),
            ("127.0.0.1:3", None, "every filter passes"),
        ];
        for (local, want, why) in cases {
            let v = chain.run(&request(local, Some("a.test"), "/", &h));
            assert_eq!(location(&v), want, "{why}");
        }
        assert_eq!(
            Chain::default().run(&request("127.0.0.1:1", Some("a.test"), "/", &h)),
            Verdict::Pass,
            "an empty chain passes"
        );
    }
}
