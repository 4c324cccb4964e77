//! Debian's headless Chromium, for the trace viewer's browser test: the page is rendered by
//! a real browser, its scripts run, and the test reads what it drew.
//!
//! * [`dump_dom`]: the DOM after the page's scripts ran (`--dump-dom`), as HTML text.
//! * [`screenshot`]: a PNG of the page at a given window size.
//! * [`artifact_dir`]: where tests keep such screenshots, under the target directory.
//!
//! Every run gets a fresh profile directory, has no network beyond the URL's own requests
//! (no background, component or sync traffic, no QUIC), and runs in virtual time for up to
//! 5 s, so timers the page sets (its auto-refresh) fire without the test waiting for them.
//! A run that takes longer than 60 s of wall-clock time is killed and the test fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one browser run may take, in wall-clock time.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The flags of every run: no sandbox (tests may run as root, in a container), no GPU, and
/// nothing that talks to the network or the desktop on its own.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=5000",
];

/// The `chromium` binary: `$CHROMIUM` or `chromium` on the `PATH`. Panics with what to install
/// when it is missing: the test that needs it must fail, not pass without running.
pub fn chromium_bin() -> String {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return p;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| {
            panic!(
                "the chromium binary is missing: install Debian's chromium package \
                 (scripts/deps.sh does), or set CHROMIUM to its path"
            )
        })
}

/// The DOM of `url` once its scripts ran (and its timers, for up to 5 s of virtual time).
pub fn dump_dom(url: &str) -> String {
    let out = run(url, &["--dump-dom".to_owned()]);
    assert!(!out.trim().is_empty(), "chromium dumped no DOM for {url}");
    out
}

/// A screenshot of `url`, `width` × `height` pixels, written to `path` as a PNG.
pub fn screenshot(url: &str, path: &Path, width: u32, height: u32) {
    let _ = std::fs::remove_file(path);
    run(
        url,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_owned(),
        ],
    );
    let png = std::fs::read(path)
        .unwrap_or_else(|e| panic!("chromium wrote no screenshot of {url} to {path:?}: {e}"));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 8,
        "the screenshot of {url} at {path:?} is not a PNG ({} bytes)",
        png.len()
    );
}

/// `test-artifacts/` in the target directory (`$CARGO_TARGET_DIR`, else the crate's
/// `target/`), created if need be: screenshots kept after the test for a person to look at.
pub fn artifact_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map(|t| manifest.join(t))
        .unwrap_or_else(|| manifest.join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {dir:?}: {e}"));
    dir
}

/// A browser run: its renderer, GPU and other helper processes share its process group,
/// which is killed when the run ends, however it ends.
struct Run {
    child: Child,
}

impl Drop for Run {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs Chromium on `url` with [`FLAGS`], a fresh profile and `extra`; returns its stdout.
/// Panics with its stderr when it fails or outlives [`TIMEOUT`].
fn run(url: &str, extra: &[String]) -> String {
    let dir = tempfile::Builder::new()
        .prefix("tracegate-chromium-")
        .tempdir()
        .expect("temp dir");
    // Output goes to files, not pipes: a large DOM must not block the browser on a full pipe
    // while this thread waits for it to exit.
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let bin = chromium_bin();
    let child = Command::new(&bin)
        .args(FLAGS)
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let mut run = Run { child };
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match run.child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("waiting for chromium on {url}: {e}"),
        }
        if Instant::now() >= deadline {
            drop(run);
            panic!(
                "chromium did not finish {url} within {TIMEOUT:?}; killed. Its stderr:\n{}",
                stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(run);
    assert!(
        status.success(),
        "chromium on {url} exited with {status}. Its stderr:\n{}",
        stderr()
    );
    std::fs::read_to_string(&stdout_path).unwrap_or_else(|e| panic!("chromium's stdout: {e}"))
}
