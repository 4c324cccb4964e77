//! The `ProxyHttp` implementation: tracegate's request path on Pingora.
//!
//! Each phase method only delegates: routing to [`crate::routing`], backend choice to
//! [`crate::upstream`], tracing to [`crate::trace::hooks`]. Phases run in this order for a
//! proxied request: `early_request_filter` → `request_filter` → `upstream_peer` →
//! `connected_to_upstream` → `upstream_request_filter` → `upstream_response_filter` →
//! `upstream_response_body_filter`… → `logging`. On failure `fail_to_connect` or
//! `error_while_proxy`, then `fail_to_proxy`, and `logging` still runs last.

mod apply;
mod balance;
pub mod listeners;
pub mod peer;

pub use crate::trace::hooks::downstream_is_tls;

use crate::gateway::{Gateway, SharedGateway};
use crate::routing::{HeaderEdits, Route};
use crate::trace::{hooks, RequestTrace, Tracer};
use crate::upstream::{Attempts, UpstreamPool};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The proxy: the live routing state. Shared by all worker threads.
pub struct TracegateProxy {
    gateway: SharedGateway,
    /// Plain listeners that redirect to HTTPS; `None` when none does.
    redirects: Option<Arc<listeners::Redirects>>,
}

/// Per-request state carried between phases.
pub struct RequestCtx {
    /// The routing state this request started with (a reload does not change it mid-request).
    gateway: Arc<Gateway>,
    trace: Option<RequestTrace>,
    /// Index of the matched route in the router.
    route: Option<usize>,
    /// The upstream attempts: backends tried, retries left, the `timeout` deadline and the
    /// in-flight slot (released when the context is dropped, however the request ends).
    upstream: Attempts,
    /// The backend of the current attempt.
    backend: Option<SocketAddr>,
    /// The URI sent upstream when the route rewrites the path (computed once per request).
    upstream_uri: Option<http::Uri>,
}

impl TracegateProxy {
    /// A proxy serving `gateway`; a reload stores a new [`Gateway`] in the same handle.
    pub fn new(gateway: SharedGateway) -> Self {
        TracegateProxy {
            gateway,
            redirects: None,
        }
    }

    /// The proxy answering requests on the listeners of `redirects` with a redirect to HTTPS.
    pub fn with_redirects(mut self, redirects: Option<Arc<listeners::Redirects>>) -> Self {
        self.redirects = redirects;
        self
    }
}

impl RequestCtx {
    fn proxy_target(&self) -> Option<&UpstreamPool> {
        self.gateway.proxy_target(self.route?)
    }

    /// The matched route.
    fn route(&self) -> Option<&Route> {
        self.gateway.router.routes().get(self.route?)
    }
}

