//! HTTP/2 written by hand over TCP (h2c with prior knowledge), for attacks that a real client
//! library will not produce: frames ([`frame`], RFC 9113 §4.1: a 9-byte header, then the
//! payload), header blocks in HPACK without Huffman ([`Hpack`], RFC 7541), and a connection
//! that reads what the server sends back ([`H2Conn`], [`Seen`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// `CANCEL`, the error code of a client's RST_STREAM in the rapid-reset attack.
pub const CANCEL: u32 = 0x8;

/// One frame: the 9-byte header (24-bit length, type, flags, 31-bit stream id), then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    assert!(len < 1 << 24, "frame payload too long");
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A SETTINGS frame with these `(identifier, value)` pairs.
pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

/// RST_STREAM on `stream` with `code`.
pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// An HPACK header block, written field by field.
#[derive(Default, Clone)]
pub struct Hpack(pub Vec<u8>);

impl Hpack {
    /// An integer with an `n`-bit prefix whose other bits are `flags` (RFC 7541 §5.1).
    fn int(&mut self, flags: u8, n: u32, mut v: usize) {
        let max = (1usize << n) - 1;
        if v < max {
            self.0.push(flags | v as u8);
            return;
        }
        self.0.push(flags | max as u8);
        v -= max;
        while v >= 128 {
            self.0.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        self.0.push(v as u8);
    }

    fn string(&mut self, s: &[u8]) {
        self.int(0, 7, s.len());
        self.0.extend_from_slice(s);
    }

    /// A literal field without indexing, new name (RFC 7541 §6.2.2): the bytes go in as given,
    /// so names in upper case or values with CR/LF can be written.
    pub fn literal(mut self, name: &[u8], value: &[u8]) -> Self {
        self.0.push(0x00);
        self.string(name);
        self.string(value);
        self
    }

    /// A literal field with incremental indexing, new name (RFC 7541 §6.2.1): it enters the
    /// dynamic table, at index 62 while it is the newest entry.
    pub fn indexed_literal(mut self, name: &[u8], value: &[u8]) -> Self {
        self.0.push(0x40);
        self.string(name);
        self.string(value);
        self
    }

    /// The start of a literal field without indexing whose value is declared `len` bytes long
    /// but not written: the bytes that follow in the block (or in CONTINUATION frames) are its
    /// value.
    pub fn literal_start(mut self, name: &[u8], len: usize) -> Self {
        self.0.push(0x00);
        self.string(name);
        self.int(0, 7, len);
        self
    }

    /// An indexed field (RFC 7541 §6.1): index 62 and up are the dynamic table.
    pub fn indexed(mut self, index: usize) -> Self {
        self.int(0x80, 7, index);
        self
    }

    /// The pseudo-headers of a request: `method` and `path` on `authority`, scheme `http`.
    pub fn request(method: &str, path: &str, authority: &str) -> Self {
        Hpack::default()
            .literal(b":method", method.as_bytes())
            .literal(b":scheme", b"http")
            .literal(b":authority", authority.as_bytes())
            .literal(b":path", path.as_bytes())
    }
}

/// What the server did with a stream or the connection, as seen by [`H2Conn::outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A response HEADERS frame on the stream, with its `:status` when it could be read.
    Response(Option<u16>),
    /// RST_STREAM on the stream, with its error code.
    Reset(u32),
    /// GOAWAY for the connection, with its error code.
    GoAway(u32),
    /// The connection closed (EOF or reset) without a GOAWAY.
    Closed,
    /// Nothing of the above within the time given.
    Nothing,
}

impl Seen {
    /// The server refused: a reset stream, GOAWAY, a closed connection or a 4xx answer.
    pub fn is_refusal(&self) -> bool {
        match self {
            Seen::Reset(_) | Seen::GoAway(_) | Seen::Closed => true,
            Seen::Response(Some(s)) => (400..500).contains(s),
            _ => false,
        }
    }
}

/// One frame read back: its type, flags, stream and payload.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// An h2c connection written by hand: the preface and an empty SETTINGS are sent on connect;
/// the server's SETTINGS are acknowledged and its PINGs answered while reading.
pub struct H2Conn {
    stream: TcpStream,
    /// Bytes read but not yet taken as frames.
    buf: Vec<u8>,
    /// Every frame read so far, in order.
    pub frames: Vec<Frame>,
}

