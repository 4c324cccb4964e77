//! Request routing: a request head in, a route out, and what the route does to the request and
//! its response. Pure code, no sockets and no Pingora types (the `http` crate's types only).
//!
//! **Order.** Routes are tried in file order and the first match wins, unless `priority` says
//! otherwise: routes with a higher priority are tried first, and routes of equal priority keep
//! their file order (the default priority is 0). Neither Traefik's default (the longest rule
//! first) nor nginx's `location` rules (exact `=` first, then the longest prefix, then regexes in
//! order) are emulated: the order is what the file says.
//!
//! **Matching** ([`matching`]). A route matches when every condition it sets holds:
//! - `host`: the request host (Host header, or the HTTP/2 authority) equals it, compared without
//!   case, without the port and without a trailing dot (`API.example.com:8080` matches
//!   `api.example.com`). `*.example.com` matches one or more labels before `example.com`
//!   (`a.example.com`, `a.b.example.com`), never `example.com` itself nor `example.org`.
//! - `path`: the request path (without query) equals it, byte for byte.
//! - `path_prefix`: the request path starts with it, byte for byte (as nginx `location /api`
//!   and Traefik `PathPrefix`: `/api` also matches `/apis`; write `/api/` to match a segment).
//!   The request path is the normalised one ([`path`]: unreserved characters decoded, dot
//!   segments resolved, slashes merged), case-sensitive.
//! - `methods`: the request method is one of them (methods are case-sensitive, RFC 9110 §9.1).
//! - `headers`: for each name (case-insensitive), at least one field line of that name has
//!   exactly this value (case-sensitive, whole line: `a, b` is not split into `a` and `b`).
//!
//! **Actions.** `upstream` (proxy, with [`rewrite`] of the path and the [`forwarded`]
//! headers), `respond` (a fixed answer) or `redirect` ([`redirect`]); the proxy's own answers
//! are [`Answer`]s. Per-route header edits ([`headers`]) change the request sent upstream and
//! the response sent back. A route's middlewares run as a [`filter`] chain right after it
//! matched.
//!
//! **Paths** ([`path`]). The proxy normalises the request path once, before routing, with the
//! router's [`Router::path_policy`]; the route that matched then decides whether the encodings
//! the path kept (`%2F`, ...) are allowed ([`Router::check_encoded`]).
//!
//! The [`Router`] is immutable once built: a config reload builds a new one and swaps it whole.

pub mod answer;
pub mod filter;
pub mod forwarded;
pub mod headers;
pub mod matching;
pub mod path;
pub mod redirect;
pub mod rewrite;

pub use answer::Answer;
pub use filter::{Chain, Filter, FilterRequest, Verdict};
pub use forwarded::ForwardedPolicy;
pub use headers::HeaderEdits;
pub use matching::{Conditions, HostMatch, PathMatch, RequestHead, Scheme};
pub use path::{EncodedSet, PathPolicy, PathRefusal};
pub use redirect::{Redirect, RedirectError, RedirectRequest};
pub use rewrite::{strip_path_prefix, PathRewrite};

use crate::net::split_host_port;
use bytes::Bytes;
use std::sync::Arc;

/// What a matched route does.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// Proxy to the upstream pool with this index.
    Proxy { upstream: usize },
    /// Answer directly, without an upstream (nginx `return 200 …`).
    Respond { status: u16, body: Bytes },
    /// Answer with a redirect (nginx `return 301 …`).
    Redirect(Redirect),
}

/// One route: its name (used as `http.route`), its conditions and its action.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: Arc<str>,
    pub conditions: Conditions,
    /// Higher is tried first; equal priorities keep file order.
    pub priority: i32,
    /// The path sent upstream (or redirected to).
    pub rewrite: PathRewrite,
    /// Edits of the request sent upstream.
    pub request_headers: HeaderEdits,
    /// Edits of every response of this route: proxied, its own (`respond`, `redirect`) and
    /// the proxy's errors (502, 504).
    pub response_headers: HeaderEdits,
    pub action: RouteAction,
    /// This route's own head-sampling ratio for new traces (`routes[].sample_ratio`).
    pub sample_ratio: Option<f64>,
    /// The route's middlewares, run in order right after it matched ([`filter`]).
    pub filters: Chain,
    /// `routes[].middlewares`: indices into the config's middlewares, in the order they run
    /// (the proxy runs them; the router only carries the list).
    pub middlewares: Arc<[usize]>,
    /// `routes[].allow_encoded`: the refusable encodings this route lets through, instead of
    /// the router's (`server.path.allow_encoded`); `None` keeps the router's.
    pub allow_encoded: Option<EncodedSet>,
}

