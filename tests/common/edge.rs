//! Harness for the edge features: TLS listeners, HTTP/2, WebSocket and streaming bodies.
//!
//! * [`EdgeCa`]: a CA that issues listener certificates for given names (files for the proxy,
//!   DER to compare with what a client was shown, roots for clients).
//! * [`https_request`] / [`h2c_request`]: a hyper client over rustls (HTTP/1.1 or HTTP/2 by
//!   ALPN) or over plain TCP with HTTP/2 prior knowledge, reporting the protocol and the
//!   certificate the server presented.
//! * [`VersionUpstream`]: a backend over TLS (HTTP/2 by ALPN or HTTP/1.1) or plain h2c that
//!   records each request's HTTP version.
//! * [`WsEchoUpstream`] / [`ws_connect`]: a WebSocket echo backend and client.
//! * [`StreamUpstream`]: a backend that counts uploaded bytes without keeping them and streams
//!   downloads of any size without holding them.
//! * [`peak_rss_kib`]: a process's peak resident memory (VmHWM).

use super::{lock, BackgroundServer, Proxy, TestCa, POLL_INTERVAL};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Runs `f` to completion on a fresh single-threaded runtime (for blocking test code).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test client runtime")
        .block_on(f)
}

// ---------------------------------------------------------------------------
// Listener certificates
// ---------------------------------------------------------------------------

/// A certificate issued by an [`EdgeCa`]: its files and its DER.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub der: Vec<u8>,
}

impl IssuedCert {
    /// `{ cert_file: "…", key_file: "…" }` for the config.
    pub fn yaml(&self) -> String {
        format!(
            "{{ cert_file: \"{}\", key_file: \"{}\" }}",
            self.cert_file.display(),
            self.key_file.display()
        )
    }
}

/// A CA made for one test, issuing server certificates for listener names.
pub struct EdgeCa {
    dir: tempfile::TempDir,
    key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
    der: Vec<u8>,
    serial: AtomicU64,
}

impl EdgeCa {
    pub fn new() -> EdgeCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tracegate edge test CA");
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        EdgeCa {
            dir: tempfile::Builder::new()
                .prefix("tracegate-edge-")
                .tempdir()
                .expect("temp dir"),
            key,
            params,
            der: cert.der().to_vec(),
            serial: AtomicU64::new(1),
        }
    }

    /// A server certificate for `names` (DNS names, wildcards, IP addresses), written to files.
    pub fn issue(&self, names: &[&str]) -> IssuedCert {
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let cert_file = self.dir.path().join(format!("leaf-{n}.pem"));
        let key_file = self.dir.path().join(format!("leaf-{n}-key.pem"));
        std::fs::write(&cert_file, cert.pem()).expect("write leaf");
        std::fs::write(&key_file, key.serialize_pem()).expect("write leaf key");
        IssuedCert {
            cert_file,
            key_file,
            der: cert.der().to_vec(),
        }
    }

    /// A file in this CA's directory (for broken files in refusal tests).
    pub fn write(&self, name: &str, body: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).expect("write test file");
        p
    }

    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.der.clone()))
            .expect("CA root");
        roots
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// How an HTTPS client checks the server.
pub enum Trust<'a> {
    /// Verify the chain against these roots and the name asked for.
    Roots(&'a EdgeCa),
    /// Accept any certificate (to look at the one a client without SNI is given).
    Any,
}

