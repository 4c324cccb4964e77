//! Applies the router's decisions to Pingora's request and response heads: the request head the
//! router matches on, the rewritten URI and Host, the forwarding headers, the per-route header
//! edits, and what a matched route does with the request.
//!
//! The decisions themselves are pure code in [`crate::routing`]; this is the thin layer that
//! reads and writes Pingora's types (with `insert_header`/`append_header`/`remove_header`, so
//! Pingora's header-case map stays consistent). Facts about the connection come from the
//! request's [`Downstream`], read once.

use crate::exchange::Downstream;
use crate::routing::headers::HeaderEdit;
use crate::routing::matching::Scheme;
use crate::routing::{
    forwarded, Answer, FilterRequest, ForwardedPolicy, HeaderEdits, RequestHead, Route,
};
use crate::upstream::PassHost;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::authority::{raw_target_authority, RawTargetAuthority};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use std::net::SocketAddr;

/// What the router and the filters see of the request: its head, borrowed, with the facts of
/// `downstream`.
pub(super) fn filter_request<'a>(
    session: &'a Session,
    downstream: &'a Downstream,
) -> FilterRequest<'a> {
    let req = session.req_header();
    FilterRequest {
        head: RequestHead {
            scheme: if downstream.tls {
                Scheme::Https
            } else {
                Scheme::Http
            },
            method: &req.method,
            host: downstream.authority(),
            path: req.uri.path(),
            headers: &req.headers,
        },
        path_and_query: req.uri.path_and_query().map_or("/", |p| p.as_str()),
        local: downstream.local,
    }
}

/// The URI to send upstream when the route rewrites the path, computed once per request from
/// the normalised one (`target` wrote it into the request head); `None` when the path is sent
/// as routed. The query is kept.
fn upstream_uri(route: &Route, req: &RequestHeader) -> Result<Option<http::Uri>> {
    if route.rewrite.is_identity() {
        return Ok(None);
    }
    if !req.raw_path_is_utf8() {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "the request path is not UTF-8 and cannot be rewritten",
        );
    }
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    route
        .rewrite
        .apply(pq)
        .parse()
        .map(Some)
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "rewriting the path", e))
}

/// The upstream-bound request for one attempt: in origin-form with a Host, the rewritten URI,
/// the Host for `backend`, the forwarding headers, then the route's own edits (last, so an
/// operator's explicit `set` wins over what the proxy computed).
pub(super) fn prepare_upstream_request(
    session: &Session,
    downstream: &Downstream,
    req: &mut RequestHeader,
    route: &Route,
    target: UpstreamTarget<'_>,
) -> Result<()> {
    origin_form(downstream, req)?;
    if let Some(uri) = target.uri {
        req.set_uri(uri.clone());
    }
    if let Some(host) = target.backend.and_then(|b| target.pass_host.host_for(b)) {
        req.insert_header(http::header::HOST, host.clone())?;
    }
    if !target.forwarded.is_off() {
        let hop = forwarded::Hop {
            client: downstream.client_ip(),
            tls: downstream.tls,
            host: downstream.authority().map(str::as_bytes),
        };
        let mut result = Ok(());
        target.forwarded.edits(
            &hop,
            &session.req_header().headers,
            |name, value| match value {
                Some(v) if result.is_ok() => {
                    result = req.insert_header(name.clone(), v).map(|_| ())
                }
                Some(_) => {}
                None => {
                    req.remove_header(name);
                }
            },
        );
        result?;
    }
    apply_edits(&route.request_headers, req)
}

/// Puts the request in the form an origin server gets (RFC 9112 §3.2.1: the path and query
/// only): an absolute-form target (`http://a.test/x`, which clients may send, §3.2.2) loses
/// its scheme and authority, so that no backend routes on an authority other than the Host it
/// is sent. A request without Host (HTTP/1.0) gets one, as every HTTP/1.1 request must (RFC
/// 9112 §3.2): its absolute-form authority, else an empty value (RFC 9110 §7.2: the
/// authority is unknown).
fn origin_form(downstream: &Downstream, req: &mut RequestHeader) -> Result<()> {
    let origin = match raw_target_authority(req.raw_path()) {
        RawTargetAuthority::Absolute { path_and_query, .. } => {
            let mut t = Vec::with_capacity(path_and_query.len() + 1);
            if path_and_query.first() != Some(&b'/') {
                t.push(b'/');
            }
            t.extend_from_slice(path_and_query);
            Some(t)
        }
        _ => None,
    };
    if let Some(t) = origin {
        req.set_raw_path(&t)?;
    }
    if !req.headers.contains_key(http::header::HOST) {
        match downstream.authority() {
            Some(a) => req.insert_header(http::header::HOST, a)?,
            // An HTTP/2 backend takes its :authority from the Host; an empty one would not do.
            None if req.version != http::Version::HTTP_2 => {
                req.insert_header(http::header::HOST, "")?
            }
            None => {}
        }
    }
    Ok(())
}

