//! Finding the end of an HTTP/1 request head in the bytes received so far, with its size
//! limits, the strict request-line grammar, and the framing of the body that follows, so the
//! connection layer knows how many bytes belong to this request.
//!
//! This is not the parser: Pingora parses the head once it is complete. The scan only decides
//! when the head is complete, refuses what must not reach the parser (oversized heads, raw
//! whitespace or control bytes in the request target), and reads `Content-Length`,
//! `Transfer-Encoding` and `Upgrade` to bound the request. Plain Rust, no I/O.

use crate::listeners::HttpLimits;

/// The outcome of scanning the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The head is not complete yet.
    Partial,
    /// The head is complete.
    Complete(Head),
    /// The head is refused: answer with this status and close.
    Refuse(Refusal),
}

/// A complete head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    /// What follows the head.
    pub body: Body,
}

/// The body that follows a head, as far as its length is known before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Exactly this many bytes (`Content-Length`, or none for a request without one).
    Length(u64),
    /// Unknown here: chunked, an upgrade or `CONNECT` (the connection may turn into a
    /// tunnel), or framing the parser will judge (several or invalid `Content-Length`).
    Open,
}

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `400`: the request line is not `method SP request-target SP HTTP-version`, or a line
    /// holds a bare CR.
    BadRequestLine,
    /// `414`: the request line is longer than `max_header_line`.
    UriTooLong,
    /// `431`: the head, one of its lines, or its number of lines is over the limit.
    HeadTooLarge,
    /// `505`: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequestLine => 400,
            Refusal::UriTooLong => 414,
            Refusal::HeadTooLarge => 431,
            Refusal::VersionNotSupported => 505,
        }
    }

    /// A short reason, for the debug log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequestLine => "malformed request line",
            Refusal::UriTooLong => "request line over the limit",
            Refusal::HeadTooLarge => "request head over the limit",
            Refusal::VersionNotSupported => "unsupported HTTP version",
        }
    }
}

/// Scans a request head incrementally: [`Scanner::scan`] is called with all the bytes
/// received so far (the same buffer, grown), and resumes where the last call stopped.
#[derive(Debug, Default, Clone)]
pub struct Scanner {
    /// Bytes of complete lines already looked at.
    done: usize,
    /// Header lines seen (the request line excluded).
    lines: usize,
    seen_request_line: bool,
    content_length: Option<u64>,
    open: bool,
}

impl Scanner {
    /// Scans `buf`, which starts with the head (and may hold more after it).
    pub fn scan(&mut self, buf: &[u8], limits: &HttpLimits) -> Scan {
        loop {
            let rest = &buf[self.done..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                // An unfinished line: refuse it as soon as it is over the limit.
                if rest.len() > limits.max_header_line {
                    return Scan::Refuse(if self.seen_request_line {
                        Refusal::HeadTooLarge
                    } else {
                        Refusal::UriTooLong
                    });
                }
                if buf.len() > limits.max_header_size {
                    return Scan::Refuse(Refusal::HeadTooLarge);
                }
                return Scan::Partial;
            };
            let end = self.done + nl + 1;
            // RFC 9112 §2.2: a line ends with CRLF, or a bare LF (which a recipient MAY
            // accept); a CR anywhere else is refused.
            let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
            if end > limits.max_header_size {
                return Scan::Refuse(Refusal::HeadTooLarge);
            }
            if line.len() > limits.max_header_line {
                return Scan::Refuse(if self.seen_request_line {
                    Refusal::HeadTooLarge
                } else {
                    Refusal::UriTooLong
                });
            }
            if line.contains(&b'\r') {
                return Scan::Refuse(Refusal::BadRequestLine);
            }
            self.done = end;
            if !self.seen_request_line {
                // RFC 9112 §2.2: empty lines before the request line are ignored.
                if line.is_empty() {
                    continue;
                }
                match request_line(line) {
                    Ok(open) => self.open |= open,
                    Err(r) => return Scan::Refuse(r),
                }
                self.seen_request_line = true;
                continue;
            }
            if line.is_empty() {
                let body = if self.open {
                    Body::Open
                } else {
                    Body::Length(self.content_length.unwrap_or(0))
                };
                return Scan::Complete(Head { len: end, body });
            }
            self.lines += 1;
            if self.lines > limits.max_header_count {
                return Scan::Refuse(Refusal::HeadTooLarge);
            }
            self.header_line(line);
        }
    }

    /// Notes what a header line says about the body's framing. Anything unusual leaves the
    /// body open, for the parser to judge.
    fn header_line(&mut self, line: &[u8]) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // obs-fold (RFC 9112 §5.2): the parser refuses it; do not guess a length.
            self.open = true;
            return;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            self.open = true;
            return;
        };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = (!value.is_empty() && value.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(value).ok()?.parse::<u64>().ok())
                .flatten();
            match (parsed, self.content_length) {
                (Some(n), None) => self.content_length = Some(n),
                // Several lines, or a value that is not one number: the parser decides.
                _ => self.open = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            self.open = true;
        }
    }
}

