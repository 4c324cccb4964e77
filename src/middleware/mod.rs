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

/// A middleware kind's checked settings.
#[derive(Debug, Clone)]
pub enum KindSpec {
    IpAllow(ip_filter::IpList),
    IpDeny(ip_filter::IpList),
    /// `body_limit`: the most request body bytes.
    BodyLimit(u64),
    Cors(cors::Cors),
    Compress(compress::Compress),
    /// Loaded at config load: a missing or bad users file refuses the config.
    BasicAuth(Arc<basic_auth::BasicAuth>),
    ForwardAuth(Arc<forward_auth::ForwardAuth>),
    RateLimit(rate_limit::RateLimitSettings),
}

impl KindSpec {
    /// The config key of this kind.
    pub fn key(&self) -> &'static str {
        match self {
            KindSpec::IpAllow(_) => "ip_allow",
            KindSpec::IpDeny(_) => "ip_deny",
            KindSpec::BodyLimit(_) => "body_limit",
            KindSpec::Cors(_) => "cors",
            KindSpec::Compress(_) => "compress",
            KindSpec::BasicAuth(_) => "basic_auth",
            KindSpec::ForwardAuth(_) => "forward_auth",
            KindSpec::RateLimit(_) => "rate_limit",
        }
    }
}

/// A middleware of a running config generation.
#[derive(Debug)]
pub struct Middleware {
    pub name: Arc<str>,
    pub kind: Kind,
}

/// A running middleware kind.
#[derive(Debug)]
pub enum Kind {
    IpAllow(ip_filter::IpList),
    IpDeny(ip_filter::IpList),
    BodyLimit(u64),
    Cors(cors::Cors),
    Compress(compress::Compress),
    BasicAuth(Arc<basic_auth::BasicAuth>),
    ForwardAuth(Arc<forward_auth::ForwardAuth>),
    RateLimit(Box<rate_limit::RateLimiter>),
}

/// The middlewares of a new config generation, from its specs; `previous` are those of the
/// generation it replaces (by name), whose state a middleware of the same name and kind keeps.
pub fn build(specs: &[MiddlewareSpec], previous: &[Arc<Middleware>]) -> Vec<Arc<Middleware>> {
    specs
        .iter()
        .map(|s| {
            let before = previous.iter().find(|p| p.name == s.name);
            let kind = match &s.kind {
                KindSpec::IpAllow(l) => Kind::IpAllow(l.clone()),
                KindSpec::IpDeny(l) => Kind::IpDeny(l.clone()),
                KindSpec::BodyLimit(n) => Kind::BodyLimit(*n),
                KindSpec::Cors(c) => Kind::Cors(c.clone()),
                KindSpec::Compress(c) => Kind::Compress(c.clone()),
                KindSpec::BasicAuth(a) => Kind::BasicAuth(Arc::clone(a)),
                KindSpec::ForwardAuth(a) => Kind::ForwardAuth(Arc::clone(a)),
                KindSpec::RateLimit(settings) => {
                    // The buckets of the limiter it replaces carry over (same name).
                    let previous = before.and_then(|p| match &p.kind {
                        Kind::RateLimit(l) => Some(l),
                        _ => None,
                    });
                    Kind::RateLimit(Box::new(rate_limit::RateLimiter::new(
                        &s.name,
                        settings.clone(),
                        previous.map(|l| &**l),
                    )))
                }
            };
            Arc::new(Middleware {
                name: Arc::clone(&s.name),
                kind,
            })
        })
        .collect()
}
