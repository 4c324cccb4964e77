//! The `forward_auth` middleware's core: the sub-request to an external auth server and what
//! its answer means, on Traefik's `forwardAuth` contract.
//!
//! For each client request, a `GET` to the configured address carries the client's headers
//! (minus hop-by-hop and framing headers, no body) and `X-Forwarded-Method`, `-Proto`, `-Host`,
//! `-Uri` and `-For`. A 2xx answer lets the request go on, with the configured
//! `response_headers` copied from the answer onto the upstream request (replacing whatever the
//! client sent under those names); any other answer goes back to the client as it is (status,
//! end-to-end headers, a bounded body); no answer in time is a 504, no answer at all a 502.
//!
//! The client is hyper's HTTP/1.1 client with hyper-util's pooled keep-alive `Client`, and every
//! call runs on one small runtime of its own (one thread, started at the first check), not on
//! the caller's. hyper-util spawns each connection's task on the runtime current when the
//! connection is made, and a pooled connection can be taken from the pool by a request on any
//! runtime: Pingora runs one runtime per service (and, without work stealing, one per thread),
//! so a connection made on one would be read and written by that runtime's reactor while a
//! request on another waits for it, and stall whenever the first is busy. On the dedicated
//! runtime all of a `ForwardAuth`'s connections live on one reactor whatever runtime the caller
//! is on, so keep-alive works across all of them (`tests/auth_parts.rs` checks that a call from
//! another runtime reuses the pooled connection). The cost is a cross-thread wake-up each way,
//! microseconds beside the exchange itself: 200 checks against that test's loopback auth server
//! take about 0.46 ms each in a debug build, auth server included. The work on the thread is
//! writing a request head and parsing an answer's; should it ever be the bottleneck, a
//! multi-threaded runtime of two workers is a one-line change. The thread is started lazily
//! because daemon mode forks after the config is loaded, and a thread started before the fork
//! does not exist in the child.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The most of an auth server's answer body that is kept: 64 KiB. A longer one (a deny page is
/// usually a few KiB) is cut there, and the cut is logged.
pub const BODY_MAX_BYTES: usize = 64 << 10;
/// How long an idle keep-alive connection to the auth server stays in the pool.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many idle connections to the auth server are kept, at most.
pub const POOL_MAX_IDLE: usize = 64;

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Connection management and framing (RFC 9110 §7.6.1, and the older `Keep-Alive`,
/// `Proxy-Connection`): never copied from one message to another.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the config says about one `forward_auth` middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuthSettings {
    /// The auth server: `http://host[:port]/path?query` (https:// is refused at load).
    pub address: Uri,
    /// Copied from a 2xx answer onto the upstream request.
    pub response_headers: Vec<HeaderName>,
    /// For the whole call: connecting, the answer's head and its body.
    pub timeout: Duration,
    /// Traefik's `trustForwardHeader`: keep the client's `X-Forwarded-*` headers instead of
    /// replacing them.
    pub trust_forward_header: bool,
}

/// One `forward_auth` middleware: its settings and its pooled client. `Send + Sync`; one per
/// middleware and config generation.
pub struct ForwardAuth {
    address: Uri,
    /// The `Host` of the sub-request: the address's authority.
    host: HeaderValue,
    response_headers: Arc<[HeaderName]>,
    timeout: Duration,
    trust_forward_header: bool,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("address", &self.address)
            .field("response_headers", &self.response_headers)
            .field("timeout", &self.timeout)
            .field("trust_forward_header", &self.trust_forward_header)
            .finish_non_exhaustive()
    }
}

/// The client request an auth check is made for.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    pub method: &'a Method,
    /// `http` or `https`: how the client reached the proxy.
    pub scheme: &'a str,
    pub host: Option<&'a str>,
    /// Path and query as the client sent them.
    pub uri: &'a str,
    /// Already resolved through `forwarded.trusted` by the caller.
    pub client_ip: Option<IpAddr>,
    /// The original request headers.
    pub headers: &'a HeaderMap,
    /// Injected by the caller's tracing: sent as `traceparent` (replacing the client's, and the
    /// client's `tracestate` with it). None: the client's, if any, are sent as they came.
    pub traceparent: Option<HeaderValue>,
    pub tracestate: Option<HeaderValue>,
}

/// What the auth server's answer means for the client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// 2xx: go on. First remove every header named in `remove` from the upstream request (all
    /// the configured `response_headers`, so that a client cannot send its own `X-User`), then
    /// add `set` (the answer's values of those headers, in order, repeated names included).
    Pass {
        set: Vec<(HeaderName, HeaderValue)>,
        remove: Vec<HeaderName>,
    },
    /// Any other answer, to return to the client as it is: the status, the headers minus
    /// hop-by-hop and framing ones (`Content-Length`: the body may have been cut), the body (at
    /// most [`BODY_MAX_BYTES`]).
    Deny {
        status: u16,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
    /// No answer: `status` is what the client gets, 504 when the auth server did not answer
    /// within the timeout, 502 when it could not be reached or its answer was broken.
    /// `error_type` is a stable `error.type` name (`timeout`, `connection_refused`,
    /// `connect_error`, `connection_closed`, `protocol_error`, `io_error`, `_OTHER`).
    Failed {
        status: u16,
        error_type: &'static str,
        message: String,
    },
}

