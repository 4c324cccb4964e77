//! The tracing plugin: W3C Trace Context, span recording and the OTLP export pipeline.
//!
//! Usable from any Pingora `ProxyHttp`: keep a [`RequestTrace`] in the request context and call
//! the [`hooks`] from the matching phases. Only [`hooks`] touches Pingora types; everything else
//! is plain Rust, in three parts:
//! - the request side, in this directory: [`request`] (per-request trace state), [`span`] (the
//!   span records), [`sampling`], [`capture`], [`ids`] (trace and span ids, trace
//!   flags) and the [`hooks`];
//! - [`propagation`]: trace context in and out of requests, one file per format (W3C Trace
//!   Context, B3, Jaeger, W3C Baggage) and the dispatch over the configured ones;
//! - [`export`]: the span pipeline, the exporters (OTLP, Zipkin, stdout) and their settings;
//! - [`store`]: recent traces in memory (a sink of the pipeline, and the OTLP intake's
//!   decoding), which the admin listener's trace viewer reads.

pub mod capture;
pub mod export;
pub mod hooks;
pub mod ids;
pub mod propagation;
pub mod request;
pub mod sampling;
pub mod span;
pub mod store;

/// Whose incoming context is continued ([`TraceOptions::trust`]); shared with the proxy's
/// forwarding headers.
pub use crate::net::{Cidr, Trust};
pub use export::{
    start_pipeline, start_pipeline_with, BatchExporter, ExporterProtocol, ExporterSettings,
    Pipeline, PipelineSettings, SdkExporter, SpanSink, TelemetrySettings,
};
pub use propagation::{Propagator, Propagators};
pub use request::{RequestInfo, RequestTrace, TraceOptions, Tracer};
