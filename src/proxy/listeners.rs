//! Listeners on Pingora: plain and TLS endpoints and HTTP/2 (ALPN `h2`, h2c).
//!
//! - TLS listeners get a certificate resolver ([`crate::listeners::CertResolver`]) instead of fixed
//!   files, so the certificate is picked per handshake by SNI and can be replaced at run time.
//!   Protocol versions are TLS 1.2 and 1.3 (Pingora's rustls settings).
//! - Pingora's h2c switch (`HttpServerOptions::h2c`) belongs to a service, not to a listener.
//!   When some plain listeners accept h2c and others do not, they are served by two services
//!   (each with `server.threads` worker threads); otherwise one service serves every listener.
//!   TLS listeners ignore h2c (HTTP/2 there is negotiated by ALPN).
//! - A redirecting listener answers every request with `308 Permanent Redirect` to the same
//!   host and path on `https://`, except ACME HTTP-01 challenges: an entry filter of the
//!   proxy ([`crate::routing::filter::HttpsRedirect`]).

use super::connection::{EdgeApp, Gate, Gates};
use super::TracegateProxy;
use crate::listeners::{HttpLimits, ListenerCertificates, ListenerSpec};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::ALPN;
use pingora::server::Server;
use std::net::SocketAddr;
use std::sync::Arc;

/// Adds the Pingora services serving `listeners` (bound at `bound`, same order) to `server`.
/// `proxy` makes the proxy of each service (one, or two when h2c differs between plain
/// listeners). Every service serves its connections through the connection layer
/// ([`EdgeApp`]) with `limits`, and shares the connection limits of `gates`.
pub fn add_services(
    server: &mut Server,
    listeners: &[ListenerSpec],
    bound: &[SocketAddr],
    certs: &ListenerCertificates,
    limits: &HttpLimits,
    gates: &Gates,
    mut proxy: impl FnMut() -> TracegateProxy,
) -> Result<(), String> {
    let mut gates = gates.clone();
    gates.listeners.extend(
        listeners
            .iter()
            .zip(bound)
            .filter_map(|(l, b)| Some((*b, Gate::new(l.max_connections?)))),
    );
    let plain = |l: &ListenerSpec| l.tls.is_none();
    let h2c_plain = listeners.iter().any(|l| plain(l) && l.http2);
    let h1_plain = listeners.iter().any(|l| plain(l) && !l.http2);
    // Which service each listener goes to: `true` = the h2c one.
    let in_h2c = |l: &ListenerSpec| match (plain(l), h1_plain) {
        (true, _) => l.http2,
        // TLS listeners join the h2c service only when it is the only one.
        (false, has_h1) => h2c_plain && !has_h1,
    };
    for (h2c, name) in [(false, "tracegate"), (true, "tracegate-h2c")] {
        let members: Vec<usize> = (0..listeners.len())
            .filter(|&i| in_h2c(&listeners[i]) == h2c)
            .collect();
        if members.is_empty() {
            continue;
        }
        let mut http = pingora::proxy::http_proxy(&server.configuration, proxy());
        if h2c {
            let mut options = HttpServerOptions::default();
            options.h2c = true;
            http.server_options = Some(options);
        }
        let mut service = pingora::services::listening::Service::new(
            name.to_string(),
            EdgeApp::new(http, limits.clone(), gates.clone()),
        );
        for i in members {
            let addr = bound[i].to_string();
            // No L4 read buffer: the connection layer and Pingora's session read into their
            // own buffers, and Pingora's default 64 KiB buffer would be held by every idle
            // connection.
            let endpoint =
                ListenerConfig::tcp(addr.as_str()).l4_buffer(L4BufferSettings::default().read(0));
            match certs.resolver(i) {
                None => service.add_listener(endpoint),
                Some(resolver) => {
                    let mut tls = TlsSettings::intermediate("", "")
                        .map_err(|e| format!("TLS listener {addr}: {e}"))?;
                    tls.set_cert_resolver(Arc::clone(resolver) as _);
                    tls.set_alpn(if listeners[i].http2 {
                        ALPN::H2H1
                    } else {
                        ALPN::H1
                    });
                    service.add_listener(endpoint.tls(tls));
                }
            }
        }
        server.add_service(service);
    }
    Ok(())
}
