//! Which clients may continue a trace: `telemetry.trust_incoming`.
//!
//! At the edge, an incoming `traceparent` comes from anyone. A client that is not trusted cannot
//! join its request to a trace of its choosing or force it to be sampled: tracegate starts a new
//! trace, decides sampling itself, and keeps the client's context as a link on the SERVER span
//! (OpenTelemetry trace API, "Links": for a causal relationship across a trust boundary).

use std::net::IpAddr;

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host). Host bits
    /// beyond the prefix are refused, as they usually mean a typo.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        let c = Cidr { addr, prefix };
        if c.masked(addr) != bits(addr) {
            return Err(format!(
                "{s:?} has bits set after the /{prefix} prefix (did you mean {}/{prefix}?)",
                c.network()
            ));
        }
        Ok(c)
    }

    fn mask(&self) -> u128 {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        let host_bits = width - u32::from(self.prefix);
        if host_bits >= 128 {
            0
        } else {
            (u128::MAX << host_bits) & (u128::MAX >> (128 - width))
        }
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        bits(ip) & self.mask()
    }

    fn network(&self) -> IpAddr {
        let n = self.masked(self.addr);
        match self.addr {
            IpAddr::V4(_) => IpAddr::from((n as u32).to_be_bytes()),
            IpAddr::V6(_) => IpAddr::from(n.to_be_bytes()),
        }
    }

    /// True when `ip` is inside this network. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
    /// count as the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.masked(self.addr)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whose incoming trace context is continued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// Everyone's (the default, as for a proxy behind another tracing tier).
    #[default]
    All,
    /// No one's: every request starts a new trace.
    None,
    /// Clients whose address is in one of these networks.
    Networks(Vec<Cidr>),
}

impl Trust {
    /// True when a client at `addr` (unknown: `None`) may continue its trace.
    pub fn trusts(&self, addr: Option<IpAddr>) -> bool {
        match self {
            Trust::All => true,
            Trust::None => false,
            Trust::Networks(nets) => addr.is_some_and(|a| nets.iter().any(|n| n.contains(a))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        // (input, ok, reason)
        let cases = [
            ("10.0.0.0/8", true, "IPv4 network"),
            ("192.168.1.7", true, "a bare address is one host"),
            ("2001:db8::/32", true, "IPv6 network"),
            ("0.0.0.0/0", true, "everything"),
            ("::/0", true, "everything, IPv6"),
            ("10.0.0.1/8", false, "host bits set"),
            ("10.0.0.0/33", false, "prefix too long"),
            ("10.0.0.0/", false, "empty prefix"),
            ("example.com/8", false, "not an address"),
            ("", false, "empty"),
        ];
        for (s, ok, why) in cases {
            assert_eq!(Cidr::parse(s).is_ok(), ok, "{why}: {:?}", Cidr::parse(s));
        }
    }

    #[test]
    fn contains_table() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // (network, address, inside, reason)
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true, "inside"),
            ("10.0.0.0/8", "11.0.0.1", false, "outside"),
            ("192.168.1.7", "192.168.1.7", true, "the host itself"),
            ("192.168.1.7", "192.168.1.8", false, "its neighbour"),
            (
                "0.0.0.0/0",
                "203.0.113.9",
                true,
                "/0 holds every IPv4 address",
            ),
            ("0.0.0.0/0", "2001:db8::1", false, "but no IPv6 one"),
            (
                "10.0.0.0/8",
                "::ffff:10.1.2.3",
                true,
                "IPv4-mapped IPv6 counts as IPv4",
            ),
            ("2001:db8::/32", "2001:db8:ffff::1", true, "IPv6 inside"),
            ("2001:db8::/32", "2001:db9::1", false, "IPv6 outside"),
            ("::/0", "::1", true, "/0 holds every IPv6 address"),
        ];
        for (net, addr, inside, why) in cases {
            assert_eq!(
                Cidr::parse(net).unwrap().contains(ip(addr)),
                inside,
                "{why}"
            );
        }
        let t = Trust::Networks(vec![Cidr::parse("127.0.0.0/8").unwrap()]);
        assert!(t.trusts(Some(ip("127.0.0.1"))));
        assert!(!t.trusts(None), "an unknown peer is not trusted by a list");
        assert!(Trust::All.trusts(None));
        assert!(!Trust::None.trusts(Some(ip("127.0.0.1"))));
    }
}
