//! Checking `routes[]` (match conditions, priority, rewrites, header edits and actions) into
//! the router's [`Route`]s.

use super::check::Ctx;
use super::defaults;
use super::file::{FileHeaderEdits, FileOneOrMany, FileRoute};
use super::ConfigError;
use crate::routing::headers::{config_value, Side};
use crate::routing::matching::{parse_method, Scheme};
use crate::routing::redirect::RedirectFields;
use crate::routing::rewrite::{check_path, parse_add_prefix};
use crate::routing::{
    Chain, Conditions, HeaderEdits, HostMatch, PathMatch, PathRewrite, Redirect, Route, RouteAction,
};
use crate::trace::sampling::check_ratio;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};

pub(super) fn check_routes(
    c: &Ctx<'_>,
    routes: &[FileRoute],
    upstreams: &HashMap<String, usize>,
    middlewares: &HashMap<String, usize>,
) -> Result<Vec<Route>, ConfigError> {
    let mut out: Vec<Route> = Vec::with_capacity(routes.len());
    // Names seen so far: one look-up per route, so a long route list loads in linear time.
    let mut names: HashSet<&str> = HashSet::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = r.name.trim();
        if name.is_empty() {
            return Err(c.err(format!("{key}.name"), "must not be empty"));
        }
        if !names.insert(name) {
            return Err(c.err(
                format!("{key}.name"),
                format!("route name {name:?} is used twice"),
            ));
        }
        let conditions = check_match(c, &key, r)?;
        let rewrite = check_rewrite(c, &key, r)?;
        let action = check_action(c, &key, r, &rewrite, upstreams)?;
        let request_headers = match (&r.request_headers, &action) {
            (None, _) => HeaderEdits::default(),
            (Some(_), RouteAction::Respond { .. } | RouteAction::Redirect(_)) => {
                return Err(c.err(
                    format!("{key}.request_headers"),
                    "only applies to routes with an upstream (nothing is sent upstream)",
                ));
            }
            (Some(e), RouteAction::Proxy { .. }) => {
                check_edits(c, &format!("{key}.request_headers"), e, Side::Request)?
            }
        };
        let response_headers = match &r.response_headers {
            None => HeaderEdits::default(),
            Some(e) => check_edits(c, &format!("{key}.response_headers"), e, Side::Response)?,
        };
        let sample_ratio = match r.sample_ratio {
            None => None,
            Some(x) => Some(check_ratio(x).map_err(|e| c.err(format!("{key}.sample_ratio"), e))?),
        };
        let allow_encoded = match &r.allow_encoded {
            None => None,
            Some(names) => Some(super::path::allow_list(
                c,
                &format!("{key}.allow_encoded"),
                names,
            )?),
        };
        let middlewares = super::middlewares::route_middlewares(
            c,
            &format!("{key}.middlewares"),
            r.middlewares.as_deref().unwrap_or(&[]),
            middlewares,
        )?;
        out.push(Route {
            name: name.into(),
            conditions,
            priority: r.priority.unwrap_or(defaults::ROUTE_PRIORITY),
            rewrite,
            request_headers,
            response_headers,
            action,
            sample_ratio,
            filters: Chain::default(),
            middlewares,
            allow_encoded,
        });
    }
    Ok(out)
}

