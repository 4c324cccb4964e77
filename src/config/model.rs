//! The checked, typed configuration, and the conversion from the file structs.
//!
//! Every default lives in [`defaults`], documented where it is defined. Environment variables
//! (`OTEL_*`, OpenTelemetry's standard names) override file values.

use super::file::{FileCapture, FileConfig, FileTelemetry, FileTrust};
pub use super::listeners::{ListenerSpec, ListenerTls, RedirectHttps};
use super::{ConfigError, Env};
use crate::routing::Router;
use crate::tls::UpstreamTls;
use crate::trace::capture::{Capture, QueryMode};
use crate::trace::export::pipeline::PipelineSettings;
use crate::trace::export::settings::{ExporterProtocol, ExporterSettings, TelemetrySettings};
use crate::trace::export::tls::{TlsFile, TlsSettings};
use crate::trace::export::transport::Compression;
use crate::trace::propagation::Propagators;
use crate::trace::sampling::Sampler;
use crate::trace::trust::{Cidr, Trust};
use crate::trace::TraceOptions;
use crate::upstream::{Balance, HealthCheck, PassiveHealth, UpstreamTimeouts};
use std::net::SocketAddr;
use std::time::Duration;

/// All defaults, in one place.
pub mod defaults {
    use crate::trace::capture::QueryMode;
    use std::time::Duration;

    /// `telemetry.service_name`: the OpenTelemetry `service.name` of the proxy's spans.
    pub const SERVICE_NAME: &str = "tracegate";
    /// `telemetry.traceresponse`: off, because it tells every client the trace id and the
    /// proxy's span id; an operator turns it on knowing that.
    pub const TRACERESPONSE: bool = false;
    /// `telemetry.sampler.name`: the OpenTelemetry SDK default. New traces are all sampled;
    /// a trusted caller's decision is followed.
    pub const SAMPLER: &str = "parentbased_always_on";
    /// `telemetry.capture.query`: `url.query` is recorded with the values of sensitive keys
    /// replaced by `REDACTED` (the semantic conventions' advice); `off` and `full` are the
    /// alternatives.
    pub const CAPTURE_QUERY: QueryMode = QueryMode::Redacted;
    /// `telemetry.keep.errors`: off, so the sampler alone decides unless asked otherwise.
    pub const KEEP_ERRORS: bool = false;
    /// `telemetry.exporter.endpoint` for `grpc` (the OTLP default port).
    pub const GRPC_ENDPOINT: &str = "http://localhost:4317";
    /// `telemetry.exporter.endpoint` for `http/protobuf` (OTLP default port and path).
    pub const HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
    /// `telemetry.exporter.endpoint` for `zipkin` (Zipkin's default port and v2 API path; the
    /// OpenTelemetry default of `OTEL_EXPORTER_ZIPKIN_ENDPOINT`).
    pub const ZIPKIN_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";
    /// `telemetry.exporter.timeout`: one export call (OTLP default, `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
    /// `telemetry.batch.max_queue_size`: larger than the SDK's 2048 because a proxy makes two
    /// spans per request; ~1 s of headroom at 4000 req/s.
    pub const MAX_QUEUE_SIZE: usize = 8192;
    /// `telemetry.batch.max_export_batch_size` (OpenTelemetry default).
    pub const MAX_EXPORT_BATCH_SIZE: usize = 512;
    /// `telemetry.batch.scheduled_delay`: shorter than the SDK's 5 s so a request's spans
    /// show up in the backend about a second after it.
    pub const SCHEDULED_DELAY: Duration = Duration::from_secs(1);
    /// `telemetry.batch.export_timeout` (OpenTelemetry default, `OTEL_BSP_EXPORT_TIMEOUT`).
    pub const BATCH_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);
    /// `server.grace_period`: after SIGTERM, time given to in-flight requests (the process
    /// waits this long before it exits; Pingora's behaviour).
    pub const GRACE_PERIOD: Duration = Duration::from_secs(5);
    /// `server.shutdown_timeout`: after the grace period, time for the runtimes to stop.
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
    /// `server.watch_config`: the config file is watched and reloaded when its content
    /// changes (as Traefik's file provider does); SIGHUP reloads it either way (as nginx).
    pub const WATCH_CONFIG: bool = true;
    /// `server.watch_interval`: how often the watched file is read. A change is applied once
    /// the file has kept the same content for one interval, so a half-written file is not
    /// loaded.
    pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
    /// `server.upgrade_sock`: the Unix socket over which a running tracegate hands its
    /// listening sockets to its successor started with `--upgrade` (Pingora's graceful upgrade).
    pub const UPGRADE_SOCK: &str = "/tmp/tracegate_upgrade.sock";
    /// `upstreams.*.connect_timeout` (Envoy's default is 5 s, nginx's 60 s).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// `upstreams.*.read_timeout`: as nginx `proxy_read_timeout`.
    pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
    /// `upstreams.*.write_timeout`: as nginx `proxy_send_timeout`.
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `listen[].http2` on a TLS listener: HTTP/2 is offered by ALPN (`h2`, then
    /// `http/1.1`), as with nginx `http2 on` and Traefik's default.
    pub const HTTP2_TLS: bool = true;
    /// `listen[].http2` on a plain listener: off, so HTTP/2 with prior knowledge (h2c) is only
    /// accepted where asked for; HTTP/1.1 clients are unaffected either way.
    pub const H2C: bool = false;
    /// `listen[].redirect_https: true` when no listener has TLS: the standard HTTPS port, which
    /// the `Location` URL leaves out.
    pub const REDIRECT_HTTPS_PORT: u16 = 443;
    /// `upstreams.*.tls.verify`: the upstream's certificate chain and name are verified (as
    /// Traefik does; nginx's `proxy_ssl_verify` is off by default, which trusts any server).
    pub const UPSTREAM_TLS_VERIFY: bool = true;
    /// `upstreams.*.http2`: HTTP/1.1 to backends unless asked (nginx's default too).
    pub const UPSTREAM_HTTP2: bool = false;
    /// Concurrent requests per HTTP/2 connection to a backend (Pingora's default is 1, one
    /// connection per request in flight); 100 is the minimum a server should allow
    /// (RFC 9113 §6.5.2, SETTINGS_MAX_CONCURRENT_STREAMS).
    pub const UPSTREAM_H2_STREAMS: usize = 100;
    /// `upstreams.*.pass_host`: the client's Host goes upstream unchanged, as Traefik's
    /// `passHostHeader: true` and what a drop-in for an edge proxy in front of virtual hosts
    /// needs (nginx's default is the backend's name, `pass_host: false`).
    pub const PASS_HOST: bool = true;
    /// `routes[].priority`: every route 0, so routes are tried in file order.
    pub const ROUTE_PRIORITY: i32 = 0;
    /// `routes[].redirect.status`: 302 Found, as nginx `return URL` and Traefik's redirect
    /// middlewares without `permanent`. Browsers do not cache it, so a mistaken redirect is
    /// undone by fixing the config; use 301/308 once the move is final.
    pub const REDIRECT_STATUS: u16 = 302;
    /// `forwarded.trusted`: no client is trusted, so incoming `X-Forwarded-*`/`Forwarded`
    /// values are always replaced and a client cannot pass itself off as another address (as
    /// Traefik without `trustedIPs`). Behind a load balancer, list its networks.
    pub const FORWARDED_TRUSTED: crate::trace::trust::Trust = crate::trace::trust::Trust::None;
    /// `forwarded.headers`: both families, `X-Forwarded-For/-Proto/-Host` (what upstreams
    /// behind nginx and Traefik read) and RFC 7239 `Forwarded`.
    pub const FORWARDED_HEADERS: [&str; 2] = ["x-forwarded", "forwarded"];
    /// `upstreams.*.backends[].weight` of a backend written as a plain `host:port` (nginx).
    pub const WEIGHT: u32 = 1;
    /// The largest `upstreams.*.backends[].weight` (HAProxy's limit). Weights are relative; a
    /// bound keeps the round-robin cycle and the hash ring (160 points per unit) small.
    pub const MAX_WEIGHT: u32 = 256;
    /// `upstreams.*.lb`: smooth weighted round robin, nginx's default.
    pub const LB: &str = "round_robin";
    /// `upstreams.*.max_fails`: nginx's default; one failed attempt takes a backend out for
    /// `fail_timeout` (0 turns passive ejection off).
    pub const MAX_FAILS: u32 = 1;
    /// `upstreams.*.fail_timeout`: nginx's default.
    pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);
    /// The largest `upstreams.*.retries`: Pingora makes at most 16 attempts per request
    /// (`max_retries`).
    pub const MAX_RETRIES: u32 = 15;
    /// `upstreams.*.health_check.type`: an HTTP request, as nginx Plus and Traefik.
    pub const HEALTH_CHECK_TYPE: &str = "http";
    /// `upstreams.*.health_check.path`: nginx Plus's default URI.
    pub const HEALTH_CHECK_PATH: &str = "/";
    /// `upstreams.*.health_check.interval`: nginx Plus's default.
    pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
    /// `upstreams.*.health_check.timeout`: one probe (connect, request, status line); HAProxy's
    /// default check interval, short enough that a hung backend is noticed.
    pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
    /// `upstreams.*.health_check.status`: nginx Plus's default, any 2xx or 3xx.
    pub const HEALTH_CHECK_STATUS: (u16, u16) = (200, 399);
    /// `upstreams.*.health_check.healthy_threshold`: nginx Plus's `passes` default.
    pub const HEALTHY_THRESHOLD: u32 = 1;
    /// `upstreams.*.health_check.unhealthy_threshold`: nginx Plus's `fails` default.
    pub const UNHEALTHY_THRESHOLD: u32 = 1;
    /// `server.threads`: worker threads; 0 in the file also means this.
    pub fn threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The whole checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to accept HTTP on. Port 0 asks the OS for a free port.
    pub listen: Vec<SocketAddr>,
    /// The listeners, in `listen` order (the addresses above, with TLS and protocol settings).
    pub listeners: Vec<ListenerSpec>,
    pub server: ServerSettings,
    pub telemetry: TelemetrySettings,
    pub router: Router,
    /// Upstream pools, indexed by `RouteAction::Proxy::upstream`.
    pub upstreams: Vec<UpstreamSpec>,
}

