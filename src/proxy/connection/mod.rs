//! The connection layer in front of Pingora's HTTP handling: everything that happens on a
//! client connection outside a request.
//!
//! Pingora reads a request head with a per-read timeout and waits for a next request on a
//! keep-alive connection without any, so a client that sends one byte at a time, or nothing,
//! holds its connection (and the memory of a request in progress) for ever. [`EdgeApp`]
//! serves each connection instead, and hands Pingora one complete request at a time:
//!
//! - **Admission.** A connection counts against the process limit (derived from the file
//!   descriptor limit, or `server.max_connections`) and its listener's
//!   `listen[].max_connections`. At a limit, an idle keep-alive connection is closed to make
//!   room (nginx does the same when its connections run out); when none is idle, the new
//!   connection is closed at once. Refusals are counted, with one log line per interval.
//! - **The head.** Each HTTP/1 request head is read here, whole, within
//!   `server.header_read_timeout` (from the accept for a connection's first request, from the
//!   first byte for the next ones), and limited in size ([`head`]). An idle keep-alive
//!   connection is closed after `server.keepalive_timeout`. A slow or oversized head is
//!   answered (`408`, `414`, `431`, `400`, `505`) and closed here, logged at debug level
//!   and counted: a client cannot make the proxy write an error line.
//! - **The request.** The complete head goes to Pingora with the connection ([`Conn`]), which
//!   reads no further than the request's end when its length is known: a pipelined next
//!   request waits in the connection's buffer and is served after the response (RFC 9112
//!   §9.3.2).
//! - **HTTP/2** connections (ALPN `h2`, or the h2c preface on a listener with `http2`) go to
//!   Pingora's HTTP/2 server as they are; they count against the limits.
//!
//! An idle connection here holds its socket and a future of a few hundred bytes; the request
//! state of Pingora's proxy exists only while a request is served.

pub mod head;
mod stream;

pub use stream::{Allow, Conn};

use crate::listeners::HttpLimits;
use head::{Body, Head, Scan, Scanner};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::TracegateProxy;

/// The HTTP/2 client preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Shortest time between two log lines about the same kind of event.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A limit on connections served at once, and the idle ones that can be closed to make room.
#[derive(Debug)]
pub struct Gate {
    max: usize,
    open: AtomicUsize,
    idle: AtomicUsize,
    shed: Notify,
}

impl Gate {
    pub fn new(max: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max,
            open: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            shed: Notify::new(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a place; at the limit, closes an idle connection to make room, or refuses.
    fn enter(self: &Arc<Self>) -> Option<Place> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            if self.idle.load(Ordering::Acquire) == 0 {
                self.open.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            // Over by one until the idle connection has closed.
            self.shed.notify_one();
        }
        Some(Place(Arc::clone(self)))
    }
}

/// A connection's place in a [`Gate`], given back when dropped.
#[derive(Debug)]
struct Place(Arc<Gate>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Marks a connection idle (waiting for a next request) in its gates while alive.
struct Idle<'a>(&'a [Place]);

impl<'a> Idle<'a> {
    fn new(places: &'a [Place]) -> Idle<'a> {
        for p in places {
            p.0.idle.fetch_add(1, Ordering::AcqRel);
        }
        Idle(places)
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        for p in self.0 {
            p.0.idle.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What happened to connections outside requests, since start.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Refused at a connection limit.
    pub refused: AtomicU64,
    /// Idle keep-alive connections closed to make room for new ones.
    pub shed: AtomicU64,
    /// Closed after `keepalive_timeout` without a next request.
    pub idle_timeouts: AtomicU64,
    /// Closed because the head did not arrive within `header_read_timeout`.
    pub head_timeouts: AtomicU64,
    /// Closed by the client in the middle of a head.
    pub head_aborts: AtomicU64,
    /// Heads refused (oversized or malformed).
    pub head_refusals: AtomicU64,
    last_refused_log: AtomicU64,
    refused_logged: AtomicU64,
}

impl ConnectionStats {
    /// One warning per [`LOG_INTERVAL`] at most, with the number of refusals since the last.
    fn refused(&self, listener: Option<SocketAddr>, start: Instant) {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = start.elapsed().as_secs();
        let last = self.last_refused_log.load(Ordering::Relaxed);
        if (last == 0 || now >= last + LOG_INTERVAL.as_secs())
            && self
                .last_refused_log
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let since = total - self.refused_logged.swap(total, Ordering::Relaxed);
            log::warn!(
                "connection limit reached{}: {since} connection(s) refused since the last report ({total} in all)",
                listener.map(|a| format!(" on {a}")).unwrap_or_default()
            );
        }
    }
}

/// The gates of a Pingora service: the process-wide one and one per limited listener.
#[derive(Debug, Clone)]
pub struct Gates {
    pub process: Arc<Gate>,
    /// `(bound address, gate)` of the listeners with a `max_connections`.
    pub listeners: Vec<(SocketAddr, Arc<Gate>)>,
    pub stats: Arc<ConnectionStats>,
    pub started: Instant,
}

impl Gates {
    fn listener_of(&self, local: Option<SocketAddr>) -> Option<&Arc<Gate>> {
        let local = local?;
        self.listeners
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| {
                self.listeners
                    .iter()
                    .find(|(a, _)| a.ip().is_unspecified() && a.port() == local.port())
            })
            .map(|(_, g)| g)
    }
}

/// Serves client connections in front of Pingora's proxy (see the module documentation).
pub struct EdgeApp {
    inner: Arc<HttpProxy<TracegateProxy>>,
    limits: HttpLimits,
    gates: Gates,
    h2c: bool,
}

/// How waiting for a head ended without one.
enum NoHead {
    /// Close quietly: the client left, the connection was idle too long, it was shed, or
    /// the server is stopping.
    Close,
    /// Answer this status, then close.
    Answer(u16),
}

impl EdgeApp {
    pub fn new(inner: HttpProxy<TracegateProxy>, limits: HttpLimits, gates: Gates) -> EdgeApp {
        let h2c = inner.server_options.as_ref().is_some_and(|o| o.h2c);
        EdgeApp {
            inner: Arc::new(inner),
            limits,
            gates,
            h2c,
        }
    }

