//! Embedding tracegate's tracing plugin in your own Pingora proxy.
//!
//! A minimal load balancer that forwards every request to one backend, with a SERVER span per
//! request, a CLIENT span per upstream attempt, and `traceparent` injected upstream. Spans go
//! to stdout, or over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! ```text
//! cargo run --example embed -- 127.0.0.1:8000 127.0.0.1:9000   # listen, backend
//! ```

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::{RunArgs, Server};
use pingora::{Error, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tracegate::trace::{
    hooks, start_pipeline, ExporterProtocol, ExporterSettings, PipelineSettings, RequestTrace,
    TelemetrySettings, TraceOptions, Tracer,
};

struct MyProxy {
    backend: SocketAddr,
    tracer: Tracer,
}

#[async_trait]
impl ProxyHttp for MyProxy {
    // Keep the request's trace in your own context type.
    type CTX = Option<RequestTrace>;

    fn new_ctx(&self) -> Self::CTX {
        None
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        let mut trace = hooks::start(&self.tracer, session);
        trace.set_route("all".into());
        *ctx = Some(trace);
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        if let Some(t) = ctx {
            let path = session.req_header().uri.path().to_owned();
            t.begin_attempt(&self.tracer, "backend".into(), self.backend, path);
        }
        Ok(Box::new(HttpPeer::new(self.backend, false, String::new())))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        digest: Option<&Digest>,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(t) = ctx {
            hooks::connected(t, reused, digest);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        match ctx {
            Some(t) => hooks::inject(t, upstream_request),
            None => Ok(()),
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(t) = ctx {
            hooks::upstream_response(t, upstream_response);
        }
        Ok(())
    }

    // Tell the caller its trace id (`traceresponse`), as configured in the tracer's options.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(t) = ctx.as_mut() {
            hooks::response(t, &self.tracer, upstream_response)?;
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if let Some(t) = ctx {
            hooks::upstream_body(t, end_of_stream);
        }
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        if let Some(t) = ctx {
            hooks::attempt_error(t, &e);
        }
        e
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        if let Some(t) = ctx.take() {
            hooks::finish(t, &self.tracer, session, e);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    let backend: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9000".into())
        .parse()
        .expect("backend must be IP:port");

    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok();
    let settings = TelemetrySettings {
        service_name: "my-proxy".into(),
        resource: Vec::new(),
        exporter: ExporterSettings {
            protocol: if endpoint.is_some() {
                ExporterProtocol::Grpc
            } else {
                ExporterProtocol::Stdout
            },
            endpoint: endpoint.unwrap_or_default(),
            timeout: Duration::from_secs(10),
            ..ExporterSettings::default()
        },
        batch: PipelineSettings {
            max_queue_size: 8192,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(1),
            export_timeout: Duration::from_secs(30),
        },
        options: TraceOptions {
            traceresponse: true,
            ..TraceOptions::default()
        },
    };
    // Start the pipeline before the server, and keep it until the server has stopped.
    let pipeline = start_pipeline(&settings).expect("span pipeline");
    let tracer =
        Tracer::new(pipeline.as_ref().map(|p| p.sink())).with_options(settings.options.clone());

    let mut server = Server::new(None).expect("server");
    server.bootstrap();
    let mut service =
        pingora::proxy::http_proxy_service(&server.configuration, MyProxy { backend, tracer });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run(RunArgs::default());

    // Export what is still queued before the process ends.
    if let Some(p) = pipeline {
        p.shutdown(Duration::from_secs(5));
    }
}
