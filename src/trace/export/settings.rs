//! The checked exporter settings: where spans go (protocol and endpoint), how each export
//! request is sent (timeout, headers, compression, TLS), and everything else the span pipeline
//! is started with ([`TelemetrySettings`]).
//!
//! A leaf of the export wing: the exporters (`super::otlp`, `super::zipkin`) and the exporter
//! selection (`super::exporter`) read these types, and nothing here imports them.

use super::pipeline::PipelineSettings;
use super::tls::TlsSettings;
use super::transport::Compression;
use std::borrow::Cow;
use std::time::Duration;

/// Where spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterProtocol {
    /// OTLP over gRPC (default port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies, POST `/v1/traces` (default port 4318).
    HttpProtobuf,
    /// Zipkin v2 JSON, POST `/api/v2/spans` (default port 9411).
    Zipkin,
    /// One line per span on standard output.
    Stdout,
    /// Spans are not recorded; trace context is still propagated.
    None,
}

impl ExporterProtocol {
    /// The name used in config files and `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::Zipkin => "zipkin",
            Self::Stdout => "stdout",
            Self::None => "none",
        }
    }
}

/// A checked exporter configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterSettings {
    pub protocol: ExporterProtocol,
    /// Full URL of the receiver; for HTTP it includes the `/v1/traces` path.
    pub endpoint: String,
    /// Longest time one export call may take.
    pub timeout: Duration,
    /// Sent with every export request (gRPC metadata or HTTP headers). Values are secrets
    /// (API keys): they are marked sensitive, so `Debug` does not print them.
    pub headers: http::HeaderMap,
    /// Compression of export requests.
    pub compression: Compression,
    /// Trusted CAs and client certificate, for `https://` endpoints.
    pub tls: TlsSettings,
}

impl Default for ExporterSettings {
    /// `stdout`, no endpoint, the OTLP default timeout of 10 s, no headers, no compression,
    /// the platform's trusted roots.
    fn default() -> Self {
        ExporterSettings {
            protocol: ExporterProtocol::Stdout,
            endpoint: String::new(),
            timeout: Duration::from_secs(10),
            headers: http::HeaderMap::new(),
            compression: Compression::None,
            tls: TlsSettings::default(),
        }
    }
}

/// Everything the span pipeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    pub service_name: String,
    /// Resource attributes besides `service.name` (from the config and
    /// `OTEL_RESOURCE_ATTRIBUTES`), in the order they are reported.
    pub resource: Vec<(String, String)>,
    pub exporter: ExporterSettings,
    pub batch: PipelineSettings,
    /// What the request path does with trace context (response headers, ...).
    pub options: crate::trace::request::TraceOptions,
}

/// `url` fit for logs and error messages: credentials written into its authority
/// (`https://user:secret@host/`) are replaced by `***`, like any other secret.
pub fn redact_userinfo(url: &str) -> Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}***{}", &url[..start], &url[start + at..])),
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_endpoints_are_not_shown() {
        // (endpoint, shown, reason)
        let cases = [
            (
                "http://collector:4317",
                "http://collector:4317",
                "nothing to hide",
            ),
            (
                "https://u:p@otel.example.com:4317/v1/traces",
                "https://***@otel.example.com:4317/v1/traces",
                "user and password",
            ),
            (
                "https://token@h/x@y",
                "https://***@h/x@y",
                "an @ in the path is not userinfo",
            ),
            ("http://h/?a=b@c", "http://h/?a=b@c", "nor one in the query"),
            ("u:p@h:1", "***@h:1", "no scheme"),
        ];
        for (url, want, why) in cases {
            assert_eq!(redact_userinfo(url), want, "{why}");
        }
    }
}
