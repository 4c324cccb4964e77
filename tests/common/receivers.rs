//! In-process trace collectors that record what the proxy exports.
//!
//! * [`OtlpReceiver`]: an OTLP trace collector, gRPC or HTTP/protobuf ([`OtlpProtocol`]),
//!   plain or over TLS with a certificate from a [`TestCa`] (optionally requiring a client
//!   certificate), accepting gzip. It records every span it receives ([`ReceivedSpan`], with
//!   attributes as [`AttrValue`]), the headers and whether the body was compressed, and can
//!   answer with a partial success that rejects every span.
//! * [`ZipkinReceiver`]: a Zipkin collector (`POST /api/v2/spans`, JSON, plain or gzip).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;

use super::{
    bind_local, header_pairs, header_values_in, lock, simple_response, spawn_http1_server,
    spawn_http1_server_tls, BackgroundServer, TestCa, POLL_INTERVAL,
};

// ---------------------------------------------------------------------------
// OTLP receiver
// ---------------------------------------------------------------------------

/// An attribute value as received over OTLP.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    /// An array whose elements are all strings (e.g. captured header values).
    StrList(Vec<String>),
    /// Other arrays, key-value lists, bytes and empty values, rendered with `{:?}`.
    Other(String),
}

impl AttrValue {
    fn from_proto(v: Option<&AnyValue>) -> AttrValue {
        match v.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
            Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
            Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
            Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
            Some(any_value::Value::ArrayValue(a))
                if a.values
                    .iter()
                    .all(|v| matches!(v.value, Some(any_value::Value::StringValue(_)))) =>
            {
                AttrValue::StrList(
                    a.values
                        .iter()
                        .filter_map(|v| match &v.value {
                            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                )
            }
            Some(other) => AttrValue::Other(format!("{other:?}")),
            None => AttrValue::Other(String::new()),
        }
    }
}

fn attrs_from_proto(kvs: &[KeyValue]) -> BTreeMap<String, AttrValue> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), AttrValue::from_proto(kv.value.as_ref())))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One span as received by an [`OtlpReceiver`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// 16 lowercase hex characters.
    pub span_id: String,
    /// 16 lowercase hex characters, or empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// Proto `SpanKind`: 1=INTERNAL, 2=SERVER, 3=CLIENT, 4=PRODUCER, 5=CONSUMER.
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: BTreeMap<String, AttrValue>,
    /// 0 = unset, 1 = ok, 2 = error.
    pub status_code: i32,
    pub status_message: String,
    /// `(name, time_unix_nano, attributes)`.
    pub events: Vec<(String, u64, BTreeMap<String, AttrValue>)>,
    pub flags: u32,
    /// `(trace_id, span_id, flags)` of each link, hex like the ids above.
    pub links: Vec<(String, String, u32)>,
}

