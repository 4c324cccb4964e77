//! `POST /v1/traces`: the OTLP/HTTP intake (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>).
//! A service pointed at the admin listener (`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9901`)
//! sends its spans here, and they join the proxy's traces in the viewer.
//!
//! - `Content-Type: application/x-protobuf` or `application/json` (OTLP/JSON); anything else is
//!   `415`, which also keeps a web page from posting here without a CORS preflight that this
//!   listener never grants.
//! - `Content-Encoding: gzip` or none; the body, before and after decompression, is at most
//!   [`MAX_BODY`] (`413`).
//! - An invalid body is `400` with a `google.rpc.Status` (OTLP/HTTP §Failures), in the
//!   request's encoding; spans with invalid ids are reported as a partial success.

use super::Viewer;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use std::io::Read;

use crate::trace::store::intake::{decode, Encoding};

/// The largest intake body, compressed or not (the Collector's OTLP receiver defaults to 20 MiB
/// for the decompressed body too).
pub const MAX_BODY: usize = 16 << 20;

/// `google.rpc.Status`, the body of an OTLP/HTTP failure.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC's INVALID_ARGUMENT, the code OTLP/HTTP's Status carries for a bad request.
const INVALID_ARGUMENT: i32 = 3;

fn failure(status: StatusCode, encoding: Encoding, message: String) -> super::Answer {
    match encoding {
        Encoding::Protobuf => (
            status,
            "application/x-protobuf",
            Bytes::from(prost::Message::encode_to_vec(&RpcStatus {
                code: INVALID_ARGUMENT,
                message,
            })),
        ),
        Encoding::Json => {
            let mut b = serde_json::to_vec(
                &serde_json::json!({"code": INVALID_ARGUMENT, "message": message}),
            )
            .unwrap_or_default();
            b.push(b'\n');
            (status, "application/json", Bytes::from(b))
        }
    }
}

/// The encoding a `Content-Type` names, if the intake takes it.
fn encoding_of(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-protobuf")
        || media.eq_ignore_ascii_case("application/protobuf")
    {
        Some(Encoding::Protobuf)
    } else if media.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else {
        None
    }
}

/// Answers one intake request whose body has been read (at most [`MAX_BODY`] bytes).
pub(in crate::admin) fn answer(viewer: &Viewer, headers: &HeaderMap, body: &[u8]) -> super::Answer {
    let Some(encoding) = encoding_of(headers) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/plain; charset=utf-8",
            Bytes::from_static(
                b"415 Unsupported Media Type: OTLP/HTTP takes application/x-protobuf or application/json\n",
            ),
        );
    };
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let inflated;
    let body = match coding.as_deref() {
        None | Some("") | Some("identity") => body,
        Some("gzip") => {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(body)
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut out);
            if let Err(e) = read {
                return failure(
                    StatusCode::BAD_REQUEST,
                    encoding,
                    format!("invalid gzip body: {e}"),
                );
            }
            if out.len() > MAX_BODY {
                return failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    encoding,
                    format!("the decompressed body is over {MAX_BODY} bytes"),
                );
            }
            inflated = out;
            &inflated
        }
        Some(other) => {
            return failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                encoding,
                format!("Content-Encoding {other:?}: gzip or none"),
            )
        }
    };
    let decoded = match decode(body, encoding) {
        Ok(d) => d,
        Err(e) => return failure(StatusCode::BAD_REQUEST, encoding, e),
    };
    let rejected = decoded.rejected;
    viewer.store.ingest(decoded.spans);
    let partial = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected as i64,
        error_message: format!("{rejected} spans had an invalid trace or span id"),
    });
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            "application/x-protobuf",
            Bytes::from(prost::Message::encode_to_vec(&ExportTraceServiceResponse {
                partial_success: partial,
            })),
        ),
        Encoding::Json => {
            let v = match partial {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(),
                    "errorMessage": p.error_message}}),
            };
            let mut b = serde_json::to_vec(&v).unwrap_or_default();
            b.push(b'\n');
            (StatusCode::OK, "application/json", Bytes::from(b))
        }
    }
}

/// The answer to a body over [`MAX_BODY`], in the encoding the request names.
pub(in crate::admin) fn too_large(headers: &HeaderMap) -> super::Answer {
    failure(
        StatusCode::PAYLOAD_TOO_LARGE,
        encoding_of(headers).unwrap_or(Encoding::Protobuf),
        format!("the body is over {MAX_BODY} bytes"),
    )
}
