//! The `telemetry` checks: the environment's overrides, refused variables and the exporter's TLS
//! files.

use super::super::load_str;
use crate::net::Trust;
use crate::trace::export::settings::{ExporterProtocol, TelemetrySettings};
use crate::trace::export::transport::Compression;
use crate::trace::sampling::Sampler;
use std::collections::HashMap;
use std::time::Duration;

fn no_env() -> HashMap<&'static str, &'static str> {
    HashMap::new()
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
    let env: HashMap<&str, &str> = [("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", not_pem.as_str())]
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
