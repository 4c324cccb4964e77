//! The checked, typed configuration ([`Config`]), built from the file structs by one check per
//! top-level key, each in its own file: `listen` ([`super::listeners`]), `server`, `telemetry`,
//! `routes`, `forwarded` and `upstreams`; `server.path` goes to the router ([`super::path`]).
//! Environment variables (`OTEL_*`, OpenTelemetry's standard names) override file values.
//! Every default lives in [`super::defaults`].

use super::check::Ctx;
use super::file::FileConfig;
use super::server::ServerSettings;
use super::{ConfigError, Env};
use crate::listeners::ListenerSpec;
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
}

impl Config {
    /// Checks the file structs and applies environment overrides.
    pub fn from_file(f: FileConfig, file: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let c = Ctx { file };
        let listeners = super::listeners::check_listen(&c, &f.listen)?;
        let server = super::server::check_server(&c, &f.server)?;
        let telemetry = super::telemetry::check_telemetry(&c, &f, env)?;
        let (upstreams, index) = super::upstreams::check_upstreams(&c, &f.upstreams)?;
        let path_policy = super::path::check_path_policy(&c, &f.server.path)?;
        let routes = super::routes::check_routes(&c, &f.routes, &index)?;
        super::path::check_route_paths(&c, &routes, &path_policy)?;
        let router = Router::new(routes)
            .with_forwarded(super::forwarded::check_forwarded(&c, &f.forwarded)?)
            .with_path_policy(path_policy);
        Ok(Config {
            listeners,
            server,
            telemetry,
            router,
            upstreams,
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
