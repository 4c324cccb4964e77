//! Assembling and running the server: listeners, the span pipeline, the Pingora server, and
//! the flush of queued spans at shutdown.

use crate::config::Config;
use crate::proxy::TracegateProxy;
use crate::trace::{start_pipeline, Tracer};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// How long queued spans may take to leave after the server has stopped.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// An error that prevents start-up, with what to tell the operator.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that every listen address can be bound, and turns port 0 into the free port the OS
/// picked. Pingora binds by address string, so a `:0` address is bound here first to learn its
/// port; the socket is then closed and Pingora binds the same port moments later.
pub fn resolve_listeners(addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>, StartError> {
    addrs
        .iter()
        .map(|a| {
            TcpListener::bind(a)
                .and_then(|l| l.local_addr())
                .map_err(|e| StartError(format!("cannot listen on {a}: {e}")))
        })
        .collect()
}

/// Runs tracegate with a checked config until SIGTERM (graceful) or SIGINT (fast), then exports
/// the spans still queued. Blocks; must not be called inside a tokio runtime.
pub fn run(config: Config) -> Result<(), StartError> {
    let listen = resolve_listeners(&config.listen)?;
    let pipeline = start_pipeline(&config.telemetry).map_err(StartError)?;
    let tracer = Tracer::new(pipeline.as_ref().map(|p| p.sink()));
    let t = &config.telemetry;
    log::info!(
        "exporting spans: {}{}{} (service.name={})",
        t.exporter.protocol.as_str(),
        if t.exporter.endpoint.is_empty() {
            ""
        } else {
            " to "
        },
        t.exporter.endpoint,
        t.service_name
    );

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(
            config.server.shutdown_timeout.as_secs_f64().ceil() as u64,
        ),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        TracegateProxy::new(&config, tracer),
        "tracegate",
    );
    for addr in &listen {
        service.add_tcp(&addr.to_string());
    }
    server.add_service(service);
    for addr in &listen {
        log::info!("listening on http://{addr}");
    }
    server.run(RunArgs::default());

    if let Some(p) = pipeline {
        let stats = p.sink().stats().clone();
        if !p.shutdown(FLUSH_TIMEOUT) {
            log::warn!(
                "span export did not finish within {FLUSH_TIMEOUT:?}; queued spans were lost"
            );
        }
        use std::sync::atomic::Ordering::Relaxed;
        log::info!(
            "stopped: {} spans exported, {} dropped (queue full), {} in failed exports",
            stats.exported.load(Relaxed),
            stats.dropped_queue_full.load(Relaxed),
            stats.export_failed.load(Relaxed)
        );
    }
    Ok(())
}
