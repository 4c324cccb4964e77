//! End-to-end tests of the access log (issue 13 §1, §5): the real binary, real upstreams and a
//! real OTLP receiver. Every line is parsed (serde_json, or nginx's `combined` as a pattern)
//! and tied to the SERVER span the receiver got, by trace id and span id; then the filters,
//! the reopen after logrotate's rename (SIGUSR1), a reload, overflow counting and the refusal
//! of a path that cannot be written.

mod common;

use common::{
    dead_addr, http_get, http_request, run_check, strip_ansi, tracegate_bin, write_temp_config,
    OtlpReceiver, Proxy, ReceivedSpan, Upstream,
};
use regex::Regex;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "s3cr3t-value";

/// A proxy config: spans over OTLP/gRPC to `rx` (none without), then `body`.
fn config(rx: Option<&OtlpReceiver>, body: &str) -> String {
    let exporter = match rx {
        Some(rx) => format!("{{ protocol: grpc, endpoint: \"{}\" }}", rx.endpoint()),
        None => "{ protocol: none }".to_owned(),
    };
    format!(
        "listen: [\"127.0.0.1:0\"]\nserver: {{ grace_period: 0s, shutdown_timeout: 1s }}\ntelemetry:\n  exporter: {exporter}\n  batch: {{ scheduled_delay: 20ms }}\n{body}"
    )
}

/// Routes of every kind: proxied (`/api/`), `respond`, `redirect`, and nothing else (404).
fn routes(up: &Upstream) -> String {
    format!(
        r#"routes:
  - name: api
    match: {{ path_prefix: /api/ }}
    strip_prefix: /api
    upstream: app
  - name: hello
    match: {{ path: /hello }}
    respond: {{ status: 200, body: "hi" }}
  - name: old
    match: {{ path_prefix: /old/ }}
    redirect: {{ host: new.example.com, status: 301 }}
upstreams:
  app: {{ backends: ["{}"] }}
"#,
        up.addr()
    )
}

