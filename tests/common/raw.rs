//! Raw HTTP/1.1 on both sides of the proxy, for tests about framing and malformed messages that
//! well-behaved clients and servers (hyper) would never produce or would hide.
//!
//! * [`RawBackend`]: a backend on a plain TCP socket with its own strict HTTP/1.1 parser. It
//!   records every request it parsed on every connection ([`RawRequest`]), and every message it
//!   could not frame ([`RawBackend::malformed`]), so a test sees exactly what the proxy sent,
//!   including a smuggled second request. Its answer is scripted per request ([`Reply`]): fixed
//!   bytes (an interim response, then a final one), bytes repeated until the proxy stops reading
//!   (endless `100 Continue`), bytes written slowly, or nothing.
//! * [`RawClient`]: one client connection that writes bytes verbatim and reads responses with
//!   the interim (1xx) responses listed ([`Exchange`]), or sees the connection close.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::read_response_with_interim;
use super::{bind_local, lock, Arc, BackgroundServer, Mutex, Response, SocketAddr, POLL_INTERVAL};

/// One request as parsed by a [`RawBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequest {
    /// `GET /path HTTP/1.1`, as received.
    pub request_line: String,
    /// Names lower-cased, values trimmed, in received order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// How the body was framed: `none`, `length`, `chunked`.
    pub framing: &'static str,
}

impl RawRequest {
    /// The request target (second word of the request line).
    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }

    /// All values of header `name` (lower case).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What a [`RawBackend`] does with a request it parsed.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Writes these bytes, then reads the next request on the connection.
    Send(Vec<u8>),
    /// Writes these bytes again and again until the write fails (the proxy closed the
    /// connection or stopped reading for good).
    Repeat(Vec<u8>),
    /// Writes each piece after waiting its delay (a backend that answers slowly), then reads
    /// the next request.
    Paced(Vec<(Duration, Vec<u8>)>),
    /// Writes nothing and keeps the connection open until the proxy closes it.
    Silence,
}

/// `200 OK` with body `ok`, keep-alive.
pub fn ok_reply() -> Reply {
    Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
}

type ReplyFn = dyn Fn(&RawRequest) -> Reply + Send + Sync;

/// A backend on a raw TCP socket with a strict parser (see the module doc).
pub struct RawBackend {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    malformed: Arc<Mutex<Vec<String>>>,
    _server: BackgroundServer,
}

impl RawBackend {
    /// A backend answering every request with [`ok_reply`].
    pub fn ok() -> RawBackend {
        RawBackend::start(|_| ok_reply())
    }

    /// A backend answering each request with `reply(request)`.
    pub fn start(reply: impl Fn(&RawRequest) -> Reply + Send + Sync + 'static) -> RawBackend {
        let listener = bind_local();
        let addr = listener.local_addr().expect("raw backend addr");
        let requests: Arc<Mutex<Vec<RawRequest>>> = Arc::default();
        let malformed: Arc<Mutex<Vec<String>>> = Arc::default();
        let reply: Arc<ReplyFn> = Arc::new(reply);
        let (rec, bad) = (requests.clone(), malformed.clone());
        let server = BackgroundServer::spawn("raw-backend", listener, move |listener| async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let _ = conn.set_nodelay(true);
                let (rec, bad, reply) = (rec.clone(), bad.clone(), reply.clone());
                tokio::spawn(async move {
                    if let Err(why) = serve_raw(conn, &rec, &*reply).await {
                        lock(&bad).push(why);
                    }
                });
            }
        });
        RawBackend {
            addr,
            requests,
            malformed,
            _server: server,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// A config routing every path to this backend, with this `listen` value, no exporter and
    /// no grace period.
    pub fn catch_all_config(&self, listen: &str) -> String {
        format!(
            r#"listen: {listen}
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry: {{ exporter: {{ protocol: none }} }}
routes:
  - {{ name: all, match: {{ path_prefix: / }}, upstream: app }}
upstreams:
  app: {{ backends: ["{}"] }}
"#,
            self.addr()
        )
    }

    /// Every request parsed so far, on any connection, in parse order.
    pub fn requests(&self) -> Vec<RawRequest> {
        lock(&self.requests).clone()
    }

    /// Why each connection that sent something unparseable was given up.
    pub fn malformed(&self) -> Vec<String> {
        lock(&self.malformed).clone()
    }

    /// Forgets what was recorded (between the cases of a table).
    pub fn clear(&self) {
        lock(&self.requests).clear();
        lock(&self.malformed).clear();
    }

    /// Polls until a parsed request satisfies `pred`; panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&RawRequest) -> bool) -> RawRequest {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "raw backend: no matching request within {timeout:?}; got {:#?}, malformed {:?}",
                self.requests(),
                self.malformed()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Serves one connection: parses requests strictly until EOF, answering each as `reply` says.
/// `Err`: the reason the bytes could not be framed (recorded by the caller).
async fn serve_raw(
    mut conn: tokio::net::TcpStream,
    rec: &Mutex<Vec<RawRequest>>,
    reply: &ReplyFn,
) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let req = match parse_request(&mut conn, &mut buf).await? {
            Some(r) => r,
            None => return Ok(()),
        };
        let answer = reply(&req);
        lock(rec).push(req);
        match answer {
            Reply::Send(bytes) => {
                if conn.write_all(&bytes).await.is_err() {
                    return Ok(());
                }
            }
            Reply::Repeat(bytes) => loop {
                if conn.write_all(&bytes).await.is_err() {
                    return Ok(());
                }
            },
            Reply::Paced(steps) => {
                for (delay, bytes) in steps {
                    tokio::time::sleep(delay).await;
                    if conn.write_all(&bytes).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Reply::Silence => {
                let mut sink = [0u8; 1024];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                return Ok(());
            }
        }
    }
}

/// Reads more bytes into `buf`; `false` at EOF.
async fn fill(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk).await {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) => Err(format!("read error: {e}")),
    }
}

