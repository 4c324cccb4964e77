//! The checked, typed configuration ([`Config`]), built from the file structs by one check per
//! top-level key, each in its own file: `listen` ([`super::listeners`]), `server`, `telemetry`,
//! `routes`, `forwarded`, `upstreams`, `admin` and `access_log`; `server.path` goes to the
//! router ([`super::path`]).
//! Environment variables (`OTEL_*`, OpenTelemetry's standard names) override file values.
//! Every default lives in [`super::defaults`].

use super::check::Ctx;
use super::file::FileConfig;
use super::server::ServerSettings;
use super::{ConfigError, Env};
use crate::admin::AdminSettings;
use crate::listeners::ListenerSpec;
use crate::observe::access_log::AccessLogSettings;
use crate::routing::Router;
use crate::trace::export::settings::TelemetrySettings;
use crate::upstream::UpstreamSpec;

/// The whole checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The listeners, in `listen` order: addresses (port 0 asks the OS for a free port), TLS
    /// and protocol settings.
    pub listeners: Vec<ListenerSpec>,
    pub server: ServerSettings,
    pub telemetry: TelemetrySettings,
    pub router: Router,
    /// Upstream pools, indexed by `RouteAction::Proxy::upstream`.
    pub upstreams: Vec<UpstreamSpec>,
    /// The admin listener, when `admin` is there.
    pub admin: Option<AdminSettings>,
    /// The config file's text as loaded (empty for a config built from file structs), for the
    /// admin listener's `/config`, which shows it with its secrets redacted
    /// ([`super::dump`]).
    pub source: std::sync::Arc<str>,
    /// `None`: no access log.
    pub access_log: Option<AccessLogSettings>,
    /// `middlewares`, indexed by `Route::middlewares`.
    pub middlewares: Vec<crate::middleware::MiddlewareSpec>,
}

