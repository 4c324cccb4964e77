//! Exporter selection: OTLP gRPC, OTLP HTTP/protobuf, Zipkin v2 JSON, a human-readable stdout
//! exporter, or none.
//!
//! This module only picks and builds the exporter the settings name and starts the
//! [`Pipeline`] around it; the settings themselves are in `super::settings`, OTLP encoding and
//! transport in `super::otlp`, Zipkin in `super::zipkin`, headers/compression/TLS in
//! `super::transport` and `super::tls`.

use super::otlp::{OtlpEncoder, OtlpExporter, OtlpTransport};
use super::pipeline::{BatchExporter, Pipeline, SdkExporter};
use super::settings::{redact_userinfo, ExporterProtocol, TelemetrySettings};
use super::zipkin::{ZipkinEncoder, ZipkinExporter};
use crate::trace::span::SpanRecord;
use crate::trace::store::TraceStore;
use opentelemetry::trace::Status;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

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

/// The instrumentation scope spans are reported under: `tracegate` and its version.
pub const SCOPE_NAME: &str = "tracegate";

/// What the exporter thread does with each batch: keep a copy in the trace viewer's store (when
/// there is one), then hand it to the configured exporter (when there is one).
#[derive(Debug)]
pub struct Recording {
    store: Option<Arc<TraceStore>>,
    exporter: Option<AnyExporter>,
}

impl BatchExporter for Recording {
    async fn export(&mut self, batch: &mut Vec<SpanRecord>) -> Result<u64, String> {
        // Before the export, so that a slow or dead collector does not keep spans from the
        // viewer (an export that times out never returns here).
        if let Some(store) = &self.store {
            store.record(batch);
        }
        match &mut self.exporter {
            Some(e) => e.export(batch).await,
            None => Ok(0),
        }
    }

    fn shutdown(&mut self, timeout: Duration) {
        if let Some(e) = &mut self.exporter {
            e.shutdown(timeout);
        }
    }
}

/// Starts the pipeline for `settings`, or returns `Ok(None)` for protocol `none`.
pub fn start_pipeline(settings: &TelemetrySettings) -> Result<Option<Pipeline>, String> {
    start_pipeline_with(settings, None)
}

/// Starts the pipeline for `settings`, keeping a copy of every span in `store` when given.
/// Returns `Ok(None)` only when there is neither an exporter (protocol `none`) nor a store: the
/// store is a sink of its own.
pub fn start_pipeline_with(
    settings: &TelemetrySettings,
    store: Option<Arc<TraceStore>>,
) -> Result<Option<Pipeline>, String> {
    let exporter = settings.exporter.clone();
    if exporter.protocol == ExporterProtocol::None {
        return match store {
            None => Ok(None),
            Some(store) => {
                let make = move || {
                    Ok(Recording {
                        store: Some(store),
                        exporter: None,
                    })
                };
                Pipeline::start(make, settings.batch.clone()).map(Some)
            }
        };
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
    let make = move || {
        Ok(Recording {
            store,
            exporter: Some(make()?),
        })
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
