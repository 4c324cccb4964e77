//! The forwarding headers set on every proxied request (top-level `forwarded:` key):
//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and RFC 7239 `Forwarded`.
//!
//! Trust decides what happens to the values a client sent. From a client inside
//! `forwarded.trusted` (another proxy or load balancer of yours, as Traefik's
//! `forwardedHeaders.trustedIPs` and nginx `set_real_ip_from`), the incoming chains are kept and
//! this hop is appended, and an incoming `X-Forwarded-Proto`/`X-Forwarded-Host` is kept. From
//! anyone else every one of these headers is replaced, and `X-Forwarded-Port`,
//! `X-Forwarded-Server` and `X-Real-IP` are removed (as Traefik does), so a client cannot make
//! the upstream believe it has another address.

use crate::net::Trust;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::io::Write as _;
use std::net::IpAddr;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = http::header::FORWARDED;

/// `forwarded:`: whose forwarding headers are kept, and which headers are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedPolicy {
    /// `forwarded.trusted`: clients whose incoming values are kept and appended to.
    pub trusted: Trust,
    /// `x-forwarded` in `forwarded.headers`: write `X-Forwarded-For/-Proto/-Host`.
    pub x_forwarded: bool,
    /// `forwarded` in `forwarded.headers`: write RFC 7239 `Forwarded`.
    pub forwarded: bool,
}

impl Default for ForwardedPolicy {
    /// Both header families written, no client trusted.
    fn default() -> Self {
        ForwardedPolicy {
            trusted: Trust::None,
            x_forwarded: true,
            forwarded: true,
        }
    }
}

/// This hop, as the proxy saw it.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The downstream peer's address (`None` when unknown, e.g. a Unix socket).
    pub client: Option<IpAddr>,
    /// The downstream connection is TLS.
    pub tls: bool,
    /// The Host the client asked for, as received (Host header or HTTP/2 authority).
    pub host: Option<&'a [u8]>,
}

impl ForwardedPolicy {
    /// The client's address as the middlewares see it (nginx `real_ip` with
    /// `real_ip_recursive on`, Traefik `ipStrategy`): the TCP peer, unless the peer is in
    /// `forwarded.trusted`; then `X-Forwarded-For` is read from the right and the first address
    /// that is not trusted is the client's (each trusted hop appended the address it saw; an
    /// address further left came from the client and could be anything). When every address is
    /// trusted, the left-most is the client's. An entry that is not an IP address stops the walk
    /// at the hop before it (nothing left of a broken entry can be believed).
    pub fn client_address(&self, peer: Option<IpAddr>, incoming: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(|ip| ip.to_canonical());
        if !self.trusted.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for line in incoming.get_all(&X_FORWARDED_FOR).iter().rev() {
            let Ok(text) = line.to_str() else {
                return client;
            };
            for entry in text.rsplit(',') {
                let Some(ip) = parse_forwarded_ip(entry.trim()) else {
                    return client;
                };
                client = Some(ip);
                if !self.trusted.trusts(Some(ip)) {
                    return client;
                }
            }
        }
        client
    }

    /// True when no forwarding header is written or touched.
    pub fn is_off(&self) -> bool {
        !self.x_forwarded && !self.forwarded
    }

