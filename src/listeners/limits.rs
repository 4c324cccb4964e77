//! The limits of a client connection: how long a client may take to send a request head, how
//! long an idle keep-alive connection is kept, how big a head may be, and how many connections
//! are served at once. The config builds [`HttpLimits`]; the connection layer of the proxy
//! ([`crate::proxy::connection`]) enforces it.

use std::time::Duration;

/// Time and size limits of client connections (HTTP/1; HTTP/2 has its own settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// The whole request head must arrive within this time, from its first byte (from the
    /// accept for the first request of a connection). nginx `client_header_timeout`.
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection (no byte of a next request) is closed after this.
    /// nginx `keepalive_timeout`.
    pub keepalive_timeout: Duration,
    /// Longest wait between two reads of a request body. nginx `client_body_timeout`.
    pub body_read_timeout: Duration,
    /// Largest request head (request line and header lines, line ends included): `431`
    /// beyond it.
    pub max_header_size: usize,
    /// Largest single line of the head: `414` for the request line, `431` for a header line.
    pub max_header_line: usize,
    /// Most header lines in a head: `431` beyond it.
    pub max_header_count: usize,
    /// Requests served on one connection before it is closed (nginx `keepalive_requests`).
    pub max_requests_per_connection: u32,
    /// Client connections served at once by the whole process; `None`: derived at start from
    /// the file descriptor limit ([`derived_max_connections`]).
    pub max_connections: Option<usize>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            max_header_line: 16 * 1024,
            max_header_count: 100,
            max_requests_per_connection: 1000,
            max_connections: None,
        }
    }
}

/// File descriptors kept out of reach of client connections, for upstream connections, the
/// connection pool, config and certificate files, logs and exports.
pub const FD_RESERVE: u64 = 256;

/// The process-wide connection limit when none is configured: half of what the file
/// descriptor limit leaves after [`FD_RESERVE`] (every proxied request may hold an upstream
/// connection beside its client one), and at least 16.
pub fn derived_max_connections(fd_limit: u64) -> usize {
    let usable = fd_limit.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(usable.max(16)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_limit_leaves_room_for_upstreams_and_the_reserve() {
        // (fd limit, expected, reason)
        let cases = [
            (1024, 384, "Debian's default soft limit"),
            (20_000, 9872, "a raised limit"),
            (100, 16, "below the reserve: still a few connections"),
            (
                u64::MAX,
                usize::try_from((u64::MAX - FD_RESERVE) / 2).unwrap(),
                "unlimited",
            ),
        ];
        for (fds, want, why) in cases {
            assert_eq!(derived_max_connections(fds), want, "{why}");
        }
    }
}
