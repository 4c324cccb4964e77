//! The route middlewares ([`crate::middleware`]) at the phases they need:
//! - [`request`]: right after the route matched, in the route's order; the first one that
//!   answers ends the chain (the answer is the proxy's own, written by `respond`, and recorded
//!   as `tracegate.middleware` on the SERVER span and in the access log);
//! - [`request_body`]: `body_limit` on a streamed body (a `Content-Length` over it was refused
//!   in [`request`]): past the limit the upstream request is aborted and the client gets 413;
//! - [`response_head`] and [`response_body`]: `cors` headers, and `compress` (the coding
//!   negotiated from `Accept-Encoding`, the body streamed through its encoder; see
//!   [`crate::middleware::compress`] for why this is not Pingora's compression module).

use super::RequestCtx;
use crate::middleware::compress::{negotiate, StreamEncoder};
use crate::middleware::forward_auth::{AuthOutcome, AuthRequest, ForwardAuth};
use crate::middleware::{cors::CorsAction, Kind, Middleware};
use crate::proxy::Gateway;
use crate::routing::Answer;
use crate::trace::span::ClientFields;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use std::borrow::Cow;
use std::sync::Arc;

/// What the route's middlewares left for the later phases of one request.
#[derive(Default)]
pub(super) struct MiddlewareState {
    /// The middleware that answered the request itself.
    pub answered_by: Option<Arc<str>>,
    /// `body_limit` for a streamed body: the limit and the middleware's name.
    body_limit: Option<(u64, Arc<str>)>,
    body_seen: u64,
    /// Headers for the response, whoever answers it: `cors`'s, and `rate_limit`'s
    /// `RateLimit-Policy`/`RateLimit`.
    pub cors: Vec<(HeaderName, HeaderValue)>,
    /// The route's `compress`, until the response head decides.
    compress: Option<Arc<Middleware>>,
    /// `basic_auth` without `pass_credentials`: `Authorization` does not go upstream.
    strip_authorization: bool,
    /// `forward_auth`: headers removed from, then set on, the upstream request.
    upstream_remove: Vec<HeaderName>,
    upstream_set: Vec<(HeaderName, HeaderValue)>,
    /// The time spent in `forward_auth` calls.
    pub auth_time: Option<std::time::Duration>,
    /// The response body's encoder, once the head chose to compress.
    encoder: Option<StreamEncoder>,
}

impl std::fmt::Debug for MiddlewareState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiddlewareState")
            .field("answered_by", &self.answered_by)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// Runs the matched route's middlewares on the request head. `Some`: the answer of the one that
/// answered.
pub(super) async fn request(session: &Session, ctx: &mut RequestCtx) -> Option<Answer> {
    let route = ctx.route()?;
    if route.middlewares.is_empty() {
        return None;
    }
    let gateway = Arc::clone(&ctx.gateway);
    let list = Arc::clone(&route.middlewares);
    let route_name = Arc::clone(&route.name);
    let req = session.req_header();
    let client_ip = gateway
        .router
        .forwarded()
        .client_address(ctx.downstream.client_ip(), &req.headers);
    for &i in list.iter() {
        let m = &gateway.middlewares[i];
        let answer = match &m.kind {
            Kind::IpAllow(l) => (!l.contains(client_ip)).then(|| Answer::status(403)),
            Kind::IpDeny(l) => l.contains(client_ip).then(|| Answer::status(403)),
            Kind::BodyLimit(limit) => {
                if content_length(&req.headers).is_some_and(|n| n > *limit) {
                    Some(Answer::status(413))
                } else {
                    let tighter = ctx.mw.body_limit.as_ref().is_none_or(|(l, _)| limit < l);
                    if tighter {
                        ctx.mw.body_limit = Some((*limit, Arc::clone(&m.name)));
                    }
                    None
                }
            }
            Kind::Cors(c) => match c.decide(&req.method, &req.headers) {
                CorsAction::Preflight(headers) => {
                    let mut a = Answer::new(204, Bytes::new());
                    a.headers = headers;
                    Some(a)
                }
                CorsAction::Respond(headers) => {
                    ctx.mw.cors.extend(headers);
                    None
                }
            },
            Kind::Compress(_) => {
                ctx.mw.compress = Some(Arc::clone(m));
                None
            }
            Kind::BasicAuth(a) => {
                match a
                    .check_async(req.headers.get(http::header::AUTHORIZATION))
                    .await
                {
                    Some(_user) => {
                        if !a.pass_credentials() {
                            ctx.mw.strip_authorization = true;
                        }
                        None
                    }
                    None => Some(
                        Answer::status(401)
                            .with_header(http::header::WWW_AUTHENTICATE, a.challenge()),
                    ),
                }
            }
            Kind::ForwardAuth(a) => forward_auth(ctx, &gateway, m, a, req, client_ip).await,
            Kind::RateLimit(l) => {
                let settings = l.settings();
                let key = settings.key.key(client_ip, &req.headers, &route_name);
                let d = l.check(key.as_str()).await;
                let headers = d.headers(settings.period);
                if d.allowed {
                    // RateLimit headers on every answer (draft-ietf-httpapi-ratelimit-headers).
                    ctx.mw.cors.extend(headers);
                    None
                } else {
                    let mut a = Answer::status(429);
                    a.headers = headers;
                    Some(a)
                }
            }
        };
        if let Some(a) = answer {
            answered(ctx, &m.name);
            return Some(a);
        }
    }
    None
}