/// A temporary folder for log files (kept while the value lives).
fn log_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tracegate-access-log-")
        .tempdir()
        .unwrap()
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Polls until `path` holds at least `n` lines; returns them.
fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = lines_of(path);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not get {n} line(s) within {WAIT:?}: {lines:#?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines by `url.path`. Requests on different connections may end in any order (a
/// request's line is written after its response), so tests find lines by their path.
fn by_path(lines: &[String]) -> std::collections::HashMap<String, Value> {
    let map: std::collections::HashMap<String, Value> = lines
        .iter()
        .map(|l| {
            let v = parse(l);
            (v["url.path"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(map.len(), lines.len(), "one line per path: {lines:#?}");
    map
}

fn parse(line: &str) -> Value {
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object: {e}: {line}"));
    assert!(v.is_object(), "{line}");
    v
}

fn server_span<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.is_server() && s.trace_id == trace_id)
        .unwrap_or_else(|| panic!("no SERVER span of trace {trace_id} in {spans:#?}"))
}

/// The line's `trace_id`/`span_id` are those of an exported SERVER span, and every field the
/// span also records has the span's value.
fn assert_matches_span(line: &Value, spans: &[ReceivedSpan]) {
    let trace_id = line["trace_id"].as_str().expect("trace_id");
    let s = server_span(spans, trace_id);
    assert_eq!(line["span_id"].as_str(), Some(s.span_id.as_str()), "{line}");
    assert_eq!(line["sampled"], Value::Bool(true), "{line}");
    for key in [
        "client.address",
        "http.request.method",
        "server.address",
        "url.path",
        "url.query",
        "network.protocol.version",
        "user_agent.original",
        "http.route",
    ] {
        assert_eq!(line[key].as_str(), s.attr_str(key), "{key}: {line}");
    }
    assert_eq!(
        line["http.response.status_code"].as_i64(),
        s.attr_int("http.response.status_code"),
        "{line}"
    );
}

/// Waits for `n` spans in all and returns them.
fn spans(rx: &OtlpReceiver, n: usize) -> Vec<ReceivedSpan> {
    rx.wait_for_spans(n, WAIT)
}

#[test]
fn json_lines_carry_the_ids_and_fields_of_the_exported_server_span() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let dir = log_dir();
    let file = dir.path().join("access.log");
    let proxy = Proxy::start(&config(
        Some(&rx),
        &format!(
            "access_log: {{ path: {} }}\n{}",
            file.display(),
            routes(&up)
        ),
    ));
    let addr = proxy.addr();
    let auth = format!("Bearer {SECRET}");
    let cookie = format!("sid={SECRET}");
    // (method, target, body, status, route, reason)
    type Request<'a> = (&'a str, String, &'a [u8], u16, Option<&'a str>, &'a str);
    let requests: &[Request] = &[
        (
            "GET",
            format!("/api/items?q=shoes&access_token={SECRET}&page=2"),
            b"",
            200,
            Some("api"),
            "proxied, with a secret in the query",
        ),
        (
            "POST",
            "/api/orders".into(),
            b"{\"qty\":3}",
            200,
            Some("api"),
            "proxied, with a body",
        ),
        ("GET", "/hello".into(), b"", 200, Some("hello"), "respond"),
        ("GET", "/old/page".into(), b"", 301, Some("old"), "redirect"),
        ("GET", "/nope".into(), b"", 404, None, "no route"),
        (
            "GET",
            "/api/a%2Fb".into(),
            b"",
            400,
            None,
            "a refused target (an encoded slash)",
        ),
    ];
    for (method, target, body, status, _, why) in requests {
        let r = http_request(
            &addr,
            method,
            target,
            &[
                ("user-agent", "test-agent/1.0 (\"quoted\")"),
                ("authorization", &auth),
                ("cookie", &cookie),
            ],
            body,
        );
        assert_eq!(r.status, *status, "{why}");
    }
    let lines = wait_for_lines(&file, requests.len());
    assert_eq!(lines.len(), requests.len(), "one line per request");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(SECRET), "no secret in the log: {text}");
    assert!(!text.contains("Bearer"), "no Authorization: {text}");
    // Proxied requests have a CLIENT span too.
    let spans = spans(&rx, requests.len() + 2);
    let lines = by_path(&lines);
    let rfc3339_ms = Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    for (method, target, body, status, route, why) in requests {
        let v = &lines[target.split('?').next().unwrap()];
        assert_matches_span(v, &spans);
        assert_eq!(v["http.request.method"].as_str(), Some(*method), "{why}");
        assert_eq!(
            v["url.path"].as_str(),
            Some(target.split('?').next().unwrap()),
            "{why}"
        );
        assert_eq!(
            v["http.response.status_code"].as_u64(),
            Some(u64::from(*status)),
            "{why}"
        );
        assert_eq!(v["http.route"].as_str(), *route, "{why}");
        assert_eq!(
            v["http.request.body.size"].as_u64(),
            Some(body.len() as u64),
            "{why}"
        );
        assert!(v["duration_ms"].as_f64().unwrap() > 0.0, "{why}");
        assert_eq!(v["client.address"].as_str(), Some("127.0.0.1"), "{why}");
        assert_eq!(
            v["user_agent.original"].as_str(),
            Some("test-agent/1.0 (\"quoted\")"),
            "{why}"
        );
        let ts = v["timestamp"].as_str().unwrap();
        assert!(rfc3339_ms.is_match(ts), "RFC 3339, UTC, milliseconds: {ts}");
        let proxied = route == &Some("api");
        assert_eq!(v.get("upstream").is_some(), proxied, "{why}: {v}");
        if proxied {
            assert_eq!(v["upstream"].as_str(), Some("app"), "{why}");
            assert_eq!(
                v["upstream.address"].as_str(),
                Some(up.addr().as_str()),
                "{why}"
            );
            assert_eq!(v["upstream.status_code"].as_u64(), Some(200), "{why}");
            assert_eq!(v["attempts"].as_u64(), Some(1), "{why}");
            for k in ["upstream.duration_ms", "upstream.ttfb_ms"] {
                assert!(v[k].as_f64().is_some(), "{why}: {k} in {v}");
            }
            // The backend's body is its name.
            assert_eq!(v["http.response.body.size"].as_u64(), Some(2), "{why}");
            let client = spans
                .iter()
                .find(|s| s.is_client() && s.trace_id == v["trace_id"].as_str().unwrap())
                .expect("a CLIENT span");
            assert_eq!(
                client.attr_int("server.port"),
                Some(i64::from(up.port())),
                "{why}"
            );
        }
        assert!(v.get("error.type").is_none(), "{why}: {v}");
    }
    let first = &lines["/api/items"];
    assert_eq!(
        first["url.query"].as_str(),
        Some("q=shoes&access_token=REDACTED&page=2"),
        "redacted as the span redacts it"
    );
    // The respond route's body is "hi".
    assert_eq!(lines["/hello"]["http.response.body.size"].as_u64(), Some(2));
}

#[test]
fn a_retry_shows_the_last_backend_and_both_attempts_and_a_failure_its_error_type() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("alive");
    let dead = dead_addr();
    let dir = log_dir();
    let file = dir.path().join("access.log");
    let proxy = Proxy::start(&config(
        Some(&rx),
        &format!(
            "access_log: {{ path: {} }}\nroutes:\n  - name: retry\n    match: {{ path_prefix: /retry/ }}\n    upstream: app\n  - name: down\n    match: {{ path_prefix: /down/ }}\n    upstream: down\nupstreams:\n  app: {{ backends: [\"{dead}\", \"{}\"] }}\n  down: {{ backends: [\"{dead}\"] }}\n",
            file.display(),
            up.addr()
        ),
    ));
    assert_eq!(
        http_get(&proxy.addr(), "/retry/x", &[]).status,
        200,
        "the first pick is the dead backend; the retry succeeds"
    );
    assert_eq!(http_get(&proxy.addr(), "/down/x", &[]).status, 502);
    let lines = wait_for_lines(&file, 2);
    // SERVER + 2 CLIENT spans, then SERVER + 1 CLIENT span.
    let spans = spans(&rx, 5);
    let lines = by_path(&lines);
    let retried = &lines["/retry/x"];
    assert_matches_span(retried, &spans);
    assert_eq!(retried["attempts"].as_u64(), Some(2), "{retried}");
    assert_eq!(
        retried["upstream.address"].as_str(),
        Some(up.addr().as_str()),
        "the last backend"
    );
    assert_eq!(retried["upstream.status_code"].as_u64(), Some(200));
    assert!(retried.get("error.type").is_none(), "{retried}");
    let trace = retried["trace_id"].as_str().unwrap();
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.is_client() && s.trace_id == trace)
            .count(),
        2,
        "one CLIENT span per attempt"
    );

    let failed = &lines["/down/x"];
    assert_matches_span(failed, &spans);
    assert_eq!(failed["http.response.status_code"].as_u64(), Some(502));
    assert_eq!(failed["error.type"].as_str(), Some("connection_refused"));
    assert_eq!(failed["upstream.address"].as_str(), Some(dead.as_str()));
    assert!(
        failed.get("upstream.status_code").is_none(),
        "the backend never answered: {failed}"
    );
}