/// `routes[].match`.
fn check_match(c: &Ctx<'_>, key: &str, r: &FileRoute) -> Result<Conditions, ConfigError> {
    let m = &r.match_;
    let host = match &m.host {
        None => None,
        Some(h) => Some(HostMatch::parse(h).map_err(|e| c.err(format!("{key}.match.host"), e))?),
    };
    let path = match (&m.path, &m.path_prefix) {
        (Some(_), Some(_)) => {
            return Err(c.err(
                format!("{key}.match.path"),
                "set either path (the exact path) or path_prefix, not both",
            ));
        }
        (Some(p), None) => {
            check_path(p).map_err(|e| c.err(format!("{key}.match.path"), e))?;
            Some(PathMatch::Exact(p.as_str().into()))
        }
        (None, Some(p)) => {
            if !p.starts_with('/') {
                return Err(c.err(
                    format!("{key}.match.path_prefix"),
                    format!("{p:?} must start with '/'"),
                ));
            }
            Some(PathMatch::Prefix(p.as_str().into()))
        }
        (None, None) => None,
    };
    let mut methods = Vec::new();
    let mut seen_methods = HashSet::new();
    if let Some(list) = &m.methods {
        if list.is_empty() {
            return Err(c.err(
                format!("{key}.match.methods"),
                "an empty list matches no request; leave methods out to match any method",
            ));
        }
        for (j, s) in list.iter().enumerate() {
            let method =
                parse_method(s).map_err(|e| c.err(format!("{key}.match.methods[{j}]"), e))?;
            if seen_methods.insert(method.clone()) {
                methods.push(method);
            }
        }
    }
    let mut headers = Vec::new();
    let mut seen_headers = HashSet::new();
    for (name, value) in m.headers.iter().flatten() {
        let k = format!("{key}.match.headers.{name}");
        let n = http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| c.err(&k, format!("{name:?} is not a valid header name")))?;
        if n == http::header::HOST {
            return Err(c.err(
                k,
                "use match.host (it also covers HTTP/2 requests, which have no Host header)",
            ));
        }
        if !seen_headers.insert(n.clone()) {
            return Err(c.err(k, format!("{name:?} is given twice (names ignore case)")));
        }
        let v = config_value(value.trim())
            .ok_or_else(|| c.err(&k, "the value has characters not allowed in a header"))?;
        headers.push((n, v));
    }
    let scheme = match &m.scheme {
        None => None,
        Some(s) => Some(Scheme::parse(s).map_err(|e| c.err(format!("{key}.match.scheme"), e))?),
    };
    Ok(Conditions {
        scheme,
        host,
        path,
        methods,
        headers,
    })
}

/// `routes[].strip_prefix` and `routes[].add_prefix`.
fn check_rewrite(c: &Ctx<'_>, key: &str, r: &FileRoute) -> Result<PathRewrite, ConfigError> {
    if r.respond.is_some() {
        for (k, v) in [
            ("strip_prefix", &r.strip_prefix),
            ("add_prefix", &r.add_prefix),
        ] {
            if v.is_some() {
                return Err(c.err(
                    format!("{key}.{k}"),
                    "only applies to routes with an upstream or a redirect",
                ));
            }
        }
    }
    let strip_prefix = match &r.strip_prefix {
        Some(p) if !p.starts_with('/') => {
            return Err(c.err(
                format!("{key}.strip_prefix"),
                format!("{p:?} must start with '/'"),
            ));
        }
        p => p.as_deref().map(Into::into),
    };
    let add_prefix = match &r.add_prefix {
        None => None,
        Some(p) => Some(parse_add_prefix(p).map_err(|e| c.err(format!("{key}.add_prefix"), e))?),
    };
    Ok(PathRewrite {
        strip_prefix,
        add_prefix,
    })
}

