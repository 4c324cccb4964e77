//! `server`: process-level settings (worker threads, shutdown, config watching, the graceful
//! upgrade socket). They take effect at start; a reload that changes them says so.

use super::check::{Ctx, HOUR};
use super::defaults;
use super::file::FileServer;
use super::ConfigError;
use std::time::Duration;

/// Process-level settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    /// Reload the config when the file's content changes.
    pub watch_config: bool,
    pub watch_interval: Duration,
    /// Unix socket path for handing the listeners to a new process (`--upgrade`).
    pub upgrade_sock: String,
}

/// The most worker threads `server.threads` takes (each is a runtime of its own).
const MAX_THREADS: usize = 1024;

/// Checks `server`.
pub(super) fn check_server(c: &Ctx<'_>, f: &FileServer) -> Result<ServerSettings, ConfigError> {
    let server = ServerSettings {
        threads: match c.count_in("server.threads", f.threads, 0, 0..=MAX_THREADS)? {
            0 => defaults::threads(),
            n => n,
        },
        grace_period: c.duration_in(
            "server.grace_period",
            &f.grace_period,
            defaults::GRACE_PERIOD,
            Duration::ZERO..=HOUR,
        )?,
        shutdown_timeout: c.duration_in(
            "server.shutdown_timeout",
            &f.shutdown_timeout,
            defaults::SHUTDOWN_TIMEOUT,
            Duration::ZERO..=HOUR,
        )?,
        watch_config: f.watch_config.unwrap_or(defaults::WATCH_CONFIG),
        watch_interval: c.duration_in(
            "server.watch_interval",
            &f.watch_interval,
            defaults::WATCH_INTERVAL,
            Duration::from_millis(100)..=HOUR,
        )?,
        upgrade_sock: f
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| defaults::UPGRADE_SOCK.to_owned()),
    };
    if server.upgrade_sock.trim().is_empty() {
        return Err(c.err("server.upgrade_sock", "must not be empty"));
    }
    Ok(server)
}
