//! Assembling and running the server: listeners, the span pipeline, the access log's writer,
//! the Pingora server, and the flush of queued spans and log lines at shutdown.

use crate::admin::{AdminState, Lifecycle, SharedConfigDump, StateSources};
use crate::config::{Config, ProcessEnv};
use crate::listeners::{ListenerCertificates, ListenerSpec, Redirects};
use crate::observe::access_log::AccessLogSink;
use crate::observe::metrics::Metrics;
use crate::proxy::connection::{Gate, Gates};
use crate::proxy::TracegateProxy;
use crate::reload::Reloader;
use crate::routing::filter::{Chain, Filter, HttpsRedirect};
use crate::trace::store::{Process, TraceStore, Value as StoreValue};
use crate::trace::{start_pipeline_with, Tracer};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
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

/// A listen address bound ahead of Pingora and held until Pingora listens on it.
///
/// Pingora binds by address string when the server starts. For port 0 the OS must pick the
/// port first, and a port that was only looked up (bound, then closed) could be taken by any
/// socket in the gap before Pingora binds it. So the socket bound here stays open, bound but
/// not listening, with `SO_REUSEADDR`: Linux lets Pingora's own `SO_REUSEADDR` socket bind
/// and listen on the same address beside it, while no ephemeral port (an outgoing connection,
/// another `:0` bind) can be given out on it. It is closed once Pingora accepts connections.
pub struct ReservedListener {
    /// The address with the port the OS picked.
    pub addr: SocketAddr,
    /// `None` with `--upgrade`: the port is held by the process handing it over.
    _socket: Option<tokio::net::TcpSocket>,
}

/// Binds every listen address (checking that it can be bound) and turns port 0 into the free
/// port the OS picked, holding each port for Pingora (see [`ReservedListener`]).
pub fn reserve_listeners(addrs: &[SocketAddr]) -> Result<Vec<ReservedListener>, StartError> {
    addrs
        .iter()
        .map(|a| {
            let socket = match a {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            };
            socket
                .and_then(|s| {
                    s.set_reuseaddr(true)?;
                    s.bind(*a)?;
                    Ok(ReservedListener {
                        addr: s.local_addr()?,
                        _socket: Some(s),
                    })
                })
                .map_err(|e| StartError(format!("cannot listen on {a}: {e}")))
        })
        .collect()
}

/// Raises the file descriptor limit to its hard limit (nginx's `worker_rlimit_nofile`) and
/// returns the limit in effect.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft >= hard {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            log::info!("file descriptor limit raised from {soft} to {hard}");
            hard
        }
        Err(e) => {
            log::warn!("file descriptor limit stays at {soft}: raising it to {hard} failed: {e}");
            soft
        }
    }
}