/// A `forward_auth` check, traced as a CLIENT span under the SERVER span (its
/// `traceparent` goes to the auth server). A 2xx lets the request go on with the configured
/// headers of the answer; any other answer goes back to the client as it is; no answer is a
/// 502 or a 504.
async fn forward_auth(
    ctx: &mut RequestCtx,
    gateway: &Gateway,
    m: &Middleware,
    auth: &ForwardAuth,
    req: &RequestHeader,
    client_ip: Option<std::net::IpAddr>,
) -> Option<Answer> {
    let call = ctx.trace.as_ref().map(|t| t.begin_side_call());
    let (traceparent, tracestate) = match (&ctx.trace, &call) {
        (Some(t), Some(c)) => (
            HeaderValue::from_bytes(&t.side_call_traceparent(c)).ok(),
            t.upstream_tracestate()
                .and_then(|s| HeaderValue::from_str(s).ok()),
        ),
        _ => (None, None),
    };
    let r = AuthRequest {
        method: &req.method,
        scheme: if ctx.downstream.tls { "https" } else { "http" },
        host: ctx.downstream.host(),
        uri: req.uri.path_and_query().map_or("/", |p| p.as_str()),
        client_ip,
        headers: &req.headers,
        traceparent,
        tracestate,
    };
    let result = auth.check(&r).await;
    let took = result.end.duration_since(result.start).unwrap_or_default();
    ctx.mw.auth_time = Some(ctx.mw.auth_time.unwrap_or_default() + took);
    if let (Some(t), Some(c)) = (&mut ctx.trace, call) {
        let (error_type, error_message) = match &result.outcome {
            AuthOutcome::Failed {
                error_type,
                message,
                ..
            } => (Some(Cow::Borrowed(*error_type)), Some(message.clone())),
            _ => (None, None),
        };
        let fields = ClientFields {
            method: http::Method::GET,
            middleware: Some(Arc::clone(&m.name)),
            backend: result.peer,
            path: auth.address().path().to_owned(),
            status: result.status,
            error_type,
            error_message,
            ..ClientFields::default()
        };
        t.end_side_call(&gateway.tracer, c, fields);
    }
    match result.outcome {
        AuthOutcome::Pass { set, remove } => {
            ctx.mw.upstream_remove.extend(remove);
            ctx.mw.upstream_set.extend(set);
            None
        }
        AuthOutcome::Deny {
            status,
            headers,
            body,
        } => {
            // Framing and hop-by-hop headers are already gone (`AuthOutcome::Deny`).
            let mut a = Answer::new(status, body);
            a.headers = headers;
            Some(a)
        }
        AuthOutcome::Failed { status, .. } => Some(Answer::status(status)),
    }
}

/// The upstream request: `Authorization` removed after `basic_auth` (unless
/// `pass_credentials`), and the headers a `forward_auth` answer gave.
pub(super) fn upstream_request(ctx: &RequestCtx, up: &mut RequestHeader) -> Result<()> {
    if ctx.mw.strip_authorization {
        up.remove_header(&http::header::AUTHORIZATION);
    }
    for n in &ctx.mw.upstream_remove {
        up.remove_header(n);
    }
    for (k, v) in &ctx.mw.upstream_set {
        up.append_header(k.clone(), v.clone())?;
    }
    Ok(())
}

