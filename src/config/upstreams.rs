//! Checking `upstreams.*`: backends and weights, timeouts, `lb`/`hash_on`, health checks,
//! passive ejection and retries, into [`UpstreamSpec`]s.

use super::check::{Ctx, DAY, HOUR, MS};
use super::defaults;
use super::file::{FileBackend, FileHashOn, FileHealthCheck, FileUpstream};
use super::ConfigError;
use crate::upstream::settings::parse_status_item;
use crate::upstream::{backend_host, parse_fixed_host, PassHost, UpstreamSpec};
use crate::upstream::{
    Balance, HashOn, HealthCheck, PassiveHealth, Probe, StatusRanges, UpstreamTimeouts,
};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The largest `max_fails`, `healthy_threshold` and `unhealthy_threshold`: failures or probes
/// in a row, so a bound far above any useful value.
const MAX_COUNT: u32 = 1000;
/// With `lb: hash`, the most the weights of an upstream may add up to: 160 ring points per
/// unit, so at most 16 million points (128 MiB).
const MAX_HASH_WEIGHT: u64 = 100_000;

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
        let (backends, weights) = check_backends(c, &key, &u.backends)?;
        let timeouts = UpstreamTimeouts {
            connect: c.duration_in(
                &format!("{key}.connect_timeout"),
                &u.connect_timeout,
                defaults::CONNECT_TIMEOUT,
                MS..=HOUR,
            )?,
            read: c.duration_in(
                &format!("{key}.read_timeout"),
                &u.read_timeout,
                defaults::READ_TIMEOUT,
                MS..=DAY,
            )?,
            write: c.duration_in(
                &format!("{key}.write_timeout"),
                &u.write_timeout,
                defaults::WRITE_TIMEOUT,
                MS..=DAY,
            )?,
            total: match &u.timeout {
                None => None,
                Some(_) => Some(c.duration_in(
                    &format!("{key}.timeout"),
                    &u.timeout,
                    Duration::ZERO,
                    MS..=DAY,
                )?),
            },
        };
        let tls = super::upstream_tls::check_tls(c, &key, u, &backends)?;
        let pass_host = pass_host(c, &key, u, &backends, tls.is_some())?;
        let balance = check_balance(c, &key, u)?;
        if matches!(balance, Balance::Hash(_)) {
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            if total > MAX_HASH_WEIGHT {
                return Err(c.err(
                    format!("{key}.backends"),
                    format!(
                        "the weights add up to {total}: at most {MAX_HASH_WEIGHT} with lb: hash \
                         (each unit of weight is 160 points on the hash ring)"
                    ),
                ));
            }
        }
        let health_check = match &u.health_check {
            None => None,
            Some(h) => Some(check_health(c, &format!("{key}.health_check"), h)?),
        };
        if tls.is_some()
            && health_check
                .as_ref()
                .is_some_and(|h| matches!(h.probe, Probe::Http { .. }))
        {
            // A plain-text probe of a TLS backend would fail every time and take every
            // backend out; say so at load rather than at the first probe.
            return Err(c.err(
                format!("{key}.health_check.type"),
                "http health checks are sent without TLS and this upstream has tls: use \
                 type: tcp (probes over TLS are not supported yet)",
            ));
        }
        let passive = PassiveHealth {
            max_fails: c.count_in(
                &format!("{key}.max_fails"),
                u.max_fails,
                defaults::MAX_FAILS,
                0..=MAX_COUNT,
            )?,
            fail_timeout: c.duration_in(
                &format!("{key}.fail_timeout"),
                &u.fail_timeout,
                defaults::FAIL_TIMEOUT,
                Duration::ZERO..=DAY,
            )?,
        };
        if passive.fail_timeout.is_zero() && passive.max_fails > 0 {
            return Err(c.err(
                format!("{key}.fail_timeout"),
                "must be greater than zero (set max_fails: 0 to turn passive ejection off)",
            ));
        }
        if let Some(r) = u.retries {
            if r > defaults::MAX_RETRIES {
                return Err(c.err(
                    format!("{key}.retries"),
                    format!(
                        "{r} is too many: at most {} (16 attempts per request)",
                        defaults::MAX_RETRIES
                    ),
                ));
            }
        }
        index.insert(name.clone(), out.len());
        out.push(UpstreamSpec {
            name: name.clone(),
            backends,
            timeouts,
            tls,
            http2: u.http2.unwrap_or(defaults::UPSTREAM_HTTP2),
            pass_host,
            weights,
            balance,
            health_check,
            passive,
            retries: u.retries,
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
    tls: bool,
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
                .map(|(written, resolved)| (*resolved, backend_host(&written.addr, *resolved, tls)))
                .collect(),
        )),
    }
}

