//! End-to-end tests of load balancing and backend health: the real `tracegate` binary, real
//! HTTP backends that name themselves in `x-backend`, and a real OTLP receiver where the number
//! of attempts matters. Which backend answered, what each backend received and which spans
//! arrived are read off the wire.

mod common;

use common::backends::{http_get_from, HangupBackend, SwitchableUpstream, HEALTH_PATH};
use common::{
    dead_addr, http_get, http_request, run_check, OtlpReceiver, Proxy, ReceivedSpan, Response,
    Upstream,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// A config with the given routes/upstreams, exporting spans to `rx` (or none).
fn config(rx: Option<&OtlpReceiver>, body: &str) -> String {
    let exporter = match rx {
        Some(rx) => format!("{{ protocol: grpc, endpoint: \"{}\" }}", rx.endpoint()),
        None => "{ protocol: none }".to_owned(),
    };
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ grace_period: 0s, shutdown_timeout: 1s }}
telemetry:
  exporter: {exporter}
  batch: {{ scheduled_delay: 50ms }}
{body}"#
    )
}

/// One route for every path to upstream `app`, written as the YAML flow map `upstream`.
fn app(upstream: &str) -> String {
    format!(
        "routes:\n  - name: all\n    match: {{ path_prefix: / }}\n    upstream: app\nupstreams:\n  app: {upstream}\n"
    )
}

fn backend_of(r: &Response) -> String {
    assert_eq!(r.status, 200, "{r:?}");
    r.header("x-backend").expect("x-backend").to_owned()
}

fn get_backend(proxy: &Proxy, path: &str) -> String {
    backend_of(&http_get(&proxy.addr(), path, &[]))
}

