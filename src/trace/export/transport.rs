//! What the HTTP-based exporters (OTLP/HTTP, Zipkin) share: the HTTP client with the
//! configured headers and TLS, and gzip compression of request bodies with state reused across
//! batches.

use super::tls::TlsSettings;
use bytes::Bytes;
use std::time::Duration;

/// Compression of export requests (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// Bodies are sent as they are.
    #[default]
    None,
    /// gzip: `Content-Encoding: gzip` over HTTP, the gRPC message compression `gzip`.
    Gzip,
}

impl Compression {
    /// The name used in config files and the environment.
    pub fn as_str(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
        }
    }
}

/// A gzip compressor that keeps its deflate state (a few hundred KiB) and output buffer from one
/// batch to the next, so compressing costs no large allocation per export.
pub struct Gzip {
    deflate: flate2::Compress,
    crc: flate2::Crc,
}

impl std::fmt::Debug for Gzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gzip")
    }
}

impl Default for Gzip {
    fn default() -> Self {
        Gzip {
            // Level 1: export bodies are repetitive protobuf/JSON; the fastest level already
            // shrinks them several times, and the exporter thread shares the CPU with requests.
            deflate: flate2::Compress::new(flate2::Compression::fast(), false),
            crc: flate2::Crc::new(),
        }
    }
}

impl Gzip {
    /// Replaces `out` with the gzip member (RFC 1952) holding `input`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        // Header: magic, CM=deflate, no flags, no mtime, XFL=fastest, OS=unknown.
        const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];
        self.deflate.reset();
        self.crc.reset();
        self.crc.update(input);
        out.clear();
        out.extend_from_slice(&HEADER);
        out.reserve(input.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before_in = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(&input[consumed..], out, flate2::FlushCompress::Finish)
                .expect("deflate into a growing buffer cannot fail");
            consumed += (self.deflate.total_in() - before_in) as usize;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    }
}

/// Builds the HTTP client of an exporter: `timeout` per request, `headers` on every request
/// (values are marked sensitive), and for `https://` URLs the TLS settings.
pub fn http_client(
    timeout: Duration,
    headers: &http::HeaderMap,
    tls: &TlsSettings,
    https: bool,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .default_headers(headers.clone());
    // reqwest is built without a process-wide rustls provider, so it always gets a ready
    // config: for http:// one that trusts nothing (it is never used for a handshake).
    b = b.tls_backend_preconfigured(if https {
        tls.rustls_config()?
    } else {
        TlsSettings::no_tls_config()
    });
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// POSTs export bodies to one URL, compressing them when asked.
#[derive(Debug)]
pub struct HttpPost {
    client: reqwest::Client,
    url: reqwest::Url,
    content_type: &'static str,
    gzip: Option<Gzip>,
}

impl HttpPost {
    /// A sender of `content_type` bodies to `url`. Only `http://` and `https://` URLs are taken.
    pub fn new(
        url: &str,
        content_type: &'static str,
        timeout: Duration,
        headers: &http::HeaderMap,
        compression: Compression,
        tls: &TlsSettings,
    ) -> Result<HttpPost, String> {
        let https = check_scheme(url)?;
        let url = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        Ok(HttpPost {
            client: http_client(timeout, headers, tls, https)?,
            url,
            content_type,
            gzip: (compression == Compression::Gzip).then(Gzip::default),
        })
    }

    /// Sends `body` (compressed into a new buffer when gzip is on, else taken from `body`,
    /// which is left empty). Returns the response body of a 2xx answer.
    pub async fn post(&mut self, body: &mut Vec<u8>) -> Result<Bytes, String> {
        let mut req = self
            .client
            .post(self.url.clone())
            .header(http::header::CONTENT_TYPE, self.content_type);
        let payload = match &mut self.gzip {
            Some(gz) => {
                let mut out = Vec::new();
                gz.compress(body, &mut out);
                req = req.header(http::header::CONTENT_ENCODING, "gzip");
                out
            }
            None => std::mem::take(body),
        };
        let resp = req
            .body(payload)
            .send()
            .await
            // Without the URL: it is in the start-up line already, and may carry credentials.
            .map_err(|e| format!("HTTP request failed: {}", error_chain(&e.without_url())))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("HTTP response body: {}", e.without_url()))?;
        if !status.is_success() {
            return Err(format!("HTTP status {status}"));
        }
        Ok(body)
    }
}

/// An error with its sources, so a TLS failure says why ("invalid peer certificate: ...").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Accepts `http://` and `https://` endpoints (true for https), so anything else fails at
/// start-up rather than on every export.
pub fn check_scheme(endpoint: &str) -> Result<bool, String> {
    match endpoint.split_once("://") {
        Some(("http", _)) => Ok(false),
        Some(("https", _)) => Ok(true),
        Some((scheme, _)) => Err(format!(
            "scheme {scheme}:// is not supported (only http:// and https://)"
        )),
        None => Err("the endpoint must be a URL starting with http:// or https://".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_round_trips_and_reuses_state() {
        let mut gz = Gzip::default();
        let mut out = Vec::new();
        // (input, reason)
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let cases: [(&[u8], &str); 3] = [
            (b"", "empty body"),
            (b"hello hello hello hello", "small body"),
            (&big, "body larger than one output reservation"),
        ];
        for (input, why) in cases {
            gz.compress(input, &mut out);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(out.as_slice())
                .read_to_end(&mut back)
                .unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(back, input, "{why}");
        }
    }

    #[test]
    fn schemes() {
        assert_eq!(check_scheme("http://a:1"), Ok(false));
        assert_eq!(check_scheme("https://a:1"), Ok(true));
        assert!(check_scheme("ftp://a").is_err());
        assert!(check_scheme("a:1").is_err());
    }
}
