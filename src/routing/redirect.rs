//! The `redirect` route action: answer with a 3xx and a `Location`, without an upstream (nginx
//! `return 301 …`, Traefik `RedirectScheme`/`RedirectRegex`).
//!
//! Either a fixed `url`, or parts (`scheme`, `host`, `port`, `path`) with everything not given
//! taken from the request. The query is always kept with parts. Without `path`, the route's
//! `strip_prefix`/`add_prefix` rewrite the request path. When only the path changes,
//! `Location` is a path (`/new/x?q=1`, a relative reference, RFC 9110 §10.2.2), which stays
//! right behind another proxy or TLS terminator.

use super::matching::Scheme;
use super::rewrite::{check_path, PathRewrite};
use crate::net::{is_host, split_host_port};
use http::HeaderValue;

/// The statuses a redirect may use (RFC 9110 §15.4).
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// A checked `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub status: u16,
    pub target: RedirectTarget,
}

/// Where a redirect points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectTarget {
    /// `url`: this `Location`, exactly.
    Url(HeaderValue),
    /// Parts; `None` keeps the request's.
    Parts {
        scheme: Option<Scheme>,
        host: Option<Box<str>>,
        port: Option<u16>,
        path: Option<Box<str>>,
    },
}

/// The request a redirect answers.
#[derive(Debug, Clone, Copy)]
pub struct RedirectRequest<'a> {
    /// The downstream connection is TLS (the request's scheme is `https`).
    pub tls: bool,
    /// Host header or HTTP/2 authority, port allowed.
    pub host: Option<&'a str>,
    /// Path and query as received.
    pub path_and_query: &'a str,
}

/// Why no `Location` could be built for a request (the proxy answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectError {
    /// The redirect keeps the request's host, and the request has none.
    NoHost,
    /// The request's Host is not a valid host.
    BadHost,
    /// The result is not a valid header value (a path with bytes a header cannot carry).
    BadLocation,
}

impl std::fmt::Display for RedirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedirectError::NoHost => "the request has no Host to redirect to",
            RedirectError::BadHost => "the request's Host is not a valid host",
            RedirectError::BadLocation => "the redirect target is not a valid Location",
        })
    }
}

impl Redirect {
    /// The `Location` for `req`. `rewrite` is the route's path rewrite (used when `path` is not
    /// given).
    pub fn location(
        &self,
        rewrite: &PathRewrite,
        req: &RedirectRequest<'_>,
    ) -> Result<HeaderValue, RedirectError> {
        let (scheme, host, port, path) = match &self.target {
            RedirectTarget::Url(v) => return Ok(v.clone()),
            RedirectTarget::Parts {
                scheme,
                host,
                port,
                path,
            } => (*scheme, host, *port, path),
        };
        // The asterisk form (`OPTIONS *`, RFC 9112 §3.2.4) names no resource: the server's
        // root stands for it.
        let received = if req.path_and_query.starts_with('/') {
            req.path_and_query
        } else {
            "/"
        };
        let pq = match path {
            Some(p) => match received.split_once('?') {
                Some((_, q)) => format!("{p}?{q}"),
                None => p.to_string(),
            },
            None => rewrite.apply(received).into_owned(),
        };
        let pq = if pq.starts_with('/') {
            pq
        } else {
            format!("/{pq}")
        };
        if scheme.is_none() && host.is_none() && port.is_none() {
            return HeaderValue::from_str(&pq).map_err(|_| RedirectError::BadLocation);
        }
        let (req_host, req_port) = match req.host {
            Some(h) => {
                let (h, p) = split_host_port(h);
                (Some(h), p)
            }
            None => (None, None),
        };
        let scheme = scheme.unwrap_or(if req.tls { Scheme::Https } else { Scheme::Http });
        let out_host = match (host, req_host) {
            (Some(h), _) => &**h,
            // Only a host name or IP literal is copied into `Location`, so a client's Host cannot
            // turn the redirect into a link elsewhere ([`is_host`]).
            (None, Some(h)) if is_host(h) => h,
            (None, Some(_)) => return Err(RedirectError::BadHost),
            (None, None) => return Err(RedirectError::NoHost),
        };
        // A new scheme or host means the new one's default port unless a port is given; the
        // request's port is kept only when neither changes.
        let keep_port = self.keeps_request_port();
        let port = port.or(if keep_port { req_port } else { None });
        let location = match port.filter(|p| *p != scheme.default_port()) {
            Some(p) => format!("{}://{out_host}:{p}{pq}", scheme.as_str()),
            None => format!("{}://{out_host}{pq}", scheme.as_str()),
        };
        HeaderValue::from_str(&location).map_err(|_| RedirectError::BadLocation)
    }

