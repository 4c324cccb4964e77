//! `ip_allow` and `ip_deny`: lists of networks (CIDR) a client address must be in, or must not
//! be in; a refused request gets `403` (nginx `allow`/`deny`, Traefik `ipAllowList`). The
//! address is the one [`crate::routing::ForwardedPolicy::client_address`] resolves through
//! `forwarded.trusted`.

use crate::net::Cidr;
use std::net::IpAddr;

/// A list of networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList(pub Vec<Cidr>);

impl IpList {
    /// True when `ip` is in one of the networks; an unknown address is in none.
    pub fn contains(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.0.iter().any(|n| n.contains(ip))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_table() {
        let list = IpList(
            ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
                .iter()
                .map(|n| Cidr::parse(n).unwrap())
                .collect(),
        );
        // (address, in the list, why)
        let cases: &[(Option<&str>, bool, &str)] = &[
            (Some("10.1.2.3"), true, "inside a /8"),
            (Some("11.0.0.1"), false, "outside"),
            (Some("2001:db8::1"), true, "IPv6 inside"),
            (Some("2001:db9::1"), false, "IPv6 outside"),
            (Some("192.0.2.7"), true, "a single address"),
            (Some("192.0.2.8"), false, "its neighbour"),
            (
                Some("::ffff:10.0.0.1"),
                true,
                "a v4-mapped address is its IPv4 address",
            ),
            (None, false, "an unknown address is in no list"),
        ];
        for (ip, want, why) in cases {
            assert_eq!(
                list.contains(ip.map(|i| i.parse().unwrap())),
                *want,
                "{why}"
            );
        }
    }
}
