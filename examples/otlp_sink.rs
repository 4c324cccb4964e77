//! A minimal OTLP/gRPC trace receiver that counts spans, for the load benchmarks.
//!
//! Accepts `ExportTraceServiceRequest`s on the given address and writes the running total of
//! spans received to a file every 100 ms (read by `benches/load/run.sh` and `steady.sh`).
//!
//! It shares the machine with the proxy under test, so it does as little as it can: the
//! request is decoded with a cut-down schema (resource spans → scope spans → spans) in which
//! each span stays an undecoded byte string, so counting costs no per-attribute work. It
//! answers the OTLP service path `/opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! with an empty `ExportTraceServiceResponse`; other paths get `UNIMPLEMENTED`.
//!
//! ```text
//! cargo run --release --example otlp_sink -- 127.0.0.1:4317 /tmp/spans.count
//! ```

use prost::bytes::{Buf, Bytes};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, Service, StdError};

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`, only as deep as counting
/// needs. Fields not listed here (the resource, scopes, schema URLs) are skipped by prost.
#[derive(Clone, PartialEq, Message)]
struct ExportRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceSpans {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct ScopeSpans {
    /// Each span's encoding, not decoded (a slice of the request buffer, not a copy).
    #[prost(bytes = "bytes", repeated, tag = "2")]
    spans: Vec<Bytes>,
}

impl ExportRequest {
    fn span_count(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
}

/// `ExportTraceServiceResponse` without `partial_success`: an empty message.
#[derive(Clone, PartialEq, Message)]
struct ExportResponse {}

/// Protobuf codec for the two messages above.
#[derive(Clone, Copy, Default)]
struct CountCodec;

impl Codec for CountCodec {
    type Encode = ExportResponse;
    type Decode = ExportRequest;
    type Encoder = CountCodec;
    type Decoder = CountCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for CountCodec {
    type Item = ExportResponse;
    type Error = tonic::Status;

    fn encode(&mut self, item: ExportResponse, buf: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(buf)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Decoder for CountCodec {
    type Item = ExportRequest;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<ExportRequest>, Self::Error> {
        let msg =
            ExportRequest::decode(&mut *buf).map_err(|e| tonic::Status::internal(e.to_string()))?;
        debug_assert_eq!(buf.remaining(), 0);
        Ok(Some(msg))
    }
}

/// The unary `Export` method: adds the request's spans to the counter.
struct Export(Arc<AtomicU64>);

impl tonic::server::UnaryService<ExportRequest> for Export {
    type Response = ExportResponse;
    type Future = std::future::Ready<Result<tonic::Response<ExportResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<ExportRequest>) -> Self::Future {
        let n = request.get_ref().span_count();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        std::future::ready(Ok(tonic::Response::new(ExportResponse {})))
    }
}

/// The `TraceService` gRPC service, routed by path as generated servers do.
#[derive(Clone)]
struct TraceService {
    spans: Arc<AtomicU64>,
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for TraceService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == EXPORT_PATH {
            let method = Export(self.spans.clone());
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(CountCodec);
                Ok(grpc.unary(method, req).await)
            })
        } else {
            Box::pin(async move {
                Ok(tonic::Status::unimplemented(req.uri().path().to_string()).into_http())
            })
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4317".into());
    let count_file = args.next().unwrap_or_else(|| "spans.count".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let spans = Arc::new(AtomicU64::new(0));
        let counter = spans.clone();
        tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                let n = counter.load(Ordering::Relaxed);
                if n != last {
                    let tmp = format!("{count_file}.tmp");
                    if std::fs::write(&tmp, format!("{n}\n")).is_ok() {
                        let _ = std::fs::rename(&tmp, &count_file);
                    }
                    last = n;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let addr = addr.parse().expect("address IP:port");
        tonic::transport::Server::builder()
            .add_service(TraceService { spans })
            .serve_with_shutdown(addr, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("serve");
    });
}
