//! The `ProxyHttp` implementation: tracegate's request path on Pingora, and the rest of the
//! Pingora glue.
//!
//! Each phase method only delegates: routing and filters to [`crate::routing`], backend choice
//! to [`crate::upstream`], tracing to [`crate::trace`], the record of a finished request to
//! [`crate::observe`]. Phases run in this order for a proxied request: `early_request_filter`
//! → `request_filter` → `upstream_peer` → `connected_to_upstream` → `upstream_request_filter`
//! → `upstream_response_filter` → `response_filter` → `upstream_response_body_filter`… →
//! `logging`. On failure `fail_to_connect` or `error_while_proxy`, then `fail_to_proxy`, and
//! `logging` still runs last.
//!
//! - `downstream`: the [`Downstream`] facts, read once per request.
//! - `target`: the request target, settled once per request: the path normalised in place
//!   (`server.path`), the Host's IDNA labels checked.
//! - `head`: request-head strictness (Host, request-target forms), checked once per request.
//! - `interim`: the backend's interim (1xx) responses: how many, which reach the client, and
//!   the wait for the final response.
//! - `apply`: the router's decisions on Pingora's heads (rewrites, forwarding headers, edits).
//! - `respond`: the one writer of the proxy's own answers.
//! - `balance`: the proxy's side of backend choice, retries and failures.
//! - `errors`: what a Pingora error means (`error.type`, timeout, status).
//! - `finish`: the end of a request: its [`crate::exchange::Exchange`] and its consumers.
//! - [`gateway`]: the routing state of one config generation; [`peer`]: Pingora peers;
//!   [`listeners`]: Pingora services for the listeners.

mod apply;
mod balance;
pub mod connection;
mod downstream;
pub mod errors;
mod finish;
pub mod gateway;
mod head;
mod interim;
pub mod listeners;
mod middleware;
pub mod peer;
mod respond;
mod target;

pub use gateway::{Gateway, SharedGateway, Upstream};

use crate::exchange::{AttemptRecord, Downstream};
use crate::routing::{Answer, Chain, EncodedSet, Route, Verdict};
use crate::trace::{hooks, RequestInfo, RequestTrace};
use crate::upstream::Attempts;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::{Error, ErrorSource, Result};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The proxy: the live routing state. Shared by all worker threads.
pub struct TracegateProxy {
    gateway: SharedGateway,
    /// Filters that run before the router for every request (the HTTPS redirect of plain
    /// listeners); empty when there are none, so requests pay nothing for them.
    entry: Chain,
}

/// Per-request state carried between phases.
pub struct RequestCtx {
    /// The routing state this request started with (a reload does not change it mid-request).
    gateway: Arc<Gateway>,
    /// Facts about the connection and the request head, read in `early_request_filter`.
    downstream: Downstream,
    /// The request target as settled in `early_request_filter`: the refusable encodings its
    /// normalised path keeps (for the matched route to allow), or why it is refused.
    target: Result<EncodedSet, target::Refused>,
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
    /// The backend's interim (1xx) responses so far, and the wait for the final one.
    interim: interim::Interim,
    /// When the request head had been read (wall clock and monotonic), for the request's
    /// record: Pingora creates the context right after it has read the head.
    started: (SystemTime, Instant),
    /// Each upstream attempt as the proxy timed it (for the access log and the metrics,
    /// whether or not the request is traced).
    attempts: Vec<AttemptRecord>,
    /// Counts the request in `http_server_active_requests` while alive (metrics on).
    active: Option<crate::observe::metrics::ActiveRequest>,
    /// What the route's middlewares left for the body and response phases.
    mw: middleware::MiddlewareState,
}

impl TracegateProxy {
    /// A proxy serving `gateway`; a reload stores a new [`Gateway`] in the same handle.
    pub fn new(gateway: SharedGateway) -> Self {
        TracegateProxy {
            gateway,
            entry: Chain::default(),
        }
    }

    /// The proxy running `entry` on every request before the router (e.g. the HTTPS redirect
    /// of plain listeners).
    pub fn with_entry_filters(mut self, entry: Chain) -> Self {
        self.entry = entry;
        self
    }

