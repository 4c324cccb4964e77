//! `middlewares`: named route middlewares, each with exactly one kind key, into
//! [`MiddlewareSpec`]s; and `routes[].middlewares`, the names a route runs, into indices.
//!
//! ```yaml
//! middlewares:
//!   office: { ip_allow: ["10.0.0.0/8"] }
//!   upload: { body_limit: 10MiB }
//! routes:
//!   - { name: api, match: { path_prefix: /api/ }, middlewares: [office, upload], upstream: api }
//! ```

use super::check::{parse_size, Ctx};
use super::file::{FileCompress, FileCors, FileMiddleware, FileRateKey, FileRateLimit};
use super::ConfigError;
use crate::middleware::basic_auth::{BasicAuth, BasicAuthSettings};
use crate::middleware::compress::{Compress, DEFAULT_LEVEL, DEFAULT_MIN_SIZE, DEFAULT_TYPES};
use crate::middleware::cors::Cors;
use crate::middleware::forward_auth::{ForwardAuth, ForwardAuthSettings};
use crate::middleware::ip_filter::IpList;
use crate::middleware::rate_limit::{
    parse_redis_url, KeySource, OnStoreError, RateLimitSettings, Store,
};
use crate::middleware::{KindSpec, MiddlewareSpec};
use crate::net::Cidr;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The most middlewares one route may list.
const MAX_PER_ROUTE: usize = 32;
/// The kind keys, for the error that names them.
const KINDS: &str =
    "ip_allow, ip_deny, rate_limit, body_limit, cors, compress, basic_auth, forward_auth";
/// `forward_auth.timeout` when not set, as Traefik's default.
const FORWARD_AUTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks every named middleware; returns them and their indices by name.
pub(super) fn check_middlewares(
    c: &Ctx<'_>,
    f: &BTreeMap<String, FileMiddleware>,
) -> Result<(Vec<MiddlewareSpec>, HashMap<String, usize>), ConfigError> {
    let mut specs = Vec::with_capacity(f.len());
    let mut index = HashMap::with_capacity(f.len());
    for (name, m) in f {
        let key = format!("middlewares.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(c.err(key, "a middleware name is letters, digits, '_' and '-'"));
        }
        let kind = check_kind(c, &key, m)?;
        index.insert(name.clone(), specs.len());
        specs.push(MiddlewareSpec {
            name: Arc::from(name.as_str()),
            kind,
        });
    }
    Ok((specs, index))
}

