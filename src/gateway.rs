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
use crate::upstream::{HealthChecks, UpstreamPool};
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
    /// The active health checks of the pools; they stop when this generation is dropped.
    _health_checks: Option<HealthChecks>,
}

impl Gateway {
    /// Builds the routing state of `config` and starts its pools' health checks (on a thread
    /// of their own; call it from a plain thread, at start-up or on a reload). Backends kept
    /// from the previous generation keep their health, failures and in-flight counts.
    /// `tracer` brings the span sink, which lives as long as the process (the exporter is not
    /// rebuilt on reload).
    pub fn new(config: &Config, tracer: &Tracer) -> Self {
        let upstreams: Vec<UpstreamPool> = config
            .upstreams
            .iter()
            .map(UpstreamPool::with_shared_state)
            .collect();
        let health_checks = crate::upstream::start_health_checks(&upstreams);
        Gateway {
            router: config.router.clone(),
            upstreams,
            tracer: tracer
                .clone()
                .with_options(config.telemetry.options.clone()),
            peers: config.upstreams.iter().map(PeerTemplate::new).collect(),
            _health_checks: health_checks,
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
        let old = Gateway::new(&config(""), &Tracer::new(None));
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
        let new = Gateway::new(&config(""), &Tracer::new(None));
        assert!(
            !new.upstreams[0].is_available(i),
            "state kept across the reload"
        );
        assert!(new.upstreams[0].is_available(1 - i));
        let changed = Gateway::new(
            &config(", health_check: { type: tcp, interval: 1h }"),
            &Tracer::new(None),
        );
        assert!(
            changed.upstreams[0].is_available(i),
            "new health check settings: a fresh state"
        );
        drop((old, new, changed));
    }
}
