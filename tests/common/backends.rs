//! Backends that misbehave on demand, for load-balancing and health tests, and a client that
//! connects from a chosen loopback address.
//!
//! * [`SwitchableUpstream`]: an [`Upstream`](super::Upstream)-like backend whose health
//!   endpoint's status can be changed, and which can stop listening and start again on the
//!   same port.
//! * [`HangupBackend`]: reads a request (head and `Content-Length` body), then closes the
//!   connection without answering.
//! * [`http_get_from`]: a request from a given local IP (any `127.x.y.z` works on Linux).
//! * [`LenientBackend`] / [`lenient_read`]: a backend that reads request paths the way the most
//!   permissive application servers do, and records what it served, for path-bypass tests.

use super::*;
use std::net::IpAddr;
use std::sync::atomic::AtomicU16;

/// The path [`SwitchableUpstream`] answers with its switchable health status.
pub const HEALTH_PATH: &str = "/healthz";

/// A backend like [`Upstream`] (it sets `x-backend: <name>` and records requests), plus:
/// `GET /healthz` answers the status set with [`SwitchableUpstream::set_health`] (200 at
/// first), and [`SwitchableUpstream::stop`] / [`SwitchableUpstream::restart`] stop and resume
/// listening on the same address.
pub struct SwitchableUpstream {
    name: String,
    addr: SocketAddr,
    health: Arc<AtomicU16>,
    probes: Arc<Mutex<Vec<RecordedRequest>>>,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    server: Option<BackgroundServer>,
}

impl SwitchableUpstream {
    pub fn start(name: &str) -> SwitchableUpstream {
        let listener = bind_local();
        let addr = listener.local_addr().expect("switchable upstream addr");
        let mut up = SwitchableUpstream {
            name: name.to_owned(),
            addr,
            health: Arc::new(AtomicU16::new(200)),
            probes: Arc::default(),
            requests: Arc::default(),
            server: None,
        };
        up.serve(listener);
        up
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        let (health, probes, requests, backend) = (
            self.health.clone(),
            self.probes.clone(),
            self.requests.clone(),
            self.name.clone(),
        );
        self.server = Some(spawn_http1_server(
            &format!("switchable-{}", self.name),
            listener,
            move |req: Request<Incoming>| {
                let (health, probes, requests, backend) = (
                    health.clone(),
                    probes.clone(),
                    requests.clone(),
                    backend.clone(),
                );
                async move {
                    if req.uri().path() != HEALTH_PATH {
                        return handle_upstream(requests, backend, req).await;
                    }
                    lock(&probes).push(RecordedRequest {
                        method: req.method().to_string(),
                        path_and_query: req.uri().to_string(),
                        headers: header_pairs(req.headers()),
                        body: Vec::new(),
                    });
                    let status = StatusCode::from_u16(health.load(Ordering::SeqCst))
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    simple_response(status, "health")
                }
            },
        ));
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The status `/healthz` answers from now on.
    pub fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::SeqCst);
    }

    /// The health probes received so far.
    pub fn probes(&self) -> Vec<RecordedRequest> {
        lock(&self.probes).clone()
    }

    /// Every other request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Stops listening and closes every connection.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Listens again on the same address (std sets `SO_REUSEADDR`, so the port is free at once).
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "restart() after stop()");
        let listener = std::net::TcpListener::bind(self.addr)
            .unwrap_or_else(|e| panic!("rebind {}: {e}", self.addr));
        listener.set_nonblocking(true).expect("non-blocking");
        self.serve(listener);
    }

    /// Polls until at least `n` health probes have arrived; panics after `timeout`.
    pub fn wait_for_probes(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.probes();
            if p.len() >= n {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} health probe(s) after {timeout:?}, wanted {n}",
                self.name,
                p.len()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A backend that reads each request (its head, and a `Content-Length` body) and closes the
/// connection without answering: the proxy's attempt fails after the request was sent.
pub struct HangupBackend {
    addr: SocketAddr,
    /// `(method, path)` of each request read.
    seen: Arc<Mutex<Vec<(String, String)>>>,
    _server: BackgroundServer,
}

impl HangupBackend {
    pub fn start() -> HangupBackend {
        let listener = bind_local();
        let addr = listener.local_addr().expect("hangup addr");
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let rec = seen.clone();
        let server = BackgroundServer::spawn("hangup", listener, move |listener| async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let rec = rec.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncBufReadExt;
                    use tokio::io::AsyncReadExt;
                    let mut r = tokio::io::BufReader::new(conn);
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_owned();
                    let path = parts.next().unwrap_or("").to_owned();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.trim().eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    let _ = r.read_exact(&mut body).await;
                    lock(&rec).push((method, path));
                    // Dropping the connection closes it without a response.
                });
            }
        });
        HangupBackend {
            addr,
            seen,
            _server: server,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `(method, path)` of each request read so far.
    pub fn seen(&self) -> Vec<(String, String)> {
        lock(&self.seen).clone()
    }
}

