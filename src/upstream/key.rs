//! The request key of `lb: hash`: a header's value, a cookie's value or the client's address,
//! read from the request head without copying. The key is hashed and never logged or recorded
//! (it is often a session cookie).

use super::settings::HashOn;
use http::HeaderMap;
use std::net::IpAddr;

/// A hash key borrowed from the request, or an address's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey<'a> {
    Bytes(&'a [u8]),
    V4([u8; 4]),
    V6([u8; 16]),
}

impl HashKey<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HashKey::Bytes(b) => b,
            HashKey::V4(b) => b,
            HashKey::V6(b) => b,
        }
    }
}

impl HashOn {
    /// This request's key, or `None` when it has none (the pool then goes round robin). An
    /// empty value counts as none: it would send every such request to one backend.
    pub fn key<'a>(&self, headers: &'a HeaderMap, client: Option<IpAddr>) -> Option<HashKey<'a>> {
        let bytes = match self {
            HashOn::Header(name) => headers.get(name).map(|v| v.as_bytes()),
            HashOn::Cookie(name) => cookie(headers, name),
            // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d; it is the same
            // client as a.b.c.d.
            HashOn::ClientIp => {
                return client.map(|ip| match ip.to_canonical() {
                    IpAddr::V4(v) => HashKey::V4(v.octets()),
                    IpAddr::V6(v) => HashKey::V6(v.octets()),
                })
            }
        };
        bytes.filter(|b| !b.is_empty()).map(HashKey::Bytes)
    }
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// The value of cookie `name` in the request's `Cookie` header lines (RFC 6265 §5.4: pairs
/// separated by `;`; §4.1.1: a value may be wrapped in double quotes, which are not part of
/// it). Names compare exactly; the first pair with the name wins.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    for line in headers.get_all(http::header::COOKIE) {
        for pair in line.as_bytes().split(|&b| b == b';') {
            let pair = trim_ows(pair);
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if trim_ows(&pair[..eq]) != name.as_bytes() {
                continue;
            }
            let v = trim_ows(&pair[eq + 1..]);
            return Some(match v {
                [b'"', inner @ .., b'"'] => inner,
                _ => v,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookie_table() {
        // (cookie header lines, name, expected value, reason)
        type Case = (
            &'static [&'static [u8]],
            &'static str,
            Option<&'static [u8]>,
            &'static str,
        );
        let cases: &[Case] = &[
            (&[b"session=abc"], "session", Some(b"abc"), "one pair"),
            (
                &[b"a=1; session=abc; b=2"],
                "session",
                Some(b"abc"),
                "among others",
            ),
            (
                &[b"a=1;session=abc"],
                "session",
                Some(b"abc"),
                "no space after ';'",
            ),
            (
                &[b"a=1", b"session=xyz"],
                "session",
                Some(b"xyz"),
                "second header line",
            ),
            (
                &[b"session=\"q v\""],
                "session",
                Some(b"q v"),
                "quotes are not part of the value",
            ),
            (
                &[b"Session=abc"],
                "session",
                None,
                "names are case-sensitive",
            ),
            (&[b"xsession=abc"], "session", None, "no suffix match"),
            (&[b"session"], "session", None, "a pair without '='"),
            (
                &[b"session=; b=2"],
                "session",
                Some(b""),
                "empty value is found (the caller skips it)",
            ),
            (
                &[b"session=a=b"],
                "session",
                Some(b"a=b"),
                "'=' inside the value",
            ),
            (
                &[b"session=1; session=2"],
                "session",
                Some(b"1"),
                "the first one wins",
            ),
            (&[], "session", None, "no Cookie header"),
        ];
        for (lines, name, want, why) in cases {
            let pairs: Vec<(&str, &[u8])> = lines.iter().map(|l| ("cookie", *l)).collect();
            assert_eq!(cookie(&headers(&pairs), name), *want, "{why}");
        }
    }

    #[test]
    fn cookie_never_panics_on_arbitrary_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet = b"ab=; \t\"\x80\xff";
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let Ok(v) = HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            let mut h = HeaderMap::new();
            h.insert(http::header::COOKIE, v);
            if let Some(found) = cookie(&h, "a") {
                assert!(found.len() <= bytes.len());
            }
        }
    }

    #[test]
    fn key_table() {
        let h = headers(&[
            ("x-user", b"alice"),
            ("x-empty", b""),
            ("cookie", b"sid=42"),
        ]);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let header = |n: &str| HashOn::Header(http::HeaderName::from_bytes(n.as_bytes()).unwrap());
        // (rule, client, expected key bytes, reason)
        type Case = (HashOn, Option<IpAddr>, Option<Vec<u8>>, &'static str);
        let cases: Vec<Case> = vec![
            (
                header("x-user"),
                None,
                Some(b"alice".to_vec()),
                "header value",
            ),
            (header("x-none"), Some(v4), None, "missing header: no key"),
            (header("x-empty"), None, None, "empty header: no key"),
            (
                HashOn::Cookie("sid".into()),
                None,
                Some(b"42".to_vec()),
                "cookie value",
            ),
            (HashOn::Cookie("other".into()), None, None, "missing cookie"),
            (
                HashOn::ClientIp,
                Some(v4),
                Some(vec![192, 0, 2, 7]),
                "IPv4 client",
            ),
            (
                HashOn::ClientIp,
                Some(mapped),
                Some(vec![192, 0, 2, 7]),
                "an IPv4-mapped address is the IPv4 client",
            ),
            (
                HashOn::ClientIp,
                Some(v6),
                Some(v6_octets(v6)),
                "IPv6 client",
            ),
            (
                HashOn::ClientIp,
                None,
                None,
                "no client address (a Unix socket)",
            ),
        ];
        for (rule, client, want, why) in cases {
            let got = rule.key(&h, client).map(|k| k.as_bytes().to_vec());
            assert_eq!(got, want, "{why}");
        }
    }

    fn v6_octets(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V6(v) => v.octets().to_vec(),
            IpAddr::V4(_) => unreachable!(),
        }
    }
}