/// nginx's `combined`, read by the pattern a log parser uses for it, then the trace.
fn combined_regex() -> Regex {
    Regex::new(
        r#"^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] "(?P<method>\S+) (?P<target>\S+) (?P<proto>HTTP/\d\.\d)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)" trace_id=(?P<trace>[0-9a-f]{32}) span_id=(?P<span>[0-9a-f]{16}) rt=(?P<rt>\d+\.\d{3})$"#,
    )
    .unwrap()
}

#[test]
fn combined_lines_read_as_nginx_combined_with_the_trace_after_them() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let dir = log_dir();
    let file = dir.path().join("access.log");
    let proxy = Proxy::start(&config(
        Some(&rx),
        &format!(
            "access_log: {{ path: {}, format: combined }}\n{}",
            file.display(),
            routes(&up)
        ),
    ));
    let referer = format!("https://shop.example/cart?session={SECRET}&step=2");
    let r = http_get(
        &proxy.addr(),
        &format!("/api/items?code={SECRET}&q=1"),
        &[
            ("user-agent", "Mozilla/5.0 \"quoted\" \\ agent"),
            ("referer", &referer),
            ("authorization", &format!("Basic {SECRET}")),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(http_get(&proxy.addr(), "/nope", &[]).status, 404);
    let mut lines = wait_for_lines(&file, 2);
    assert!(!lines.concat().contains(SECRET), "{lines:#?}");
    // Either may end first.
    lines.sort_by_key(|l| l.contains("\"GET /nope "));
    let spans = spans(&rx, 3);
    let re = combined_regex();
    let c = re
        .captures(&lines[0])
        .unwrap_or_else(|| panic!("not combined: {}", lines[0]));
    let s = server_span(&spans, &c["trace"]);
    assert_eq!(&c["span"], s.span_id);
    assert_eq!(&c["addr"], "127.0.0.1");
    assert_eq!(&c["user"], "-", "never read from Authorization");
    assert_eq!(&c["method"], "GET");
    assert_eq!(&c["target"], "/api/items?code=REDACTED&q=1");
    assert_eq!(&c["proto"], "HTTP/1.1");
    assert_eq!(&c["status"], "200");
    assert_eq!(&c["bytes"], "2");
    assert_eq!(
        &c["referer"],
        "https://shop.example/cart?session=REDACTED&step=2"
    );
    assert_eq!(
        &c["ua"], r#"Mozilla/5.0 \x22quoted\x22 \x5C agent"#,
        "escaped as nginx escapes"
    );
    assert!(c["rt"].parse::<f64>().unwrap() < 10.0);
    let c = re
        .captures(&lines[1])
        .unwrap_or_else(|| panic!("not combined: {}", lines[1]));
    assert_eq!(&c["status"], "404");
    assert_eq!((&c["referer"], &c["ua"]), ("-", "-"), "absent headers");
    assert_eq!(&c["span"], server_span(&spans, &c["trace"]).span_id);
}

/// `sampled: false` requests are in the log too, under the trace id the client was told.
#[test]
fn an_unsampled_request_is_logged_under_the_trace_id_its_client_got() {
    let up = Upstream::start("b1");
    let dir = log_dir();
    let file = dir.path().join("access.log");
    let proxy = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\ntelemetry:\n  sampler: {{ name: always_off }}\n  trace_id_header: x-trace-id\n  exporter: {{ protocol: none }}\naccess_log: {{ path: {} }}\n{}",
        file.display(),
        routes(&up)
    ));
    let r = http_get(&proxy.addr(), "/api/x", &[]);
    let told = r.header("x-trace-id").expect("x-trace-id").to_owned();
    let v = parse(&wait_for_lines(&file, 1)[0]);
    assert_eq!(v["trace_id"].as_str(), Some(told.as_str()));
    assert_eq!(v["sampled"], Value::Bool(false));
    let sent = up.requests()[0].header("traceparent").unwrap().to_owned();
    let flags = u8::from_str_radix(&sent[sent.len() - 2..], 16).unwrap();
    assert!(
        sent.starts_with(&format!("00-{told}-")) && flags & 1 == 0,
        "the trace the upstream was told, not sampled: {sent}"
    );
}

