//! `cors`: Cross-Origin Resource Sharing (the Fetch standard, §3.2 "CORS protocol"), as
//! Traefik's `headers.accessControl*` and nginx `add_header Access-Control-*` configure it.
//!
//! - A **preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//!   here with `204` and never reaches the upstream: `Access-Control-Allow-Origin` (the request's
//!   origin), `-Allow-Methods`, `-Allow-Headers` (the requested ones that are allowed),
//!   `-Allow-Credentials`, `-Max-Age`, and `Vary: Origin, Access-Control-Request-Method,
//!   Access-Control-Request-Headers`. A preflight from an origin that is not allowed gets `204`
//!   without them: the browser then refuses the real request.
//! - Any other request: the response gets `Access-Control-Allow-Origin` (and
//!   `-Allow-Credentials`, `-Expose-Headers`) when its `Origin` is allowed, and `Vary: Origin`
//!   whenever the answer depends on it (a cache must not give one origin's answer to another).
//! - `allow_origins: ["*"]` answers `*`; with `allow_credentials` that is refused at load,
//!   because browsers reject a credentialed response with `*` (Fetch §3.2.5).

use http::{HeaderName, HeaderValue, Method};

/// The checked `cors` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins as browsers send them (`https://app.example.com`), lower-cased; empty
    /// with `any_origin`.
    pub allow_origins: Vec<String>,
    /// `allow_origins: ["*"]`.
    pub any_origin: bool,
    pub allow_methods: Vec<Method>,
    /// Lower-case header names.
    pub allow_headers: Vec<HeaderName>,
    pub expose_headers: Vec<HeaderName>,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

/// What CORS makes of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsAction {
    /// A preflight: answer `204` with these headers.
    Preflight(Vec<(HeaderName, HeaderValue)>),
    /// Add these headers to the response, whoever answers it.
    Respond(Vec<(HeaderName, HeaderValue)>),
}

static ACRM: HeaderName = HeaderName::from_static("access-control-request-method");
static ACRH: HeaderName = HeaderName::from_static("access-control-request-headers");

