//! The proxy's own log lines about finished requests: one error line for a request whose
//! upstream failed, naming what an operator needs to find it (route, backend, attempts, trace).

use crate::exchange::Exchange;

/// Logs `upstream failed: …` for a request that failed at its upstream; nothing otherwise.
/// The query is left out of the path (it may carry secrets).
pub fn upstream_failure(x: &Exchange<'_>) {
    let Some(f) = x.failure.as_ref().filter(|f| f.upstream) else {
        return;
    };
    let route = x.route.unwrap_or("-");
    let backend = x
        .last_attempt()
        .map_or_else(|| "-".to_owned(), |a| a.backend.to_string());
    let trace_id = x
        .trace
        .map_or_else(|| "-".to_owned(), |t| t.trace_id().to_string());
    log::error!(
        "upstream failed: {} {} {} route={route} backend={backend} error={} attempts={} trace_id={trace_id}: {}",
        x.status,
        x.method,
        x.path,
        f.error_type,
        x.attempts.len(),
        f.message,
    );
}