/// Sends requests until `want` answers one (a poll with a deadline, for state that changes
/// in the background), and returns how many it took.
fn until_backend(proxy: &Proxy, want: &str, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut n = 0;
    loop {
        n += 1;
        if get_backend(proxy, "/poll") == want {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{want} got no request within {timeout:?}\n{}",
            proxy.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CLIENT spans per request, keyed by the request's path (its SERVER span's `url.path`).
fn attempts_by_path(spans: &[ReceivedSpan]) -> BTreeMap<String, Vec<ReceivedSpan>> {
    let mut out = BTreeMap::new();
    for server in spans.iter().filter(|s| s.is_server()) {
        let path = server.attr_str("url.path").unwrap_or("").to_owned();
        let mut clients: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|c| c.is_client() && c.trace_id == server.trace_id)
            .cloned()
            .collect();
        clients.sort_by_key(|c| c.start_ns);
        out.insert(path, clients);
    }
    out
}

#[test]
fn weighted_round_robin_interleaves_exactly_over_each_cycle() {
    let (a, b, c) = (
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    );
    let upstream = format!(
        r#"{{ backends: [{{ addr: "{}", weight: 3 }}, "{}", {{ addr: "{}", weight: 2 }}] }}"#,
        a.addr(),
        b.addr(),
        c.addr()
    );
    let proxy = Proxy::start(&config(None, &app(&upstream)));
    let got: Vec<String> = (0..12).map(|_| get_backend(&proxy, "/")).collect();
    // nginx's smooth weighted round robin for 3:1:2, twice: never three a's in a row.
    let cycle = ["a", "c", "a", "b", "c", "a"];
    let want: Vec<&str> = cycle.iter().chain(cycle.iter()).copied().collect();
    assert_eq!(got, want);
    assert_eq!(
        (a.requests().len(), b.requests().len(), c.requests().len()),
        (6, 2, 4)
    );
}

/// `least_conn` and `p2c` send new requests away from a backend that holds a slow one; once
/// it is done (or its client went away), the backend gets requests again.
fn load_aware(lb: &str) {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let upstream = format!(
        r#"{{ backends: ["{}", "{}"], lb: {lb} }}"#,
        a.addr(),
        b.addr()
    );
    let proxy = Proxy::start(&config(None, &app(&upstream)));
    // The backend that received `path`, once one has.
    let holder = |path: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(u) = [&a, &b]
                .into_iter()
                .find(|u| u.requests().iter().any(|r| r.path_and_query == path))
            {
                return u.name().to_owned();
            }
            assert!(Instant::now() < deadline, "{path} never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    let addr = proxy.addr();
    let slow = std::thread::spawn(move || http_get(&addr, "/slow/2000", &[]));
    let busy = holder("/slow/2000");
    for _ in 0..5 {
        assert_ne!(
            get_backend(&proxy, "/fast"),
            busy,
            "{lb}: the backend holding a request gets no new one"
        );
    }
    assert_eq!(slow.join().unwrap().status, 200);
    // Idle again: least_conn alternates, p2c draws at random (40 draws on one side: 2^-39).
    let after: BTreeSet<String> = (0..40).map(|_| get_backend(&proxy, "/fast")).collect();
    assert_eq!(after.len(), 2, "{lb}: both are idle again: {after:?}");

    // A client that goes away: its backend's count is released then, not when the backend
    // would have answered (30 s later).
    let mut conn = std::net::TcpStream::connect(proxy.addr()).unwrap();
    conn.write_all(b"GET /slow/30000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let busy = holder("/slow/30000");
    assert_ne!(get_backend(&proxy, "/fast"), busy, "{lb}: held");
    drop(conn);
    until_backend(&proxy, &busy, Duration::from_secs(10));
}

#[test]
fn least_conn_avoids_the_backend_holding_a_slow_request() {
    load_aware("least_conn");
}

#[test]
fn p2c_avoids_the_backend_holding_a_slow_request() {
    load_aware("p2c");
}

/// Three pools over the same backends, hashing on a header, a cookie and the client address.
#[test]
fn hash_is_sticky_on_header_cookie_and_client_ip() {
    let ups = [
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    ];
    let list = |ups: &[Upstream]| {
        ups.iter()
            .map(|u| format!("\"{}\"", u.addr()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = |backends: &str| {
        format!(
            r#"routes:
  - {{ name: h, match: {{ path_prefix: /h }}, upstream: by_header }}
  - {{ name: c, match: {{ path_prefix: /c }}, upstream: by_cookie }}
  - {{ name: ip, match: {{ path_prefix: /ip }}, upstream: by_ip }}
upstreams:
  by_header: {{ backends: [{backends}], lb: hash, hash_on: {{ header: x-user }} }}
  by_cookie: {{ backends: [{backends}], lb: hash, hash_on: {{ cookie: session }} }}
  by_ip: {{ backends: [{backends}], lb: hash, hash_on: client_ip }}
"#
        )
    };
    let proxy = Proxy::start(&config(None, &body(&list(&ups))));
    let addr = proxy.addr();

    // A request without the key goes round robin.
    let keyless: Vec<String> = (0..3)
        .map(|_| backend_of(&http_get(&addr, "/h", &[])))
        .collect();
    assert_eq!(keyless, ["a", "b", "c"], "no x-user: round robin");

    let mut by_user = BTreeMap::new();
    for i in 0..30 {
        let user = format!("user-{i}");
        let cookie = format!("theme=dark; session=s{i}; lang=en");
        let first = backend_of(&http_get(&addr, "/h", &[("x-user", &user)]));
        let first_cookie = backend_of(&http_get(&addr, "/c", &[("cookie", &cookie)]));
        for _ in 0..2 {
            assert_eq!(
                backend_of(&http_get(&addr, "/h", &[("x-user", &user)])),
                first,
                "{user} sticks"
            );
            assert_eq!(
                backend_of(&http_get(&addr, "/c", &[("cookie", &cookie)])),
                first_cookie,
                "session s{i} sticks"
            );
        }
        by_user.insert(user, first);
    }
    let used: BTreeSet<&String> = by_user.values().collect();
    assert_eq!(used.len(), 3, "30 keys spread over all three: {by_user:?}");

    let mut by_ip = BTreeMap::new();
    for i in 1..=20u8 {
        let from = IpAddr::from([127, 0, 0, i]);
        let first = backend_of(&http_get_from(from, &addr, "/ip", &[]));
        assert_eq!(
            backend_of(&http_get_from(from, &addr, "/ip", &[])),
            first,
            "{from} sticks"
        );
        by_ip.insert(from, first);
    }
    assert!(
        by_ip.values().collect::<BTreeSet<_>>().len() >= 2,
        "20 clients use more than one backend: {by_ip:?}"
    );

    // The same keys through a config without `c` (as after a reload): keys of a and b stay
    // where they were; only c's keys move.
    let smaller = Proxy::start(&config(None, &body(&list(&ups[..2]))));
    let mut moved = 0;
    for (user, was) in &by_user {
        let now = backend_of(&http_get(&smaller.addr(), "/h", &[("x-user", user)]));
        if was == "c" {
            moved += 1;
            assert_ne!(now, "c");
        } else {
            assert_eq!(&now, was, "{user} stays on {was}");
        }
    }
    assert!(moved > 0, "some keys were on c");
}

#[test]
fn http_health_check_takes_a_backend_out_and_back_in() {
    let sick = SwitchableUpstream::start("sick");
    let well = Upstream::start("well");
    let upstream = format!(
        r#"{{ backends: ["{}", "{}"], health_check: {{ path: {HEALTH_PATH}, interval: 100ms, timeout: 1s }} }}"#,
        sick.addr(),
        well.addr()
    );
    let proxy = Proxy::start(&config(None, &app(&upstream)));
    let probe = sick.wait_for_probes(1, WAIT).remove(0);
    assert_eq!(probe.method, "GET");
    assert_eq!(
        probe.header("host"),
        Some(sick.addr().as_str()),
        "Host: the backend"
    );
    assert_eq!(probe.header("user-agent"), Some("tracegate-health-check"));
    assert_eq!(probe.header("traceparent"), None, "probes are not traced");
    let both: BTreeSet<String> = (0..4).map(|_| get_backend(&proxy, "/")).collect();
    assert_eq!(both.len(), 2, "both healthy: {both:?}");

    sick.set_health(500);
    proxy.wait_for_log(
        &format!(
            "upstream app: backend {} is down: GET /healthz answered 500",
            sick.addr()
        ),
        WAIT,
    );
    let served_before = sick.requests().len();
    for _ in 0..6 {
        assert_eq!(get_backend(&proxy, "/"), "well");
    }
    assert_eq!(
        sick.requests().len(),
        served_before,
        "no request to a down backend"
    );

    sick.set_health(200);
    proxy.wait_for_log(
        &format!("upstream app: backend {} is up again", sick.addr()),
        WAIT,
    );
    let n = until_backend(&proxy, "sick", WAIT);
    assert!(n <= 2, "back in the rotation at once: {n} requests");
    assert_eq!(
        proxy.logs().matches("is down").count(),
        1,
        "one line per change:\n{}",
        proxy.logs()
    );
}

#[test]
fn tcp_health_check_notices_a_backend_that_stops_listening() {
    let mut flaky = SwitchableUpstream::start("flaky");
    let steady = Upstream::start("steady");
    let upstream = format!(
        r#"{{ backends: ["{}", "{}"], health_check: {{ type: tcp, interval: 100ms }} }}"#,
        flaky.addr(),
        steady.addr()
    );
    let proxy = Proxy::start(&config(None, &app(&upstream)));
    until_backend(&proxy, "flaky", WAIT);
    flaky.stop();
    proxy.wait_for_log(
        &format!(
            "upstream app: backend {} is down: cannot connect",
            flaky.addr()
        ),
        WAIT,
    );
    for _ in 0..6 {
        assert_eq!(get_backend(&proxy, "/"), "steady");
    }
    flaky.restart();
    proxy.wait_for_log(
        &format!("upstream app: backend {} is up again", flaky.addr()),
        WAIT,
    );
    until_backend(&proxy, "flaky", WAIT);
}

#[test]
fn when_every_backend_fails_its_health_check_requests_still_go_to_them() {
    let only = Upstream::start("only");
    let upstream = format!(
        r#"{{ backends: ["{}"], health_check: {{ path: /status/503, interval: 100ms }} }}"#,
        only.addr()
    );
    let proxy = Proxy::start(&config(None, &app(&upstream)));
    proxy.wait_for_log(
        &format!(
            "upstream app: backend {} is down: GET /status/503 answered 503",
            only.addr()
        ),
        WAIT,
    );
    proxy.wait_for_log(
        "upstream app: every backend is down; requests are still sent to them",
        WAIT,
    );
    assert_eq!(
        get_backend(&proxy, "/anyway"),
        "only",
        "tried anyway, as nginx"
    );
}

#[test]
fn passive_ejection_skips_a_failing_backend_for_fail_timeout() {
    let rx = OtlpReceiver::grpc();
    let alive = Upstream::start("alive");
    let (dead, dead_too) = (dead_addr(), dead_addr());
    let body = format!(
        r#"routes:
  - {{ name: eject, match: {{ path_prefix: /eject }}, upstream: eject }}
  - {{ name: keep, match: {{ path_prefix: /keep }}, upstream: keep }}
upstreams:
  eject: {{ backends: ["{dead}", "{a}"], fail_timeout: 2s }}
  keep: {{ backends: ["{dead_too}", "{a}"], max_fails: 0 }}
"#,
        a = alive.addr()
    );
    let proxy = Proxy::start(&config(Some(&rx), &body));
    let started = Instant::now();
    for i in 0..5 {
        assert_eq!(get_backend(&proxy, &format!("/eject/{i}")), "alive");
    }
    let within_fail_timeout = started.elapsed() < Duration::from_secs(2);
    proxy.wait_for_log(
        &format!(
            "upstream eject: backend {dead} is down: 1 failed attempt in a row (last: connection_refused); not used for 2s"
        ),
        WAIT,
    );
    for i in 0..4 {
        assert_eq!(get_backend(&proxy, &format!("/keep/{i}")), "alive");
    }
    let spans = rx.wait_for_spans(5 * 2 + 1 + 4 * 2 + 2, WAIT);
    let by_path = attempts_by_path(&spans);
    let tries = |p: &str| by_path.get(p).map_or(0, Vec::len);
    assert_eq!(
        tries("/eject/0"),
        2,
        "the first request finds the dead backend"
    );
    if within_fail_timeout {
        for i in 1..5 {
            assert_eq!(tries(&format!("/eject/{i}")), 1, "then it is skipped");
        }
    }
    let keep: Vec<usize> = (0..4).map(|i| tries(&format!("/keep/{i}"))).collect();
    assert_eq!(keep, [2, 1, 2, 1], "max_fails: 0 keeps trying it in turn");
    assert!(
        !proxy
            .logs()
            .contains(&format!("backend {dead_too} is down")),
        "max_fails: 0 never ejects"
    );

    // After fail_timeout it is tried again (and fails again).
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    loop {
        i += 1;
        let path = format!("/eject/again-{i}");
        assert_eq!(get_backend(&proxy, &path), "alive");
        // The request's spans: its SERVER span ends last, so its CLIENT spans are in by then
        // (they share an export batch or came before).
        let deadline_spans = Instant::now() + WAIT;
        let tried = loop {
            let by = attempts_by_path(&rx.spans());
            if let Some(c) = by.get(&path).filter(|c| !c.is_empty()) {
                break c.len();
            }
            assert!(Instant::now() < deadline_spans, "no spans for {path}");
            std::thread::sleep(Duration::from_millis(10));
        };
        if tried == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead backend was never tried again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn get_is_retried_on_another_backend_with_a_span_per_attempt_and_post_is_not() {
    let rx = OtlpReceiver::grpc();
    let hangup = HangupBackend::start();
    let alive = Upstream::start("alive");
    let upstream = format!(
        r#"{{ backends: ["{}", "{}"], retries: 1, max_fails: 0 }}"#,
        hangup.addr(),
        alive.addr()
    );
    let proxy = Proxy::start(&config(Some(&rx), &app(&upstream)));

    // Round robin: /r1 goes to the backend that hangs up, is retried on the other one.
    assert_eq!(get_backend(&proxy, "/r1"), "alive");
    assert_eq!(get_backend(&proxy, "/r2"), "alive");
    let post = http_request(&proxy.addr(), "POST", "/r3", &[], b"hello");
    assert_eq!(post.status, 502, "a sent POST is not retried");
    assert_eq!(
        hangup.seen(),
        [("GET".into(), "/r1".into()), ("POST".into(), "/r3".into())]
    );
    let at_alive: Vec<(String, String)> = alive
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path_and_query.clone()))
        .collect();
    assert_eq!(
        at_alive,
        [("GET".into(), "/r1".into()), ("GET".into(), "/r2".into())]
    );

    let spans = rx.wait_for_spans(3 + 2 + 1, WAIT);
    let by_path = attempts_by_path(&spans);
    let r1 = &by_path["/r1"];
    assert_eq!(r1.len(), 2, "{r1:#?}");
    assert!(
        matches!(
            r1[0].attr_str("error.type"),
            Some("connection_closed" | "io_error")
        ),
        "{:?}",
        r1[0]
    );
    assert_eq!(r1[0].attr_int("http.request.resend_count"), None);
    assert_eq!(r1[1].attr_int("http.request.resend_count"), Some(1));
    assert_eq!(r1[1].attr_int("http.response.status_code"), Some(200));
    let tp = alive.requests()[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(
        tp.contains(&r1[1].span_id),
        "the retry carries its own span id"
    );
    assert_eq!(by_path["/r2"].len(), 1);
    assert_eq!(by_path["/r3"].len(), 1, "one attempt for the POST");
    proxy.wait_for_log("upstream failed: 502 POST /r3", WAIT);
    proxy.wait_for_log(
        "upstream attempt failed, trying again: GET /r1 route=all",
        WAIT,
    );
}

#[test]
fn a_body_is_resent_only_while_it_is_still_buffered() {
    let hangup = HangupBackend::start();
    let alive = Upstream::start("alive");
    let upstream = format!(
        r#"{{ backends: ["{}", "{}"], max_fails: 0 }}"#,
        hangup.addr(),
        alive.addr()
    );
    let proxy = Proxy::start(&config(None, &app(&upstream)));
    let small = vec![b's'; 1024];
    let r = http_request(&proxy.addr(), "PUT", "/small", &[], &small);
    assert_eq!(backend_of(&r), "alive", "an idempotent PUT is retried");
    let got = alive.requests();
    assert_eq!(got[0].body, small, "with its whole body");
    assert_eq!(get_backend(&proxy, "/turn"), "alive");
    // Larger than Pingora's 64 KiB retry buffer: once sent, it cannot be sent again.
    let big = vec![b'b'; 200 * 1024];
    let r = http_request(&proxy.addr(), "PUT", "/big", &[], &big);
    assert_eq!(r.status, 502);
    assert!(
        alive.requests().iter().all(|r| r.path_and_query != "/big"),
        "not retried"
    );
    assert_eq!(hangup.seen().len(), 2);
}

#[test]
fn connect_failures_are_retried_for_any_method_unless_retries_is_0() {
    let rx = OtlpReceiver::grpc();
    let alive = Upstream::start("alive");
    let (dead, dead_too) = (dead_addr(), dead_addr());
    let body = format!(
        r#"routes:
  - {{ name: retry, match: {{ path_prefix: /retry }}, upstream: retry }}
  - {{ name: once, match: {{ path_prefix: /once }}, upstream: once }}
upstreams:
  retry: {{ backends: ["{dead}", "{a}"] }}
  once: {{ backends: ["{dead_too}", "{a}"], retries: 0 }}
"#,
        a = alive.addr()
    );
    let proxy = Proxy::start(&config(Some(&rx), &body));
    let r = http_request(&proxy.addr(), "POST", "/retry/post", &[], b"payload");
    assert_eq!(
        backend_of(&r),
        "alive",
        "nothing was sent: a POST may go elsewhere"
    );
    assert_eq!(alive.requests()[0].body, b"payload");
    assert_eq!(http_get(&proxy.addr(), "/once/get", &[]).status, 502);
    let spans = rx.wait_for_spans(3 + 2, WAIT);
    let by_path = attempts_by_path(&spans);
    assert_eq!(by_path["/retry/post"].len(), 2);
    assert_eq!(by_path["/once/get"].len(), 1, "retries: 0");
}

#[test]
fn total_timeout_bounds_every_attempt_together() {
    let rx = OtlpReceiver::grpc();
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    // Alone, each attempt could wait 1 s for its answer: 2 s for both. `timeout` stops the
    // second one when 1.2 s have passed since the first began.
    let upstream = format!(
        r#"{{ backends: ["{}", "{}"], read_timeout: 1s, timeout: 1200ms }}"#,
        a.addr(),
        b.addr()
    );
    let proxy = Proxy::start(&config(Some(&rx), &app(&upstream)));
    let t = Instant::now();
    let r = http_get(&proxy.addr(), "/slow/5000", &[]);
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(1150) && took < Duration::from_millis(1900),
        "took {took:?}"
    );
    let spans = rx.wait_for_spans(3, WAIT);
    let tries = &attempts_by_path(&spans)["/slow/5000"];
    assert_eq!(tries.len(), 2, "the GET was retried once");
    assert!(tries
        .iter()
        .all(|c| c.attr_str("error.type") == Some("timeout")));
    let log = proxy.wait_for_log("upstream failed: 504 GET /slow/5000", WAIT);
    assert!(log.contains("error=timeout"), "{log}");
}

#[test]
fn total_timeout_cuts_a_single_slow_attempt() {
    let only = Upstream::start("only");
    let upstream = format!(r#"{{ backends: ["{}"], timeout: 300ms }}"#, only.addr());
    let proxy = Proxy::start(&config(None, &app(&upstream)));
    let t = Instant::now();
    let r = http_get(&proxy.addr(), "/slow/5000", &[]);
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(get_backend(&proxy, "/fast"), "only", "keeps serving");
}

#[test]
fn bad_upstream_settings_are_refused_with_file_key_and_reason() {
    // (upstream YAML, key and reason in the message, why)
    let cases = [
        (
            r#"{ backends: [{ addr: "127.0.0.1:9", weight: 0 }] }"#,
            "upstreams.app.backends[0].weight: 0 is not a weight from 1 to 256",
            "weight 0",
        ),
        (
            r#"{ backends: ["127.0.0.1:9"], lb: hash }"#,
            "upstreams.app.hash_on: lb: hash needs hash_on",
            "hash without a key",
        ),
        (
            r#"{ backends: ["127.0.0.1:9"], lb: fastest }"#,
            "upstreams.app.lb: unknown lb \"fastest\"",
            "unknown algorithm",
        ),
        (
            r#"{ backends: ["127.0.0.1:9"], health_check: { interval: 0s } }"#,
            "upstreams.app.health_check.interval: must be greater than zero",
            "zero interval",
        ),
        (
            r#"{ backends: ["127.0.0.1:9"], health_check: { status: "9xx" } }"#,
            "upstreams.app.health_check.status[0]: invalid status",
            "bad expected status",
        ),
        (
            r#"{ backends: ["127.0.0.1:9"], retries: 20 }"#,
            "upstreams.app.retries: 20 is too many",
            "too many retries",
        ),
        (
            r#"{ backends: ["127.0.0.1:9"], tls: {}, health_check: { path: /healthz } }"#,
            "upstreams.app.health_check.type: http health checks are sent without TLS",
            "a plain-text probe of a TLS upstream would take every backend out",
        ),
        (
            r#"{ backends: ["127.0.0.1:9"], timeout: soon }"#,
            "upstreams.app.timeout: invalid duration",
            "total timeout without a unit",
        ),
    ];
    for (upstream, want, why) in cases {
        let yaml = format!("listen: [\"127.0.0.1:0\"]\n{}", app(upstream));
        let (code, out) = run_check(&yaml);
        assert_eq!(code, 64, "{why}: {out}");
        assert!(out.contains(".yaml: "), "{why}: names the file: {out}");
        assert!(out.contains(want), "{why}: {out}");
    }
}