/// The process-wide connection limit: `server.max_connections`, or derived from the file
/// descriptor limit (raised first), so that accepting never runs out of descriptors.
fn connection_gates(limits: &crate::listeners::HttpLimits) -> Gates {
    let fds = raise_fd_limit();
    let derived = crate::listeners::limits::derived_max_connections(fds);
    let max = limits.max_connections.unwrap_or(derived);
    if max > derived {
        log::warn!(
            "server.max_connections {max} is above what {fds} file descriptors allow ({derived})"
        );
    }
    log::info!("serving at most {max} client connections (file descriptor limit {fds})");
    Gates {
        process: Gate::new(max),
        listeners: Vec::new(),
        stats: Arc::default(),
        started: std::time::Instant::now(),
    }
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
    let addrs: Vec<SocketAddr> = config.listeners.iter().map(|l| l.addr).collect();
    let reserved = if opts.upgrade {
        addrs
            .iter()
            .map(|&addr| ReservedListener {
                addr,
                _socket: None,
            })
            .collect()
    } else {
        reserve_listeners(&addrs)?
    };
    let listen: Vec<SocketAddr> = reserved.iter().map(|r| r.addr).collect();
    let gates = connection_gates(&config.server.http);
    // The trace viewer's store: a sink of the pipeline, read by the admin listener.
    let store = config
        .admin
        .as_ref()
        .and_then(|a| a.viewer.as_ref())
        .map(|v| {
            let t = &config.telemetry;
            Arc::new(TraceStore::new(
                v.store,
                Process {
                    service: t.service_name.clone(),
                    tags: t
                        .resource
                        .iter()
                        .map(|(k, v)| (k.clone(), StoreValue::Str(v.clone())))
                        .collect(),
                },
            ))
        });
    let pipeline = start_pipeline_with(&config.telemetry, store.clone()).map_err(StartError)?;
    let tracer = Tracer::new(pipeline.as_ref().map(|p| p.sink()));
    // Metrics are kept only when the admin listener can show them.
    let metrics = config
        .admin
        .as_ref()
        .map(|_| Metrics::leak(pipeline.is_some()));
    // Started whether or not the config has an access log, so a reload can turn it on.
    let access_log = AccessLogSink::start(crate::reload::access_log_queue_size(&config))
        .map_err(|e| StartError(format!("cannot start the access log's writer: {e}")))?;
    let gateway = crate::proxy::gateway::shared(crate::reload::gateway_for(
        &config,
        &tracer,
        metrics,
        &access_log,
        None,
    ));
    // A config reload swaps certificates through this handle; listeners themselves cannot
    // change while running.
    let certificates = ListenerCertificates::new(&config.listeners);
    let config_file = opts
        .config_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("-"));
    let dump: Option<SharedConfigDump> = config.admin.as_ref().map(|_| {
        Arc::new(arc_swap::ArcSwap::from_pointee(crate::reload::config_dump(
            &config,
            &config_file,
        )))
    });
    let mut reloads = None;
    if let Some(path) = &opts.config_path {
        let watch = config
            .server
            .watch_config
            .then_some(config.server.watch_interval);
        let reloader = Reloader::new(
            path,
            Box::new(ProcessEnv),
            gateway.clone(),
            tracer,
            certificates.clone(),
            access_log.clone(),
            config.clone(),
        )
        .with_metrics(metrics)
        .with_config_dump(dump.clone());
        reloads = Some(reloader.stats());
        reloader
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
        crate::trace::export::settings::redact_userinfo(&t.exporter.endpoint),
        t.service_name
    );
    if let Some(a) = &config.access_log {
        log::info!(
            "access log: {} to {} ({} filters, queue of {} lines)",
            match a.format {
                crate::observe::access_log::Format::Json => "json",
                crate::observe::access_log::Format::Combined => "combined",
            },
            a.target,
            if a.filters.is_empty() { "no" } else { "with" },
            a.queue_size
        );
    }

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
    // The HTTPS redirect of plain listeners runs before the router, for every request on them.
    let entry = Chain::new(
        Redirects::new(&config.listeners, &listen)
            .map(|r| Filter::RedirectHttps(HttpsRedirect::new(r)))
            .into_iter()
            .collect(),
    );
    crate::proxy::listeners::add_services(
        &mut server,
        &config.listeners,
        &listen,
        &certificates,
        &config.server.http,
        &gates,
        || TracegateProxy::new(Arc::clone(&gateway)).with_entry_filters(entry.clone()),
    )
    .map_err(StartError)?;
    log_certificates(&config.listeners, &listen);
    let lifecycle = Arc::new(Lifecycle::default());
    if let (Some(settings), Some(metrics), Some(dump)) = (&config.admin, metrics, dump) {
        let sources = StateSources {
            gateway: Some(gateway.clone()),
            connections: Some(gates.clone()),
            certificates: Some(certificates.clone()),
            reloads,
            spans: pipeline.as_ref().map(|p| p.sink()),
            // The writer exists with or without an access log (a reload can turn it on).
            access_log_dropped: Some(Arc::clone(&access_log.stats().dropped)),
            trace_store: store.clone(),
        };
        let state =
            AdminState {
                registry: crate::admin::registry(metrics, sources),
                gateway: gateway.clone(),
                lifecycle: Arc::clone(&lifecycle),
                config: dump,
                viewer: settings.viewer.as_ref().zip(store).map(|(v, store)| {
                    crate::admin::Viewer {
                        store,
                        otlp_intake: v.otlp_intake,
                        trace_url: v.trace_url.clone(),
                    }
                }),
            };
        // With --upgrade the old process still holds the admin port until it exits.
        let wait = opts
            .upgrade
            .then(|| config.server.grace_period + config.server.shutdown_timeout + FLUSH_TIMEOUT);
        crate::admin::start(settings, state, server.watch_execution_phase(), wait)
            .map_err(StartError)?;
    }
    let endpoints = config
        .listeners
        .iter()
        .zip(reserved)
        .map(|(l, r)| (r, l.tls.is_some()))
        .collect();
    announce_when_listening(&server, endpoints, lifecycle);
    server.run(RunArgs::default());

    flush_access_log(&access_log, config.access_log.is_some());

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

