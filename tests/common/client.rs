//! A tiny blocking HTTP/1.1 client that writes the request bytes exactly as given.
//!
//! * [`http_get`] / [`http_request`]: one request over a fresh connection, panicking on I/O
//!   errors; [`try_http_request`] returns them instead.
//! * [`build_request`] / [`send_raw`]: the exact bytes a request is written as, and writing
//!   any bytes verbatim.
//! * [`read_response`] / [`Response`]: parses one HTTP/1.x response from any reader (skipping
//!   1xx interim responses; `Content-Length`, chunked or read-to-close bodies);
//!   [`read_response_with_interim`] also lists the interim responses.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::header_values_in;

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    /// Lowercase names, in received order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_values_in(&self.headers, name).into_iter().next()
    }

    /// All values of header `name` (case-insensitive), in received order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        header_values_in(&self.headers, name)
    }

    /// The body as (lossy) UTF-8.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` with the given extra headers. Panics on I/O errors.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    http_request(addr, "GET", path, headers, b"")
}

/// Sends one request over a fresh connection and reads the response. Panics on
/// I/O errors (see [`try_http_request`] for a non-panicking variant).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("HTTP {method} http://{addr}{path} failed: {e}"))
}

/// Builds the exact request bytes [`try_http_request`] writes.
///
/// Headers are written as given, in order. Added unless the caller supplies
/// them (case-insensitively): `Host: <addr>`, `Connection: close`, and
/// `Content-Length` (when there is a body or the method is POST/PUT/PATCH and
/// no `Transfer-Encoding` was given).
pub fn build_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut out = Vec::new();
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
    if !has("host") {
        out.extend_from_slice(format!("Host: {addr}\r\n").as_bytes());
    }
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has("connection") {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let wants_length = !body.is_empty()
        || matches!(
            method.to_ascii_uppercase().as_str(),
            "POST" | "PUT" | "PATCH"
        );
    if wants_length && !has("content-length") && !has("transfer-encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Like [`http_request`] but returns I/O and protocol errors.
pub fn try_http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let raw = build_request(addr, method, path, headers, body);
    send_raw(addr, &raw, method.eq_ignore_ascii_case("HEAD"))
}

/// Writes `raw` bytes verbatim to a fresh connection and parses one response.
/// `head_request` suppresses reading a body.
pub fn send_raw(addr: &str, raw: &[u8], head_request: bool) -> std::io::Result<Response> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let _ = stream.set_nodelay(true);
    (&stream).write_all(raw)?;
    (&stream).flush()?;
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, head_request)
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn read_line_crlf<R: BufRead>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Parses one HTTP/1.x response (skipping 1xx interim responses).
pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> std::io::Result<Response> {
    read_response_with_interim(r, head_request).map(|(_, resp)| resp)
}

/// Interim responses [`read_response_with_interim`] reads before it gives up (a server that
/// streams them without end).
const MAX_INTERIM: usize = 1000;

/// Parses one HTTP/1.x response and returns the statuses of the 1xx interim responses (other
/// than 101) that came before it, in order (at most [`MAX_INTERIM`]).
pub fn read_response_with_interim<R: BufRead>(
    r: &mut R,
    head_request: bool,
) -> std::io::Result<(Vec<u16>, Response)> {
    let mut interim = Vec::new();
    loop {
        let status_line = read_line_crlf(r)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response status line",
            )
        })?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(format!("bad status line {status_line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;

        let mut headers = Vec::new();
        loop {
            let line = read_line_crlf(r)?
                .ok_or_else(|| invalid("connection closed inside response headers".into()))?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }

        if (100..200).contains(&status) && status != 101 {
            interim.push(status);
            if interim.len() > MAX_INTERIM {
                return Err(invalid(format!(
                    "more than {MAX_INTERIM} interim responses"
                )));
            }
            continue;
        }

        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok((interim, resp));
        }
        let chunked = resp
            .header_values("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = read_chunked(r)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| invalid(format!("bad content-length {len:?}")))?;
            let mut body = vec![0u8; len];
            r.read_exact(&mut body)?;
            resp.body = body;
        } else {
            r.read_to_end(&mut resp.body)?;
        }
        return Ok((interim, resp));
    }
}

fn read_chunked<R: BufRead>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line_crlf(r)?
            .ok_or_else(|| invalid("connection closed inside chunked body".into()))?;
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            // Trailers until an empty line (or EOF).
            while let Some(l) = read_line_crlf(r)? {
                if l.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(invalid("chunk not followed by CRLF".into()));
        }
    }
}