/// One auth check: its outcome and what a client span of it needs.
#[derive(Debug, Clone)]
pub struct AuthCall {
    pub outcome: AuthOutcome,
    pub start: SystemTime,
    pub end: SystemTime,
    /// The auth server's status, when it answered.
    pub status: Option<u16>,
    /// The auth server's address, when a connection was made.
    pub peer: Option<SocketAddr>,
}

/// An answer read within the limits.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    peer: Option<SocketAddr>,
}

struct Failure {
    status: u16,
    error_type: &'static str,
    message: String,
}

impl ForwardAuth {
    /// Checks the settings and builds the client (no connection is made yet).
    pub fn new(settings: ForwardAuthSettings) -> Result<ForwardAuth, String> {
        let address = settings.address;
        match address.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{address}: https:// auth servers are not supported; use http:// (an auth \
                     server on the same host or network)"
                ))
            }
            Some(s) => return Err(format!("{address}: scheme {s:?} is not http://")),
            None => return Err(format!("{address}: give an absolute http:// address")),
        }
        let authority = address
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| format!("{address}: no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{address}: user information in the address is not supported"
            ));
        }
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("{address}: host: {e}"))?;
        if settings.timeout.is_zero() {
            return Err("timeout: must be more than 0".to_string());
        }
        for name in &settings.response_headers {
            if is_hop_by_hop(name)
                || name == header::HOST
                || name == header::CONTENT_LENGTH
                || name == header::TRANSFER_ENCODING
            {
                return Err(format!(
                    "response_headers: {name} cannot be copied: it belongs to one connection \
                     or message"
                ));
            }
        }
        let mut connector = HttpConnector::new();
        connector.enforce_http(true);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .build(connector);
        Ok(ForwardAuth {
            address,
            host,
            response_headers: settings.response_headers.into(),
            timeout: settings.timeout,
            trust_forward_header: settings.trust_forward_header,
            client,
        })
    }

    /// Asks the auth server about `req`. Never takes much longer than the timeout; needs a tokio
    /// runtime with a timer (any of Pingora's).
    pub async fn check(&self, req: &AuthRequest<'_>) -> AuthCall {
        let start = SystemTime::now();
        let (outcome, status, peer) = match self.call(req).await {
            Ok(a) => (
                self.outcome(a.status, a.headers, a.body),
                Some(a.status),
                a.peer,
            ),
            Err(f) => (
                AuthOutcome::Failed {
                    status: f.status,
                    error_type: f.error_type,
                    message: f.message,
                },
                None,
                None,
            ),
        };
        AuthCall {
            outcome,
            start,
            end: SystemTime::now(),
            status,
            peer,
        }
    }

    /// The auth server's address.
    pub fn address(&self) -> &Uri {
        &self.address
    }

    /// Runs the exchange on the auth runtime, within the timeout.
    async fn call(&self, req: &AuthRequest<'_>) -> Result<Answer, Failure> {
        let runtime = auth_runtime().map_err(|message| Failure {
            status: 502,
            error_type: "_OTHER",
            message,
        })?;
        let mut request = http::Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = self.address.clone();
        *request.headers_mut() = self.headers_for(req);
        let client = self.client.clone();
        let address = self.address.clone();
        let task = AbortOnDrop(runtime.spawn(exchange(client, request, address)));
        match tokio::time::timeout(self.timeout, task).await {
            Ok(result) => result,
            Err(_) => Err(Failure {
                status: 504,
                error_type: "timeout",
                message: format!(
                    "auth server {} did not answer within {:?}",
                    self.address, self.timeout
                ),
            }),
        }
    }

    /// The sub-request's headers for `req` (Traefik's `forwardAuth`): the client's end-to-end
    /// headers, `Host` the auth server's, the `X-Forwarded-*` set, the caller's trace context.
    fn headers_for(&self, req: &AuthRequest<'_>) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(req.headers.len() + 8);
        let listed = connection_listed(req.headers);
        let ours_trace = req.traceparent.is_some();
        for (name, value) in req.headers {
            let drop = is_hop_by_hop(name)
                || listed.contains(name)
                || name == header::HOST
                || name == header::CONTENT_LENGTH
                || (!self.trust_forward_header && is_forwarding(name))
                || (ours_trace && (name == TRACEPARENT || name == TRACESTATE));
            if !drop {
                out.append(name.clone(), value.clone());
            }
        }
        out.insert(header::HOST, self.host.clone());
        let forwarded = [
            (X_FORWARDED_METHOD, value_of(req.method.as_str())),
            (X_FORWARDED_PROTO, value_of(req.scheme)),
            (X_FORWARDED_HOST, req.host.and_then(value_of)),
            (X_FORWARDED_URI, value_of(req.uri)),
            (
                X_FORWARDED_FOR,
                req.client_ip.and_then(|ip| value_of(&ip.to_string())),
            ),
        ];
        for (name, value) in forwarded {
            if self.trust_forward_header && out.contains_key(&name) {
                continue;
            }
            if let Some(v) = value {
                out.insert(name, v);
            }
        }
        if let Some(tp) = &req.traceparent {
            out.insert(TRACEPARENT, tp.clone());
            if let Some(ts) = &req.tracestate {
                out.insert(TRACESTATE, ts.clone());
            }
        }
        out
    }

    /// What an answer means: 2xx passes with the configured headers, anything else denies.
    fn outcome(&self, status: u16, headers: HeaderMap, body: Bytes) -> AuthOutcome {
        if (200..300).contains(&status) {
            let mut set = Vec::new();
            for name in self.response_headers.iter() {
                for v in headers.get_all(name) {
                    set.push((name.clone(), v.clone()));
                }
            }
            return AuthOutcome::Pass {
                set,
                remove: self.response_headers.to_vec(),
            };
        }
        AuthOutcome::Deny {
            status,
            headers: end_to_end(&headers),
            body,
        }
    }
}

