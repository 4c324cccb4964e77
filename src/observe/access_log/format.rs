//! The two line formats, each written into a byte buffer (without the final newline).
//!
//! - **`json`**: one object, with the span's semantic-convention names (issue 13 §1). Every
//!   string a client can influence (method, host, path, query, user agent, route, upstream)
//!   goes through `serde_json`'s string serializer, so any character reads back as sent;
//!   keys with no value for a request are left out.
//! - **`combined`**: nginx's `combined` (`$remote_addr - $remote_user [$time_local]
//!   "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`), then
//!   ` trace_id=… span_id=… rt=…`. Variables are escaped as nginx escapes them
//!   (`ngx_http_log_escape`): `"`, `\`, control bytes and bytes from 0x7f up become `\xHH`.
//!
//! Neither format writes `Authorization` or cookies, and both redact the query (and the query
//! of the `Referer`) by the SERVER span's rules (`telemetry.capture.query`).
//!
//! Numbers, ids and IPv4 addresses are written digit by digit rather than through
//! `core::fmt`, which cost more than the rest of a line together (callgrind: ~15,000
//! instructions a line with `write!`).

use super::{clock, logged_status};
use crate::exchange::Exchange;
use crate::trace::capture::Capture;
use crate::trace::request::protocol_version;
use std::borrow::Cow;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The buffer a line starts with: a proxied request's `json` line is 500 to 600 bytes.
pub(super) const LINE_CAPACITY: usize = 640;

/// `,"key":` (keys are constants that need no escaping).
fn key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string, escaped by `serde_json` (RFC 8259 §7).
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn str_field(out: &mut Vec<u8>, k: &str, v: &str) {
    key(out, k);
    json_str(out, v);
}

fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn u64_field(out: &mut Vec<u8>, k: &str, v: u64) {
    key(out, k);
    push_u64(out, v);
}

/// `whole.fff`: `thousandths` in units with three decimals (`12345` → `12.345`).
fn push_thousandths(out: &mut Vec<u8>, thousandths: u128) {
    let n = u64::try_from(thousandths).unwrap_or(u64::MAX);
    push_u64(out, n / 1000);
    let f = n % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (f / 100) as u8,
        b'0' + (f / 10 % 10) as u8,
        b'0' + (f % 10) as u8,
    ]);
}

/// A duration in milliseconds with microsecond digits (`12.345`).
fn push_ms(out: &mut Vec<u8>, d: Duration) {
    push_thousandths(out, d.as_micros());
}

/// Bytes in lower-case hex (W3C Trace Context ids).
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
}

/// An IP address as `Display` writes it (`192.0.2.7`, `2001:db8::1`): IPv4 digit by digit,
/// IPv6 (rare, and with its zero-run rules) through `Display`.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(crate::net::ipv4_text(v4, &mut [0; 15]).as_bytes()),
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// A socket address as `Display` writes it (`10.0.0.1:8080`, `[2001:db8::1]:443`; with an
/// IPv6 scope id, through `Display`).
fn push_socket_addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => push_ip(out, IpAddr::V4(*v4.ip())),
        SocketAddr::V6(v6) if v6.scope_id() == 0 => {
            out.push(b'[');
            push_ip(out, IpAddr::V6(*v6.ip()));
            out.push(b']');
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
            return;
        }
    }
    out.push(b':');
    push_u64(out, a.port().into());
}

fn ms_field(out: &mut Vec<u8>, k: &str, d: Duration) {
    key(out, k);
    push_ms(out, d);
}

/// The request line's version as nginx's `$request` shows it (`HTTP/2.0` for HTTP/2).
fn request_line_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The host as `server.address` records it: lower case (host names are case-insensitive,
/// RFC 3986 §3.2.2), as the SERVER span does.
fn server_address<'a>(x: &Exchange<'a>) -> Option<Cow<'a, str>> {
    let h = x.downstream.host().filter(|h| !h.is_empty())?;
    Some(if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    })
}

/// `error.type` of a failed request: the failure's class (`timeout`, `connection_refused`,
/// `client_closed`, ...), else the status code of a 5xx (semconv: the status code is the
/// error type when no better class is known; 4xx is the client's, not an error of a server).
fn error_type(x: &Exchange<'_>) -> Option<Cow<'static, str>> {
    if let Some(f) = &x.failure {
        return Some(Cow::Borrowed(f.error_type));
    }
    (x.status >= 500).then(|| Cow::Owned(x.status.to_string()))
}

/// A URL (a `Referer`) with its query redacted by `query`'s rules: the query is dropped when
/// the mode is `off`, its sensitive values replaced in `redacted` mode.
fn redacted_url<'a>(url: &'a str, query: &Capture) -> Cow<'a, str> {
    let Some(q_start) = url.find('?') else {
        return Cow::Borrowed(url);
    };
    let q_end = url[q_start..].find('#').map_or(url.len(), |i| q_start + i);
    let q = &url[q_start + 1..q_end];
    let mut out = String::with_capacity(url.len() + 8);
    out.push_str(&url[..q_start]);
    if let Some(r) = query.url_query(Some(q)) {
        out.push('?');
        out.push_str(&r);
    }
    out.push_str(&url[q_end..]);
    Cow::Owned(out)
}