impl Config {
    /// Checks the file structs and applies environment overrides.
    pub fn from_file(f: FileConfig, file: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let c = Ctx { file };
        let listeners = super::listeners::check_listen(&c, &f.listen)?;
        let server = super::server::check_server(&c, &f.server)?;
        let telemetry = super::telemetry::check_telemetry(&c, &f, env)?;
        let access_log =
            super::access_log::check_access_log(&c, &f.access_log, &telemetry.options.capture)?;
        let (upstreams, index) = super::upstreams::check_upstreams(&c, &f.upstreams)?;
        let path_policy = super::path::check_path_policy(&c, &f.server.path)?;
        let (middlewares, by_name) = super::middlewares::check_middlewares(&c, &f.middlewares)?;
        let routes = super::routes::check_routes(&c, &f.routes, &index, &by_name)?;
        super::path::check_route_paths(&c, &routes, &path_policy)?;
        let router = Router::new(routes)
            .with_forwarded(super::forwarded::check_forwarded(&c, &f.forwarded)?)
            .with_path_policy(path_policy);
        let admin = super::admin::check_admin(&c, f.admin.as_ref(), &listeners)?;
        Ok(Config {
            listeners,
            server,
            telemetry,
            router,
            upstreams,
            admin,
            access_log,
            middlewares,
            source: std::sync::Arc::from(""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use crate::trace::export::settings::ExporterProtocol;
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
        assert_eq!(
            c.listeners.iter().map(|l| l.addr).collect::<Vec<_>>(),
            vec!["127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap()]
        );
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
}

#[cfg(test)]
mod range_tests {
    use super::super::load_str;
    use std::collections::HashMap;

    /// Every number is bounded at load, so nothing `--check` accepts overflows at run time.
    #[test]
    fn out_of_range_numbers_table() {
        let env: HashMap<&str, &str> = HashMap::new();
        let up = |extra: &str| {
            format!("listen: [\"127.0.0.1:1\"]\nupstreams: {{ a: {{ backends: [\"127.0.0.1:9\"], {extra} }} }}\n")
        };
        let top = |extra: &str| format!("listen: [\"127.0.0.1:1\"]\n{extra}\n");
        // (yaml, key, words in the reason, why)
        let cases: Vec<(String, &str, &str, &str)> = vec![
            (
                up("timeout: 9223372036854775807s"),
                "upstreams.a.timeout",
                "too long: at most 24h",
                "Instant + Duration overflowed on every request",
            ),
            (
                top("server: { threads: 18446744073709551615 }"),
                "server.threads",
                "too large: at most 1024",
                "panicked at start",
            ),
            (
                top("server: { threads: 1025 }"),
                "server.threads",
                "at most 1024",
                "one thread over",
            ),
            (
                up("timeout: 25h"),
                "upstreams.a.timeout",
                "at most 24h",
                "total timeout over a day",
            ),
            (
                up("timeout: 0s"),
                "upstreams.a.timeout",
                "greater than zero",
                "zero total timeout",
            ),
            (
                up("connect_timeout: 61m"),
                "upstreams.a.connect_timeout",
                "at most 1h",
                "connect over an hour",
            ),
            (
                up("read_timeout: 86401s"),
                "upstreams.a.read_timeout",
                "at most 24h",
                "read over a day",
            ),
            (
                up("write_timeout: 1441m"),
                "upstreams.a.write_timeout",
                "at most 24h",
                "write over a day",
            ),
            (
                up("fail_timeout: 25h"),
                "upstreams.a.fail_timeout",
                "at most 24h",
                "ejection over a day",
            ),
            (
                up("max_fails: 1001"),
                "upstreams.a.max_fails",
                "at most 1000",
                "failures in a row",
            ),
            (
                up("health_check: { interval: 25h }"),
                "upstreams.a.health_check.interval",
                "at most 24h",
                "probe interval",
            ),
            (
                up("health_check: { timeout: 2h }"),
                "upstreams.a.health_check.timeout",
                "at most 1h",
                "probe timeout",
            ),
            (
                up("health_check: { healthy_threshold: 1001 }"),
                "upstreams.a.health_check.healthy_threshold",
                "at most 1000",
                "rise",
            ),
            (
                up("health_check: { unhealthy_threshold: 0 }"),
                "upstreams.a.health_check.unhealthy_threshold",
                "at least 1",
                "fall",
            ),
            (
                top("server: { grace_period: 2h }"),
                "server.grace_period",
                "at most 1h",
                "grace period",
            ),
            (
                top("server: { shutdown_timeout: 61m }"),
                "server.shutdown_timeout",
                "at most 1h",
                "shutdown",
            ),
            (
                top("server: { watch_interval: 99ms }"),
                "server.watch_interval",
                "at least 100ms",
                "watch interval floor",
            ),
            (
                top("server: { watch_interval: 2h }"),
                "server.watch_interval",
                "at most 1h",
                "watch interval ceiling",
            ),
            (
                top("server: { grace_period: 18446744073709551615h }"),
                "server.grace_period",
                "too long",
                "hours that overflow u64 seconds",
            ),
            (
                top("telemetry: { keep: { slower_than: 25h } }"),
                "telemetry.keep.slower_than",
                "at most 24h",
                "keep rule",
            ),
            (
                top("telemetry: { exporter: { timeout: 2h } }"),
                "telemetry.exporter.timeout",
                "at most 1h",
                "export call",
            ),
            (
                top("telemetry: { exporter: { timeout: 0ms } }"),
                "telemetry.exporter.timeout",
                "greater than zero",
                "zero export timeout",
            ),
            (
                top("telemetry: { batch: { max_queue_size: 1048577 } }"),
                "telemetry.batch.max_queue_size",
                "at most 1048576",
                "queue allocated up front",
            ),
            (
                top("telemetry: { batch: { max_queue_size: 0 } }"),
                "telemetry.batch.max_queue_size",
                "at least 1",
                "empty queue",
            ),
            (
                top("telemetry: { batch: { max_export_batch_size: 65537 } }"),
                "telemetry.batch.max_export_batch_size",
                "at most 65536",
                "batch size",
            ),
            (
                top("telemetry: { batch: { scheduled_delay: 0s } }"),
                "telemetry.batch.scheduled_delay",
                "greater than zero",
                "a zero delay spins",
            ),
            (
                top("telemetry: { batch: { export_timeout: 2h } }"),
                "telemetry.batch.export_timeout",
                "at most 1h",
                "pipeline export limit",
            ),
            (
                top(&format!(
                    "a: {}1{}",
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                )),
                "",
                "nested more than 32 levels deep at line 2",
                "100,000-deep nesting is refused before the parser",
            ),
        ];
        for (yaml, key, words, why) in &cases {
            let e = load_str(yaml, "t.yaml", &env).expect_err(why);
            assert_eq!(&e.key, key, "{why}: {e}");
            assert!(e.reason.contains(words), "{why}: {e}");
        }
        let hash = format!(
            "listen: [\"127.0.0.1:1\"]\nupstreams: {{ a: {{ lb: hash, hash_on: client_ip, backends: [{}] }} }}\n",
            (0..400)
                .map(|i| format!("{{ addr: \"10.0.{}.{}:80\", weight: 256 }}", i / 256, i % 256))
                .collect::<Vec<_>>()
                .join(",")
        );
        let e = load_str(&hash, "t.yaml", &env).expect_err("hash ring too large");
        assert_eq!(e.key, "upstreams.a.backends", "{e}");
        assert!(e.reason.contains("add up to 102400: at most 100000"), "{e}");
        // The largest value of each range loads.
        let max = "listen: [\"127.0.0.1:1\"]\nserver: { threads: 1024, grace_period: 1h, shutdown_timeout: 1h, watch_interval: 1h }\ntelemetry: { keep: { slower_than: 24h }, exporter: { protocol: none, timeout: 1h }, batch: { max_queue_size: 1048576, max_export_batch_size: 65536, scheduled_delay: 1h, export_timeout: 1h } }\nupstreams: { a: { backends: [\"127.0.0.1:9\"], timeout: 24h, connect_timeout: 1h, read_timeout: 24h, write_timeout: 24h, fail_timeout: 24h, max_fails: 1000, retries: 15, health_check: { interval: 24h, timeout: 1h, healthy_threshold: 1000, unhealthy_threshold: 1000 } } }\n";
        load_str(max, "t.yaml", &env).expect("every maximum is accepted");
    }

    #[test]
    fn environment_numbers_are_bounded_too() {
        for (var, value, words) in [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999", "at most 1048576"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "65537", "at most 65536"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0", "greater than zero"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "3600001", "at most 1h"),
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "18446744073709551615",
                "at most 1h",
            ),
        ] {
            let env: HashMap<&str, &str> = [(var, value)].into_iter().collect();
            let e = load_str(
                "listen: [\"127.0.0.1:1\"]\ntelemetry: { exporter: { protocol: grpc } }\n",
                "t.yaml",
                &env,
            )
            .expect_err(var);
            assert_eq!(
                (e.file.as_str(), e.key.as_str()),
                ("environment", var),
                "{e}"
            );
            assert!(e.reason.contains(words), "{var}: {e}");
        }
    }
}

#[cfg(test)]
mod file_tests {
    use super::super::{load, load_str};
    use std::collections::HashMap;
    use std::path::Path;

    /// Every file the config names, and the config file itself, is refused at once when it is
    /// a FIFO, a device or too large: each call below returns (none blocks on the FIFO or reads
    /// `/dev/zero` until memory runs out), naming the key and the path.
    #[test]
    fn non_regular_and_oversized_files_are_refused_with_key_and_path() {
        let env: HashMap<&str, &str> = HashMap::new();
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.pem");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs")
            .success());
        let fifo = fifo.display().to_string();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'#'; (crate::files::PEM_MAX_BYTES + 1) as usize]).unwrap();
        let big = big.display().to_string();
        let listen_tls = |cert: &str, key: &str| {
            format!("listen: [{{ addr: \"127.0.0.1:1\", tls: {{ certificates: [{{ cert_file: \"{cert}\", key_file: \"{key}\" }}] }} }}]\n")
        };
        let up_tls = |tls: &str| {
            format!("listen: [\"127.0.0.1:1\"]\nupstreams: {{ a: {{ backends: [\"127.0.0.1:9\"], tls: {tls} }} }}\n")
        };
        let exp_tls = |tls: &str| {
            format!("listen: [\"127.0.0.1:1\"]\ntelemetry: {{ exporter: {{ protocol: grpc, endpoint: \"https://127.0.0.1:4317\", tls: {tls} }} }}\n")
        };
        // (yaml, key, path, words, why)
        let cases: Vec<(String, &str, &str, &str, &str)> = vec![
            (
                listen_tls(&fifo, "/dev/zero"),
                "listen[0].tls.certificates[0].cert_file",
                &fifo,
                "a FIFO",
                "listener certificate is a FIFO",
            ),
            (
                listen_tls(&big, "/dev/zero"),
                "listen[0].tls.certificates[0].cert_file",
                &big,
                "too large",
                "listener certificate over 1 MiB",
            ),
            (
                up_tls("{ ca_file: /dev/zero }"),
                "upstreams.a.tls.ca_file",
                "/dev/zero",
                "a character device",
                "upstream CA is /dev/zero",
            ),
            (
                up_tls(&format!("{{ ca_file: \"{fifo}\" }}")),
                "upstreams.a.tls.ca_file",
                &fifo,
                "a FIFO",
                "upstream CA is a FIFO",
            ),
            (
                up_tls("{ cert_file: /dev/urandom, key_file: /dev/zero }"),
                "upstreams.a.tls.cert_file",
                "/dev/urandom",
                "a character device",
                "upstream client certificate is /dev/urandom",
            ),
            (
                exp_tls("{ ca_file: /dev/urandom }"),
                "telemetry.exporter.tls.ca_file",
                "/dev/urandom",
                "a character device",
                "exporter CA is /dev/urandom",
            ),
            (
                exp_tls(&format!("{{ ca_file: \"{fifo}\" }}")),
                "telemetry.exporter.tls.ca_file",
                &fifo,
                "a FIFO",
                "exporter CA is a FIFO",
            ),
            (
                exp_tls("{ ca_file: /tmp }"),
                "telemetry.exporter.tls.ca_file",
                "/tmp",
                "a directory",
                "exporter CA is a directory",
            ),
        ];
        for (yaml, key, path, words, why) in &cases {
            let e = load_str(yaml, "t.yaml", &env).expect_err(why);
            assert_eq!(&e.key, key, "{why}: {e}");
            assert!(
                e.reason.contains(words) && e.reason.contains(path),
                "{why}: {e}"
            );
        }

