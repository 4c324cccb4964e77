//! The checked, typed configuration, and the conversion from the file structs.
//!
//! Every default lives in [`defaults`], documented where it is defined. Environment variables
//! (`OTEL_*`, OpenTelemetry's standard names) override file values.

use super::file::{FileCapture, FileConfig, FileRoute, FileTrust, FileUpstream};
use super::{ConfigError, Env};
use crate::routing::{Route, RouteAction, Router};
use crate::trace::capture::{Capture, QueryMode};
use crate::trace::exporter::{ExporterProtocol, ExporterSettings, TelemetrySettings};
use crate::trace::pipeline::PipelineSettings;
use crate::trace::propagation::Propagators;
use crate::trace::sampling::{check_ratio, Sampler};
use crate::trace::trust::{Cidr, Trust};
use crate::trace::TraceOptions;
use crate::upstream::UpstreamTimeouts;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
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
    /// `upstreams.*.connect_timeout` (Envoy's default is 5 s, nginx's 60 s).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// `upstreams.*.read_timeout`: as nginx `proxy_read_timeout`.
    pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
    /// `upstreams.*.write_timeout`: as nginx `proxy_send_timeout`.
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
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
}

/// One checked upstream pool.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    pub name: String,
    pub backends: Vec<SocketAddr>,
    pub timeouts: UpstreamTimeouts,
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn duration(
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
        "stdout" => Ok(ExporterProtocol::Stdout),
        "none" => Ok(ExporterProtocol::None),
        "http/json" => Err("http/json is not supported; use grpc or http/protobuf".into()),
        other => Err(format!(
            "unknown protocol {other:?}: expected grpc, http/protobuf, stdout or none"
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

fn check_endpoint(s: &str) -> Result<(), String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "unsupported URL {s:?}: TLS to the collector is not available yet; use http://"
            ))
        }
        _ => return Err(format!("invalid URL {s:?}: the scheme must be http")),
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
        let listen = check_listen(&c, &f.listen)?;
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
        };
        let telemetry = telemetry(&c, &f, env)?;
        let (upstreams, index) = check_upstreams(&c, &f.upstreams)?;
        let router = Router::new(check_routes(&c, &f.routes, &index)?);
        Ok(Config {
            listen,
            server,
            telemetry,
            router,
            upstreams,
        })
    }
}

