//! The admin listener's HTTP/1.1 server and the choice of answer for each request.

use super::viewer;
use super::views;
use super::AdminState;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use pingora::server::ExecutionPhase;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Admin connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// A request head must arrive within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest an admin connection stays open (a scraper reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Binds `addr` and starts the admin thread; returns the bound address. With `wait_for_port`,
/// an address in use is retried in the background for that long.
pub(super) fn serve(
    addr: SocketAddr,
    state: Arc<AdminState>,
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    wait_for_port: Option<Duration>,
) -> Result<SocketAddr, String> {
    let fail = |e: std::io::Error| format!("cannot start the admin listener on {addr}: {e}");
    let first = std::net::TcpListener::bind(addr);
    let first = match (first, wait_for_port) {
        (Ok(l), _) => Some(l),
        (Err(e), Some(_)) if e.kind() == std::io::ErrorKind::AddrInUse => {
            log::info!("admin listener: {addr} is still held by the process being upgraded; waiting for it");
            None
        }
        (Err(e), _) => return Err(fail(e)),
    };
    let bound = match &first {
        Some(l) => l.local_addr().map_err(fail)?,
        None => addr,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_name("admin-answer")
        .build()
        .map_err(fail)?;
    let loopback = bound.ip().is_loopback();
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let Some(listener) = first.or_else(|| bind_when_free(addr, wait_for_port?)) else {
                log::error!("admin listener: {addr} did not become free; no admin listener");
                return;
            };
            rt.block_on(async move {
                if let Err(e) = listener.set_nonblocking(true) {
                    log::error!("admin listener on {bound} stopped: {e}");
                    return;
                }
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        log::error!("admin listener on {bound} stopped: {e}");
                        return;
                    }
                };
                let lifecycle = Arc::clone(&state.lifecycle);
                tokio::spawn(async move {
                    use tokio::sync::broadcast::error::RecvError;
                    loop {
                        match phases.recv().await {
                            Ok(p) => lifecycle.phase(&p),
                            Err(RecvError::Lagged(_)) => continue,
                            Err(RecvError::Closed) => return,
                        }
                    }
                });
                let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
                loop {
                    let stream = match listener.accept().await {
                        Ok((s, _)) => s,
                        Err(e) => {
                            log::debug!("admin listener: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        continue;
                    };
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        // Answers are made on the blocking pool: rendering a large `/config`
                        // or `/metrics` must not hold up `/ping` on another connection.
                        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let state = Arc::clone(&state);
                            async move {
                                let made = if is_intake(&req, &state, loopback) {
                                    intake(req, state).await
                                } else {
                                    tokio::task::spawn_blocking(move || {
                                        answer(&req, &state, loopback)
                                    })
                                    .await
                                };
                                Ok::<_, Infallible>(made.unwrap_or_else(|_| {
                                    text(StatusCode::INTERNAL_SERVER_ERROR, "admin error\n")
                                }))
                            }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(HEADER_READ_TIMEOUT)
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                        let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                        drop(slot);
                    });
                }
            });
        })
        .map_err(fail)?;
    Ok(bound)
}

/// How long an intake body may take to arrive.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A `POST /v1/traces` that the intake takes (on, and past the `Host` check): its body is
/// read before the answer is made.
fn is_intake(req: &Request<Incoming>, state: &AdminState, loopback: bool) -> bool {
    req.method() == Method::POST
        && state.viewer.as_ref().is_some_and(|v| v.otlp_intake)
        && decide(&target(req), loopback) == Decision::Intake
}

/// Reads an intake body (bounded in size and time), then decodes and stores it on the
/// blocking pool.
async fn intake(
    req: Request<Incoming>,
    state: Arc<AdminState>,
) -> Result<Response<Full<Bytes>>, tokio::task::JoinError> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, viewer::MAX_INTAKE_BODY);
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, limited.collect()).await {
        Err(_) => return Ok(text(StatusCode::REQUEST_TIMEOUT, "408 Request Timeout\n")),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(viewer_response(viewer::intake_too_large(&parts.headers)))
        }
        Ok(Err(_)) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: the body did not arrive\n",
            ))
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    tokio::task::spawn_blocking(move || {
        let v = state.viewer.as_ref().expect("is_intake checked the viewer");
        viewer_response(viewer::intake(v, &parts.headers, &body))
    })
    .await
}

/// A viewer answer as a response; pages get the viewer's Content-Security-Policy.
fn viewer_response((status, content_type, body): viewer::Answer) -> Response<Full<Bytes>> {
    let mut r = with_type(status, content_type, body);
    if content_type.starts_with("text/html") {
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(viewer::PAGE_POLICY),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("no-referrer"),
        );
    }
    r
}

