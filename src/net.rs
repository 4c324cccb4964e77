//! Network helpers shared by routing, the upstreams and the tracing plugin: the host and port of
//! a Host header, what counts as a host name and as a valid `host[:port]`, IP networks (CIDR)
//! and the trust check of `forwarded.trusted` and `telemetry.trust_incoming`.
//!
//! A leaf: plain Rust on `std` and `http` types, importing nothing else of tracegate.
//!
//! At the edge, headers that name a client or a trace come from anyone. A client that is not
//! trusted cannot pass itself off as another address (`X-Forwarded-For`, `Forwarded`), nor join
//! its request to a trace of its choosing or force it to be sampled (`traceparent`): the proxy
//! replaces what it sent, or starts a new trace and keeps the client's context as a link on the
//! SERVER span (OpenTelemetry trace API, "Links": for a causal relationship across a trust
//! boundary).

use std::net::{IpAddr, Ipv4Addr};

/// Splits `host[:port]` (also `[v6]:port`) into the host and the port, if one is present and
/// valid. The brackets of an IPv6 literal are kept, as in the Host header.
pub fn split_host_port(s: &str) -> (&str, Option<u16>) {
    let s = s.trim();
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            let port = s[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (&s[..=end], port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

/// The request's authority: its Host header, or the authority of its URI (HTTP/2 has no Host
/// header; `:authority` stands for it, RFC 9113 §8.3.1). `None` when neither is there or the
/// Host is not text.
pub fn request_authority<'a>(headers: &'a http::HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// True when `h` (without a port) is a host name or an IP literal fit to write into a URL or a
/// Host header: dot-separated labels of letters, digits, `-` and `_` (an IPv4 address is such
/// a name), or an IPv6 address in brackets. Nothing else passes, so a value a client sent
/// cannot carry a path, user information or another header into what is built from it.
pub fn is_host(h: &str) -> bool {
    match h.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !h.is_empty() && h.len() <= 253 && h.split('.').all(is_host_label),
    }
}

/// True when `s` is a valid `host[:port]`, as a Host header or an `:authority` carries it
/// (RFC 9110 §7.2, RFC 3986 §3.2.2-§3.2.3): a host by [`is_host`] (a fully qualified name may
/// end with a dot), then optionally `:` and a port of at most five digits up to 65535 (an
/// empty port is allowed by RFC 3986). No whitespace, user information, path or list.
pub fn is_authority(s: &str) -> bool {
    let (host, rest) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => s.split_at(end + 1),
            None => return false,
        }
    } else {
        s.split_at(s.find(':').unwrap_or(s.len()))
    };
    let port_ok = match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(p) => {
            p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().map_or(p.is_empty(), |n| n <= 65535)
        }
    };
    port_ok && is_host(host.strip_suffix('.').unwrap_or(host))
}

