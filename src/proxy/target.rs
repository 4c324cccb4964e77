//! The request target as the proxy reads it, settled once per request before anything reads
//! it (`early_request_filter`): the path is normalised ([`crate::routing::path`], with the
//! router's policy) and written back into the request head, so the router and the filters, the
//! SERVER span's `url.path`, the request's record ([`crate::exchange::Exchange::path`]) and
//! the request sent upstream (after `strip_prefix`/`add_prefix`) all see one path. The query
//! is never changed. A path already in normal form costs one scan and no allocation.
//!
//! The Host's IDNA labels are checked here too: the router compares hosts without case, port
//! or trailing dot ([`crate::routing::HostMatch`]); an `xn--` label that is not valid IDNA is
//! refused ([`crate::net::a_labels_are_valid`]).
//!
//! A refused target is answered `400` by the proxy's one answer writer, once the request's
//! trace has started (its `url.path` is then the path as received).

use crate::exchange::Downstream;
use crate::routing::path::normalize_kept;
use crate::routing::{Answer, EncodedSet, PathPolicy, PathRefusal};
use bytes::Bytes;
use http::uri::PathAndQuery;
use pingora::proxy::Session;
use std::borrow::Cow;
use std::fmt;

/// Why a request target is answered 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    Path(PathRefusal),
    /// An `xn--` label of the Host is not valid IDNA.
    Host,
    /// The normal form of the path did not make a URI again (not expected: normalising only
    /// decodes unreserved characters and writes `\` as `%5C`).
    Rebuild,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Path(r) => r.fmt(f),
            Refused::Host => f.write_str("an xn-- label of the Host is not valid IDNA"),
            Refused::Rebuild => f.write_str("the normalised path is not a valid request target"),
        }
    }
}

impl Refused {
    /// `400 Bad Request: <why>`.
    pub(super) fn answer(&self) -> Answer {
        Answer::new(400, Bytes::from(format!("400 Bad Request: {self}\n")))
    }
}

/// Checks the Host and normalises the path of the request on `session` with `policy`,
/// rewriting the request head's URI when the path changes (scheme, authority and query kept).
/// Returns the refusable encodings the path keeps, for the matched route to allow.
pub(super) fn settle(
    session: &mut Session,
    downstream: &Downstream,
    policy: &PathPolicy,
) -> Result<EncodedSet, Refused> {
    if !downstream.host().is_none_or(crate::net::a_labels_are_valid) {
        return Err(Refused::Host);
    }
    let req = session.req_header();
    // A target that is not UTF-8 reaches the URI as a lossy copy while its bytes go upstream:
    // no normal form of those bytes can be made, or checked.
    if policy.normalize && !req.raw_path_is_utf8() {
        return Err(Refused::Path(PathRefusal::NotUtf8));
    }
    let n = normalize_kept(req.uri.path(), policy).map_err(Refused::Path)?;
    let kept = n.kept;
    let Cow::Owned(path) = n.path else {
        return Ok(kept);
    };
    let uri = with_path(&req.uri, path).ok_or(Refused::Rebuild)?;
    session.req_header_mut().set_uri(uri);
    Ok(kept)
}

/// `uri` with its path replaced by `path`, its query kept byte for byte.
fn with_path(uri: &http::Uri, mut path: String) -> Option<http::Uri> {
    if let Some(q) = uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path).ok()?);
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_path_keeps_the_rest_table() {
        // (uri, new path, result, reason)
        let cases = [
            (
                "/a/../b?x=%2F&y=..",
                "/b",
                "/b?x=%2F&y=..",
                "the query, byte for byte",
            ),
            ("/a/./b", "/a/b", "/a/b", "no query"),
            ("/a/./b?", "/a/b", "/a/b?", "an empty query stays"),
            (
                "https://Example.com:8443/x/../y?q",
                "/y",
                "https://Example.com:8443/y?q",
                "scheme and authority (HTTP/2) stay",
            ),
        ];
        for (uri, path, want, why) in cases {
            let uri: http::Uri = uri.parse().unwrap();
            let got = with_path(&uri, path.to_owned()).unwrap();
            assert_eq!(got.to_string(), want, "{why}");
        }
    }

    #[test]
    fn refusals_read_as_answers() {
        let a = Refused::Path(PathRefusal::Encoded("slash")).answer();
        assert_eq!(a.status, 400);
        assert_eq!(
            &a.body[..],
            b"400 Bad Request: an encoded slash (%2F) is not allowed in the path\n"
        );
        assert_eq!(
            &Refused::Host.answer().body[..],
            b"400 Bad Request: an xn-- label of the Host is not valid IDNA\n"
        );
    }
}