/// Takes one CRLF-terminated line off the front of `buf`, reading more as needed. A bare LF
/// is an error (RFC 9112 §2.2 allows recipients to refuse it; this backend does, to notice
/// one that got through).
async fn line(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(format!("bare LF in {:?}", String::from_utf8_lossy(buf)));
            }
            let l = buf[..i - 1].to_vec();
            buf.drain(..=i);
            return Ok(l);
        }
        if buf.len() > 64 * 1024 {
            return Err("line longer than 64 KiB".into());
        }
        if !fill(conn, buf).await? {
            return Err(format!(
                "EOF inside a line: {:?}",
                String::from_utf8_lossy(buf)
            ));
        }
    }
}

/// Parses one request (head and body) off the connection. `Ok(None)`: clean EOF between
/// requests.
async fn parse_request(
    conn: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<RawRequest>, String> {
    while buf.is_empty() {
        if !fill(conn, buf).await? {
            return Ok(None);
        }
    }
    let request_line = String::from_utf8(line(conn, buf).await?)
        .map_err(|_| "request line is not UTF-8".to_string())?;
    if request_line.split(' ').count() != 3 || !request_line.ends_with(" HTTP/1.1") {
        return Err(format!("bad request line {request_line:?}"));
    }
    let mut headers = Vec::new();
    loop {
        let l = line(conn, buf).await?;
        if l.is_empty() {
            break;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            return Err("obs-fold continuation line".into());
        }
        let l = String::from_utf8(l).map_err(|_| "header is not UTF-8".to_string())?;
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("header without a colon: {l:?}"))?;
        if k.is_empty() || k.bytes().any(|b| b == b' ' || b == b'\t') {
            return Err(format!("bad header name {k:?}"));
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let values = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    let (framing, body) = match (te.as_slice(), cl.as_slice()) {
        ([], []) => ("none", Vec::new()),
        ([], [n]) => {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad Content-Length {n:?}"));
            }
            let n: usize = n.parse().map_err(|_| format!("Content-Length {n:?}"))?;
            while buf.len() < n {
                if !fill(conn, buf).await? {
                    return Err("EOF inside a Content-Length body".into());
                }
            }
            ("length", buf.drain(..n).collect())
        }
        ([t], []) if t.eq_ignore_ascii_case("chunked") => ("chunked", chunked(conn, buf).await?),
        _ => return Err(format!("ambiguous framing: TE {te:?}, CL {cl:?}")),
    };
    Ok(Some(RawRequest {
        request_line,
        headers,
        body,
        framing,
    }))
}

/// A strict chunked body (RFC 9112 §7.1): hex sizes, extensions without CR or LF, CRLF after
/// each chunk, trailers up to the empty line.
async fn chunked(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let size_line = line(conn, buf).await?;
        let size_line = String::from_utf8(size_line).map_err(|_| "chunk size not UTF-8")?;
        let size = size_line.split(';').next().unwrap_or("");
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad chunk size line {size_line:?}"));
        }
        let n = usize::from_str_radix(size, 16).map_err(|e| e.to_string())?;
        if n == 0 {
            while !line(conn, buf).await?.is_empty() {}
            return Ok(body);
        }
        while buf.len() < n + 2 {
            if !fill(conn, buf).await? {
                return Err("EOF inside a chunk".into());
            }
        }
        body.extend(buf.drain(..n));
        if buf.drain(..2).collect::<Vec<u8>>() != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
    }
}

/// A response read by [`RawClient::exchange`]: the interim (1xx) statuses that came first, in
/// order, then the final response.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub interim: Vec<u16>,
    pub response: Response,
}

/// One client connection to the proxy that writes bytes verbatim.
pub struct RawClient {
    reader: BufReader<TcpStream>,
}

impl RawClient {
    /// Connects to `addr`; reads give up after 30 s.
    pub fn connect(addr: &str) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let _ = stream.set_nodelay(true);
        RawClient {
            reader: BufReader::new(stream),
        }
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        let s = self.reader.get_mut();
        s.write_all(bytes).expect("write to the proxy");
        s.flush().expect("flush");
    }

    /// Reads one response with the interim responses before it (`head_request`: no body).
    pub fn exchange(&mut self, head_request: bool) -> std::io::Result<Exchange> {
        let (interim, response) = read_response_with_interim(&mut self.reader, head_request)?;
        Ok(Exchange { interim, response })
    }

    /// True when the proxy closes the connection (EOF or reset) within `timeout`, reading and
    /// discarding whatever it still sends.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut sink = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .expect("read timeout");
            match self.reader.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

/// Sends `raw` on a fresh connection and reads one response: the status, or `None` when the
/// proxy closed the connection without one.
pub fn raw_status(addr: &str, raw: &[u8]) -> Option<u16> {
    let mut c = RawClient::connect(addr);
    c.send(raw);
    c.exchange(false).ok().map(|x| x.response.status)
}
