//! Per-route header edits: `routes[].request_headers` (what the upstream receives, as nginx
//! `proxy_set_header` and Traefik's `customRequestHeaders`) and `routes[].response_headers` (what
//! the client receives, as nginx `add_header ... always`, `proxy_hide_header` and Traefik's
//! `customResponseHeaders`).
//!
//! Edits run in a fixed order: `remove`, then `set` (replaces every line of the name), then
//! `add` (appends a line, keeping those already there). Names whose meaning belongs to HTTP's
//! framing or connection handling are refused when the config is loaded: a route could otherwise
//! corrupt the message (RFC 9112 §6 message body length, RFC 9110 §7.6.1 `Connection`).

use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashSet;

/// Which message an edit list applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request sent upstream.
    Request,
    /// The response sent to the client.
    Response,
}

/// One route's edits of one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderEdits {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
}

/// One step of [`HeaderEdits::for_each`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeaderEdit<'a> {
    /// Remove every line of the name.
    Remove(&'a HeaderName),
    /// Replace every line of the name with this one.
    Set(&'a HeaderName, &'a HeaderValue),
    /// Append a line.
    Add(&'a HeaderName, &'a HeaderValue),
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Calls `f` for each edit, in the order they apply.
    pub fn for_each(&self, mut f: impl FnMut(HeaderEdit<'_>)) {
        self.remove.iter().for_each(|n| f(HeaderEdit::Remove(n)));
        self.set.iter().for_each(|(n, v)| f(HeaderEdit::Set(n, v)));
        self.add.iter().for_each(|(n, v)| f(HeaderEdit::Add(n, v)));
    }

    /// Applies the edits to a header map (the proxy applies them to Pingora's headers the same
    /// way, keeping its header-case map).
    pub fn apply(&self, headers: &mut HeaderMap) {
        self.for_each(|e| match e {
            HeaderEdit::Remove(n) => {
                headers.remove(n);
            }
            HeaderEdit::Set(n, v) => {
                headers.insert(n.clone(), v.clone());
            }
            HeaderEdit::Add(n, v) => {
                headers.append(n.clone(), v.clone());
            }
        });
    }

    /// Checks the config lists. On error, returns the sub-key (`set.X-Foo`, `remove[2]`) and
    /// the reason.
    pub fn parse(
        side: Side,
        set: &[(&str, &str)],
        add: &[(&str, &[String])],
        remove: &[String],
    ) -> Result<HeaderEdits, (String, String)> {
        let mut out = HeaderEdits::default();
        // The names removed, set and added so far: one look-up each, however long the lists.
        let (mut removed, mut set_names, mut added) =
            (HashSet::new(), HashSet::new(), HashSet::new());
        for (i, name) in remove.iter().enumerate() {
            let key = format!("remove[{i}]");
            let n = edit_name(name, side).map_err(|r| (key.clone(), r))?;
            if !removed.insert(n.clone()) {
                return Err((key, format!("{name:?} is listed twice")));
            }
            out.remove.push(n);
        }
        for (name, value) in set {
            let key = format!("set.{name}");
            let n = edit_name(name, side).map_err(|r| (key.clone(), r))?;
            if !set_names.insert(n.clone()) {
                return Err((key, format!("{name:?} is set twice (names ignore case)")));
            }
            if removed.contains(&n) {
                return Err((key, format!("{name:?} is both removed and set")));
            }
            out.set
                .push((n, edit_value(name, value).map_err(|r| (key, r))?));
        }
        for (name, values) in add {
            let key = format!("add.{name}");
            let n = edit_name(name, side).map_err(|r| (key.clone(), r))?;
            if removed.contains(&n) {
                return Err((
                    key,
                    format!("{name:?} is both removed and added; use set to replace it"),
                ));
            }
            if !added.insert(n.clone()) {
                return Err((
                    key,
                    format!("{name:?} is added twice (names ignore case); give a list of values"),
                ));
            }
            if values.is_empty() {
                return Err((key, "an empty list adds nothing".into()));
            }
            for v in values.iter() {
                out.add.push((
                    n.clone(),
                    edit_value(name, v).map_err(|r| (key.clone(), r))?,
                ));
            }
        }
        Ok(out)
    }
}

/// Names no route may edit: framing and connection management (hop-by-hop, RFC 9110 §7.6.1),
/// and `host`, which `upstreams.<name>.pass_host`/`host` decide.
const RESERVED: [(&str, &str); 9] = [
    ("connection", "connection management belongs to the proxy"),
    ("content-length", "it frames the message; the proxy sets it"),
    (
        "host",
        "set by upstreams.<name>.pass_host or upstreams.<name>.host",
    ),
    ("keep-alive", "connection management belongs to the proxy"),
    (
        "proxy-connection",
        "connection management belongs to the proxy",
    ),
    ("te", "a hop-by-hop header the proxy negotiates itself"),
    ("trailer", "it frames the message; the proxy sets it"),
    (
        "transfer-encoding",
        "it frames the message; the proxy sets it",
    ),
    (
        "upgrade",
        "protocol upgrades (WebSocket) are negotiated by the proxy",
    ),
];

/// A header name a route may edit on `side`.
pub fn edit_name(name: &str, side: Side) -> Result<HeaderName, String> {
    let n = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    if let Some((_, why)) = RESERVED.iter().find(|(r, _)| *r == n.as_str()) {
        let why = if n == http::header::HOST && side == Side::Response {
            "Host is not a response header"
        } else {
            why
        };
        return Err(format!("{name:?} cannot be edited: {why}"));
    }
    Ok(n)
}

/// A header value from the config: trimmed (surrounding whitespace is not part of a field
/// value, RFC 9110 §5.5), not empty, and ASCII ([`config_value`]).
fn edit_value(name: &str, value: &str) -> Result<HeaderValue, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!(
            "the value of {name:?} is empty; use remove to delete a header"
        ));
    }
    config_value(v)
        .ok_or_else(|| format!("the value of {name:?} has characters not allowed in a header"))
}

