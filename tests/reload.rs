//! Config reload (SIGHUP and file watch) and graceful upgrade (`--upgrade` + SIGQUIT), end to
//! end: the real binary, real upstreams, real connections held across the change.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// Replaces the config file the way an operator's tooling should: write aside, then rename.
fn replace_config(path: &Path, yaml: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, yaml).expect("write new config");
    std::fs::rename(&tmp, path).expect("rename new config into place");
}

fn proxy_config(server: &str, telemetry: &str, backend: &Upstream) -> String {
    format!(
        r#"listen: ["127.0.0.1:0"]
server: {{ {server} }}
telemetry: {{ exporter: {{ protocol: none }}, {telemetry} }}
routes:
  - name: all
    match: {{ path_prefix: / }}
    upstream: pool
upstreams:
  pool: {{ backends: ["{}"] }}
"#,
        backend.addr()
    )
}

/// One HTTP/1.1 connection kept open across requests.
struct KeepAlive {
    addr: String,
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(addr: &str) -> KeepAlive {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).unwrap();
        KeepAlive {
            addr: addr.to_owned(),
            reader: BufReader::new(s),
        }
    }

    fn get(&mut self, path: &str) -> Response {
        let raw = build_request(
            &self.addr,
            "GET",
            path,
            &[("Connection", "keep-alive")],
            b"",
        );
        self.reader
            .get_mut()
            .write_all(&raw)
            .expect("write on the kept connection");
        read_response(&mut self.reader, false).expect("response on the kept connection")
    }
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn sighup_swaps_routes_and_tracing_options_without_dropping_connections() {
    let old = Upstream::start("old");
    let new = Upstream::start("new");
    let mut proxy = Proxy::start(&proxy_config(
        "watch_config: false",
        "traceresponse: false",
        &old,
    ));
    let addr = proxy.addr();

    let mut kept = KeepAlive::connect(&addr);
    let first = kept.get("/");
    assert_eq!((first.status, body(&first).as_str()), (200, "old"));
    assert!(first.header("traceresponse").is_none());

    // A request in flight at the old backend while the config changes.
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || http_get(&addr, "/slow/1500", &[]))
    };
    old.wait_for_requests(2, WAIT);

    replace_config(
        proxy.config_path(),
        &proxy_config("watch_config: false", "traceresponse: true", &new),
    );
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("config reloaded (SIGHUP): 1 routes, 1 upstreams", WAIT);

    let after = kept.get("/");
    assert_eq!(
        (after.status, body(&after).as_str()),
        (200, "new"),
        "the kept-alive connection serves its next request with the new config"
    );
    assert!(
        after.header("traceresponse").is_some(),
        "telemetry options are part of the reload"
    );
    let done = in_flight.join().expect("in-flight request thread");
    assert_eq!(
        (done.status, body(&done).as_str()),
        (200, "old"),
        "the request in flight finishes at the backend it started with"
    );
    assert_eq!(body(&http_get(&addr, "/", &[])), "new");
    assert!(proxy.is_running());
    assert!(
        !proxy.logs().contains("takes a restart"),
        "routes and options need no restart:\n{}",
        proxy.logs()
    );
}

#[test]
fn an_invalid_config_is_refused_with_the_check_message_and_the_old_one_keeps_serving() {
    let up = Upstream::start("up");
    let good = proxy_config("watch_config: false", "traceresponse: false", &up);
    let mut proxy = Proxy::start(&good);
    let addr = proxy.addr();

    let bad = good.replace("upstream: pool", "upstream: nope");
    replace_config(proxy.config_path(), &bad);
    let check = std::process::Command::new(tracegate_bin())
        .args(["--check", "--config"])
        .arg(proxy.config_path())
        .output()
        .expect("run --check");
    assert_eq!(check.status.code(), Some(64));
    let check_message = String::from_utf8_lossy(&check.stderr);
    let check_message = check_message
        .trim()
        .strip_prefix("tracegate: ")
        .expect("--check names the program");
    assert!(
        check_message.contains("routes[0].upstream"),
        "{check_message}"
    );

    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log(
        &format!(
            "config reload (SIGHUP) refused, still serving the previous config: {check_message}"
        ),
        WAIT,
    );
    let r = http_get(&addr, "/", &[]);
    assert_eq!(
        (r.status, body(&r).as_str()),
        (200, "up"),
        "the old config serves"
    );
    assert!(proxy.is_running());

    // A fixed file is taken on the next signal.
    replace_config(
        proxy.config_path(),
        &good.replace("name: all", "name: fixed"),
    );
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("config reloaded (SIGHUP)", WAIT);
}

