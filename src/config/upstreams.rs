//! Checking `upstreams.*`: backends, timeouts and the pool settings, into [`UpstreamSpec`]s.

use super::file::FileUpstream;
use super::model::{defaults, Ctx, UpstreamSpec};
use super::ConfigError;
use crate::routing::rewrite::{backend_host, parse_fixed_host};
use crate::routing::PassHost;
use crate::upstream::UpstreamTimeouts;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

pub(super) fn check_upstreams(
    c: &Ctx<'_>,
    ups: &std::collections::BTreeMap<String, FileUpstream>,
) -> Result<(Vec<UpstreamSpec>, HashMap<String, usize>), ConfigError> {
    let mut out = Vec::with_capacity(ups.len());
    let mut index = HashMap::new();
    for (name, u) in ups {
        let key = format!("upstreams.{name}");
        if u.backends.is_empty() {
            return Err(c.err(
                format!("{key}.backends"),
                "at least one backend is required",
            ));
        }
        let mut backends = Vec::with_capacity(u.backends.len());
        for (i, b) in u.backends.iter().enumerate() {
            backends
                .push(resolve_backend(b).map_err(|r| c.err(format!("{key}.backends[{i}]"), r))?);
        }
        let timeouts = UpstreamTimeouts {
            connect: c.duration(
                &format!("{key}.connect_timeout"),
                &u.connect_timeout,
                defaults::CONNECT_TIMEOUT,
            )?,
            read: c.duration(
                &format!("{key}.read_timeout"),
                &u.read_timeout,
                defaults::READ_TIMEOUT,
            )?,
            write: c.duration(
                &format!("{key}.write_timeout"),
                &u.write_timeout,
                defaults::WRITE_TIMEOUT,
            )?,
        };
        for (k, d) in [
            ("connect_timeout", timeouts.connect),
            ("read_timeout", timeouts.read),
            ("write_timeout", timeouts.write),
        ] {
            if d.is_zero() {
                return Err(c.err(format!("{key}.{k}"), "must be greater than zero"));
            }
        }
        let tls = super::upstream_tls::check_tls(c, &key, u, &backends)?;
        let pass_host = pass_host(c, &key, u, &backends)?;
        index.insert(name.clone(), out.len());
        out.push(UpstreamSpec {
            name: name.clone(),
            backends,
            timeouts,
            tls,
            http2: u.http2.unwrap_or(defaults::UPSTREAM_HTTP2),
            pass_host,
        });
    }
    Ok((out, index))
}

/// `pass_host` and `host`: the Host header the backends receive.
fn pass_host(
    c: &Ctx<'_>,
    key: &str,
    u: &FileUpstream,
    backends: &[SocketAddr],
) -> Result<PassHost, ConfigError> {
    match (&u.host, u.pass_host.unwrap_or(defaults::PASS_HOST)) {
        (Some(_), true) if u.pass_host == Some(true) => Err(c.err(
            format!("{key}.host"),
            "host replaces the client's Host, which pass_host: true keeps; set one of them",
        )),
        (Some(h), _) => Ok(PassHost::Fixed(
            parse_fixed_host(h).map_err(|r| c.err(format!("{key}.host"), r))?,
        )),
        (None, true) => Ok(PassHost::Client),
        (None, false) => Ok(PassHost::Backend(
            u.backends
                .iter()
                .zip(backends)
                .map(|(written, resolved)| (*resolved, backend_host(written, *resolved)))
                .collect(),
        )),
    }
}

/// A backend is `host:port`; a host name is resolved once, at load time (as nginx does
/// without a `resolver`), and the first address is used.
fn resolve_backend(b: &str) -> Result<SocketAddr, String> {
    let b = b.trim();
    if let Ok(a) = b.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!("invalid backend {b:?}: port 0"));
        }
        return Ok(a);
    }
    let (host, port) = crate::routing::split_host_port(b);
    if port.is_none() || host.is_empty() {
        return Err(format!(
            "invalid backend {b:?}: expected host:port, e.g. 10.0.0.1:8080"
        ));
    }
    b.to_socket_addrs()
        .map_err(|e| format!("cannot resolve backend {b:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve backend {b:?}: no address"))
}