impl ReceivedSpan {
    pub const KIND_INTERNAL: i32 = 1;
    pub const KIND_SERVER: i32 = 2;
    pub const KIND_CLIENT: i32 = 3;
    pub const STATUS_UNSET: i32 = 0;
    pub const STATUS_OK: i32 = 1;
    pub const STATUS_ERROR: i32 = 2;

    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(AttrValue::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(AttrValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        match self.attributes.get(key) {
            Some(AttrValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn is_server(&self) -> bool {
        self.kind == Self::KIND_SERVER
    }

    pub fn is_client(&self) -> bool {
        self.kind == Self::KIND_CLIENT
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// The first event with this name, if any.
    pub fn event(&self, name: &str) -> Option<&(String, u64, BTreeMap<String, AttrValue>)> {
        self.events.iter().find(|e| e.0 == name)
    }

    fn from_proto(span: &opentelemetry_proto::tonic::trace::v1::Span) -> ReceivedSpan {
        let parent = if span.parent_span_id.iter().all(|b| *b == 0) {
            String::new()
        } else {
            to_hex(&span.parent_span_id)
        };
        let (status_code, status_message) = match &span.status {
            Some(s) => (s.code, s.message.clone()),
            None => (0, String::new()),
        };
        ReceivedSpan {
            trace_id: to_hex(&span.trace_id),
            span_id: to_hex(&span.span_id),
            parent_span_id: parent,
            name: span.name.clone(),
            kind: span.kind,
            start_ns: span.start_time_unix_nano,
            end_ns: span.end_time_unix_nano,
            attributes: attrs_from_proto(&span.attributes),
            status_code,
            status_message,
            events: span
                .events
                .iter()
                .map(|e| {
                    (
                        e.name.clone(),
                        e.time_unix_nano,
                        attrs_from_proto(&e.attributes),
                    )
                })
                .collect(),
            flags: span.flags,
            links: span
                .links
                .iter()
                .map(|l| (to_hex(&l.trace_id), to_hex(&l.span_id), l.flags))
                .collect(),
        }
    }

    fn summary(&self) -> String {
        format!(
            "{:?} kind={} trace={} span={} parent={} status={} attrs={:?}",
            self.name,
            self.kind,
            self.trace_id,
            self.span_id,
            if self.parent_span_id.is_empty() {
                "-"
            } else {
                &self.parent_span_id
            },
            self.status_code,
            self.attributes
        )
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: Vec<ExportTraceServiceRequest>,
    /// Transport headers (gRPC metadata or HTTP headers) of each export call.
    headers: Vec<Vec<(String, String)>>,
    /// Whether each export call's body arrived gzip-compressed.
    compressed: Vec<bool>,
    spans: Vec<ReceivedSpan>,
    /// When set, every export is answered with an OTLP partial success rejecting all of its
    /// spans, with this message.
    reject_with: Option<String>,
}

impl ReceiverState {
    /// The response to an export of `req`: empty, or a partial success rejecting every span.
    fn response(&self, req: &ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        let n: usize = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        ExportTraceServiceResponse {
            partial_success: self
                .reject_with
                .as_ref()
                .map(|m| ExportTracePartialSuccess {
                    rejected_spans: n as i64,
                    error_message: m.clone(),
                }),
        }
    }

    fn record(
        &mut self,
        req: ExportTraceServiceRequest,
        headers: Vec<(String, String)>,
        compressed: bool,
    ) {
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    self.spans.push(ReceivedSpan::from_proto(span));
                }
            }
        }
        self.requests.push(req);
        self.headers.push(headers);
        self.compressed.push(compressed);
    }
}

type SharedState = Arc<Mutex<ReceiverState>>;

struct GrpcTraceSink {
    state: SharedState,
}

#[tonic::async_trait]
impl TraceService for GrpcTraceSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = header_pairs(&request.metadata().clone().into_headers());
        // The message compression tonic decoded for us (accept_compressed), as announced.
        let compressed = header_values_in(&headers, "grpc-encoding").contains(&"gzip");
        let mut st = lock(&self.state);
        let resp = st.response(request.get_ref());
        st.record(request.into_inner(), headers, compressed);
        Ok(tonic::Response::new(resp))
    }
}

/// Which OTLP transport an [`OtlpReceiver`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// An in-process OTLP trace collector.
pub struct OtlpReceiver {
    protocol: OtlpProtocol,
    addr: SocketAddr,
    tls: bool,
    state: SharedState,
    _server: BackgroundServer,
}

impl OtlpReceiver {
    /// A gRPC (tonic) `TraceService` collector. Accepts gzip-compressed messages.
    pub fn grpc() -> OtlpReceiver {
        Self::grpc_with(None)
    }

    /// A gRPC collector over TLS with a certificate signed by `ca`.
    pub fn grpc_tls(ca: &TestCa) -> OtlpReceiver {
        Self::grpc_with(Some((ca, false)))
    }

    /// [`OtlpReceiver::grpc_tls`] that also requires a client certificate signed by `ca`.
    pub fn grpc_mtls(ca: &TestCa) -> OtlpReceiver {
        Self::grpc_with(Some((ca, true)))
    }

    fn grpc_with(tls: Option<(&TestCa, bool)>) -> OtlpReceiver {
        let listener = bind_local();
        let addr = listener.local_addr().expect("receiver local addr");
        let state = SharedState::default();
        let sink = GrpcTraceSink {
            state: state.clone(),
        };
        let tls_config = tls.map(|(ca, mtls)| ca.tonic_tls(mtls));
        let server = BackgroundServer::spawn("otlp-grpc", listener, move |listener| async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let mut builder = tonic::transport::Server::builder();
            if let Some(c) = tls_config {
                builder = builder.tls_config(c).expect("gRPC server TLS config");
            }
            let _ = builder
                .add_service(
                    TraceServiceServer::new(sink)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming(incoming)
                .await;
        });
        OtlpReceiver {
            protocol: OtlpProtocol::Grpc,
            addr,
            tls: tls.is_some(),
            state,
            _server: server,
        }
    }