impl Route {
    /// A route without conditions (it matches everything), priority 0, no rewrite and no
    /// header edits.
    pub fn new(name: &str, action: RouteAction) -> Route {
        Route {
            name: name.into(),
            conditions: Conditions::default(),
            priority: 0,
            rewrite: PathRewrite::default(),
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            action,
            sample_ratio: None,
            filters: Chain::default(),
            middlewares: Arc::from([]),
            allow_encoded: None,
        }
    }

    /// The answer of a `respond` or `redirect` route to `req` (`None` for a proxy route). A
    /// redirect that cannot be built for this request (no usable Host) is an error, which the
    /// proxy answers with 400.
    pub fn own_answer(&self, req: &RedirectRequest<'_>) -> Option<Result<Answer, RedirectError>> {
        match &self.action {
            RouteAction::Proxy { .. } => None,
            RouteAction::Respond { status, body } => Some(Ok(Answer::new(*status, body.clone()))),
            RouteAction::Redirect(r) => Some(
                r.location(&self.rewrite, req)
                    .map(|l| Answer::redirect(r.status, l)),
            ),
        }
    }
}

/// The ordered route table, and the forwarding-header policy of the proxied requests.
///
/// ```
/// use bytes::Bytes;
/// use http::{HeaderMap, Method};
/// use tracegate::routing::{
///     Conditions, HostMatch, PathMatch, RequestHead, Route, RouteAction, Router, Scheme,
/// };
///
/// let route = |name: &str, host: Option<&str>, prefix: &str| Route {
///     conditions: Conditions {
///         host: host.map(|h| HostMatch::parse(h).unwrap()),
///         path: Some(PathMatch::Prefix(prefix.into())),
///         ..Conditions::default()
///     },
///     ..Route::new(name, RouteAction::Respond { status: 200, body: Bytes::new() })
/// };
/// let router = Router::new(vec![
///     route("api", Some("api.example.com"), "/api"),
///     route("tenants", Some("*.example.com"), "/"),
///     route("default", None, "/"),
/// ]);
/// let headers = HeaderMap::new();
/// let head = |host, path| RequestHead {
///     scheme: Scheme::Http,
///     method: &Method::GET,
///     host: Some(host),
///     path,
///     headers: &headers,
/// };
/// assert_eq!(&*router.route(&head("API.example.com:8080", "/api/users")).unwrap().name, "api");
/// assert_eq!(&*router.route(&head("acme.example.com", "/api/users")).unwrap().name, "tenants");
/// assert_eq!(&*router.route(&head("example.com", "/api/users")).unwrap().name, "default");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    forwarded: ForwardedPolicy,
    /// The policy request paths are normalised with: `server.path`, allowing the union of
    /// every allowed list (see [`Router::path_policy`]).
    path_policy: PathPolicy,
    /// `server.path.allow_encoded`: what a route without its own list allows.
    allow_encoded: EncodedSet,
}

impl Router {
    /// A router trying `routes` by descending priority, in the given order within a priority,
    /// with the default [`PathPolicy`].
    pub fn new(mut routes: Vec<Route>) -> Self {
        // A stable sort: equal priorities keep file order.
        routes.sort_by_key(|r| std::cmp::Reverse(r.priority));
        Router {
            routes,
            forwarded: ForwardedPolicy::default(),
            path_policy: PathPolicy::default(),
            allow_encoded: EncodedSet::NONE,
        }
        .with_path_policy(PathPolicy::default())
    }

    /// The same router normalising request paths with `policy` (`server.path`), whose
    /// `allow_encoded` is what routes without their own list allow.
    pub fn with_path_policy(mut self, policy: PathPolicy) -> Self {
        self.allow_encoded = policy.allow_encoded;
        // Which route a path matches is only known once it is normalised, so it is normalised
        // letting through whatever any route allows; the matched route then refuses what it
        // does not allow (`check_encoded`).
        let union = self
            .routes
            .iter()
            .filter_map(|r| r.allow_encoded)
            .fold(policy.allow_encoded, EncodedSet::union);
        self.path_policy = PathPolicy {
            allow_encoded: union,
            ..policy
        };
        self
    }

    /// The same router with this forwarding-header policy.
    pub fn with_forwarded(mut self, forwarded: ForwardedPolicy) -> Self {
        self.forwarded = forwarded;
        self
    }

    /// The first route matching the request, or `None` (the proxy answers 404).
    pub fn route(&self, req: &RequestHead<'_>) -> Option<&Route> {
        self.find(req).map(|i| &self.routes[i])
    }

