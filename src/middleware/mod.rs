//! Route middlewares: named in the config's `middlewares:` map and listed by name on routes
//! (`routes[].middlewares: [office, limit, cors]`), Traefik's model. They run in the listed
//! order right after the route matched, before its action; the first one that answers ends
//! the chain and nothing goes upstream.
//!
//! Each kind lives in a file of its own and knows nothing of Pingora: [`ip_filter`]
//! (`ip_allow`, `ip_deny`), [`rate_limit`], [`cors`], [`compress`], [`basic_auth`],
//! [`forward_auth`] and `body_limit` (a number). The proxy glue
//! (`crate::proxy::middleware`) runs them at the phases they need: the request head (all of
//! them), the request body (`body_limit` while streaming), the response head (`cors`,
//! `compress`) and body (`compress`).
//!
//! A config holds [`MiddlewareSpec`]s (checked settings); each config generation builds its
//! [`Middleware`]s from them ([`build`]), handing each the one of the same name it replaces so
//! that state worth keeping (rate-limit buckets) carries over a reload.

pub mod basic_auth;
pub mod compress;
pub mod cors;
pub mod forward_auth;
pub mod ip_filter;
pub mod rate_limit;

use std::sync::Arc;

/// A checked middleware from the config.
#[derive(Debug, Clone)]
pub struct MiddlewareSpec {
    pub name: Arc<str>,
    pub kind: KindSpec,
}

/// A middleware kind. The config's and the running generation's differ only in `rate_limit`:
/// the config holds its settings ([`KindSpec`]), a running generation its limiter with the
/// buckets ([`Kind`], the default).
#[derive(Debug, Clone)]
pub enum Kind<R = Box<rate_limit::RateLimiter>> {
    IpAllow(ip_filter::IpList),
    IpDeny(ip_filter::IpList),
    /// `body_limit`: the most request body bytes.
    BodyLimit(u64),
    Cors(cors::Cors),
    Compress(compress::Compress),
    /// Loaded at config load: a missing or bad users file refuses the config.
    BasicAuth(Arc<basic_auth::BasicAuth>),
    ForwardAuth(Arc<forward_auth::ForwardAuth>),
    RateLimit(R),
}

/// A middleware kind's checked settings.
pub type KindSpec = Kind<rate_limit::RateLimitSettings>;

impl<R> Kind<R> {
    /// The config key of this kind.
    pub fn key(&self) -> &'static str {
        match self {
            Kind::IpAllow(_) => "ip_allow",
            Kind::IpDeny(_) => "ip_deny",
            Kind::BodyLimit(_) => "body_limit",
            Kind::Cors(_) => "cors",
            Kind::Compress(_) => "compress",
            Kind::BasicAuth(_) => "basic_auth",
            Kind::ForwardAuth(_) => "forward_auth",
            Kind::RateLimit(_) => "rate_limit",
        }
    }

    /// The same kind with its `rate_limit` part made by `f`; the others are shared settings.
    fn map_rate_limit<T>(&self, f: impl FnOnce(&R) -> T) -> Kind<T> {
        match self {
            Kind::IpAllow(l) => Kind::IpAllow(l.clone()),
            Kind::IpDeny(l) => Kind::IpDeny(l.clone()),
            Kind::BodyLimit(n) => Kind::BodyLimit(*n),
            Kind::Cors(c) => Kind::Cors(c.clone()),
            Kind::Compress(c) => Kind::Compress(c.clone()),
            Kind::BasicAuth(a) => Kind::BasicAuth(Arc::clone(a)),
            Kind::ForwardAuth(a) => Kind::ForwardAuth(Arc::clone(a)),
            Kind::RateLimit(r) => Kind::RateLimit(f(r)),
        }
    }
}

/// A middleware of a running config generation.
#[derive(Debug)]
pub struct Middleware {
    pub name: Arc<str>,
    pub kind: Kind,
}

/// The middlewares of a new config generation, from its specs; `previous` are those of the
/// generation it replaces (by name), whose state a middleware of the same name and kind keeps.
pub fn build(specs: &[MiddlewareSpec], previous: &[Arc<Middleware>]) -> Vec<Arc<Middleware>> {
    specs
        .iter()
        .map(|s| {
            // The buckets of the limiter it replaces carry over (same name).
            let before = previous
                .iter()
                .find(|p| p.name == s.name)
                .and_then(|p| match &p.kind {
                    Kind::RateLimit(l) => Some(&**l),
                    _ => None,
                });
            let kind = s.kind.map_rate_limit(|settings| {
                Box::new(rate_limit::RateLimiter::new(
                    &s.name,
                    settings.clone(),
                    before,
                ))
            });
            Arc::new(Middleware {
                name: Arc::clone(&s.name),
                kind,
            })
        })
        .collect()
}
