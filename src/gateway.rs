//! The live routing state: the router and the upstream pools built from one checked config.
//!
//! The proxy reads it through an [`ArcSwap`]: a reload builds a new [`Gateway`] and swaps it in
//! whole. Each request takes its own reference when it starts, so it sees one config from its
//! first phase to its last, and the old state is dropped once its last request has finished.

use crate::config::Config;
use crate::routing::{RouteAction, Router};
use crate::upstream::{HealthChecks, UpstreamPool};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Routes and upstream pools of one config generation.
#[derive(Debug)]
pub struct Gateway {
    pub router: Router,
    /// Indexed by `RouteAction::Proxy::upstream`.
    pub upstreams: Vec<UpstreamPool>,
    /// The active health checks of the pools; they stop when this generation is dropped.
    _health_checks: Option<HealthChecks>,
}

impl Gateway {
    /// Builds the routing state of `config` and starts its pools' health checks (on a thread
    /// of their own; call it from a plain thread, at start-up or on a reload). Backends kept
    /// from the previous generation keep their health, failures and in-flight counts.
    pub fn new(config: &Config) -> Self {
        let upstreams: Vec<UpstreamPool> = config
            .upstreams
            .iter()
            .map(UpstreamPool::with_shared_state)
            .collect();
        let health_checks = crate::upstream::start_health_checks(&upstreams);
        Gateway {
            router: config.router.clone(),
            upstreams,
            _health_checks: health_checks,
        }
    }

    /// For a proxy route (by index in the router): its pool and its `strip_prefix`.
    pub fn proxy_target(&self, route: usize) -> Option<(&UpstreamPool, Option<&str>)> {
        match &self.router.routes().get(route)?.action {
            RouteAction::Proxy {
                upstream,
                strip_prefix,
            } => Some((&self.upstreams[*upstream], strip_prefix.as_deref())),
            RouteAction::Respond { .. } => None,
        }
    }
}

/// The handle shared by the proxy and whoever reloads the config.
pub type SharedGateway = Arc<ArcSwap<Gateway>>;

/// A shared handle holding `gateway`.
pub fn shared(gateway: Gateway) -> SharedGateway {
    Arc::new(ArcSwap::from_pointee(gateway))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::upstream::{Attempts, Failure, FailureStage};
    use std::collections::HashMap;

    fn config(extra: &str) -> Config {
        let yaml = format!(
            "listen: [\"127.0.0.1:1\"]\nupstreams:\n  gateway-reload-test: {{ backends: [\"192.0.2.10:80\", \"192.0.2.11:80\"]{extra} }}\n"
        );
        load_str(&yaml, "t.yaml", &HashMap::<&str, &str>::new()).unwrap()
    }

    /// A reload builds a new generation while the old one still serves: a backend kept with
    /// the same settings keeps its state (here: ejected after a failed attempt); changed health
    /// check settings start afresh.
    #[test]
    fn a_reload_keeps_the_state_of_unchanged_backends() {
        let old = Gateway::new(&config(""));
        let pool = &old.upstreams[0];
        let mut a = Attempts::default();
        let i = pool.begin_attempt(&mut a, None).unwrap();
        pool.attempt_failed(
            &mut a,
            Failure {
                stage: FailureStage::Connect,
                replayable: true,
                reason: "connection_refused",
            },
        );
        assert!(!pool.is_available(i));
        let new = Gateway::new(&config(""));
        assert!(
            !new.upstreams[0].is_available(i),
            "state kept across the reload"
        );
        assert!(new.upstreams[0].is_available(1 - i));
        let changed = Gateway::new(&config(", health_check: { type: tcp, interval: 1h }"));
        assert!(
            changed.upstreams[0].is_available(i),
            "new health check settings: a fresh state"
        );
        drop((old, new, changed));
    }
}
