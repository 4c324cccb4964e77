//! The "Pingora floor" of the load benchmarks: the smallest `ProxyHttp` there is (no context,
//! no routing, no tracing, one peer), so `benches/load/run.sh` can show how much of
//! tracegate's cost per request is Pingora's own and how much is tracegate's.
//!
//! It proxies every request on LISTEN to one plain-HTTP backend, reusing upstream connections
//! as Pingora does by default, with THREADS worker threads (default 1).
//!
//! ```text
//! cargo run --release --example floor -- 127.0.0.1:8080 127.0.0.1:9000 [THREADS]
//! ```

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use std::net::SocketAddr;

struct Floor {
    backend: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    /// Every request goes to the one backend, over plain HTTP/1.1.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.backend, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: floor LISTEN BACKEND [THREADS]";
    let listen = args.next().expect(usage);
    let backend: SocketAddr = args.next().expect(usage).parse().expect(usage);
    let threads = args.next().map_or(1, |t| t.parse().expect(usage));
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, Floor { backend });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run(RunArgs::default());
}
