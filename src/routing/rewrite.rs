//! What a route changes on the path it sends upstream (or redirects to): `strip_prefix`, then
//! `add_prefix`. The Host sent upstream is the upstream's setting ([`crate::upstream::PassHost`]).
//!
//! The rewritten path is computed once per request; the query is always kept.

use std::borrow::Cow;

/// `routes[].strip_prefix` and `routes[].add_prefix`. Both empty: the path is sent as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRewrite {
    /// Removed from the start of the path when present (a plain string prefix, like
    /// `path_prefix`); the result always starts with `/`.
    pub strip_prefix: Option<Box<str>>,
    /// Put in front of the path after `strip_prefix`; stored without a trailing `/`.
    pub add_prefix: Option<Box<str>>,
}

impl PathRewrite {
    /// True when the path is sent unchanged.
    pub fn is_identity(&self) -> bool {
        self.strip_prefix.is_none() && self.add_prefix.is_none()
    }

    /// The path and query to send, from the path and query received. Borrowed when nothing
    /// changes. `/app/items?q=1` with `strip_prefix: /app` and `add_prefix: /v2` becomes
    /// `/v2/items?q=1`.
    pub fn apply<'a>(&self, path_and_query: &'a str) -> Cow<'a, str> {
        let stripped = match &self.strip_prefix {
            Some(p) => strip_path_prefix(path_and_query, p),
            None => Cow::Borrowed(path_and_query),
        };
        match &self.add_prefix {
            None => stripped,
            Some(add) => {
                let sep = if stripped.starts_with('/') { "" } else { "/" };
                Cow::Owned(format!("{add}{sep}{stripped}"))
            }
        }
    }
}

/// The path to send upstream after removing `prefix`; always starts with `/`.
/// `/app/items?q=1` with prefix `/app` becomes `/items?q=1`; `/app` becomes `/`.
pub fn strip_path_prefix<'a>(path_and_query: &'a str, prefix: &str) -> Cow<'a, str> {
    match path_and_query.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') => Cow::Borrowed(rest),
        Some(rest) => Cow::Owned(format!("/{rest}")),
        None => Cow::Borrowed(path_and_query),
    }
}

/// Checks a path prefix from the config (`strip_prefix`, `add_prefix`, a redirect's `path`):
/// it starts with `/` and is a valid URI path without query or fragment.
pub fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if p.contains(['?', '#']) {
        return Err(format!("{p:?}: a path has no '?' or '#'"));
    }
    if !p.is_ascii() || p.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!(
            "{p:?} is not a valid URI path (percent-encode spaces and other special characters)"
        ));
    }
    Ok(())
}

/// Checks `add_prefix` and returns it without trailing slashes (`/v2/` + `/items` is
/// `/v2/items`, not `/v2//items`).
pub fn parse_add_prefix(p: &str) -> Result<Box<str>, String> {
    check_path(p)?;
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(format!("{p:?} adds nothing; leave add_prefix out"));
    }
    Ok(trimmed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_table() {
        let rw = |strip: Option<&str>, add: Option<&str>| PathRewrite {
            strip_prefix: strip.map(Into::into),
            add_prefix: add.map(|a| parse_add_prefix(a).unwrap()),
        };
        // (rewrite, received, sent, reason)
        let cases = [
            (rw(None, None), "/a?q=1", "/a?q=1", "nothing configured"),
            (
                rw(Some("/app"), None),
                "/app/items?q=1",
                "/items?q=1",
                "strip keeps the query",
            ),
            (
                rw(None, Some("/v2")),
                "/items",
                "/v2/items",
                "add, as in the issue",
            ),
            (
                rw(None, Some("/v2/")),
                "/items",
                "/v2/items",
                "a trailing slash on add is dropped",
            ),
            (
                rw(None, Some("/v2")),
                "/items?q=1&r",
                "/v2/items?q=1&r",
                "add keeps the query",
            ),
            (
                rw(None, Some("/v2")),
                "/",
                "/v2/",
                "the root under the prefix",
            ),
            (
                rw(Some("/app"), Some("/v2")),
                "/app/items?q=1",
                "/v2/items?q=1",
                "strip, then add",
            ),
            (
                rw(Some("/app"), Some("/v2")),
                "/app",
                "/v2/",
                "strip to the root, then add",
            ),
            (
                rw(Some("/app"), Some("/v2")),
                "/app?x",
                "/v2/?x",
                "query right after the prefix",
            ),
            (
                rw(Some("/app"), Some("/v2")),
                "/other",
                "/v2/other",
                "strip absent: add still applies",
            ),
            (
                rw(None, Some("/v2")),
                "*",
                "/v2/*",
                "a path without '/' gets one",
            ),
        ];
        for (rw, input, want, why) in cases {
            assert_eq!(rw.apply(input), want, "{why}");
        }
        assert!(
            matches!(rw(None, None).apply("/a"), Cow::Borrowed(_)),
            "no rewrite: no allocation"
        );
        assert!(matches!(
            rw(Some("/app"), None).apply("/app/x"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn strip_prefix_table() {
        let cases = [
            ("/app/items?q=1", "/app", "/items?q=1", "issue example"),
            ("/app", "/app", "/", "exact prefix leaves the root"),
            ("/app?x", "/app", "/?x", "query right after the prefix"),
            (
                "/apples",
                "/app",
                "/les",
                "plain string prefix, like the match",
            ),
            ("/other", "/app", "/other", "prefix absent: unchanged"),
        ];
        for (input, prefix, want, why) in cases {
            assert_eq!(strip_path_prefix(input, prefix), want, "{why}");
        }
    }

    #[test]
    fn path_checks_table() {
        // (input, ok, reason)
        let cases = [
            ("/v2", true, "plain"),
            ("/v2/a-b_c.d~e%20", true, "unreserved and percent-encoded"),
            ("v2", false, "relative"),
            ("/v2?x=1", false, "a query"),
            ("/v2#top", false, "a fragment"),
            ("/v 2", false, "a space"),
            ("/v2\u{e9}", false, "non-ASCII"),
        ];
        for (p, ok, why) in cases {
            assert_eq!(check_path(p).is_ok(), ok, "{why}: {:?}", check_path(p));
        }
        assert!(parse_add_prefix("/").is_err(), "'/' adds nothing");
        assert_eq!(&*parse_add_prefix("/v2//").unwrap(), "/v2");
    }

    /// Arbitrary config strings never panic the path checks; arbitrary paths never panic a rewrite.
    #[test]
    fn checks_and_rewrites_never_panic() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet = b"/?#:.[]@%aZ09 -_\xc3\xa9*";
        for _ in 0..20_000 {
            let mut gen = |max: usize| crate::testing::random_text(&mut rng, alphabet, max);
            let (a, b) = (gen(10), gen(14));
            let add = parse_add_prefix(&a).ok();
            let rw = PathRewrite {
                strip_prefix: check_path(&b).ok().map(|_| b.clone().into()),
                add_prefix: add,
            };
            let _ = rw.apply(&gen(16));
        }
    }
}
