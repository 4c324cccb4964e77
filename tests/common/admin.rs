//! The admin listener from outside: `/metrics` scraped and parsed with a real parser
//! (`prometheus-parse` for the Prometheus text format), and a real Prometheus server that
//! scrapes it.
//!
//! * [`scrape`] / [`sample`]: one scrape of the text format, and the value of one sample.
//! * [`PrometheusServer`]: Debian's `prometheus` binary, started on a free port with exemplar
//!   storage and a scrape config of the test's; stopped (by its PID) and its data removed on
//!   drop. [`PrometheusServer::query`] and [`PrometheusServer::query_exemplars`] read its
//!   HTTP API.

use super::{http_get, POLL_INTERVAL};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `GET /metrics` (the Prometheus text format), parsed.
pub fn scrape(admin: &str) -> prometheus_parse::Scrape {
    let r = http_get(admin, "/metrics", &[]);
    assert_eq!(r.status, 200, "/metrics: {}", r.body_str());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "a plain scrape gets the text format: {:?}",
        r.header("content-type")
    );
    let text = r.body_str();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("the scrape does not parse: {e}\n{text}"))
}

/// The value of the first sample named `name` whose labels include all of `labels` (for a
/// histogram sample, its `+Inf` bucket: the count).
pub fn sample(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

/// The `prometheus` binary: `$PROMETHEUS` or `prometheus` on the `PATH`. Panics with what to
/// install when it is missing: the test that needs it must fail, not pass without running.
pub fn prometheus_bin() -> String {
    if let Ok(p) = std::env::var("PROMETHEUS") {
        return p;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| {
            panic!(
                "the prometheus binary is missing: install Debian's prometheus package \
                 (scripts/deps.sh does), or set PROMETHEUS to its path"
            )
        })
}

/// A Prometheus server of the test's own.
pub struct PrometheusServer {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus with `scrape_configs` (YAML, the list under the key) on a free port,
    /// scraping every second, with `--enable-feature=exemplar-storage`; returns once its API
    /// answers.
    pub fn start(scrape_configs: &str) -> PrometheusServer {
        let dir = tempfile::Builder::new()
            .prefix("tracegate-prometheus-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }}\n\
                 scrape_configs:\n{scrape_configs}"
            ),
        )
        .expect("write prometheus.yml");
        // Prometheus cannot report a port it picked, so the port comes from a socket bound to
        // port 0 and closed just before Prometheus binds it.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").to_string()
        };
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus_bin()));
        let mut p = PrometheusServer {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = super::try_http_request(&p.addr, "GET", "/-/ready", &[], b"") {
                if r.status == 200 {
                    return p;
                }
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}) at start:\n{}", p.log());
            }
            if Instant::now() >= deadline {
                panic!("prometheus was not ready within 60 s:\n{}", p.log());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Prometheus's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn api(&self, path_and_query: &str) -> serde_json::Value {
        let r = http_get(&self.addr, path_and_query, &[]);
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{path_and_query}: not JSON ({e}): {}", r.body_str()));
        assert_eq!(v["status"], "success", "{path_and_query}: {v}");
        v["data"].clone()
    }

    /// An instant query (`/api/v1/query`): the result vector.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let v = self.api(&format!("/api/v1/query?query={}", encode(promql)));
        v["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of an instant query whose result has one series; `None` while it has
    /// none.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let r = self.query(promql);
        let v = r.first()?["value"][1].as_str()?.parse().ok()?;
        assert_eq!(r.len(), 1, "{promql}: one series expected: {r:?}");
        Some(v)
    }

    /// Polls `promql` until its value is `want`; panics with the last value after `timeout`.
    pub fn wait_for_value(&self, promql: &str, want: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.value(promql);
            if got == Some(want) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{promql}: {got:?} after {timeout:?}, expected {want}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `/api/v1/query_exemplars` over the last hour: the label sets of every exemplar.
    pub fn query_exemplars(&self, promql: &str) -> Vec<serde_json::Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let data = self.api(&format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            encode(promql),
            now - 3600,
            now + 60
        ));
        data.as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .map(|e| e["labels"].clone())
            .collect()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL_INTERVAL);
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A query parameter, percent-encoded.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