    fn keeps_request_port(&self) -> bool {
        matches!(
            &self.target,
            RedirectTarget::Parts {
                scheme: None,
                host: None,
                ..
            }
        )
    }

    /// Checks a `redirect` from the config. On error: the sub-key and the reason.
    /// `has_rewrite`: the route sets `strip_prefix` or `add_prefix`.
    pub fn parse(
        f: &RedirectFields<'_>,
        has_rewrite: bool,
    ) -> Result<Redirect, (&'static str, String)> {
        let status = f.status;
        if !REDIRECT_STATUSES.contains(&status) {
            return Err((
                "status",
                format!("{status} is not a redirect status: use 301, 302, 303, 307 or 308"),
            ));
        }
        let parts = f.scheme.is_some() || f.host.is_some() || f.port.is_some() || f.path.is_some();
        let target = match f.url {
            Some(_) if parts => {
                return Err((
                    "url",
                    "url is the whole target: give either url or scheme/host/port/path".into(),
                ))
            }
            Some(_) if has_rewrite => {
                return Err((
                    "url",
                    "url is used as written, so strip_prefix/add_prefix have nothing to act on"
                        .into(),
                ))
            }
            Some(url) => RedirectTarget::Url(parse_url(url).map_err(|r| ("url", r))?),
            None => {
                if !parts && !has_rewrite {
                    return Err((
                        "url",
                        "the redirect needs a target: url, or at least one of scheme, host, port, path (or the route's strip_prefix/add_prefix)".into(),
                    ));
                }
                if f.path.is_some() && has_rewrite {
                    return Err((
                        "path",
                        "path replaces the whole path, so strip_prefix/add_prefix have nothing to act on".into(),
                    ));
                }
                let scheme = match f.scheme {
                    None => None,
                    Some(s) => Some(Scheme::parse(s).map_err(|r| ("scheme", r))?),
                };
                let host = match f.host {
                    None => None,
                    Some(h) => Some(parse_host(h).map_err(|r| ("host", r))?),
                };
                if f.port == Some(0) {
                    return Err(("port", "0 is not a port".into()));
                }
                let path = match f.path {
                    None => None,
                    Some(p) => {
                        check_path(p).map_err(|r| ("path", r))?;
                        Some(p.into())
                    }
                };
                RedirectTarget::Parts {
                    scheme,
                    host,
                    port: f.port,
                    path,
                }
            }
        };
        Ok(Redirect { status, target })
    }
}

/// The config keys of a `redirect`, as written (`status` with its default applied).
#[derive(Debug, Clone, Copy)]
pub struct RedirectFields<'a> {
    pub url: Option<&'a str>,
    pub scheme: Option<&'a str>,
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    pub path: Option<&'a str>,
    pub status: u16,
}

/// `url`: an absolute `http(s)://` URL with a host, or a path starting with `/` (not `//`).
fn parse_url(url: &str) -> Result<HeaderValue, String> {
    let url = url.trim();
    if url.starts_with("//") {
        return Err(format!(
            "{url:?} is not a URL: expected https://host/path or /path"
        ));
    }
    if !url.is_ascii() {
        return Err(format!("{url:?}: percent-encode characters outside ASCII"));
    }
    if url.starts_with('/') {
        if url.contains('#') || url.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(format!("{url:?} is not a valid path"));
        }
    } else {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("{url:?} is not a URL: expected https://host/path or /path"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!("{url:?}: the scheme must be http or https"));
        }
        match uri.authority() {
            None => return Err(format!("{url:?} has no host")),
            Some(a) if a.as_str().contains('@') => {
                return Err(format!(
                    "{url:?}: user information in a redirect URL is refused"
                ))
            }
            Some(_) => {}
        }
    }
    HeaderValue::from_str(url).map_err(|_| format!("{url:?} is not a valid header value"))
}

