//! `compress`: which responses are compressed (gzip, br or zstd, by the client's
//! `Accept-Encoding`), as nginx `gzip_types`/`gzip_min_length` and Traefik's `compress`
//! (`includedContentTypes`, `minResponseBodyBytes`) decide it, and the streaming encoders
//! (flate2, brotli and zstd, the crates Pingora builds). The proxy glue asks
//! [`Compress::wants`] and [`negotiate`] once the response head is known, then feeds the body
//! through a [`StreamEncoder`].
//!
//! Why not Pingora's compression module: it takes the first coding a client lists and
//! ignores quality values (`br;q=0` would get brotli), and its brotli stream is flushed but
//! never finished, so a strict decoder refuses the end of every brotli response.
//!
//! Never twice: a response that already has a `Content-Encoding` is left as it is, and so are
//! responses without a body (`HEAD`, `204`, `304`), ranges (`206`) and responses smaller than
//! `min_size` when their length is known.

/// The checked `compress` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// Responses with a known length under this are sent as they are.
    pub min_size: u64,
    /// Media types to compress: `text/html`, or a whole type `text/*`; lower-case.
    pub types: Vec<String>,
    /// Compression level, for every algorithm (Pingora's scale; gzip 1–9).
    pub level: u32,
}

/// The default `compress.types` (what nginx and Traefik compress by default, and JSON).
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "image/svg+xml",
];
/// The default `compress.min_size`: Traefik's `minResponseBodyBytes`.
pub const DEFAULT_MIN_SIZE: u64 = 1024;
/// The default level: gzip 6, zlib's and nginx's usual trade-off.
pub const DEFAULT_LEVEL: u32 = 6;

impl Compress {
    /// Whether a response with this status, `Content-Type`, `Content-Encoding` and
    /// `Content-Length`, to a request of `method`, is one to compress.
    pub fn wants(
        &self,
        method: &http::Method,
        status: u16,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        content_length: Option<u64>,
    ) -> bool {
        if method == http::Method::HEAD || matches!(status, 204 | 206 | 304) || status < 200 {
            return false;
        }
        if content_encoding.is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity")) {
            return false;
        }
        if content_length.is_some_and(|n| n < self.min_size) {
            return false;
        }
        let Some(ct) = content_type else {
            return false;
        };
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(top) => media.split('/').next() == Some(top),
            None => *t == media,
        })
    }
}

/// A content coding tracegate compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Br,
    Zstd,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
        }
    }
}

/// The coding to send for this `Accept-Encoding` (RFC 9110 §12.5.3): the one with the highest
/// quality value; among equals, br, then zstd, then gzip. `q=0` means not acceptable; `*`
/// stands for every coding not named. `None`: send the body as it is.
pub fn negotiate(accept_encoding: Option<&str>) -> Option<Encoding> {
    let header = accept_encoding?;
    let order = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];
    let mut named: [Option<f32>; 3] = [None; 3];
    let mut star: Option<f32> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| v.trim().parse::<f32>().ok())?
            })
            .next()
            .unwrap_or(1.0);
        let q = if q.is_finite() {
            q.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match coding.as_str() {
            "*" => star = Some(q),
            "x-gzip" | "gzip" => named[2] = Some(named[2].map_or(q, |p: f32| p.max(q))),
            c => {
                if let Some(i) = order.iter().position(|e| e.token() == c) {
                    named[i] = Some(named[i].map_or(q, |p: f32| p.max(q)));
                }
            }
        }
    }
    let mut best: Option<(Encoding, f32)> = None;
    for (i, e) in order.iter().enumerate() {
        let q = named[i].or(star).unwrap_or(0.0);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*e, q));
        }
    }
    best.map(|(e, _)| e)
}

/// A streaming encoder: body chunks in, compressed bytes out, the stream finished at the end.
pub struct StreamEncoder(Option<Inner>);

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamEncoder")
    }
}

