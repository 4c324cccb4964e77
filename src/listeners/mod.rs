//! The listeners: where the proxy accepts connections and how (plain or TLS, HTTP/2, a redirect
//! to HTTPS), and the certificates of the TLS listeners ([`certs`]).
//!
//! Plain Rust: the config loader builds the [`ListenerSpec`]s (reading and checking the
//! certificate files), the server assembly binds them, and the Pingora services in
//! [`crate::proxy`] serve them.

pub mod certs;
pub mod limits;

pub use certs::{CertFile, CertResolver, CertStore, ListenerCertificates, LoadedCert};
pub use limits::HttpLimits;

use std::net::SocketAddr;
use std::sync::Arc;

/// One checked listener.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// The address to bind; port 0 asks the OS for a free port.
    pub addr: SocketAddr,
    /// TLS termination, when configured.
    pub tls: Option<ListenerTls>,
    /// HTTP/2: offered by ALPN on a TLS listener, accepted with prior knowledge (h2c) on a
    /// plain one.
    pub http2: bool,
    /// Answer every request (except ACME HTTP-01 challenges) with a redirect to HTTPS.
    pub redirect_https: Option<RedirectHttps>,
    /// Client connections this listener serves at once (`None`: only the process limit).
    pub max_connections: Option<usize>,
}

/// The certificates of a TLS listener.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub store: Arc<CertStore>,
}

/// Where `redirect_https` sends clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectHttps {
    /// The port of this TLS listener (by position in `listen`), known once it is bound.
    Listener(usize),
    /// This port.
    Port(u16),
}

/// The plain listeners that redirect to HTTPS, by bound address, and the port each sends
/// clients to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirects {
    entries: Vec<(SocketAddr, u16)>,
}

impl Redirects {
    /// The redirecting listeners of `listeners` (bound at `bound`, same order); `None` when no
    /// listener redirects, so requests pay nothing for the feature.
    pub fn new(listeners: &[ListenerSpec], bound: &[SocketAddr]) -> Option<Redirects> {
        let entries: Vec<(SocketAddr, u16)> = listeners
            .iter()
            .zip(bound)
            .filter_map(|(l, b)| {
                let port = match l.redirect_https? {
                    RedirectHttps::Port(p) => p,
                    RedirectHttps::Listener(i) => bound.get(i)?.port(),
                };
                Some((*b, port))
            })
            .collect();
        (!entries.is_empty()).then_some(Redirects { entries })
    }

    /// The HTTPS port for a request that arrived at `local`, if its listener redirects. A
    /// listener on a wildcard address (`0.0.0.0`, `[::]`) matches by port.
    pub fn port_for(&self, local: SocketAddr) -> Option<u16> {
        self.entries
            .iter()
            .find(|(b, _)| {
                b.port() == local.port() && (b.ip().is_unspecified() || b.ip() == local.ip())
            })
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_ports_by_listener() {
        let spec = |addr: &str, r: Option<RedirectHttps>| ListenerSpec {
            addr: addr.parse().unwrap(),
            tls: None,
            http2: false,
            redirect_https: r,
            max_connections: None,
        };
        let listeners = [
            spec("0.0.0.0:0", Some(RedirectHttps::Listener(2))),
            spec("127.0.0.1:0", None),
            spec("127.0.0.1:0", None),
            spec("127.0.0.2:81", Some(RedirectHttps::Port(443))),
        ];
        let bound: Vec<SocketAddr> = [
            "0.0.0.0:8080",
            "127.0.0.1:8081",
            "127.0.0.1:8443",
            "127.0.0.2:81",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let r = Redirects::new(&listeners, &bound).unwrap();
        // (local address, expected port, why)
        let cases: &[(&str, Option<u16>, &str)] = &[
            (
                "127.0.0.1:8080",
                Some(8443),
                "wildcard listener, port of the TLS listener",
            ),
            (
                "[::ffff:127.0.0.1]:8080",
                Some(8443),
                "wildcard matches any local IP",
            ),
            ("127.0.0.1:8081", None, "a listener that does not redirect"),
            ("127.0.0.2:81", Some(443), "a specific address"),
            ("127.0.0.3:81", None, "same port, other address"),
        ];
        for (local, want, why) in cases {
            assert_eq!(r.port_for(local.parse().unwrap()), *want, "{why}");
        }
        assert!(Redirects::new(&listeners[1..3], &bound[1..3]).is_none());
    }
}