impl Cors {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.any_origin
            || self
                .allow_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The value of `Access-Control-Allow-Origin` for an allowed `origin`.
    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.allow_credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// What to do with a request of `method` with these headers.
    pub fn decide(&self, method: &Method, headers: &http::HeaderMap) -> CorsAction {
        use http::header::*;
        let origin = headers.get(ORIGIN);
        let allowed = origin
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| self.origin_allowed(o));
        if let (true, Some(origin)) = (
            method == Method::OPTIONS && headers.contains_key(&ACRM),
            origin,
        ) {
            let mut out = vec![(
                VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            )];
            let requested = headers
                .get(&ACRM)
                .and_then(|m| m.to_str().ok())
                .and_then(|m| Method::from_bytes(m.trim().as_bytes()).ok());
            // Fetch §4.8: a method or header not allowed leaves it out, and the browser fails
            // the preflight. Simple methods are always allowed by browsers.
            if !allowed || requested.is_none() {
                return CorsAction::Preflight(out);
            }
            out.push((ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin)));
            if self.allow_credentials {
                out.push((
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                ));
            }
            if !self.allow_methods.is_empty() {
                let list = join(self.allow_methods.iter().map(Method::as_str));
                if let Ok(v) = HeaderValue::from_str(&list) {
                    out.push((ACCESS_CONTROL_ALLOW_METHODS, v));
                }
            }
            let asked: Vec<String> = headers
                .get_all(&ACRH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
            let granted: Vec<&str> = asked
                .iter()
                .filter(|h| self.allow_headers.iter().any(|a| a.as_str() == h.as_str()))
                .map(String::as_str)
                .collect();
            if !granted.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&join(granted.into_iter())) {
                    out.push((ACCESS_CONTROL_ALLOW_HEADERS, v));
                }
            }
            if let Some(s) = self.max_age {
                out.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from(s)));
            }
            return CorsAction::Preflight(out);
        }
        let mut out = Vec::new();
        // The answer depends on Origin unless every origin gets the same `*`.
        if !self.any_origin || self.allow_credentials {
            out.push((VARY, HeaderValue::from_static("Origin")));
        }
        if let (true, Some(origin)) = (allowed, origin) {
            out.push((ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin)));
            if self.allow_credentials {
                out.push((
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                ));
            }
            if !self.expose_headers.is_empty() {
                let list = join(self.expose_headers.iter().map(HeaderName::as_str));
                if let Ok(v) = HeaderValue::from_str(&list) {
                    out.push((ACCESS_CONTROL_EXPOSE_HEADERS, v));
                }
            }
        }
        CorsAction::Respond(out)
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn cors(credentials: bool, any: bool) -> Cors {
        Cors {
            allow_origins: if any {
                vec![]
            } else {
                vec!["https://app.example.com".into()]
            },
            any_origin: any,
            allow_methods: vec![Method::GET, Method::POST],
            allow_headers: vec![HeaderName::from_static("content-type")],
            expose_headers: vec![HeaderName::from_static("x-request-id")],
            max_age: Some(600),
            allow_credentials: credentials,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn get<'a>(out: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        out.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn preflights_table() {
        let c = cors(true, false);
        // (request headers, allow-origin, allow-headers, why)
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                vec![
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "Content-Type, X-Secret"),
                ],
                Some("https://app.example.com"),
                Some("content-type"),
                "an allowed origin: its own name back, only the allowed headers",
            ),
            (
                vec![
                    ("origin", "https://evil.example"),
                    ("access-control-request-method", "POST"),
                ],
                None,
                None,
                "another origin gets no grant",
            ),
            (
                vec![
                    ("origin", "HTTPS://APP.EXAMPLE.COM"),
                    ("access-control-request-method", "GET"),
                ],
                Some("HTTPS://APP.EXAMPLE.COM"),
                None,
                "origins compare case-insensitively (scheme and host)",
            ),
        ];
        for (h, origin, allow_headers, why) in cases {
            let CorsAction::Preflight(out) = c.decide(&Method::OPTIONS, &headers(&h)) else {
                panic!("{why}: a preflight");
            };
            assert_eq!(get(&out, "access-control-allow-origin"), origin, "{why}");
            assert_eq!(
                get(&out, "access-control-allow-headers"),
                allow_headers,
                "{why}"
            );
            assert!(get(&out, "vary").unwrap().contains("Origin"), "{why}");
            if origin.is_some() {
                assert_eq!(get(&out, "access-control-allow-methods"), Some("GET, POST"));
                assert_eq!(get(&out, "access-control-max-age"), Some("600"));
                assert_eq!(get(&out, "access-control-allow-credentials"), Some("true"));
            }
        }
        // An OPTIONS without Access-Control-Request-Method is a plain request, for the upstream.
        assert!(matches!(
            c.decide(
                &Method::OPTIONS,
                &headers(&[("origin", "https://app.example.com")])
            ),
            CorsAction::Respond(_)
        ));
    }

    #[test]
    fn simple_requests_table() {
        // (cors, Origin, allow-origin, vary, why)
        type Case<'a> = (
            Cors,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                cors(true, false),
                Some("https://app.example.com"),
                Some("https://app.example.com"),
                Some("Origin"),
                "allowed",
            ),
            (
                cors(true, false),
                Some("https://evil.example"),
                None,
                Some("Origin"),
                "not allowed: no grant, still Vary",
            ),
            (
                cors(true, false),
                None,
                None,
                Some("Origin"),
                "no Origin: Vary, so a cache keeps origins apart",
            ),
            (
                cors(false, true),
                Some("https://any.example"),
                Some("*"),
                None,
                "any origin without credentials: * and no Vary",
            ),
        ];
        for (c, origin, allow, vary, why) in cases {
            let h = origin
                .map(|o| headers(&[("origin", o)]))
                .unwrap_or_default();
            let CorsAction::Respond(out) = c.decide(&Method::GET, &h) else {
                panic!("{why}");
            };
            assert_eq!(get(&out, "access-control-allow-origin"), allow, "{why}");
            assert_eq!(get(&out, "vary"), vary, "{why}");
            if allow.is_some() && c.allow_credentials {
                assert_eq!(
                    get(&out, "access-control-expose-headers"),
                    Some("x-request-id")
                );
            }
        }
    }
}
