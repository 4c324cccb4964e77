//! `server`: process-level settings (worker threads, shutdown, config watching, the graceful
//! upgrade socket). They take effect at start; a reload that changes them says so.

use super::check::{parse_size, Ctx, HOUR};
use super::defaults;
use super::file::{FileServer, FileSize};
use super::ConfigError;
use crate::listeners::HttpLimits;
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
    /// Client connection timeouts and head limits.
    pub http: HttpLimits,
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
        http: check_http_limits(c, f)?,
    };
    if server.upgrade_sock.trim().is_empty() {
        return Err(c.err("server.upgrade_sock", "must not be empty"));
    }
    Ok(server)
}

/// Checks the client connection limits (`server.header_read_timeout` … `max_connections`);
/// the defaults are [`HttpLimits::default`].
fn check_http_limits(c: &Ctx<'_>, f: &FileServer) -> Result<HttpLimits, ConfigError> {
    let d = HttpLimits::default();
    let time = |key: &str, v: &Option<String>, default: Duration, min: Duration| {
        let full = format!("server.{key}");
        let t = c.duration(&full, v, default)?;
        if t < min || t > Duration::from_secs(86_400) {
            return Err(c.err(full, format!("must be from {min:?} to 24h")));
        }
        Ok(t)
    };
    let size = |key: &str, v: &Option<FileSize>, default: usize, min: u64, max: u64| {
        let full = format!("server.{key}");
        let n = match v {
            None => return Ok(default),
            Some(v) => parse_size(v).map_err(|r| c.err(&full, r))?,
        };
        if !(min..=max).contains(&n) {
            return Err(c.err(full, format!("must be from {min} to {max} bytes")));
        }
        Ok(n as usize)
    };
    let ms = Duration::from_millis(10);
    let limits = HttpLimits {
        header_read_timeout: time(
            "header_read_timeout",
            &f.header_read_timeout,
            d.header_read_timeout,
            ms,
        )?,
        keepalive_timeout: time(
            "keepalive_timeout",
            &f.keepalive_timeout,
            d.keepalive_timeout,
            Duration::ZERO,
        )?,
        body_read_timeout: time(
            "body_read_timeout",
            &f.body_read_timeout,
            d.body_read_timeout,
            ms,
        )?,
        max_header_size: size(
            "max_header_size",
            &f.max_header_size,
            d.max_header_size,
            1024,
            1 << 20,
        )?,
        max_header_line: size(
            "max_header_line",
            &f.max_header_line,
            d.max_header_line,
            256,
            1 << 20,
        )?,
        max_header_count: match f.max_header_count {
            None => d.max_header_count,
            Some(n @ 1..=256) => n,
            Some(_) => return Err(c.err("server.max_header_count", "must be from 1 to 256")),
        },
        max_requests_per_connection: match f.max_requests_per_connection {
            None => d.max_requests_per_connection,
            Some(n @ 1..) => n,
            Some(0) => {
                return Err(c.err(
                    "server.max_requests_per_connection",
                    "must be at least 1 (1 turns keep-alive off)",
                ))
            }
        },
        max_connections: match f.max_connections {
            None => None,
            Some(n @ 1..=10_000_000) => Some(n),
            Some(_) => return Err(c.err("server.max_connections", "must be from 1 to 10000000")),
        },
    };
    if limits.max_header_line > limits.max_header_size {
        return Err(c.err(
            "server.max_header_line",
            format!(
                "must not exceed server.max_header_size ({} bytes)",
                limits.max_header_size
            ),
        ));
    }
    Ok(limits)
}