/// `GET path` to `addr` over a connection whose local address is `from` (e.g. `127.0.0.7`).
pub fn http_get_from(from: IpAddr, addr: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let target: SocketAddr = addr.parse().expect("proxy address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let stream = rt.block_on(async {
        let socket = match from {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("client socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        socket
            .connect(target)
            .await
            .unwrap_or_else(|e| panic!("connect {target} from {from}: {e}"))
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let raw = build_request(addr, "GET", path, headers, b"");
    (&stream).write_all(&raw).expect("write request");
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, false).expect("read response")
}

/// How a permissive application server reads a request path, each step one that some server
/// takes: path parameters are cut from every segment first (Tomcat: `/..;/a` is `/../a`),
/// then the path is percent-decoded twice (a server that decodes once more: `%252e` is `.`),
/// cut at a decoded NUL (C strings), `?` or `#` (a second parse), `\` read as `/` (Windows,
/// several Java servers), and finally slashes merged and dot segments resolved.
pub fn lenient_read(raw: &str) -> String {
    let path = raw.split('?').next().unwrap_or("");
    let no_params: Vec<&str> = path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect();
    let once = percent_encoding::percent_decode_str(&no_params.join("/"))
        .decode_utf8_lossy()
        .into_owned();
    let twice = percent_encoding::percent_decode_str(&once)
        .decode_utf8_lossy()
        .into_owned();
    let cut = twice.split(['\0', '?', '#']).next().unwrap_or("");
    let mut out: Vec<&str> = Vec::new();
    let slashed = cut.replace('\\', "/");
    for seg in slashed.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = slashed.ends_with('/') && !out.is_empty();
    format!("/{}{}", out.join("/"), if trailing { "/" } else { "" })
}

/// One request as a [`LenientBackend`] got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The request target as received (path and query).
    pub raw: String,
    /// The path the backend read from it ([`lenient_read`]), which it answers with.
    pub read: String,
}

/// A real hyper backend that reads every request path with [`lenient_read`], answers `200`
/// with the path it read as the body, and records both ([`Served`]).
pub struct LenientBackend {
    addr: SocketAddr,
    served: Arc<Mutex<Vec<Served>>>,
    _server: BackgroundServer,
}

impl LenientBackend {
    pub fn start() -> LenientBackend {
        let listener = bind_local();
        let addr = listener.local_addr().expect("lenient backend addr");
        let served: Arc<Mutex<Vec<Served>>> = Arc::default();
        let rec = served.clone();
        let server = spawn_http1_server("lenient", listener, move |req: Request<Incoming>| {
            let rec = rec.clone();
            async move {
                let raw = req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_owned());
                let read = lenient_read(&raw);
                lock(&rec).push(Served {
                    raw,
                    read: read.clone(),
                });
                simple_response(StatusCode::OK, read)
            }
        });
        LenientBackend {
            addr,
            served,
            _server: server,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request served so far, in arrival order.
    pub fn served(&self) -> Vec<Served> {
        lock(&self.served).clone()
    }
}
