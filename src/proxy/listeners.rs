//! Listeners on Pingora: plain and TLS endpoints and HTTP/2 (ALPN `h2`, h2c).
//!
//! - TLS listeners get a certificate resolver ([`crate::listeners::CertResolver`]) instead of fixed
//!   files, so the certificate is picked per handshake by SNI and can be replaced at run time.
//!   Protocol versions are TLS 1.2 and 1.3 (Pingora's rustls settings).
//! - Pingora's h2c switch (`HttpServerOptions::h2c`) belongs to a service, not to a listener.
//!   When some plain listeners accept h2c and others do not, they are served by two services
//!   (each with `server.threads` worker threads); otherwise one service serves every listener.
//!   TLS listeners ignore h2c (HTTP/2 there is negotiated by ALPN).
//! - Every service sets its HTTP/2 limits explicitly (`h2_limits`: streams, header list,
//!   windows, rapid reset) and closes an HTTP/2 connection idle for 60 s.
//! - A redirecting listener answers every request with `308 Permanent Redirect` to the same
//!   host and path on `https://`, except ACME HTTP-01 challenges: an entry filter of the
//!   proxy ([`crate::routing::filter::HttpsRedirect`]).

use super::connection::{EdgeApp, Gate, Gates};
use super::TracegateProxy;
use crate::listeners::{HttpLimits, ListenerCertificates, ListenerSpec};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::http::v2::server::H2Options;
use pingora::protocols::ALPN;
use pingora::server::Server;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The limits of every downstream HTTP/2 connection (README, "Limits"), set explicitly rather
/// than left to the defaults of Pingora and `h2`, which may change:
/// - 100 concurrent streams (Pingora's and Envoy's edge value; nginx has 128);
/// - a 64 KiB header list, decoded size (as Pingora's default; RFC 9113 §6.5.2): larger
///   gets `431`, four times that ends the connection. `h2` also ends a header block spread
///   over more CONTINUATION frames than this size needs, at least 5 (CVE-2024-27316), and
///   keeps the HPACK table at 4 KiB (RFC 7541 §4.2);
/// - windows of 64 KiB per stream and 1 MiB per connection for request bodies (Envoy's edge
///   values), frames of 16 KiB (RFC 9113 §6.5.2 defaults);
/// - rapid reset (CVE-2023-44487): GOAWAY `ENHANCE_YOUR_CALM` once 20 streams the client
///   reset wait to be accepted, or once the client's protocol errors made the proxy reset
///   256 streams.
fn h2_limits() -> H2Options {
    let mut o = H2Options::new();
    o.max_concurrent_streams(100)
        .max_header_list_size(64 * 1024)
        .header_table_size(4096)
        .initial_window_size(64 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_frame_size(16 * 1024)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(Some(256));
    o
}

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
        let mut options = HttpServerOptions::default();
        options.h2c = h2c;
        options.h2_idle_timeout = Some(limits.keepalive_timeout.max(Duration::from_secs(1)));
        http.server_options = Some(options);
        http.h2_options = Some(h2_limits());
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