impl StreamEncoder {
    /// An encoder for `encoding` at `level` (1–9: gzip's level, brotli's quality, zstd's
    /// level).
    pub fn new(encoding: Encoding, level: u32) -> std::io::Result<StreamEncoder> {
        let level = level.clamp(1, 9);
        Ok(StreamEncoder(Some(match encoding {
            Encoding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            // A 4 KiB buffer and a 2^19-byte window (brotli's own default is 2^22: less
            // memory per response).
            Encoding::Br => Inner::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level,
                19,
            ))),
            Encoding::Zstd => {
                Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level as i32)?)
            }
        })))
    }

    /// Compresses `input`; with `end`, finishes the stream. Returns the bytes ready to send
    /// (possibly none yet: the encoders buffer).
    pub fn encode(&mut self, input: &[u8], end: bool) -> std::io::Result<bytes::Bytes> {
        use std::io::Write;
        let Some(inner) = &mut self.0 else {
            return Ok(bytes::Bytes::new());
        };
        match inner {
            Inner::Gzip(e) => e.write_all(input)?,
            Inner::Br(e) => e.write_all(input)?,
            Inner::Zstd(e) => e.write_all(input)?,
        }
        if !end {
            let out = match inner {
                Inner::Gzip(e) => std::mem::take(e.get_mut()),
                Inner::Br(e) => std::mem::take(e.get_mut()),
                Inner::Zstd(e) => std::mem::take(e.get_mut()),
            };
            return Ok(out.into());
        }
        let out = match self.0.take().expect("checked above") {
            Inner::Gzip(e) => e.finish()?,
            Inner::Br(e) => e.into_inner(),
            Inner::Zstd(e) => e.finish()?,
        };
        Ok(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn negotiation_table() {
        use Encoding::*;
        // (Accept-Encoding, coding, why)
        let cases: &[(Option<&str>, Option<Encoding>, &str)] = &[
            (None, None, "no header: as it is"),
            (Some("gzip"), Some(Gzip), "gzip only"),
            (
                Some("gzip, deflate, br, zstd"),
                Some(Br),
                "a browser's list: br first among equals",
            ),
            (Some("gzip, zstd"), Some(Zstd), "zstd before gzip"),
            (Some("br;q=0, gzip"), Some(Gzip), "q=0 is not acceptable"),
            (
                Some("br;q=0.5, gzip;q=0.8"),
                Some(Gzip),
                "the higher quality wins",
            ),
            (Some("*"), Some(Br), "any coding"),
            (
                Some("*;q=0, gzip;q=0.1"),
                Some(Gzip),
                "everything else refused",
            ),
            (Some("identity"), None, "identity only"),
            (Some("deflate"), None, "a coding tracegate does not make"),
            (Some("GZIP;Q=1"), Some(Gzip), "case-insensitive"),
            (
                Some("x-gzip"),
                Some(Gzip),
                "x-gzip is gzip (RFC 9110 §8.4.1.3)",
            ),
            (Some(""), None, "empty"),
        ];
        for (ae, want, why) in cases {
            assert_eq!(negotiate(*ae), *want, "{why}");
        }
    }

    #[test]
    fn each_stream_decodes_to_its_input_in_pieces() {
        use std::io::Read;
        let text: Vec<u8> = b"tracegate streams this body in pieces. ".repeat(500);
        for e in [Encoding::Gzip, Encoding::Br, Encoding::Zstd] {
            let mut enc = StreamEncoder::new(e, 6).unwrap();
            let mut out = Vec::new();
            for chunk in text.chunks(1000) {
                out.extend_from_slice(&enc.encode(chunk, false).unwrap());
            }
            out.extend_from_slice(&enc.encode(&[], true).unwrap());
            let mut back = Vec::new();
            match e {
                Encoding::Gzip => {
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Encoding::Br => {
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Encoding::Zstd => back = zstd::decode_all(&out[..]).unwrap(),
            }
            assert_eq!(back, text, "{e:?}");
            assert!(out.len() < text.len() / 10, "{e:?}: {} bytes", out.len());
        }
    }

    #[test]
    fn wants_table() {
        let c = Compress {
            min_size: 1024,
            types: vec!["text/*".into(), "application/json".into()],
            level: 6,
        };
        let get = Method::GET;
        // (method, status, type, encoding, length, compress, why)
        type Case<'a> = (
            &'a Method,
            u16,
            Option<&'a str>,
            Option<&'a str>,
            Option<u64>,
            bool,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                &get,
                200,
                Some("text/html; charset=utf-8"),
                None,
                Some(5000),
                true,
                "text/* with parameters",
            ),
            (
                &get,
                200,
                Some("application/json"),
                None,
                None,
                true,
                "chunked: length unknown",
            ),
            (
                &get,
                200,
                Some("Application/JSON"),
                None,
                Some(2000),
                true,
                "media types are case-insensitive",
            ),
            (
                &get,
                200,
                Some("image/png"),
                None,
                Some(5000),
                false,
                "not a listed type",
            ),
            (&get, 200, None, None, Some(5000), false, "no type"),
            (
                &get,
                200,
                Some("text/plain"),
                None,
                Some(100),
                false,
                "under min_size",
            ),
            (
                &get,
                200,
                Some("text/plain"),
                Some("gzip"),
                Some(5000),
                false,
                "already encoded: never twice",
            ),
            (
                &get,
                200,
                Some("text/plain"),
                Some("identity"),
                Some(5000),
                true,
                "identity is no encoding",
            ),
            (
                &Method::HEAD,
                200,
                Some("text/plain"),
                None,
                Some(5000),
                false,
                "HEAD has no body",
            ),
            (
                &get,
                204,
                Some("text/plain"),
                None,
                None,
                false,
                "no content",
            ),
            (
                &get,
                304,
                Some("text/plain"),
                None,
                None,
                false,
                "not modified",
            ),
            (
                &get,
                206,
                Some("text/plain"),
                None,
                Some(5000),
                false,
                "a range of the identity body",
            ),
            (
                &get,
                404,
                Some("text/html"),
                None,
                Some(5000),
                true,
                "error pages too",
            ),
        ];
        for (m, status, ct, ce, len, want, why) in cases {
            assert_eq!(c.wants(m, *status, *ct, *ce, *len), *want, "{why}");
        }
    }
}
