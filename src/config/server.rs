//! `server`: process-level settings (worker threads, shutdown, config watching, the graceful
//! upgrade socket). They take effect at start; a reload that changes them says so.

use super::check::Ctx;
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

/// Checks `server`.
pub(super) fn check_server(c: &Ctx<'_>, f: &FileServer) -> Result<ServerSettings, ConfigError> {
    let server = ServerSettings {
        threads: match f.threads {
            None | Some(0) => defaults::threads(),
            Some(n) => n,
        },
        grace_period: c.duration(
            "server.grace_period",
            &f.grace_period,
            defaults::GRACE_PERIOD,
        )?,
        shutdown_timeout: c.duration(
            "server.shutdown_timeout",
            &f.shutdown_timeout,
            defaults::SHUTDOWN_TIMEOUT,
        )?,
        watch_config: f.watch_config.unwrap_or(defaults::WATCH_CONFIG),
        watch_interval: c.duration(
            "server.watch_interval",
            &f.watch_interval,
            defaults::WATCH_INTERVAL,
        )?,
        upgrade_sock: f
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| defaults::UPGRADE_SOCK.to_owned()),
    };
    if server.watch_interval < Duration::from_millis(100) {
        return Err(c.err("server.watch_interval", "must be at least 100ms"));
    }
    if server.upgrade_sock.trim().is_empty() {
        return Err(c.err("server.upgrade_sock", "must not be empty"));
    }
    Ok(server)
}
