//! The admin listener (`admin: { listen: "127.0.0.1:9901" }`): what an operator, a load
//! balancer and Prometheus ask the running process.
//!
//! - `GET /ping`: `200`, and `503` once shutdown has begun, so a load balancer stops sending
//!   traffic during the grace period.
//! - `GET /ready`: `200` once every listener accepts connections, `503` before and while
//!   draining.
//! - `GET /metrics`: the metrics ([`crate::observe::metrics`]) in the Prometheus text format,
//!   or OpenMetrics 1.0 with exemplars when the `Accept` header prefers
//!   `application/openmetrics-text` (as Prometheus's does); `?format=prometheus` or
//!   `?format=openmetrics` chooses explicitly.
//! - `GET /upstreams`: each upstream's backends with their health, failures and attempts in
//!   flight, as JSON.
//! - `GET /config`: the running config as JSON, secrets redacted ([`ConfigDump`]).
//! - With `admin.traces`: the trace viewer (`GET /traces`, `GET /traces/{trace_id}`), the
//!   Jaeger-compatible query API (`GET /api/…`) and, with `admin.otlp_intake`, the OTLP/HTTP
//!   intake (`POST /v1/traces`) ([`viewer`]).
//! - Anything else: `404`; another method than GET or HEAD on these paths: `405`.
//!
//! **Why a server of its own, on its own thread** (a small runtime and hyper's HTTP/1.1 server),
//! rather than a Pingora service: Pingora's listening services stop accepting as soon as
//! SIGTERM arrives, so `/ping` could never answer `503` during the grace period, and
//! Prometheus could not scrape the drain. This server keeps serving until the process exits.
//! Admin requests never reach the proxy: they are not routed, traced, logged as access or
//! counted in the HTTP metrics.
//!
//! **Exposure.** Bound to a loopback address, a request whose `Host` is neither an IP address
//! nor `localhost` is refused with `421`: a web page cannot reach the admin through DNS
//! rebinding (a name of the attacker's that resolves to 127.0.0.1). Bound elsewhere, a
//! warning at start says that anyone who reaches the port can read the config and metrics
//! (Envoy's advice for its admin interface). The address takes a restart.

mod http;
mod state;
mod viewer;
mod views;

pub use state::{registry, StateSources};
pub use viewer::{Viewer, MAX_INTAKE_BODY};

use crate::proxy::SharedGateway;
use arc_swap::ArcSwap;
use pingora::server::ExecutionPhase;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The checked `admin` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where the admin listener binds; port 0 asks the OS for a free port.
    pub listen: SocketAddr,
    /// The trace viewer, when `admin.traces` is there.
    pub viewer: Option<ViewerSettings>,
}

/// The checked trace viewer keys of `admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerSettings {
    /// `admin.traces`.
    pub store: crate::trace::store::StoreSettings,
    /// `admin.otlp_intake`: `POST /v1/traces` takes spans.
    pub otlp_intake: bool,
    /// `admin.trace_url`: `http(s)://…{trace_id}…`.
    pub trace_url: Option<String>,
}

/// Where the process is in its life, for `/ping` and `/ready`.
#[derive(Debug, Default)]
pub struct Lifecycle {
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Lifecycle {
    /// Every listener accepts connections.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Shutdown (or a graceful upgrade) has begun: listeners no longer accept.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Records what a phase of the Pingora server means here.
    pub fn phase(&self, phase: &ExecutionPhase) {
        use ExecutionPhase::*;
        match phase {
            GracefulUpgradeTransferringFds
            | GracefulUpgradeCloseTimeout
            | GracefulTerminate
            | ShutdownStarted
            | ShutdownGracePeriod
            | ShutdownRuntimes
            | Terminated => self.set_draining(),
            // Start-up, and phases a later Pingora may add.
            _ => {}
        }
    }
}

/// The running config as `/config` shows it: made on demand (the config module renders it,
/// redacted) and replaced on every applied reload.
pub struct ConfigDump(Box<dyn Fn() -> serde_json::Value + Send + Sync>);

impl ConfigDump {
    pub fn new(render: impl Fn() -> serde_json::Value + Send + Sync + 'static) -> ConfigDump {
        ConfigDump(Box::new(render))
    }

    fn render(&self) -> serde_json::Value {
        (self.0)()
    }
}

impl std::fmt::Debug for ConfigDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigDump")
    }
}

/// The running config's dump, shared with the reloader.
pub type SharedConfigDump = Arc<ArcSwap<ConfigDump>>;

/// What the admin listener answers from.
#[derive(Debug)]
pub struct AdminState {
    /// `/metrics`.
    pub registry: Registry,
    /// `/upstreams`: the live config generation.
    pub gateway: SharedGateway,
    /// `/ping`, `/ready`.
    pub lifecycle: Arc<Lifecycle>,
    /// `/config`.
    pub config: SharedConfigDump,
    /// `/traces`, `/api/…` and `/v1/traces`, when the trace viewer is on.
    pub viewer: Option<Viewer>,
}

/// Binds the admin listener and serves it on a thread of its own until the process exits.
/// `phases` tells when shutdown begins. Returns the bound address (port 0 resolved); an
/// address that cannot be bound is an error, so start-up stops, unless `wait_for_port` is
/// given (a graceful upgrade: the old process holds the port until it exits), in which case
/// binding is retried for that long.
pub fn start(
    settings: &AdminSettings,
    state: AdminState,
    phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    wait_for_port: Option<std::time::Duration>,
) -> Result<SocketAddr, String> {
    let intake = state.viewer.as_ref().is_some_and(|v| v.otlp_intake);
    let viewing = state.viewer.is_some();
    let addr = http::serve(settings.listen, Arc::new(state), phases, wait_for_port)?;
    if viewing {
        log::info!(
            "trace viewer on http://{addr}/traces{}",
            if intake {
                format!(" (OTLP intake: OTEL_EXPORTER_OTLP_ENDPOINT=http://{addr})")
            } else {
                String::new()
            }
        );
    }
    if addr.ip().is_loopback() {
        log::info!("admin listener on http://{addr} (/ping /ready /metrics /upstreams /config)");
    } else {
        log::warn!(
            "admin listener on http://{addr} is not on a loopback address: anyone who can \
             reach it can read /config and /metrics; bind it to 127.0.0.1 or put it behind a \
             firewall"
        );
    }
    Ok(addr)
}
