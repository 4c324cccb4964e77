//! What the harness's in-process servers are built on.
//!
//! * [`BackgroundServer`]: a server future on its own thread with its own tokio runtime,
//!   stopped when dropped; [`bind_local`] gives it a `127.0.0.1:0` listener.
//! * [`spawn_http1_server`] / [`spawn_http1_server_tls`]: an HTTP/1.1 server (hyper,
//!   keep-alive, optionally over TLS) around one request handler.
//! * [`header_pairs`] / [`simple_response`]: for those handlers.
//!
//! None of it is re-exported: tests use the servers built on it.

use std::convert::Infallible;
use std::future::Future;
use std::thread::JoinHandle;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

pub(super) fn bind_local() -> std::net::TcpListener {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a test server");
    listener
        .set_nonblocking(true)
        .expect("set test listener non-blocking");
    listener
}

/// A server future running on a dedicated thread with its own tokio runtime.
/// Dropping it stops the server (the runtime is dropped, which cancels every
/// task, including open connections).
pub(super) struct BackgroundServer {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundServer {
    pub(super) fn spawn<F, Fut>(name: &str, listener: std::net::TcpListener, serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("test-server-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build test server runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("register test listener with tokio");
                    tokio::select! {
                        _ = serve(listener) => {}
                        _ = rx => {}
                    }
                });
                // Dropping `rt` here aborts all spawned connection tasks.
            })
            .expect("spawn test server thread");
        BackgroundServer {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves HTTP/1.1 (keep-alive on) on one connection with the given handler.
async fn serve_http1_conn<I, H, Fut>(io: I, handler: H)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    H: Fn(Request<Incoming>) -> Fut + Clone + 'static,
    Fut: Future<Output = hyper::Response<Full<Bytes>>> + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Accept loop serving HTTP/1.1 with the given handler, over TLS when `tls` is set (a failed
/// handshake just closes that connection).
async fn serve_http1<H, Fut>(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + 'static,
    Fut: Future<Output = hyper::Response<Full<Bytes>>> + 'static,
{
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let tls = tls.clone();
        tokio::task::spawn_local(async move {
            match tls {
                None => serve_http1_conn(stream, handler).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_http1_conn(stream, handler).await;
                    }
                }
            }
        });
    }
}

/// Runs `serve_http1` inside a `LocalSet` (handlers need not be `Send`).
pub(super) fn spawn_http1_server<H, Fut>(
    name: &str,
    listener: std::net::TcpListener,
    handler: H,
) -> BackgroundServer
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = hyper::Response<Full<Bytes>>> + 'static,
{
    spawn_http1_server_tls(name, listener, None, handler)
}

/// [`spawn_http1_server`], over TLS when `tls` is set.
pub(super) fn spawn_http1_server_tls<H, Fut>(
    name: &str,
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
) -> BackgroundServer
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = hyper::Response<Full<Bytes>>> + 'static,
{
    BackgroundServer::spawn(name, listener, move |listener| async move {
        let local = tokio::task::LocalSet::new();
        local.run_until(serve_http1(listener, tls, handler)).await;
    })
}

pub(super) fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

pub(super) fn simple_response(
    status: StatusCode,
    body: impl Into<Bytes>,
) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp
}
