//! Shared integration-test harness.
//!
//! Every server binds `127.0.0.1:0` and runs on its own background thread with its
//! own tokio runtime, so the harness is usable from plain `#[test]` functions.
//! Servers stop when their handle is dropped.
//!
//! What each file provides (re-exported here, so tests use `common::Name`):
//! * `receivers.rs`: [`OtlpReceiver`], an in-process OTLP trace collector (gRPC or
//!   HTTP/protobuf, plain or over TLS, accepting gzip) that records every span it receives
//!   ([`ReceivedSpan`], [`AttrValue`]), with the headers and whether the body was compressed;
//!   [`ZipkinReceiver`], an in-process Zipkin collector (`POST /api/v2/spans`, JSON).
//! * `tls.rs`: [`TestCa`], a CA and a server certificate for `localhost`/`127.0.0.1`, made
//!   per test, for the receivers and the TLS upstreams.
//! * `upstream.rs`: [`Upstream`], a real hyper HTTP/1.1 backend that records every request
//!   ([`RecordedRequest`]); [`one_upstream`] config; [`dead_addr`].
//! * `proxy.rs`: [`Proxy`], which runs the real `tracegate` binary against a temporary config
//!   file; [`run_check`] for `tracegate --check`; reading its log lines.
//! * `client.rs`: [`http_get`] / [`http_request`], a tiny blocking HTTP/1.1 client that
//!   writes the request bytes exactly as given, and [`read_response`].
//! * `server.rs`: the background-server plumbing the in-process servers share (not
//!   re-exported).
//!
//! Modules tests name as such:
//! * [`admin`]: scraping the admin listener's `/metrics` with a real parser, and a real
//!   Prometheus server ([`admin::PrometheusServer`]).
//! * [`browser`]: Debian's headless Chromium, for the trace viewer's page: its DOM after the
//!   scripts ran, and screenshots kept as test artifacts.
//! * [`edge`]: TLS listeners, HTTP/2, WebSocket, streaming bodies.
//! * [`backends`]: backends that misbehave on demand, for load-balancing and health tests.
//! * [`raw`]: raw HTTP/1.1 on both sides (a backend with a strict parser that records exactly
//!   what it was sent and answers as scripted, and a client that lists interim responses).
//! * [`h2raw`]: HTTP/2 frames and HPACK written by hand, for malformed and abusive input.
//!
//! This file also keeps the few helpers all of them share: the polling interval, a lock that
//! survives a panicking test thread, and header look-up in recorded header lists.

// Each test binary uses only part of the harness; this covers every file below.
#![allow(dead_code)]

mod client;
mod proxy;
mod receivers;
mod server;
mod tls;
mod upstream;

pub mod admin;
pub mod backends;
pub mod browser;
pub mod edge;
pub mod h2raw;
pub mod raw;
pub mod redis;

// Each test binary uses only part of the harness.
#[allow(unused_imports)]
pub use client::{
    build_request, http_get, http_request, read_response, send_raw, try_http_request, Response,
};
#[allow(unused_imports)]
pub use proxy::{
    parse_listening_addr, run_check, run_check_with_env, strip_ansi, tracegate_bin,
    write_temp_config, Proxy,
};
#[allow(unused_imports)]
pub use receivers::{AttrValue, OtlpProtocol, OtlpReceiver, ReceivedSpan, ZipkinReceiver};
#[allow(unused_imports)]
pub use tls::TestCa;
#[allow(unused_imports)]
pub use upstream::{dead_addr, one_upstream, RecordedRequest, Upstream, UPSTREAM_TRACERESPONSE};

// Shared by the files of this module, which take these from here through `super`, as
// `backends.rs` (`use super::*`) also does for the std and hyper names below.
use server::{
    bind_local, header_pairs, simple_response, spawn_http1_server, spawn_http1_server_tls,
    BackgroundServer,
};
use upstream::handle_upstream;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

/// How often polling helpers re-check their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not poison the harness for the Drop impls.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// All values of header `name` (case-insensitive) in a recorded header list, in received order.
fn header_values_in<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Polls until the JSON access log at `path` holds at least `n` lines; returns them parsed.
pub fn wait_for_json_lines(
    path: &std::path::Path,
    n: usize,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not get {n} JSON line(s) within {timeout:?}: {text}",
            path.display()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}
