//! The export wing of the tracing plugin: everything that takes finished span records off the
//! request threads and sends them out.
//!
//! - [`pipeline`]: the bounded queue from the request threads to one exporter thread
//!   ([`SpanSink`], [`Pipeline`], [`PipelineSettings`]), and the [`BatchExporter`] interface,
//!   with [`SdkExporter`] to plug in any OpenTelemetry SDK `SpanExporter`;
//! - [`otlp`]: the OTLP protobuf encoder and its gRPC and HTTP/protobuf transport;
//! - [`zipkin`]: the Zipkin v2 JSON encoder and exporter;
//! - [`transport`] and [`tls`]: what the HTTP-based exporters share (client, headers,
//!   compression) and the TLS settings for `https://` collectors;
//! - [`settings`]: the checked exporter settings and what the pipeline is started with
//!   ([`ExporterSettings`], [`TelemetrySettings`]);
//! - [`exporter`]: picks and builds the exporter the settings name, and starts the pipeline
//!   around it ([`start_pipeline`]); also the stdout exporter.
//!
//! Imports go one way: [`settings`] is read by [`otlp`], [`zipkin`] and [`exporter`] and reads
//! none of them, and only [`exporter`] knows every exporter.
//!
//! The request side hands records to [`SpanSink`] and depends on nothing else here.

pub mod exporter;
pub mod otlp;
pub mod pipeline;
pub mod settings;
pub mod tls;
pub mod transport;
pub mod zipkin;

pub use exporter::{start_pipeline, start_pipeline_with, SCOPE_NAME};
pub use pipeline::{BatchExporter, Pipeline, PipelineSettings, SdkExporter, SpanSink};
pub use settings::{ExporterProtocol, ExporterSettings, TelemetrySettings};
