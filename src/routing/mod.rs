//! Request routing: a request head in, a route out. Pure code, no sockets and no Pingora types.
//!
//! Routes are tried in file order and the first match wins (nginx `location` order is not
//! emulated: order is explicit, as in Traefik with equal priorities). A route matches when every
//! condition it sets holds:
//! - `host`: the request host equals it, compared without case, without the port and without a
//!   trailing dot (`API.example.com:8080` matches `api.example.com`).
//! - `path_prefix`: the request path starts with it, byte for byte (as nginx `location /api`
//!   and Traefik `PathPrefix`: `/api` also matches `/apis`; write `/api/` to match a segment).

use bytes::Bytes;
use std::sync::Arc;

/// What a matched route does.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// Proxy to the upstream pool with this index, after removing `strip_prefix` from the path.
    Proxy {
        upstream: usize,
        strip_prefix: Option<String>,
    },
    /// Answer directly, without an upstream (nginx `return`).
    Respond { status: u16, body: Bytes },
}

/// One route: its name (used as `http.route`), its conditions and its action.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: Arc<str>,
    /// Lower-case host without port or trailing dot.
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub action: RouteAction,
    /// This route's own head-sampling ratio for new traces (`routes[].sample_ratio`).
    pub sample_ratio: Option<f64>,
}

impl Route {
    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if host_eq(h, want) => {}
                _ => return false,
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !path.starts_with(prefix.as_str()) {
                return false;
            }
        }
        true
    }
}

/// The ordered route table.
///
/// ```
/// use bytes::Bytes;
/// use tracegate::routing::{Route, RouteAction, Router};
///
/// let route = |name: &str, host: Option<&str>, prefix: &str| Route {
///     name: name.into(),
///     host: host.map(str::to_owned),
///     path_prefix: Some(prefix.to_owned()),
///     action: RouteAction::Respond { status: 200, body: Bytes::new() },
///     sample_ratio: None,
/// };
/// let router = Router::new(vec![
///     route("api", Some("api.example.com"), "/api"),
///     route("default", None, "/"),
/// ]);
/// assert_eq!(&*router.route(Some("API.example.com:8080"), "/api/users").unwrap().name, "api");
/// assert_eq!(&*router.route(Some("www.example.com"), "/api/users").unwrap().name, "default");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        Router { routes }
    }

    /// The first route matching `host` (a Host header value or URI authority, port allowed) and
    /// `path` (the URI path, without query), or `None` (the proxy answers 404).
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.find(host, path).map(|i| &self.routes[i])
    }

    /// Like [`Router::route`], returning the route's index in [`Router::routes`].
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let host = host.map(|h| split_host_port(h).0);
        self.routes.iter().position(|r| r.matches(host, path))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

fn host_eq(request_host: &str, route_host: &str) -> bool {
    let h = request_host.strip_suffix('.').unwrap_or(request_host);
    h.eq_ignore_ascii_case(route_host)
}

/// Splits `host[:port]` (also `[v6]:port`) into the host and the port, if one is present and
/// valid. The brackets of an IPv6 literal are kept, as in the Host header.
pub fn split_host_port(s: &str) -> (&str, Option<u16>) {
    let s = s.trim();
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            let port = s[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (&s[..=end], port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

/// The path to send upstream after removing `prefix`; always starts with `/`.
/// `/app/items?q=1` with prefix `/app` becomes `/items?q=1`; `/app` becomes `/`.
pub fn strip_path_prefix(path_and_query: &str, prefix: &str) -> String {
    match path_and_query.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        Some(rest) => format!("/{rest}"),
        None => path_and_query.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, host: Option<&str>, prefix: Option<&str>) -> Route {
        Route {
            name: name.into(),
            host: host.map(str::to_owned),
            path_prefix: prefix.map(str::to_owned),
            action: RouteAction::Respond {
                status: 200,
                body: Bytes::new(),
            },
            sample_ratio: None,
        }
    }

    #[test]
    fn first_match_wins_table() {
        let r = Router::new(vec![
            route("api", Some("api.example.com"), Some("/api")),
            route("api-host", Some("api.example.com"), None),
            route("static", None, Some("/static/")),
            route("default", None, Some("/")),
        ]);
        let cases: &[(Option<&str>, &str, Option<&str>, &str)] = &[
            (
                Some("api.example.com"),
                "/api/users",
                Some("api"),
                "host and prefix both match",
            ),
            (
                Some("API.Example.COM:8080"),
                "/api",
                Some("api"),
                "host compares without case and port",
            ),
            (
                Some("api.example.com."),
                "/api",
                Some("api"),
                "trailing dot of an FQDN is ignored",
            ),
            (
                Some("api.example.com"),
                "/apis",
                Some("api"),
                "prefix is a plain string prefix, as nginx/Traefik",
            ),
            (
                Some("api.example.com"),
                "/other",
                Some("api-host"),
                "falls through to the next route",
            ),
            (
                Some("www.example.com"),
                "/api/users",
                Some("default"),
                "host mismatch skips the api routes",
            ),
            (
                Some("www.example.com"),
                "/static/a.css",
                Some("static"),
                "prefix-only route",
            ),
            (
                None,
                "/static",
                Some("default"),
                "'/static/' does not match '/static'",
            ),
            (
                None,
                "/x",
                Some("default"),
                "no host: host routes are skipped",
            ),
            (
                Some("api.example.com.evil"),
                "/api",
                Some("default"),
                "no suffix tricks on host",
            ),
        ];
        for (host, path, want, why) in cases {
            let got = r.route(*host, path).map(|r| &*r.name);
            assert_eq!(got, *want, "{why}: {host:?} {path}");
        }
    }

    #[test]
    fn no_match_is_none() {
        let r = Router::new(vec![route("api", Some("api.example.com"), None)]);
        assert!(r.route(Some("other"), "/").is_none());
        assert!(r.route(None, "/").is_none());
    }

    #[test]
    fn host_port_split_table() {
        let cases = [
            ("example.com", ("example.com", None), "no port"),
            ("example.com:8080", ("example.com", Some(8080)), "port"),
            (
                "[::1]:8080",
                ("[::1]", Some(8080)),
                "IPv6 literal with port",
            ),
            ("[::1]", ("[::1]", None), "IPv6 literal alone"),
            (
                "example.com:x",
                ("example.com", None),
                "bad port is ignored",
            ),
            (
                "::1",
                ("::1", None),
                "bare IPv6 (not valid in Host) is left whole",
            ),
        ];
        for (input, want, why) in cases {
            assert_eq!(split_host_port(input), want, "{why}");
        }
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
}
