//! Exporter selection: OTLP gRPC, OTLP HTTP/protobuf, a human-readable stdout exporter, or none.
//!
//! OTLP encoding and transport stay in `opentelemetry-otlp`; this module only picks and builds
//! the exporter the settings name, and starts the [`Pipeline`] around it.

use super::pipeline::{Pipeline, PipelineSettings};
use opentelemetry::trace::Status;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::io::Write;
use std::time::Duration;

/// Where spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterProtocol {
    /// OTLP over gRPC (default port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies, POST `/v1/traces` (default port 4318).
    HttpProtobuf,
    /// One line per span on standard output.
    Stdout,
    /// Spans are not recorded; trace context is still propagated.
    None,
}

impl ExporterProtocol {
    /// The name used in config files and `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::Stdout => "stdout",
            Self::None => "none",
        }
    }
}

/// A checked exporter configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterSettings {
    pub protocol: ExporterProtocol,
    /// Full URL of the receiver; for HTTP it includes the `/v1/traces` path.
    pub endpoint: String,
    /// Longest time one export call may take.
    pub timeout: Duration,
}

/// Everything the span pipeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    pub service_name: String,
    pub exporter: ExporterSettings,
    pub batch: PipelineSettings,
}

/// The exporters tracegate can drive, behind one type so the pipeline is not generic over them.
#[derive(Debug)]
// One instance per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnyExporter {
    Otlp(opentelemetry_otlp::SpanExporter),
    Stdout(StdoutExporter),
}

impl SpanExporter for AnyExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            AnyExporter::Otlp(e) => e.export(batch).await,
            AnyExporter::Stdout(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            AnyExporter::Otlp(e) => e.shutdown_with_timeout(timeout),
            AnyExporter::Stdout(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            AnyExporter::Otlp(e) => e.set_resource(resource),
            AnyExporter::Stdout(e) => e.set_resource(resource),
        }
    }
}

/// Starts the pipeline for `settings`, or returns `Ok(None)` for protocol `none`.
pub fn start_pipeline(settings: &TelemetrySettings) -> Result<Option<Pipeline>, String> {
    let exporter = settings.exporter.clone();
    if exporter.protocol == ExporterProtocol::None {
        return Ok(None);
    }
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let scope = InstrumentationScope::builder("tracegate")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let make = move || -> Result<AnyExporter, String> {
        let built = match exporter.protocol {
            ExporterProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(exporter.endpoint.clone())
                .with_timeout(exporter.timeout)
                .build(),
            ExporterProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(exporter.endpoint.clone())
                .with_timeout(exporter.timeout)
                .build(),
            ExporterProtocol::Stdout => return Ok(AnyExporter::Stdout(StdoutExporter)),
            ExporterProtocol::None => unreachable!("handled above"),
        };
        built.map(AnyExporter::Otlp).map_err(|e| {
            format!(
                "cannot build the {} exporter for {}: {e}",
                exporter.protocol.as_str(),
                exporter.endpoint
            )
        })
    };
    Pipeline::start(make, resource, scope, settings.batch.clone()).map(Some)
}

/// Writes one line per span to standard output, for trying tracegate without a collector.
///
/// Format: `span <trace-id> <span-id> parent=<id|-> <kind> "<name>" <duration> [error] key=value…`.
#[derive(Debug, Default)]
pub struct StdoutExporter;

impl SpanExporter for StdoutExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = String::new();
        for s in &batch {
            format_span_line(s, &mut out);
            out.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(out.as_bytes())
            .and_then(|_| stdout.flush())
            .map_err(|e| opentelemetry_sdk::error::OTelSdkError::InternalFailure(e.to_string()))
    }
}

/// Formats one span as a single line (see [`StdoutExporter`]).
pub fn format_span_line(s: &SpanData, out: &mut String) {
    use std::fmt::Write as _;
    let parent = if s.parent_span_id == opentelemetry::trace::SpanId::INVALID {
        "-".to_string()
    } else {
        s.parent_span_id.to_string()
    };
    let dur = s.end_time.duration_since(s.start_time).unwrap_or_default();
    let _ = write!(
        out,
        "span {} {} parent={} {} {:?} {:.3}ms",
        s.span_context.trace_id(),
        s.span_context.span_id(),
        parent,
        match s.span_kind {
            opentelemetry::trace::SpanKind::Server => "server",
            opentelemetry::trace::SpanKind::Client => "client",
            _ => "internal",
        },
        s.name,
        dur.as_secs_f64() * 1e3
    );
    if let Status::Error { description } = &s.status {
        let _ = write!(out, " error={description:?}");
    }
    for KeyValue { key, value, .. } in &s.attributes {
        let _ = write!(out, " {}={}", key.as_str(), value);
    }
}