/// Records that middleware `name` answered the request.
fn answered(ctx: &mut RequestCtx, name: &Arc<str>) {
    ctx.mw.answered_by = Some(Arc::clone(name));
    if let Some(t) = &mut ctx.trace {
        t.set_middleware(Arc::clone(name));
    }
}

/// The request's `Content-Length`, when it has one valid value.
fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Counts a streamed request body against `body_limit`: past it, an error that aborts the
/// upstream request and answers 413.
pub(super) fn request_body(ctx: &mut RequestCtx, body: &Option<Bytes>) -> Result<()> {
    let Some((limit, name)) = &ctx.mw.body_limit else {
        return Ok(());
    };
    ctx.mw.body_seen += body.as_ref().map_or(0, |b| b.len() as u64);
    if ctx.mw.body_seen > *limit {
        let name = Arc::clone(name);
        answered(ctx, &name);
        return Error::e_explain(
            ErrorType::HTTPStatus(413),
            format!("the request body is over the body_limit of middleware {name}"),
        );
    }
    Ok(())
}

/// Puts the `cors` headers on a response head: `Vary` is added to, the others set.
pub(super) fn cors_headers(ctx: &RequestCtx, resp: &mut ResponseHeader) -> Result<()> {
    for (k, v) in &ctx.mw.cors {
        if k == http::header::VARY {
            resp.append_header(k.clone(), v.clone())?;
        } else {
            resp.insert_header(k.clone(), v.clone())?;
        }
    }
    Ok(())
}

/// The upstream's response head: the `cors` headers, and the choice to compress.
pub(super) fn response_head(
    session: &Session,
    ctx: &mut RequestCtx,
    resp: &mut ResponseHeader,
) -> Result<()> {
    use http::header::{
        ACCEPT_ENCODING, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
        TRANSFER_ENCODING, VARY,
    };
    cors_headers(ctx, resp)?;
    let Some(m) = ctx.mw.compress.take() else {
        return Ok(());
    };
    let Kind::Compress(c) = &m.kind else {
        return Ok(());
    };
    let req = session.req_header();
    let text = |n: HeaderName| resp.headers.get(n).and_then(|v| v.to_str().ok());
    let wants = c.wants(
        &req.method,
        resp.status.as_u16(),
        text(CONTENT_TYPE),
        text(CONTENT_ENCODING),
        text(CONTENT_LENGTH).and_then(|l| l.trim().parse().ok()),
    );
    if !wants {
        return Ok(());
    }
    // From here the representation depends on Accept-Encoding (RFC 9110 §12.5.5), whether or
    // not this client gets it compressed.
    resp.append_header(VARY, HeaderValue::from_static("Accept-Encoding"))?;
    let asked = req
        .headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let Some(encoding) = negotiate(asked) else {
        return Ok(());
    };
    let Ok(encoder) = StreamEncoder::new(encoding, c.level) else {
        return Ok(());
    };
    resp.insert_header(CONTENT_ENCODING, encoding.token())?;
    // The length changes, ranges of the compressed body mean nothing, and a strong validator
    // would claim two representations are the same bytes (RFC 9110 §8.8.1): weakened as
    // nginx does.
    resp.remove_header(&CONTENT_LENGTH);
    resp.remove_header(&ACCEPT_RANGES);
    if let Some(etag) = resp.headers.get(ETAG).cloned() {
        if etag.as_bytes().starts_with(b"\"") {
            let weak = [b"W/", etag.as_bytes()].concat();
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                resp.insert_header(ETAG, v)?;
            }
        } else if !etag.as_bytes().starts_with(b"W/") {
            resp.remove_header(&ETAG);
        }
    }
    if req.version == http::Version::HTTP_11 {
        resp.insert_header(TRANSFER_ENCODING, "chunked")?;
    }
    ctx.mw.encoder = Some(encoder);
    Ok(())
}

/// A chunk of the response body, compressed when the head chose to; the last one finishes
/// the stream. An encoder that fails stops the response (its bytes are already compressed).
pub(super) fn response_body(
    ctx: &mut RequestCtx,
    body: &mut Option<Bytes>,
    end: bool,
) -> Result<()> {
    let Some(e) = &mut ctx.mw.encoder else {
        return Ok(());
    };
    let input = body.as_deref().unwrap_or(&[]);
    match e.encode(input, end) {
        Ok(out) => {
            *body = Some(out);
            Ok(())
        }
        Err(err) => Error::e_explain(
            ErrorType::InternalError,
            format!("compressing the response failed: {err}"),
        ),
    }
}