/// Exactly one of `upstream`, `respond`, `redirect`.
fn check_action(
    c: &Ctx<'_>,
    key: &str,
    r: &FileRoute,
    rewrite: &PathRewrite,
    upstreams: &HashMap<String, usize>,
) -> Result<RouteAction, ConfigError> {
    let given = [
        r.upstream.is_some(),
        r.respond.is_some(),
        r.redirect.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => return Err(c.err(key, "needs an action: upstream, respond or redirect")),
        1 => {}
        _ => {
            return Err(c.err(
                key,
                "set one action: upstream, respond or redirect, not several",
            ))
        }
    }
    if let Some(u) = &r.upstream {
        let Some(&idx) = upstreams.get(u) else {
            let mut known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(c.err(
                format!("{key}.upstream"),
                format!(
                    "no upstream named {u:?} (defined: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        return Ok(RouteAction::Proxy { upstream: idx });
    }
    if let Some(resp) = &r.respond {
        if !(200..=599).contains(&resp.status) {
            return Err(c.err(
                format!("{key}.respond.status"),
                format!("{} is not a status between 200 and 599", resp.status),
            ));
        }
        return Ok(RouteAction::Respond {
            status: resp.status,
            body: Bytes::from(resp.body.clone()),
        });
    }
    let f = r.redirect.as_ref().expect("one action is set");
    let fields = RedirectFields {
        url: f.url.as_deref(),
        scheme: f.scheme.as_deref(),
        host: f.host.as_deref(),
        port: f.port,
        path: f.path.as_deref(),
        status: f.status.unwrap_or(defaults::REDIRECT_STATUS),
    };
    Redirect::parse(&fields, !rewrite.is_identity())
        .map(RouteAction::Redirect)
        .map_err(|(k, reason)| c.err(format!("{key}.redirect.{k}"), reason))
}

/// `routes[].request_headers` / `routes[].response_headers`.
fn check_edits(
    c: &Ctx<'_>,
    key: &str,
    e: &FileHeaderEdits,
    side: Side,
) -> Result<HeaderEdits, ConfigError> {
    let set: Vec<(&str, &str)> = e
        .set
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let add_lists: Vec<(&str, Vec<String>)> = e
        .add
        .iter()
        .map(|(k, v)| {
            let values = match v {
                FileOneOrMany::One(s) => vec![s.clone()],
                FileOneOrMany::Many(l) => l.clone(),
            };
            (k.as_str(), values)
        })
        .collect();
    let add: Vec<(&str, &[String])> = add_lists.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    HeaderEdits::parse(side, &set, &add, &e.remove)
        .map_err(|(sub, reason)| c.err(format!("{key}.{sub}"), reason))
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use crate::routing::redirect::RedirectTarget;
    use crate::routing::RouteAction;
    use crate::upstream::PassHost;
    use std::collections::HashMap;

    fn load(body: &str) -> Result<super::super::Config, super::super::ConfigError> {
        let env: HashMap<&str, &str> = HashMap::new();
        load_str(
            &format!("listen: [\"127.0.0.1:1\"]\nupstreams: {{app: {{backends: [\"127.0.0.1:9\"]}}}}\n{body}"),
            "t.yaml",
            &env,
        )
    }

    #[test]
    fn full_route_loads() {
        let c = load(
            r#"
routes:
  - name: canary
    priority: 5
    match:
      scheme: HTTP
      host: "*.Example.com"
      path: /login
      methods: [get, HEAD, GET]
      headers: { X-Env: canary }
    strip_prefix: /app
    add_prefix: /v2/
    request_headers:
      set: { X-Tenant: acme }
      add: { Via-Edge: [a, b] }
      remove: [cookie]
    response_headers:
      set: { Strict-Transport-Security: "max-age=63072000" }
      remove: [server]
    upstream: app
  - name: moved
    match: { path_prefix: /old/ }
    strip_prefix: /old
    add_prefix: /new
    redirect: { status: 308 }
forwarded: { trusted: ["10.0.0.0/8"], headers: [forwarded] }
"#,
        )
        .unwrap();
        let r = &c.router.routes()[0];
        assert_eq!(r.priority, 5);
        assert_eq!(
            r.conditions.scheme,
            Some(crate::routing::matching::Scheme::Http)
        );
        assert_eq!(
            r.conditions.host.as_ref().unwrap().to_string(),
            "*.example.com"
        );
        assert_eq!(
            r.conditions.methods,
            [http::Method::GET, http::Method::HEAD],
            "upper-cased, repeats dropped"
        );
        assert_eq!(r.conditions.headers[0].0.as_str(), "x-env");
        assert_eq!(r.rewrite.apply("/app/x?q"), "/v2/x?q");
        assert_eq!(r.request_headers.add.len(), 2);
        assert_eq!(r.request_headers.remove[0].as_str(), "cookie");
        assert_eq!(
            r.response_headers.set[0].0.as_str(),
            "strict-transport-security"
        );
        let moved = &c.router.routes()[1];
        assert!(
            matches!(&moved.action, RouteAction::Redirect(rd) if rd.status == 308 && matches!(rd.target, RedirectTarget::Parts { .. }))
        );
        let f = c.router.forwarded();
        assert!(f.forwarded && !f.x_forwarded);
        assert!(f.trusted.trusts(Some("10.1.2.3".parse().unwrap())));
    }

    #[test]
    fn defaults_apply() {
        let c = load("routes: [{name: r, redirect: {scheme: https}}]\n").unwrap();
        let RouteAction::Redirect(rd) = &c.router.routes()[0].action else {
            panic!("a redirect")
        };
        assert_eq!(rd.status, super::defaults::REDIRECT_STATUS);
        assert_eq!(c.router.routes()[0].priority, 0);
        let f = c.router.forwarded();
        assert!(f.x_forwarded && f.forwarded, "both families by default");
        assert!(
            !f.trusted.trusts(Some("127.0.0.1".parse().unwrap())),
            "no one trusted by default"
        );
        assert_eq!(
            c.upstreams[0].pass_host,
            PassHost::Client,
            "the client's Host by default"
        );
    }

    #[test]
    fn refused_routes_table() {
        // (yaml after listen/upstreams, key, words in the reason, why)
        let cases: &[(&str, &str, &str, &str)] = &[
            ("routes: [{name: a, match: {host: \"a.*.com\"}, respond: {}}]", "routes[0].match.host", "first label", "wildcard in the middle"),
            ("routes: [{name: a, match: {host: \"*\"}, respond: {}}]", "routes[0].match.host", "leave host out", "a lone star"),
            ("routes: [{name: a, match: {path: /a, path_prefix: /a}, respond: {}}]", "routes[0].match.path", "not both", "path and path_prefix"),
            ("routes: [{name: a, match: {path: a}, respond: {}}]", "routes[0].match.path", "must start with '/'", "relative exact path"),
            ("routes: [{name: a, match: {path: \"/a?b\"}, respond: {}}]", "routes[0].match.path", "no '?'", "a query in the path"),
            ("routes: [{name: a, match: {methods: []}, respond: {}}]", "routes[0].match.methods", "matches no request", "empty method list"),
            ("routes: [{name: a, match: {methods: [GET, \"G T\"]}, respond: {}}]", "routes[0].match.methods[1]", "not an HTTP method", "bad method"),
            ("routes: [{name: a, match: {methods: GET}, respond: {}}]", "routes[0].match.methods", "", "a word, not a list"),
            ("routes: [{name: a, match: {headers: {Host: a}}, respond: {}}]", "routes[0].match.headers.Host", "use match.host", "Host as a header condition"),
            ("routes: [{name: a, match: {headers: {\"x y\": a}}, respond: {}}]", "routes[0].match.headers.x y", "not a valid header name", "bad header name"),
            ("routes: [{name: a, match: {headers: {X-A: a, x-a: b}}, respond: {}}]", "routes[0].match.headers.x-a", "given twice", "same header in two cases"),
            ("routes: [{name: a, match: {headers: {x-a: \"\\u0001\"}}, respond: {}}]", "routes[0].match.headers.x-a", "not allowed", "control character"),
            ("routes: [{name: a, match: {scheme: ftp}, respond: {}}]", "routes[0].match.scheme", "expected http or https", "unknown scheme"),
            ("routes: [{name: a, priority: high, respond: {}}]", "routes[0].priority", "", "priority is an integer"),
            ("routes: [{name: a, priority: 99999999999, respond: {}}]", "routes[0].priority", "", "priority out of range"),
            ("routes: [{name: a, add_prefix: v2, upstream: app}]", "routes[0].add_prefix", "must start with '/'", "relative add_prefix"),
            ("routes: [{name: a, add_prefix: /, upstream: app}]", "routes[0].add_prefix", "adds nothing", "add_prefix /"),
            ("routes: [{name: a, add_prefix: \"/a b\", upstream: app}]", "routes[0].add_prefix", "not a valid URI path", "space in add_prefix"),
            ("routes: [{name: a, add_prefix: /v2, respond: {}}]", "routes[0].add_prefix", "only applies", "add_prefix on respond"),
            ("routes: [{name: a, strip_prefix: /v2, respond: {}}]", "routes[0].strip_prefix", "only applies", "strip_prefix on respond"),
            ("routes: [{name: a, upstream: app, respond: {}}]", "routes[0]", "not several", "two actions"),
            ("routes: [{name: a, upstream: app, redirect: {scheme: https}}]", "routes[0]", "not several", "proxy and redirect"),
            ("routes: [{name: a}]", "routes[0]", "needs an action", "no action"),
            ("routes: [{name: a, request_headers: {set: {x-a: b}}, respond: {}}]", "routes[0].request_headers", "only applies to routes with an upstream", "request edits without upstream"),
            ("routes: [{name: a, request_headers: {set: {Content-Length: \"1\"}}, upstream: app}]", "routes[0].request_headers.set.Content-Length", "frames the message", "framing header"),
            ("routes: [{name: a, request_headers: {set: {host: a}}, upstream: app}]", "routes[0].request_headers.set.host", "pass_host", "Host edit"),
            ("routes: [{name: a, response_headers: {remove: [transfer-encoding]}, upstream: app}]", "routes[0].response_headers.remove[0]", "frames the message", "framing on the response"),
            ("routes: [{name: a, response_headers: {add: {connection: close}}, upstream: app}]", "routes[0].response_headers.add.connection", "connection management", "hop-by-hop"),
            ("routes: [{name: a, response_headers: {sett: {}}, upstream: app}]", "routes[0].response_headers.sett", "unknown field", "typo"),
            ("routes: [{name: a, redirect: {}}]", "routes[0].redirect.url", "needs a target", "empty redirect would loop"),
            ("routes: [{name: a, redirect: {scheme: https, status: 200}}]", "routes[0].redirect.status", "not a redirect status", "non-3xx"),
            ("routes: [{name: a, redirect: {url: \"ftp://x/\"}}]", "routes[0].redirect.url", "http or https", "bad scheme"),
            ("routes: [{name: a, redirect: {port: 70000}}]", "routes[0].redirect.port", "", "port out of range"),
            ("routes: [{name: a, redirect: {url: \"https://x/\", path: /y}}]", "routes[0].redirect.url", "either url", "url and parts"),
            ("routes: [{name: a, strip_prefix: /a, redirect: {path: /y}}]", "routes[0].redirect.path", "nothing to act on", "path with a rewrite"),
            ("forwarded: {trusted: some}", "forwarded.trusted", "expected all, none", "bad word"),
            ("forwarded: {trusted: [\"10.0.0.1/8\"]}", "forwarded.trusted[0]", "bits set", "host bits"),
            ("forwarded: {headers: [x-forwarded-for]}", "forwarded.headers[0]", "expected x-forwarded", "a header name, not a family"),
            ("forwarded: {headers: [forwarded, forwarded]}", "forwarded.headers[1]", "listed twice", "repeat"),
            ("forwarded: {trust: all}", "forwarded.trust", "unknown field", "typo"),
        ];
        for (body, key, words, why) in cases {
            let e = load(&format!("{body}\n")).expect_err(why);
            assert_eq!(&e.key, key, "{why}: {e}");
            assert!(e.reason.contains(words), "{why}: {e}");
        }
    }
}