    /// The edits to make to a request with the `incoming` headers: `edit(name, Some(v))`
    /// replaces every line of `name` with `v`, `edit(name, None)` removes them. Multiple
    /// incoming lines of a chain are joined into one (RFC 9110 §5.3).
    pub fn edits(
        &self,
        hop: &Hop<'_>,
        incoming: &HeaderMap,
        mut edit: impl FnMut(&'static HeaderName, Option<HeaderValue>),
    ) {
        if self.is_off() {
            return;
        }
        let trusted = self.trusted.trusts(hop.client);
        let client = hop.client.map(|ip| ip.to_canonical());
        let mut buf = Vec::with_capacity(64);
        if self.x_forwarded {
            if trusted {
                join_lines(&mut buf, incoming, &X_FORWARDED_FOR);
            }
            if let Some(ip) = client {
                if !buf.is_empty() {
                    buf.extend_from_slice(b", ");
                }
                match ip {
                    IpAddr::V4(v4) => {
                        buf.extend_from_slice(crate::net::ipv4_text(v4, &mut [0; 15]).as_bytes())
                    }
                    v6 => {
                        let _ = write!(buf, "{v6}");
                    }
                }
            }
            if !buf.is_empty() {
                edit(&X_FORWARDED_FOR, HeaderValue::from_bytes(&buf).ok());
            } else if incoming.contains_key(&X_FORWARDED_FOR) {
                edit(&X_FORWARDED_FOR, None);
            }
            if !(trusted && incoming.contains_key(&X_FORWARDED_PROTO)) {
                let proto = if hop.tls { "https" } else { "http" };
                edit(&X_FORWARDED_PROTO, Some(HeaderValue::from_static(proto)));
            }
            if !(trusted && incoming.contains_key(&X_FORWARDED_HOST)) {
                match hop.host.and_then(|h| HeaderValue::from_bytes(h).ok()) {
                    Some(h) => edit(&X_FORWARDED_HOST, Some(h)),
                    None if incoming.contains_key(&X_FORWARDED_HOST) => {
                        edit(&X_FORWARDED_HOST, None)
                    }
                    None => {}
                }
            }
            if !trusted {
                for n in [&X_FORWARDED_PORT, &X_FORWARDED_SERVER, &X_REAL_IP] {
                    if incoming.contains_key(n) {
                        edit(n, None);
                    }
                }
            }
        }
        if self.forwarded {
            buf.clear();
            if trusted {
                join_lines(&mut buf, incoming, &FORWARDED);
                if !buf.is_empty() {
                    buf.extend_from_slice(b", ");
                }
            }
            forwarded_element(&mut buf, client, hop.tls, hop.host);
            edit(&FORWARDED, HeaderValue::from_bytes(&buf).ok());
        }
    }
}

/// An `X-Forwarded-For` entry as an address: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`, with or
/// without a port (`1.2.3.4:5678`, `[2001:db8::1]:5678`), as proxies write them.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = entry.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

/// Appends every non-empty line of `name`, joined with `, `.
fn join_lines(buf: &mut Vec<u8>, headers: &HeaderMap, name: &HeaderName) {
    for v in headers.get_all(name) {
        let v = v.as_bytes().trim_ascii();
        if v.is_empty() {
            continue;
        }
        if !buf.is_empty() {
            buf.extend_from_slice(b", ");
        }
        buf.extend_from_slice(v);
    }
}

/// This hop's `Forwarded` element (RFC 7239 §4): `for=…;proto=…;host=…`. An IPv6 address is
/// written `"[2001:db8::1]"` (§6, a quoted string because `:` is not a token character); an
/// unknown client is `for=unknown` (§6.3). `by` is not sent: it would name the proxy's own
/// address to every upstream (§8.3, privacy) and upstreams rarely use it.
fn forwarded_element(buf: &mut Vec<u8>, client: Option<IpAddr>, tls: bool, host: Option<&[u8]>) {
    match client {
        Some(IpAddr::V4(ip)) => {
            buf.extend_from_slice(b"for=");
            buf.extend_from_slice(crate::net::ipv4_text(ip, &mut [0; 15]).as_bytes());
        }
        Some(IpAddr::V6(ip)) => {
            let _ = write!(buf, "for=\"[{ip}]\"");
        }
        None => buf.extend_from_slice(b"for=unknown"),
    }
    buf.extend_from_slice(if tls { b";proto=https" } else { b";proto=http" });
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        buf.extend_from_slice(b";host=");
        token_or_quoted(buf, h);
    }
}

