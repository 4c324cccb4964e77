//! A well-behaved upstream and what tests build around it.
//!
//! * [`Upstream`] / [`RecordedRequest`]: a real hyper HTTP/1.1 backend that records every
//!   request, answering by path (`/status/NNN`, `/slow/MS`, and a `traceresponse` of its own,
//!   [`UPSTREAM_TRACERESPONSE`], for paths containing `upstream-traceresponse`).
//! * [`one_upstream`]: config YAML sending every path to one upstream.
//! * [`dead_addr`]: an address with nothing listening on it.
//!
//! Backends that misbehave on demand are in `backends.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, StatusCode};

use super::{
    bind_local, header_pairs, header_values_in, lock, simple_response, spawn_http1_server,
    BackgroundServer, POLL_INTERVAL,
};

/// One request as seen by an [`Upstream`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// Lowercase names; duplicates kept. Names appear in order of first
    /// appearance, with repeated values of the same name kept together in
    /// received order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// All values of the header `name` (case-insensitive), in received order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        header_values_in(&self.headers, name)
    }

    /// The first value of header `name`, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_values_in(&self.headers, name).into_iter().next()
    }
}

/// A real hyper HTTP/1.1 backend that records every request.
///
/// Responds 200 with `x-backend: <name>` and body `<name>`, except:
/// * `/status/NNN...` responds with status NNN;
/// * `/slow/MS...` waits MS milliseconds before responding 200;
/// * `/big/N?type=T&encoding=E` answers N bytes of text as type T, labelled `Content-Encoding: E`;
/// * a path containing `upstream-traceresponse` gets a `traceresponse` of the upstream's own
///   ([`UPSTREAM_TRACERESPONSE`]).
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    _server: BackgroundServer,
}

fn leading_number(s: &str) -> Option<u64> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        let listener = bind_local();
        let addr = listener.local_addr().expect("upstream local addr");
        let requests: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
        let rec = requests.clone();
        let backend = name.to_string();
        let server = spawn_http1_server(&format!("upstream-{name}"), listener, move |req| {
            let rec = rec.clone();
            let backend = backend.clone();
            async move { handle_upstream(rec, backend, req).await }
        });
        Upstream {
            name: name.to_string(),
            addr,
            requests,
            _server: server,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Snapshot of every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Polls until at least `n` requests have arrived; panics after `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let reqs = self.requests();
            if reqs.len() >= n {
                return reqs;
            }
            if Instant::now() >= deadline {
                panic!(
                    "upstream {} at {}: timed out after {:?} waiting for {} request(s); got {}: {:#?}",
                    self.name,
                    self.addr,
                    timeout,
                    n,
                    reqs.len(),
                    reqs
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

pub(super) async fn handle_upstream(
    rec: Arc<Mutex<Vec<RecordedRequest>>>,
    backend: String,
    req: Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().to_string());
    let headers = header_pairs(req.headers());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    lock(&rec).push(RecordedRequest {
        method,
        path_and_query: path_and_query.clone(),
        headers,
        body,
    });

    let mut status = StatusCode::OK;
    if let Some(rest) = path_and_query.strip_prefix("/status/") {
        if let Some(s) = leading_number(rest)
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            status = s;
        }
    } else if let Some(rest) = path_and_query.strip_prefix("/slow/") {
        if let Some(ms) = leading_number(rest) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    // `/big/N?type=T&encoding=E`: N bytes of text as media type T (text/plain by default),
    // labelled with Content-Encoding E when given (the body is not really encoded).
    if let Some(rest) = path_and_query.strip_prefix("/big/") {
        let n = leading_number(rest).unwrap_or(0) as usize;
        let text: String = "tracegate compresses this line of text. "
            .chars()
            .cycle()
            .take(n)
            .collect();
        let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(|v| v.replace("%2F", "/"))
        };
        let mut resp = simple_response(StatusCode::OK, Bytes::from(text));
        let ct = param("type").unwrap_or_else(|| "text/plain".into());
        if let Ok(v) = hyper::header::HeaderValue::from_str(&ct) {
            resp.headers_mut().insert("content-type", v);
        }
        if let Some(e) = param("encoding") {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&e) {
                resp.headers_mut().insert("content-encoding", v);
            }
        }
        return resp;
    }

    let body_allowed = !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    let body = if body_allowed {
        Bytes::from(backend.clone())
    } else {
        Bytes::new()
    };
    let mut resp = simple_response(status, body);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&backend) {
        resp.headers_mut().insert("x-backend", v);
    }
    if path_and_query.contains("upstream-traceresponse") {
        resp.headers_mut().insert(
            "traceresponse",
            hyper::header::HeaderValue::from_static(UPSTREAM_TRACERESPONSE),
        );
    }
    resp
}

/// The `traceresponse` an [`Upstream`] sends for paths containing `upstream-traceresponse`.
pub const UPSTREAM_TRACERESPONSE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Config YAML for one route, `all` (every path), proxying to `up` as upstream `app`.
pub fn one_upstream(up: &Upstream) -> String {
    format!(
        r#"routes:
  - name: all
    match: {{ path_prefix: / }}
    upstream: app
upstreams:
  app: {{ backends: ["{}"] }}
"#,
        up.addr()
    )
}

/// An address with nothing listening on it.
pub fn dead_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind for dead_addr");
    let addr = listener.local_addr().expect("dead_addr local addr");
    drop(listener);
    addr.to_string()
}