impl H2Conn {
    pub fn connect(addr: &str) -> H2Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        // A server that stops reading must not hang the test: writes give up.
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        let mut c = H2Conn {
            stream,
            buf: Vec::new(),
            frames: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(&[]));
        c.send(&hello);
        c
    }

    /// Writes `bytes`; `false` when the server has closed the connection (or stopped reading
    /// for 10 s).
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// HEADERS on `stream` with `block` in one frame (END_HEADERS), `end_stream` as given.
    pub fn headers(&mut self, stream: u32, block: &Hpack, end_stream: bool) -> bool {
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.send(&frame(HEADERS, flags, stream, &block.0))
    }

    /// Reads the next frame, waiting until `deadline`. `Err(true)`: the connection closed;
    /// `Err(false)`: nothing came in time.
    pub fn read_frame(&mut self, deadline: Instant) -> Result<Frame, bool> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    self.answer(&f);
                    self.frames.push(f.clone());
                    return Ok(f);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(false);
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("read timeout");
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(true),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(false)
                }
                Err(_) => return Err(true),
            }
        }
    }

    /// Acknowledges SETTINGS and answers PING, as a client must.
    fn answer(&mut self, f: &Frame) {
        if f.kind == SETTINGS && f.flags & ACK == 0 {
            let _ = self.send(&frame(SETTINGS, ACK, 0, &[]));
        } else if f.kind == PING && f.flags & ACK == 0 {
            let _ = self.send(&frame(PING, ACK, 0, &f.payload));
        }
    }

    /// Reads until the server answers `stream` (HEADERS or RST_STREAM), sends GOAWAY or closes
    /// the connection, for at most `timeout`.
    pub fn outcome(&mut self, stream: u32, timeout: Duration) -> Seen {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline) {
                Ok(f) if f.kind == GOAWAY => return Seen::GoAway(error_code(&f.payload[4..])),
                Ok(f) if f.stream == stream && f.kind == RST_STREAM => {
                    return Seen::Reset(error_code(&f.payload))
                }
                Ok(f) if f.stream == stream && f.kind == HEADERS => {
                    return Seen::Response(status_of(&f.payload, f.flags))
                }
                Ok(_) => {}
                Err(true) => return Seen::Closed,
                Err(false) => return Seen::Nothing,
            }
        }
    }

    /// Reads until GOAWAY or the end of the connection, for at most `timeout`: the GOAWAY's
    /// error code, [`Seen::Closed`] or [`Seen::Nothing`].
    pub fn until_goaway(&mut self, timeout: Duration) -> Seen {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline) {
                Ok(f) if f.kind == GOAWAY => return Seen::GoAway(error_code(&f.payload[4..])),
                Ok(_) => {}
                Err(true) => return Seen::Closed,
                Err(false) => return Seen::Nothing,
            }
        }
    }
}

fn error_code(b: &[u8]) -> u32 {
    b.get(..4)
        .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// The `:status` of a response header block, when the server wrote it first, as an index into
/// the static table (200, 204, 206, 304, 400, 404, 500) or as a literal with the `:status`
/// name (plain or Huffman-coded digits). Padding and priority are skipped.
pub fn status_of(payload: &[u8], flags: u8) -> Option<u16> {
    let mut p = payload;
    if flags & 0x8 != 0 {
        let pad = *p.first()? as usize;
        p = p.get(1..p.len().checked_sub(pad)?)?;
    }
    if flags & 0x20 != 0 {
        p = p.get(5..)?;
    }
    let first = *p.first()?;
    if first & 0x80 != 0 {
        return match first & 0x7f {
            8 => Some(200),
            9 => Some(204),
            10 => Some(206),
            11 => Some(304),
            12 => Some(400),
            13 => Some(404),
            14 => Some(500),
            _ => None,
        };
    }
    // A literal whose name is static index 8..=14 (`:status`), with or without indexing.
    let name_index = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    if !(8..=14).contains(&name_index) {
        return None;
    }
    let len_byte = *p.get(1)?;
    let len = (len_byte & 0x7f) as usize;
    let value = p.get(2..2 + len)?;
    let text = if len_byte & 0x80 != 0 {
        huffman_digits(value)?
    } else {
        String::from_utf8(value.to_vec()).ok()?
    };
    text.parse().ok()
}

/// Decodes a Huffman-coded string of digits (RFC 7541 Appendix B: `0`-`2` are 5-bit codes
/// 0x0-0x2, `3`-`9` are 6-bit codes 0x19-0x1f).
fn huffman_digits(b: &[u8]) -> Option<String> {
    let bits: Vec<u8> = b
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |i| (byte >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i + 5 <= bits.len() {
        let five = bits[i..i + 5].iter().fold(0u8, |a, b| a << 1 | b);
        if five <= 2 {
            out.push((b'0' + five) as char);
            i += 5;
            continue;
        }
        if i + 6 > bits.len() {
            break;
        }
        let six = bits[i..i + 6].iter().fold(0u8, |a, b| a << 1 | b);
        if (0x19..=0x1f).contains(&six) {
            out.push((b'3' + six - 0x19) as char);
            i += 6;
        } else {
            break;
        }
    }
    // What is left must be EOS padding: all ones, fewer than 8 bits.
    if bits.len() - i >= 8 || bits[i..].contains(&0) {
        return None;
    }
    Some(out)
}