/// True when `l` is one label of a host name: letters, digits, `-` and `_`, not empty.
pub fn is_host_label(l: &str) -> bool {
    !l.is_empty()
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// False when a label of `h` is an IDNA A-label (`xn--`, in any case) that is not valid: its
/// Punycode (RFC 3492) does not decode, or what it decodes to is not a valid label (UTS #46
/// processing, what browsers apply; RFC 5891 §5.4). Such a name has no Unicode form, so two
/// parties cannot agree on what it names. Other labels are not looked at, and a name without
/// `xn--` labels costs one scan.
pub fn a_labels_are_valid(h: &str) -> bool {
    h.split('.')
        .filter(|l| l.len() >= 4 && l.as_bytes()[..4].eq_ignore_ascii_case(b"xn--"))
        .all(|l| idna::domain_to_ascii_cow(l.as_bytes(), idna::AsciiDenyList::EMPTY).is_ok())
}

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

/// The dotted-quad text of `v4` (`192.0.2.7`), written into `buf` digit by digit, without the
/// formatting machinery: every request records a client address, and `Display` costs several
/// times as much. IPv6 (rarer, with its zero-run rules) is left to `Display`.
pub fn ipv4_text(v4: Ipv4Addr, buf: &mut [u8; 15]) -> &str {
    let mut n = 0;
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            buf[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            buf[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + o % 10;
        n += 1;
    }
    // ASCII digits and dots only.
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_split_table() {
        let cases = [
            ("example.com", ("example.com", None), "no port"),
            ("example.com:8080", ("example.com", Some(8080)), "port"),
            (
                "[::1]:8080",
                ("[::1]", Some(8080)),
                "IPv6 literal with port",
            ),
            ("[::1]", ("[::1]", None), "IPv6 literal alone"),
            (
                "example.com:x",
                ("example.com", None),
                "bad port is ignored",
            ),
            (
                "::1",
                ("::1", None),
                "bare IPv6 (not valid in Host) is left whole",
            ),
        ];
        for (input, want, why) in cases {
            assert_eq!(split_host_port(input), want, "{why}");
        }
    }

    #[test]
    fn host_table() {
        // (host, valid, reason)
        let cases = [
            ("example.com", true, "a name"),
            ("Example.COM", true, "case does not matter"),
            ("a_b.example", true, "underscores occur in real names"),
            ("127.0.0.1", true, "an IPv4 address"),
            ("[::1]", true, "an IPv6 literal"),
            ("[nope]", false, "brackets around a non-address"),
            ("::1", false, "a bare IPv6 address is not a host"),
            ("", false, "empty"),
            ("a..b", false, "an empty label"),
            ("evil.com/x", false, "a slash cannot smuggle a path"),
            ("a@b.com", false, "user information"),
            ("a b", false, "a space"),
        ];
        for (h, ok, why) in cases {
            assert_eq!(is_host(h), ok, "{why}");
        }
        assert!(!is_host(&"a".repeat(254)), "longer than a DNS name");
    }

    #[test]
    fn a_labels_table() {
        // (host, valid, reason)
        let cases = [
            ("example.com", true, "no A-label"),
            ("xn--bcher-kva.example", true, "b\u{fc}cher, RFC 3492 style"),
            (
                "XN--BCHER-KVA.example",
                true,
                "the prefix and Punycode in any case",
            ),
            ("www.xn--nxasmq6b.com.", true, "Greek, with a trailing dot"),
            ("xn--.example", false, "nothing after the prefix"),
            (
                "xn--bcher-kva9.example",
                false,
                "a digit that decodes past the last code point",
            ),
            (
                "xn--abc-.example",
                false,
                "decodes to ASCII only, which needs no A-label",
            ),
            ("xn--99999999999a.example", false, "Punycode that overflows"),
            ("xn--a-b_c.example", false, "'_' is not a Punycode digit"),
            ("a.xn--bcher-kva.xn--.example", false, "any bad label"),
            ("xnn--x.example", true, "not the prefix"),
            ("[::1]", true, "an IPv6 literal"),
        ];
        for (h, ok, why) in cases {
            assert_eq!(a_labels_are_valid(h), ok, "{why}: {h}");
        }
    }

    #[test]
    fn authority_table() {
        // (authority, valid, reason)
        let cases = [
            ("a.test", true, "a name"),
            ("a.test:8080", true, "a name and a port"),
            ("a.test:", true, "an empty port (RFC 3986 §3.2.3)"),
            ("a.test.", true, "a fully qualified name"),
            ("a.test.:80", true, "a fully qualified name and a port"),
            ("127.0.0.1:80", true, "an IPv4 address and a port"),
            ("[::1]", true, "an IPv6 literal"),
            ("[::1]:443", true, "an IPv6 literal and a port"),
            ("", false, "empty"),
            (".", false, "a dot alone"),
            ("a.test..", false, "two trailing dots"),
            ("a.test:65536", false, "a port beyond 65535"),
            ("a.test:080808", false, "more than five digits"),
            ("a.test:x", false, "a port that is not digits"),
            ("a.test:80:80", false, "two ports"),
            ("::1", false, "a bare IPv6 address"),
            ("[::1", false, "an unclosed bracket"),
            ("[::1]x", false, "something after the bracket"),
            ("a b", false, "a space"),
            ("a.test, b.test", false, "a list"),
            ("u@a.test", false, "user information"),
            ("a.test/x", false, "a path"),
        ];
        for (a, ok, why) in cases {
            assert_eq!(is_authority(a), ok, "{why}: {a:?}");
        }
    }

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

    #[test]
    fn ipv4_text_is_what_display_writes() {
        let mut buf = [0u8; 15];
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.7",
            "10.100.9.99",
            "1.20.255.0",
        ] {
            let v4: Ipv4Addr = ip.parse().unwrap();
            assert_eq!(ipv4_text(v4, &mut buf), v4.to_string());
        }
    }
}
