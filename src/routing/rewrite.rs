//! What a route changes on the request it sends upstream: the path (`strip_prefix`, then
//! `add_prefix`) and the Host header (`upstreams.<name>.pass_host` / `host`).
//!
//! The rewritten path is computed once per request; the query is always kept.

use super::split_host_port;
use http::HeaderValue;
use std::borrow::Cow;
use std::net::SocketAddr;

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

/// The Host header sent upstream (`upstreams.<name>.pass_host` and `upstreams.<name>.host`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PassHost {
    /// The client's Host, unchanged (`pass_host: true`, the default; Traefik's
    /// `passHostHeader: true`).
    #[default]
    Client,
    /// The chosen backend as written in `backends` (`pass_host: false`, nginx's
    /// `$proxy_host`): each backend's address with its Host value; `:80` is left out.
    Backend(Box<[(SocketAddr, HeaderValue)]>),
    /// A fixed value (`host: api.internal`).
    Fixed(HeaderValue),
}

impl PassHost {
    /// The Host to send to `backend`, or `None` to keep the client's.
    pub fn host_for(&self, backend: SocketAddr) -> Option<&HeaderValue> {
        match self {
            PassHost::Client => None,
            PassHost::Backend(hosts) => hosts.iter().find(|(a, _)| *a == backend).map(|(_, h)| h),
            PassHost::Fixed(h) => Some(h),
        }
    }
}

/// The Host value naming a backend: `written` as in the config (a host name keeps its name,
/// not the address it resolved to), without the port when it is the scheme's default, 80 for
/// `http` and 443 for `https` (`tls`) (RFC 9110 §7.2 allows leaving out a default port).
/// `resolved` is used if `written` is unusable.
pub fn backend_host(written: &str, resolved: SocketAddr, tls: bool) -> HeaderValue {
    let (host, port) = split_host_port(written);
    let port = port.unwrap_or(resolved.port());
    let default_port = if tls { 443 } else { 80 };
    let value = if port == default_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| {
        HeaderValue::from_str(&resolved.to_string()).expect("a socket address is a valid value")
    })
}

/// Checks an explicit upstream Host (`upstreams.<name>.host`): a host name or IP literal with
/// an optional port, as the Host header carries it (RFC 9110 §7.2).
pub fn parse_fixed_host(s: &str) -> Result<HeaderValue, String> {
    let s = s.trim();
    let err = || {
        format!(
            "{s:?} is not a host for the Host header: expected a name or IP with an optional \
             port, e.g. api.internal or api.internal:8080"
        )
    };
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']').ok_or_else(err)?;
        s.split_at(end + 1)
    } else {
        s.split_at(s.find(':').unwrap_or(s.len()))
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|p| p > 0);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }),
    };
    if !host_ok || !port_ok {
        return Err(err());
    }
    HeaderValue::from_str(s).map_err(|_| err())
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

    #[test]
    fn backend_host_table() {
        let a: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        // (written, resolved, TLS, Host, reason)
        let cases = [
            (
                "api.internal:8080",
                a,
                false,
                "api.internal:8080",
                "the name as written, not the address",
            ),
            (
                "api.internal:80",
                a,
                false,
                "api.internal",
                "HTTP's default port is left out",
            ),
            (
                "api.internal:443",
                a,
                true,
                "api.internal",
                "HTTPS's default port is left out",
            ),
            (
                "api.internal:443",
                a,
                false,
                "api.internal:443",
                "443 is not the default of plain HTTP",
            ),
            (
                "api.internal:80",
                a,
                true,
                "api.internal:80",
                "80 is not the default of HTTPS",
            ),
            ("10.0.0.1:8080", a, false, "10.0.0.1:8080", "an address"),
            (
                "[::1]:8080",
                "[::1]:8080".parse().unwrap(),
                false,
                "[::1]:8080",
                "IPv6 keeps its brackets",
            ),
            (
                " api.internal:9000 ",
                a,
                false,
                "api.internal:9000",
                "surrounding spaces trimmed",
            ),
        ];
        for (written, resolved, tls, want, why) in cases {
            assert_eq!(backend_host(written, resolved, tls), want, "{why}");
        }
    }

    #[test]
    fn fixed_host_table() {
        // (input, ok, reason)
        let cases = [
            ("api.internal", true, "a name"),
            ("api.internal:8080", true, "a name and port"),
            ("10.0.0.1", true, "an IPv4 address"),
            ("[2001:db8::1]:443", true, "an IPv6 literal with port"),
            ("", false, "empty"),
            ("api internal", false, "a space"),
            ("api.internal:", false, "an empty port"),
            ("api.internal:http", false, "a port that is not a number"),
            ("a/b", false, "a path"),
            ("[zz]", false, "not an IPv6 literal"),
            ("user@api", false, "userinfo"),
        ];
        for (s, ok, why) in cases {
            assert_eq!(
                parse_fixed_host(s).is_ok(),
                ok,
                "{why}: {:?}",
                parse_fixed_host(s)
            );
        }
    }

    #[test]
    fn pass_host_for_backend() {
        let (a, b): (SocketAddr, SocketAddr) =
            ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        let p = PassHost::Backend(
            vec![
                (a, HeaderValue::from_static("a:1")),
                (b, HeaderValue::from_static("b:2")),
            ]
            .into(),
        );
        assert_eq!(p.host_for(b).unwrap(), "b:2");
        assert!(p.host_for("10.0.0.3:3".parse().unwrap()).is_none());
        assert!(PassHost::Client.host_for(a).is_none());
        assert_eq!(
            PassHost::Fixed(HeaderValue::from_static("api.internal"))
                .host_for(a)
                .unwrap(),
            "api.internal"
        );
    }

    /// Arbitrary config strings never panic the checks; arbitrary paths never panic a rewrite.
    #[test]
    fn checks_and_rewrites_never_panic() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet = b"/?#:.[]@%aZ09 -_\xc3\xa9*";
        for _ in 0..20_000 {
            let mut gen = |max: usize| crate::testing::random_text(&mut rng, alphabet, max);
            let (a, b) = (gen(10), gen(14));
            let _ = parse_fixed_host(&a);
            let add = parse_add_prefix(&a).ok();
            let rw = PathRewrite {
                strip_prefix: check_path(&b).ok().map(|_| b.clone().into()),
                add_prefix: add,
            };
            let _ = rw.apply(&gen(16));
            let _ = backend_host(&a, "127.0.0.1:1".parse().unwrap(), false);
        }
    }
}
