//! tracegate: an edge reverse proxy on Pingora that starts the distributed trace.
//!
//! - [`config`]: the YAML file, `OTEL_*` overrides and the checked model.
//! - [`routing`]: the pure router (request head in, route out).
//! - [`net`]: host/port splitting, host names, IP networks and the trust check (a leaf).
//! - [`upstream`]: upstream pools and backend choice.
//! - [`listeners`]: where and how connections are accepted, and the TLS listeners'
//!   certificates (SNI), replaceable at run time.
//! - [`files`]: bounded reads of the config file and the PEM files it names (a leaf).
//! - [`tls`]: PEM files, upstream TLS material and a handshake probe (a leaf).
//! - [`trace`]: the tracing plugin (W3C Trace Context, spans, OTLP pipeline), usable from any
//!   Pingora `ProxyHttp`.
//! - [`proxy`]: tracegate's `ProxyHttp` implementation and the rest of the Pingora glue,
//!   with the live routing state of one config generation (`proxy::Gateway`).
//! - [`exchange`]: the per-request record: the downstream facts, read once, and how the
//!   request ended.
//! - [`middleware`]: the route middlewares (IP lists, rate limits local or in Redis, basic and
//!   forward auth, CORS, compression, body limits), without Pingora types.
//! - [`observe`]: the consumers of finished requests besides spans (log lines, metrics).
//! - [`reload`]: reloading the config file on SIGHUP or when it changes.
//! - [`admin`]: the admin listener (`/ping`, `/ready`, `/metrics`, `/upstreams`, `/config`).
//! - [`app`]: assembling and running the server.

pub mod admin;
pub mod app;
pub mod config;
pub mod exchange;
pub mod files;
pub mod listeners;
pub mod middleware;
pub mod net;
pub mod observe;
pub mod proxy;
pub mod reload;
pub mod routing;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod trace;
pub mod upstream;