#[test]
fn a_changed_file_is_reloaded_without_a_signal_and_restart_only_keys_are_reported() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let server = "watch_config: true, watch_interval: 100ms";
    let proxy = Proxy::start(&proxy_config(server, "service_name: one", &a));
    let addr = proxy.addr();
    assert_eq!(body(&http_get(&addr, "/", &[])), "a");

    replace_config(
        proxy.config_path(),
        &proxy_config(server, "service_name: two", &b),
    );
    proxy.wait_for_log("config reloaded (file changed)", WAIT);
    assert_eq!(body(&http_get(&addr, "/", &[])), "b");
    proxy.wait_for_log(
        "config reload: telemetry.service_name changed; that takes a restart",
        WAIT,
    );

    // A broken file is refused once, not on every poll.
    replace_config(proxy.config_path(), "listen: [oops");
    proxy.wait_for_log("config reload (file changed) refused", WAIT);
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        assert_eq!(body(&http_get(&addr, "/", &[])), "b");
    }
    assert_eq!(proxy.logs().matches("refused, still serving").count(), 1);
}

/// A port that was free a moment ago: graceful upgrade needs both processes to name the same
/// address, so port 0 cannot be used here.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

#[test]
fn graceful_upgrade_hands_the_listener_over_without_refusing_a_connection() {
    let up = Upstream::start("up");
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("upgrade.sock");
    let port = free_port();
    let config = format!(
        r#"listen: ["127.0.0.1:{port}"]
server: {{ grace_period: 1s, shutdown_timeout: 1s, upgrade_sock: "{}" }}
telemetry: {{ exporter: {{ protocol: none }} }}
routes:
  - name: all
    upstream: pool
upstreams:
  pool: {{ backends: ["{}"] }}
"#,
        sock.display(),
        up.addr()
    );
    let mut old = Proxy::start(&config);
    let addr = old.addr();
    assert_eq!(http_get(&addr, "/", &[]).status, 200);

    // Clients keep connecting during the whole hand-over.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match try_http_request(&addr, "GET", "/", &[], b"") {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failed.push(format!("status {}", r.status)),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        })
    };

    // The new process waits on the upgrade socket for the old one's listeners.
    let new = {
        let config = config.clone();
        std::thread::spawn(move || Proxy::start_with_args(&config, &["--upgrade"], &[]))
    };
    let deadline = Instant::now() + WAIT;
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the new process never opened {sock:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    old.signal(Signal::SIGQUIT);
    let new = new.join().expect("the new process started");
    let status = old
        .wait_exit(Duration::from_secs(30))
        .expect("the old process exits after its grace period");
    assert!(status.success(), "old process: {status}\n{}", old.logs());
    assert!(
        old.logs().contains("listener sockets sent"),
        "{}",
        old.logs()
    );

    // Served by the new process alone now.
    let r = http_get(&addr, "/", &[]);
    assert_eq!(r.status, 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = clients.join().expect("client thread");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the upgrade: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 0);
    drop(new);
}

#[test]
fn sighup_serves_a_renewed_certificate_to_new_connections() {
    use common::edge::{https_request, wait_listening, EdgeCa, Trust};
    let ca = EdgeCa::new();
    let current = ca.issue(&["a.test"]);
    let renewed = ca.issue(&["a.test"]);
    let mut proxy = Proxy::start(&format!(
        r#"listen: [{{ addr: "127.0.0.1:0", tls: {{ certificates: [{}] }} }}]
server: {{ watch_config: false }}
telemetry: {{ exporter: {{ protocol: none }} }}
routes:
  - name: hello
    respond: {{ body: hi }}
"#,
        current.yaml()
    ));
    let addr = wait_listening(&proxy, 1)[0].1.clone();
    let presented = |proxy: &Proxy| {
        https_request(
            &addr,
            Some("a.test"),
            Trust::Roots(&ca),
            &[b"http/1.1"],
            "/",
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.logs()))
        .peer_cert
    };
    assert_eq!(presented(&proxy).as_deref(), Some(current.der.as_slice()));

    // Renewal writes new files over the old paths (as certbot does); the config is unchanged.
    std::fs::copy(&renewed.cert_file, &current.cert_file).unwrap();
    std::fs::copy(&renewed.key_file, &current.key_file).unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("certificates of 1 TLS listener(s)", WAIT);
    assert_eq!(
        presented(&proxy).as_deref(),
        Some(renewed.der.as_slice()),
        "a new connection gets the renewed certificate"
    );
}