/// Binds `addr` once it is free, trying every 100 ms for `wait`.
fn bind_when_free(addr: SocketAddr, wait: Duration) -> Option<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Ok(l) = std::net::TcpListener::bind(addr) {
            log::info!("admin listener on http://{addr}");
            return Some(l);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The answer to one admin request.
/// What the decision reads of `req`.
fn target(req: &Request<Incoming>) -> Target<'_> {
    Target {
        method: req.method(),
        path: req.uri().path(),
        query: req.uri().query(),
        host: req
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}")),
        accept: req
            .headers()
            .get(header::ACCEPT)
            .and_then(|h| h.to_str().ok()),
    }
}

fn answer(req: &Request<Incoming>, state: &AdminState, loopback: bool) -> Response<Full<Bytes>> {
    let target = target(req);
    match decide(&target, loopback) {
        Decision::Misdirected => text(
            StatusCode::MISDIRECTED_REQUEST,
            "421 Misdirected Request: the admin listener answers only requests for an IP \
             address or localhost\n",
        ),
        Decision::NotFound => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
        Decision::MethodNotAllowed => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed: GET or HEAD\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            r
        }
        Decision::BadFormat => text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: format is prometheus or openmetrics\n",
        ),
        Decision::Ping => {
            if state.lifecycle.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else {
                text(StatusCode::OK, "OK\n")
            }
        }
        Decision::Ready => {
            if state.lifecycle.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if state.lifecycle.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
            }
        }
        Decision::Metrics(format) => match views::metrics(&state.registry, format) {
            Ok(body) => with_type(StatusCode::OK, format.content_type(), body),
            Err(()) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n"),
        },
        Decision::Upstreams => json(views::upstreams(&state.gateway.load())),
        Decision::Config => json(state.config.load().render()),
        Decision::Viewer => match &state.viewer {
            Some(v) => match viewer::answer(v, target.path, target.query) {
                Some(a) => viewer_response(a),
                None => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
            },
            None => text(
                StatusCode::NOT_FOUND,
                "404 Not Found: the trace viewer is off (admin.traces turns it on)\n",
            ),
        },
        Decision::Intake => match &state.viewer {
            Some(v) if v.otlp_intake => {
                let mut r = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "405 Method Not Allowed: OTLP/HTTP spans are POSTed\n",
                );
                r.headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
                r
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "404 Not Found: the OTLP intake is off (admin.otlp_intake turns it on)\n",
            ),
        },
    }
}

/// What the decision reads of a request.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    method: &'a Method,
    path: &'a str,
    query: Option<&'a str>,
    host: Option<&'a str>,
    accept: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Misdirected,
    NotFound,
    MethodNotAllowed,
    BadFormat,
    Ping,
    Ready,
    Metrics(Format),
    Upstreams,
    Config,
    /// A trace viewer path (`/traces…`, `/api/…`), answered by the viewer.
    Viewer,
    /// `/v1/traces` for another method than a POST the intake took.
    Intake,
}

/// An exposition format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// The Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Which answer a request gets: the `Host` check first (it guards every path), then the path,
/// then the method.
fn decide(t: &Target<'_>, loopback: bool) -> Decision {
    if loopback && !host_allowed(t.host) {
        return Decision::Misdirected;
    }
    let found = match t.path {
        "/ping" => Decision::Ping,
        "/ready" => Decision::Ready,
        "/metrics" => match format(t.query, t.accept) {
            Some(f) => Decision::Metrics(f),
            None => Decision::BadFormat,
        },
        "/upstreams" => Decision::Upstreams,
        "/config" => Decision::Config,
        "/v1/traces" => return Decision::Intake,
        p if p == "/traces" || p.starts_with("/traces/") || p.starts_with("/api/") => {
            Decision::Viewer
        }
        _ => return Decision::NotFound,
    };
    if t.method != Method::GET && t.method != Method::HEAD {
        return Decision::MethodNotAllowed;
    }
    found
}