    /// An OTLP/HTTP collector accepting `POST /v1/traces` with protobuf bodies, plain or
    /// `Content-Encoding: gzip`.
    pub fn http() -> OtlpReceiver {
        Self::http_with(None)
    }

    /// An OTLP/HTTP collector over TLS with a certificate signed by `ca`.
    pub fn http_tls(ca: &TestCa) -> OtlpReceiver {
        Self::http_with(Some((ca, false)))
    }

    /// [`OtlpReceiver::http_tls`] that also requires a client certificate signed by `ca`.
    pub fn http_mtls(ca: &TestCa) -> OtlpReceiver {
        Self::http_with(Some((ca, true)))
    }

    fn http_with(tls: Option<(&TestCa, bool)>) -> OtlpReceiver {
        let listener = bind_local();
        let addr = listener.local_addr().expect("receiver local addr");
        let state = SharedState::default();
        let handler_state = state.clone();
        let server = spawn_http1_server_tls(
            "otlp-http",
            listener,
            tls.map(|(ca, mtls)| ca.acceptor(mtls)),
            move |req| {
                let state = handler_state.clone();
                async move { handle_otlp_http(state, req).await }
            },
        );
        OtlpReceiver {
            protocol: OtlpProtocol::HttpProtobuf,
            addr,
            tls: tls.is_some(),
            state,
            _server: server,
        }
    }

    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    /// `http://127.0.0.1:PORT`, or `https://` for a TLS receiver (for HTTP the exporter
    /// appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// From now on, answers every export with an OTLP partial success that rejects all of its
    /// spans (as a backend over quota or refusing old spans does), with `message`.
    pub fn reject_all_spans(&self, message: &str) {
        lock(&self.state).reject_with = Some(message.to_owned());
    }

    /// Snapshot of every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.state).spans.clone()
    }

    /// Polls until at least `n` spans have arrived, then returns all of them.
    /// Panics with a listing of what did arrive if `timeout` passes first.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let st = lock(&self.state);
                if st.spans.len() >= n {
                    return st.spans.clone();
                }
            }
            if Instant::now() >= deadline {
                let st = lock(&self.state);
                let listing: Vec<String> = st
                    .spans
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("  [{i}] {}", s.summary()))
                    .collect();
                panic!(
                    "OTLP {:?} receiver at {}: timed out after {:?} waiting for {} span(s); \
                     got {} span(s) in {} export request(s):\n{}",
                    self.protocol,
                    self.addr,
                    timeout,
                    n,
                    st.spans.len(),
                    st.requests.len(),
                    if listing.is_empty() {
                        "  (none)".to_string()
                    } else {
                        listing.join("\n")
                    }
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Number of export calls received.
    pub fn requests(&self) -> usize {
        lock(&self.state).requests.len()
    }

    /// The raw export requests received, in arrival order.
    pub fn raw_requests(&self) -> Vec<ExportTraceServiceRequest> {
        lock(&self.state).requests.clone()
    }

    /// Transport headers (gRPC metadata / HTTP headers, lowercase names) of each
    /// export call, in arrival order.
    pub fn request_headers(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.state).headers.clone()
    }

    /// Whether each export call arrived gzip-compressed, in arrival order.
    pub fn compressed(&self) -> Vec<bool> {
        lock(&self.state).compressed.clone()
    }

    /// The `service.name` resource attribute of every received resource
    /// (one entry per `ResourceSpans`, in arrival order).
    pub fn service_names(&self) -> Vec<String> {
        lock(&self.state)
            .requests
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .filter_map(|rs| {
                rs.resource.as_ref().and_then(|res| {
                    res.attributes
                        .iter()
                        .find(|kv| kv.key == "service.name")
                        .map(|kv| match AttrValue::from_proto(kv.value.as_ref()) {
                            AttrValue::Str(s) => s,
                            other => format!("{other:?}"),
                        })
                })
            })
            .collect()
    }

    /// All resource attributes of every received resource (one map per
    /// `ResourceSpans`, in arrival order).
    pub fn resource_attributes(&self) -> Vec<BTreeMap<String, AttrValue>> {
        lock(&self.state)
            .requests
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .map(|rs| {
                rs.resource
                    .as_ref()
                    .map(|res| attrs_from_proto(&res.attributes))
                    .unwrap_or_default()
            })
            .collect()
    }
}