/// Process-level settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    /// Reload the config when the file's content changes.
    pub watch_config: bool,
    pub watch_interval: Duration,
    /// Unix socket path for handing the listeners to a new process (`--upgrade`).
    pub upgrade_sock: String,
}

/// One checked upstream pool.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    pub name: String,
    pub backends: Vec<SocketAddr>,
    pub timeouts: UpstreamTimeouts,
    /// TLS to the backends, when configured.
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 to the backends (ALPN over TLS, prior knowledge over plain TCP).
    pub http2: bool,
    /// The Host header sent to the backends (`pass_host`, `host`).
    pub pass_host: crate::routing::PassHost,
    /// The weight of each backend, in the order of `backends` (1 to [`defaults::MAX_WEIGHT`]).
    pub weights: Vec<u32>,
    /// `lb` and `hash_on`.
    pub balance: Balance,
    pub health_check: Option<HealthCheck>,
    /// `max_fails` and `fail_timeout`.
    pub passive: PassiveHealth,
    /// More attempts after the first; `None`: each backend once (`backends.len() - 1`).
    pub retries: Option<u32>,
}

pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A `trust`-style key: `all`, `none` or a list of networks; `default` when absent.
    pub(super) fn trust(
        &self,
        key: &str,
        v: &Option<FileTrust>,
        default: Trust,
    ) -> Result<Trust, ConfigError> {
        Ok(match v {
            None => default,
            Some(FileTrust::Word(w)) => match w.trim() {
                "all" => Trust::All,
                "none" => Trust::None,
                other => {
                    return Err(self.err(
                        key,
                        format!("{other:?}: expected all, none or a list of networks"),
                    ))
                }
            },
            Some(FileTrust::Networks(nets)) => Trust::Networks(
                nets.iter()
                    .enumerate()
                    .map(|(i, n)| Cidr::parse(n).map_err(|e| self.err(format!("{key}[{i}]"), e)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    pub(super) fn duration(
        &self,
        key: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|r| self.err(key, r)),
        }
    }
}

fn env_err(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        file: "environment".into(),
        key: var.into(),
        reason: reason.into(),
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h` (a bare number is refused: the unit must be explicit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}: expected a number with a unit, e.g. 500ms, 10s, 2m")
    })?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "invalid duration {s:?}: the unit must be ms, s, m or h"
            ))
        }
    };
    Ok(d)
}

fn parse_protocol(s: &str) -> Result<ExporterProtocol, String> {
    match s.trim() {
        "grpc" => Ok(ExporterProtocol::Grpc),
        "http/protobuf" => Ok(ExporterProtocol::HttpProtobuf),
        "zipkin" => Ok(ExporterProtocol::Zipkin),
        "stdout" => Ok(ExporterProtocol::Stdout),
        "none" => Ok(ExporterProtocol::None),
        "http/json" => Err("http/json is not supported; use grpc or http/protobuf".into()),
        other => Err(format!(
            "unknown protocol {other:?}: expected grpc, http/protobuf, zipkin, stdout or none"
        )),
    }
}

/// A header name the proxy may set on responses: a valid token, compared lower-case, and not
/// one whose meaning belongs to HTTP framing or to the tracing headers themselves.
fn response_header_name(name: &str) -> Result<http::HeaderName, String> {
    let lower = name.trim().to_ascii_lowercase();
    let h = http::HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    const RESERVED: [&str; 9] = [
        "connection",
        "content-length",
        "content-type",
        "transfer-encoding",
        "set-cookie",
        "traceparent",
        "tracestate",
        "traceresponse",
        "upgrade",
    ];
    if RESERVED.contains(&h.as_str()) {
        return Err(format!(
            "{name:?} is reserved; pick a name of your own, e.g. x-trace-id"
        ));
    }
    Ok(h)
}

fn check_endpoint(url: &str) -> Result<(), String> {
    // Errors quote the URL without any credentials written into it.
    let s = crate::trace::export::settings::redact_userinfo(url);
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "invalid URL {s:?}: the scheme must be http or https"
            ))
        }
    }
    if uri.authority().is_none() {
        return Err(format!("invalid URL {s:?}: no host"));
    }
    Ok(())
}

/// Appends the OTLP/HTTP traces path to a base URL (OTLP exporter spec, "Endpoint URLs for
/// OTLP/HTTP": `OTEL_EXPORTER_OTLP_ENDPOINT` is a base to which `v1/traces` is appended).
fn with_traces_path(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// True when the URL has no path (or just `/`).
fn has_no_path(url: &str) -> bool {
    url.parse::<http::Uri>()
        .map(|u| matches!(u.path(), "" | "/"))
        .unwrap_or(false)
}

fn parse_ms(var: &str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| env_err(var, format!("expected milliseconds, got {v:?}")))
}

fn parse_count(var: &str, v: &str) -> Result<usize, ConfigError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(env_err(
            var,
            format!("expected a positive integer, got {v:?}"),
        )),
    }
}

impl Config {
    /// Checks the file structs and applies environment overrides.
    pub fn from_file(f: FileConfig, file: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let c = Ctx { file };
        let listeners = super::listeners::check_listen(&c, &f.listen)?;
        let listen = listeners.iter().map(|l| l.addr).collect();
        let server = ServerSettings {
            threads: match f.server.threads {
                None | Some(0) => defaults::threads(),
                Some(n) => n,
            },
            grace_period: c.duration(
                "server.grace_period",
                &f.server.grace_period,
                defaults::GRACE_PERIOD,
            )?,
            shutdown_timeout: c.duration(
                "server.shutdown_timeout",
                &f.server.shutdown_timeout,
                defaults::SHUTDOWN_TIMEOUT,
            )?,
            watch_config: f.server.watch_config.unwrap_or(defaults::WATCH_CONFIG),
            watch_interval: c.duration(
                "server.watch_interval",
                &f.server.watch_interval,
                defaults::WATCH_INTERVAL,
            )?,
            upgrade_sock: f
                .server
                .upgrade_sock
                .clone()
                .unwrap_or_else(|| defaults::UPGRADE_SOCK.to_owned()),
        };
        if server.watch_interval < Duration::from_millis(100) {
            return Err(c.err("server.watch_interval", "must be at least 100ms"));
        }
        if server.upgrade_sock.trim().is_empty() {
            return Err(c.err("server.upgrade_sock", "must not be empty"));
        }
        let telemetry = telemetry(&c, &f, env)?;
        let (upstreams, index) = super::upstreams::check_upstreams(&c, &f.upstreams)?;
        let router = Router::new(super::routes::check_routes(&c, &f.routes, &index)?)
            .with_forwarded(super::routes::check_forwarded(&c, &f.forwarded)?);
        Ok(Config {
            listen,
            listeners,
            server,
            telemetry,
            router,
            upstreams,
        })
    }
}

fn telemetry(c: &Ctx<'_>, f: &FileConfig, env: &dyn Env) -> Result<TelemetrySettings, ConfigError> {
    let t = &f.telemetry;
    let service_name = match env.var("OTEL_SERVICE_NAME") {
        Some(v) => v,
        None => t
            .service_name
            .clone()
            .unwrap_or_else(|| defaults::SERVICE_NAME.into()),
    };
    let (service_name, resource) = resource_attributes(c, t, env, service_name)?;
    if service_name.trim().is_empty() {
        return Err(c.err("telemetry.service_name", "must not be empty"));
    }

    // Protocol: env (traces-specific first) > file > grpc when an endpoint is given > stdout.
    let env_protocol = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|k| env.var(k).map(|v| (*k, v)));
    let file_protocol = match &t.exporter.protocol {
        Some(p) => Some(parse_protocol(p).map_err(|r| c.err("telemetry.exporter.protocol", r))?),
        None => None,
    };
    // Endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; OTEL_EXPORTER_OTLP_ENDPOINT is
    // a base URL (OTLP exporter spec); the file's endpoint is used as is for gRPC and gets
    // `/v1/traces` for HTTP when it has no path.
    let traces_ep = env.var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let base_ep = env.var("OTEL_EXPORTER_OTLP_ENDPOINT");
    let any_endpoint = traces_ep.is_some() || base_ep.is_some() || t.exporter.endpoint.is_some();

    let mut protocol = match (&env_protocol, file_protocol) {
        (Some((k, v)), _) => match parse_protocol(v) {
            Ok(p @ (ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf)) => p,
            Ok(_) => {
                return Err(env_err(
                    k,
                    format!("{v:?} is not an OTLP protocol: expected grpc or http/protobuf"),
                ))
            }
            Err(r) => return Err(env_err(k, r)),
        },
        (None, Some(p)) => p,
        (None, None) if any_endpoint => ExporterProtocol::Grpc,
        (None, None) => ExporterProtocol::Stdout,
    };
    // OTEL_TRACES_EXPORTER (otlp | console | none) and OTEL_SDK_DISABLED select the exporter kind.
    if let Some(v) = env.var("OTEL_TRACES_EXPORTER") {
        protocol = match v.trim() {
            "otlp"
                if !matches!(
                    protocol,
                    ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf
                ) =>
            {
                ExporterProtocol::Grpc
            }
            "otlp" => protocol,
            "console" => ExporterProtocol::Stdout,
            "zipkin" => ExporterProtocol::Zipkin,
            "none" => ExporterProtocol::None,
            other => {
                return Err(env_err(
                    "OTEL_TRACES_EXPORTER",
                    format!(
                        "unsupported exporter {other:?}: expected otlp, zipkin, console or none"
                    ),
                ))
            }
        };
    }
    if env
        .var("OTEL_SDK_DISABLED")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        protocol = ExporterProtocol::None;
    }

    let endpoint = match protocol {
        ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf => {
            let http = protocol == ExporterProtocol::HttpProtobuf;
            let (ep, key, from_env) = if let Some(v) = traces_ep {
                (v, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", true)
            } else if let Some(v) = base_ep {
                (
                    if http { with_traces_path(&v) } else { v },
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    true,
                )
            } else if let Some(v) = &t.exporter.endpoint {
                let v = if http && has_no_path(v) {
                    with_traces_path(v)
                } else {
                    v.clone()
                };
                (v, "telemetry.exporter.endpoint", false)
            } else if http {
                (defaults::HTTP_ENDPOINT.to_owned(), "", false)
            } else {
                (defaults::GRPC_ENDPOINT.to_owned(), "", false)
            };
            check_endpoint(&ep).map_err(|r| {
                if from_env {
                    env_err(key, r)
                } else {
                    c.err(key, r)
                }
            })?;
            ep
        }
        ExporterProtocol::Zipkin => zipkin_endpoint(c, t, env)?,
        ExporterProtocol::Stdout | ExporterProtocol::None => String::new(),
    };

    let mut timeout = c.duration(
        "telemetry.exporter.timeout",
        &t.exporter.timeout,
        defaults::EXPORT_TIMEOUT,
    )?;
    for k in timeout_vars(protocol) {
        if let Some(v) = env.var(k) {
            timeout = parse_ms(k, &v)?;
            break;
        }
    }

    let b = &t.batch;
    let mut batch = PipelineSettings {
        max_queue_size: b.max_queue_size.unwrap_or(defaults::MAX_QUEUE_SIZE),
        max_export_batch_size: b
            .max_export_batch_size
            .unwrap_or(defaults::MAX_EXPORT_BATCH_SIZE),
        scheduled_delay: c.duration(
            "telemetry.batch.scheduled_delay",
            &b.scheduled_delay,
            defaults::SCHEDULED_DELAY,
        )?,
        export_timeout: c.duration(
            "telemetry.batch.export_timeout",
            &b.export_timeout,
            defaults::BATCH_EXPORT_TIMEOUT,
        )?,
    };
    if batch.max_queue_size == 0 {
        return Err(c.err("telemetry.batch.max_queue_size", "must be at least 1"));
    }
    if batch.max_export_batch_size == 0 {
        return Err(c.err(
            "telemetry.batch.max_export_batch_size",
            "must be at least 1",
        ));
    }
    if let Some(v) = env.var("OTEL_BSP_MAX_QUEUE_SIZE") {
        batch.max_queue_size = parse_count("OTEL_BSP_MAX_QUEUE_SIZE", &v)?;
    }
    if let Some(v) = env.var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        batch.max_export_batch_size = parse_count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v)?;
    }
    if let Some(v) = env.var("OTEL_BSP_SCHEDULE_DELAY") {
        batch.scheduled_delay = parse_ms("OTEL_BSP_SCHEDULE_DELAY", &v)?;
    }
    if let Some(v) = env.var("OTEL_BSP_EXPORT_TIMEOUT") {
        batch.export_timeout = parse_ms("OTEL_BSP_EXPORT_TIMEOUT", &v)?;
    }
    // The batch can never be larger than the queue (OpenTelemetry SDK spec, batching processor).
    batch.max_export_batch_size = batch.max_export_batch_size.min(batch.max_queue_size);

    // Sampler: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG override the file.
    let (sampler_key, sampler_name) = match env.var("OTEL_TRACES_SAMPLER") {
        Some(v) => ("OTEL_TRACES_SAMPLER", Some(v)),
        None => ("telemetry.sampler.name", t.sampler.name.clone()),
    };
    let (ratio_key, ratio) = match env.var("OTEL_TRACES_SAMPLER_ARG") {
        Some(v) => (
            "OTEL_TRACES_SAMPLER_ARG",
            Some(v.trim().parse::<f64>().map_err(|_| {
                env_err("OTEL_TRACES_SAMPLER_ARG", format!("{v:?} is not a number"))
            })?),
        ),
        None => ("telemetry.sampler.ratio", t.sampler.ratio),
    };
    let sampler_name = sampler_name.unwrap_or_else(|| defaults::SAMPLER.into());
    let sampler = Sampler::from_name(&sampler_name, ratio).map_err(|e| {
        let key = if e.starts_with("unknown sampler") {
            sampler_key
        } else {
            ratio_key
        };
        if key.starts_with("OTEL_") {
            env_err(key, e)
        } else {
            c.err(key, e)
        }
    })?;
    let keep_slower_than = match &t.keep.slower_than {
        None => None,
        Some(v) => Some(parse_duration(v).map_err(|e| c.err("telemetry.keep.slower_than", e))?),
    };
    let trust = c.trust("telemetry.trust_incoming", &t.trust_incoming, Trust::All)?;
    let trace_id_header = match &t.trace_id_header {
        None => None,
        Some(name) => {
            Some(response_header_name(name).map_err(|r| c.err("telemetry.trace_id_header", r))?)
        }
    };
    Ok(TelemetrySettings {
        service_name,
        exporter: ExporterSettings {
            protocol,
            endpoint,
            timeout,
            ..exporter_extras(c, t, env, protocol)?
        },
        resource,
        batch,
        options: TraceOptions {
            traceresponse: t.traceresponse.unwrap_or(defaults::TRACERESPONSE),
            trace_id_header,
            sampler,
            trust,
            keep_errors: t.keep.errors.unwrap_or(defaults::KEEP_ERRORS),
            keep_slower_than,
            capture: capture(c, &t.capture)?,
            propagators: propagators(c, t.propagators.as_deref(), env)?,
        },
    })
}

/// `telemetry.capture`: the header allowlists and how `url.query` is recorded.
fn capture(c: &Ctx<'_>, f: &FileCapture) -> Result<Capture, ConfigError> {
    let names = |key: &str, list: &[String]| -> Result<Vec<http::HeaderName>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, n)| {
                http::HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| {
                    c.err(format!("{key}[{i}]"), format!("{n:?} is not a header name"))
                })
            })
            .collect()
    };
    let query = match f.query.as_deref().map(str::trim) {
        None => defaults::CAPTURE_QUERY,
        Some("off") => QueryMode::Off,
        Some("redacted") => QueryMode::Redacted,
        Some("full") => QueryMode::Full,
        Some(other) => {
            return Err(c.err(
                "telemetry.capture.query",
                format!("{other:?}: expected off, redacted or full"),
            ))
        }
    };
    for (i, k) in f.sensitive_query_keys.iter().enumerate() {
        if k.trim().is_empty() {
            return Err(c.err(
                format!("telemetry.capture.sensitive_query_keys[{i}]"),
                "must not be empty",
            ));
        }
    }
    Ok(Capture::new(
        &names("telemetry.capture.request_headers", &f.request_headers)?,
        &names("telemetry.capture.response_headers", &f.response_headers)?,
        query,
        &f.sensitive_query_keys,
    ))
}

/// `telemetry.propagators` (a list of names), overridden by `OTEL_PROPAGATORS` (the same
/// names, comma-separated). Absent from both: `tracecontext,baggage`, the OpenTelemetry default.
fn propagators(
    c: &Ctx<'_>,
    file: Option<&[String]>,
    env: &dyn Env,
) -> Result<Propagators, ConfigError> {
    if let Some(v) = env.var("OTEL_PROPAGATORS") {
        return Propagators::from_names(v.split(','))
            .map_err(|e| env_err("OTEL_PROPAGATORS", e.reason));
    }
    let Some(names) = file else {
        return Ok(Propagators::default());
    };
    Propagators::from_names(names.iter().map(String::as_str)).map_err(|e| {
        let key = match e.index {
            Some(i) => format!("telemetry.propagators[{i}]"),
            None => "telemetry.propagators".to_owned(),
        };
        c.err(key, e.reason)
    })
}

/// Splits a `key=value,key2=value2` list, the syntax of `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS` (W3C Baggage without properties; OpenTelemetry SDK
/// configuration spec). Keys are trimmed; values are trimmed and percent-decoded. Empty entries
/// are skipped. Errors never quote a value (header values are secrets).
fn parse_key_value_list(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!(
                "entry {} is not key=value (expected key1=value1,key2=value2)",
                i + 1
            ));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("entry {} has an empty key", i + 1));
        }
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of {k:?} is not UTF-8 once percent-decoded"))?;
        out.push((k.to_owned(), v.into_owned()));
    }
    Ok(out)
}

/// The first of `vars` that is set, with its name.
fn first_env(env: &dyn Env, vars: &[&'static str]) -> Option<(&'static str, String)> {
    vars.iter().find_map(|k| env.var(k).map(|v| (*k, v)))
}

/// An error for `key`: a file key, or an environment variable (`OTEL_*`).
fn key_err(c: &Ctx<'_>, key: &str, reason: impl Into<String>) -> ConfigError {
    if key.starts_with("OTEL_") {
        env_err(key, reason)
    } else {
        c.err(key, reason)
    }
}

/// Variables for the export timeout, in milliseconds, most specific first.
fn timeout_vars(protocol: ExporterProtocol) -> &'static [&'static str] {
    match protocol {
        ExporterProtocol::Zipkin => &["OTEL_EXPORTER_ZIPKIN_TIMEOUT"],
        _ => &[
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
    }
}

/// The Zipkin collector URL: `OTEL_EXPORTER_ZIPKIN_ENDPOINT` > `telemetry.exporter.endpoint` >
/// the default; each is the full URL, used as given.
fn zipkin_endpoint(c: &Ctx<'_>, t: &FileTelemetry, env: &dyn Env) -> Result<String, ConfigError> {
    let (key, url) = match (
        env.var("OTEL_EXPORTER_ZIPKIN_ENDPOINT"),
        &t.exporter.endpoint,
    ) {
        (Some(v), _) => ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", v),
        (None, Some(v)) => ("telemetry.exporter.endpoint", v.clone()),
        (None, None) => ("", defaults::ZIPKIN_ENDPOINT.to_owned()),
    };
    check_endpoint(&url).map_err(|r| key_err(c, key, r))?;
    Ok(url)
}

/// `service.name` and the other resource attributes. Precedence (OpenTelemetry SDK
/// configuration spec): `OTEL_SERVICE_NAME` > `service.name` in `OTEL_RESOURCE_ATTRIBUTES` >
/// `telemetry.service_name`; `service_name` is what the caller resolved from the first and
/// last. Keys in `OTEL_RESOURCE_ATTRIBUTES` replace the same keys of `telemetry.resource`.
fn resource_attributes(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    mut service_name: String,
) -> Result<(String, Vec<(String, String)>), ConfigError> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    for (k, v) in t.resource.iter().flatten() {
        let key = format!("telemetry.resource.{k}");
        if k.trim().is_empty() {
            return Err(c.err(key, "the attribute name must not be empty"));
        }
        if k.trim() == "service.name" {
            return Err(c.err(
                key,
                "service.name is not a resource key here: use telemetry.service_name",
            ));
        }
        attrs.push((k.trim().to_owned(), v.clone()));
    }
    const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
    if let Some(v) = env.var(VAR) {
        for (k, v) in parse_key_value_list(&v).map_err(|r| env_err(VAR, r))? {
            if k == "service.name" {
                if env.var("OTEL_SERVICE_NAME").is_none() {
                    service_name = v;
                }
                continue;
            }
            match attrs.iter_mut().find(|(a, _)| *a == k) {
                Some(slot) => slot.1 = v,
                None => attrs.push((k, v)),
            }
        }
    }
    Ok((service_name, attrs))
}

/// A header to send to the collector: a valid lower-case name that is not one the transport
/// owns, and a valid value (marked sensitive). Errors name the header, never the value.
fn export_header(name: &str, value: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let n = http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    const OWNED: [&str; 9] = [
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "te",
        "transfer-encoding",
        "upgrade",
        "user-agent",
    ];
    if OWNED.contains(&n.as_str()) || n.as_str().starts_with("grpc-") {
        return Err(format!("header {name:?} is set by the exporter itself"));
    }
    if n.as_str().ends_with("-bin") {
        return Err(format!(
            "header {name:?}: names ending in -bin are binary gRPC metadata, not supported"
        ));
    }
    let mut v = http::HeaderValue::from_str(value.trim()).map_err(|_| {
        format!("the value of header {name:?} has characters not allowed in a header")
    })?;
    v.set_sensitive(true);
    Ok((n, v))
}

/// Headers sent with every export. `OTEL_EXPORTER_OTLP_TRACES_HEADERS` >
/// `OTEL_EXPORTER_OTLP_HEADERS` > `telemetry.exporter.headers`, each replacing the others as a
/// whole (the OTLP exporter spec: the signal-specific option takes precedence over the
/// generic one), so a key rotated through the environment never mixes with stale file headers.
/// The variables apply to the OTLP protocols only.
fn exporter_headers(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    otlp: bool,
) -> Result<http::HeaderMap, ConfigError> {
    let mut out = http::HeaderMap::new();
    let env_headers = otlp
        .then(|| {
            first_env(
                env,
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "OTEL_EXPORTER_OTLP_HEADERS",
                ],
            )
        })
        .flatten();
    if let Some((var, v)) = env_headers {
        for (k, v) in parse_key_value_list(&v).map_err(|r| env_err(var, r))? {
            let (n, v) = export_header(&k, &v).map_err(|r| env_err(var, r))?;
            out.insert(n, v);
        }
        return Ok(out);
    }
    for (k, v) in t.exporter.headers.iter().flatten() {
        let (n, v) =
            export_header(k, v).map_err(|r| c.err(format!("telemetry.exporter.headers.{k}"), r))?;
        out.insert(n, v);
    }
    Ok(out)
}

/// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` > `OTEL_EXPORTER_OTLP_COMPRESSION` (OTLP only) >
/// `telemetry.exporter.compression` > none.
fn exporter_compression(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    otlp: bool,
) -> Result<Compression, ConfigError> {
    let vars = [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ];
    let (key, v) = match otlp.then(|| first_env(env, &vars)).flatten() {
        Some((k, v)) => (k, v),
        None => match &t.exporter.compression {
            Some(v) => ("telemetry.exporter.compression", v.clone()),
            None => return Ok(Compression::None),
        },
    };
    match v.trim() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        other => Err(key_err(
            c,
            key,
            format!("unknown compression {other:?}: expected gzip or none"),
        )),
    }
}

/// The TLS files: each `OTEL_EXPORTER_OTLP_(TRACES_)*` variable (OTLP only) overrides its key
/// of `telemetry.exporter.tls`. Files are read and checked here, so a missing or broken file
/// fails the load naming its key and path.
fn exporter_tls(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    otlp: bool,
) -> Result<TlsSettings, ConfigError> {
    let file = t.exporter.tls.as_ref();
    let pick = |vars: [&'static str; 2], key: &'static str, v: Option<&String>| match otlp
        .then(|| first_env(env, &vars))
        .flatten()
    {
        Some((var, path)) => Some((var, path)),
        None => v.map(|p| (key, p.clone())),
    };
    let ca = pick(
        [
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ],
        "telemetry.exporter.tls.ca_file",
        file.and_then(|f| f.ca_file.as_ref()),
    );
    let cert = pick(
        [
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ],
        "telemetry.exporter.tls.cert_file",
        file.and_then(|f| f.cert_file.as_ref()),
    );
    let key = pick(
        [
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ],
        "telemetry.exporter.tls.key_file",
        file.and_then(|f| f.key_file.as_ref()),
    );
    let client = match (&cert, &key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some((given, _)), None) | (None, Some((given, _))) => {
            let missing = if cert.is_none() {
                "the client certificate (cert_file)"
            } else {
                "the client key (key_file)"
            };
            return Err(key_err(
                c,
                given,
                format!("{missing} is missing: a client certificate needs both cert and key"),
            ));
        }
    };
    TlsSettings::load(
        ca.as_ref().map(|(_, p)| std::path::Path::new(p)),
        client.map(|((_, c), (_, k))| (std::path::Path::new(c), std::path::Path::new(k))),
    )
    .map_err(|(which, reason)| {
        let named = match which {
            TlsFile::Ca => &ca,
            TlsFile::Cert => &cert,
            TlsFile::Key => &key,
        };
        key_err(c, named.as_ref().map_or("", |(k, _)| k), reason)
    })
}

/// Headers, compression and TLS of the exporter (the other fields are left at their defaults
/// for the caller to fill). Nothing is read for `stdout` and `none`.
fn exporter_extras(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    protocol: ExporterProtocol,
) -> Result<ExporterSettings, ConfigError> {
    if matches!(protocol, ExporterProtocol::Stdout | ExporterProtocol::None) {
        return Ok(ExporterSettings::default());
    }
    let otlp = matches!(
        protocol,
        ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf
    );
    Ok(ExporterSettings {
        headers: exporter_headers(c, t, env, otlp)?,
        compression: exporter_compression(c, t, env, otlp)?,
        tls: exporter_tls(c, t, env, otlp)?,
        ..ExporterSettings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;
    use std::collections::HashMap;

    const GOOD: &str = r#"
listen: ["127.0.0.1:8080"]
telemetry:
  service_name: edge
  exporter: { protocol: grpc, endpoint: "http://127.0.0.1:4317" }
routes:
  - name: api
    match: { host: api.example.com, path_prefix: /api }
    upstream: api
  - name: default
    match: { path_prefix: / }
    upstream: web
upstreams:
  api: { backends: ["127.0.0.1:9001", "127.0.0.1:9002"] }
  web: { backends: ["127.0.0.1:9003"] }
"#;

    fn no_env() -> HashMap<&'static str, &'static str> {
        HashMap::new()
    }

    #[test]
    fn issue_example_loads() {
        let c = load_str(GOOD, "t.yaml", &no_env()).unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(c.telemetry.service_name, "edge");
        assert_eq!(c.telemetry.exporter.protocol, ExporterProtocol::Grpc);
        assert_eq!(c.router.routes().len(), 2);
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.upstreams[0].backends.len(), 2);
    }

    #[test]
    fn refused_configs_table() {
        // (yaml, expected key, expected words in reason, why)
        let cases: &[(&str, &str, &str, &str)] = &[
            ("listen: [\"127.0.0.1:8080\"]\nlisten_typo: 1\n", "listen_typo", "unknown field `listen_typo`", "unknown top-level key"),
            ("listen: [\"127.0.0.1:8080\"]\nroutes: [{name: a, match: {hots: x}, respond: {}}]\n", "routes[0].match.hots", "unknown field `hots`", "unknown nested key"),
            ("listen: []\n", "listen", "at least one", "no listen address"),
            ("listen: [\"localhost\"]\n", "listen[0]", "expected IP:port", "bad listen address"),
            ("listen: [\"127.0.0.1:1\"]\nroutes: [{name: a, upstream: nope}]\n", "routes[0].upstream", "no upstream named \"nope\"", "route names a missing upstream"),
            ("listen: [\"127.0.0.1:1\"]\nupstreams: {a: {backends: []}}\n", "upstreams.a.backends", "at least one backend", "empty backend list"),
            ("listen: [\"127.0.0.1:1\"]\nupstreams: {a: {backends: [\"10.0.0.1\"]}}\n", "upstreams.a.backends[0]", "expected host:port", "backend without port"),
            ("listen: [\"127.0.0.1:1\"]\nupstreams: {a: {backends: [\"127.0.0.1:1\"], read_timeout: 5}}\n", "upstreams.a.read_timeout", "", "duration without unit is a type error"),
            ("listen: [\"127.0.0.1:1\"]\nupstreams: {a: {backends: [\"127.0.0.1:1\"], read_timeout: \"5 parsecs\"}}\n", "upstreams.a.read_timeout", "unit must be", "unknown duration unit"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: jaeger}}\n", "telemetry.exporter.protocol", "unknown protocol", "unknown exporter protocol"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, endpoint: \"127.0.0.1:4317\"}}\n", "telemetry.exporter.endpoint", "scheme", "endpoint without scheme"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, endpoint: \"ftp://collector:4317\"}}\n", "telemetry.exporter.endpoint", "http or https", "other schemes are refused at load, not on every export"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: zipkin, endpoint: \"zipkin:9411\"}}\n", "telemetry.exporter.endpoint", "scheme", "zipkin endpoint without scheme"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, compression: brotli}}\n", "telemetry.exporter.compression", "unknown compression \"brotli\": expected gzip or none", "unsupported compression"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, headers: {\"x api\": k}}}\n", "telemetry.exporter.headers.x api", "not a valid header name", "space in a header name"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, headers: {x-key: \"a\\u0001b\"}}}\n", "telemetry.exporter.headers.x-key", "value of header \"x-key\" has characters not allowed", "control character in a value"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: http/protobuf, headers: {Content-Type: text/plain}}}\n", "telemetry.exporter.headers.Content-Type", "set by the exporter", "transport headers are not ours to replace"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, headers: {auth-bin: x}}}\n", "telemetry.exporter.headers.auth-bin", "binary gRPC metadata", "binary metadata name"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, tls: {ca_file: /nonexistent/ca.pem}}}\n", "telemetry.exporter.tls.ca_file", "cannot read /nonexistent/ca.pem", "missing CA file"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, tls: {cert_file: /nonexistent/c.pem}}}\n", "telemetry.exporter.tls.cert_file", "client key (key_file) is missing", "client certificate without key"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, tls: {key_file: /nonexistent/k.pem}}}\n", "telemetry.exporter.tls.key_file", "client certificate (cert_file) is missing", "client key without certificate"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, tls: {ca: x}}}\n", "telemetry.exporter.tls.ca", "unknown field `ca`", "unknown TLS key"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {resource: {service.name: x}}\n", "telemetry.resource.service.name", "use telemetry.service_name", "service.name belongs to its own key"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {resource: {deployment.environment.name: [prod]}}\n", "telemetry.resource.deployment.environment.name", "", "resource values are strings"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {trace_id_header: \"x trace\"}\n", "telemetry.trace_id_header", "not a valid header name", "a space is not a token character"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {trace_id_header: Content-Length}\n", "telemetry.trace_id_header", "reserved", "framing headers are not ours to set"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {traceresponse: maybe}\n", "telemetry.traceresponse", "", "not a boolean"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {sampler: {name: jaeger_remote}}\n", "telemetry.sampler.name", "unknown sampler", "unsupported sampler"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {sampler: {name: traceidratio, ratio: 2}}\n", "telemetry.sampler.ratio", "between 0 and 1", "ratio out of range"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {keep: {slower_than: soon}}\n", "telemetry.keep.slower_than", "", "not a duration"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {trust_incoming: some}\n", "telemetry.trust_incoming", "expected all, none", "unknown word"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {trust_incoming: [\"10.0.0.1/8\"]}\n", "telemetry.trust_incoming[0]", "bits set", "host bits in a network"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {capture: {request_headers: [x-ok, \"bad name\"]}}\n", "telemetry.capture.request_headers[1]", "not a header name", "capture list names the bad entry"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {capture: {query: some}}\n", "telemetry.capture.query", "expected off, redacted or full", "unknown query mode"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {capture: {sensitive_query_keys: [\" \"]}}\n", "telemetry.capture.sensitive_query_keys[0]", "must not be empty", "blank sensitive key"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {capture: {headers: [a]}}\n", "telemetry.capture.headers", "unknown field", "request_headers/response_headers, not headers"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: [tracecontext, xray]}\n", "telemetry.propagators[1]", "not supported", "a known OTel propagator this proxy lacks"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: [B3]}\n", "telemetry.propagators[0]", "case-sensitive", "OTel propagator names are case-sensitive"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: [b3, none]}\n", "telemetry.propagators[1]", "cannot be combined", "none with another propagator"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: []}\n", "telemetry.propagators", "no propagator", "an empty list is refused; none says it"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: b3}\n", "telemetry.propagators", "", "a list, not a word"),
            ("listen: [\"127.0.0.1:1\"]\nroutes: [{name: r, match: {path_prefix: /}, respond: {status: 200}, sample_ratio: -1}]\n", "routes[0].sample_ratio", "between 0 and 1", "route ratio out of range"),
            ("listen: [\"127.0.0.1:1\"]\nroutes: [{name: a, respond: {}}, {name: a, respond: {}}]\n", "routes[1].name", "used twice", "duplicate route name"),
            ("listen: [\"127.0.0.1:1\"]\nroutes: [{name: a, match: {path_prefix: api}, respond: {}}]\n", "routes[0].match.path_prefix", "must start with '/'", "relative prefix"),
            ("listen: [\"127.0.0.1:1\"]\nroutes: [{name: a}]\n", "routes[0]", "needs an action", "route without action"),
            ("listen: [\"127.0.0.1:1\"]\nroutes: [{name: a, match: {host: \"a.com:80\"}, respond: {}}]\n", "routes[0].match.host", "without port", "host with a port"),
            ("listen: [\"127.0.0.1:1\"\n", "listen", "expected ',' or ']'", "YAML syntax error names where it broke"),
        ];
        for (yaml, key, reason, why) in cases {
            let e = load_str(yaml, "bad.yaml", &no_env()).expect_err(why);
            assert_eq!(e.file, "bad.yaml", "{why}");
            assert_eq!(&e.key, key, "{why}: {e}");
            assert!(e.reason.contains(reason), "{why}: {e}");
        }
    }

    #[test]
    fn env_overrides_file_table() {
        let base = "listen: [\"127.0.0.1:1\"]\ntelemetry: {service_name: file, exporter: {protocol: grpc, endpoint: \"http://file:4317\"}}\n";
        let bare = "listen: [\"127.0.0.1:1\"]\n";
        type Check = fn(&TelemetrySettings) -> bool;
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Check, &'a str);
        let cases: &[Case] = &[
            (
                base,
                &[],
                |t| t.service_name == "file" && t.exporter.endpoint == "http://file:4317",
                "file values when no env",
            ),
            (
                base,
                &[("OTEL_SERVICE_NAME", "env")],
                |t| t.service_name == "env",
                "OTEL_SERVICE_NAME wins",
            ),
            (
                base,
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")],
                |t| t.exporter.endpoint == "http://env:4317",
                "grpc base endpoint used as is",
            ),
            (
                base,
                &[
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
                ],
                |t| {
                    t.exporter.protocol == ExporterProtocol::HttpProtobuf
                        && t.exporter.endpoint == "http://env:4318/v1/traces"
                },
                "http base endpoint gets /v1/traces",
            ),
            (
                base,
                &[
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "http://env:4318/custom",
                    ),
                ],
                |t| t.exporter.endpoint == "http://env:4318/custom",
                "signal endpoint used as is",
            ),
            (
                bare,
                &[],
                |t| t.exporter.protocol == ExporterProtocol::Stdout,
                "no endpoint anywhere: stdout",
            ),
            (
                bare,
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317")],
                |t| t.exporter.protocol == ExporterProtocol::Grpc,
                "an endpoint in env selects OTLP gRPC",
            ),
            (
                base,
                &[("OTEL_TRACES_EXPORTER", "none")],
                |t| t.exporter.protocol == ExporterProtocol::None,
                "OTEL_TRACES_EXPORTER=none",
            ),
            (
                base,
                &[("OTEL_SDK_DISABLED", "true")],
                |t| t.exporter.protocol == ExporterProtocol::None,
                "OTEL_SDK_DISABLED",
            ),
            (
                base,
                &[
                    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                    ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
                ],
                |t| {
                    t.batch.scheduled_delay == Duration::from_millis(100)
                        && t.batch.max_queue_size == 64
                        && t.batch.max_export_batch_size == 64
                },
                "OTEL_BSP_*; batch capped by queue",
            ),
            (
                base,
                &[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")],
                |t| t.exporter.timeout == Duration::from_millis(2500),
                "timeout in ms",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, endpoint: \"https://c:4317\", headers: {X-Api-Key: file, x-team: edge}, compression: gzip}}\n",
                &[],
                |t| {
                    t.exporter.endpoint == "https://c:4317"
                        && t.exporter.headers.len() == 2
                        && t.exporter.headers["x-api-key"] == "file"
                        && t.exporter.headers["x-api-key"].is_sensitive()
                        && t.exporter.compression == Compression::Gzip
                },
                "https endpoint, headers (lower-cased, sensitive) and gzip from the file",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, headers: {x-api-key: file, x-team: edge}, compression: gzip}}\n",
                &[("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=env%20key%2C1, x-other = 2"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "none")],
                |t| {
                    t.exporter.headers.len() == 2
                        && t.exporter.headers["x-api-key"] == "env key,1"
                        && t.exporter.headers["x-other"] == "2"
                        && t.exporter.compression == Compression::None
                },
                "env headers replace the file's as a whole, percent-decoded; env compression wins",
            ),
            (
                base,
                &[
                    ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
                    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2"),
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
                    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
                ],
                |t| {
                    t.exporter.headers.len() == 1
                        && t.exporter.headers["b"] == "2"
                        && t.exporter.compression == Compression::Gzip
                },
                "the _TRACES_ variables win over the generic ones",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: zipkin}}\n",
                &[],
                |t| {
                    t.exporter.protocol == ExporterProtocol::Zipkin
                        && t.exporter.endpoint == "http://localhost:9411/api/v2/spans"
                },
                "zipkin with its default endpoint",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: zipkin, endpoint: \"http://file:9411/api/v2/spans\", timeout: 3s}}\n",
                &[
                    ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "https://env:9411/api/v2/spans"),
                    ("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "1500"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "9000"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=otlp-only"),
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ],
                |t| {
                    t.exporter.endpoint == "https://env:9411/api/v2/spans"
                        && t.exporter.timeout == Duration::from_millis(1500)
                        && t.exporter.headers.is_empty()
                        && t.exporter.compression == Compression::None
                },
                "OTEL_EXPORTER_ZIPKIN_*; OTLP variables do not reach a zipkin exporter",
            ),
            (
                base,
                &[("OTEL_TRACES_EXPORTER", "zipkin")],
                |t| {
                    t.exporter.protocol == ExporterProtocol::Zipkin
                        && t.exporter.endpoint == "http://file:4317"
                },
                "OTEL_TRACES_EXPORTER=zipkin; the file's endpoint is the zipkin URL",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: zipkin}}\n",
                &[("OTEL_TRACES_EXPORTER", "otlp")],
                |t| t.exporter.protocol == ExporterProtocol::Grpc,
                "OTEL_TRACES_EXPORTER=otlp replaces a zipkin file setting",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {service_name: file, resource: {deployment.environment.name: staging, team: edge}}\n",
                &[],
                |t| {
                    t.service_name == "file"
                        && t.resource
                            == [
                                ("deployment.environment.name".to_owned(), "staging".to_owned()),
                                ("team".to_owned(), "edge".to_owned()),
                            ]
                },
                "resource attributes from the file",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {service_name: file, resource: {deployment.environment.name: staging, team: edge}}\n",
                &[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,service.name=from-attrs,k8s.pod.name=a%2Fb")],
                |t| {
                    t.service_name == "from-attrs"
                        && t.resource
                            == [
                                ("deployment.environment.name".to_owned(), "prod".to_owned()),
                                ("team".to_owned(), "edge".to_owned()),
                                ("k8s.pod.name".to_owned(), "a/b".to_owned()),
                            ]
                },
                "OTEL_RESOURCE_ATTRIBUTES: env keys win, service.name beats the file",
            ),
            (
                base,
                &[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"), ("OTEL_SERVICE_NAME", "env")],
                |t| t.service_name == "env" && t.resource.is_empty(),
                "OTEL_SERVICE_NAME beats service.name in OTEL_RESOURCE_ATTRIBUTES",
            ),
            (
                bare,
                &[],
                |t| t.options.sampler == Sampler::default() && t.options.trust == Trust::All,
                "defaults: parentbased_always_on, every caller trusted",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {sampler: {name: parentbased_traceidratio, ratio: 0.25}, keep: {errors: true, slower_than: 2s}, trust_incoming: [\"10.0.0.0/8\", \"::1\"]}\n",
                &[],
                |t| {
                    t.options.sampler == Sampler::from_name("parentbased_traceidratio", Some(0.25)).unwrap()
                        && t.options.keep_errors
                        && t.options.keep_slower_than == Some(Duration::from_secs(2))
                        && matches!(&t.options.trust, Trust::Networks(n) if n.len() == 2)
                },
                "sampler, keep rules and trusted networks from the file",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {sampler: {name: always_on}, trust_incoming: none}\n",
                &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.5")],
                |t| {
                    t.options.sampler == Sampler::from_name("traceidratio", Some(0.5)).unwrap()
                        && t.options.trust == Trust::None
                },
                "OTEL_TRACES_SAMPLER(_ARG) override the file",
            ),
            (
                bare,
                &[],
                |t| t.options.propagators.to_string() == "tracecontext,baggage",
                "default propagators: tracecontext,baggage (OTel SDK)",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: [jaeger, b3, tracecontext, b3]}\n",
                &[],
                |t| t.options.propagators.to_string() == "jaeger,b3,tracecontext",
                "file order kept, repeats dropped",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {propagators: [b3]}\n",
                &[("OTEL_PROPAGATORS", "b3multi, jaeger")],
                |t| t.options.propagators.to_string() == "b3multi,jaeger",
                "OTEL_PROPAGATORS overrides the file",
            ),
            (
                bare,
                &[("OTEL_PROPAGATORS", "none")],
                |t| t.options.propagators.is_empty(),
                "OTEL_PROPAGATORS=none",
            ),
        ];
        for (yaml, env, check, why) in cases {
            let env: HashMap<&str, &str> = env.iter().copied().collect();
            let c = load_str(yaml, "t.yaml", &env).unwrap_or_else(|e| panic!("{why}: {e}"));
            assert!(check(&c.telemetry), "{why}: {:?}", c.telemetry);
        }
    }

    #[test]
    fn bad_env_is_refused_with_the_variable_name() {
        let env: HashMap<&str, &str> = [("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")]
            .into_iter()
            .collect();
        let e = load_str("listen: [\"127.0.0.1:1\"]\n", "t.yaml", &env).unwrap_err();
        assert_eq!(e.file, "environment");
        assert_eq!(e.key, "OTEL_EXPORTER_OTLP_PROTOCOL");
    }

    #[test]
    fn bad_env_table() {
        // (env, variable named, words in the reason, why)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key")],
                "OTEL_EXPORTER_OTLP_HEADERS",
                "entry 1 is not key=value",
                "header without '='",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=1,=2")],
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "entry 2 has an empty key",
                "empty header name",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=top%0Asecret")],
                "OTEL_EXPORTER_OTLP_HEADERS",
                "value of header \"x-api-key\" has characters not allowed",
                "newline once decoded",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=%FF%FEsecret")],
                "OTEL_EXPORTER_OTLP_HEADERS",
                "not UTF-8",
                "bad percent-encoding",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "unknown compression",
                "unsupported compression",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")],
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "cannot read /nonexistent/ca.pem",
                "missing CA file",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/k.pem")],
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                "client certificate (cert_file) is missing",
                "key without certificate",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "team")],
                "OTEL_RESOURCE_ATTRIBUTES",
                "not key=value",
                "resource attribute without '='",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "jaeger")],
                "OTEL_TRACES_EXPORTER",
                "expected otlp, zipkin, console or none",
                "unknown exporter",
            ),
            (
                &[
                    ("OTEL_TRACES_EXPORTER", "zipkin"),
                    ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "ftp://z"),
                ],
                "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
                "http or https",
                "zipkin endpoint scheme",
            ),
            (
                &[
                    ("OTEL_TRACES_EXPORTER", "zipkin"),
                    ("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "2s"),
                ],
                "OTEL_EXPORTER_ZIPKIN_TIMEOUT",
                "milliseconds",
                "zipkin timeout unit",
            ),
        ];
        let yaml = "listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc}}\n";
        for (env, var, reason, why) in cases {
            let env: HashMap<&str, &str> = env.iter().copied().collect();
            let e = load_str(yaml, "t.yaml", &env).expect_err(why);
            assert_eq!(
                (e.file.as_str(), e.key.as_str()),
                ("environment", *var),
                "{why}: {e}"
            );
            assert!(e.reason.contains(reason), "{why}: {e}");
            assert!(
                !e.to_string().contains("secret"),
                "{why}: the value leaked: {e}"
            );
        }
    }

    /// TLS files are read and checked at load: good PEM files load, and each kind of bad file
    /// is refused naming the key and the path.
    #[test]
    fn tls_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p.display().to_string()
        };
        let ca = rcgen::generate_simple_self_signed(vec!["collector".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
        let ca_pem = write("ca.pem", ca.cert.pem().as_bytes());
        let key_pem = write("key.pem", ca.signing_key.serialize_pem().as_bytes());
        let other_key = write(
            "other-key.pem",
            other.signing_key.serialize_pem().as_bytes(),
        );
        let not_pem = write("not.pem", b"just text\n");
        let yaml = |ca: &str, cert: &str, key: &str| {
            let mut tls = Vec::new();
            for (k, v) in [("ca_file", ca), ("cert_file", cert), ("key_file", key)] {
                if !v.is_empty() {
                    tls.push(format!("{k}: \"{v}\""));
                }
            }
            format!(
                "listen: [\"127.0.0.1:1\"]\ntelemetry: {{exporter: {{protocol: grpc, endpoint: \"https://c:4317\", tls: {{{}}}}}}}\n",
                tls.join(", ")
            )
        };
        let c = load_str(&yaml(&ca_pem, &ca_pem, &key_pem), "t.yaml", &no_env()).unwrap();
        assert!(c.telemetry.exporter.tls.ca_pem.is_some());
        assert!(c.telemetry.exporter.tls.client_identity.is_some());
        assert!(
            !format!("{:?}", c.telemetry).contains("PRIVATE KEY"),
            "the key is printed"
        );
        // (ca, cert, key, key named, words in the reason, why)
        let cases = [
            (
                not_pem.as_str(),
                "",
                "",
                "telemetry.exporter.tls.ca_file",
                "holds no PEM certificate",
                "CA file without PEM",
            ),
            (
                "",
                not_pem.as_str(),
                key_pem.as_str(),
                "telemetry.exporter.tls.cert_file",
                "holds no PEM certificate",
                "certificate file without PEM",
            ),
            (
                "",
                ca_pem.as_str(),
                ca_pem.as_str(),
                "telemetry.exporter.tls.key_file",
                "no usable PEM private key",
                "a certificate where the key should be",
            ),
            (
                "",
                ca_pem.as_str(),
                other_key.as_str(),
                "telemetry.exporter.tls.key_file",
                "does not fit",
                "key of another certificate",
            ),
        ];
        for (ca, cert, key, named, reason, why) in cases {
            let e = load_str(&yaml(ca, cert, key), "t.yaml", &no_env()).expect_err(why);
            assert_eq!(e.key, named, "{why}: {e}");
            assert!(e.reason.contains(reason), "{why}: {e}");
        }
        let env: HashMap<&str, &str> =
            [("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", not_pem.as_str())]
                .into_iter()
                .collect();
        let e = load_str(&yaml(&ca_pem, "", ""), "t.yaml", &env).unwrap_err();
        assert_eq!(e.key, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "{e}");
        assert!(e.reason.contains(&not_pem), "the path is named: {e}");
    }

    #[test]
    fn bad_otel_propagators_is_refused_with_the_variable_name() {
        for (v, words) in [
            ("tracecontext,xray", "not supported"),
            ("tracecontext,,b3", "empty"),
        ] {
            let env: HashMap<&str, &str> = [("OTEL_PROPAGATORS", v)].into_iter().collect();
            let e = load_str("listen: [\"127.0.0.1:1\"]\n", "t.yaml", &env).unwrap_err();
            assert_eq!(
                (e.file.as_str(), e.key.as_str()),
                ("environment", "OTEL_PROPAGATORS")
            );
            assert!(e.reason.contains(words), "{v}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