/// Where one upstream attempt goes and how its head is built.
#[derive(Clone, Copy)]
pub(super) struct UpstreamTarget<'a> {
    /// The rewritten URI ([`upstream_uri`]), if the path changes.
    pub uri: Option<&'a http::Uri>,
    /// The backend of this attempt.
    pub backend: Option<SocketAddr>,
    pub pass_host: &'a PassHost,
    pub forwarded: &'a ForwardedPolicy,
}

/// The header operations that request and response heads share in Pingora (they have no
/// common trait), so one function applies a route's edits to either.
trait EditableHead {
    fn remove(&mut self, name: &http::HeaderName);
    fn insert(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()>;
    fn append(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()>;
}

impl EditableHead for RequestHeader {
    fn remove(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()> {
        self.insert_header(name, value)
    }
    fn append(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

impl EditableHead for ResponseHeader {
    fn remove(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()> {
        self.insert_header(name, value)
    }
    fn append(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

fn apply_edits(edits: &HeaderEdits, head: &mut impl EditableHead) -> Result<()> {
    let mut result = Ok(());
    edits.for_each(|e| {
        if result.is_err() {
            return;
        }
        result = match e {
            HeaderEdit::Remove(n) => {
                head.remove(n);
                Ok(())
            }
            HeaderEdit::Set(n, v) => head.insert(n.clone(), v.clone()),
            HeaderEdit::Add(n, v) => head.append(n.clone(), v.clone()),
        };
    });
    result
}

/// Applies a route's `response_headers` to a response going downstream.
pub(super) fn apply_response_edits(edits: &HeaderEdits, resp: &mut ResponseHeader) -> Result<()> {
    apply_edits(edits, resp)
}

/// What the matched route does with this request.
pub(super) enum Decision {
    /// Proxy it, with this URI when the path is rewritten.
    Proxy(Option<http::Uri>),
    /// Answer it here.
    Answer(Answer),
}

/// Decides what a matched route does with `request` (the [`filter_request`] of `session`):
/// the rewritten URI of a proxy route, the answer of a `respond` or `redirect` route. A
/// request the route cannot handle (a path that cannot be rewritten, a redirect without a
/// host to keep) gets 400 and one log line.
pub(super) fn decide(session: &Session, request: &FilterRequest<'_>, route: &Route) -> Decision {
    let req = session.req_header();
    let result = match route.own_answer(&request.redirect_request()) {
        None => upstream_uri(route, req)
            .map(Decision::Proxy)
            .map_err(|e| e.to_string()),
        Some(answer) => answer.map(Decision::Answer).map_err(|e| e.to_string()),
    };
    result.unwrap_or_else(|e| {
        log::warn!(
            "bad request: 400 {} {} route={}: {e}",
            req.method,
            req.uri.path(),
            route.name
        );
        Decision::Answer(Answer::status(400))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_reach_pingora_heads() {
        let edits = HeaderEdits::parse(
            crate::routing::headers::Side::Response,
            &[("x-frame-options", "DENY")],
            &[("link", &["</a>".to_owned(), "</b>".to_owned()])],
            &["server".to_owned()],
        )
        .unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Server", "origin").unwrap();
        resp.insert_header("X-Frame-Options", "SAMEORIGIN").unwrap();
        apply_response_edits(&edits, &mut resp).unwrap();
        assert!(resp.headers.get("server").is_none(), "removed");
        assert_eq!(
            resp.headers.get("x-frame-options").unwrap(),
            "DENY",
            "replaced"
        );
        let links: Vec<_> = resp.headers.get_all("link").iter().collect();
        assert_eq!(links, ["</a>", "</b>"], "appended");
        let mut wire = Vec::new();
        resp.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(
            !wire.to_ascii_lowercase().contains("server"),
            "the case map follows: {wire}"
        );
    }
}