fn check_backends(
    c: &Ctx<'_>,
    key: &str,
    list: &[FileBackend],
) -> Result<(Vec<SocketAddr>, Vec<u32>), ConfigError> {
    let mut backends: Vec<SocketAddr> = Vec::with_capacity(list.len());
    let mut weights = Vec::with_capacity(list.len());
    // Where each address was first listed: one look-up per backend, not a scan of the list.
    let mut seen: HashMap<SocketAddr, usize> = HashMap::with_capacity(list.len());
    for (i, b) in list.iter().enumerate() {
        let addr =
            resolve_backend(&b.addr).map_err(|r| c.err(format!("{key}.backends[{i}]"), r))?;
        if let Some(j) = seen.insert(addr, i) {
            return Err(c.err(
                format!("{key}.backends[{i}]"),
                format!(
                    "{addr} is already backends[{j}]; list a backend once and give it a weight"
                ),
            ));
        }
        let weight = b.weight.unwrap_or(defaults::WEIGHT);
        if !(1..=defaults::MAX_WEIGHT).contains(&weight) {
            return Err(c.err(
                format!("{key}.backends[{i}].weight"),
                format!(
                    "{weight} is not a weight from 1 to {}; to drain a backend, remove it and reload",
                    defaults::MAX_WEIGHT
                ),
            ));
        }
        backends.push(addr);
        weights.push(weight);
    }
    Ok((backends, weights))
}

fn check_balance(c: &Ctx<'_>, key: &str, u: &FileUpstream) -> Result<Balance, ConfigError> {
    let lb = u.lb.as_deref().unwrap_or(defaults::LB).trim();
    let balance = match lb {
        "round_robin" => Balance::RoundRobin,
        "least_conn" => Balance::LeastConn,
        "p2c" => Balance::PowerOfTwo,
        "hash" => {
            let Some(h) = &u.hash_on else {
                return Err(c.err(
                    format!("{key}.hash_on"),
                    "lb: hash needs hash_on: client_ip, { header: NAME } or { cookie: NAME }",
                ));
            };
            Balance::Hash(check_hash_on(c, &format!("{key}.hash_on"), h)?)
        }
        other => {
            return Err(c.err(
                format!("{key}.lb"),
                format!("unknown lb {other:?}: expected round_robin, least_conn, p2c or hash"),
            ))
        }
    };
    if u.hash_on.is_some() && !matches!(balance, Balance::Hash(_)) {
        return Err(c.err(
            format!("{key}.hash_on"),
            format!("only applies with lb: hash (this upstream has lb: {lb})"),
        ));
    }
    Ok(balance)
}

fn check_hash_on(c: &Ctx<'_>, key: &str, h: &FileHashOn) -> Result<HashOn, ConfigError> {
    let usage = "expected client_ip, { header: NAME } or { cookie: NAME }";
    match h {
        FileHashOn::Word(w) if w.trim() == "client_ip" => Ok(HashOn::ClientIp),
        FileHashOn::Word(w) => Err(c.err(key, format!("unknown {w:?}: {usage}"))),
        FileHashOn::Keys {
            header: Some(name),
            cookie: None,
        } => {
            let lower = name.trim().to_ascii_lowercase();
            http::HeaderName::from_bytes(lower.as_bytes())
                .map(HashOn::Header)
                .map_err(|_| {
                    c.err(
                        format!("{key}.header"),
                        format!("{name:?} is not a valid header name"),
                    )
                })
        }
        FileHashOn::Keys {
            header: None,
            cookie: Some(name),
        } => {
            let n = name.trim();
            // RFC 6265 §4.1.1: a cookie name is an RFC 9110 token.
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if n.is_empty() || !n.bytes().all(token) {
                return Err(c.err(
                    format!("{key}.cookie"),
                    format!("{name:?} is not a valid cookie name"),
                ));
            }
            Ok(HashOn::Cookie(n.to_owned()))
        }
        FileHashOn::Keys { .. } => {
            Err(c.err(key, format!("set exactly one of header or cookie: {usage}")))
        }
    }
}

