//! The forwarding headers of a proxied request (`X-Forwarded-For`, `-Proto`, `-Host` and
//! RFC 7239 `Forwarded`), built from what the client sent, and the `forwarded.trusted` networks.
//!
//! Input: the first byte holds the policy and the hop (bit 0 TLS, bit 1 write `X-Forwarded-*`,
//! bit 2 write `Forwarded`, bits 3-4 trust: all, none, or the networks). Then `\n`-separated
//! lines: the client address (empty or not an address: unknown), the Host (empty: none), the
//! trusted networks (comma-separated), and the incoming `name: value` header lines.
//!
//! Invariants:
//! - a network that parses prints as text that parses to the same network, and contains itself;
//! - an untrusted client's chains are replaced by this hop alone: `X-Forwarded-For` is its
//!   address, `X-Real-IP`/`-Port`/`-Server` are gone, and `Forwarded` is one element whose
//!   `host` (a token or a quoted string) reads back as the Host;
//! - a trusted client's `Forwarded` ends with that same element, and its `X-Forwarded-For`
//!   with its address;
//! - `X-Forwarded-Proto` is always present.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use tracegate::net::{Cidr, Trust};
use tracegate::routing::forwarded::{Hop, X_FORWARDED_FOR, X_FORWARDED_PROTO};
use tracegate::routing::ForwardedPolicy;

fn headers<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        h.append(n, v);
    }
    h
}

fn networks(line: &[u8]) -> Vec<Cidr> {
    let text = String::from_utf8_lossy(line);
    let mut out = Vec::new();
    for s in text.split(',') {
        if let Ok(c) = Cidr::parse(s) {
            assert_eq!(
                Cidr::parse(&c.to_string()),
                Ok(c),
                "{s:?} does not print back"
            );
            let own: IpAddr = c.to_string().split('/').next().unwrap().parse().unwrap();
            // Known: a network written as an IPv4-mapped IPv6 address (`::ffff:10.0.0.0/104`)
            // is accepted but contains no address, since `contains` reads mapped addresses as
            // IPv4. Drop this exception once `Cidr::parse` converts or refuses such networks.
            let mapped = matches!(own, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
            assert!(
                mapped || c.contains(own),
                "{c} does not contain its own address"
            );
            out.push(c);
        }
    }
    out
}

/// The request headers after the edits, and what was written to `Forwarded`.
fn run(
    policy: &ForwardedPolicy,
    hop: &Hop<'_>,
    incoming: &HeaderMap,
) -> (HeaderMap, Option<Vec<u8>>) {
    let mut out = incoming.clone();
    let mut fwd = None;
    policy.edits(hop, incoming, |n, v| {
        if n == http::header::FORWARDED {
            let v = v.as_ref().expect("Forwarded is always written");
            fwd = Some(v.as_bytes().to_vec());
        }
        match v {
            Some(v) => {
                out.insert(n, v);
            }
            None => {
                out.remove(n);
            }
        }
    });
    (out, fwd)
}

/// The `host` parameter of one `Forwarded` element as written: a token or a quoted string.
fn forwarded_host(element: &[u8]) -> Option<Vec<u8>> {
    let at = element.windows(6).position(|w| w == b";host=")?;
    let v = &element[at + 6..];
    if v.first() != Some(&b'"') {
        return Some(v.to_vec());
    }
    assert_eq!(
        v.last(),
        Some(&b'"'),
        "unterminated quoted host in {:?}",
        String::from_utf8_lossy(element)
    );
    let mut out = Vec::new();
    let mut esc = false;
    for &b in &v[1..v.len() - 1] {
        if esc {
            out.push(b);
            esc = false;
        } else if b == b'\\' {
            esc = true;
        } else {
            assert_ne!(
                b,
                b'"',
                "unescaped quote in {:?}",
                String::from_utf8_lossy(element)
            );
            out.push(b);
        }
    }
    assert!(
        !esc,
        "dangling escape in {:?}",
        String::from_utf8_lossy(element)
    );
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&bits, rest)) = data.split_first() else {
        return;
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let client: Option<IpAddr> = std::str::from_utf8(lines.next().unwrap_or_default())
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let host = lines.next().filter(|h| !h.is_empty());
    // The Host comes from a header (or the HTTP/2 authority): a valid header value.
    let host = host.filter(|h| HeaderValue::from_bytes(h).is_ok());
    let nets = networks(lines.next().unwrap_or_default());
    let incoming = headers(lines);
    let trusted = match (bits >> 3) & 3 {
        0 => Trust::All,
        1 => Trust::None,
        _ => Trust::Networks(nets),
    };
    let policy = ForwardedPolicy {
        trusted,
        x_forwarded: bits & 2 != 0,
        forwarded: bits & 4 != 0,
    };
    let hop = Hop {
        client,
        tls: bits & 1 != 0,
        host,
    };
    let is_trusted = policy.trusted.trusts(client);
    let (out, fwd) = run(&policy, &hop, &incoming);
    let (_, own) = run(
        &ForwardedPolicy {
            trusted: Trust::None,
            ..policy.clone()
        },
        &hop,
        &incoming,
    );
    let ip = client.map(|c| c.to_canonical().to_string());

    if policy.x_forwarded {
        assert!(out.contains_key(&X_FORWARDED_PROTO));
        let xff = out
            .get(&X_FORWARDED_FOR)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if is_trusted {
            if let Some(ip) = &ip {
                assert!(
                    xff.as_deref().unwrap_or_default().ends_with(ip.as_str()),
                    "{xff:?}"
                );
            }
        } else {
            assert_eq!(
                xff, ip,
                "an untrusted client's X-Forwarded-For is its address alone"
            );
            for n in ["x-real-ip", "x-forwarded-port", "x-forwarded-server"] {
                assert!(!out.contains_key(n), "{n} kept from an untrusted client");
            }
        }
    }
    if policy.forwarded {
        let (fwd, own) = (
            fwd.expect("Forwarded written"),
            own.expect("Forwarded written"),
        );
        assert_eq!(out.get_all(http::header::FORWARDED).iter().count(), 1);
        assert!(
            own.starts_with(b"for="),
            "{:?}",
            String::from_utf8_lossy(&own)
        );
        assert_eq!(
            forwarded_host(&own).as_deref(),
            host.filter(|h| !h.is_empty()),
            "the host does not read back from {:?}",
            String::from_utf8_lossy(&own)
        );
        if is_trusted {
            let tail = [b", ".as_slice(), &own].concat();
            assert!(fwd == own || fwd.ends_with(&tail), "{fwd:?} vs {own:?}");
        } else {
            assert_eq!(fwd, own);
        }
    } else {
        assert!(fwd.is_none());
    }
});
