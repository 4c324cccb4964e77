//! The live routing state: the router, the upstream pools and the tracer settings built from
//! one checked config.
//!
//! The proxy reads it through an [`ArcSwap`]: a reload builds a new [`Gateway`] and swaps it in
//! whole. Each request takes its own reference when it starts, so it sees one config from its
//! first phase to its last, and the old state is dropped once its last request has finished.

use crate::config::Config;
use crate::proxy::peer::PeerTemplate;
use crate::routing::{RouteAction, Router};
use crate::trace::Tracer;
use crate::upstream::UpstreamPool;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Routes, upstream pools and tracing options of one config generation.
#[derive(Debug)]
pub struct Gateway {
    pub router: Router,
    /// Indexed by `RouteAction::Proxy::upstream`.
    pub upstreams: Vec<UpstreamPool>,
    /// The process's span sink with this config's `telemetry` options (sampler, trust,
    /// capture, propagators, response headers).
    pub tracer: Tracer,
    /// How the proxy connects to each pool's backends (TLS, HTTP/2), same index.
    pub peers: Vec<PeerTemplate>,
}

impl Gateway {
    /// The state for `config`; `tracer` brings the span sink, which lives as long as the
    /// process (the exporter is not rebuilt on reload).
    pub fn new(config: &Config, tracer: &Tracer) -> Self {
        let upstreams = config.upstreams.iter().map(UpstreamPool::new).collect();
        Gateway {
            router: config.router.clone(),
            upstreams,
            tracer: tracer
                .clone()
                .with_options(config.telemetry.options.clone()),
            peers: config.upstreams.iter().map(PeerTemplate::new).collect(),
        }
    }

    /// For a proxy route (by index in the router): the index of its upstream.
    fn upstream_of(&self, route: usize) -> Option<usize> {
        match &self.router.routes().get(route)?.action {
            RouteAction::Proxy { upstream } => Some(*upstream),
            RouteAction::Respond { .. } | RouteAction::Redirect(_) => None,
        }
    }

    /// For a proxy route (by index in the router): its upstream pool.
    pub fn proxy_target(&self, route: usize) -> Option<&UpstreamPool> {
        self.upstreams.get(self.upstream_of(route)?)
    }

    /// For a proxy route (by index in the router): how to connect to its upstream's backends.
    pub fn peer_template(&self, route: usize) -> Option<&PeerTemplate> {
        self.peers.get(self.upstream_of(route)?)
    }
}

/// The handle shared by the proxy and whoever reloads the config.
pub type SharedGateway = Arc<ArcSwap<Gateway>>;

/// A shared handle holding `gateway`.
pub fn shared(gateway: Gateway) -> SharedGateway {
    Arc::new(ArcSwap::from_pointee(gateway))
}