/// Writes the access-log lines still queued, then logs what the access log did (when it was
/// on at start, or has written since).
fn flush_access_log(access_log: &AccessLogSink, configured: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    if !access_log.shutdown(FLUSH_TIMEOUT) {
        log::warn!(
            "the access log's writer did not finish within {FLUSH_TIMEOUT:?}; queued lines were \
             lost"
        );
    }
    let stats = access_log.stats();
    let written = stats.written.load(Relaxed);
    if configured || written > 0 {
        log::info!(
            "access log stopped: {written} lines written, {} dropped (queue full), {} lost to \
             write errors",
            stats.dropped.load(Relaxed),
            stats.write_failed.load(Relaxed)
        );
    }
}

/// Logs `listening on http://ADDR` (`https://` for a TLS listener) for each listener once it
/// accepts connections, then releases its reservation. Once every listener accepts, the
/// process is ready (the admin listener's `/ready`).
///
/// Pingora binds inside `Server::run`, after this function returns, so the line comes from a
/// thread that waits for the server's `Running` phase and then connects to each address (a
/// TLS listener gets a complete handshake, so it logs no handshake error): whoever reads the
/// line (an operator, a supervisor, a test) can connect right away.
fn announce_when_listening(
    server: &Server,
    listen: Vec<(ReservedListener, bool)>,
    lifecycle: Arc<Lifecycle>,
) {
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
            let mut all_up = true;
            for (reserved, tls) in listen {
                let addr = reserved.addr;
                let target = SocketAddr::new(reachable_ip(addr.ip()), addr.port());
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                let step = Duration::from_millis(200);
                loop {
                    let up = if tls {
                        crate::tls::probe::handshake_completes(target, step)
                    } else {
                        TcpStream::connect_timeout(&target, step).is_ok()
                    };
                    if up {
                        drop(reserved);
                        let scheme = if tls { "https" } else { "http" };
                        log::info!("listening on {scheme}://{addr}");
                        break;
                    }
                    if std::time::Instant::now() >= deadline {
                        log::warn!("{addr} is not accepting connections yet");
                        all_up = false;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if all_up {
                lifecycle.set_ready();
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the listener check: {e}");
    }
}

/// Logs, for each TLS listener, the names its certificates cover (the first is the default).
fn log_certificates(listeners: &[ListenerSpec], bound: &[SocketAddr]) {
    for (l, addr) in listeners.iter().zip(bound) {
        if let Some(t) = &l.tls {
            let names: Vec<String> = t
                .store
                .certificates()
                .iter()
                .map(|c| {
                    let mut n = c.names.clone();
                    n.extend(c.ips.iter().map(|ip| ip.to_string()));
                    n.join(" ")
                })
                .collect();
            log::info!(
                "TLS on {addr}: {} certificate(s): [{}] (the first is the default){}",
                names.len(),
                names.join("], ["),
                if l.http2 { ", HTTP/2 by ALPN" } else { "" }
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reserved port cannot be taken by a socket that does not share it on purpose, while
    /// a listener set up as Pingora sets up its own (`SO_REUSEADDR`, then `listen`) binds and
    /// accepts beside the reservation.
    #[test]
    fn a_reserved_port_is_held_for_the_listener() {
        let r = reserve_listeners(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let addr = r[0].addr;
        assert_ne!(
            addr.port(),
            0,
            "port 0 was turned into the port the OS picked"
        );
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        assert_eq!(
            other.bind(addr).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse,
            "a plain bind of the reserved port fails"
        );
        // std's listener sets SO_REUSEADDR and listens, as Pingora's does.
        let listener = std::net::TcpListener::bind(addr).expect("the listener binds beside it");
        drop(r);
        let _client = TcpStream::connect(addr).expect("connect");
        listener.accept().expect("the listener accepts");
    }
}
