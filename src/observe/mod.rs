//! What the proxy records about finished requests besides their spans: the error line of an
//! upstream failure ([`upstream_failure`]), the metrics ([`metrics`]) and the access log
//! ([`access_log`]).
//!
//! Every consumer takes the one [`Exchange`] the proxy builds when a request ends (in
//! `logging`, the last phase, which runs for every request however it ended) and none goes
//! back to the Pingora session for facts the record has. Where each consumer runs is decided
//! by its cost and by what it must never do, which is block a request:
//! - **On the request thread**, because they are cheap and bounded: metric updates (atomic
//!   additions to counters and histogram buckets), and the rare error lines below, which go
//!   to the process logger.
//! - **Behind a bounded queue, to a thread of their own**, because they write to files or
//!   sockets: spans (the tracing plugin's pipeline), access-log lines and the trace viewer's
//!   records. A full queue drops and counts, as the span pipeline does; the request never
//!   waits.

pub mod access_log;
mod log;
pub mod metrics;

pub use self::access_log::AccessLog;
pub use self::log::upstream_failure;

pub use crate::exchange::Exchange;