    /// Like [`Router::route`], returning the route's index in [`Router::routes`].
    pub fn find(&self, req: &RequestHead<'_>) -> Option<usize> {
        let host = req.host.map(|h| split_host_port(h).0);
        self.routes
            .iter()
            .position(|r| r.conditions.matches(req, host))
    }

    /// The routes in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// How `X-Forwarded-*` and `Forwarded` are written on proxied requests.
    pub fn forwarded(&self) -> &ForwardedPolicy {
        &self.forwarded
    }

    /// The policy the proxy normalises request paths with, before routing: `server.path`,
    /// with `allow_encoded` the union of its own list and every route's.
    pub fn path_policy(&self) -> &PathPolicy {
        &self.path_policy
    }

    /// Whether `route` (matched on a path normalised with [`Router::path_policy`]) allows the
    /// encodings the path kept: its own `allow_encoded`, or the router's when it has none.
    /// The first one it does not allow is the refusal (the proxy answers 400).
    pub fn check_encoded(&self, route: &Route, kept: EncodedSet) -> Result<(), PathRefusal> {
        let allowed = route.allow_encoded.unwrap_or(self.allow_encoded);
        match kept.difference(allowed).first_name() {
            None => Ok(()),
            Some(name) => Err(PathRefusal::Encoded(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderName, HeaderValue, Method};

    fn respond() -> RouteAction {
        RouteAction::Respond {
            status: 200,
            body: Bytes::new(),
        }
    }

    fn route(name: &str, host: Option<&str>, prefix: Option<&str>) -> Route {
        Route {
            conditions: Conditions {
                host: host.map(|h| HostMatch::parse(h).unwrap()),
                path: prefix.map(|p| PathMatch::Prefix(p.into())),
                ..Conditions::default()
            },
            ..Route::new(name, respond())
        }
    }

    fn head<'a>(host: Option<&'a str>, path: &'a str, headers: &'a HeaderMap) -> RequestHead<'a> {
        RequestHead {
            scheme: Scheme::Http,
            method: &Method::GET,
            host,
            path,
            headers,
        }
    }

    #[test]
    fn first_match_wins_table() {
        let r = Router::new(vec![
            route("api", Some("api.example.com"), Some("/api")),
            route("api-host", Some("api.example.com"), None),
            route("static", None, Some("/static/")),
            route("tenants", Some("*.example.com"), None),
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
                Some("tenants"),
                "host mismatch skips the api routes",
            ),
            (
                Some("www.example.com"),
                "/static/a.css",
                Some("static"),
                "prefix-only route, before the wildcard",
            ),
            (
                Some("a.b.example.com:443"),
                "/x",
                Some("tenants"),
                "wildcard: two labels, with a port",
            ),
            (
                Some("example.com"),
                "/x",
                Some("default"),
                "wildcard: not the bare domain",
            ),
            (
                Some("www.example.org"),
                "/x",
                Some("default"),
                "wildcard: not another domain",
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
        let h = HeaderMap::new();
        for (host, path, want, why) in cases {
            let got = r.route(&head(*host, path, &h)).map(|r| &*r.name);
            assert_eq!(got, *want, "{why}: {host:?} {path}");
        }
    }

    #[test]
    fn methods_and_headers_select_routes() {
        let canary = Route {
            conditions: Conditions {
                headers: vec![(
                    HeaderName::from_static("x-env"),
                    HeaderValue::from_static("canary"),
                )],
                ..Conditions::default()
            },
            ..Route::new("canary", respond())
        };
        let read_only = Route {
            conditions: Conditions {
                methods: vec![Method::GET, Method::HEAD],
                ..Conditions::default()
            },
            ..Route::new("read", respond())
        };
        let r = Router::new(vec![canary, read_only, route("rest", None, None)]);
        let mut canary_h = HeaderMap::new();
        canary_h.insert("X-Env", HeaderValue::from_static("canary"));
        let none = HeaderMap::new();
        // (method, headers, route, reason)
        let cases = [
            (
                Method::POST,
                &canary_h,
                "canary",
                "the header selects the canary for any method",
            ),
            (Method::GET, &none, "read", "GET is read-only"),
            (Method::HEAD, &none, "read", "HEAD is listed too"),
            (Method::POST, &none, "rest", "POST is not listed"),
            (Method::DELETE, &none, "rest", "DELETE is not listed"),
        ];
        for (m, h, want, why) in cases {
            let req = RequestHead {
                scheme: Scheme::Http,
                method: &m,
                host: None,
                path: "/",
                headers: h,
            };
            assert_eq!(&*r.route(&req).unwrap().name, want, "{why}");
        }
    }

    #[test]
    fn priority_order_table() {
        let p = |name: &str, prefix: &str, priority: i32| Route {
            priority,
            ..route(name, None, Some(prefix))
        };
        let r = Router::new(vec![
            p("catch-all", "/", 0),
            p("api", "/api", 10),
            p("api-v2", "/api/v2", 10),
            p("low", "/api/v2/x", -5),
            p("also-catch-all", "/", 0),
        ]);
        let names: Vec<&str> = r.routes().iter().map(|r| &*r.name).collect();
        assert_eq!(
            names,
            ["api", "api-v2", "catch-all", "also-catch-all", "low"],
            "higher first; equal priorities keep file order"
        );
        let h = HeaderMap::new();
        // (path, route, reason)
        let cases = [
            (
                "/api/v2/users",
                "api",
                "equal priority: file order, not the longer prefix (unlike Traefik and nginx)",
            ),
            (
                "/other",
                "catch-all",
                "priority 0 catch-all before the later one",
            ),
            (
                "/api/v2/x",
                "api",
                "a negative priority goes after the default",
            ),
        ];
        for (path, want, why) in cases {
            assert_eq!(
                &*r.route(&head(None, path, &h)).unwrap().name,
                want,
                "{why}"
            );
        }
    }

    /// Paths are normalised allowing what any route allows; the matched route decides.
    #[test]
    fn per_route_encodings_table() {
        let files = Route {
            allow_encoded: Some(EncodedSet::SLASH),
            ..route("files", None, Some("/files/"))
        };
        let strict = Route {
            allow_encoded: Some(EncodedSet::NONE),
            ..route("strict", None, Some("/strict/"))
        };
        let r = Router::new(vec![files, strict, route("rest", None, Some("/"))]).with_path_policy(
            PathPolicy {
                allow_encoded: EncodedSet::PERCENT,
                ..PathPolicy::default()
            },
        );
        assert_eq!(
            r.path_policy().allow_encoded,
            EncodedSet::SLASH | EncodedSet::PERCENT,
            "the union of the global list and the routes' lists"
        );
        let h = HeaderMap::new();
        // (path, kept, result, reason)
        let cases = [
            (
                "/files/a%2Fb",
                EncodedSet::SLASH,
                Ok(()),
                "the route's own list",
            ),
            (
                "/files/a%25b",
                EncodedSet::PERCENT,
                Err(PathRefusal::Encoded("percent")),
                "a route's list replaces the global one",
            ),
            (
                "/rest/a%25b",
                EncodedSet::PERCENT,
                Ok(()),
                "no list: the global one",
            ),
            (
                "/rest/a%2Fb",
                EncodedSet::SLASH,
                Err(PathRefusal::Encoded("slash")),
                "another route's allowance does not carry over",
            ),
            (
                "/strict/a%25b",
                EncodedSet::PERCENT,
                Err(PathRefusal::Encoded("percent")),
                "an empty list allows none",
            ),
            ("/strict/a", EncodedSet::NONE, Ok(()), "nothing kept"),
        ];
        for (path, kept, want, why) in cases {
            let n = path::normalize_kept(path, r.path_policy()).unwrap();
            assert_eq!(n.kept, kept, "{why}");
            let route = r.route(&head(None, &n.path, &h)).unwrap();
            assert_eq!(r.check_encoded(route, n.kept), want, "{why}");
        }
    }

    #[test]
    fn no_match_is_none() {
        let r = Router::new(vec![route("api", Some("api.example.com"), None)]);
        let h = HeaderMap::new();
        assert!(r.route(&head(Some("other"), "/", &h)).is_none());
        assert!(r.route(&head(None, "/", &h)).is_none());
    }

    /// Arbitrary request heads never panic the router.
    #[test]
    fn routing_never_panics() {
        use rand::SeedableRng;
        let r = Router::new(vec![
            route("a", Some("*.example.com"), Some("/a")),
            route("b", Some("example.com"), None),
            route("c", None, Some("/")),
        ]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(23);
        let alphabet = b"[]:.*/aexmplco09\xc3\xa9";
        let h = HeaderMap::new();
        for _ in 0..20_000 {
            let mut gen = |max: usize| crate::testing::random_text(&mut rng, alphabet, max);
            let (host, path) = (gen(20), gen(10));
            let _ = r.route(&head(Some(&host), &path, &h));
        }
    }
}