    fn admit(&self, stream: &Stream) -> Option<Vec<Place>> {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet().copied()));
        let mut places = Vec::with_capacity(2);
        let stats = &self.gates.stats;
        match self.gates.process.enter() {
            Some(p) => places.push(p),
            None => {
                stats.refused(None, self.gates.started);
                return None;
            }
        }
        if let Some(gate) = self.gates.listener_of(local) {
            match gate.enter() {
                Some(p) => places.push(p),
                None => {
                    stats.refused(local, self.gates.started);
                    return None;
                }
            }
        }
        Some(places)
    }

    /// Whether a plain connection opens with the HTTP/2 preface (h2c with prior knowledge).
    /// The bytes are read into the connection's buffer until they differ from the preface or
    /// make all of it, so a short HTTP/1 request is not held waiting for 24 bytes.
    async fn h2c_preface(&self, conn: &mut Conn) -> bool {
        let deadline = Instant::now() + self.limits.header_read_timeout;
        loop {
            let seen = &conn.buf[..conn.buf.len().min(H2_PREFACE.len())];
            if !H2_PREFACE.starts_with(seen) {
                return false;
            }
            if seen.len() == H2_PREFACE.len() {
                return true;
            }
            match tokio::time::timeout_at(deadline.into(), conn.read_more()).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Ok(_)) => {
                    conn.set_eof();
                    return false;
                }
                _ => return false,
            }
        }
    }

    /// Waits for the next complete request head on `conn`.
    async fn next_head(
        &self,
        conn: &mut Conn,
        first: bool,
        places: &[Place],
        shutdown: &mut ShutdownWatch,
    ) -> Result<Head, NoHead> {
        let limits = &self.limits;
        let stats = &self.gates.stats;
        let mut scanner = Scanner::default();
        let wait_start = Instant::now();
        // The first request's head is due `header_read_timeout` after the accept; a next
        // one's after its first byte, and that byte after `keepalive_timeout`.
        let mut head_deadline = first.then(|| wait_start + limits.header_read_timeout);
        loop {
            if !conn.buf.is_empty() {
                match scanner.scan(&conn.buf, limits) {
                    Scan::Complete(head) => return Ok(head),
                    Scan::Refuse(r) => {
                        stats.head_refusals.fetch_add(1, Ordering::Relaxed);
                        log::debug!("request head refused ({}): {}", r.status(), r.reason());
                        return Err(NoHead::Answer(r.status()));
                    }
                    Scan::Partial => {}
                }
                head_deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout);
            }
            if conn.eof() {
                if !conn.buf.is_empty() {
                    stats.head_aborts.fetch_add(1, Ordering::Relaxed);
                    log::debug!("client closed the connection in the middle of a request head");
                }
                return Err(NoHead::Close);
            }
            let idle = conn.buf.is_empty();
            let deadline = head_deadline.unwrap_or(wait_start + limits.keepalive_timeout);
            let _idle = idle.then(|| Idle::new(places));
            let shed = async {
                match places {
                    [p] => p.0.shed.notified().await,
                    [p, q] => tokio::select! {
                        _ = p.0.shed.notified() => {},
                        _ = q.0.shed.notified() => {},
                    },
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                read = conn.read_more() => match read {
                    Ok(0) => conn.set_eof(),
                    Ok(_) => {}
                    Err(e) => {
                        log::debug!("client connection read error between requests: {e}");
                        return Err(NoHead::Close);
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if idle && !first {
                        stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                        return Err(NoHead::Close);
                    }
                    stats.head_timeouts.fetch_add(1, Ordering::Relaxed);
                    log::debug!("request head not received within {:?}", limits.header_read_timeout);
                    return Err(if idle { NoHead::Close } else { NoHead::Answer(408) });
                }
                _ = shed, if idle => {
                    stats.shed.fetch_add(1, Ordering::Relaxed);
                    return Err(NoHead::Close);
                }
                _ = shutdown.changed(), if idle => return Err(NoHead::Close),
            }
        }
    }

    /// Serves the HTTP/1 requests of a connection, one after the other.
    async fn serve_h1(&self, mut conn: Box<Conn>, places: Vec<Place>, shutdown: &ShutdownWatch) {
        let mut watch = shutdown.clone();
        let mut served: u32 = 0;
        loop {
            let head = match self
                .next_head(&mut conn, served == 0, &places, &mut watch)
                .await
            {
                Ok(h) => h,
                Err(NoHead::Close) => return,
                Err(NoHead::Answer(status)) => {
                    answer_and_close(&mut conn, status).await;
                    return;
                }
            };
            conn.serve(match head.body {
                Body::Length(n) => Allow::Bytes((head.len as u64).saturating_add(n)),
                Body::Open => Allow::All,
            });
            served += 1;
            let mut session = ServerSession::new_http1(conn);
            session.set_read_timeout(Some(self.limits.body_read_timeout));
            if *shutdown.borrow()
                || served >= self.limits.max_requests_per_connection
                || self.limits.keepalive_timeout.is_zero()
            {
                session.set_keepalive(None);
            } else {
                session.set_keepalive(Some(self.limits.keepalive_timeout.as_secs().max(1)));
            }
            let Some(reused) = self.inner.process_new_http(session, shutdown).await else {
                return;
            };
            let (stream, _settings) = reused.consume();
            conn = match stream.into_any().downcast::<Conn>() {
                Ok(c) => c,
                Err(_) => return,
            };
            conn.idle();
        }
    }
}

