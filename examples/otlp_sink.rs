//! A minimal OTLP/gRPC trace receiver that counts spans, for the load benchmark.
//!
//! Accepts `ExportTraceServiceRequest`s on the given address and writes the running total of
//! spans received to a file every 100 ms (read by `benches/load/run.sh`).
//!
//! ```text
//! cargo run --release --example otlp_sink -- 127.0.0.1:4317 /tmp/spans.count
//! ```

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Sink {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
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
            .add_service(TraceServiceServer::new(Sink { spans }))
            .serve_with_shutdown(addr, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("serve");
    });
}