/// `host`: a host name or IP literal, without port.
fn parse_host(h: &str) -> Result<Box<str>, String> {
    let h = h.trim();
    if !is_host(h) {
        return Err(format!(
            "{h:?} is not a host name: expected e.g. new.example.com, without scheme or port (use port)"
        ));
    }
    Ok(h.to_ascii_lowercase().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(f: RedirectFields<'_>, rewrite: bool) -> Redirect {
        Redirect::parse(&f, rewrite).unwrap()
    }

    /// No keys given; the status is the config default, 302.
    fn none() -> RedirectFields<'static> {
        RedirectFields {
            url: None,
            scheme: None,
            host: None,
            port: None,
            path: None,
            status: 302,
        }
    }

    #[test]
    fn location_table() {
        let no_rewrite = PathRewrite::default();
        let strip_add = PathRewrite {
            strip_prefix: Some("/old".into()),
            add_prefix: Some("/new".into()),
        };
        let to_https = parts(
            RedirectFields {
                scheme: Some("https"),
                ..none()
            },
            false,
        );
        let to_host = parts(
            RedirectFields {
                host: Some("New.Example.com"),
                status: 301,
                ..none()
            },
            false,
        );
        let to_port = parts(
            RedirectFields {
                port: Some(8443),
                scheme: Some("https"),
                ..none()
            },
            false,
        );
        let to_path = parts(
            RedirectFields {
                path: Some("/login"),
                ..none()
            },
            false,
        );
        let only_port = parts(
            RedirectFields {
                port: Some(9000),
                ..none()
            },
            false,
        );
        let url = parts(
            RedirectFields {
                url: Some("https://new.example.com/"),
                ..none()
            },
            false,
        );
        let moved = parts(none(), true);
        let req = |tls, host: Option<&'static str>, pq: &'static str| RedirectRequest {
            tls,
            host,
            path_and_query: pq,
        };
        // (redirect, rewrite, request, Location, reason)
        let cases: Vec<(&Redirect, &PathRewrite, RedirectRequest, &str, &str)> = vec![
            (
                &to_https,
                &no_rewrite,
                req(false, Some("shop.example.com"), "/a?q=1"),
                "https://shop.example.com/a?q=1",
                "http to https keeps host, path and query",
            ),
            (
                &to_https,
                &no_rewrite,
                req(false, Some("shop.example.com:8080"), "/a"),
                "https://shop.example.com/a",
                "a new scheme drops the request's port",
            ),
            (
                &to_https,
                &no_rewrite,
                req(false, Some("[2001:db8::1]:8080"), "/"),
                "https://[2001:db8::1]/",
                "IPv6 host keeps its brackets",
            ),
            (
                &to_host,
                &no_rewrite,
                req(true, Some("old.example.com"), "/x?y"),
                "https://new.example.com/x?y",
                "new host, request's scheme (TLS), lower-cased",
            ),
            (
                &to_host,
                &no_rewrite,
                req(false, Some("old.example.com:8080"), "/x"),
                "http://new.example.com/x",
                "a new host drops the request's port",
            ),
            (
                &to_port,
                &no_rewrite,
                req(false, Some("a.example"), "/x"),
                "https://a.example:8443/x",
                "explicit port",
            ),
            (
                &only_port,
                &no_rewrite,
                req(false, Some("a.example:8080"), "/x"),
                "http://a.example:9000/x",
                "port alone keeps scheme and host",
            ),
            (
                &to_path,
                &no_rewrite,
                req(false, Some("a.example"), "/anything?next=%2Fx"),
                "/login?next=%2Fx",
                "path alone: a relative Location, query kept",
            ),
            (
                &to_path,
                &no_rewrite,
                req(false, Some("a.example"), "/anything"),
                "/login",
                "no query, none added",
            ),
            (
                &url,
                &no_rewrite,
                req(false, Some("a.example"), "/x?q=1"),
                "https://new.example.com/",
                "url is used as written",
            ),
            (
                &moved,
                &strip_add,
                req(false, Some("a.example"), "/old/page?id=7"),
                "/new/page?id=7",
                "strip_prefix/add_prefix move a tree",
            ),
            (
                &moved,
                &strip_add,
                req(false, Some("a.example"), "/old"),
                "/new/",
                "the tree's root",
            ),
        ];
        for (r, rw, rq, want, why) in cases {
            assert_eq!(r.location(rw, &rq).unwrap(), want, "{why}");
        }
        assert_eq!(to_https.status, 302, "the default status");
        assert_eq!(to_host.status, 301);
    }

    #[test]
    fn location_errors_table() {
        let no_rewrite = PathRewrite::default();
        let to_https = parts(
            RedirectFields {
                scheme: Some("https"),
                ..none()
            },
            false,
        );
        // (request host, path, error, reason)
        let cases = [
            (None, "/", RedirectError::NoHost, "HTTP/1.0 without Host"),
            (
                Some("evil.example/path"),
                "/",
                RedirectError::BadHost,
                "a path in the Host",
            ),
            (
                Some("user@evil.example"),
                "/",
                RedirectError::BadHost,
                "userinfo in the Host",
            ),
            (
                Some("a b"),
                "/",
                RedirectError::BadHost,
                "a space in the Host",
            ),
            (Some(""), "/", RedirectError::BadHost, "an empty Host"),
            (
                Some("a.example"),
                "/a\u{7f}",
                RedirectError::BadLocation,
                "a path a header cannot carry",
            ),
        ];
        for (host, pq, want, why) in cases {
            let r = to_https.location(
                &no_rewrite,
                &RedirectRequest {
                    tls: false,
                    host,
                    path_and_query: pq,
                },
            );
            assert_eq!(r, Err(want), "{why}");
        }
    }

    #[test]
    fn refused_redirects_table() {
        let f = none;
        // (fields, has rewrite, sub-key, words, reason)
        let cases: Vec<(RedirectFields, bool, &str, &str, &str)> = vec![
            (
                RedirectFields {
                    status: 200,
                    scheme: Some("https"),
                    ..f()
                },
                false,
                "status",
                "not a redirect status",
                "not 3xx",
            ),
            (
                RedirectFields {
                    status: 304,
                    scheme: Some("https"),
                    ..f()
                },
                false,
                "status",
                "301, 302, 303, 307 or 308",
                "304 is not a redirect",
            ),
            (
                RedirectFields {
                    url: Some("https://a/"),
                    host: Some("b"),
                    ..f()
                },
                false,
                "url",
                "either url or",
                "url and parts",
            ),
            (
                RedirectFields {
                    url: Some("https://a/"),
                    ..f()
                },
                true,
                "url",
                "nothing to act on",
                "url with a rewrite",
            ),
            (
                RedirectFields {
                    url: Some("ftp://a/"),
                    ..f()
                },
                false,
                "url",
                "http or https",
                "other scheme",
            ),
            (
                RedirectFields {
                    url: Some("//evil.example/"),
                    ..f()
                },
                false,
                "url",
                "not a URL",
                "protocol-relative",
            ),
            (
                RedirectFields {
                    url: Some("https://user@a/"),
                    ..f()
                },
                false,
                "url",
                "user information",
                "userinfo",
            ),
            (
                RedirectFields {
                    url: Some("new.example.com"),
                    ..f()
                },
                false,
                "url",
                "",
                "no scheme",
            ),
            (
                f(),
                false,
                "url",
                "needs a target",
                "nothing at all: a loop",
            ),
            (
                RedirectFields {
                    path: Some("/x"),
                    ..f()
                },
                true,
                "path",
                "nothing to act on",
                "path with a rewrite",
            ),
            (
                RedirectFields {
                    path: Some("x"),
                    ..f()
                },
                false,
                "path",
                "must start with '/'",
                "relative path",
            ),
            (
                RedirectFields {
                    path: Some("/x?y=1"),
                    ..f()
                },
                false,
                "path",
                "no '?'",
                "the query is the request's",
            ),
            (
                RedirectFields {
                    scheme: Some("ftp"),
                    ..f()
                },
                false,
                "scheme",
                "http or https",
                "other scheme",
            ),
            (
                RedirectFields {
                    host: Some("a.com:443"),
                    ..f()
                },
                false,
                "host",
                "use port",
                "port in host",
            ),
            (
                RedirectFields {
                    host: Some("https://a.com"),
                    ..f()
                },
                false,
                "host",
                "without scheme",
                "URL in host",
            ),
            (
                RedirectFields {
                    port: Some(0),
                    ..f()
                },
                false,
                "port",
                "not a port",
                "port 0",
            ),
        ];
        for (fields, rw, key, words, why) in cases {
            let (k, r) = Redirect::parse(&fields, rw).expect_err(why);
            assert_eq!(k, key, "{why}: {r}");
            assert!(r.contains(words), "{why}: {r}");
        }
    }

    #[test]
    fn url_forms() {
        for ok in [
            "https://new.example.com/",
            "http://a:8080/x?y=1",
            "/maintenance.html",
            "/a?b=c",
        ] {
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
    }

    /// Arbitrary config values and arbitrary requests never panic.
    #[test]
    fn parse_and_location_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        let alphabet = b"/?#:@.[]%aZ09 -_\xc3\xa9htps";
        for _ in 0..20_000 {
            let mut gen = |max: usize| crate::testing::random_text(&mut rng, alphabet, max);
            let (a, b, c, host, pq) = (gen(14), gen(8), gen(10), gen(14), gen(16));
            let pick = |s: &str, on: bool| on.then_some(s.to_owned());
            let (url, scheme, h, path) = (
                pick(&a, rng.random_bool(0.3)),
                pick(&b, rng.random_bool(0.3)),
                pick(&c, rng.random_bool(0.3)),
                pick(&a, rng.random_bool(0.3)),
            );
            let fields = RedirectFields {
                url: url.as_deref(),
                scheme: scheme.as_deref(),
                host: h.as_deref(),
                port: rng.random_bool(0.3).then(|| rng.random()),
                path: path.as_deref(),
                status: rng.random_range(300..310),
            };
            let rw = PathRewrite {
                strip_prefix: rng.random_bool(0.5).then(|| "/a".into()),
                add_prefix: None,
            };
            if let Ok(r) = Redirect::parse(&fields, !rw.is_identity()) {
                let _ = r.location(
                    &rw,
                    &RedirectRequest {
                        tls: rng.random_bool(0.5),
                        host: rng.random_bool(0.8).then_some(host.as_str()),
                        path_and_query: &pq,
                    },
                );
            }
        }
    }
}
