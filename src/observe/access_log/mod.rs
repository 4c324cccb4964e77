//! The access log (issue 13 §1): one line per finished request, in `json` or nginx's
//! `combined` format, kept or skipped by the filters, and written by a thread of its own.
//!
//! - [`AccessLogSettings`]: what the `access_log` key says, checked (the config builds it).
//! - [`AccessLog`]: one config generation's log (its format, filters and query redaction),
//!   held by the proxy's gateway; [`AccessLog::record`] is the one call per request.
//! - `format`: the two line formats, written into a byte buffer; `clock`: their timestamps;
//!   `filter`: which lines are kept.
//! - [`AccessLogSink`] (`writer`): the bounded queue and the writer thread, shared by every
//!   generation. It reopens the file on SIGUSR1 and moves to a new path on reload;
//!   [`AccessLogStats`] counts what was written and what was lost.
//!
//! On the request thread the cost is one filter check, one line formatted into a buffer of its
//! own and one `try_send`: a full queue drops the line and counts it, and the request never
//! waits for the disk.

mod clock;
mod filter;
mod format;
mod writer;

pub use filter::Filters;
pub use writer::{AccessLogSink, AccessLogStats};

use crate::exchange::Exchange;
use crate::trace::capture::Capture;
use std::path::PathBuf;

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
    /// A file, appended to and created when missing (a FIFO or a device is written as it is).
    File(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stdout => f.write_str("stdout"),
            Target::Stderr => f.write_str("stderr"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line, with the span's semantic-convention names.
    #[default]
    Json,
    /// nginx's `combined`, then ` trace_id=… span_id=… rt=…`.
    Combined,
}

/// The checked `access_log` key.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogSettings {
    pub target: Target,
    pub format: Format,
    pub filters: Filters,
    /// Lines the queue holds before new ones are dropped (`access_log.queue_size`); fixed for
    /// the life of the process.
    pub queue_size: usize,
    /// How `url.query` (and the query of a logged `Referer`) is redacted: the SERVER span's
    /// rules (`telemetry.capture.query`).
    pub query: Capture,
}

/// One config generation's access log: what to write, and the shared writer to send it to.
#[derive(Debug)]
pub struct AccessLog {
    format: Format,
    filters: Filters,
    query: Capture,
    sink: AccessLogSink,
}

/// The status written for a request that got none: nginx's 499 ("client closed request"),
/// since a request ends without a response only when its client went away or its connection
/// broke (`proxy::errors::status_for` gives 0 for those alone).
pub const CLIENT_CLOSED: u16 = 499;

/// The status a line shows for `x`: the one written, or [`CLIENT_CLOSED`] when none was.
pub fn logged_status(x: &Exchange<'_>) -> u16 {
    if x.status == 0 {
        CLIENT_CLOSED
    } else {
        x.status
    }
}

impl AccessLog {
    /// The log of a generation with `settings`, writing through `sink`.
    pub fn new(settings: &AccessLogSettings, sink: &AccessLogSink) -> AccessLog {
        AccessLog {
            format: settings.format,
            filters: settings.filters.clone(),
            query: settings.query.clone(),
            sink: sink.clone(),
        }
    }

    /// Writes the line of a finished request, unless the filters skip it. Never blocks.
    pub fn record(&self, x: &Exchange<'_>) {
        if !self.filters.keep(logged_status(x), x.duration) {
            return;
        }
        let mut line = Vec::with_capacity(format::LINE_CAPACITY);
        match self.format {
            Format::Json => format::json(&mut line, x, &self.query),
            Format::Combined => format::combined(&mut line, x, &self.query),
        }
        line.push(b'\n');
        self.sink.send(line);
    }

    /// The writer's counters (shared by every generation).
    pub fn stats(&self) -> &std::sync::Arc<AccessLogStats> {
        self.sink.stats()
    }
}
