//! The checked settings of one pool ([`UpstreamSpec`]): its backends, how a backend is chosen
//! (`lb`, `hash_on`), how its health is watched (`health_check`, `max_fails`/`fail_timeout`),
//! the request's budget (`retries`, the timeouts) and how backends are reached (TLS, HTTP/2,
//! the Host). The config loader builds these; the pool and the proxy read them.

use super::PassHost;
use crate::tls::UpstreamTls;
use std::net::SocketAddr;
use std::time::Duration;

/// One checked upstream pool.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    pub name: String,
    pub backends: Vec<SocketAddr>,
    pub timeouts: UpstreamTimeouts,
    /// TLS to the backends, when configured.
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 to the backends (ALPN over TLS, prior knowledge over plain TCP).
    pub http2: bool,
    /// The Host header sent to the backends (`pass_host`, `host`).
    pub pass_host: PassHost,
    /// The weight of each backend, in the order of `backends` (1 to 256, the config's limit).
    pub weights: Vec<u32>,
    /// `lb` and `hash_on`.
    pub balance: Balance,
    pub health_check: Option<HealthCheck>,
    /// `max_fails` and `fail_timeout`.
    pub passive: PassiveHealth,
    /// More attempts after the first; `None`: each backend once (`backends.len() - 1`).
    pub retries: Option<u32>,
}

#[cfg(test)]
impl UpstreamSpec {
    /// A pool of `backends` with weight 1, round robin, 1 s timeouts, no TLS, no health
    /// check, nginx's passive-health defaults: the settings tests start from.
    pub(crate) fn for_test(name: &str, backends: Vec<SocketAddr>) -> UpstreamSpec {
        UpstreamSpec {
            name: name.into(),
            weights: vec![1; backends.len()],
            backends,
            timeouts: UpstreamTimeouts {
                connect: Duration::from_secs(1),
                read: Duration::from_secs(1),
                write: Duration::from_secs(1),
                total: None,
            },
            tls: None,
            http2: false,
            pass_host: PassHost::default(),
            balance: Balance::RoundRobin,
            health_check: None,
            passive: PassiveHealth {
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
            },
            retries: None,
        }
    }
}

/// Timeouts for talking to one pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamTimeouts {
    /// TCP connect (a timeout answers 504).
    pub connect: Duration,
    /// Waiting for each read from the backend, including the response header (504).
    pub read: Duration,
    /// Waiting for each write to the backend (504).
    pub write: Duration,
    /// The whole upstream part of a request, every attempt included, until the response head
    /// arrives (`timeout`, 504). `None`: no limit beyond the per-operation ones.
    pub total: Option<Duration>,
}

/// How a pool picks the backend for an attempt (`lb`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's): weights 3:1 give `a a b a`.
    #[default]
    RoundRobin,
    /// Fewest in-flight requests relative to the weight (nginx `least_conn`); ties go round robin.
    LeastConn,
    /// Power of two random choices: two backends drawn by weight, the less loaded one wins.
    PowerOfTwo,
    /// Consistent hashing (ketama) on a request key; a request without the key goes round robin.
    Hash(HashOn),
}

impl Balance {
    /// The config name (`lb: …`).
    pub fn name(&self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::PowerOfTwo => "p2c",
            Balance::Hash(_) => "hash",
        }
    }

    /// Whether the algorithm reads the in-flight counts.
    pub fn needs_load(&self) -> bool {
        matches!(self, Balance::LeastConn | Balance::PowerOfTwo)
    }
}

/// The request key of `lb: hash` (`hash_on`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashOn {
    /// The first value of this request header.
    Header(http::HeaderName),
    /// The value of this cookie (names are case-sensitive, RFC 6265 §4.2.1).
    Cookie(String),
    /// The address of the TCP peer (not `X-Forwarded-For`).
    ClientIp,
}

/// Active health checks of a pool (`health_check`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub probe: Probe,
    /// Time between the starts of two probes of one backend.
    pub interval: Duration,
    /// Longest time one probe may take (connect, request, status line).
    pub timeout: Duration,
    /// Passing probes in a row that bring a down backend back (rise).
    pub healthy_threshold: u32,
    /// Failing probes in a row that take a backend out (fall).
    pub unhealthy_threshold: u32,
}