#[test]
fn filters_keep_a_line_when_any_filter_matches() {
    let up = Upstream::start("b1");
    let dir = log_dir();
    let file = dir.path().join("access.log");
    let dead = dead_addr();
    let routes = routes(&up).replacen(
        "upstreams:\n",
        &format!("  - name: down\n    match: {{ path_prefix: /down/ }}\n    upstream: down\nupstreams:\n  down: {{ backends: [\"{dead}\"] }}\n"),
        1,
    );
    let mut proxy = Proxy::start(&config(
        None,
        &format!(
            "access_log:\n  path: {}\n  filters: {{ status: [\"5xx\", 404], slower_than: 300ms }}\n{routes}",
            file.display()
        ),
    ));
    let addr = proxy.addr();
    // (path, status, kept, reason)
    let cases: &[(&str, u16, bool, &str)] = &[
        ("/hello", 200, false, "fast 200: no filter matches"),
        ("/nope", 404, true, "404 is listed"),
        ("/api/status/403", 403, false, "a 4xx that is not listed"),
        ("/down/x", 502, true, "5xx is listed"),
        ("/api/status/503", 503, true, "a backend's 5xx"),
        ("/api/slow/400", 200, true, "slower than 300ms"),
        ("/old/x", 301, false, "fast redirect"),
    ];
    for (path, status, _, why) in cases {
        assert_eq!(http_get(&addr, path, &[]).status, *status, "{why}");
    }
    // Every line is out once the proxy has stopped (the writer flushes before exit).
    proxy.sigterm();
    assert!(proxy.wait_exit(WAIT).is_some_and(|s| s.success()));
    let mut want: Vec<&str> = cases.iter().filter(|c| c.2).map(|c| c.0).collect();
    let mut got: Vec<String> = lines_of(&file)
        .iter()
        .map(|l| parse(l)["url.path"].as_str().unwrap().to_owned())
        .collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "kept: {cases:#?}");
}