    /// Refuses a request target refused in `early_request_filter`, runs the entry filters,
    /// routes the request (applying the route's sampling ratio), refuses encodings the route
    /// does not allow, and runs the route's filters. `Some`: the proxy answers the request
    /// itself.
    fn route(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Answer> {
        let kept = match ctx.target {
            Ok(kept) => kept,
            Err(refused) => return Some(bad_target(session, None, refused)),
        };
        let req = apply::filter_request(session, &ctx.downstream);
        if !self.entry.is_empty() {
            if let Verdict::Answer(a) = self.entry.run(&req) {
                return Some(a);
            }
        }
        let Some(i) = ctx.gateway.router.find(&req.head) else {
            return Some(Answer::new(
                404,
                Bytes::from_static(b"404 Not Found: no route matches this request\n"),
            ));
        };
        ctx.route = Some(i);
        let route = &ctx.gateway.router.routes()[i];
        if let Some(t) = &mut ctx.trace {
            t.set_route(route.name.clone());
            if let Some(ratio) = route.sample_ratio {
                t.apply_route_ratio(&ctx.gateway.tracer, ratio);
            }
        }
        // The path was normalised allowing what any route allows; this route decides.
        if let Err(e) = ctx.gateway.router.check_encoded(route, kept) {
            return Some(bad_target(session, Some(route), target::Refused::Path(e)));
        }
        if let Verdict::Answer(a) = route.filters.run(&req) {
            return Some(a);
        }
        None
    }

    /// The matched route's action, once its middlewares let the request through: a `respond`
    /// or `redirect` route answers; a proxy route computes the path it sends upstream.
    fn action(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Answer> {
        let req = apply::filter_request(session, &ctx.downstream);
        let route = ctx.route()?;
        match apply::decide(session, &req, route) {
            apply::Decision::Proxy(uri) => {
                ctx.upstream_uri = uri;
                None
            }
            apply::Decision::Answer(a) => Some(a),
        }
    }
}

impl RequestCtx {
    fn upstream(&self) -> Option<&Upstream> {
        self.gateway.upstream_of(self.route?)
    }

    /// The matched route.
    fn route(&self) -> Option<&Route> {
        self.gateway.router.routes().get(self.route?)
    }

    /// Records a failed upstream attempt, on its CLIENT span too.
    fn attempt_failed(&mut self, e: &Error) {
        if let Some(a) = self.attempts.last_mut() {
            a.failed(errors::error_type(e));
        }
        if let Some(t) = &mut self.trace {
            t.attempt_failed(Cow::Borrowed(errors::error_type(e)), e.to_string());
        }
    }
}

/// The 400 of a refused request target, with one log line (at `info`: a client's mistake, or a
/// scanner's, not the proxy's).
fn bad_target(session: &Session, route: Option<&Route>, refused: target::Refused) -> Answer {
    let req = session.req_header();
    log::info!(
        "bad request: 400 {} {} route={}: {refused}",
        req.method,
        req.uri.path(),
        route.map_or("-", |r| &*r.name),
    );
    refused.answer()
}

/// What the tracing plugin needs of the request: its head, with the facts of `downstream`.
fn request_info<'a>(session: &'a Session, downstream: &'a Downstream) -> RequestInfo<'a> {
    let req = session.req_header();
    RequestInfo {
        method: &req.method,
        uri: &req.uri,
        version: req.version,
        headers: &req.headers,
        scheme: if downstream.tls { "https" } else { "http" },
        host: downstream.host(),
        host_port: downstream.port(),
        client_addr: downstream.client,
        local_port: downstream.local.map(|a| a.port()),
    }
}

#[async_trait]
impl ProxyHttp for TracegateProxy {
    type CTX = RequestCtx;

    /// Runs once per request, right after its head was read and before any phase: a context
    /// holding the current routing state and the request's start time.
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            gateway: self.gateway.load_full(),
            downstream: Downstream::default(),
            target: Ok(EncodedSet::NONE),
            trace: None,
            route: None,
            upstream: Attempts::default(),
            backend: None,
            upstream_uri: None,
            interim: interim::Interim::default(),
            started: (SystemTime::now(), Instant::now()),
            attempts: Vec::new(),
            active: None,
            mw: middleware::MiddlewareState::default(),
        }
    }