/// What one health probe does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Probe {
    /// `GET path` over HTTP/1.1; the status must be in `status`.
    Http {
        path: String,
        /// The `Host` header; the backend's `ip:port` when `None`.
        host: Option<String>,
        status: StatusRanges,
    },
    /// The TCP connection opens.
    Tcp,
}

/// Passive health (`max_fails`, `fail_timeout`), with nginx's names and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PassiveHealth {
    /// Failed attempts in a row that take a backend out; 0 turns passive ejection off.
    pub max_fails: u32,
    /// How long a backend stays out once `max_fails` is reached.
    pub fail_timeout: Duration,
}

/// A set of HTTP status codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusRanges(Vec<(u16, u16)>);

impl StatusRanges {
    /// From ranges already checked by [`parse_status_item`].
    pub fn new(ranges: Vec<(u16, u16)>) -> Self {
        StatusRanges(ranges)
    }

    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
}

/// One expected-status item: `200`, `200-299` or `2xx`, each within 100..=599.
pub fn parse_status_item(s: &str) -> Result<(u16, u16), String> {
    let s = s.trim();
    let bad = || {
        format!("invalid status {s:?}: expected a code (200), a range (200-299) or a class (2xx)")
    };
    let code = |t: &str| -> Result<u16, String> {
        let t = t.trim();
        if t.len() != 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let c: u16 = t.parse().map_err(|_| bad())?;
        if (100..=599).contains(&c) {
            Ok(c)
        } else {
            Err(format!("invalid status {s:?}: codes go from 100 to 599"))
        }
    };
    if let Some((lo, hi)) = s.split_once('-') {
        let (lo, hi) = (code(lo)?, code(hi)?);
        if lo > hi {
            return Err(format!(
                "invalid status range {s:?}: the first code is larger"
            ));
        }
        return Ok((lo, hi));
    }
    let b = s.as_bytes();
    if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"xx") {
        let lo = u16::from(b[0] - b'0') * 100;
        return Ok((lo, lo + 99));
    }
    code(s).map(|c| (c, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_item_table() {
        // (input, expected, reason)
        type Case = (&'static str, Result<(u16, u16), &'static str>, &'static str);
        let cases: &[Case] = &[
            ("200", Ok((200, 200)), "one code"),
            (" 204 ", Ok((204, 204)), "spaces around are ignored"),
            (
                "200-399",
                Ok((200, 399)),
                "a range, as nginx's `status 200-399`",
            ),
            ("2xx", Ok((200, 299)), "a class"),
            ("3XX", Ok((300, 399)), "the class letters ignore case"),
            ("600", Err("from 100 to 599"), "out of range"),
            ("099", Err("from 100 to 599"), "below 100"),
            ("399-200", Err("first code is larger"), "reversed range"),
            ("6xx", Err("expected a code"), "no such class"),
            ("20", Err("expected a code"), "too short"),
            ("2000", Err("expected a code"), "too long"),
            ("+200", Err("expected a code"), "a sign is not a digit"),
            ("", Err("expected a code"), "empty"),
            ("200-", Err("expected a code"), "half a range"),
        ];
        for (input, want, why) in cases {
            match (parse_status_item(input), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{why}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{why}: {e}"),
                (got, _) => panic!("{why}: {input:?} gave {got:?}"),
            }
        }
    }

    #[test]
    fn status_item_never_panics_on_arbitrary_input() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"0123456789-xX \t\xc3\xa9+";
        for _ in 0..20_000 {
            let len = rng.random_range(0..12);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            if let Ok((lo, hi)) = parse_status_item(&s) {
                assert!((100..=599).contains(&lo) && lo <= hi && hi <= 599, "{s:?}");
            }
        }
    }

    #[test]
    fn status_ranges_contain() {
        let r = StatusRanges::new(vec![(200, 299), (304, 304)]);
        assert!(r.contains(200) && r.contains(299) && r.contains(304));
        assert!(!r.contains(300) && !r.contains(500));
    }
}
