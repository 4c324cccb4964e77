//! The tracing plugin: W3C Trace Context, span recording and the OTLP export pipeline.
//!
//! Usable from any Pingora `ProxyHttp`: keep a [`RequestTrace`] in the request context and call
//! the [`hooks`] from the matching phases. Only [`hooks`] touches Pingora types; [`propagation`],
//! [`request`], [`span`] and the [`export`] wing are plain Rust.

pub mod capture;
pub mod export;
pub mod hooks;
pub mod ids;
pub mod propagation;
pub mod request;
pub mod sampling;
pub mod span;
pub mod trust;

pub use export::{
    start_pipeline, BatchExporter, ExporterProtocol, ExporterSettings, Pipeline, PipelineSettings,
    SdkExporter, SpanSink, TelemetrySettings,
};
pub use propagation::{Propagator, Propagators};
pub use request::{RequestInfo, RequestTrace, TraceOptions, Tracer};
