//! Building the Pingora peer for an upstream attempt: address, timeouts, TLS (server name,
//! verification, CA, client certificate) and the HTTP version to speak.
//!
//! The TLS material is turned into Pingora's types once per config generation
//! ([`PeerTemplate::new`]), not per request. Pingora builds a rustls client configuration per
//! new connection from it; pooled connections are reused without a handshake.
//!
//! HTTP/2 to a backend (`http2: true`): over TLS, ALPN offers `h2` then `http/1.1`, so a backend
//! without HTTP/2 still works over HTTP/1.1; over plain TCP, HTTP/2 with prior knowledge (h2c,
//! RFC 9113 §3.3), so the backend must speak it. A WebSocket (or other `Upgrade`) request
//! always goes over HTTP/1.1, since HTTP/2 has no `Upgrade` (RFC 9113 §8.6).

use crate::tls::UpstreamTls;
use crate::upstream::{UpstreamPool, UpstreamSpec};
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Concurrent requests per HTTP/2 connection to a backend (Pingora's default is 1, one
/// connection per request in flight); 100 is the minimum a server should allow (RFC 9113
/// §6.5.2, SETTINGS_MAX_CONCURRENT_STREAMS).
const UPSTREAM_H2_STREAMS: usize = 100;

/// How the proxy connects to one upstream's backends, prepared once per config generation.
pub struct PeerTemplate {
    tls: Option<PeerTls>,
    http2: bool,
}

struct PeerTls {
    spec: UpstreamTls,
    ca: Option<Arc<CaType>>,
    client: Option<Arc<CertKey>>,
}

impl fmt::Debug for PeerTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTemplate")
            .field("tls", &self.tls.as_ref().map(|t| &t.spec))
            .field("http2", &self.http2)
            .finish()
    }
}

impl PeerTemplate {
    /// The template for a checked upstream (its certificates were parsed at load, so the
    /// conversions here cannot fail).
    pub fn new(spec: &UpstreamSpec) -> Self {
        let tls = spec.tls.as_ref().map(|t| PeerTls {
            spec: t.clone(),
            ca: t.ca.as_ref().map(|ders| {
                let certs: Vec<WrappedX509> = ders
                    .iter()
                    .map(|d| WrappedX509::new(d.clone(), parse_x509))
                    .collect();
                Arc::<CaType>::from(certs)
            }),
            client: t
                .client
                .as_ref()
                .map(|c| Arc::new(CertKey::new(c.chain.clone(), c.key.clone()))),
        });
        PeerTemplate {
            tls,
            http2: spec.http2,
        }
    }

    /// True when attempts go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The peer for one attempt to `backend` of `pool`. `upgrade`: the request asks for a
    /// protocol upgrade (WebSocket), which needs HTTP/1.1.
    pub fn peer(&self, pool: &UpstreamPool, backend: SocketAddr, upgrade: bool) -> Box<HttpPeer> {
        let sni = self
            .tls
            .as_ref()
            .map_or_else(String::new, |t| t.spec.server_name(backend));
        let mut peer = HttpPeer::new(backend, self.tls.is_some(), sni);
        peer.options.connection_timeout = Some(pool.timeouts.connect);
        peer.options.read_timeout = Some(pool.timeouts.read);
        peer.options.write_timeout = Some(pool.timeouts.write);
        if let Some(t) = &self.tls {
            peer.options.verify_cert = t.spec.verify;
            peer.options.verify_hostname = t.spec.verify;
            peer.options.ca = t.ca.clone();
            peer.client_cert_key = t.client.clone();
        }
        if self.http2 && !upgrade {
            peer.options.alpn = if self.tls.is_some() {
                ALPN::H2H1
            } else {
                ALPN::H2
            };
            peer.options.max_h2_streams = UPSTREAM_H2_STREAMS;
        }
        Box::new(peer)
    }
}