/// The exchange on the auth runtime: send, read the head, read the body up to the limit.
async fn exchange(
    client: Client<HttpConnector, Empty<Bytes>>,
    request: http::Request<Empty<Bytes>>,
    address: Uri,
) -> Result<Answer, Failure> {
    let response = client
        .request(request)
        .await
        .map_err(|e| client_failure(&address, &e))?;
    let peer = response
        .extensions()
        .get::<HttpInfo>()
        .map(|i| i.remote_addr());
    let (parts, mut body) = response.into_parts();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure {
            status: 502,
            error_type: hyper_error_type(&e),
            message: format!("auth server {address}: reading the answer's body: {e}"),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > BODY_MAX_BYTES {
            buf.extend_from_slice(&data[..BODY_MAX_BYTES - buf.len()]);
            log::warn!(
                "forward_auth {address}: the {} answer's body is longer than {} KiB; cut",
                parts.status.as_u16(),
                BODY_MAX_BYTES >> 10
            );
            break;
        }
        buf.extend_from_slice(&data);
    }
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: buf.freeze(),
        peer,
    })
}

fn client_failure(address: &Uri, e: &hyper_util::client::legacy::Error) -> Failure {
    let detail = error_chain(e);
    let error_type = if e.is_connect() {
        if io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused) {
            "connection_refused"
        } else if io_kind(e) == Some(std::io::ErrorKind::TimedOut) {
            "timeout"
        } else {
            "connect_error"
        }
    } else {
        match std::error::Error::source(e).and_then(|s| s.downcast_ref::<hyper::Error>()) {
            Some(h) => hyper_error_type(h),
            None => "_OTHER",
        }
    };
    Failure {
        status: if error_type == "timeout" { 504 } else { 502 },
        error_type,
        message: format!("auth server {address}: {detail}"),
    }
}

fn hyper_error_type(e: &hyper::Error) -> &'static str {
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        "protocol_error"
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        "connection_closed"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "io_error"
    }
}

/// The first `io::Error` in the chain's kind.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// The error and its causes, as one line (hyper-util's own `Display` says only the kind).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The client-supplied forwarding headers, dropped unless `trust_forward_header`: every
/// `X-Forwarded-*`, `X-Real-IP` and `Forwarded` (RFC 7239), so that the auth server cannot be
/// told a client's own story of where it came from.
fn is_forwarding(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-forwarded-") || n == "x-real-ip" || n == "forwarded"
}

/// The names a message's `Connection` header lists: hop-by-hop for that message too.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// An answer's headers to pass on: all but hop-by-hop ones, those its `Connection` lists and
/// the framing ones (the caller frames the body it sends).
fn end_to_end(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let listed = connection_listed(headers);
    headers
        .iter()
        .filter(|(n, _)| !is_hop_by_hop(n) && !listed.contains(n) && *n != header::CONTENT_LENGTH)
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn value_of(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// The runtime every check runs on: one thread, started at the first check (see the module's
/// doc), living as long as the process.
fn auth_runtime() -> Result<&'static tokio::runtime::Handle, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Handle, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the forward-auth runtime: {e}"))?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name("forward-auth".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .map_err(|e| format!("cannot start the forward-auth thread: {e}"))?;
            Ok(handle)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A task on the auth runtime that is cancelled when its caller goes away (the client left, or
/// the timeout fired), so an abandoned exchange does not hold a connection.
struct AbortOnDrop(tokio::task::JoinHandle<Result<Answer, Failure>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::future::Future for AbortOnDrop {
    type Output = Result<Answer, Failure>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|e| {
                Err(Failure {
                    status: 502,
                    error_type: "_OTHER",
                    message: format!("the forward-auth task ended: {e}"),
                })
            })
        })
    }
}

#[cfg(test)]
mod tests;