/// The `json` line of `x`.
pub(super) fn json(out: &mut Vec<u8>, x: &Exchange<'_>, query: &Capture) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    clock::rfc3339_millis(out, x.start);
    out.push(b'"');
    if let Some(t) = &x.trace {
        key(out, "trace_id");
        out.push(b'"');
        push_hex(out, &t.trace_id);
        out.push(b'"');
        key(out, "span_id");
        out.push(b'"');
        push_hex(out, &t.span_id);
        out.push(b'"');
        key(out, "sampled");
        out.extend_from_slice(if t.sampled { b"true" } else { b"false" });
    }
    if let Some(ip) = x.downstream.client_ip() {
        // An IP address prints as hex digits, dots and colons only: nothing to escape.
        key(out, "client.address");
        out.push(b'"');
        push_ip(out, ip);
        out.push(b'"');
    }
    str_field(out, "http.request.method", x.method.as_str());
    if let Some(host) = server_address(x) {
        str_field(out, "server.address", &host);
    }
    str_field(out, "url.path", x.path);
    if let Some(q) = query.url_query(x.query) {
        str_field(out, "url.query", &q);
    }
    str_field(out, "network.protocol.version", protocol_version(x.version));
    if let Some(ua) = x.user_agent {
        str_field(out, "user_agent.original", ua);
    }
    if let Some(route) = x.route {
        str_field(out, "http.route", route);
    }
    if let Some(m) = x.middleware {
        str_field(out, "tracegate.middleware", m);
    }
    u64_field(out, "http.response.status_code", logged_status(x).into());
    u64_field(out, "http.request.body.size", x.request_body_bytes);
    u64_field(out, "http.response.body.size", x.response_body_bytes);
    ms_field(out, "duration_ms", x.duration);
    if let Some(d) = x.auth {
        ms_field(out, "forward_auth_ms", d);
    }
    if let Some(u) = &x.upstream {
        str_field(out, "upstream", &u.name);
        let last = x.last_attempt();
        if let Some(backend) = last.map(|a| a.backend) {
            // A socket address prints as digits, dots, colons and brackets only.
            key(out, "upstream.address");
            out.push(b'"');
            push_socket_addr(out, backend);
            out.push(b'"');
        }
        if let Some(a) = last {
            if let Some(s) = a.status {
                u64_field(out, "upstream.status_code", s.into());
            }
            if let Some(d) = a.duration() {
                ms_field(out, "upstream.duration_ms", d);
            }
            if let Some(c) = a.connect {
                ms_field(out, "upstream.connect_ms", c);
            }
            if let Some(t) = a.ttfb {
                ms_field(out, "upstream.ttfb_ms", t);
            }
        }
        u64_field(out, "attempts", x.attempts.len() as u64);
    }
    if let Some(e) = error_type(x) {
        str_field(out, "error.type", &e);
    }
    out.push(b'}');
}

/// `s` escaped as nginx escapes a variable in an access log line (`ngx_http_log_escape`):
/// control bytes, `"`, `\` and every byte from 0x7f up as `\xHH` (upper-case hex).
pub(super) fn push_nginx_escaped(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\' {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

/// A quoted variable: `"value"`, or `"-"` when the request has none (as nginx writes an
/// unset variable).
fn quoted_or_dash(out: &mut Vec<u8>, v: Option<&str>) {
    out.push(b'"');
    match v {
        Some(v) => push_nginx_escaped(out, v.as_bytes()),
        None => out.push(b'-'),
    }
    out.push(b'"');
}

/// The `combined` line of `x`.
pub(super) fn combined(out: &mut Vec<u8>, x: &Exchange<'_>, query: &Capture) {
    match x.downstream.client_ip() {
        Some(ip) => push_ip(out, ip),
        None => out.push(b'-'),
    }
    // `$remote_user` is never read from `Authorization`: the credentials stay out.
    out.extend_from_slice(b" - - [");
    clock::nginx_local(out, x.start);
    out.extend_from_slice(b"] \"");
    push_nginx_escaped(out, x.method.as_str().as_bytes());
    out.push(b' ');
    push_nginx_escaped(out, x.path.as_bytes());
    if let Some(q) = query.url_query(x.query) {
        out.push(b'?');
        push_nginx_escaped(out, q.as_bytes());
    }
    out.push(b' ');
    out.extend_from_slice(request_line_version(x.version).as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, logged_status(x).into());
    out.push(b' ');
    push_u64(out, x.response_body_bytes);
    out.push(b' ');
    let referer = x.referer.map(|r| redacted_url(r, query));
    quoted_or_dash(out, referer.as_deref());
    out.push(b' ');
    quoted_or_dash(out, x.user_agent);
    match &x.trace {
        Some(t) => {
            out.extend_from_slice(b" trace_id=");
            push_hex(out, &t.trace_id);
            out.extend_from_slice(b" span_id=");
            push_hex(out, &t.span_id);
        }
        None => out.extend_from_slice(b" trace_id=- span_id=-"),
    }
    // `$request_time`: seconds with millisecond resolution.
    out.extend_from_slice(b" rt=");
    push_thousandths(out, x.duration.as_millis());
}

#[cfg(test)]
mod tests;
