//! Route conditions (`routes[].match`) and the request head they are tested against.
//!
//! Every condition a route sets must hold; a route without conditions matches every request.
//! The checks are cheap and allocation-free, because the route table is searched on every
//! request: host patterns are lower-cased and split when the config is loaded, header names are
//! parsed into [`HeaderName`]s, and the request host is split from its port once per request.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// The parts of a request that routes match on. All borrowed from the request head.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// `https` when the downstream connection is TLS.
    pub scheme: Scheme,
    pub method: &'a Method,
    /// The Host header value, or the URI authority for HTTP/2; a port is allowed.
    pub host: Option<&'a str>,
    /// The URI path, without the query, normalised (see [`super::path`]).
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// A request's scheme: whether the connection to the proxy is TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`, in any case.
    pub fn parse(s: &str) -> Result<Scheme, String> {
        match s.trim() {
            s if s.eq_ignore_ascii_case("http") => Ok(Scheme::Http),
            s if s.eq_ignore_ascii_case("https") => Ok(Scheme::Https),
            s => Err(format!("{s:?}: expected http or https")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL of this scheme has when it names none (RFC 9110 §4.2).
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// `match.host`: an exact name or a `*.` wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// The host equals this lower-case name.
    Exact(Box<str>),
    /// `*.example.com`, stored as the suffix `.example.com`: the host is one or more labels
    /// followed by this suffix. `example.com` itself does not match (as Traefik's
    /// `HostRegexp`-free wildcard and nginx `server_name *.example.com`).
    Wildcard(Box<str>),
}

impl HostMatch {
    /// Parses a host pattern from the config: a host name (letters, digits, `-`, `_`, `.`),
    /// compared without case and without a trailing dot, or `*.` followed by one. A port, a
    /// `*` anywhere else and empty labels are refused.
    pub fn parse(s: &str) -> Result<HostMatch, String> {
        let raw = s.trim();
        let lower = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let bad = |why: &str| format!("invalid host {raw:?}: {why}");
        if name.is_empty() || name == "*" {
            return Err(bad(
                "expected a host name without port, e.g. api.example.com (leave host out to match any host)",
            ));
        }
        if name.contains(':') {
            return Err(bad("expected a host name without port"));
        }
        if name.contains('*') {
            return Err(bad(
                "a wildcard is only allowed as the whole first label, as in *.example.com",
            ));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(bad("empty label"));
            }
            if !crate::net::is_host_label(label) {
                return Err(bad(
                    "expected a host name without port (letters, digits, '-', '_' and '.')",
                ));
            }
        }
        // Requests naming such a host are refused before routing, so it could never match.
        if !crate::net::a_labels_are_valid(name) {
            return Err(bad(
                "an xn-- label is not valid IDNA (its Punycode does not decode to a valid label)",
            ));
        }
        Ok(if wildcard {
            HostMatch::Wildcard(format!(".{name}").into())
        } else {
            HostMatch::Exact(name.into())
        })
    }

    /// True when `host` (without port; a trailing dot is ignored, case is ignored) matches.
    pub fn matches(&self, host: &str) -> bool {
        let h = host.strip_suffix('.').unwrap_or(host);
        match self {
            HostMatch::Exact(want) => h.eq_ignore_ascii_case(want),
            HostMatch::Wildcard(suffix) => {
                let (h, s) = (h.as_bytes(), suffix.as_bytes());
                if h.len() <= s.len() || !h[h.len() - s.len()..].eq_ignore_ascii_case(s) {
                    return false;
                }
                // One or more non-empty labels before the suffix.
                let labels = &h[..h.len() - s.len()];
                labels[0] != b'.'
                    && !labels.ends_with(b".")
                    && !labels.windows(2).any(|w| w == b"..")
            }
        }
    }
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(s) => write!(f, "*{s}"),
        }
    }
}

/// `match.path` or `match.path_prefix`, compared byte for byte with the normalised request
/// path ([`super::path`]: unreserved characters decoded, dot segments resolved, slashes
/// merged; no case folding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `path`: the whole path equals this (nginx `location = /x`, Traefik `Path`).
    Exact(Box<str>),
    /// `path_prefix`: the path starts with this (nginx `location /x`, Traefik `PathPrefix`);
    /// `/api` also matches `/apis`.
    Prefix(Box<str>),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == &**p,
            PathMatch::Prefix(p) => path.starts_with(&**p),
        }
    }
}

