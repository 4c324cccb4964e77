//! Every default of the config file, in one place, each documented where it is defined (and
//! named in the README's config reference).

use crate::net::Trust;
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
/// `server.path.normalize`: request paths are normalised before routing (RFC 3986 §6.2.2),
/// so a route sees the path the backend will read.
pub const PATH_NORMALIZE: bool = true;
/// `server.path.merge_slashes`: `//` is `/`, as Traefik and Envoy (`merge_slashes`) read it.
pub const PATH_MERGE_SLASHES: bool = true;
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
pub const FORWARDED_TRUSTED: Trust = Trust::None;
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
/// `admin.listen` when `admin` is there without it: loopback only, on Envoy's customary admin
/// port. Anything else is a choice to make knowingly (the admin shows the config and metrics).
pub const ADMIN_LISTEN: &str = "127.0.0.1:9901";
/// `server.threads`: worker threads; 0 in the file also means this.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
/// `access_log.path`: stdout when the key is there without a path (Traefik's default).
pub const ACCESS_LOG_PATH: &str = "stdout";
/// `access_log.format`: one JSON object per line.
pub const ACCESS_LOG_FORMAT: &str = "json";
/// `access_log.queue_size`: lines waiting for the writer before new ones are dropped; about
/// 2 s of lines at 4000 req/s, and at most ~5 MiB of JSON lines.
pub const ACCESS_LOG_QUEUE_SIZE: usize = 8192;
