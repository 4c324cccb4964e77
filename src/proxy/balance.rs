//! The proxy's side of backend choice, retries and failures: it picks each attempt's backend
//! and builds its peer, reads the hash key from the request, bounds an attempt's timeouts by
//! the pool's total `timeout`, turns Pingora errors into [`Failure`]s and logs a retried
//! attempt. The decisions themselves are made by
//! [`crate::upstream::UpstreamPool`].

use super::{errors, RequestCtx};
use crate::exchange::AttemptRecord;
use crate::upstream::{Failure, FailureStage, HashKey, UpstreamPool};
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType, RetryType};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The next attempt of a proxied request: its backend (chosen by the pool's `lb`; a retry
/// takes one not tried yet), its CLIENT span (with the path sent upstream) and its Pingora
/// peer, bounded by the time the pool's `timeout` leaves.
pub(super) fn peer_for_attempt(
    session: &Session,
    ctx: &mut RequestCtx,
) -> pingora::Result<Box<HttpPeer>> {
    let gateway = Arc::clone(&ctx.gateway);
    let Some(up) = ctx.route.and_then(|r| gateway.upstream_of(r)) else {
        return Error::e_explain(
            ErrorType::InternalError,
            "upstream_peer without a proxy route",
        );
    };
    let pool = &up.pool;
    let key = hash_key(pool, session, ctx.downstream.client_ip());
    let Ok(idx) = pool.begin_attempt(&mut ctx.upstream, key.as_ref().map(|k| k.as_bytes())) else {
        return Err(out_of_time(pool));
    };
    let backend = pool.backends[idx];
    ctx.backend = Some(backend);
    if let Some(t) = &mut ctx.trace {
        let sent = ctx
            .upstream_uri
            .as_ref()
            .unwrap_or(&session.req_header().uri);
        t.begin_attempt(
            &gateway.tracer,
            pool.name.clone(),
            backend,
            sent.path().to_owned(),
        );
        if up.peer.is_tls() {
            t.set_attempt_tls();
        }
    }
    let span_id = ctx.trace.as_ref().and_then(|t| t.attempt_span_id());
    ctx.attempts
        .push(AttemptRecord::begin(backend, span_id.map(|s| s.0)));
    let mut peer = up.peer.peer(pool, backend, session.is_upgrade_req());
    if let Some(left) = ctx.upstream.time_left() {
        limit_to(&mut peer, left);
    }
    ctx.interim.attempt(peer.options.read_timeout);
    Ok(peer)
}

/// The request's key for `lb: hash` (a header, a cookie or the TCP peer's address), or `None`
/// for other pools and for requests without one.
fn hash_key<'a>(
    pool: &UpstreamPool,
    session: &'a Session,
    client: Option<IpAddr>,
) -> Option<HashKey<'a>> {
    let rule = pool.hash_on()?;
    rule.key(&session.req_header().headers, client)
}

/// Caps every timeout of the attempt at `left`, the time the pool's `timeout` still allows.
/// Pingora keeps one read timeout per attempt, so this also caps each wait for a body chunk.
fn limit_to(peer: &mut HttpPeer, left: Duration) {
    let o = &mut peer.options;
    for t in [
        &mut o.connection_timeout,
        &mut o.total_connection_timeout,
        &mut o.read_timeout,
        &mut o.write_timeout,
    ] {
        *t = Some(t.map_or(left, |d| d.min(left)));
    }
}

/// The error when the pool's `timeout` ran out before another attempt could begin (504).
fn out_of_time(pool: &UpstreamPool) -> Box<Error> {
    let total = pool.timeouts.total.unwrap_or_default();
    Error::explain(
        ErrorType::ReadTimedout,
        format!("upstream {}: timeout {total:?} ran out", pool.name),
    )
    .into_up()
}

/// Connecting failed: nothing was sent. Counts it against the backend and says whether to
/// try again.
pub(super) fn connect_failed(session: &Session, ctx: &mut RequestCtx, e: &Error) -> bool {
    let failure = Failure {
        stage: FailureStage::Connect,
        replayable: true,
        reason: errors::error_type(e),
    };
    failed(session, ctx, failure)
}

/// The attempt failed after the connection was made. Only the backend's side counts (a client
/// that went away or a filter's error is not the backend's failure, and is not retried). The
/// request is replayable when its method is idempotent, its body is still fully in Pingora's
/// retry buffer and no response has gone downstream.
pub(super) fn proxy_failed(
    session: &Session,
    ctx: &mut RequestCtx,
    e: &Error,
    client_reused: bool,
) -> bool {
    if e.esource() != &ErrorSource::Upstream {
        return false;
    }
    // A pooled keep-alive connection the backend had closed (Pingora marks such errors
    // "retry only if reused"), or an HTTP/2 backend asking for HTTP/1: the connection failed,
    // not the backend.
    let stale = (client_reused && matches!(e.retry, RetryType::ReusedOnly))
        || e.etype() == &ErrorType::H2Downgrade;
    let failure = Failure {
        stage: if stale {
            FailureStage::StaleConnection
        } else {
            FailureStage::Sent
        },
        replayable: session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none(),
        reason: errors::error_type(e),
    };
    failed(session, ctx, failure)
}

fn failed(session: &Session, ctx: &mut RequestCtx, failure: Failure) -> bool {
    let Some(pool) = ctx
        .route
        .and_then(|r| ctx.gateway.upstream_of(r))
        .map(|u| &u.pool)
    else {
        return false;
    };
    let retry = pool.attempt_failed(&mut ctx.upstream, failure);
    if retry {
        let req = session.req_header();
        log::warn!(
            "upstream attempt failed, trying again: {} {} route={} backend={} error={} attempt={} trace_id={}",
            req.method,
            req.uri.path(),
            ctx.route.map_or("-", |i| &*ctx.gateway.router.routes()[i].name),
            ctx.backend.map_or_else(|| "-".to_owned(), |b| b.to_string()),
            failure.reason,
            ctx.upstream.count(),
            ctx.trace.as_ref().map_or_else(|| "-".to_owned(), |t| t.trace_id().to_string()),
        );
    }
    retry
}

/// The upstream response head arrived: a success for passive health; no retry after this.
pub(super) fn responded(ctx: &mut RequestCtx) {
    if let Some(pool) = ctx
        .route
        .and_then(|r| ctx.gateway.upstream_of(r))
        .map(|u| &u.pool)
    {
        pool.attempt_responded(&mut ctx.upstream);
    }
}
