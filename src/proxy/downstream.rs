//! Reading the [`Downstream`] facts off a Pingora session, once per request: TLS or not, the
//! Host (or HTTP/2 authority, or the authority of an absolute-form target), the client's and
//! the local address.

use crate::exchange::Downstream;
use crate::net::request_authority;
use pingora::http::RequestHeader;
use pingora::protocols::http::authority::raw_target_authority;
use pingora::protocols::Digest;
use pingora::proxy::Session;

/// The downstream facts of the request on `session`.
pub(super) fn read(session: &Session) -> Downstream {
    let req = session.req_header();
    let authority = request_authority(&req.headers, &req.uri).or_else(|| target_authority(req));
    Downstream::new(
        digest_is_tls(session.digest()),
        authority,
        session.client_addr().and_then(|a| a.as_inet()).copied(),
        session.server_addr().and_then(|a| a.as_inet()).copied(),
    )
}

/// The authority of an absolute-form target (`GET http://a.test/ HTTP/1.0`), which names the
/// host of a request without Host (RFC 9112 §3.2.2). Pingora keeps only the path in the
/// request's URI, and refuses a Host that differs from this authority.
fn target_authority(req: &RequestHeader) -> Option<&str> {
    raw_target_authority(req.raw_path())
        .authority()
        .and_then(|a| std::str::from_utf8(a).ok())
}

/// A connection is TLS when its digest carries TLS details (Pingora fills `ssl_digest` for
/// every TLS connection, downstream and upstream).
fn digest_is_tls(digest: Option<&Digest>) -> bool {
    digest.is_some_and(|d| d.ssl_digest.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::protocols::tls::SslDigest;
    use std::sync::Arc;

    /// The TLS branch, without a TLS listener: a digest with TLS details is TLS, one without
    /// (plain TCP) and none at all are not.
    #[test]
    fn tls_from_digest_table() {
        let plain = Digest::default();
        let tls = Digest {
            ssl_digest: Some(Arc::new(SslDigest::new(
                "TLS_AES_128_GCM_SHA256",
                "TLSv1.3",
                None,
                None,
                Vec::new(),
            ))),
            ..Digest::default()
        };
        // (digest, is TLS, reason)
        let cases = [
            (None, false, "no digest (e.g. a request built in a test)"),
            (Some(&plain), false, "plain TCP"),
            (Some(&tls), true, "TLS details present"),
        ];
        for (d, want, why) in cases {
            assert_eq!(digest_is_tls(d), want, "{why}");
        }
    }
}