#[test]
fn sigusr1_reopens_the_file_after_logrotate_renames_it() {
    let up = Upstream::start("b1");
    let dir = log_dir();
    let file = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let mut proxy = Proxy::start(&config(
        None,
        &format!(
            "access_log: {{ path: {} }}\n{}",
            file.display(),
            routes(&up)
        ),
    ));
    let addr = proxy.addr();
    let path_of = |l: &String| parse(l)["url.path"].as_str().unwrap().to_owned();
    http_get(&addr, "/hello?n=1", &[]);
    wait_for_lines(&file, 1);
    std::fs::rename(&file, &rotated).unwrap();
    // Until the signal, the open file (now renamed) gets the lines, as with nginx.
    http_get(&addr, "/api/two", &[]);
    wait_for_lines(&rotated, 2);
    proxy.signal(nix::sys::signal::Signal::SIGUSR1);
    proxy.wait_for_log("access log reopened", WAIT);
    assert!(proxy.is_running(), "SIGUSR1 does not end the process");
    http_get(&addr, "/nope", &[]);
    let new = wait_for_lines(&file, 1);
    assert_eq!(new.iter().map(path_of).collect::<Vec<_>>(), ["/nope"]);
    let old = lines_of(&rotated);
    assert_eq!(
        old.iter().map(path_of).collect::<Vec<_>>(),
        ["/hello", "/api/two"],
        "the old file keeps the old lines"
    );
    // A second rotation works the same way.
    std::fs::rename(&file, dir.path().join("access.log.2")).unwrap();
    proxy.signal(nix::sys::signal::Signal::SIGUSR1);
    let deadline = Instant::now() + WAIT;
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "no new file after a second SIGUSR1"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    http_get(&addr, "/hello", &[]);
    assert_eq!(wait_for_lines(&file, 1).len(), 1);
}