/// A header value written in the config: visible ASCII, spaces and tabs. Bytes above 0x7f
/// (obs-text, RFC 9110 §5.5) are refused: recipients may read them as anything.
pub fn config_value(v: &str) -> Option<HeaderValue> {
    if !v.is_ascii() {
        return None;
    }
    HeaderValue::from_str(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn edits_apply_in_order_table() {
        let link = owned(&["</a.css>; rel=preload", "</b.js>; rel=preload"]);
        let one = owned(&["1"]);
        let e = HeaderEdits::parse(
            Side::Response,
            &[("X-Frame-Options", "DENY"), ("cache-control", "no-store")],
            &[("Link", &link), ("cache-control", &one)],
            &owned(&["Server", "x-powered-by"]),
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("apache"));
        h.insert("x-powered-by", HeaderValue::from_static("php"));
        h.append("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        h.append("x-frame-options", HeaderValue::from_static("ALLOW"));
        h.insert("link", HeaderValue::from_static("</c>; rel=next"));
        h.insert("x-keep", HeaderValue::from_static("k"));
        e.apply(&mut h);
        let all =
            |n: &str| -> Vec<&str> { h.get_all(n).iter().map(|v| v.to_str().unwrap()).collect() };
        // (name, lines after the edits, reason)
        let cases: [(&str, Vec<&str>, &str); 6] = [
            ("server", vec![], "removed"),
            (
                "x-powered-by",
                vec![],
                "removed (name given in another case)",
            ),
            ("x-frame-options", vec!["DENY"], "set replaces every line"),
            (
                "link",
                vec![
                    "</c>; rel=next",
                    "</a.css>; rel=preload",
                    "</b.js>; rel=preload",
                ],
                "add appends each value after the existing lines",
            ),
            ("cache-control", vec!["no-store", "1"], "set, then add"),
            ("x-keep", vec!["k"], "untouched"),
        ];
        for (name, want, why) in cases {
            assert_eq!(all(name), want, "{why}");
        }
    }

    #[test]
    fn refused_edits_table() {
        let x = owned(&["x"]);
        let empty: Vec<String> = vec![];
        // (side, set, add, remove, sub-key, words in the reason, reason)
        type Case<'a> = (
            Side,
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a [String])],
            &'a [&'a str],
            &'a str,
            &'a str,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                Side::Request,
                &[("Content-Length", "5")],
                &[],
                &[],
                "set.Content-Length",
                "frames the message",
                "framing",
            ),
            (
                Side::Request,
                &[],
                &[("transfer-encoding", &x)],
                &[],
                "add.transfer-encoding",
                "frames the message",
                "framing, add",
            ),
            (
                Side::Response,
                &[],
                &[],
                &["Connection"],
                "remove[0]",
                "connection management",
                "hop-by-hop",
            ),
            (
                Side::Request,
                &[("Host", "a")],
                &[],
                &[],
                "set.Host",
                "pass_host",
                "Host belongs to pass_host",
            ),
            (
                Side::Response,
                &[("host", "a")],
                &[],
                &[],
                "set.host",
                "not a response header",
                "Host on a response",
            ),
            (
                Side::Request,
                &[],
                &[],
                &["upgrade"],
                "remove[0]",
                "WebSocket",
                "upgrades",
            ),
            (
                Side::Request,
                &[("x bad", "1")],
                &[],
                &[],
                "set.x bad",
                "not a valid header name",
                "a space in a name",
            ),
            (
                Side::Request,
                &[("x-a", "a\u{1}b")],
                &[],
                &[],
                "set.x-a",
                "not allowed",
                "a control character",
            ),
            (
                Side::Request,
                &[("x-a", "caf\u{e9}")],
                &[],
                &[],
                "set.x-a",
                "not allowed",
                "non-ASCII",
            ),
            (
                Side::Request,
                &[("x-a", "  ")],
                &[],
                &[],
                "set.x-a",
                "use remove",
                "an empty value",
            ),
            (
                Side::Request,
                &[("X-A", "1"), ("x-a", "2")],
                &[],
                &[],
                "set.x-a",
                "set twice",
                "same name in two cases",
            ),
            (
                Side::Request,
                &[("x-a", "1")],
                &[],
                &["X-A"],
                "set.x-a",
                "both removed and set",
                "contradiction",
            ),
            (
                Side::Request,
                &[],
                &[("x-a", &x)],
                &["x-a"],
                "add.x-a",
                "both removed and added",
                "contradiction, add",
            ),
            (
                Side::Request,
                &[],
                &[("x-a", &empty)],
                &[],
                "add.x-a",
                "adds nothing",
                "empty add list",
            ),
            (
                Side::Request,
                &[],
                &[],
                &["x-a", "X-A"],
                "remove[1]",
                "listed twice",
                "remove twice",
            ),
        ];
        for (side, set, add, remove, key, words, why) in cases {
            let remove: Vec<String> = remove.iter().map(|s| s.to_string()).collect();
            let (k, r) = HeaderEdits::parse(*side, set, add, &remove).expect_err(why);
            assert_eq!(&k, key, "{why}: {r}");
            assert!(r.contains(words), "{why}: {r}");
        }
    }

    #[test]
    fn for_each_order() {
        let one = owned(&["2"]);
        let e = HeaderEdits::parse(
            Side::Request,
            &[("x-b", "1")],
            &[("x-c", &one)],
            &owned(&["x-a"]),
        )
        .unwrap();
        let mut seen = Vec::new();
        e.for_each(|e| {
            seen.push(match e {
                HeaderEdit::Remove(n) => format!("-{n}"),
                HeaderEdit::Set(n, v) => format!("={n}:{}", v.to_str().unwrap()),
                HeaderEdit::Add(n, v) => format!("+{n}:{}", v.to_str().unwrap()),
            })
        });
        assert_eq!(seen, ["-x-a", "=x-b:1", "+x-c:2"]);
        assert!(HeaderEdits::default().is_empty());
        assert!(!e.is_empty());
    }

    /// Arbitrary names and values never panic the checks.
    #[test]
    fn parse_never_panics() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let alphabet = b"aZ-_: \t\r\n\x01\x7f\xc3\xa9\"\\,;=hostcnte";
        for _ in 0..20_000 {
            let mut gen = |max: usize| crate::testing::random_text(&mut rng, alphabet, max);
            let (n, v, r) = (gen(12), gen(12), gen(12));
            let vs = vec![v.clone()];
            for side in [Side::Request, Side::Response] {
                if let Ok(e) =
                    HeaderEdits::parse(side, &[(&n, &v)], &[(&r, &vs)], std::slice::from_ref(&r))
                {
                    e.apply(&mut HeaderMap::new());
                }
            }
        }
    }
}