    /// Runs first, right after the request head is read: reads the request's downstream facts
    /// once, normalises its path in place (a refusal is answered in `request_filter`) and
    /// starts its trace (continuing a valid incoming `traceparent`), so everything after it is
    /// inside the SERVER span and sees the normalised path.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.downstream = downstream::read(session);
        if let Some(m) = &ctx.gateway.metrics {
            ctx.active = Some(
                m.metrics()
                    .request_started(&session.req_header().method, ctx.downstream.tls),
            );
        }
        ctx.target = target::settle(session, &ctx.downstream, ctx.gateway.router.path_policy());
        let info = request_info(session, &ctx.downstream);
        ctx.trace = Some(RequestTrace::start(&ctx.gateway.tracer, &info));
        Ok(())
    }

    /// Refuses a request head that breaks HTTP's rules (`head`: 400, or answers `OPTIONS *`),
    /// answers a refused request target with 400, then runs the entry filters (the HTTPS
    /// redirect of a listener with `redirect_https`), then routes the request (and applies the
    /// route's own sampling ratio) and runs the route's
    /// filters. No route: 404. A `respond` or `redirect` route answers here; a proxy route
    /// computes the path it sends upstream. Returns `true` when the response has been written
    /// and proxying stops.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let mut answer = head::check(session.req_header()).or_else(|| self.route(session, ctx));
        if answer.is_none() {
            answer = middleware::request(session, ctx).await;
        }
        if answer.is_none() {
            answer = self.action(session, ctx);
        }
        match answer {
            Some(answer) => {
                respond::write(session, ctx, answer).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Runs for each chunk of the request body on its way upstream: the route's `body_limit`
    /// counts it, and past the limit the upstream request is aborted with a 413.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        middleware::request_body(ctx, body)
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
        balance::peer_for_attempt(session, ctx)
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
        if let Some(a) = ctx.attempts.last_mut() {
            a.connect = if reused {
                None
            } else {
                hooks::connect_duration(digest)
            };
        }
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
        if let (Some(route), Some(up)) = (ctx.route(), ctx.upstream()) {
            let target = apply::UpstreamTarget {
                uri: ctx.upstream_uri.as_ref(),
                backend: ctx.backend,
                pass_host: &up.pool.pass_host,
                forwarded: ctx.gateway.router.forwarded(),
            };
            apply::prepare_upstream_request(
                session,
                &ctx.downstream,
                upstream_request,
                route,
                target,
            )?;
        }
        middleware::upstream_request(ctx, upstream_request)?;
        if let Some(t) = &ctx.trace {
            hooks::inject(t, upstream_request)?;
        }
        ctx.interim.sent();
        Ok(())
    }

    /// Runs when an upstream response head arrives. An interim (1xx) one is only counted and
    /// passed on or dropped (`interim`); for the final one: time to first byte and status,
    /// and a success for the backend's passive health (no retry after this).
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if interim::head(session, &mut ctx.interim, upstream_response)? {
            return Ok(());
        }
        balance::responded(ctx);
        if let Some(a) = ctx.attempts.last_mut() {
            a.responded(upstream_response.status.as_u16());
        }
        if let Some(t) = &mut ctx.trace {
            hooks::upstream_response(t, upstream_response);
        }
        Ok(())
    }

    /// Runs before the upstream's response head goes downstream: applies the route's
    /// `response_headers` edits, the `cors` headers and the choice to `compress`, records the response headers on the capture allowlist and adds
    /// the trace response headers (`traceresponse`, the trace-id header) when configured. An
    /// interim (1xx) head goes on as the backend sent it.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if interim::is_interim(upstream_response) {
            return Ok(());
        }
        if let Some(route) = ctx.route() {
            apply::apply_response_edits(&route.response_headers, upstream_response)?;
        }
        middleware::response_head(session, ctx, upstream_response)?;
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
        if end_of_stream {
            if let Some(a) = ctx.attempts.last_mut() {
                a.done();
            }
        }
        if let Some(t) = &mut ctx.trace {
            hooks::upstream_body(t, end_of_stream);
        }
        Ok(None)
    }

    /// Runs for each chunk of the body on its way downstream: `compress` compresses it.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        middleware::response_body(ctx, body, end_of_stream)?;
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
        ctx.attempt_failed(&e);
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
        ctx.attempt_failed(&e);
        let mut e = e.more_context(format!("Peer: {peer}"));
        let retry = balance::proxy_failed(session, ctx, &e, client_reused);
        e.set_retry(retry);
        e
    }

    /// Runs when the request failed for good: answers 504 for upstream timeouts, 502 for other
    /// upstream failures, and Pingora's defaults otherwise ([`errors::status_for`]), with the
    /// route's `response_headers` edits.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = errors::status_for(e);
        if code > 0 {
            if let Err(err) = respond::write(session, ctx, Answer::status(code)).await {
                log::debug!("cannot send the error response downstream: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Runs last for every request, after the response was written or the request failed:
    /// builds the request's record and hands it to its consumers (the error line of an
    /// upstream failure, the access log, the end of the request's spans).
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        finish::finish(session, ctx, e);
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
    /// (which carries the route, backend and trace id). What a client does wrong is not an
    /// error of the proxy: one that closes its connection while its request is in flight
    /// (nginx logs it at `info` as "client prematurely closed connection"), stalls its body
    /// past `body_read_timeout` or sends a malformed body gets its answer and a debug line.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        match error.esource() {
            ErrorSource::Upstream => true,
            // Whatever a client does wrong (goes away, stalls its body, sends a bad chunk) is
            // answered and logged at debug level: a client must not be able to write error
            // lines.
            ErrorSource::Downstream => {
                log::debug!("client error: {error}");
                true
            }
            _ => false,
        }
    }
}