/// Writes `v` as a token when it is one, else as a quoted-string (RFC 9110 §5.6.2, §5.6.4).
fn token_or_quoted(buf: &mut Vec<u8>, v: &[u8]) {
    if v.iter().all(|&b| is_tchar(b)) {
        buf.extend_from_slice(v);
        return;
    }
    buf.push(b'"');
    for &b in v {
        if b == b'"' || b == b'\\' {
            buf.push(b'\\');
        }
        buf.push(b);
    }
    buf.push(b'"');
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Cidr;

    /// The headers a request ends up with: `incoming` after the edits.
    fn run(policy: &ForwardedPolicy, hop: Hop<'_>, incoming: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in incoming {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut out = h.clone();
        policy.edits(&hop, &h, |n, v| match v {
            Some(v) => {
                out.insert(n.clone(), v);
            }
            None => {
                out.remove(n);
            }
        });
        out
    }

    fn get<'a>(h: &'a HeaderMap, n: &str) -> Vec<&'a str> {
        h.get_all(n).iter().map(|v| v.to_str().unwrap()).collect()
    }

    fn trusting(nets: &[&str]) -> ForwardedPolicy {
        ForwardedPolicy {
            trusted: Trust::Networks(nets.iter().map(|n| Cidr::parse(n).unwrap()).collect()),
            ..ForwardedPolicy::default()
        }
    }

    #[test]
    fn forwarded_headers_table() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let hop = |client, tls, host: Option<&'static str>| Hop {
            client,
            tls,
            host: host.map(str::as_bytes),
        };
        let spoof: &[(&str, &str)] = &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-port", "443"),
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
        ];
        let chain: &[(&str, &str)] = &[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2, 10.0.0.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example.com"),
            ("x-real-ip", "198.51.100.1"),
            ("forwarded", "for=198.51.100.1;proto=https"),
            ("forwarded", "for=\"[2001:db8::7]\""),
        ];
        let default = ForwardedPolicy::default();
        let trusted = trusting(&["10.0.0.0/8", "2001:db8::/32"]);
        // (policy, hop, incoming, header, expected lines, reason)
        type Case<'a> = (
            &'a ForwardedPolicy,
            Hop<'a>,
            &'a [(&'a str, &'a str)],
            &'a str,
            &'a [&'a str],
            &'a str,
        );
        let cases: &[Case] = &[
            (&default, hop(ip("203.0.113.7"), false, Some("shop.example.com")), &[], "x-forwarded-for", &["203.0.113.7"], "new chain"),
            (&default, hop(ip("203.0.113.7"), false, Some("shop.example.com")), &[], "x-forwarded-proto", &["http"], "plain HTTP"),
            (&default, hop(ip("203.0.113.7"), true, Some("shop.example.com")), &[], "x-forwarded-proto", &["https"], "TLS downstream"),
            (&default, hop(ip("203.0.113.7"), false, Some("shop.example.com:8443")), &[], "x-forwarded-host", &["shop.example.com:8443"], "Host as received, port kept"),
            (&default, hop(ip("203.0.113.7"), false, Some("shop.example.com")), &[], "forwarded", &["for=203.0.113.7;proto=http;host=shop.example.com"], "RFC 7239 element"),
            (&default, hop(ip("203.0.113.7"), true, Some("shop.example.com:8443")), &[], "forwarded", &["for=203.0.113.7;proto=https;host=\"shop.example.com:8443\""], "a host with a port is quoted"),
            (&default, hop(ip("2001:db8::1"), false, Some("[2001:db8::2]:80")), &[], "forwarded", &["for=\"[2001:db8::1]\";proto=http;host=\"[2001:db8::2]:80\""], "IPv6 is bracketed and quoted"),
            (&default, hop(ip("2001:db8::1"), false, None), &[], "x-forwarded-for", &["2001:db8::1"], "IPv6 bare in X-Forwarded-For, as nginx and Traefik"),
            (&default, hop(ip("::ffff:192.0.2.9"), false, None), &[], "x-forwarded-for", &["192.0.2.9"], "an IPv4-mapped address is written as IPv4"),
            (&default, hop(ip("::ffff:192.0.2.9"), false, None), &[], "forwarded", &["for=192.0.2.9;proto=http"], "no Host: no host parameter"),
            (&default, hop(None, false, Some("a")), &[], "forwarded", &["for=unknown;proto=http;host=a"], "unknown client (RFC 7239 §6.3)"),
            (&default, hop(None, false, Some("a")), spoof, "x-forwarded-for", &[], "unknown untrusted client: the spoofed chain is removed"),
            (&default, hop(ip("203.0.113.7"), false, Some("shop.example.com")), spoof, "x-forwarded-for", &["203.0.113.7"], "untrusted: replaced"),
            (&default, hop(ip("203.0.113.7"), false, Some("shop.example.com")), spoof, "x-forwarded-proto", &["http"], "untrusted: proto replaced"),
            (&default, hop(ip("203.0.113.7"), false, Some("shop.example.com")), spoof, "x-forwarded-host", &["shop.example.com"], "untrusted: host replaced"),
            (&default, hop(ip("203.0.113.7"), false, None), spoof, "x-forwarded-host", &[], "untrusted, no Host: removed"),
            (&default, hop(ip("203.0.113.7"), false, None), spoof, "x-forwarded-port", &[], "untrusted: port removed"),
            (&default, hop(ip("203.0.113.7"), false, None), spoof, "x-real-ip", &[], "untrusted: X-Real-IP removed"),
            (&default, hop(ip("203.0.113.7"), false, None), spoof, "forwarded", &["for=203.0.113.7;proto=http"], "untrusted: Forwarded replaced"),
            (&trusted, hop(ip("10.0.0.9"), false, Some("internal:8080")), chain, "x-forwarded-for", &["198.51.100.1, 198.51.100.2, 10.0.0.9, 10.0.0.9"], "trusted: lines joined, this hop appended"),
            (&trusted, hop(ip("10.0.0.9"), false, Some("internal:8080")), chain, "x-forwarded-proto", &["https"], "trusted: the first hop's proto kept"),
            (&trusted, hop(ip("10.0.0.9"), false, Some("internal:8080")), chain, "x-forwarded-host", &["shop.example.com"], "trusted: the first hop's host kept"),
            (&trusted, hop(ip("10.0.0.9"), false, Some("internal:8080")), chain, "x-real-ip", &["198.51.100.1"], "trusted: X-Real-IP left alone"),
            (&trusted, hop(ip("10.0.0.9"), false, Some("internal:8080")), chain, "forwarded", &["for=198.51.100.1;proto=https, for=\"[2001:db8::7]\", for=10.0.0.9;proto=http;host=\"internal:8080\""], "trusted: Forwarded chain appended"),
            (&trusted, hop(ip("2001:db8::5"), true, Some("internal")), &[("x-forwarded-for", "192.0.2.1")], "x-forwarded-for", &["192.0.2.1, 2001:db8::5"], "trusted IPv6 peer"),
            (&trusted, hop(ip("10.0.0.9"), true, Some("internal")), &[], "x-forwarded-proto", &["https"], "trusted without incoming: set"),
            (&trusted, hop(ip("10.0.0.9"), false, None), &[("x-forwarded-for", " ")], "x-forwarded-for", &["10.0.0.9"], "a blank incoming line is dropped"),
            (&trusted, hop(ip("192.0.2.50"), false, None), chain, "x-forwarded-for", &["192.0.2.50"], "a client outside the list is not trusted"),
        ];
        for (policy, hop, incoming, name, want, why) in cases {
            let out = run(policy, *hop, incoming);
            assert_eq!(get(&out, name), *want, "{why}");
        }
    }

    #[test]
    fn switching_headers_off() {
        let hop = Hop {
            client: Some("203.0.113.7".parse().unwrap()),
            tls: false,
            host: Some(b"a"),
        };
        let incoming = [("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")];
        let only_x = ForwardedPolicy {
            forwarded: false,
            ..ForwardedPolicy::default()
        };
        let out = run(&only_x, hop, &incoming);
        assert_eq!(get(&out, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(
            get(&out, "forwarded"),
            ["for=6.6.6.6"],
            "a family that is off is not touched"
        );
        let off = ForwardedPolicy {
            x_forwarded: false,
            forwarded: false,
            ..ForwardedPolicy::default()
        };
        assert!(off.is_off());
        let out = run(&off, hop, &incoming);
        assert_eq!(get(&out, "x-forwarded-for"), ["6.6.6.6"]);
        assert!(get(&out, "x-forwarded-proto").is_empty());
    }

    #[test]
    fn trust_all() {
        let all = ForwardedPolicy {
            trusted: Trust::All,
            ..ForwardedPolicy::default()
        };
        let out = run(
            &all,
            Hop {
                client: None,
                tls: false,
                host: None,
            },
            &[("x-forwarded-for", "192.0.2.1")],
        );
        assert_eq!(
            get(&out, "x-forwarded-for"),
            ["192.0.2.1"],
            "trusted, unknown peer: the chain is kept as is"
        );
    }

    #[test]
    fn quoting_table() {
        // (value, written, reason)
        let cases: [(&[u8], &str, &str); 4] = [
            (b"example.com", "example.com", "a token stays bare"),
            (b"example.com:80", "\"example.com:80\"", "':' needs quotes"),
            (
                b"a\"b\\c",
                "\"a\\\"b\\\\c\"",
                "quote and backslash are escaped",
            ),
            (b"a b", "\"a b\"", "a space needs quotes"),
        ];
        for (v, want, why) in cases {
            let mut buf = Vec::new();
            token_or_quoted(&mut buf, v);
            assert_eq!(String::from_utf8(buf).unwrap(), want, "{why}");
        }
    }

    /// Arbitrary incoming values and hosts never panic, and every written value is a valid
    /// header value.
    #[test]
    fn edits_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let alphabet = b"\"\\,;= \tfor=[]:.09aZ\x80\xff";
        let policies = [ForwardedPolicy::default(), trusting(&["0.0.0.0/0", "::/0"])];
        for _ in 0..20_000 {
            let mut gen = |max: usize| crate::testing::random_bytes(&mut rng, alphabet, max);
            let (a, b, host) = (gen(20), gen(20), gen(12));
            let mut h = HeaderMap::new();
            for (n, v) in [(&X_FORWARDED_FOR, &a), (&FORWARDED, &b)] {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.append(n.clone(), v);
                }
            }
            let client: IpAddr = if rng.random_bool(0.5) {
                IpAddr::from(rng.random::<[u8; 4]>())
            } else {
                IpAddr::from(rng.random::<[u8; 16]>())
            };
            for p in &policies {
                p.edits(
                    &Hop {
                        client: Some(client),
                        tls: rng.random_bool(0.5),
                        host: Some(&host),
                    },
                    &h,
                    |n, v| {
                        if *n == FORWARDED || *n == X_FORWARDED_FOR {
                            assert!(v.is_some(), "{n} is always written for a known client");
                        }
                    },
                );
            }
        }
    }

    #[test]
    fn client_address_table() {
        use crate::net::Cidr;
        let nets =
            |l: &[&str]| Trust::Networks(l.iter().map(|n| Cidr::parse(n).unwrap()).collect());
        let policy = |trusted| ForwardedPolicy {
            trusted,
            ..ForwardedPolicy::default()
        };
        let lb = policy(nets(&["10.0.0.0/8"]));
        let nobody = policy(Trust::None);
        // (policy, peer, X-Forwarded-For lines, client, why)
        let cases: Vec<(&ForwardedPolicy, &str, Vec<&str>, &str, &str)> = vec![
            (
                &lb,
                "203.0.113.9",
                vec!["1.1.1.1"],
                "203.0.113.9",
                "an untrusted peer is the client, whatever it claims",
            ),
            (
                &lb,
                "10.0.0.2",
                vec!["198.51.100.7"],
                "198.51.100.7",
                "behind a trusted load balancer",
            ),
            (
                &lb,
                "10.0.0.2",
                vec!["6.6.6.6, 198.51.100.7, 10.0.0.5"],
                "198.51.100.7",
                "the right-most untrusted hop; the spoofed left part is ignored",
            ),
            (
                &lb,
                "10.0.0.2",
                vec!["6.6.6.6", "198.51.100.7"],
                "198.51.100.7",
                "several lines are one list, the last line last",
            ),
            (
                &lb,
                "10.0.0.2",
                vec!["10.0.0.9, 10.0.0.5"],
                "10.0.0.9",
                "all trusted: the left-most",
            ),
            (
                &lb,
                "10.0.0.2",
                vec![],
                "10.0.0.2",
                "no header: the trusted peer itself",
            ),
            (
                &lb,
                "10.0.0.2",
                vec!["6.6.6.6, garbage, 10.0.0.5"],
                "10.0.0.5",
                "a broken entry stops the walk at the hop before it",
            ),
            (
                &lb,
                "10.0.0.2",
                vec!["[2001:db8::7]:443"],
                "2001:db8::7",
                "a bracketed IPv6 with a port",
            ),
            (
                &lb,
                "10.0.0.2",
                vec!["198.51.100.7:5555"],
                "198.51.100.7",
                "an IPv4 with a port",
            ),
            (
                &lb,
                "::ffff:10.0.0.2",
                vec!["198.51.100.7"],
                "198.51.100.7",
                "a v4-mapped peer is the IPv4 address",
            ),
            (
                &nobody,
                "10.0.0.2",
                vec!["198.51.100.7"],
                "10.0.0.2",
                "nobody trusted: the peer",
            ),
        ];
        for (p, peer, lines, want, why) in cases {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(&X_FORWARDED_FOR, HeaderValue::from_str(l).unwrap());
            }
            let got = p.client_address(Some(peer.parse().unwrap()), &h);
            assert_eq!(got, Some(want.parse().unwrap()), "{why}");
        }
    }
}
