//! tracegate: an edge reverse proxy on Pingora that starts the distributed trace.
//!
//! - [`config`]: the YAML file, `OTEL_*` overrides and the checked model.
//! - [`routing`]: the pure router (request head in, route out).
//! - [`upstream`]: upstream pools and backend choice.
//! - [`gateway`]: the live router and pools of one config generation, swapped on reload.
//! - [`tls`]: listener certificates (SNI) and upstream TLS material, read and checked at load.
//! - [`trace`]: the tracing plugin (W3C Trace Context, spans, OTLP pipeline), usable from any
//!   Pingora `ProxyHttp`.
//! - [`proxy`]: tracegate's `ProxyHttp` implementation.
//! - [`reload`]: reloading the config file on SIGHUP or when it changes.
//! - [`app`]: assembling and running the server.

pub mod app;
pub mod config;
pub mod gateway;
pub mod proxy;
pub mod reload;
pub mod routing;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod trace;
pub mod upstream;