/// A `Host` a request to a loopback admin may carry: an IP address or `localhost`, with or
/// without a port. A request without `Host` (HTTP/1.0 tools) is no browser's, so it passes.
fn host_allowed(host: Option<&str>) -> bool {
    let Some(h) = host else {
        return true;
    };
    let (name, _) = crate::net::split_host_port(h);
    if name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    name.strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The format asked for: `?format=` when given (`None` for an unknown one), otherwise
/// OpenMetrics when `Accept` prefers `application/openmetrics-text` to the text format
/// (RFC 9110 §12.5.1 quality values; Prometheus 2.x sends
/// `application/openmetrics-text;version=1.0.0,…,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`).
fn format(query: Option<&str>, accept: Option<&str>) -> Option<Format> {
    let asked = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|p| p.strip_prefix("format="));
    match asked {
        Some("prometheus") => return Some(Format::Prometheus),
        Some("openmetrics") => return Some(Format::OpenMetrics),
        Some(_) => return None,
        None => {}
    }
    let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            openmetrics = openmetrics.max(q);
        } else if ["text/plain", "text/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
        {
            text = text.max(q);
        }
    }
    Some(if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    })
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn json(v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(&v).unwrap_or_default();
    body.push(b'\n');
    with_type(StatusCode::OK, "application/json", Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        use Decision::*;
        let (get, head, post, delete) = (Method::GET, Method::HEAD, Method::POST, Method::DELETE);
        // (method, path, Host, loopback, decision, why)
        type Case<'a> = (
            &'a Method,
            &'a str,
            Option<&'a str>,
            bool,
            Decision,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                &get,
                "/ping",
                Some("127.0.0.1:9901"),
                true,
                Ping,
                "an IP literal with port",
            ),
            (
                &head,
                "/ping",
                Some("localhost"),
                true,
                Ping,
                "HEAD and localhost",
            ),
            (
                &get,
                "/ready",
                Some("[::1]:9901"),
                true,
                Ready,
                "an IPv6 literal",
            ),
            (
                &get,
                "/upstreams",
                None,
                true,
                Upstreams,
                "no Host: not a browser",
            ),
            (
                &get,
                "/config",
                Some("LOCALHOST:1"),
                true,
                Config,
                "localhost in any case",
            ),
            (
                &get,
                "/metrics",
                Some("evil.example"),
                true,
                Misdirected,
                "DNS rebinding: a name that resolves to loopback",
            ),
            (
                &get,
                "/nope",
                Some("localhost.evil.example"),
                true,
                Misdirected,
                "the Host check comes first",
            ),
            (
                &get,
                "/metrics",
                Some("tracegate.internal"),
                false,
                Metrics(Format::Prometheus),
                "not on loopback: names are fine",
            ),
            (&get, "/", Some("localhost"), true, NotFound, "no index"),
            (
                &get,
                "/metrics/",
                Some("localhost"),
                true,
                NotFound,
                "exact paths only",
            ),
            (
                &post,
                "/nope",
                Some("localhost"),
                true,
                NotFound,
                "an unknown path is 404 for any method",
            ),
            (
                &post,
                "/ping",
                Some("localhost"),
                true,
                MethodNotAllowed,
                "POST",
            ),
            (
                &delete,
                "/config",
                Some("localhost"),
                true,
                MethodNotAllowed,
                "DELETE",
            ),
        ];
        for (method, path, host, loopback, want, why) in cases {
            let t = Target {
                method,
                path,
                query: None,
                host: *host,
                accept: None,
            };
            assert_eq!(decide(&t, *loopback), *want, "{why}");
        }
    }

    #[test]
    fn format_table() {
        use Format::*;
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        // (query, Accept, format, why)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<Format>, &'a str);
        let cases: &[Case] = &[
            (None, None, Some(Prometheus), "no Accept: the text format"),
            (None, Some("*/*"), Some(Prometheus), "curl"),
            (
                None,
                Some(prometheus_2),
                Some(OpenMetrics),
                "Prometheus 2.x prefers OpenMetrics",
            ),
            (
                None,
                Some("text/plain;version=0.0.4"),
                Some(Prometheus),
                "a text-only scraper",
            ),
            (
                None,
                Some("application/openmetrics-text; version=1.0.0"),
                Some(OpenMetrics),
                "OpenMetrics only",
            ),
            (
                None,
                Some("application/openmetrics-text;q=0.2,text/plain"),
                Some(Prometheus),
                "text preferred by quality",
            ),
            (
                None,
                Some("application/openmetrics-text;q=0"),
                Some(Prometheus),
                "q=0 means not acceptable",
            ),
            (
                Some("format=prometheus"),
                Some(prometheus_2),
                Some(Prometheus),
                "the query wins",
            ),
            (
                Some("x=1&format=openmetrics"),
                None,
                Some(OpenMetrics),
                "the query wins",
            ),
            (Some("format=json"), None, None, "an unknown format"),
        ];
        for (query, accept, want, why) in cases {
            assert_eq!(format(*query, *accept), *want, "{why}");
        }
    }
}