/// What the config fuzz run found, refused by `tracegate --check` with exit 64 and the key,
/// each returning promptly (none of them hangs or runs out of memory).
#[test]
fn check_refuses_unbounded_values_and_files_with_the_key() {
    let base = "listen: [\"127.0.0.1:0\"]\n";
    let deep = format!("{base}a: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    // (yaml, words in the output, why)
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            format!("{base}upstreams: {{ a: {{ backends: [\"127.0.0.1:9\"], timeout: 9223372036854775807s }} }}\n"),
            vec!["upstreams.a.timeout", "at most 24h"],
            "a total timeout that overflowed Instant + Duration on every request",
        ),
        (
            format!("{base}server: {{ threads: 18446744073709551615 }}\n"),
            vec!["server.threads", "at most 1024"],
            "a thread count that panicked at start",
        ),
        (deep, vec!["nested more than 32 levels deep"], "100,000-deep nesting"),
        (
            format!("{base}upstreams: {{ a: {{ backends: [\"127.0.0.1:9\"], tls: {{ ca_file: /dev/zero }} }} }}\n"),
            vec!["upstreams.a.tls.ca_file", "/dev/zero", "not a regular file"],
            "a CA file that never ends",
        ),
        (
            format!("{base}listen: [{{ addr: \"127.0.0.1:0\", tls: {{ certificates: [{{ cert_file: /dev/urandom, key_file: /dev/zero }}] }} }}]\n").replacen(base, "", 1),
            vec!["listen[0].tls.certificates[0].cert_file", "/dev/urandom"],
            "a listener certificate that never ends",
        ),
    ];
    for (yaml, words, why) in &cases {
        let (code, out) = run_check(yaml);
        assert_eq!(code, 64, "{why}: {out}");
        for w in words {
            assert!(out.contains(w), "{why}: {w:?} not in {out}");
        }
    }

    // The config file itself: a FIFO (no writer ever comes) and a device.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("tracegate.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (path, words) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let out = std::process::Command::new(tracegate_bin())
            .args(["--check", "--config"])
            .arg(path)
            .output()
            .expect("run --check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(
            err.contains(words) && err.contains(&path.display().to_string()),
            "{err}"
        );
    }
}

/// A reload meets the same bounds: an over-range value, a file nested too deeply and a FIFO in
/// place of the config are refused, and the running config keeps serving.
#[test]
fn a_reload_refuses_unbounded_files_and_keeps_serving() {
    let up = Upstream::start("up");
    let good = proxy_config("watch_config: false", "traceresponse: false", &up);
    let mut proxy = Proxy::start(&good);
    let addr = proxy.addr();
    let path = proxy.config_path().to_owned();
    let deep = format!("{good}x: {}1{}\n", "[".repeat(50_000), "]".repeat(50_000));
    let over = good.replace("backends: [", "timeout: 9223372036854775807s, backends: [");
    for (text, words) in [
        (deep.as_str(), "nested more than 32 levels deep"),
        (over.as_str(), "upstreams.pool.timeout"),
    ] {
        replace_config(&path, text);
        proxy.signal(Signal::SIGHUP);
        proxy.wait_for_log(
            &format!(
                "still serving the previous config: invalid config: {}: {words}",
                path.display()
            ),
            WAIT,
        );
        let r = http_get(&addr, "/", &[]);
        assert_eq!((r.status, body(&r).as_str()), (200, "up"));
    }
    std::fs::remove_file(&path).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap()
        .success());
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("is not a regular file but a FIFO", WAIT);
    let r = http_get(&addr, "/", &[]);
    assert_eq!((r.status, body(&r).as_str()), (200, "up"));
    // The reload thread did not block on the FIFO: a good file is taken on the next signal.
    std::fs::remove_file(&path).unwrap();
    replace_config(&path, &good.replace("name: all", "name: fixed"));
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for_log("config reloaded (SIGHUP)", WAIT);
}
