//! Assembling and running the server: listeners, the span pipeline, the Pingora server, and
//! the flush of queued spans at shutdown.

use crate::config::{Config, ProcessEnv};
use crate::gateway::Gateway;
use crate::proxy::TracegateProxy;
use crate::reload::Reloader;
use crate::trace::{start_pipeline, Tracer};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
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

/// How the process was started, besides its config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The config file, reloaded on SIGHUP and (when `server.watch_config`) when it changes.
    /// `None`: no reload (a config built in code).
    pub config_path: Option<PathBuf>,
    /// Take the listening sockets over from a running tracegate through `server.upgrade_sock`
    /// (it hands them over when it receives SIGQUIT) instead of binding them.
    pub upgrade: bool,
}

/// Runs tracegate with a checked config until SIGTERM (graceful), SIGINT (fast) or SIGQUIT
/// (graceful, after handing the listeners to a process started with `--upgrade`), then
/// exports the spans still queued. Blocks; must not be called inside a tokio runtime.
pub fn run(config: Config, opts: RunOptions) -> Result<(), StartError> {
    // With --upgrade the addresses are held by the old process; they arrive over the socket.
    let listen = if opts.upgrade {
        config.listen.clone()
    } else {
        resolve_listeners(&config.listen)?
    };
    let pipeline = start_pipeline(&config.telemetry).map_err(StartError)?;
    let tracer = Tracer::new(pipeline.as_ref().map(|p| p.sink()));
    let gateway = crate::gateway::shared(Gateway::new(&config, &tracer));
    if let Some(path) = &opts.config_path {
        let watch = config
            .server
            .watch_config
            .then_some(config.server.watch_interval);
        Reloader::new(
            path,
            Box::new(ProcessEnv),
            gateway.clone(),
            tracer,
            config.clone(),
        )
        .spawn(watch)
        .map_err(|e| StartError(format!("cannot start the config reloader: {e}")))?;
    }
    let t = &config.telemetry;
    log::info!(
        "exporting spans: {}{}{} (service.name={})",
        t.exporter.protocol.as_str(),
        if t.exporter.endpoint.is_empty() {
            ""
        } else {
            " to "
        },
        crate::trace::exporter::redact_userinfo(&t.exporter.endpoint),
        t.service_name
    );

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(
            config.server.shutdown_timeout.as_secs_f64().ceil() as u64,
        ),
        upgrade_sock: config.server.upgrade_sock.clone(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: opts.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        TracegateProxy::new(gateway),
        "tracegate",
    );
    for addr in &listen {
        service.add_tcp(&addr.to_string());
    }
    server.add_service(service);
    announce_when_listening(&server, listen);
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
            "stopped: {} spans exported, {} dropped (queue full), {} in failed exports, {} \
             rejected by the receiver",
            stats.exported.load(Relaxed),
            stats.dropped_queue_full.load(Relaxed),
            stats.export_failed.load(Relaxed),
            stats.rejected.load(Relaxed)
        );
    }
    Ok(())
}

/// Logs `listening on http://ADDR` for each listener once it accepts connections.
///
/// Pingora binds inside `Server::run`, after this function returns, so the line comes from a
/// thread that waits for the server's `Running` phase and then connects to each address:
/// whoever reads the line (an operator, a supervisor, a test) can connect right away.
fn announce_when_listening(server: &Server, listen: Vec<SocketAddr>) {
    let mut phases = server.watch_execution_phase();
    let spawned = std::thread::Builder::new()
        .name("listen-check".into())
        .spawn(move || {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::Running) => break,
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
            for addr in listen {
                let target = SocketAddr::new(reachable_ip(addr.ip()), addr.port());
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                        log::info!("listening on http://{addr}");
                        break;
                    }
                    if std::time::Instant::now() >= deadline {
                        log::warn!("{addr} is not accepting connections yet");
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the listener check: {e}");
    }
}

/// The address to connect to for a listener: loopback for a wildcard bind.
fn reachable_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}