#[test]
fn a_reload_applies_a_new_path_format_and_filters_and_a_refused_one_changes_nothing() {
    let up = Upstream::start("b1");
    let dir = log_dir();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut proxy = Proxy::start(&config(
        None,
        &format!("access_log: {{ path: {} }}\n{}", a.display(), routes(&up)),
    ));
    let addr = proxy.addr();
    http_get(&addr, "/hello", &[]);
    wait_for_lines(&a, 1);
    let reload = |proxy: &mut Proxy, yaml: &str, n: usize| {
        std::fs::write(proxy.config_path(), yaml).unwrap();
        proxy.signal(nix::sys::signal::Signal::SIGHUP);
        let deadline = Instant::now() + WAIT;
        loop {
            let logs = proxy.logs();
            if logs.matches("config reload").count() >= n {
                return logs;
            }
            assert!(Instant::now() < deadline, "no reload line: {logs}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    reload(
        &mut proxy,
        &config(
            None,
            &format!(
                "access_log: {{ path: {}, format: combined, filters: {{ status: 404 }} }}\n{}",
                b.display(),
                routes(&up)
            ),
        ),
        1,
    );
    http_get(&addr, "/hello", &[]);
    http_get(&addr, "/nope", &[]);
    let lines = wait_for_lines(&b, 1);
    assert!(
        combined_regex().is_match(&lines[0]) && lines[0].contains("\"GET /nope HTTP/1.1\" 404"),
        "the new format, and the filter: only the 404: {lines:#?}"
    );
    assert_eq!(lines_of(&a).len(), 1, "the old file got nothing more");
    // A refused reload keeps the running log.
    let logs = reload(
        &mut proxy,
        &config(
            None,
            &format!(
                "access_log: {{ path: {}/missing/c.log }}\n{}",
                dir.path().display(),
                routes(&up)
            ),
        ),
        2,
    );
    assert!(
        logs.contains("refused") && logs.contains("access_log.path"),
        "{logs}"
    );
    http_get(&addr, "/nope2", &[]);
    let lines = wait_for_lines(&b, 2);
    assert!(lines[1].contains("/nope2"), "{lines:#?}");
    // Without the key, no lines at all.
    reload(&mut proxy, &config(None, &routes(&up)), 3);
    http_get(&addr, "/nope3", &[]);
    // A line from a request with an access log shows that the one before was not written.
    reload(
        &mut proxy,
        &config(
            None,
            &format!("access_log: {{ path: {} }}\n{}", b.display(), routes(&up)),
        ),
        4,
    );
    http_get(&addr, "/nope4", &[]);
    let lines = wait_for_lines(&b, 3);
    assert!(
        lines[2].contains("/nope4") && !lines.concat().contains("/nope3"),
        "{lines:#?}"
    );
}

/// The writer is stuck (a FIFO nobody reads, queue of one line): lines are dropped and
/// counted (in `tracegate_access_log_dropped_total` too), requests are served as usual, and
/// the losses are reported.
#[test]
fn lines_that_do_not_fit_in_the_queue_are_dropped_counted_and_reported() {
    let up = Upstream::start("b1");
    let dir = log_dir();
    let fifo = dir.path().join("access.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut proxy = Proxy::start(&config(
        None,
        &format!(
            "admin: {{ listen: \"127.0.0.1:0\" }}\naccess_log: {{ path: {}, queue_size: 1 }}\n{}",
            fifo.display(),
            routes(&up)
        ),
    ));
    const N: usize = 20;
    let start = Instant::now();
    for _ in 0..N {
        assert_eq!(http_get(&proxy.addr(), "/hello", &[]).status, 200);
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "requests are not held up by the log"
    );
    proxy.wait_for_log("line(s) dropped since the last report", WAIT);
    // Nobody has opened the FIFO, so the writer waits in its `open`: one line fits in the
    // queue, and every other is dropped, the last one shortly after its response.
    let dropped = N - 1;
    let deadline = Instant::now() + WAIT;
    loop {
        let s = common::admin::scrape(&proxy.admin_addr());
        let v = common::admin::sample(&s, "tracegate_access_log_dropped_total", &[]);
        if v == Some(dropped as f64) {
            break;
        }
        assert!(Instant::now() < deadline, "dropped: {v:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Once it can write, the queued line comes out.
    let mut reader = std::fs::File::open(&fifo).unwrap();
    proxy.sigterm();
    let status = proxy.wait_exit(WAIT).expect("exits");
    assert!(status.success(), "{status}");
    let mut out = String::new();
    reader.read_to_string(&mut out).unwrap();
    let logs = proxy.logs();
    assert_eq!(out.lines().count(), 1, "the queued line: {out}\n{logs}");
    parse(out.lines().next().unwrap());
    assert!(
        logs.contains(&format!(
            "access log stopped: 1 lines written, {dropped} dropped (queue full), 0 lost"
        )),
        "{logs}"
    );
    assert!(logs.contains(&format!("({dropped} in all)")), "{logs}");
}

#[test]
fn a_path_that_cannot_be_written_is_refused_before_start_with_exit_64() {
    let dir = log_dir();
    let missing = format!("{}/no-such-folder/access.log", dir.path().display());
    let yaml = format!(
        "listen: [\"127.0.0.1:0\"]\naccess_log: {{ path: {missing} }}\nroutes:\n  - name: a\n    respond: {{ body: x }}\n"
    );
    let (code, out) = run_check(&yaml);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("access_log.path")
            && out.contains(&format!(
                "the folder {}/no-such-folder does not exist",
                dir.path().display()
            )),
        "file, key and reason: {out}"
    );
    // Starting the server refuses the same way, before it listens.
    let (_cfg_dir, path) = write_temp_config(&yaml);
    let out = std::process::Command::new(tracegate_bin())
        .arg("--config")
        .arg(&path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("access_log.path"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    // A folder for a file.
    let (code, out) = run_check(&yaml.replace(&missing, &dir.path().display().to_string()));
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("is a directory"), "{out}");
}

/// A client that goes away before its response gets a line: nginx's 499, with the reason.
#[test]
fn a_client_that_leaves_before_the_response_is_logged_as_499() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("b1");
    let dir = log_dir();
    let file: PathBuf = dir.path().join("access.log");
    let proxy = Proxy::start(&config(
        Some(&rx),
        &format!(
            "access_log: {{ path: {} }}\n{}",
            file.display(),
            routes(&up)
        ),
    ));
    // A body announced as 100 bytes, of which 3 arrive before the client closes.
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.write_all(b"POST /api/upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    drop(s);
    let v = parse(&wait_for_lines(&file, 1)[0]);
    assert_eq!(v["http.response.status_code"].as_u64(), Some(499), "{v}");
    assert!(
        v["error.type"]
            .as_str()
            .is_some_and(|e| e.starts_with("client_")),
        "{v}"
    );
    assert_eq!(v["url.path"].as_str(), Some("/api/upload"));
    let spans = spans(&rx, 1);
    let s = server_span(&spans, v["trace_id"].as_str().unwrap());
    assert_eq!(v["span_id"].as_str(), Some(s.span_id.as_str()));
    assert_eq!(
        s.attr_int("http.response.status_code"),
        None,
        "the span has no status: none was sent"
    );
}
