//! The proxy under test, as a process.
//!
//! * [`Proxy`]: runs the real `tracegate` binary against a temporary config file, waits for
//!   its `listening on` line, captures its output, signals it; killed on drop.
//! * [`run_check`] / [`run_check_with_env`]: `tracegate --check`, its exit code and output.
//! * [`tracegate_bin`] / [`write_temp_config`]: the binary under test, and a config file in a
//!   fresh temporary directory.
//! * [`parse_listening_addr`] / [`strip_ansi`]: reading the proxy's log lines.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{lock, POLL_INTERVAL};

/// Path of the `tracegate` binary under test.
pub fn tracegate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracegate")
}

/// Writes `yaml` to `tracegate.yaml` in a fresh temporary directory. Keep the
/// returned `TempDir` alive for as long as the file is needed.
pub fn write_temp_config(yaml: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("tracegate-test-")
        .tempdir()
        .expect("create temp dir");
    let path = dir.path().join("tracegate.yaml");
    std::fs::write(&path, yaml).expect("write temp config");
    (dir, path)
}

/// Removes terminal escape sequences (colour codes) from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters/intermediates until a final byte in 0x40..=0x7e.
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Extracts `HOST:PORT` from a line containing `listening on http://HOST:PORT` (or
/// `https://` for a TLS listener).
pub fn parse_listening_addr(line: &str) -> Option<String> {
    let line = strip_ansi(line);
    let marker = "listening on http://";
    let tls_marker = "listening on https://";
    let (idx, len) = match line.find(marker) {
        Some(i) => (i, marker.len()),
        None => (line.find(tls_marker)?, tls_marker.len()),
    };
    let rest = &line[idx + len..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '-'))
        .collect();
    let addr = addr.trim_end_matches(['.', ':']).to_string();
    if addr.is_empty() {
        None
    } else {
        Some(addr)
    }
}

/// Shared, line-oriented capture of a child's stdout and stderr.
#[derive(Clone, Default)]
struct OutputCapture {
    /// `(is_stderr, line)` in the order lines were read.
    lines: Arc<Mutex<Vec<(bool, String)>>>,
    finished_readers: Arc<AtomicUsize>,
}