/// Checks `method SP request-target SP HTTP-version` (RFC 9112 §3). Returns whether the
/// request opens its body (`CONNECT`).
fn request_line(line: &[u8]) -> Result<bool, Refusal> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        // Missing parts, or raw whitespace in the target (RFC 9112 §3.2: a request-target
        // has none; a server that percent-encoded it would forward a request the client
        // did not make).
        return Err(Refusal::BadRequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Refusal::BadRequestLine);
    }
    // RFC 3986 §2: a URI is printable US-ASCII; control bytes, DEL and non-ASCII bytes are
    // refused rather than escaped.
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(Refusal::BadRequestLine);
    }
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => {}
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Refusal::VersionNotSupported);
        }
        _ => return Err(Refusal::BadRequestLine),
    }
    Ok(method == b"CONNECT")
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Trims optional whitespace (SP, HTAB) on both sides.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            max_header_size: 200,
            max_header_line: 64,
            max_header_count: 4,
            ..HttpLimits::default()
        }
    }

    fn scan(input: &[u8]) -> Scan {
        Scanner::default().scan(input, &limits())
    }

    fn complete(len: usize, body: Body) -> Scan {
        Scan::Complete(Head { len, body })
    }

    #[test]
    fn heads_are_found_bounded_and_framed() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let long_line = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(70));
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70));
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n";
        let big = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            format!("x: {}\r\n", "a".repeat(55)).repeat(4)
        );
        let cases: Vec<(&[u8], Scan, &str)> = vec![
            (get, complete(get.len(), Body::Length(0)), "a GET has no body"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", Scan::Partial, "no blank line yet"),
            (b"GET / HT", Scan::Partial, "an unfinished request line"),
            (
                b"GET / HTTP/1.1\nHost: a\n\nNEXT",
                complete(24, Body::Length(0)),
                "RFC 9112 §2.2: bare LF line ends are accepted; bytes after the head are not part of it",
            ),
            (
                b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                complete(22, Body::Length(0)),
                "RFC 9112 §2.2: empty lines before the request line are skipped",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n",
                complete(39, Body::Length(12)),
                "Content-Length bounds the body",
            ),
            (
                b"POST / HTTP/1.1\r\ncontent-length:\t7 \r\n\r\n",
                complete(39, Body::Length(7)),
                "the header name is case-insensitive and OWS is trimmed (RFC 9110 §5.5)",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                complete(57, Body::Open),
                "several Content-Length lines are the parser's to judge (RFC 9112 §6.3)",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
                complete(39, Body::Open),
                "a value that is not digits is the parser's to refuse",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                complete(47, Body::Open),
                "a chunked body's end is found by the parser",
            ),
            (
                b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                complete(38, Body::Open),
                "an upgrade may turn the connection into a tunnel",
            ),
            (
                b"CONNECT a:443 HTTP/1.1\r\n\r\n",
                complete(26, Body::Open),
                "CONNECT may turn the connection into a tunnel",
            ),
            (
                b"GET / HTTP/1.1\r\nx: a\r\n b\r\n\r\n",
                complete(28, Body::Open),
                "obs-fold: left to the parser, which refuses it",
            ),
            (
                b"GET /a b HTTP/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "RFC 9112 §3.2: a raw space in the target",
            ),
            (
                b"GET /a\tb HTTP/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "a raw tab in the target",
            ),
            (
                b"GET /a\x01 HTTP/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "a control byte in the target",
            ),
            (
                b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "RFC 3986 §2: non-ASCII bytes must be percent-encoded",
            ),
            (
                b"GET /a\rb HTTP/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "RFC 9112 §2.2: a bare CR",
            ),
            (
                b"GET  / HTTP/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "two spaces: an empty target",
            ),
            (b"GET /\r\n\r\n", Scan::Refuse(Refusal::BadRequestLine), "HTTP/0.9 has no version"),
            (
                b"G(T / HTTP/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "RFC 9110 §9.1: the method is a token",
            ),
            (
                b"GET / HTTP/2.0\r\n\r\n",
                Scan::Refuse(Refusal::VersionNotSupported),
                "RFC 9110 §15.6.6: 505 for a version not supported",
            ),
            (
                b"GET / http/1.1\r\n\r\n",
                Scan::Refuse(Refusal::BadRequestLine),
                "RFC 9112 §2.3: HTTP-name is case-sensitive",
            ),
            (
                long_target.as_bytes(),
                Scan::Refuse(Refusal::UriTooLong),
                "a request line over the line limit: 414",
            ),
            (
                &long_target.as_bytes()[..70],
                Scan::Refuse(Refusal::UriTooLong),
                "refused before its end arrives",
            ),
            (long_line.as_bytes(), Scan::Refuse(Refusal::HeadTooLarge), "a header line over the limit"),
            (many.as_bytes(), Scan::Refuse(Refusal::HeadTooLarge), "more header lines than allowed"),
            (big.as_bytes(), Scan::Refuse(Refusal::HeadTooLarge), "the head over the size limit"),
        ];
        for (input, want, why) in cases {
            assert_eq!(
                scan(input),
                want,
                "{why}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn scanning_resumes_where_it_stopped() {
        let head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        for split in 0..head.len() - 3 {
            let mut s = Scanner::default();
            let first = s.scan(&head[..split], &limits());
            let whole = s.scan(head, &limits());
            assert_eq!(first, Scan::Partial, "split {split}");
            assert_eq!(
                whole,
                complete(head.len() - 3, Body::Length(3)),
                "split {split}"
            );
        }
    }
}