/// A response seen by [`https_request`] / [`h2c_request`].
#[derive(Debug)]
pub struct ClientResponse {
    pub status: u16,
    pub version: hyper::Version,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
    /// The ALPN protocol the server chose (TLS only).
    pub alpn: Option<Vec<u8>>,
    /// The leaf certificate the server presented (TLS only).
    pub peer_cert: Option<Vec<u8>>,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config(trust: &Trust<'_>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let mut config = match trust {
        Trust::Roots(ca) => builder
            .with_root_certificates(ca.roots())
            .with_no_client_auth(),
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

async fn send<I>(io: I, h2: bool, req: Request<Full<Bytes>>) -> std::io::Result<Response<Incoming>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let err = |e: hyper::Error| std::io::Error::other(e.to_string());
    if h2 {
        let (mut s, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(err)?;
        tokio::spawn(conn);
        s.send_request(req).await.map_err(err)
    } else {
        let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(err)?;
        tokio::spawn(conn);
        s.send_request(req).await.map_err(err)
    }
}

fn request(authority: &str, path: &str, h2: bool) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method("GET");
    if h2 {
        b = b
            .uri(format!("https://{authority}{path}"))
            .version(hyper::Version::HTTP_2);
    } else {
        b = b.uri(path).header(hyper::header::HOST, authority);
    }
    b.body(Full::new(Bytes::new())).expect("request")
}

/// `GET path` over TLS to `addr`. `sni`: the name to ask for (also the `Host`), or `None` to
/// connect by IP address (no SNI). `alpn`: the protocols to offer (`[b"h2", b"http/1.1"]`);
/// HTTP/2 is used when the server picks `h2`.
pub fn https_request(
    addr: &str,
    sni: Option<&str>,
    trust: Trust<'_>,
    alpn: &[&[u8]],
    path: &str,
) -> std::io::Result<ClientResponse> {
    let config = Arc::new(client_config(&trust, alpn));
    let sock: SocketAddr = addr.parse().expect("socket address");
    let server_name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).expect("server name"),
        None => ServerName::IpAddress(sock.ip().into()),
    };
    let authority = sni.map_or_else(|| addr.to_string(), |n| format!("{n}:{}", sock.port()));
    let path = path.to_string();
    block_on(async move {
        let tcp = tokio::net::TcpStream::connect(sock).await?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(server_name, tcp)
            .await?;
        let (_, conn) = tls.get_ref();
        let alpn = conn.alpn_protocol().map(|p| p.to_vec());
        let peer_cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        let h2 = alpn.as_deref() == Some(b"h2");
        let resp = send(tls, h2, request(&authority, &path, h2)).await?;
        collect(resp, alpn, peer_cert).await
    })
}

/// `GET path` to a plain listener with HTTP/2 prior knowledge (h2c).
pub fn h2c_request(addr: &str, path: &str) -> std::io::Result<ClientResponse> {
    let addr = addr.to_string();
    let path = path.to_string();
    block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let mut req = request(&addr, &path, true);
        *req.uri_mut() = format!("http://{addr}{path}").parse().expect("uri");
        let resp = send(tcp, true, req).await?;
        collect(resp, None, None).await
    })
}

async fn collect(
    resp: Response<Incoming>,
    alpn: Option<Vec<u8>>,
    peer_cert: Option<Vec<u8>>,
) -> std::io::Result<ClientResponse> {
    let status = resp.status().as_u16();
    let version = resp.version();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .to_bytes()
        .to_vec();
    Ok(ClientResponse {
        status,
        version,
        headers,
        body,
        alpn,
        peer_cert,
    })
}

