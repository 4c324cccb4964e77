//! The Host header an upstream's backends are sent (`upstreams.<name>.pass_host` and
//! `upstreams.<name>.host`): the client's, the backend's name as written, or a fixed value.

use crate::net::split_host_port;
use http::HeaderValue;
use std::net::SocketAddr;

/// The Host header sent upstream (`upstreams.<name>.pass_host` and `upstreams.<name>.host`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PassHost {
    /// The client's Host, unchanged (`pass_host: true`, the default; Traefik's
    /// `passHostHeader: true`).
    #[default]
    Client,
    /// The chosen backend as written in `backends` (`pass_host: false`, nginx's
    /// `$proxy_host`): each backend's address with its Host value; `:80` is left out.
    Backend(Box<[(SocketAddr, HeaderValue)]>),
    /// A fixed value (`host: api.internal`).
    Fixed(HeaderValue),
}

impl PassHost {
    /// The Host to send to `backend`, or `None` to keep the client's.
    pub fn host_for(&self, backend: SocketAddr) -> Option<&HeaderValue> {
        match self {
            PassHost::Client => None,
            PassHost::Backend(hosts) => hosts.iter().find(|(a, _)| *a == backend).map(|(_, h)| h),
            PassHost::Fixed(h) => Some(h),
        }
    }
}

/// The Host value naming a backend: `written` as in the config (a host name keeps its name,
/// not the address it resolved to), without the port when it is the scheme's default, 80 for
/// `http` and 443 for `https` (`tls`) (RFC 9110 §7.2 allows leaving out a default port).
/// `resolved` is used if `written` is unusable.
pub fn backend_host(written: &str, resolved: SocketAddr, tls: bool) -> HeaderValue {
    let (host, port) = split_host_port(written);
    let port = port.unwrap_or(resolved.port());
    let default_port = if tls { 443 } else { 80 };
    let value = if port == default_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| {
        HeaderValue::from_str(&resolved.to_string()).expect("a socket address is a valid value")
    })
}

/// Checks an explicit upstream Host (`upstreams.<name>.host`): a host name or IP literal with
/// an optional port, as the Host header carries it (RFC 9110 §7.2).
pub fn parse_fixed_host(s: &str) -> Result<HeaderValue, String> {
    let s = s.trim();
    let err = || {
        format!(
            "{s:?} is not a host for the Host header: expected a name or IP with an optional \
             port, e.g. api.internal or api.internal:8080"
        )
    };
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']').ok_or_else(err)?;
        s.split_at(end + 1)
    } else {
        s.split_at(s.find(':').unwrap_or(s.len()))
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|p| p > 0);
    let host_ok = crate::net::is_host(host);
    if !host_ok || !port_ok {
        return Err(err());
    }
    HeaderValue::from_str(s).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_host_table() {
        let a: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        // (written, resolved, TLS, Host, reason)
        let cases = [
            (
                "api.internal:8080",
                a,
                false,
                "api.internal:8080",
                "the name as written, not the address",
            ),
            (
                "api.internal:80",
                a,
                false,
                "api.internal",
                "HTTP's default port is left out",
            ),
            (
                "api.internal:443",
                a,
                true,
                "api.internal",
                "HTTPS's default port is left out",
            ),
            (
                "api.internal:443",
                a,
                false,
                "api.internal:443",
                "443 is not the default of plain HTTP",
            ),
            (
                "api.internal:80",
                a,
                true,
                "api.internal:80",
                "80 is not the default of HTTPS",
            ),
            ("10.0.0.1:8080", a, false, "10.0.0.1:8080", "an address"),
            (
                "[::1]:8080",
                "[::1]:8080".parse().unwrap(),
                false,
                "[::1]:8080",
                "IPv6 keeps its brackets",
            ),
            (
                " api.internal:9000 ",
                a,
                false,
                "api.internal:9000",
                "surrounding spaces trimmed",
            ),
        ];
        for (written, resolved, tls, want, why) in cases {
            assert_eq!(backend_host(written, resolved, tls), want, "{why}");
        }
    }

    #[test]
    fn fixed_host_table() {
        // (input, ok, reason)
        let cases = [
            ("api.internal", true, "a name"),
            ("api.internal:8080", true, "a name and port"),
            ("10.0.0.1", true, "an IPv4 address"),
            ("[2001:db8::1]:443", true, "an IPv6 literal with port"),
            ("", false, "empty"),
            ("api internal", false, "a space"),
            ("api.internal:", false, "an empty port"),
            ("api.internal:http", false, "a port that is not a number"),
            ("a/b", false, "a path"),
            ("[zz]", false, "not an IPv6 literal"),
            ("user@api", false, "userinfo"),
        ];
        for (s, ok, why) in cases {
            assert_eq!(
                parse_fixed_host(s).is_ok(),
                ok,
                "{why}: {:?}",
                parse_fixed_host(s)
            );
        }
    }

    #[test]
    fn pass_host_for_backend() {
        let (a, b): (SocketAddr, SocketAddr) =
            ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        let p = PassHost::Backend(
            vec![
                (a, HeaderValue::from_static("a:1")),
                (b, HeaderValue::from_static("b:2")),
            ]
            .into(),
        );
        assert_eq!(p.host_for(b).unwrap(), "b:2");
        assert!(p.host_for("10.0.0.3:3".parse().unwrap()).is_none());
        assert!(PassHost::Client.host_for(a).is_none());
        assert_eq!(
            PassHost::Fixed(HeaderValue::from_static("api.internal"))
                .host_for(a)
                .unwrap(),
            "api.internal"
        );
    }

    /// Arbitrary config strings never panic the Host checks.
    #[test]
    fn host_checks_never_panic() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet = b"/?#:.[]@%aZ09 -_\xc3\xa9*";
        for _ in 0..20_000 {
            let a = crate::testing::random_text(&mut rng, alphabet, 10);
            let _ = parse_fixed_host(&a);
            let _ = backend_host(&a, "127.0.0.1:1".parse().unwrap(), false);
        }
    }
}