/// All conditions of one route. Empty (the default) matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    /// `match.scheme`: the downstream connection is (`https`) or is not (`http`) TLS.
    pub scheme: Option<Scheme>,
    pub host: Option<HostMatch>,
    pub path: Option<PathMatch>,
    /// `match.methods`; empty means any method.
    pub methods: Vec<Method>,
    /// `match.headers`: each name must have a field line whose whole value equals the value.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Conditions {
    /// True when every condition holds. `host` is the request host already split from its
    /// port (see [`crate::net::split_host_port`]).
    pub fn matches(&self, req: &RequestHead<'_>, host: Option<&str>) -> bool {
        if self.scheme.is_some_and(|s| s != req.scheme) {
            return false;
        }
        if let Some(p) = &self.path {
            if !p.matches(req.path) {
                return false;
            }
        }
        if let Some(want) = &self.host {
            match host {
                Some(h) if want.matches(h) => {}
                _ => return false,
            }
        }
        if !self.methods.is_empty() && !self.methods.contains(req.method) {
            return false;
        }
        self.headers.iter().all(|(name, want)| {
            req.headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == want.as_bytes())
        })
    }
}

/// A method name from the config: an HTTP token, upper-cased (the standard methods are
/// upper-case, and RFC 9110 §9.1 makes methods case-sensitive, so `get` would never match).
pub fn parse_method(s: &str) -> Result<Method, String> {
    let up = s.trim().to_ascii_uppercase();
    if up.is_empty() {
        return Err("empty method".into());
    }
    Method::from_bytes(up.as_bytes()).map_err(|_| format!("{s:?} is not an HTTP method"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_pattern_table() {
        // (pattern, request host, matches, reason)
        let cases = [
            ("*.example.com", "a.example.com", true, "one label"),
            ("*.example.com", "a.b.example.com", true, "two labels"),
            (
                "*.example.com",
                "example.com",
                false,
                "the bare domain is not a subdomain",
            ),
            ("*.example.com", "a.example.org", false, "other domain"),
            ("*.example.com", "example.org", false, "other domain, bare"),
            ("*.example.com", "A.Example.COM", true, "case is ignored"),
            (
                "*.example.com",
                "a.example.com.",
                true,
                "trailing dot is ignored",
            ),
            (
                "*.example.com",
                "aexample.com",
                false,
                "suffix must start at a label",
            ),
            (
                "*.example.com",
                ".example.com",
                false,
                "an empty label is not a label",
            ),
            (
                "*.example.com",
                "a..example.com",
                false,
                "empty label in the middle",
            ),
            ("*.example.com", "", false, "empty host"),
            (
                "*.Example.COM.",
                "x.example.com",
                true,
                "pattern is lower-cased, dot dropped",
            ),
            (
                "api.example.com",
                "API.example.com",
                true,
                "exact, case ignored",
            ),
            (
                "api.example.com",
                "api.example.com.",
                true,
                "exact, trailing dot ignored",
            ),
            (
                "api.example.com",
                "x.api.example.com",
                false,
                "exact is not a suffix match",
            ),
            (
                "api.example.com",
                "api.example.com.evil",
                false,
                "exact is not a prefix match",
            ),
        ];
        for (pattern, host, want, why) in cases {
            let m = HostMatch::parse(pattern).unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(m.matches(host), want, "{why}: {pattern} vs {host:?}");
        }
    }

    #[test]
    fn bad_host_patterns_table() {
        // (pattern, words in the reason, reason)
        let cases = [
            ("a.com:80", "without port", "a port"),
            (
                "*",
                "expected a host name",
                "a lone star would match every host; leave host out",
            ),
            ("*.", "expected a host name", "a star and nothing"),
            ("a.*.com", "first label", "star in the middle"),
            ("*example.com", "first label", "star glued to a label"),
            ("**.example.com", "first label", "two stars"),
            ("a..com", "empty label", "empty label"),
            ("", "expected a host name", "empty"),
            ("a/b", "letters, digits", "a path character"),
            ("exa mple.com", "letters, digits", "a space"),
            (
                "*.xn--a-b_c.example",
                "not valid IDNA",
                "an A-label whose Punycode does not decode",
            ),
        ];
        for (pattern, words, why) in cases {
            let e = HostMatch::parse(pattern).expect_err(why);
            assert!(e.contains(words), "{why}: {e}");
        }
    }

    #[test]
    fn host_pattern_display_round_trips() {
        for p in ["*.example.com", "api.example.com"] {
            assert_eq!(HostMatch::parse(p).unwrap().to_string(), p);
        }
    }

    #[test]
    fn conditions_table() {
        let mut headers = HeaderMap::new();
        headers.append("x-env", HeaderValue::from_static("prod"));
        headers.append("x-env", HeaderValue::from_static("canary"));
        headers.insert("x-list", HeaderValue::from_static("a, canary"));
        let empty = HeaderMap::new();
        let get = Method::GET;
        let post = Method::POST;
        let head = |method, headers, path| RequestHead {
            scheme: Scheme::Http,
            method,
            host: None,
            path,
            headers,
        };
        let hdr = |n: &'static str, v: &'static str| {
            vec![(HeaderName::from_static(n), HeaderValue::from_static(v))]
        };
        // (conditions, request, matches, reason)
        let cases: Vec<(Conditions, RequestHead, bool, &str)> = vec![
            (
                Conditions::default(),
                head(&get, &empty, "/x"),
                true,
                "no conditions",
            ),
            (
                Conditions {
                    path: Some(PathMatch::Exact("/login".into())),
                    ..Default::default()
                },
                head(&get, &empty, "/login"),
                true,
                "exact path",
            ),
            (
                Conditions {
                    path: Some(PathMatch::Exact("/login".into())),
                    ..Default::default()
                },
                head(&get, &empty, "/login/"),
                false,
                "exact path: a trailing slash is another path",
            ),
            (
                Conditions {
                    path: Some(PathMatch::Exact("/login".into())),
                    ..Default::default()
                },
                head(&get, &empty, "/login2"),
                false,
                "exact path is not a prefix",
            ),
            (
                Conditions {
                    path: Some(PathMatch::Prefix("/login".into())),
                    ..Default::default()
                },
                head(&get, &empty, "/login2"),
                true,
                "prefix is a plain string prefix",
            ),
            (
                Conditions {
                    path: Some(PathMatch::Prefix("/Login".into())),
                    ..Default::default()
                },
                head(&get, &empty, "/login"),
                false,
                "paths are case-sensitive",
            ),
            (
                Conditions {
                    scheme: Some(Scheme::Https),
                    ..Default::default()
                },
                head(&get, &empty, "/"),
                false,
                "https only: a plain HTTP request does not match",
            ),
            (
                Conditions {
                    scheme: Some(Scheme::Http),
                    ..Default::default()
                },
                head(&get, &empty, "/"),
                true,
                "http only",
            ),
            (
                Conditions {
                    methods: vec![Method::GET, Method::HEAD],
                    ..Default::default()
                },
                head(&get, &empty, "/"),
                true,
                "method listed",
            ),
            (
                Conditions {
                    methods: vec![Method::GET, Method::HEAD],
                    ..Default::default()
                },
                head(&post, &empty, "/"),
                false,
                "method not listed",
            ),
            (
                Conditions {
                    headers: hdr("x-env", "canary"),
                    ..Default::default()
                },
                head(&get, &headers, "/"),
                true,
                "any field line of the name may carry the value",
            ),
            (
                Conditions {
                    headers: hdr("x-env", "Canary"),
                    ..Default::default()
                },
                head(&get, &headers, "/"),
                false,
                "values compare case-sensitively",
            ),
            (
                Conditions {
                    headers: hdr("x-env", "canary"),
                    ..Default::default()
                },
                head(&get, &empty, "/"),
                false,
                "header absent",
            ),
            (
                Conditions {
                    headers: hdr("x-list", "canary"),
                    ..Default::default()
                },
                head(&get, &headers, "/"),
                false,
                "a comma-separated line is compared whole, not split",
            ),
            (
                Conditions {
                    headers: hdr("x-list", "a, canary"),
                    ..Default::default()
                },
                head(&get, &headers, "/"),
                true,
                "the whole line matches",
            ),
            (
                Conditions {
                    path: Some(PathMatch::Prefix("/api".into())),
                    methods: vec![Method::GET],
                    headers: hdr("x-env", "canary"),
                    ..Default::default()
                },
                head(&post, &headers, "/api"),
                false,
                "every condition must hold: the method fails",
            ),
        ];
        for (c, req, want, why) in cases {
            assert_eq!(c.matches(&req, req.host), want, "{why}");
        }
    }

    #[test]
    fn method_table() {
        // (input, result, reason)
        let cases = [
            ("GET", Some("GET"), "standard"),
            ("get", Some("GET"), "upper-cased"),
            (" Head ", Some("HEAD"), "trimmed"),
            ("PURGE", Some("PURGE"), "extension method"),
            ("", None, "empty"),
            ("GE T", None, "not a token"),
            ("GET\n", Some("GET"), "surrounding whitespace is trimmed"),
        ];
        for (input, want, why) in cases {
            let got = parse_method(input).ok();
            assert_eq!(got.as_ref().map(Method::as_str), want, "{why}");
        }
    }

    /// Arbitrary patterns and hosts never panic the parser or the matcher.
    #[test]
    fn host_parsing_and_matching_never_panic() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"*.:aAzZ09-_/ \t\xc3\xa9[]";
        for _ in 0..20_000 {
            let mut gen = |max: usize| crate::testing::random_text(&mut rng, alphabet, max);
            let pattern = gen(12);
            let host = gen(16);
            if let Ok(m) = HostMatch::parse(&pattern) {
                let _ = m.matches(&host);
                assert!(HostMatch::parse(&m.to_string()).is_ok(), "{pattern:?}");
            }
            let _ = parse_method(&host);
        }
    }
}