/// Answers a head refused before it reached the parser, and closes. These answers come before
/// any request exists, so they are the only ones not written by [`super::respond`].
async fn answer_and_close(conn: &mut Conn, status: u16) {
    let reason = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let answer =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let io = conn.io();
    let write = async {
        io.write_all(answer.as_bytes()).await?;
        io.flush().await
    };
    // A client that does not read is not waited for.
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
    let _ = io.shutdown().await;
}

#[async_trait::async_trait]
impl ServerApp for EdgeApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let places = self.admit(&stream)?;
        let tls = stream.get_ssl_digest().is_some();
        if tls && matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            let _places = places;
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let mut conn = Box::new(Conn::new(stream));
        if !tls && self.h2c && self.h2c_preface(&mut conn).await {
            // Pingora's HTTP/2 server reads the preface again, from the buffer.
            let _places = places;
            conn.serve(Allow::All);
            return ServerApp::process_new(&self.inner, conn, shutdown).await;
        }
        self.serve_h1(conn, places, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(&*self.inner).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_gate_sheds_an_idle_connection_or_refuses() {
        let gate = Gate::new(2);
        let a = gate.enter().expect("first");
        let b = gate.enter().expect("second");
        assert!(gate.enter().is_none(), "full, nothing idle: refused");
        assert_eq!(gate.open(), 2, "a refusal gives its place back");
        let places = [a];
        let idle = Idle::new(&places);
        let c = gate
            .enter()
            .expect("full with an idle connection: admitted");
        assert_eq!(gate.open(), 3, "over by one until the idle one closes");
        drop(idle);
        drop(places);
        assert_eq!(gate.open(), 2);
        drop((b, c));
        assert_eq!(gate.open(), 0);
    }
}