fn check_listen(c: &Ctx<'_>, listen: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    if listen.is_empty() {
        return Err(c.err(
            "listen",
            "at least one address is required, e.g. [\"127.0.0.1:8080\"]",
        ));
    }
    let mut out: Vec<SocketAddr> = Vec::with_capacity(listen.len());
    for (i, a) in listen.iter().enumerate() {
        let addr: SocketAddr = a.trim().parse().map_err(|_| {
            c.err(
                format!("listen[{i}]"),
                format!("invalid address {a:?}: expected IP:port, e.g. 0.0.0.0:8080 or [::]:8080"),
            )
        })?;
        if addr.port() != 0 && out.contains(&addr) {
            return Err(c.err(format!("listen[{i}]"), format!("{a} is listed twice")));
        }
        out.push(addr);
    }
    Ok(out)
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
            "otlp" if matches!(protocol, ExporterProtocol::Stdout | ExporterProtocol::None) => {
                ExporterProtocol::Grpc
            }
            "otlp" => protocol,
            "console" => ExporterProtocol::Stdout,
            "none" => ExporterProtocol::None,
            other => {
                return Err(env_err(
                    "OTEL_TRACES_EXPORTER",
                    format!("unsupported exporter {other:?}: expected otlp, console or none"),
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
        ExporterProtocol::Stdout | ExporterProtocol::None => String::new(),
    };

    let mut timeout = c.duration(
        "telemetry.exporter.timeout",
        &t.exporter.timeout,
        defaults::EXPORT_TIMEOUT,
    )?;
    for k in [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ] {
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
    let trust = match &t.trust_incoming {
        None => Trust::All,
        Some(FileTrust::Word(w)) => match w.trim() {
            "all" => Trust::All,
            "none" => Trust::None,
            other => {
                return Err(c.err(
                    "telemetry.trust_incoming",
                    format!("{other:?}: expected all, none or a list of networks"),
                ))
            }
        },
        Some(FileTrust::Networks(nets)) => Trust::Networks(
            nets.iter()
                .enumerate()
                .map(|(i, n)| {
                    Cidr::parse(n).map_err(|e| c.err(format!("telemetry.trust_incoming[{i}]"), e))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
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
        },
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

fn check_upstreams(
    c: &Ctx<'_>,
    ups: &std::collections::BTreeMap<String, FileUpstream>,
) -> Result<(Vec<UpstreamSpec>, HashMap<String, usize>), ConfigError> {
    let mut out = Vec::with_capacity(ups.len());
    let mut index = HashMap::new();
    for (name, u) in ups {
        let key = format!("upstreams.{name}");
        if u.backends.is_empty() {
            return Err(c.err(
                format!("{key}.backends"),
                "at least one backend is required",
            ));
        }
        let mut backends = Vec::with_capacity(u.backends.len());
        for (i, b) in u.backends.iter().enumerate() {
            backends
                .push(resolve_backend(b).map_err(|r| c.err(format!("{key}.backends[{i}]"), r))?);
        }
        let timeouts = UpstreamTimeouts {
            connect: c.duration(
                &format!("{key}.connect_timeout"),
                &u.connect_timeout,
                defaults::CONNECT_TIMEOUT,
            )?,
            read: c.duration(
                &format!("{key}.read_timeout"),
                &u.read_timeout,
                defaults::READ_TIMEOUT,
            )?,
            write: c.duration(
                &format!("{key}.write_timeout"),
                &u.write_timeout,
                defaults::WRITE_TIMEOUT,
            )?,
        };
        for (k, d) in [
            ("connect_timeout", timeouts.connect),
            ("read_timeout", timeouts.read),
            ("write_timeout", timeouts.write),
        ] {
            if d.is_zero() {
                return Err(c.err(format!("{key}.{k}"), "must be greater than zero"));
            }
        }
        index.insert(name.clone(), out.len());
        out.push(UpstreamSpec {
            name: name.clone(),
            backends,
            timeouts,
        });
    }
    Ok((out, index))
}

/// A backend is `host:port`; a host name is resolved once, at load time (as nginx does
/// without a `resolver`), and the first address is used.
fn resolve_backend(b: &str) -> Result<SocketAddr, String> {
    let b = b.trim();
    if let Ok(a) = b.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!("invalid backend {b:?}: port 0"));
        }
        return Ok(a);
    }
    let (host, port) = crate::routing::split_host_port(b);
    if port.is_none() || host.is_empty() {
        return Err(format!(
            "invalid backend {b:?}: expected host:port, e.g. 10.0.0.1:8080"
        ));
    }
    b.to_socket_addrs()
        .map_err(|e| format!("cannot resolve backend {b:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve backend {b:?}: no address"))
}

fn check_routes(
    c: &Ctx<'_>,
    routes: &[FileRoute],
    upstreams: &HashMap<String, usize>,
) -> Result<Vec<Route>, ConfigError> {
    let mut out: Vec<Route> = Vec::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = r.name.trim();
        if name.is_empty() {
            return Err(c.err(format!("{key}.name"), "must not be empty"));
        }
        if out.iter().any(|o| &*o.name == name) {
            return Err(c.err(
                format!("{key}.name"),
                format!("route name {name:?} is used twice"),
            ));
        }
        let host = match &r.match_.host {
            None => None,
            Some(h) => {
                let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                if h.is_empty() || h.contains(['/', ' ', ':']) {
                    return Err(c.err(
                        format!("{key}.match.host"),
                        format!(
                            "invalid host {:?}: expected a host name without port",
                            r.match_.host.as_deref().unwrap_or("")
                        ),
                    ));
                }
                Some(h)
            }
        };
        let path_prefix = match &r.match_.path_prefix {
            Some(p) if !p.starts_with('/') => {
                return Err(c.err(
                    format!("{key}.match.path_prefix"),
                    format!("{p:?} must start with '/'"),
                ));
            }
            p => p.clone(),
        };
        let action = match (&r.upstream, &r.respond) {
            (Some(_), Some(_)) => {
                return Err(c.err(key, "set either upstream or respond, not both"));
            }
            (None, None) => {
                return Err(c.err(key, "needs an action: upstream or respond"));
            }
            (Some(u), None) => {
                let Some(&idx) = upstreams.get(u) else {
                    let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                    return Err(c.err(
                        format!("{key}.upstream"),
                        format!(
                            "no upstream named {u:?} (defined: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                };
                let strip_prefix = match &r.strip_prefix {
                    Some(p) if !p.starts_with('/') => {
                        return Err(c.err(
                            format!("{key}.strip_prefix"),
                            format!("{p:?} must start with '/'"),
                        ));
                    }
                    p => p.clone(),
                };
                RouteAction::Proxy {
                    upstream: idx,
                    strip_prefix,
                }
            }
            (None, Some(resp)) => {
                if r.strip_prefix.is_some() {
                    return Err(c.err(
                        format!("{key}.strip_prefix"),
                        "only applies to routes with an upstream",
                    ));
                }
                if !(200..=599).contains(&resp.status) {
                    return Err(c.err(
                        format!("{key}.respond.status"),
                        format!("{} is not a status between 200 and 599", resp.status),
                    ));
                }
                RouteAction::Respond {
                    status: resp.status,
                    body: Bytes::from(resp.body.clone()),
                }
            }
        };
        let sample_ratio = match r.sample_ratio {
            None => None,
            Some(x) => Some(check_ratio(x).map_err(|e| c.err(format!("{key}.sample_ratio"), e))?),
        };
        out.push(Route {
            name: name.into(),
            host,
            path_prefix,
            action,
            sample_ratio,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;

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
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: zipkin}}\n", "telemetry.exporter.protocol", "unknown protocol", "unknown exporter protocol"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, endpoint: \"127.0.0.1:4317\"}}\n", "telemetry.exporter.endpoint", "scheme", "endpoint without scheme"),
            ("listen: [\"127.0.0.1:1\"]\ntelemetry: {exporter: {protocol: grpc, endpoint: \"https://collector:4317\"}}\n", "telemetry.exporter.endpoint", "TLS", "https is refused at load, not on every export"),
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