/// Writes a complete response of the proxy's own (a `respond` or `redirect` route, 404, an
/// upstream failure) with a plain-text body, a `Location` for a redirect, the matched route's
/// `response_headers` edits and the trace response headers.
async fn respond(
    session: &mut Session,
    status: u16,
    body: Bytes,
    location: Option<http::HeaderValue>,
    edits: Option<&HeaderEdits>,
    trace: Option<&mut RequestTrace>,
    tracer: &Tracer,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    if let Some(l) = location {
        resp.insert_header(http::header::LOCATION, l)?;
    }
    if let Some(e) = edits {
        apply::apply_response_edits(e, &mut resp)?;
    }
    if let Some(t) = trace {
        hooks::response(t, tracer, &mut resp)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only || body.is_empty())
        .await?;
    if !head_only && !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for TracegateProxy {
    type CTX = RequestCtx;

    /// Runs once per request, before any phase: a context holding the current routing state.
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            gateway: self.gateway.load_full(),
            trace: None,
            route: None,
            upstream: Attempts::default(),
            backend: None,
            upstream_uri: None,
        }
    }

    /// Runs first, right after the request head is read: starts the request's trace (continuing
    /// a valid incoming `traceparent`), so everything after it is inside the SERVER span.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.trace = Some(hooks::start(&ctx.gateway.tracer, session));
        Ok(())
    }

    /// Redirects to HTTPS on a listener with `redirect_https`, then routes the request (and
    /// applies the route's own sampling ratio). No route: 404. A `respond` or `redirect` route
    /// answers here; a proxy route computes the path it sends upstream. Returns `true` when
    /// the response has been written and proxying stops.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let https = self.redirects.as_deref();
        if let Some((status, body, location)) =
            https.and_then(|r| listeners::https_redirect(r, session))
        {
            let trace = ctx.trace.as_mut();
            respond(
                session,
                status,
                body,
                location,
                None,
                trace,
                &ctx.gateway.tracer,
            )
            .await?;
            return Ok(true);
        }
        let Some(i) = ctx.gateway.router.find(&apply::request_head(session)) else {
            respond(
                session,
                404,
                Bytes::from_static(b"404 Not Found: no route matches this request\n"),
                None,
                None,
                ctx.trace.as_mut(),
                &ctx.gateway.tracer,
            )
            .await?;
            return Ok(true);
        };
        let route = &ctx.gateway.router.routes()[i];
        ctx.route = Some(i);
        if let Some(t) = &mut ctx.trace {
            t.set_route(route.name.clone());
            if let Some(ratio) = route.sample_ratio {
                t.apply_route_ratio(&ctx.gateway.tracer, ratio);
            }
        }
        match apply::answer(session, route) {
            apply::Answer::Proxy(uri) => {
                ctx.upstream_uri = uri;
                Ok(false)
            }
            apply::Answer::Own(status, body, location) => {
                let edits = Some(&route.response_headers);
                let trace = ctx.trace.as_mut();
                respond(
                    session,
                    status,
                    body,
                    location,
                    edits,
                    trace,
                    &ctx.gateway.tracer,
                )
                .await?;
                Ok(true)
            }
        }
    }

    /// Runs for each upstream attempt (again on a retry): picks the backend with the pool's
    /// `lb` (a retry takes one not tried yet), opens the attempt's CLIENT span with the path
    /// sent, and builds the peer (TLS and HTTP version per the upstream's settings) bounded by
    /// the pool's `timeout`.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let gateway = Arc::clone(&ctx.gateway);
        let Some(pool) = ctx.route.and_then(|r| gateway.proxy_target(r)) else {
            return Error::e_explain(
                ErrorType::InternalError,
                "upstream_peer without a proxy route",
            );
        };
        let key = balance::hash_key(pool, session);
        let Ok(idx) = pool.begin_attempt(&mut ctx.upstream, key.as_ref().map(|k| k.as_bytes()))
        else {
            return Err(balance::out_of_time(pool));
        };
        let backend = pool.backends[idx];
        ctx.backend = Some(backend);
        if let Some(t) = &mut ctx.trace {
            let sent = ctx
                .upstream_uri
                .as_ref()
                .unwrap_or(&session.req_header().uri);
            t.begin_attempt(
                &ctx.gateway.tracer,
                pool.name.clone(),
                backend,
                sent.path().to_owned(),
            );
        }
        let mut peer = peer::for_attempt(
            &gateway,
            ctx.route,
            pool,
            backend,
            session,
            ctx.trace.as_mut(),
        )?;
        if let Some(left) = ctx.upstream.time_left() {
            balance::limit_to(&mut peer, left);
        }
        Ok(peer)
    }

    /// Runs when a connection to the backend is ready (new or from the keep-alive pool).
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        digest: Option<&Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(t) = &mut ctx.trace {
            hooks::connected(t, reused, digest);
        }
        Ok(())
    }

    /// Runs before the request head goes upstream (once per attempt, on a fresh copy of the
    /// client's head): the route's path rewrite, the Host, `X-Forwarded-*`/`Forwarded` and the
    /// route's header edits, then `traceparent`/`tracestate` for this attempt.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(route), Some(pool)) = (ctx.route(), ctx.proxy_target()) {
            let target = apply::UpstreamTarget {
                uri: ctx.upstream_uri.as_ref(),
                backend: ctx.backend,
                pass_host: &pool.pass_host,
                forwarded: ctx.gateway.router.forwarded(),
            };
            apply::prepare_upstream_request(session, upstream_request, route, target)?;
        }
        if let Some(t) = &ctx.trace {
            hooks::inject(t, upstream_request)?;
        }
        Ok(())
    }

    /// Runs when the upstream response head arrives: time to first byte and status, and a
    /// success for the backend's passive health (no retry after this).
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        balance::responded(ctx);
        if let Some(t) = &mut ctx.trace {
            hooks::upstream_response(t, upstream_response);
        }
        Ok(())
    }

    /// Runs before the upstream's response head goes downstream: applies the route's
    /// `response_headers` edits, records the response headers on the capture allowlist and adds
    /// the trace response headers (`traceresponse`, the trace-id header) when configured.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(route) = ctx.route() {
            apply::apply_response_edits(&route.response_headers, upstream_response)?;
        }
        if let Some(t) = &mut ctx.trace {
            hooks::response(t, &ctx.gateway.tracer, upstream_response)?;
        }
        Ok(())
    }

    /// Runs for each chunk of the upstream body; the last one ends the CLIENT span's timing.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(t) = &mut ctx.trace {
            hooks::upstream_body(t, end_of_stream);
        }
        Ok(None)
    }

    /// Runs when connecting to the backend failed. The attempt is recorded as failed (and
    /// counted for passive health); while the pool's `retries` allow, the request is tried on
    /// another backend: nothing was sent yet, so this is safe for any method (nginx
    /// `proxy_next_upstream error timeout`).
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(t) = &mut ctx.trace {
            hooks::attempt_error(t, &e);
        }
        let retry = balance::connect_failed(session, ctx, &e);
        e.set_retry(retry);
        e
    }

    /// Runs on an error after the connection was made. Records the failed attempt; a backend
    /// failure is retried on another backend while `retries` allow, only for an idempotent
    /// method whose body is still buffered and before any response (replaces Pingora's default
    /// policy).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        if let Some(t) = &mut ctx.trace {
            hooks::attempt_error(t, &e);
        }
        let mut e = e.more_context(format!("Peer: {peer}"));
        let retry = balance::proxy_failed(session, ctx, &e, client_reused);
        e.set_retry(retry);
        e
    }

    /// Runs when the request failed for good: answers 504 for upstream timeouts, 502 for other
    /// upstream failures, and Pingora's defaults otherwise, with the route's `response_headers`
    /// edits.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(code), _) => *code,
            (_, ErrorSource::Upstream) if hooks::is_timeout(e) => 504,
            (_, ErrorSource::Upstream) => 502,
            (
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
            ) => 0,
            (_, ErrorSource::Downstream) => 400,
            _ => 500,
        };
        if code > 0 {
            let edits = ctx
                .route
                .map(|i| &ctx.gateway.router.routes()[i].response_headers);
            let body = apply::status_body(code);
            let trace = ctx.trace.as_mut();
            if let Err(err) =
                respond(session, code, body, None, edits, trace, &ctx.gateway.tracer).await
            {
                log::debug!("cannot send the error response downstream: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Runs last for every request, after the response was written or the request failed:
    /// logs one line for an upstream failure and ends the request's spans.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let Some(trace) = ctx.trace.take() else {
            return;
        };
        if let Some(e) = e.filter(|e| e.esource() == &ErrorSource::Upstream) {
            let req = session.req_header();
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            let route = ctx
                .route
                .map_or("-", |i| &*ctx.gateway.router.routes()[i].name);
            let backend = ctx
                .backend
                .map_or_else(|| "-".to_owned(), |b| b.to_string());
            log::error!(
                "upstream failed: {status} {} {} route={route} backend={backend} error={} attempts={} trace_id={}: {}",
                req.method,
                req.uri.path(),
                hooks::error_type(e),
                trace.attempts(),
                trace.trace_id(),
                e,
            );
        }
        hooks::finish(trace, &ctx.gateway.tracer, session, e);
    }

    /// Pingora's warning for a retried attempt is replaced by the proxy's own (see
    /// `balance`), which names the route, backend and trace and leaves the query out.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        _error: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        matches!(context, ProxyWarnLogContext::UpstreamRetry)
    }

    /// Pingora's own error line is replaced by the one `logging` writes for upstream failures
    /// (which carries the route, backend and trace id). A client that closes its connection
    /// while its request is in flight is not an error of the proxy (nginx logs it at `info` as
    /// "client prematurely closed connection"), so it is not logged either.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        match error.esource() {
            ErrorSource::Upstream => true,
            ErrorSource::Downstream => matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            ),
            _ => false,
        }
    }
}