impl OutputCapture {
    fn attach<R: Read + Send + 'static>(&self, reader: R, is_stderr: bool) {
        let lines = self.lines.clone();
        let finished = self.finished_readers.clone();
        std::thread::Builder::new()
            .name(
                if is_stderr {
                    "child-stderr"
                } else {
                    "child-stdout"
                }
                .to_string(),
            )
            .spawn(move || {
                let mut reader = BufReader::new(reader);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&buf);
                            let text = text.trim_end_matches(['\n', '\r']);
                            lock(&lines).push((is_stderr, strip_ansi(text)));
                        }
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            })
            .expect("spawn output reader thread");
    }

    fn all(&self) -> String {
        let lines = lock(&self.lines);
        let mut s = String::new();
        for (_, l) in lines.iter() {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn stream(&self, stderr: bool) -> String {
        let lines = lock(&self.lines);
        let mut s = String::new();
        for (_, l) in lines.iter().filter(|(e, _)| *e == stderr) {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn find_stderr<T>(&self, f: impl Fn(&str) -> Option<T>) -> Option<T> {
        lock(&self.lines)
            .iter()
            .filter(|(e, _)| *e)
            .find_map(|(_, l)| f(l))
    }

    /// Waits (bounded) until both reader threads have hit EOF.
    fn wait_drained(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.finished_readers.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

fn tracegate_command(args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(tracegate_bin());
    cmd.args(args);
    // Keep the child hermetic: ambient OpenTelemetry settings must not leak in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn spawn_captured(mut cmd: Command) -> (Child, OutputCapture) {
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", tracegate_bin()));
    let capture = OutputCapture::default();
    capture.attach(child.stdout.take().expect("child stdout"), false);
    capture.attach(child.stderr.take().expect("child stderr"), true);
    (child, capture)
}

/// A running `tracegate` process. Killed on drop if still running.
pub struct Proxy {
    child: Child,
    addr: String,
    capture: OutputCapture,
    config_path: PathBuf,
    exit_status: Option<ExitStatus>,
    _dir: TempDir,
}

impl Proxy {
    /// How long to wait for the `listening on http://` line.
    pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn start(config_yaml: &str) -> Proxy {
        Proxy::start_with_env(config_yaml, &[])
    }

    /// Starts `tracegate --config FILE` with extra environment variables.
    /// Ambient `OTEL_*` variables are removed from the child's environment
    /// and `NO_COLOR=1` is set; `envs` can override both.
    pub fn start_with_env(config_yaml: &str, envs: &[(&str, &str)]) -> Proxy {
        Proxy::start_with_args(config_yaml, &[], envs)
    }

    /// Starts `tracegate --config FILE ARGS...` with extra environment variables (as
    /// [`Proxy::start_with_env`]).
    pub fn start_with_args(config_yaml: &str, args: &[&str], envs: &[(&str, &str)]) -> Proxy {
        let (dir, path) = write_temp_config(config_yaml);
        let mut all: Vec<&std::ffi::OsStr> = vec!["--config".as_ref(), path.as_os_str()];
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        let cmd = tracegate_command(&all, envs);
        let (mut child, capture) = spawn_captured(cmd);

        let deadline = Instant::now() + Self::STARTUP_TIMEOUT;
        let addr = loop {
            if let Some(addr) = capture.find_stderr(parse_listening_addr) {
                break addr;
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    capture.wait_drained(Duration::from_secs(5));
                    // The line may have been read between the two checks.
                    if let Some(addr) = capture.find_stderr(parse_listening_addr) {
                        panic!(
                            "tracegate exited ({status}) right after reporting it was listening \
                             on {addr}\n--- config ---\n{config_yaml}\n--- output ---\n{}",
                            capture.all()
                        );
                    }
                    panic!(
                        "tracegate exited ({status}) before printing 'listening on http://'\n\
                         --- config ---\n{config_yaml}\n--- output ---\n{}",
                        capture.all()
                    );
                }
                Ok(None) => {}
                Err(e) => panic!("try_wait on tracegate failed: {e}"),
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                capture.wait_drained(Duration::from_secs(5));
                panic!(
                    "tracegate did not print 'listening on http://' within {:?}\n\
                     --- config ---\n{config_yaml}\n--- output ---\n{}",
                    Self::STARTUP_TIMEOUT,
                    capture.all()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        };

        Proxy {
            child,
            addr,
            capture,
            config_path: path,
            exit_status: None,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT` of the first reported listener.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// `127.0.0.1:PORT` of the admin listener, from its `admin listener on http://` line
    /// (logged before the proxy's listeners). Panics when there is none.
    pub fn admin_addr(&self) -> String {
        let marker = "admin listener on http://";
        let found = lock(&self.capture.lines).iter().find_map(|(_, l)| {
            let rest = &l[l.find(marker)? + marker.len()..];
            Some(
                rest.split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            )
        });
        found.unwrap_or_else(|| panic!("no admin listener line\n--- output ---\n{}", self.logs()))
    }

    /// Every address reported in a `listening on http://` line so far.
    pub fn listening_addrs(&self) -> Vec<String> {
        lock(&self.capture.lines)
            .iter()
            .filter(|(e, _)| *e)
            .filter_map(|(_, l)| parse_listening_addr(l))
            .collect()
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// All output lines so far (stdout and stderr interleaved in read order).
    pub fn logs(&self) -> String {
        self.capture.all()
    }

    pub fn stderr(&self) -> String {
        self.capture.stream(true)
    }

    pub fn stdout(&self) -> String {
        self.capture.stream(false)
    }

    /// Polls until the output contains `needle`; returns all output. Panics
    /// with the output after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            if Instant::now() >= deadline {
                panic!("tracegate output did not contain {needle:?} within {timeout:?}\n--- output ---\n{logs}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends SIGTERM to the process.
    pub fn sigterm(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Sends an arbitrary signal to the process (no-op once it has exited).
    pub fn signal(&mut self, sig: nix::sys::signal::Signal) {
        if self.exit_status.is_some() {
            return;
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            self.exit_status = Some(status);
            return;
        }
        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        // The child has not been reaped yet, so the pid still refers to it.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .unwrap_or_else(|e| panic!("kill({pid}, {sig:?}) failed: {e}"));
    }

    /// Polls until the process exits or `timeout` passes. After an exit, waits
    /// briefly for the output readers to drain so `logs()` is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exit_status {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exit_status = Some(status);
                    self.capture.wait_drained(Duration::from_secs(5));
                    return Some(status);
                }
                Ok(None) => {}
                Err(e) => panic!("try_wait on tracegate failed: {e}"),
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exit_status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.exit_status.is_none() {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

/// Runs `tracegate --check --config FILE`; returns `(exit code, stdout + stderr)`.
/// The exit code is -1 if the process was killed by a signal.
pub fn run_check(config_yaml: &str) -> (i32, String) {
    run_check_with_env(config_yaml, &[])
}

pub fn run_check_with_env(config_yaml: &str, envs: &[(&str, &str)]) -> (i32, String) {
    let (_dir, path) = write_temp_config(config_yaml);
    let cmd = tracegate_command(
        &["--check".as_ref(), "--config".as_ref(), path.as_os_str()],
        envs,
    );
    let (mut child, capture) = spawn_captured(cmd);
    let timeout = Duration::from_secs(60);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("try_wait on tracegate --check failed: {e}"),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            capture.wait_drained(Duration::from_secs(5));
            panic!(
                "tracegate --check did not exit within {timeout:?}\n--- output ---\n{}",
                capture.all()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    capture.wait_drained(Duration::from_secs(5));
    let output = format!("{}{}", capture.stream(false), capture.stream(true));
    (status.code().unwrap_or(-1), output)
}
