//! The live routing state: the router and the upstream pools built from one checked config.
//!
//! The proxy reads it through an [`ArcSwap`]: a reload builds a new [`Gateway`] and swaps it in
//! whole. Each request takes its own reference when it starts, so it sees one config from its
//! first phase to its last, and the old state is dropped once its last request has finished.

use crate::config::Config;
use crate::routing::{RouteAction, Router};
use crate::upstream::UpstreamPool;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Routes and upstream pools of one config generation.
#[derive(Debug)]
pub struct Gateway {
    pub router: Router,
    /// Indexed by `RouteAction::Proxy::upstream`.
    pub upstreams: Vec<UpstreamPool>,
}

impl Gateway {
    pub fn new(config: &Config) -> Self {
        let upstreams = config.upstreams.iter().map(UpstreamPool::new).collect();
        Gateway {
            router: config.router.clone(),
            upstreams,
        }
    }

    /// For a proxy route (by index in the router): its upstream pool.
    pub fn proxy_target(&self, route: usize) -> Option<&UpstreamPool> {
        match &self.router.routes().get(route)?.action {
            RouteAction::Proxy { upstream } => Some(&self.upstreams[*upstream]),
            RouteAction::Respond { .. } | RouteAction::Redirect(_) => None,
        }
    }
}

/// The handle shared by the proxy and whoever reloads the config.
pub type SharedGateway = Arc<ArcSwap<Gateway>>;

/// A shared handle holding `gateway`.
pub fn shared(gateway: Gateway) -> SharedGateway {
    Arc::new(ArcSwap::from_pointee(gateway))
}
