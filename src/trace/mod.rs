//! The tracing plugin: W3C Trace Context, span recording and the OTLP export pipeline.
//!
//! Usable from any Pingora `ProxyHttp`: keep a [`RequestTrace`] in the request context and call
//! the [`hooks`] from the matching phases. Only [`hooks`] touches Pingora types; [`w3c`],
//! [`propagation`], [`request`], [`span`], [`pipeline`], [`otlp`], [`zipkin`], [`transport`]
//! and [`tls`] are plain Rust.

pub mod capture;
pub mod exporter;
pub mod hooks;
pub mod ids;
pub mod otlp;
pub mod pipeline;
pub mod propagation;
pub mod request;
pub mod sampling;
pub mod span;
pub mod tls;
pub mod transport;
pub mod w3c;
pub mod zipkin;

/// Whose incoming context is continued ([`TraceOptions::trust`]); shared with the proxy's
/// forwarding headers.
pub use crate::net::{Cidr, Trust};
pub use exporter::{start_pipeline, ExporterProtocol, ExporterSettings, TelemetrySettings};
pub use pipeline::{BatchExporter, Pipeline, PipelineSettings, SdkExporter, SpanSink};
pub use propagation::{Propagator, Propagators};
pub use request::{RequestInfo, RequestTrace, TraceOptions, Tracer};