fn check_health(c: &Ctx<'_>, key: &str, h: &FileHealthCheck) -> Result<HealthCheck, ConfigError> {
    let kind = h
        .kind
        .as_deref()
        .unwrap_or(defaults::HEALTH_CHECK_TYPE)
        .trim();
    let probe = match kind {
        "http" => {
            let path = h
                .path
                .as_deref()
                .unwrap_or(defaults::HEALTH_CHECK_PATH)
                .trim();
            if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
                return Err(c.err(
                    format!("{key}.path"),
                    format!("{path:?} is not a request path such as /healthz"),
                ));
            }
            let host = match &h.host {
                None => None,
                Some(v) => {
                    let v = v.trim();
                    if v.is_empty() || http::HeaderValue::from_str(v).is_err() || v.contains(' ') {
                        return Err(
                            c.err(format!("{key}.host"), format!("{v:?} is not a host name"))
                        );
                    }
                    Some(v.to_owned())
                }
            };
            let status = match &h.status {
                None => vec![defaults::HEALTH_CHECK_STATUS],
                Some(list) if list.0.is_empty() => {
                    return Err(c.err(format!("{key}.status"), "at least one status is required"))
                }
                Some(list) => list
                    .0
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        parse_status_item(s).map_err(|r| c.err(format!("{key}.status[{i}]"), r))
                    })
                    .collect::<Result<_, _>>()?,
            };
            Probe::Http {
                path: path.to_owned(),
                host,
                status: StatusRanges::new(status),
            }
        }
        "tcp" => {
            for (k, set) in [
                ("path", h.path.is_some()),
                ("host", h.host.is_some()),
                ("status", h.status.is_some()),
            ] {
                if set {
                    return Err(c.err(format!("{key}.{k}"), "only applies to type: http"));
                }
            }
            Probe::Tcp
        }
        other => {
            return Err(c.err(
                format!("{key}.type"),
                format!("unknown type {other:?}: expected http or tcp"),
            ))
        }
    };
    let interval = c.duration_in(
        &format!("{key}.interval"),
        &h.interval,
        defaults::HEALTH_CHECK_INTERVAL,
        MS..=DAY,
    )?;
    let timeout = c.duration_in(
        &format!("{key}.timeout"),
        &h.timeout,
        defaults::HEALTH_CHECK_TIMEOUT,
        MS..=HOUR,
    )?;
    let healthy_threshold = c.count_in(
        &format!("{key}.healthy_threshold"),
        h.healthy_threshold,
        defaults::HEALTHY_THRESHOLD,
        1..=MAX_COUNT,
    )?;
    let unhealthy_threshold = c.count_in(
        &format!("{key}.unhealthy_threshold"),
        h.unhealthy_threshold,
        defaults::UNHEALTHY_THRESHOLD,
        1..=MAX_COUNT,
    )?;
    Ok(HealthCheck {
        probe,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
    })
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
    let (host, port) = crate::net::split_host_port(b);
    if port.is_none() || host.is_empty() {
        return Err(format!(
            "invalid backend {b:?}: expected host:port, e.g. 10.0.0.1:8080"
        ));
    }
    if host.bytes().all(|c| c.is_ascii_digit() || c == b'.') || host.starts_with('[') {
        // Not an IP address (that parsed above), and no host name either: refused here rather
        // than handed to the resolver.
        return Err(format!(
            "invalid backend {b:?}: {host} is not an IP address; expected host:port, e.g. \
             10.0.0.1:8080"
        ));
    }
    b.to_socket_addrs()
        .map_err(|e| format!("cannot resolve backend {b:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve backend {b:?}: no address"))
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::upstream::{Balance, HashOn, Probe, UpstreamSpec};
    use std::collections::HashMap;
    use std::time::Duration;

    fn load(upstream: &str) -> Result<UpstreamSpec, crate::config::ConfigError> {
        let yaml = format!("listen: [\"127.0.0.1:1\"]\nupstreams:\n  app: {upstream}\n");
        let env: HashMap<&str, &str> = HashMap::new();
        load_str(&yaml, "t.yaml", &env).map(|c| c.upstreams[0].clone())
    }

    #[test]
    fn defaults_and_accepted_forms() {
        let u =
            load(r#"{ backends: ["127.0.0.1:1", { addr: "127.0.0.1:2", weight: 3 }] }"#).unwrap();
        assert_eq!(u.weights, [1, 3], "a plain string is weight 1");
        assert_eq!(u.balance, Balance::RoundRobin);
        assert_eq!(u.passive.max_fails, 1);
        assert_eq!(u.passive.fail_timeout, Duration::from_secs(10));
        assert_eq!(u.retries, None);
        assert_eq!(u.timeouts.total, None);
        assert!(u.health_check.is_none());

        let u = load(r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: { header: X-User } }"#)
            .unwrap();
        assert_eq!(
            u.balance,
            Balance::Hash(HashOn::Header(http::HeaderName::from_static("x-user")))
        );
        let u = load(r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: { cookie: session } }"#)
            .unwrap();
        assert_eq!(u.balance, Balance::Hash(HashOn::Cookie("session".into())));
        let u = load(r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: client_ip }"#).unwrap();
        assert_eq!(u.balance, Balance::Hash(HashOn::ClientIp));

        let u = load(
            r#"{ backends: ["127.0.0.1:1"], health_check: { path: /healthz, interval: 1s } }"#,
        )
        .unwrap();
        let h = u.health_check.unwrap();
        assert_eq!(h.interval, Duration::from_secs(1));
        assert_eq!(h.timeout, Duration::from_secs(2));
        assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (1, 1));
        match h.probe {
            Probe::Http { path, host, status } => {
                assert_eq!(path, "/healthz");
                assert_eq!(host, None);
                assert!(status.contains(200) && status.contains(399) && !status.contains(400));
            }
            Probe::Tcp => panic!("http is the default"),
        }
        let u = load(r#"{ backends: ["127.0.0.1:1"], health_check: { status: [204, "5xx"] } }"#)
            .unwrap();
        match u.health_check.unwrap().probe {
            Probe::Http { status, .. } => assert_eq!(status.ranges(), [(204, 204), (500, 599)]),
            Probe::Tcp => unreachable!(),
        }
        let u = load(r#"{ backends: ["127.0.0.1:1"], health_check: { status: 204 } }"#).unwrap();
        assert!(
            matches!(u.health_check.unwrap().probe, Probe::Http { status, .. } if status.ranges() == [(204, 204)])
        );
        let u = load(r#"{ backends: ["127.0.0.1:1"], health_check: { type: tcp }, retries: 2, timeout: 3s, max_fails: 0 }"#).unwrap();
        assert_eq!(u.health_check.unwrap().probe, Probe::Tcp);
        assert_eq!(u.retries, Some(2));
        assert_eq!(u.timeouts.total, Some(Duration::from_secs(3)));
        assert_eq!(u.passive.max_fails, 0);
    }

    #[test]
    fn refused_table() {
        // (upstream YAML, key, words in the reason, why)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                r#"{ backends: [{ addr: "127.0.0.1:1", weight: 0 }] }"#,
                "upstreams.app.backends[0].weight",
                "remove it and reload",
                "weight 0 is refused",
            ),
            (
                r#"{ backends: [{ addr: "127.0.0.1:1", weight: 257 }] }"#,
                "upstreams.app.backends[0].weight",
                "from 1 to 256",
                "weight too large",
            ),
            (
                r#"{ backends: [{ addr: "127.0.0.1:1", wieght: 2 }] }"#,
                "upstreams.app.backends[0].wieght",
                "unknown field `wieght`",
                "typo in a backend's key",
            ),
            (
                r#"{ backends: [{ weight: 2 }] }"#,
                "upstreams.app.backends[0]",
                "missing field `addr`",
                "weight without an address",
            ),
            (
                r#"{ backends: ["127.0.0.1:1", "127.0.0.1:1"] }"#,
                "upstreams.app.backends[1]",
                "already backends[0]",
                "the same backend twice",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], lb: random }"#,
                "upstreams.app.lb",
                "expected round_robin, least_conn, p2c or hash",
                "unknown lb",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], lb: hash }"#,
                "upstreams.app.hash_on",
                "lb: hash needs hash_on",
                "hash without a key",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], hash_on: client_ip }"#,
                "upstreams.app.hash_on",
                "only applies with lb: hash",
                "hash_on without lb: hash",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: { header: a, cookie: b } }"#,
                "upstreams.app.hash_on",
                "exactly one",
                "two keys",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: { header: "x user" } }"#,
                "upstreams.app.hash_on.header",
                "not a valid header name",
                "bad header name",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: { cookie: "a;b" } }"#,
                "upstreams.app.hash_on.cookie",
                "not a valid cookie name",
                "bad cookie name",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: remote_addr }"#,
                "upstreams.app.hash_on",
                "unknown \"remote_addr\"",
                "unknown word",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], lb: hash, hash_on: { query: a } }"#,
                "upstreams.app.hash_on.query",
                "unknown field `query`",
                "unknown map key",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { interval: 0s } }"#,
                "upstreams.app.health_check.interval",
                "greater than zero",
                "zero interval",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { timeout: 1 } }"#,
                "upstreams.app.health_check.timeout",
                "",
                "duration without a unit",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { path: healthz } }"#,
                "upstreams.app.health_check.path",
                "not a request path",
                "path without /",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { status: [200, "7xx"] } }"#,
                "upstreams.app.health_check.status[1]",
                "invalid status",
                "bad status class",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { status: [] } }"#,
                "upstreams.app.health_check.status",
                "at least one",
                "empty status list",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { type: tcp, path: /x } }"#,
                "upstreams.app.health_check.path",
                "only applies to type: http",
                "tcp with a path",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { type: grpc } }"#,
                "upstreams.app.health_check.type",
                "expected http or tcp",
                "unknown type",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { unhealthy_threshold: 0 } }"#,
                "upstreams.app.health_check.unhealthy_threshold",
                "at least 1",
                "zero threshold",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { host: "a b" } }"#,
                "upstreams.app.health_check.host",
                "not a host name",
                "bad host",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], health_check: { rise: 2 } }"#,
                "upstreams.app.health_check.rise",
                "unknown field `rise`",
                "unknown health check key",
            ),
            (
                r#"{ backends: ["10.0.0.256:80"] }"#,
                "upstreams.app.backends[0]",
                "10.0.0.256 is not an IP address",
                "a bad dotted quad is refused without asking the resolver",
            ),
            (
                r#"{ backends: ["[::g]:80"] }"#,
                "upstreams.app.backends[0]",
                "[::g] is not an IP address",
                "a bad bracketed IPv6 address",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], retries: 16 }"#,
                "upstreams.app.retries",
                "at most 15",
                "too many retries",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], retries: -1 }"#,
                "upstreams.app.retries",
                "",
                "negative retries",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], max_fails: -1 }"#,
                "upstreams.app.max_fails",
                "",
                "negative max_fails",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], fail_timeout: 0s }"#,
                "upstreams.app.fail_timeout",
                "max_fails: 0",
                "zero fail_timeout",
            ),
            (
                r#"{ backends: ["127.0.0.1:1"], timeout: 0s }"#,
                "upstreams.app.timeout",
                "greater than zero",
                "zero total timeout",
            ),
        ];
        for (upstream, key, reason, why) in cases {
            let e = load(upstream).expect_err(why);
            assert_eq!(e.key, *key, "{why}: {e}");
            assert!(e.reason.contains(reason), "{why}: {e}");
        }
    }
}