        let big_config = dir.path().join("big.yaml");
        let mut text = String::from("listen: [\"127.0.0.1:1\"]\n");
        text.push_str(&"#".repeat(crate::files::CONFIG_MAX_BYTES as usize));
        std::fs::write(&big_config, text).unwrap();
        for (path, words, why) in [
            (Path::new(&fifo), "a FIFO", "the config file is a FIFO"),
            (
                Path::new("/dev/zero"),
                "a character device",
                "the config file is /dev/zero",
            ),
            (dir.path(), "a directory", "the config file is a directory"),
            (
                big_config.as_path(),
                "too large",
                "the config file is over 16 MiB",
            ),
        ] {
            let e = load(path, &env).expect_err(why);
            assert_eq!(e.file, path.display().to_string(), "{why}");
            assert!(e.reason.contains(words), "{why}: {e}");
        }
    }
}

#[cfg(test)]
mod scale_tests {
    use super::super::load_str;
    use std::collections::HashMap;

    /// 100,000 routes over 1,000 upstreams of 300 backends each (literal addresses, so no
    /// resolver is asked): every check is linear, so this loads (in well under 2 s in a
    /// release build; the figure is in the README).
    #[test]
    fn a_config_of_100k_routes_and_300k_backends_loads() {
        let mut text = String::from("listen: [\"127.0.0.1:1\"]\nroutes:\n");
        for i in 0..100_000 {
            text.push_str(&format!(
                "  - {{ name: r{i}, match: {{ host: h{i}.example.com, path_prefix: /p{i}/ }}, upstream: u{} }}\n",
                i % 1000
            ));
        }
        text.push_str("upstreams:\n");
        for u in 0..1000 {
            let backends: Vec<String> = (0..300)
                .map(|k| format!("\"10.{}.{}.{}:{}\"", u / 256, u % 256, k % 256, 8000 + k))
                .collect();
            text.push_str(&format!(
                "  u{u}: {{ backends: [{}] }}\n",
                backends.join(",")
            ));
        }
        let env: HashMap<&str, &str> = HashMap::new();
        let c = load_str(&text, "big.yaml", &env).expect("loads");
        assert_eq!(c.router.routes().len(), 100_000);
        assert_eq!(
            c.upstreams.iter().map(|u| u.backends.len()).sum::<usize>(),
            300_000
        );
    }
}
