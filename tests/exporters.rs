//! End-to-end tests of the exporter settings: OTLP headers, gzip, TLS with a CA file, Zipkin
//! v2 JSON and resource attributes. The real `tracegate` binary exports to real receivers
//! started by each test; assertions are on what crosses the wire (headers, compression, the
//! decoded spans and resource) and on what the process prints.

mod common;

use common::{
    http_get, one_upstream, run_check, run_check_with_env, AttrValue, OtlpReceiver, Proxy,
    ReceivedSpan, TestCa, Upstream, ZipkinReceiver,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Environment variables for one case.
type Env<'a> = Vec<(&'a str, &'a str)>;

/// An API key that must reach the collector and nothing else.
const SECRET: &str = "s3cr3t-key-7f1c";

/// A config exporting with `exporter` (the YAML inside `exporter: { ... }`) and `extra`
/// telemetry keys, proxying everything to `up`.
fn config(up: &Upstream, exporter: &str, extra: &str) -> String {
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  service_name: edge-test
  exporter: {{ {exporter} }}
  batch: {{ scheduled_delay: 50ms }}
{extra}
{}"#,
        one_upstream(up)
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One request through the proxy with a known incoming parent; returns its server and client
/// spans after checking they form one trace under that parent.
fn one_traced_request(proxy: &Proxy, rx: &OtlpReceiver) -> (ReceivedSpan, ReceivedSpan) {
    let resp = http_get(
        &proxy.addr(),
        "/items/1",
        &[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )],
    );
    assert_eq!(resp.status, 200);
    let spans = rx.wait_for_spans(2, WAIT);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = spans.iter().find(|s| s.is_server()).expect("server span");
    let client = spans.iter().find(|s| s.is_client()).expect("client span");
    assert_eq!(server.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(server.parent_span_id, "b7ad6b7169203331");
    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(server.name, "GET all");
    assert_eq!(server.attr_str("http.request.method"), Some("GET"));
    (server.clone(), client.clone())
}

/// Configured headers arrive with every export, over both transports, and their values are
/// never printed by the proxy.
#[test]
fn headers_arrive_as_grpc_metadata_and_http_headers() {
    // (receiver, protocol, how the header is configured: file YAML or env, why)
    let cases: [(OtlpReceiver, &str, bool, &str); 2] = [
        (
            OtlpReceiver::grpc(),
            "grpc",
            false,
            "gRPC metadata from the file",
        ),
        (
            OtlpReceiver::http(),
            "http/protobuf",
            true,
            "HTTP headers from OTEL_EXPORTER_OTLP_HEADERS, percent-decoded",
        ),
    ];
    for (rx, protocol, from_env, why) in cases {
        let up = Upstream::start("b1");
        let exporter = format!(
            r#"protocol: {protocol}, endpoint: "{}", headers: {{ X-Api-Key: "{SECRET}", x-file-only: yes }}"#,
            rx.endpoint()
        );
        let env_value = format!("x-api-key={SECRET}%20env,x-tenant=edge%2Cteam");
        let env: Vec<(&str, &str)> = if from_env {
            vec![("OTEL_EXPORTER_OTLP_HEADERS", env_value.as_str())]
        } else {
            vec![]
        };
        let proxy = Proxy::start_with_env(&config(&up, &exporter, ""), &env);
        one_traced_request(&proxy, &rx);
        let headers = rx.request_headers();
        let h = &headers[0];
        if from_env {
            assert_eq!(
                header(h, "x-api-key"),
                Some(format!("{SECRET} env").as_str()),
                "{why}: {h:?}"
            );
            assert_eq!(header(h, "x-tenant"), Some("edge,team"), "{why}: {h:?}");
            assert_eq!(
                header(h, "x-file-only"),
                None,
                "{why}: the environment replaces the file's headers: {h:?}"
            );
        } else {
            assert_eq!(header(h, "x-api-key"), Some(SECRET), "{why}: {h:?}");
            assert_eq!(header(h, "x-file-only"), Some("yes"), "{why}: {h:?}");
        }
        assert!(!proxy.logs().contains(SECRET), "{why}: {}", proxy.logs());
    }
}

/// gzip compression: the bodies arrive compressed and decode to the right spans.
#[test]
fn gzip_arrives_compressed_and_decodes_to_the_spans() {
    // (receiver, protocol, file compression, env, why)
    let cases: [(OtlpReceiver, &str, &str, Env, &str); 3] = [
        (
            OtlpReceiver::grpc(),
            "grpc",
            "gzip",
            vec![],
            "gRPC, from the file",
        ),
        (
            OtlpReceiver::http(),
            "http/protobuf",
            "none",
            vec![("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")],
            "HTTP, the _TRACES_ variable overrides the file",
        ),
        (
            OtlpReceiver::http(),
            "http/protobuf",
            "none",
            vec![],
            "HTTP, off",
        ),
    ];
    for (rx, protocol, compression, env, why) in cases {
        let up = Upstream::start("b1");
        let exporter = format!(
            r#"protocol: {protocol}, endpoint: "{}", compression: {compression}"#,
            rx.endpoint()
        );
        let proxy = Proxy::start_with_env(&config(&up, &exporter, ""), &env);
        let (_, client) = one_traced_request(&proxy, &rx);
        assert_eq!(
            client.attr_int("http.response.status_code"),
            Some(200),
            "{why}"
        );
        let want = why != "HTTP, off";
        assert_eq!(rx.compressed(), vec![want], "{why}");
        if protocol == "grpc" {
            assert_eq!(
                header(&rx.request_headers()[0], "grpc-encoding"),
                Some("gzip"),
                "{why}"
            );
        }
    }
}

/// TLS: a collector whose certificate is signed by a private CA is reached when the proxy is
/// given that CA (file key for gRPC, OTEL_EXPORTER_OTLP_CERTIFICATE for HTTP).
#[test]
fn tls_with_a_ca_file() {
    let ca = TestCa::new();
    let ca_path = ca.ca_path().display().to_string();
    // (receiver, protocol, tls YAML, env, why)
    let cases: [(OtlpReceiver, &str, String, Env, &str); 2] = [
        (
            OtlpReceiver::grpc_tls(&ca),
            "grpc",
            format!(r#", tls: {{ ca_file: "{ca_path}" }}"#),
            vec![],
            "gRPC with telemetry.exporter.tls.ca_file",
        ),
        (
            OtlpReceiver::http_tls(&ca),
            "http/protobuf",
            String::new(),
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_path.as_str())],
            "HTTP with OTEL_EXPORTER_OTLP_CERTIFICATE",
        ),
    ];
    for (rx, protocol, tls, env, why) in cases {
        assert!(rx.endpoint().starts_with("https://"), "{why}");
        let up = Upstream::start("b1");
        let exporter = format!(
            r#"protocol: {protocol}, endpoint: "{}"{tls}"#,
            rx.endpoint()
        );
        let proxy = Proxy::start_with_env(&config(&up, &exporter, ""), &env);
        one_traced_request(&proxy, &rx);
        assert_eq!(rx.service_names()[0], "edge-test", "{why}");
    }
}

/// A collector that requires a client certificate gets the configured one (file keys for
/// gRPC, the `OTEL_EXPORTER_OTLP_TRACES_CLIENT_*` variables for HTTP); without it, nothing
/// arrives.
#[test]
fn tls_client_certificate() {
    let ca = TestCa::new();
    let ca_path = ca.ca_path().display().to_string();
    let (cert, key) = ca.client_files();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    // (receiver, protocol, tls YAML, env, spans expected, why)
    let cases: [(OtlpReceiver, &str, String, Env, bool, &str); 3] = [
        (
            OtlpReceiver::grpc_mtls(&ca),
            "grpc",
            format!(r#"ca_file: "{ca_path}", cert_file: "{cert}", key_file: "{key}""#),
            vec![],
            true,
            "gRPC, client certificate from the file",
        ),
        (
            OtlpReceiver::http_mtls(&ca),
            "http/protobuf",
            format!(r#"ca_file: "{ca_path}""#),
            vec![
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                    cert.as_str(),
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key.as_str()),
            ],
            true,
            "HTTP, client certificate from the environment",
        ),
        (
            OtlpReceiver::http_mtls(&ca),
            "http/protobuf",
            format!(r#"ca_file: "{ca_path}""#),
            vec![],
            false,
            "HTTP, no client certificate: refused by the collector",
        ),
    ];
    for (rx, protocol, tls, env, delivered, why) in cases {
        let up = Upstream::start("b1");
        let exporter = format!(
            r#"protocol: {protocol}, endpoint: "{}", tls: {{ {tls} }}"#,
            rx.endpoint()
        );
        let proxy = Proxy::start_with_env(&config(&up, &exporter, ""), &env);
        if delivered {
            one_traced_request(&proxy, &rx);
        } else {
            assert_eq!(http_get(&proxy.addr(), "/x", &[]).status, 200, "{why}");
            proxy.wait_for_log("span export failed", WAIT);
            assert_eq!(rx.spans().len(), 0, "{why}");
        }
    }
}

/// Without the CA, the collector's certificate is not trusted: export fails, requests are
/// still served, and the proxy says why.
#[test]
fn tls_without_the_ca_fails_export_but_not_requests() {
    let ca = TestCa::new();
    let rx = OtlpReceiver::grpc_tls(&ca);
    let up = Upstream::start("b1");
    let exporter = format!(r#"protocol: grpc, endpoint: "{}""#, rx.endpoint());
    let proxy = Proxy::start(&config(&up, &exporter, ""));
    for _ in 0..3 {
        assert_eq!(http_get(&proxy.addr(), "/x", &[]).status, 200);
    }
    let logs = proxy.wait_for_log("span export failed", WAIT);
    assert!(
        logs.to_ascii_lowercase().contains("certificate"),
        "the log names the certificate problem:\n{logs}"
    );
    assert_eq!(rx.spans().len(), 0);
}

/// Zipkin v2 JSON: ids, parent links, kinds, names, tags and the service name, as a Zipkin
/// collector reads them.
#[test]
fn zipkin_spans_and_parent_links() {
    // (config exporter YAML, env, expected service name, why)
    let zk_file = ZipkinReceiver::start();
    let zk_env = ZipkinReceiver::start();
    let file_exporter = format!(r#"protocol: zipkin, endpoint: "{}""#, zk_file.endpoint());
    let env_endpoint = zk_env.endpoint();
    let cases: [(&ZipkinReceiver, String, Env, &str, &str); 2] = [
        (
            &zk_file,
            file_exporter,
            vec![],
            "edge-test",
            "protocol zipkin in the file",
        ),
        (
            &zk_env,
            "protocol: grpc".into(),
            vec![
                ("OTEL_TRACES_EXPORTER", "zipkin"),
                ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", env_endpoint.as_str()),
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=edge-from-attrs"),
            ],
            "edge-from-attrs",
            "OTEL_TRACES_EXPORTER=zipkin; service.name from OTEL_RESOURCE_ATTRIBUTES",
        ),
    ];
    for (zk, exporter, env, service, why) in cases {
        let up = Upstream::start("b1");
        let proxy = Proxy::start_with_env(&config(&up, &exporter, ""), &env);
        let resp = http_get(
            &proxy.addr(),
            "/items/1",
            &[(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )],
        );
        assert_eq!(resp.status, 200, "{why}");
        let spans = zk.wait_for_spans(2, WAIT);
        assert_eq!(spans.len(), 2, "{why}: {spans:#?}");
        let by_kind = |k: &str| {
            spans
                .iter()
                .find(|s| s["kind"] == k)
                .unwrap_or_else(|| panic!("{why}: no {k} span: {spans:#?}"))
        };
        let server = by_kind("SERVER");
        let client = by_kind("CLIENT");
        assert_eq!(
            server["traceId"], "0af7651916cd43dd8448eb211c80319c",
            "{why}"
        );
        assert_eq!(server["parentId"], "b7ad6b7169203331", "{why}");
        assert_eq!(client["traceId"], server["traceId"], "{why}");
        assert_eq!(
            client["parentId"], server["id"],
            "{why}: client under server"
        );
        let id = server["id"].as_str().unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{why}: {id}"
        );
        // The upstream's traceparent names the exported CLIENT span.
        let tp = up.requests()[0].header("traceparent").unwrap().to_owned();
        assert_eq!(
            tp.split('-').nth(2),
            client["id"].as_str(),
            "{why}: traceparent parent-id = CLIENT id"
        );
        assert_eq!(server["name"], "GET all", "{why}");
        assert_eq!(client["name"], "GET", "{why}");
        for s in [server, client] {
            assert_eq!(s["localEndpoint"]["serviceName"], service, "{why}");
            assert_eq!(s["tags"]["http.request.method"], "GET", "{why}");
            assert_eq!(s["tags"]["http.response.status_code"], "200", "{why}");
            assert!(
                s["timestamp"].as_u64().unwrap() > 1_600_000_000_000_000,
                "{why}"
            );
            assert!(s["duration"].as_u64().unwrap() >= 1, "{why}");
        }
        assert_eq!(server["tags"]["url.path"], "/items/1", "{why}");
        assert_eq!(client["remoteEndpoint"]["port"], up.port(), "{why}");
        assert_eq!(client["remoteEndpoint"]["ipv4"], "127.0.0.1", "{why}");
        let h = &zk.request_headers()[0];
        assert_eq!(header(h, "content-type"), Some("application/json"), "{why}");
    }
}

/// Resource attributes from `telemetry.resource` and `OTEL_RESOURCE_ATTRIBUTES` (env keys
/// win) reach the OTLP resource.
#[test]
fn resource_attributes_from_file_and_env() {
    let extra = "  resource: { deployment.environment.name: staging, team: edge }";
    // (env, expected attributes (None: absent), why)
    type Want<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: [(Env, Want, &str); 2] = [
        (
            vec![],
            &[
                ("service.name", Some("edge-test")),
                ("deployment.environment.name", Some("staging")),
                ("team", Some("edge")),
                ("host.name", None),
            ],
            "from the file",
        ),
        (
            vec![(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=prod, host.name=edge%201",
            )],
            &[
                ("service.name", Some("edge-test")),
                ("deployment.environment.name", Some("prod")),
                ("team", Some("edge")),
                ("host.name", Some("edge 1")),
            ],
            "the environment overrides and adds, percent-decoded",
        ),
    ];
    for (env, want, why) in cases {
        let rx = OtlpReceiver::grpc();
        let up = Upstream::start("b1");
        let exporter = format!(r#"protocol: grpc, endpoint: "{}""#, rx.endpoint());
        let proxy = Proxy::start_with_env(&config(&up, &exporter, extra), &env);
        one_traced_request(&proxy, &rx);
        let attrs = &rx.resource_attributes()[0];
        for (k, v) in want {
            assert_eq!(
                attrs.get(*k),
                v.map(|v| AttrValue::Str(v.into())).as_ref(),
                "{why}: {k} in {attrs:?}"
            );
        }
        assert_eq!(
            attrs.get("telemetry.sdk.language"),
            Some(&AttrValue::Str("rust".into())),
            "{why}"
        );
    }
}

/// Refused configurations: `--check` exits 64 naming the key or variable and the reason, and
/// never prints a header value.
#[test]
fn refused_exporter_configs_exit_64_with_key_and_reason() {
    let ca = TestCa::new();
    let not_pem = ca.dir().join("not-a-cert.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let not_pem = not_pem.display().to_string();
    let base = |exporter: &str, extra: &str| {
        format!("listen: [\"127.0.0.1:0\"]\ntelemetry:\n  exporter: {{ {exporter} }}\n{extra}\n")
    };
    let secret_header = format!(r#"protocol: grpc, headers: {{ x-api-key: "{SECRET}" }}"#);
    // (config, env, words expected in the output, why)
    type Case<'a> = (String, Vec<(&'a str, String)>, Vec<String>, &'a str);
    let cases: Vec<Case> = vec![
        (
            base("protocol: grpc, compression: br", ""),
            vec![],
            vec![
                "telemetry.exporter.compression".into(),
                "unknown compression \"br\": expected gzip or none".into(),
            ],
            "bad compression",
        ),
        (
            base(
                "protocol: grpc, endpoint: \"https://127.0.0.1:4317\", tls: { ca_file: /nonexistent/ca.pem }",
                "",
            ),
            vec![],
            vec![
                "telemetry.exporter.tls.ca_file".into(),
                "cannot read /nonexistent/ca.pem".into(),
            ],
            "missing CA file",
        ),
        (
            base(
                &format!("protocol: http/protobuf, tls: {{ ca_file: \"{not_pem}\" }}"),
                "",
            ),
            vec![],
            vec![
                "telemetry.exporter.tls.ca_file".into(),
                format!("{not_pem} holds no PEM certificate"),
            ],
            "CA file that is not PEM",
        ),
        (
            base("protocol: grpc", "  resource: { service.name: other }"),
            vec![],
            vec![
                "telemetry.resource.service.name".into(),
                "use telemetry.service_name".into(),
            ],
            "service.name in the resource",
        ),
        (
            base(&secret_header, ""),
            vec![("OTEL_EXPORTER_OTLP_HEADERS", format!("x-api-key:{SECRET}"))],
            vec![
                "environment: OTEL_EXPORTER_OTLP_HEADERS".into(),
                "entry 1 is not key=value".into(),
            ],
            "bad header syntax in the environment",
        ),
        (
            base("protocol: grpc", ""),
            vec![(
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                format!("x-api-key={SECRET}%0D%0Ax-injected: 1"),
            )],
            vec![
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS".into(),
                "value of header \"x-api-key\" has characters not allowed".into(),
            ],
            "header value with CR LF once decoded",
        ),
    ];
    for (yaml, env, words, why) in cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, out) = run_check_with_env(&yaml, &env);
        assert_eq!(code, 64, "{why}: {out}");
        for w in &words {
            assert!(out.contains(w.as_str()), "{why}: {w:?} not in {out}");
        }
        assert!(
            !out.contains(SECRET),
            "{why}: the header value leaked: {out}"
        );
    }
    // A valid config with a secret header passes the check without printing it.
    let (code, out) = run_check(&base(&secret_header, ""));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(SECRET), "{out}");
}
