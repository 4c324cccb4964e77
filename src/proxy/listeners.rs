//! Listeners on Pingora: plain and TLS endpoints, HTTP/2 (ALPN `h2`, h2c), and the plain
//! listeners that redirect to HTTPS.
//!
//! - TLS listeners get a certificate resolver ([`crate::tls::CertResolver`]) instead of fixed
//!   files, so the certificate is picked per handshake by SNI and can be replaced at run time.
//!   Protocol versions are TLS 1.2 and 1.3 (Pingora's rustls settings).
//! - Pingora's h2c switch (`HttpServerOptions::h2c`) belongs to a service, not to a listener.
//!   When some plain listeners accept h2c and others do not, they are served by two services
//!   (each with `server.threads` worker threads); otherwise one service serves every listener.
//!   TLS listeners ignore h2c (HTTP/2 there is negotiated by ALPN).
//! - A redirecting listener answers every request with `308 Permanent Redirect` to the same
//!   host and path on `https://` (308 keeps the method and body, RFC 9110 §15.4.9), except
//!   ACME HTTP-01 challenges (`/.well-known/acme-challenge/…`, RFC 8555 §8.3), which go to the
//!   routes as usual so a certificate can be obtained through the proxy.

use super::TracegateProxy;
use crate::config::{ListenerSpec, RedirectHttps};
use crate::tls::ListenerCertificates;
use bytes::Bytes;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::ALPN;
use pingora::proxy::Session;
use pingora::server::Server;
use std::net::SocketAddr;
use std::sync::Arc;

/// The path prefix of ACME HTTP-01 challenges, which a redirecting listener lets through.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Adds the Pingora services serving `listeners` (bound at `bound`, same order) to `server`.
/// `proxy` makes the proxy of each service (one, or two when h2c differs between plain
/// listeners).
pub fn add_services(
    server: &mut Server,
    listeners: &[ListenerSpec],
    bound: &[SocketAddr],
    certs: &ListenerCertificates,
    mut proxy: impl FnMut() -> TracegateProxy,
) -> Result<(), String> {
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
        let mut service =
            pingora::proxy::http_proxy_service_with_name(&server.configuration, proxy(), name);
        if h2c {
            let mut options = HttpServerOptions::default();
            options.h2c = true;
            if let Some(app) = service.app_logic_mut() {
                app.server_options = Some(options);
            }
        }
        for i in members {
            let addr = bound[i].to_string();
            match certs.resolver(i) {
                None => service.add_tcp(&addr),
                Some(resolver) => {
                    let mut tls = TlsSettings::intermediate("", "")
                        .map_err(|e| format!("TLS listener {addr}: {e}"))?;
                    tls.set_cert_resolver(Arc::clone(resolver) as _);
                    tls.set_alpn(if listeners[i].http2 {
                        ALPN::H2H1
                    } else {
                        ALPN::H1
                    });
                    service.add_tls_with_settings(&addr, None, tls);
                }
            }
        }
        server.add_service(service);
    }
    Ok(())
}

/// The plain listeners that redirect to HTTPS, by bound address, and the port each sends
/// clients to.
#[derive(Debug, Clone, Default)]
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

/// `https://host[:port]/path?query` for a request to `host` (the Host header or `:authority`,
/// with or without a port). `None` when `host` is not a valid host name or IP literal, so a
/// client cannot turn the redirect into a link elsewhere.
pub fn https_location(host: &str, port: u16, path_and_query: &str) -> Option<String> {
    let (name, _) = crate::routing::split_host_port(host);
    let valid = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !valid {
        return None;
    }
    let path = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    Some(if port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{port}{path}")
    })
}

/// The answer for a request that came in on a redirecting listener (and is not an ACME
/// challenge): `308` with the `https://` URL as `Location`, or `400` without a usable Host.
/// `None`: the request goes on to the routes.
pub(super) fn https_redirect(
    redirects: &Redirects,
    session: &Session,
) -> Option<(u16, Bytes, Option<http::HeaderValue>)> {
    let local = session.server_addr().and_then(|a| a.as_inet()).copied()?;
    let port = redirects.port_for(local)?;
    let req = session.req_header();
    if req.uri.path().starts_with(ACME_CHALLENGE_PREFIX) {
        return None;
    }
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = super::apply::request_host(session)
        .and_then(|h| https_location(h, port, pq))
        .and_then(|l| http::HeaderValue::try_from(l).ok());
    Some(match location {
        Some(l) => (
            308,
            Bytes::from_static(b"308 Permanent Redirect\n"),
            Some(l),
        ),
        None => (
            400,
            Bytes::from_static(b"400 Bad Request: no valid Host to redirect to\n"),
            None,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_table() {
        // (host, port, path and query, expected, why)
        let cases: &[(&str, u16, &str, Option<&str>, &str)] = &[
            (
                "example.com",
                443,
                "/a?b=1",
                Some("https://example.com/a?b=1"),
                "443 is left out",
            ),
            (
                "example.com:80",
                443,
                "/",
                Some("https://example.com/"),
                "the plain port goes",
            ),
            (
                "example.com:8080",
                8443,
                "/x",
                Some("https://example.com:8443/x"),
                "another HTTPS port is written",
            ),
            (
                "[::1]:80",
                443,
                "/",
                Some("https://[::1]/"),
                "IPv6 literal keeps its brackets",
            ),
            (
                "127.0.0.1:8080",
                8443,
                "/p",
                Some("https://127.0.0.1:8443/p"),
                "IPv4 literal",
            ),
            (
                "Example.COM",
                443,
                "/",
                Some("https://Example.COM/"),
                "case is kept (hosts compare without case)",
            ),
            ("", 443, "/", None, "empty host"),
            (
                "evil.com/x",
                443,
                "/",
                None,
                "a slash cannot smuggle a path",
            ),
            ("a@b.com", 443, "/", None, "userinfo is refused"),
            ("[nope]:80", 443, "/", None, "brackets around a non-address"),
            (
                "example.com",
                443,
                "*",
                Some("https://example.com/"),
                "asterisk-form becomes /",
            ),
        ];
        for (host, port, pq, want, why) in cases {
            assert_eq!(https_location(host, *port, pq).as_deref(), *want, "{why}");
        }
    }

    #[test]
    fn location_never_panics() {
        let alphabet = b"[]:/.@a-Z9\xff%? ";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let host: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 56)) % alphabet.len() as u64) as usize])
                .collect();
            let host = String::from_utf8_lossy(&host);
            if let Some(l) = https_location(&host, (seed % 65536) as u16, "/p") {
                assert!(l.starts_with("https://") && !l.contains('@'), "{l}");
            }
        }
    }

    #[test]
    fn redirect_ports_by_listener() {
        let spec = |addr: &str, r: Option<RedirectHttps>| ListenerSpec {
            addr: addr.parse().unwrap(),
            tls: None,
            http2: false,
            redirect_https: r,
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
