//! The admin listener of the real `tracegate` binary: `/ping` and `/ready` through start and
//! shutdown, `/upstreams` when a backend dies, `/config` without its secrets, the answers to
//! other paths, methods and hosts, and `/metrics` parsed with a real parser.

mod common;

use common::admin::{sample, scrape};
use common::backends::SwitchableUpstream;
use common::{http_get, http_request, run_check, OtlpReceiver, Proxy, Upstream};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Some`; panics with `what` after [`WAIT`].
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(admin: &str, path: &str) -> u16 {
    http_get(admin, path, &[]).status
}

#[test]
fn ping_turns_503_in_the_grace_period_and_ready_follows_the_listeners() {
    let mut p = Proxy::start(
        "listen: [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n\
         admin: { listen: \"127.0.0.1:0\" }\n\
         server: { grace_period: 4s, shutdown_timeout: 1s }\n\
         telemetry: { exporter: { protocol: none } }\n\
         routes: [{ name: hello, respond: { body: hi } }]\n",
    );
    let admin = p.admin_addr();
    poll("/ready 200 once both listeners accept", || {
        (status(&admin, "/ready") == 200).then_some(())
    });
    assert_eq!(status(&admin, "/ping"), 200, "alive");
    p.sigterm();
    poll("/ping 503 after SIGTERM", || {
        (status(&admin, "/ping") == 503).then_some(())
    });
    assert_eq!(status(&admin, "/ready"), 503, "draining is not ready");
    assert!(
        p.is_running(),
        "the 503 comes during the grace period, while the process still runs"
    );
    let s = scrape(&admin);
    assert!(
        sample(&s, "tracegate_open_connections", &[]).is_some(),
        "metrics are still scraped while draining"
    );
    assert!(
        p.wait_exit(Duration::from_secs(20)).is_some(),
        "then the process exits"
    );
}

#[test]
fn upstreams_show_a_backend_that_died() {
    let live = Upstream::start("live");
    let mut doomed = SwitchableUpstream::start("doomed");
    let p = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\n\
         admin: {{ listen: \"127.0.0.1:0\" }}\n\
         telemetry: {{ exporter: {{ protocol: none }} }}\n\
         routes: [{{ name: app, upstream: app }}]\n\
         upstreams:\n  app:\n    backends: [\"{}\", \"{}\"]\n    \
         health_check: {{ type: tcp, interval: 100ms, timeout: 500ms }}\n",
        live.addr(),
        doomed.addr()
    ));
    let admin = p.admin_addr();
    let backend = |addr: &str| {
        let v: serde_json::Value =
            serde_json::from_slice(&http_get(&admin, "/upstreams", &[]).body).expect("JSON");
        v["app"]["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .find(|b| b["address"] == addr)
            .cloned()
            .expect("the backend is listed")
    };
    let d = backend(&doomed.addr());
    assert_eq!(d["health"], "up", "{d}");
    assert_eq!(d["in_flight"], 0, "{d}");
    doomed.stop();
    let d = poll("the health check to take the dead backend out", || {
        let d = backend(&doomed.addr());
        (d["health"] == "down").then_some(d)
    });
    assert_eq!(d["failing_health_check"], true, "{d}");
    assert_eq!(backend(&live.addr())["health"], "up");
    let s = scrape(&admin);
    let up = |addr: &str| {
        let port = addr.rsplit(':').next().unwrap();
        sample(
            &s,
            "tracegate_upstream_backend_up",
            &[("tracegate_upstream", "app"), ("server_port", port)],
        )
    };
    assert_eq!(
        up(&doomed.addr()),
        Some(0.0),
        "backend_up follows the health state"
    );
    assert_eq!(up(&live.addr()), Some(1.0));
}

#[test]
fn config_is_shown_without_its_secrets() {
    let rx = OtlpReceiver::http();
    let endpoint = rx
        .endpoint()
        .replacen("http://", "http://svc:file-pass@", 1);
    let shown = rx.endpoint().replacen("http://", "http://REDACTED@", 1);
    let p = Proxy::start_with_env(
        &format!(
            "listen: [\"127.0.0.1:0\"]\n\
             admin: {{ listen: \"127.0.0.1:0\" }}\n\
             telemetry:\n  exporter:\n    protocol: http/protobuf\n    endpoint: \"{endpoint}\"\n    \
             headers: {{ x-api-key: file-key-1 }}\n\
             routes:\n  - name: api\n    request_headers: {{ set: {{ Authorization: \"Bearer route-token-2\", X-Team: edge }} }}\n    \
             upstream: app\n\
             upstreams: {{ app: {{ backends: [\"127.0.0.1:9\"] }} }}\n"
        ),
        &[("OTEL_EXPORTER_OTLP_HEADERS", "x-env-key=env-key-3")],
    );
    let r = http_get(&p.admin_addr(), "/config", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = r.body_str();
    for secret in ["file-pass", "file-key-1", "route-token-2", "env-key-3"] {
        assert!(!text.contains(secret), "{secret} is shown:\n{text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    // (JSON pointer, value, why)
    let cases: &[(&str, serde_json::Value, &str)] = &[
        (
            "/config/routes/0/name",
            "api".into(),
            "the rest of the file is there",
        ),
        (
            "/config/routes/0/request_headers/set/X-Team",
            "edge".into(),
            "plain header edits stay",
        ),
        (
            "/config/routes/0/request_headers/set/Authorization",
            "REDACTED".into(),
            "a credential header",
        ),
        (
            "/config/telemetry/exporter/headers/x-api-key",
            "REDACTED".into(),
            "exporter headers",
        ),
        (
            "/config/telemetry/exporter/endpoint",
            shown.clone().into(),
            "userinfo in the file",
        ),
        (
            "/effective/telemetry/exporter/endpoint",
            format!("{shown}/v1/traces").into(),
            "userinfo in the endpoint in effect",
        ),
        (
            "/effective/telemetry/exporter/headers/x-env-key",
            "REDACTED".into(),
            "headers from the environment, by name only",
        ),
        (
            "/file",
            p.config_path().display().to_string().into(),
            "which file",
        ),
    ];
    for (pointer, want, why) in cases {
        assert_eq!(v.pointer(pointer), Some(want), "{why}: {pointer}\n{text}");
    }
}

#[test]
fn paths_methods_and_hosts_table() {
    let p = Proxy::start(
        "listen: [\"127.0.0.1:0\"]\nadmin: { listen: \"127.0.0.1:0\" }\n\
         telemetry: { exporter: { protocol: none } }\nroutes: [{ name: hello, respond: { body: hi } }]\n",
    );
    let admin = p.admin_addr();
    poll("/ready", || (status(&admin, "/ready") == 200).then_some(()));
    // (method, path, Host, status, why)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, u16, &'a str);
    let cases: &[Case] = &[
        ("GET", "/ping", None, 200, "alive"),
        (
            "HEAD",
            "/metrics",
            None,
            200,
            "HEAD is GET without the body",
        ),
        ("GET", "/ready", Some("localhost:9901"), 200, "localhost"),
        ("GET", "/upstreams", Some("[::1]"), 200, "an IPv6 literal"),
        ("GET", "/", None, 404, "no index page"),
        (
            "GET",
            "/hello",
            None,
            404,
            "the admin does not route to the proxy",
        ),
        (
            "GET",
            "/metrics?format=json",
            None,
            400,
            "an unknown format",
        ),
        ("POST", "/ping", None, 405, "POST"),
        ("PUT", "/config", None, 405, "PUT"),
        (
            "DELETE",
            "/nope",
            None,
            404,
            "an unknown path is 404 for any method",
        ),
        (
            "GET",
            "/metrics",
            Some("attacker.example"),
            421,
            "DNS rebinding: a name on loopback",
        ),
        (
            "GET",
            "/config",
            Some("localhost.attacker.example:9901"),
            421,
            "a name that starts like localhost",
        ),
    ];
    for (method, path, host, want, why) in cases {
        let headers: Vec<(&str, &str)> = host.iter().map(|h| ("Host", *h)).collect();
        let r = http_request(&admin, method, path, &headers, b"");
        assert_eq!(
            r.status,
            *want,
            "{why}: {method} {path} {host:?}: {}",
            r.body_str()
        );
        if *want == 405 {
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{why}");
        }
    }
    // Bound to every address, names are the point: no 421, and a warning at start.
    let open = Proxy::start(
        "listen: [\"127.0.0.1:0\"]\nadmin: { listen: \"0.0.0.0:0\" }\n\
         telemetry: { exporter: { protocol: none } }\nroutes: [{ name: hello, respond: { body: hi } }]\n",
    );
    assert!(
        open.logs().contains("is not on a loopback address"),
        "{}",
        open.logs()
    );
    let port = open.admin_addr().rsplit(':').next().unwrap().to_owned();
    let r = http_get(
        &format!("127.0.0.1:{port}"),
        "/ping",
        &[("Host", "admin.internal")],
    );
    assert_eq!(r.status, 200, "a name is fine off loopback");
}

#[test]
fn admin_requests_are_not_proxied_traced_or_counted() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("app");
    let p = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\nadmin: {{ listen: \"127.0.0.1:0\" }}\n\
         telemetry: {{ exporter: {{ protocol: grpc, endpoint: \"{}\" }}, batch: {{ scheduled_delay: 50ms }} }}\n{}",
        rx.endpoint(),
        common::one_upstream(&up)
    ));
    let admin = p.admin_addr();
    for path in ["/ping", "/metrics", "/upstreams", "/config", "/nope"] {
        http_get(&admin, path, &[]);
    }
    assert_eq!(http_get(&p.addr(), "/one", &[]).status, 200);
    rx.wait_for_spans(2, WAIT);
    let s = scrape(&admin);
    let count = "http_server_request_duration_seconds_count";
    let total: f64 = s
        .samples
        .iter()
        .filter(|x| x.metric == count)
        .map(|x| match x.value {
            prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total, 1.0, "only the proxied request is counted");
    assert_eq!(
        up.requests().len(),
        1,
        "no admin request reached the backend"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.spans().len(),
        2,
        "one SERVER and one CLIENT span, none for the admin requests"
    );
}

#[test]
fn a_scrape_parses_and_counts_each_kind_of_request() {
    let up = Upstream::start("app");
    let p = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\nadmin: {{ listen: \"127.0.0.1:0\" }}\n\
         telemetry: {{ exporter: {{ protocol: none }} }}\n\
         routes:\n  - {{ name: hello, match: {{ path: /hello }}, respond: {{ body: hi }} }}\n  \
         - {{ name: api, match: {{ path_prefix: /api }}, upstream: app }}\n\
         upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    ));
    let admin = p.admin_addr();
    for _ in 0..3 {
        http_get(&p.addr(), "/hello", &[]);
    }
    for _ in 0..2 {
        http_request(&p.addr(), "POST", "/api/x", &[], b"body");
    }
    http_request(&p.addr(), "BREW", "/api/pot", &[], b"");
    http_get(&p.addr(), "/nowhere", &[]);
    // A request is recorded when it ends, just after its response was written.
    let total = |s: &prometheus_parse::Scrape| -> f64 {
        s.samples
            .iter()
            .filter(|x| x.metric == "http_server_request_duration_seconds_count")
            .map(|x| match x.value {
                prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let s = poll("all 7 requests recorded", || {
        let s = scrape(&admin);
        (total(&s) == 7.0).then_some(s)
    });
    let port = up.port().to_string();
    let count = "http_server_request_duration_seconds_count";
    // (metric, labels, value, why)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], f64, &'a str);
    let cases: &[Case] = &[
        (
            count,
            &[
                ("http_route", "hello"),
                ("http_request_method", "GET"),
                ("http_response_status_code", "200"),
            ],
            3.0,
            "a respond route",
        ),
        (
            count,
            &[("http_route", "api"), ("http_request_method", "POST")],
            2.0,
            "a proxied route",
        ),
        (
            count,
            &[("http_route", "api"), ("http_request_method", "_OTHER")],
            1.0,
            "an unknown method",
        ),
        (
            count,
            &[
                ("http_response_status_code", "404"),
                ("url_scheme", "http"),
                ("network_protocol_version", "1.1"),
            ],
            1.0,
            "no route",
        ),
        (
            "http_client_request_duration_seconds_count",
            &[
                ("tracegate_upstream", "app"),
                ("server_address", "127.0.0.1"),
                ("server_port", &port),
                ("http_request_method", "POST"),
                ("http_response_status_code", "200"),
            ],
            2.0,
            "one per attempt",
        ),
        (
            "http_server_active_requests",
            &[("http_request_method", "GET"), ("url_scheme", "http")],
            0.0,
            "nothing in flight",
        ),
        (
            "tracegate_config_reloads_total",
            &[("result", "applied")],
            0.0,
            "no reload yet",
        ),
        (
            "tracegate_connections_closed_total",
            &[("reason", "limit")],
            0.0,
            "nothing refused",
        ),
    ];
    for (name, labels, want, why) in cases {
        assert_eq!(
            sample(&s, name, labels),
            Some(*want),
            "{why}: {name} {labels:?}"
        );
    }
    let names: Vec<&str> = s
        .samples
        .iter()
        .flat_map(|x| x.labels.keys().map(String::as_str))
        .collect();
    for forbidden in [
        "url_path",
        "server_address_host",
        "http_host",
        "path",
        "host",
    ] {
        assert!(
            !names.contains(&forbidden),
            "a {forbidden} label: {names:?}"
        );
    }
    // Prometheus's own linter reads the text format the same way, when it is installed.
    if let Ok(promtool) = which("promtool") {
        use std::io::Write;
        let body = http_get(&admin, "/metrics", &[]).body;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child.stdin.take().unwrap().write_all(&body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn reloads_are_counted_and_the_admin_address_takes_a_restart() {
    let mut p = Proxy::start(
        "listen: [\"127.0.0.1:0\"]\nadmin: { listen: \"127.0.0.1:0\" }\n\
         server: { watch_config: false }\n\
         telemetry: { exporter: { protocol: none } }\nroutes: [{ name: a, respond: { body: one } }]\n",
    );
    let admin = p.admin_addr();
    std::fs::write(
        p.config_path(),
        "listen: [\"127.0.0.1:0\"]\nadmin: { listen: \"127.0.0.1:1\" }\n\
         server: { watch_config: false }\n\
         telemetry: { exporter: { protocol: none } }\nroutes: [{ name: b, respond: { body: two } }]\n",
    )
    .unwrap();
    p.signal(nix::sys::signal::Signal::SIGHUP);
    p.wait_for_log("config reload: admin changed", WAIT);
    std::fs::write(p.config_path(), "listen: [").unwrap();
    p.signal(nix::sys::signal::Signal::SIGHUP);
    p.wait_for_log("refused, still serving", WAIT);
    let s = scrape(&admin);
    assert_eq!(
        sample(
            &s,
            "tracegate_config_reloads_total",
            &[("result", "applied")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "tracegate_config_reloads_total",
            &[("result", "refused")]
        ),
        Some(1.0)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&http_get(&admin, "/config", &[]).body).unwrap();
    assert_eq!(
        v.pointer("/config/routes/0/name"),
        Some(&"b".into()),
        "/config follows the applied reload, not the refused one"
    );
    assert_eq!(
        status(&admin, "/ping"),
        200,
        "the old admin address still serves"
    );
}

#[test]
fn a_bad_admin_key_is_refused_before_start() {
    // (admin part, words, why)
    let cases: &[(&str, &str, &str)] = &[
        (
            "admin: { listen: nowhere }",
            "admin.listen: invalid address",
            "not an address",
        ),
        (
            "admin: { listen: \"127.0.0.1:7\", port: 1 }",
            "admin: unknown field `port`",
            "an unknown key",
        ),
    ];
    for (admin, words, why) in cases {
        let (code, out) = run_check(&format!("listen: [\"127.0.0.1:0\"]\n{admin}\n"));
        assert_eq!(code, 64, "{why}: {out}");
        assert!(
            out.contains(words) && out.contains("tracegate.yaml"),
            "{why}: {out}"
        );
    }
    // An address in use stops the start with a reason.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let yaml = format!(
        "listen: [\"127.0.0.1:0\"]\nadmin: {{ listen: \"{}\" }}\ntelemetry: {{ exporter: {{ protocol: none }} }}\n",
        taken.local_addr().unwrap()
    );
    let (_dir, path) = common::write_temp_config(&yaml);
    let out = std::process::Command::new(common::tracegate_bin())
        .arg("--config")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success(), "a taken admin port fails the start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot start the admin listener"), "{err}");
}

fn which(name: &str) -> Result<String, ()> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .ok_or(())
}