/// Polls until the proxy has announced `n` listeners; returns them as `(scheme, addr)` in
/// announcement order.
pub fn wait_listening(proxy: &Proxy, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Proxy::STARTUP_TIMEOUT;
    loop {
        let found: Vec<(String, String)> = proxy
            .stderr()
            .lines()
            .filter_map(parse_listening_url)
            .collect();
        if found.len() >= n {
            return found;
        }
        if Instant::now() >= deadline {
            panic!(
                "only {} of {n} listeners announced\n--- output ---\n{}",
                found.len(),
                proxy.logs()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `(scheme, HOST:PORT)` from a line `listening on http(s)://HOST:PORT`.
pub fn parse_listening_url(line: &str) -> Option<(String, String)> {
    let line = super::strip_ansi(line);
    for scheme in ["https", "http"] {
        let marker = format!("listening on {scheme}://");
        if let Some(i) = line.find(&marker) {
            let rest = &line[i + marker.len()..];
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
                .collect();
            return Some((
                scheme.to_string(),
                addr.trim_end_matches(['.', ':']).to_string(),
            ));
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------

/// One request as seen by a [`VersionUpstream`].
#[derive(Debug, Clone)]
pub struct VersionedRequest {
    pub version: hyper::Version,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// A backend answering `200 upstream` and recording each request's HTTP version: over TLS
/// with a certificate from a [`TestCa`] (offering `h2` by ALPN when `h2`), or plain HTTP/2
/// with prior knowledge (h2c).
pub struct VersionUpstream {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<VersionedRequest>>>,
    _server: BackgroundServer,
}

impl VersionUpstream {
    pub fn tls(ca: &TestCa, h2: bool) -> VersionUpstream {
        Self::tls_with(ca, h2, false)
    }

    /// [`VersionUpstream::tls`] that also requires a client certificate signed by `ca`.
    pub fn mtls(ca: &TestCa) -> VersionUpstream {
        Self::tls_with(ca, false, true)
    }

    fn tls_with(ca: &TestCa, h2: bool, require_client_cert: bool) -> VersionUpstream {
        let mut config = (*ca.rustls_server_config(require_client_cert)).clone();
        config.alpn_protocols = if h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Self::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    pub fn h2c() -> VersionUpstream {
        Self::start(None)
    }

    fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> VersionUpstream {
        let listener = super::bind_local();
        let addr = listener.local_addr().expect("local addr");
        let requests: Arc<Mutex<Vec<VersionedRequest>>> = Arc::default();
        let rec = requests.clone();
        let server = BackgroundServer::spawn("version-upstream", listener, move |l| async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    continue;
                };
                let rec = rec.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let handler = move |req: Request<Incoming>| {
                        let rec = rec.clone();
                        async move {
                            lock(&rec).push(VersionedRequest {
                                version: req.version(),
                                path: req.uri().path().to_string(),
                                headers: super::header_pairs(req.headers()),
                            });
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                b"upstream",
                            ))))
                        }
                    };
                    let svc = hyper::service::service_fn(handler);
                    match tls {
                        None => {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tcp), svc)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            if h2 {
                                let _ =
                                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                            } else {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        VersionUpstream {
            addr,
            requests,
            _server: server,
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<VersionedRequest> {
        lock(&self.requests).clone()
    }
}

/// The headers of each upgrade request a [`WsEchoUpstream`] received.
type UpgradeLog = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A WebSocket backend that echoes every text and binary message, recording the headers of
/// each upgrade request.
pub struct WsEchoUpstream {
    addr: SocketAddr,
    upgrades: UpgradeLog,
    _server: BackgroundServer,
}

impl WsEchoUpstream {
    pub fn start() -> WsEchoUpstream {
        use futures_util::{SinkExt, StreamExt};
        let listener = super::bind_local();
        let addr = listener.local_addr().expect("local addr");
        let upgrades: UpgradeLog = Arc::default();
        let rec = upgrades.clone();
        let server = BackgroundServer::spawn("ws-echo", listener, move |l| async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    continue;
                };
                let rec = rec.clone();
                tokio::spawn(async move {
                    // The error type is tungstenite's (an HTTP response); this one never fails.
                    #[allow(clippy::result_large_err)]
                    let callback =
                        |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                            lock(&rec).push(super::header_pairs(req.headers()));
                            Ok(resp)
                        };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await
                    else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() || msg.is_binary() {
                            if ws.send(msg).await.is_err() {
                                break;
                            }
                        } else if msg.is_close() {
                            break;
                        }
                    }
                });
            }
        });
        WsEchoUpstream {
            addr,
            upgrades,
            _server: server,
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The headers of each upgrade request received.
    pub fn upgrades(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.upgrades).clone()
    }
}

/// A WebSocket client connection over plain TCP.
pub type WsClient = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a WebSocket to `ws://addr{path}`; returns the connection and the handshake response
/// status.
pub async fn ws_connect(addr: &str, path: &str) -> (WsClient, u16) {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect for WebSocket");
    let (ws, resp) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp)
        .await
        .expect("WebSocket handshake through the proxy");
    (ws, resp.status().as_u16())
}

/// A body of `remaining` bytes produced chunk by chunk (never held whole).
struct PatternBody {
    remaining: u64,
    chunk: Bytes,
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

type StreamResponse = Response<http_body_util::Either<Full<Bytes>, PatternBody>>;

/// A backend for big bodies: `POST /upload` reads the body chunk by chunk and answers the
/// byte count; `GET /download/N` sends N bytes (with `Content-Length`), made as it goes.
pub struct StreamUpstream {
    addr: SocketAddr,
    _server: BackgroundServer,
}

impl StreamUpstream {
    pub fn start() -> StreamUpstream {
        let listener = super::bind_local();
        let addr = listener.local_addr().expect("local addr");
        let server = BackgroundServer::spawn("stream-upstream", listener, move |l| async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        Ok::<_, Infallible>(stream_handler(req).await)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        StreamUpstream {
            addr,
            _server: server,
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

async fn stream_handler(req: Request<Incoming>) -> StreamResponse {
    use http_body_util::Either;
    if let Some(n) = req.uri().path().strip_prefix("/download/") {
        let n: u64 = n.parse().unwrap_or(0);
        return Response::new(Either::Right(PatternBody {
            remaining: n,
            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
        }));
    }
    let mut body = req.into_body();
    let mut count: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    count += d.len() as u64;
                }
            }
            Err(e) => {
                let mut r = Response::new(Either::Left(Full::new(Bytes::from(format!(
                    "body error after {count} bytes: {e}"
                )))));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
        }
    }
    Response::new(Either::Left(Full::new(Bytes::from(count.to_string()))))
}

/// Peak resident memory of process `pid` (VmHWM, KiB).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}
