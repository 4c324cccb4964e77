//! Route header edits (`routes[].request_headers` / `response_headers`): building them from
//! config values, then applying them to a header map.
//!
//! Input: the first byte picks the side (bit 0: response). Then `\n`-separated lines:
//! `s NAME=VALUE` (set), `a NAME=V1|V2` (add), `r NAME` (remove), `h NAME: VALUE` (a header
//! the message already has); other lines are ignored.
//!
//! Invariants: accepted edits touch no reserved name (framing, connection management, `host`),
//! and their values are trimmed, non-empty ASCII; applied to a message, removed names are
//! gone, a set name has its value then its added values, an added name keeps its earlier
//! lines then has the added ones, and every other header is left as it was.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tracegate::routing::headers::{HeaderEdits, Side};

const RESERVED: [&str; 9] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fuzz_target!(|data: &[u8]| {
    let Some((&bits, rest)) = data.split_first() else {
        return;
    };
    let side = if bits & 1 == 0 {
        Side::Request
    } else {
        Side::Response
    };
    let text = String::from_utf8_lossy(rest);
    let mut set: Vec<(&str, &str)> = Vec::new();
    let mut add: Vec<(&str, Vec<String>)> = Vec::new();
    let mut remove: Vec<String> = Vec::new();
    let mut incoming = HeaderMap::new();
    for line in text.split('\n') {
        let Some((op, arg)) = line.split_at_checked(2) else {
            continue;
        };
        match op {
            "s " => set.push(arg.split_once('=').unwrap_or((arg, ""))),
            "a " => {
                let (n, vs) = arg.split_once('=').unwrap_or((arg, ""));
                add.push((n, vs.split('|').map(str::to_owned).collect()));
            }
            "r " => remove.push(arg.to_owned()),
            "h " => {
                if let Some((n, v)) = arg.split_once(':') {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(n.as_bytes()),
                        HeaderValue::from_str(v.trim()),
                    ) {
                        incoming.append(n, v);
                    }
                }
            }
            _ => {}
        }
    }
    let add_refs: Vec<(&str, &[String])> = add.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let edits = match HeaderEdits::parse(side, &set, &add_refs, &remove) {
        Ok(e) => e,
        Err((key, reason)) => {
            assert!(!key.is_empty() && !reason.is_empty());
            return;
        }
    };

    let names = edits
        .remove
        .iter()
        .chain(edits.set.iter().map(|(n, _)| n))
        .chain(edits.add.iter().map(|(n, _)| n));
    for n in names {
        assert!(!RESERVED.contains(&n.as_str()), "reserved {n} accepted");
    }
    for (_, v) in edits.set.iter().chain(&edits.add) {
        let s = v.to_str().expect("ASCII value");
        assert!(!s.is_empty() && s.trim() == s, "value {s:?} not trimmed");
    }

    let mut out = incoming.clone();
    edits.apply(&mut out);
    let added = |n: &HeaderName| -> Vec<&HeaderValue> {
        edits
            .add
            .iter()
            .filter(|(a, _)| a == n)
            .map(|(_, v)| v)
            .collect()
    };
    for n in &edits.remove {
        assert!(!out.contains_key(n), "{n} not removed");
    }
    for (n, v) in &edits.set {
        let mut want = vec![v];
        want.extend(added(n));
        assert_eq!(out.get_all(n).iter().collect::<Vec<_>>(), want, "set {n}");
    }
    for (n, _) in &edits.add {
        if edits.set.iter().any(|(s, _)| s == n) {
            continue;
        }
        let mut want: Vec<&HeaderValue> = incoming.get_all(n).iter().collect();
        want.extend(added(n));
        assert_eq!(out.get_all(n).iter().collect::<Vec<_>>(), want, "add {n}");
    }
    for n in incoming.keys() {
        let touched = edits.remove.contains(n)
            || edits.set.iter().any(|(s, _)| s == n)
            || edits.add.iter().any(|(a, _)| a == n);
        if !touched {
            assert_eq!(
                out.get_all(n).iter().collect::<Vec<_>>(),
                incoming.get_all(n).iter().collect::<Vec<_>>(),
                "{n} changed without an edit"
            );
        }
    }
});