async fn handle_otlp_http(
    state: SharedState,
    req: Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (headers, body, compressed) =
        match read_post(req, "/v1/traces", "application/x-protobuf").await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
    let decoded = match ExportTraceServiceRequest::decode(body) {
        Ok(d) => d,
        Err(e) => return simple_response(StatusCode::BAD_REQUEST, format!("decode error: {e}")),
    };
    let out = {
        let mut st = lock(&state);
        let resp = st.response(&decoded);
        st.record(decoded, headers, compressed);
        resp.encode_to_vec()
    };
    let mut resp = simple_response(StatusCode::OK, out);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    resp
}

/// Reads a request body, gunzipping it under `Content-Encoding: gzip`. Returns the body and
/// whether it was compressed, or the error response to send.
/// Checks that `req` is a POST to `path` with a content type starting with `content_type`,
/// and reads it: its headers, its body (gunzipped if need be), and whether it was compressed.
/// Anything else gets the error response a collector would send.
async fn read_post(
    req: Request<Incoming>,
    path: &str,
    content_type: &str,
) -> Result<(Vec<(String, String)>, Bytes, bool), hyper::Response<Full<Bytes>>> {
    if req.uri().path() != path {
        return Err(simple_response(StatusCode::NOT_FOUND, "not found"));
    }
    if req.method() != hyper::Method::POST {
        return Err(simple_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ));
    }
    let got = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !got.starts_with(content_type) {
        return Err(simple_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content-type {got:?}"),
        ));
    }
    let headers = header_pairs(req.headers());
    let (body, compressed) = read_body(req).await?;
    Ok((headers, body, compressed))
}

async fn read_body(req: Request<Incoming>) -> Result<(Bytes, bool), hyper::Response<Full<Bytes>>> {
    let encoding = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| simple_response(StatusCode::BAD_REQUEST, format!("body error: {e}")))?
        .to_bytes();
    match encoding.as_deref() {
        None | Some("identity") => Ok((body, false)),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .read_to_end(&mut out)
                .map_err(|e| simple_response(StatusCode::BAD_REQUEST, format!("gzip: {e}")))?;
            Ok((Bytes::from(out), true))
        }
        Some(other) => Err(simple_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content-encoding {other:?}"),
        )),
    }
}

// ---------------------------------------------------------------------------
// Zipkin receiver
// ---------------------------------------------------------------------------

#[derive(Default)]
struct ZipkinState {
    /// Every span object received, in arrival order.
    spans: Vec<serde_json::Value>,
    headers: Vec<Vec<(String, String)>>,
    compressed: Vec<bool>,
}

/// An in-process Zipkin collector: `POST /api/v2/spans` with a JSON array of v2 spans
/// (`application/json`, plain or gzip), answered `202 Accepted` as Zipkin does.
pub struct ZipkinReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<ZipkinState>>,
    _server: BackgroundServer,
}

impl ZipkinReceiver {
    pub fn start() -> ZipkinReceiver {
        let listener = bind_local();
        let addr = listener.local_addr().expect("receiver local addr");
        let state: Arc<Mutex<ZipkinState>> = Arc::default();
        let handler_state = state.clone();
        let server = spawn_http1_server("zipkin", listener, move |req| {
            let state = handler_state.clone();
            async move { handle_zipkin(state, req).await }
        });
        ZipkinReceiver {
            addr,
            state,
            _server: server,
        }
    }

    /// `http://127.0.0.1:PORT/api/v2/spans`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/api/v2/spans", self.addr)
    }

    /// Every span received so far, as JSON objects.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        lock(&self.state).spans.clone()
    }

    /// Headers of each POST, in arrival order.
    pub fn request_headers(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.state).headers.clone()
    }

    /// Whether each POST arrived gzip-compressed.
    pub fn compressed(&self) -> Vec<bool> {
        lock(&self.state).compressed.clone()
    }

    /// Polls until at least `n` spans have arrived; panics with what did after `timeout`.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            if Instant::now() >= deadline {
                panic!(
                    "Zipkin receiver at {}: timed out after {timeout:?} waiting for {n} span(s); \
                     got {}: {spans:#?}",
                    self.addr,
                    spans.len()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

async fn handle_zipkin(
    state: Arc<Mutex<ZipkinState>>,
    req: Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (headers, body, compressed) =
        match read_post(req, "/api/v2/spans", "application/json").await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
    let spans: Vec<serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return simple_response(StatusCode::BAD_REQUEST, format!("JSON: {e}")),
    };
    let mut st = lock(&state);
    st.spans.extend(spans);
    st.headers.push(headers);
    st.compressed.push(compressed);
    simple_response(StatusCode::ACCEPTED, "")
}
