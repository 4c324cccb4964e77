//! Exporter selection: OTLP gRPC, OTLP HTTP/protobuf, Zipkin v2 JSON, a human-readable stdout
//! exporter, or none.
//!
//! This module only picks and builds the exporter the settings name and starts the
//! [`Pipeline`] around it; OTLP encoding and transport are in `super::otlp`, Zipkin in
//! `super::zipkin`, headers/compression/TLS in `super::transport` and `super::tls`.

use super::otlp::{OtlpEncoder, OtlpExporter, OtlpTransport};
use super::pipeline::{BatchExporter, Pipeline, PipelineSettings, SdkExporter};
use super::tls::TlsSettings;
use super::transport::Compression;
use super::zipkin::{ZipkinEncoder, ZipkinExporter};
use crate::trace::span::SpanRecord;
use opentelemetry::trace::Status;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

/// Where spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterProtocol {
    /// OTLP over gRPC (default port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies, POST `/v1/traces` (default port 4318).
    HttpProtobuf,
    /// Zipkin v2 JSON, POST `/api/v2/spans` (default port 9411).
    Zipkin,
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
            Self::Zipkin => "zipkin",
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
    /// Sent with every export request (gRPC metadata or HTTP headers). Values are secrets
    /// (API keys): they are marked sensitive, so `Debug` does not print them.
    pub headers: http::HeaderMap,
    /// Compression of export requests.
    pub compression: Compression,
    /// Trusted CAs and client certificate, for `https://` endpoints.
    pub tls: TlsSettings,
}

impl Default for ExporterSettings {
    /// `stdout`, no endpoint, the OTLP default timeout of 10 s, no headers, no compression,
    /// the platform's trusted roots.
    fn default() -> Self {
        ExporterSettings {
            protocol: ExporterProtocol::Stdout,
            endpoint: String::new(),
            timeout: Duration::from_secs(10),
            headers: http::HeaderMap::new(),
            compression: Compression::None,
            tls: TlsSettings::default(),
        }
    }
}

/// Everything the span pipeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    pub service_name: String,
    /// Resource attributes besides `service.name` (from the config and
    /// `OTEL_RESOURCE_ATTRIBUTES`), in the order they are reported.
    pub resource: Vec<(String, String)>,
    pub exporter: ExporterSettings,
    pub batch: PipelineSettings,
    /// What the request path does with trace context (response headers, ...).
    pub options: crate::trace::request::TraceOptions,
}

/// The exporters tracegate can drive, behind one type so the pipeline is not generic over them.
#[derive(Debug)]
// One instance per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnyExporter {
    Otlp(OtlpExporter),
    Zipkin(ZipkinExporter),
    Stdout(SdkExporter<StdoutExporter>),
}

impl BatchExporter for AnyExporter {
    async fn export(&mut self, batch: &mut Vec<SpanRecord>) -> Result<u64, String> {
        match self {
            AnyExporter::Otlp(e) => e.export(batch).await,
            AnyExporter::Zipkin(e) => e.export(batch).await,
            AnyExporter::Stdout(e) => e.export(batch).await,
        }
    }

    fn shutdown(&mut self, timeout: Duration) {
        match self {
            AnyExporter::Otlp(e) => e.shutdown(timeout),
            AnyExporter::Zipkin(e) => e.shutdown(timeout),
            AnyExporter::Stdout(e) => e.shutdown(timeout),
        }
    }
}

/// `url` fit for logs and error messages: credentials written into its authority
/// (`https://user:secret@host/`) are replaced by `***`, like any other secret.
pub fn redact_userinfo(url: &str) -> Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}***{}", &url[..start], &url[start + at..])),
        None => Cow::Borrowed(url),
    }
}

/// The instrumentation scope spans are reported under: `tracegate` and its version.
pub const SCOPE_NAME: &str = "tracegate";

/// Starts the pipeline for `settings`, or returns `Ok(None)` for protocol `none`.
pub fn start_pipeline(settings: &TelemetrySettings) -> Result<Option<Pipeline>, String> {
    let exporter = settings.exporter.clone();
    if exporter.protocol == ExporterProtocol::None {
        return Ok(None);
    }
    // Built from the settings alone: the SDK's default detectors would read OTEL_SERVICE_NAME
    // and OTEL_RESOURCE_ATTRIBUTES again, past the config's checks and precedence.
    let resource = Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_service_name(settings.service_name.clone())
        .with_attributes(
            settings
                .resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build();
    let service_name = settings.service_name.clone();
    let make = move || -> Result<AnyExporter, String> {
        let version = env!("CARGO_PKG_VERSION");
        let transport = match exporter.protocol {
            ExporterProtocol::Grpc => OtlpTransport::grpc(&exporter),
            ExporterProtocol::HttpProtobuf => OtlpTransport::http(&exporter),
            ExporterProtocol::Zipkin => {
                let encoder = ZipkinEncoder::new(&service_name, SCOPE_NAME, version);
                return ZipkinExporter::new(encoder, &exporter)
                    .map(AnyExporter::Zipkin)
                    .map_err(|e| {
                        format!(
                            "cannot build the zipkin exporter for {}: {e}",
                            redact_userinfo(&exporter.endpoint)
                        )
                    });
            }
            ExporterProtocol::Stdout => {
                let scope = InstrumentationScope::builder(SCOPE_NAME)
                    .with_version(version)
                    .build();
                return Ok(AnyExporter::Stdout(SdkExporter::new(
                    StdoutExporter,
                    &resource,
                    scope,
                )));
            }
            ExporterProtocol::None => unreachable!("handled above"),
        };
        let transport = transport.map_err(|e| {
            format!(
                "cannot build the {} exporter for {}: {e}",
                exporter.protocol.as_str(),
                redact_userinfo(&exporter.endpoint)
            )
        })?;
        let encoder = OtlpEncoder::new(&resource, SCOPE_NAME, version);
        Ok(AnyExporter::Otlp(OtlpExporter::new(encoder, transport)))
    };
    Pipeline::start(make, settings.batch.clone()).map(Some)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_endpoints_are_not_shown() {
        // (endpoint, shown, reason)
        let cases = [
            (
                "http://collector:4317",
                "http://collector:4317",
                "nothing to hide",
            ),
            (
                "https://u:p@otel.example.com:4317/v1/traces",
                "https://***@otel.example.com:4317/v1/traces",
                "user and password",
            ),
            (
                "https://token@h/x@y",
                "https://***@h/x@y",
                "an @ in the path is not userinfo",
            ),
            ("http://h/?a=b@c", "http://h/?a=b@c", "nor one in the query"),
            ("u:p@h:1", "***@h:1", "no scheme"),
        ];
        for (url, want, why) in cases {
            assert_eq!(redact_userinfo(url), want, "{why}");
        }
    }
}