/// The names a route lists, as indices; an unknown name is refused.
pub(super) fn route_middlewares(
    c: &Ctx<'_>,
    key: &str,
    names: &[String],
    index: &HashMap<String, usize>,
) -> Result<Arc<[usize]>, ConfigError> {
    if names.len() > MAX_PER_ROUTE {
        return Err(c.err(
            key,
            format!("{} middlewares: at most {MAX_PER_ROUTE}", names.len()),
        ));
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let Some(&m) = index.get(n.trim()) else {
            let mut known: Vec<&str> = index.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(c.err(
                format!("{key}[{i}]"),
                format!(
                    "no middleware named {n:?} (defined: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        if out.contains(&m) {
            return Err(c.err(format!("{key}[{i}]"), format!("{n:?} is listed twice")));
        }
        out.push(m);
    }
    Ok(out.into())
}

fn check_kind(c: &Ctx<'_>, key: &str, m: &FileMiddleware) -> Result<KindSpec, ConfigError> {
    let mut kinds: Vec<KindSpec> = Vec::new();
    if let Some(l) = &m.ip_allow {
        kinds.push(KindSpec::IpAllow(ip_list(
            c,
            &format!("{key}.ip_allow"),
            l,
        )?));
    }
    if let Some(l) = &m.ip_deny {
        kinds.push(KindSpec::IpDeny(ip_list(c, &format!("{key}.ip_deny"), l)?));
    }
    if let Some(s) = &m.body_limit {
        let n = parse_size(s).map_err(|r| c.err(format!("{key}.body_limit"), r))?;
        kinds.push(KindSpec::BodyLimit(n));
    }
    if let Some(f) = &m.cors {
        kinds.push(KindSpec::Cors(cors(c, &format!("{key}.cors"), f)?));
    }
    if let Some(f) = &m.compress {
        kinds.push(KindSpec::Compress(compress(
            c,
            &format!("{key}.compress"),
            f,
        )?));
    }
    if let Some(f) = &m.basic_auth {
        let k = format!("{key}.basic_auth");
        let realm = f.realm.clone().unwrap_or_else(|| "tracegate".to_owned());
        let settings = BasicAuthSettings {
            users_file: f.users_file.trim().into(),
            realm,
            pass_credentials: f.pass_credentials.unwrap_or(false),
        };
        let auth = BasicAuth::load(settings).map_err(|r| c.err(format!("{k}.users_file"), r))?;
        kinds.push(KindSpec::BasicAuth(Arc::new(auth)));
    }
    if let Some(f) = &m.forward_auth {
        let k = format!("{key}.forward_auth");
        let address: http::Uri = f.address.trim().parse().map_err(|e| {
            c.err(
                format!("{k}.address"),
                format!("{:?} is not a URL: {e}", f.address),
            )
        })?;
        let mut response_headers = Vec::new();
        for (i, h) in f.response_headers.iter().enumerate() {
            response_headers.push(
                http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).map_err(
                    |_| {
                        c.err(
                            format!("{k}.response_headers[{i}]"),
                            format!("{h:?} is not a header name"),
                        )
                    },
                )?,
            );
        }
        let timeout = c.duration_in(
            &format!("{k}.timeout"),
            &f.timeout,
            FORWARD_AUTH_TIMEOUT,
            std::time::Duration::from_millis(1)..=std::time::Duration::from_secs(60),
        )?;
        let auth = ForwardAuth::new(ForwardAuthSettings {
            address,
            response_headers,
            timeout,
            trust_forward_header: f.trust_forward_header.unwrap_or(false),
        })
        .map_err(|r| c.err(k, r))?;
        kinds.push(KindSpec::ForwardAuth(Arc::new(auth)));
    }
    if let Some(f) = &m.rate_limit {
        kinds.push(KindSpec::RateLimit(rate_limit(
            c,
            &format!("{key}.rate_limit"),
            f,
        )?));
    }
    match kinds.len() {
        1 => Ok(kinds.pop().expect("one kind")),
        0 => Err(c.err(key, format!("set one of {KINDS}"))),
        _ => Err(c.err(
            key,
            format!(
                "one kind per middleware, not {}: name each and list them on the route",
                kinds
                    .iter()
                    .map(KindSpec::key)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
}

fn rate_limit(c: &Ctx<'_>, key: &str, f: &FileRateLimit) -> Result<RateLimitSettings, ConfigError> {
    let Some(average) = f.average else {
        return Err(c.err(
            format!("{key}.average"),
            "set the requests allowed per period, e.g. average: 100",
        ));
    };
    let average = c.count_in(
        &format!("{key}.average"),
        Some(average),
        1,
        1..=1_000_000_000,
    )?;
    let period = c.duration_in(
        &format!("{key}.period"),
        &f.period,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_millis(1)..=std::time::Duration::from_secs(86_400),
    )?;
    let burst = c.count_in(&format!("{key}.burst"), f.burst, 1, 1..=1_000_000_000)?;
    let source = match &f.key {
        None => KeySource::ClientIp,
        Some(FileRateKey::Name(n)) => match n.trim() {
            "client_ip" => KeySource::ClientIp,
            "route" => KeySource::Route,
            other => {
                return Err(c.err(
                    format!("{key}.key"),
                    format!("{other:?}: client_ip, route or {{ header: NAME }}"),
                ))
            }
        },
        Some(FileRateKey::Header { header }) => KeySource::Header(
            http::HeaderName::from_bytes(header.trim().to_ascii_lowercase().as_bytes()).map_err(
                |_| {
                    c.err(
                        format!("{key}.key.header"),
                        format!("{header:?} is not a header name"),
                    )
                },
            )?,
        ),
    };
    let store = match &f.store {
        None => Store::Local,
        Some(u) if u.trim() == "local" => Store::Local,
        Some(u) => {
            Store::Redis(parse_redis_url(u.trim()).map_err(|r| c.err(format!("{key}.store"), r))?)
        }
    };
    let on_store_error = match f.on_store_error.as_deref().map(str::trim) {
        None | Some("allow") => OnStoreError::Allow,
        Some("deny") => OnStoreError::Deny,
        Some(other) => {
            return Err(c.err(
                format!("{key}.on_store_error"),
                format!("{other:?}: allow (fail open) or deny"),
            ))
        }
    };
    if f.on_store_error.is_some() && store == Store::Local {
        return Err(c.err(
            format!("{key}.on_store_error"),
            "only applies with a store: redis://… (a local limiter cannot fail)",
        ));
    }
    Ok(RateLimitSettings {
        average,
        period,
        burst,
        key: source,
        store,
        on_store_error,
    })
}

fn ip_list(c: &Ctx<'_>, key: &str, l: &[String]) -> Result<IpList, ConfigError> {
    if l.is_empty() {
        return Err(c.err(key, "an empty list: list networks, e.g. [\"10.0.0.0/8\"]"));
    }
    l.iter()
        .enumerate()
        .map(|(i, n)| Cidr::parse(n.trim()).map_err(|e| c.err(format!("{key}[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()
        .map(IpList)
}

/// An origin as browsers send it: `scheme://host[:port]`, no path.
fn check_origin(o: &str) -> Result<String, String> {
    let o = o.trim();
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("{o:?}: an origin is scheme://host[:port], e.g. https://app.example.com")
        })?;
    if rest.is_empty() || rest.contains('/') || rest.contains(|ch: char| ch.is_whitespace()) {
        return Err(format!(
            "{o:?}: an origin has no path, e.g. https://app.example.com"
        ));
    }
    Ok(o.to_ascii_lowercase())
}

fn cors(c: &Ctx<'_>, key: &str, f: &FileCors) -> Result<Cors, ConfigError> {
    if f.allow_origins.is_empty() {
        return Err(c.err(
            format!("{key}.allow_origins"),
            "list the origins allowed, e.g. [\"https://app.example.com\"], or [\"*\"]",
        ));
    }
    let any_origin = f.allow_origins.iter().any(|o| o.trim() == "*");
    let allow_credentials = f.allow_credentials.unwrap_or(false);
    if any_origin && f.allow_origins.len() > 1 {
        return Err(c.err(
            format!("{key}.allow_origins"),
            "\"*\" allows every origin: list it alone",
        ));
    }
    if any_origin && allow_credentials {
        return Err(c.err(
            format!("{key}.allow_credentials"),
            "browsers reject credentials with Access-Control-Allow-Origin: * (Fetch, CORS \
             protocol): list the origins instead of \"*\"",
        ));
    }
    let mut allow_origins = Vec::new();
    if !any_origin {
        for (i, o) in f.allow_origins.iter().enumerate() {
            allow_origins
                .push(check_origin(o).map_err(|r| c.err(format!("{key}.allow_origins[{i}]"), r))?);
        }
    }
    let methods = f
        .allow_methods
        .clone()
        .unwrap_or_else(|| vec!["GET".into(), "HEAD".into(), "POST".into()]);
    let mut allow_methods = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        let m = m.trim().to_ascii_uppercase();
        allow_methods.push(http::Method::from_bytes(m.as_bytes()).map_err(|_| {
            c.err(
                format!("{key}.allow_methods[{i}]"),
                format!("{m:?} is not a method"),
            )
        })?);
    }
    let names = |k: &str, l: &[String]| -> Result<Vec<http::HeaderName>, ConfigError> {
        l.iter()
            .enumerate()
            .map(|(i, h)| {
                http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).map_err(
                    |_| {
                        c.err(
                            format!("{key}.{k}[{i}]"),
                            format!("{h:?} is not a header name"),
                        )
                    },
                )
            })
            .collect()
    };
    let max_age = match &f.max_age {
        None => None,
        Some(_) => Some(
            c.duration_in(
                &format!("{key}.max_age"),
                &f.max_age,
                std::time::Duration::ZERO,
                std::time::Duration::ZERO..=std::time::Duration::from_secs(86_400),
            )?
            .as_secs(),
        ),
    };
    Ok(Cors {
        allow_origins,
        any_origin,
        allow_methods,
        allow_headers: names("allow_headers", &f.allow_headers)?,
        expose_headers: names("expose_headers", &f.expose_headers)?,
        max_age,
        allow_credentials,
    })
}

fn compress(c: &Ctx<'_>, key: &str, f: &FileCompress) -> Result<Compress, ConfigError> {
    let min_size = match &f.min_size {
        None => DEFAULT_MIN_SIZE,
        Some(s) => parse_size(s).map_err(|r| c.err(format!("{key}.min_size"), r))?,
    };
    let types = match &f.types {
        None => DEFAULT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        Some(l) => {
            let mut out = Vec::new();
            for (i, t) in l.iter().enumerate() {
                let t = t.trim().to_ascii_lowercase();
                let ok = t.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty() && !b.is_empty() && a != "*" && !b.contains('/')
                });
                if !ok || (t.contains('*') && !t.ends_with("/*")) {
                    return Err(c.err(
                        format!("{key}.types[{i}]"),
                        format!("{t:?}: a media type (text/html) or a whole type (text/*)"),
                    ));
                }
                out.push(t);
            }
            out
        }
    };
    let level = c.count_in(&format!("{key}.level"), f.level, DEFAULT_LEVEL, 1..=9)?;
    Ok(Compress {
        min_size,
        types,
        level,
    })
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use crate::middleware::KindSpec;
    use std::collections::HashMap;

    fn load(yaml: &str) -> Result<super::super::Config, super::super::ConfigError> {
        let env: HashMap<&str, &str> = HashMap::new();
        load_str(
            &format!("listen: [\"127.0.0.1:8080\"]\n{yaml}"),
            "t.yaml",
            &env,
        )
    }

    #[test]
    fn routes_list_middlewares_by_name_in_order() {
        let c = load(
            "middlewares:\n  office: { ip_allow: [\"10.0.0.0/8\", \"2001:db8::/32\"] }\n  \
             upload: { body_limit: 10MiB }\n  cors: { cors: { allow_origins: [\"https://app.example.com\"], allow_credentials: true, max_age: 10m } }\n  \
             gzip: { compress: { min_size: 1KiB, types: [text/*, application/json] } }\n\
             routes:\n  - { name: r, match: { path_prefix: / }, middlewares: [upload, office, gzip], respond: { body: x } }\n",
        )
        .unwrap();
        let names: Vec<&str> = c.router.routes()[0]
            .middlewares
            .iter()
            .map(|&i| &*c.middlewares[i].name)
            .collect();
        assert_eq!(names, ["upload", "office", "gzip"], "in the route's order");
        let kind = |n: &str| &c.middlewares.iter().find(|m| &*m.name == n).unwrap().kind;
        assert!(matches!(kind("upload"), KindSpec::BodyLimit(n) if *n == 10 << 20));
        let KindSpec::Cors(cors) = kind("cors") else {
            panic!()
        };
        assert_eq!(cors.max_age, Some(600));
        let KindSpec::Compress(z) = kind("gzip") else {
            panic!()
        };
        assert_eq!(z.min_size, 1024);
    }

    #[test]
    fn refused_middlewares_table() {
        let route = |m: &str| {
            format!("routes:\n  - {{ name: r, match: {{ path_prefix: / }}, middlewares: [{m}], respond: {{ body: x }} }}\n")
        };
        // (yaml, key, words, why)
        let cases: Vec<(String, &str, &str, &str)> = vec![
            (route("nope"), "routes[0].middlewares[0]", "no middleware named \"nope\"", "an unknown name"),
            (format!("middlewares:\n  a: {{ body_limit: 1KiB }}\n{}", route("a, a")), "routes[0].middlewares[1]", "listed twice", "twice"),
            ("middlewares:\n  a: { ip_allow: [\"10.0.0.0/33\"] }\n".into(), "middlewares.a.ip_allow[0]", "", "a bad CIDR"),
            ("middlewares:\n  a: { ip_allow: [] }\n".into(), "middlewares.a.ip_allow", "empty list", "an empty list"),
            ("middlewares:\n  a: {}\n".into(), "middlewares.a", "set one of", "no kind"),
            ("middlewares:\n  a: { body_limit: 1KiB, ip_deny: [\"10.0.0.0/8\"] }\n".into(), "middlewares.a", "one kind per middleware", "two kinds"),
            ("middlewares:\n  a: { gzip: {} }\n".into(), "middlewares.a.gzip", "unknown field", "an unknown kind"),
            ("middlewares:\n  a: { cors: { allow_origins: [\"*\"], allow_credentials: true } }\n".into(), "middlewares.a.cors.allow_credentials", "Access-Control-Allow-Origin: *", "* with credentials"),
            ("middlewares:\n  a: { cors: { allow_origins: [\"app.example.com\"] } }\n".into(), "middlewares.a.cors.allow_origins[0]", "scheme://host", "an origin without a scheme"),
            ("middlewares:\n  a: { cors: { allow_origins: [\"https://a.example/x\"] } }\n".into(), "middlewares.a.cors.allow_origins[0]", "no path", "an origin with a path"),
            ("middlewares:\n  a: { cors: {} }\n".into(), "middlewares.a.cors.allow_origins", "list the origins", "no origins"),
            ("middlewares:\n  a: { compress: { types: [html] } }\n".into(), "middlewares.a.compress.types[0]", "a media type", "not a media type"),
            ("middlewares:\n  a: { compress: { level: 12 } }\n".into(), "middlewares.a.compress.level", "at most 9", "level out of range"),
            ("middlewares:\n  \"a b\": { body_limit: 1 }\n".into(), "middlewares.a b", "letters, digits", "a name with a space"),
            ("middlewares:\n  a: { basic_auth: { users_file: /nonexistent/htpasswd } }\n".into(), "middlewares.a.basic_auth.users_file", "", "a missing users file"),
            ("middlewares:\n  a: { rate_limit: { burst: 5 } }\n".into(), "middlewares.a.rate_limit.average", "per period", "no average"),
            ("middlewares:\n  a: { rate_limit: { average: 5, key: ip } }\n".into(), "middlewares.a.rate_limit.key", "client_ip, route", "an unknown key"),
            ("middlewares:\n  a: { rate_limit: { average: 5, store: \"http://x\" } }\n".into(), "middlewares.a.rate_limit.store", "", "not a Redis URL"),
            ("middlewares:\n  a: { rate_limit: { average: 5, on_store_error: deny } }\n".into(), "middlewares.a.rate_limit.on_store_error", "only applies", "no store to fail"),
            ("middlewares:\n  a: { forward_auth: { address: \"not a url\" } }\n".into(), "middlewares.a.forward_auth.address", "not a URL", "a bad address"),
            ("middlewares:\n  a: { forward_auth: { address: \"http://127.0.0.1:9/v\", timeout: 0s } }\n".into(), "middlewares.a.forward_auth.timeout", "", "a zero timeout"),
        ];
        for (yaml, key, words, why) in cases {
            let e = load(&yaml).expect_err(why);
            assert_eq!(e.key, key, "{why}: {e}");
            assert!(e.reason.contains(words), "{why}: {e}");
        }
    }
}
