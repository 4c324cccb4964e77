//! The live routing state of one config generation: the router, each upstream's pool with the
//! Pingora peer template for its backends, the tracer with this config's options, and this
//! config's access log (format, filters, redaction; the writer behind it is the process's).
//!
//! The proxy reads it through an [`ArcSwap`]: a reload builds a new [`Gateway`] and swaps it in
//! whole. Each request takes its own reference when it starts, so it sees one config from its
//! first phase to its last, and the old state is dropped once its last request has finished.

use super::peer::PeerTemplate;
use crate::middleware::{Middleware, MiddlewareSpec};
use crate::observe::metrics::{Metrics, Resolved};
use crate::observe::AccessLog;
use crate::routing::{RouteAction, Router};
use crate::trace::{TraceOptions, Tracer};
use crate::upstream::{HealthChecks, UpstreamPool, UpstreamSpec};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// One upstream as the proxy uses it: the pool that chooses backends and keeps their health,
/// and how to connect to them (TLS, HTTP/2).
#[derive(Debug)]
pub struct Upstream {
    pub pool: UpstreamPool,
    pub peer: PeerTemplate,
}

/// Routes, upstreams and tracing options of one config generation.
#[derive(Debug)]
pub struct Gateway {
    pub router: Router,
    /// Indexed by `RouteAction::Proxy::upstream`.
    pub upstreams: Vec<Upstream>,
    /// The process's span sink with this config's `telemetry` options (sampler, trust,
    /// capture, propagators, response headers).
    pub tracer: Tracer,
    /// This generation's metric handles (by route), when the process keeps metrics.
    pub metrics: Option<Resolved>,
    /// `access_log`: the line each finished request gets; `None` when there is no access log.
    pub access_log: Option<AccessLog>,
    /// The config's middlewares, indexed by `Route::middlewares`.
    pub middlewares: Vec<Arc<Middleware>>,
    /// The active health checks of the pools; they stop when this generation is dropped.
    _health_checks: Option<HealthChecks>,
}

impl Gateway {
    /// Builds the routing state of one checked config (its router, its upstreams and its
    /// tracing options) and starts its pools' health checks (on a thread of their own; call
    /// it from a plain thread, at start-up or on a reload). Backends kept from the previous
    /// generation keep their health, failures and in-flight counts. `tracer` brings the span
    /// sink, which lives as long as the process (the exporter is not rebuilt on reload), and
    /// `access_log` this generation's log, which writes through the process's writer.
    pub fn new(
        router: Router,
        upstreams: &[UpstreamSpec],
        tracer: &Tracer,
        options: TraceOptions,
        access_log: Option<AccessLog>,
    ) -> Self {
        let upstreams: Vec<Upstream> = upstreams
            .iter()
            .map(|spec| Upstream {
                pool: UpstreamPool::with_shared_state(spec),
                peer: PeerTemplate::new(spec),
            })
            .collect();
        let health_checks = crate::upstream::start_health_checks(upstreams.iter().map(|u| &u.pool));
        Gateway {
            router,
            upstreams,
            tracer: tracer.clone().with_options(options),
            metrics: None,
            access_log,
            middlewares: Vec::new(),
            _health_checks: health_checks,
        }
    }

    /// This generation with the middlewares of `specs`; those of `previous` (the generation it
    /// replaces) hand their state to the ones of the same name.
    pub fn with_middlewares(
        mut self,
        specs: &[MiddlewareSpec],
        previous: Option<&Gateway>,
    ) -> Self {
        self.middlewares =
            crate::middleware::build(specs, previous.map_or(&[][..], |g| &g.middlewares[..]));
        self
    }

    /// This generation recording into `metrics`: each route's name and upstream resolved once,
    /// here, into the handles requests use.
    pub fn with_metrics(mut self, metrics: Option<&'static Metrics>) -> Self {
        self.metrics = metrics.map(|m| {
            m.resolve(self.router.routes().iter().map(|r| {
                let upstream = match &r.action {
                    RouteAction::Proxy { upstream } => {
                        self.upstreams.get(*upstream).map(|u| &*u.pool.name)
                    }
                    RouteAction::Respond { .. } | RouteAction::Redirect(_) => None,
                };
                (&*r.name, upstream)
            }))
        });
        self
    }

    /// For a proxy route (by index in the router): its upstream.
    pub fn upstream_of(&self, route: usize) -> Option<&Upstream> {
        match &self.router.routes().get(route)?.action {
            RouteAction::Proxy { upstream } => self.upstreams.get(*upstream),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Attempts, Failure, FailureStage, HealthCheck, Probe};
    use std::time::Duration;

    /// A generation with one upstream of two backends, with `health_check` if given.
    fn generation(health_check: Option<HealthCheck>) -> Gateway {
        let spec = UpstreamSpec {
            health_check,
            ..UpstreamSpec::for_test(
                "gateway-reload-test",
                vec![
                    "192.0.2.10:80".parse().unwrap(),
                    "192.0.2.11:80".parse().unwrap(),
                ],
            )
        };
        Gateway::new(
            Router::default(),
            &[spec],
            &Tracer::new(None),
            TraceOptions::default(),
            None,
        )
    }

    #[test]
    fn a_reload_keeps_the_state_of_unchanged_backends() {
        let old = generation(None);
        let pool = &old.upstreams[0].pool;
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
        let new = generation(None);
        assert!(
            !new.upstreams[0].pool.is_available(i),
            "state kept across the reload"
        );
        assert!(new.upstreams[0].pool.is_available(1 - i));
        // `health_check: { type: tcp, interval: 1h }`
        let changed = generation(Some(HealthCheck {
            probe: Probe::Tcp,
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(2),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }));
        assert!(
            changed.upstreams[0].pool.is_available(i),
            "new health check settings: a fresh state"
        );
        drop((old, new, changed));
    }
}
