//! What a SERVER span records beyond the fixed HTTP attributes: request and response headers
//! named in an allowlist, and the query string with the values of sensitive keys redacted.
//!
//! Headers are recorded only when the operator lists them, so `Authorization`, `Cookie` and
//! the like never reach a span unless someone asked for exactly them. Attribute names follow
//! the OpenTelemetry HTTP semantic conventions: `http.request.header.<name>` and
//! `http.response.header.<name>` (lower-case name, value a string array with one element per
//! header line), and `url.query` ("Sensitive content provided in `url.query` SHOULD be
//! scrubbed", semconv "URL" attributes).
//!
//! Pure: `http` types only, no Pingora.

use http::{HeaderMap, HeaderName};
use std::sync::Arc;

/// The value written in place of a redacted query value (the semconv's choice of word).
pub const REDACTED: &str = "REDACTED";

/// Query keys whose values are always redacted in `redacted` mode, compared after
/// [`normalize_key`]: the semantic conventions' list (`AWSAccessKeyId`, `Signature`, `sig`,
/// `X-Goog-Signature`) plus common names of credentials.
pub const SENSITIVE_QUERY_KEYS: &[&str] =
    &["awsaccesskeyid", "sig", "code", "key", "jwt", "pass", "pwd"];

/// Fragments that make a query key sensitive wherever they appear in it (after
/// [`normalize_key`]): `access_token`, `client_secret`, `api-key`, `X-Amz-Signature`,
/// `sessionid`, ... Over-redacting a harmless key costs a little detail; under-redacting leaks
/// a credential into every trace backend.
pub const SENSITIVE_FRAGMENTS: &[&str] = &[
    "token",
    "secret",
    "passw",
    "signature",
    "credential",
    "auth",
    "session",
    "apikey",
    "private",
];

/// A query key as compared: percent-decoded (`+` is a space), lower case, and without `-`,
/// `_`, `.` and spaces, so `api_key`, `API-Key` and `api%20key` are one key.
pub fn normalize_key(key: &str) -> String {
    percent_decode_lossy(key)
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// How `url.query` is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMode {
    /// Not recorded.
    Off,
    /// Recorded, with the values of sensitive keys replaced by `REDACTED`.
    #[default]
    Redacted,
    /// Recorded as received. Only for deployments whose query strings carry no secrets.
    Full,
}

/// One captured header: its attribute name and every value it had, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedHeader {
    /// `http.request.header.<name>` or `http.response.header.<name>`.
    pub key: Arc<str>,
    pub values: Vec<String>,
}

/// A header to capture, with its attribute name built once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    name: HeaderName,
    key: Arc<str>,
}

/// What to capture; part of the tracer's options. The default captures no header and records
/// `url.query` redacted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capture {
    request: Vec<Wanted>,
    response: Vec<Wanted>,
    query: QueryMode,
    /// Extra sensitive query keys ([`normalize_key`]d), on top of the built-in ones.
    sensitive: Vec<String>,
}

impl Capture {
    /// Builds the capture settings. Header names are matched case-insensitively (HTTP field
    /// names are case-insensitive, RFC 9110 §5.1) and recorded in lower case.
    pub fn new(
        request_headers: &[HeaderName],
        response_headers: &[HeaderName],
        query: QueryMode,
        sensitive_query_keys: &[String],
    ) -> Capture {
        let wanted = |names: &[HeaderName], prefix: &str| {
            let mut out: Vec<Wanted> = Vec::with_capacity(names.len());
            let mut seen = std::collections::HashSet::with_capacity(names.len());
            for n in names {
                if seen.insert(n) {
                    out.push(Wanted {
                        name: n.clone(),
                        key: format!("{prefix}{}", n.as_str()).into(),
                    });
                }
            }
            out
        };
        Capture {
            request: wanted(request_headers, "http.request.header."),
            response: wanted(response_headers, "http.response.header."),
            query,
            sensitive: sensitive_query_keys
                .iter()
                .map(|k| normalize_key(k))
                .collect(),
        }
    }

    /// How `url.query` is recorded.
    pub fn query_mode(&self) -> QueryMode {
        self.query
    }

    /// True when response headers are captured (so callers can skip the work otherwise).
    pub fn wants_response_headers(&self) -> bool {
        !self.response.is_empty()
    }

    /// The listed request headers present in `headers`.
    pub fn request_headers(&self, headers: &HeaderMap) -> Vec<CapturedHeader> {
        pick(&self.request, headers)
    }

    /// The listed response headers present in `headers`.
    pub fn response_headers(&self, headers: &HeaderMap) -> Vec<CapturedHeader> {
        pick(&self.response, headers)
    }

    /// The `url.query` value for a request's query string (without the `?`), or `None` when
    /// it is not recorded or empty.
    pub fn url_query(&self, query: Option<&str>) -> Option<String> {
        let q = query.filter(|q| !q.is_empty())?;
        match self.query {
            QueryMode::Off => None,
            QueryMode::Full => Some(q.to_owned()),
            QueryMode::Redacted => Some(self.redact(q)),
        }
    }

    /// True when the value of query key `key` (as written, possibly percent-encoded) must not
    /// be recorded.
    pub fn is_sensitive(&self, key: &str) -> bool {
        let k = normalize_key(key);
        SENSITIVE_QUERY_KEYS.contains(&k.as_str())
            || SENSITIVE_FRAGMENTS.iter().any(|f| k.contains(f))
            || self.sensitive.contains(&k)
    }

    /// `query` with the value of every sensitive key replaced by `REDACTED`. Pairs are split
    /// on `&` (and `;`, which some servers also accept); keys, order and separators are kept,
    /// so the result reads like the original.
    pub fn redact(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len());
        let mut rest = query;
        loop {
            let end = rest.find(['&', ';']).unwrap_or(rest.len());
            let (pair, tail) = rest.split_at(end);
            match pair.split_once('=') {
                Some((k, _)) if self.is_sensitive(k) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
            let Some(sep) = tail.chars().next() else {
                break;
            };
            out.push(sep);
            rest = &tail[1..];
        }
        out
    }
}

fn pick(wanted: &[Wanted], headers: &HeaderMap) -> Vec<CapturedHeader> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for w in wanted {
        let values: Vec<String> = headers
            .get_all(&w.name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if !values.is_empty() {
            out.push(CapturedHeader {
                key: w.key.clone(),
                values,
            });
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (form encoding's space) so `access%5Ftoken` is recognised;
/// anything malformed is kept as is.
fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(query: QueryMode, extra: &[&str]) -> Capture {
        Capture::new(
            &[
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("accept"),
            ],
            &[HeaderName::from_static("content-type")],
            query,
            &extra.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn redaction_table() {
        let c = capture(QueryMode::Redacted, &["tenant"]);
        // (query, expected url.query, reason)
        let cases = [
            (
                "q=shoes&page=2",
                "q=shoes&page=2",
                "nothing sensitive is kept as is",
            ),
            (
                "access_token=abc&page=2",
                "access_token=REDACTED&page=2",
                "a fragment (token) anywhere in the key",
            ),
            (
                "X-Amz-Signature=ff&X-Amz-Credential=k",
                "X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED",
                "presigned URL parts, any case (semconv's list)",
            ),
            (
                "sig=1&Signature=2",
                "sig=REDACTED&Signature=REDACTED",
                "semconv's sig and Signature",
            ),
            (
                "access%5Ftoken=abc",
                "access%5Ftoken=REDACTED",
                "percent-encoded key is decoded before matching",
            ),
            (
                "api+key=abc&API-Key=d",
                "api+key=REDACTED&API-Key=REDACTED",
                "+ is a space; separators and case do not matter",
            ),
            (
                "tenant=acme",
                "tenant=REDACTED",
                "the operator's own sensitive key",
            ),
            (
                "token",
                "token",
                "a key without a value has nothing to redact",
            ),
            (
                "a=1;password=x",
                "a=1;password=REDACTED",
                "; separates pairs too",
            ),
            ("&&token=x&", "&&token=REDACTED&", "empty pairs are kept"),
            (
                "password=a=b",
                "password=REDACTED",
                "the whole value after the first =",
            ),
        ];
        for (q, want, why) in cases {
            assert_eq!(c.url_query(Some(q)).as_deref(), Some(want), "{why}");
        }
    }

    #[test]
    fn query_modes() {
        // (mode, query, expected, reason)
        let cases = [
            (QueryMode::Off, Some("token=x"), None, "off records nothing"),
            (
                QueryMode::Full,
                Some("token=x"),
                Some("token=x"),
                "full keeps secrets: the operator said so",
            ),
            (
                QueryMode::Redacted,
                Some(""),
                None,
                "an empty query is not recorded",
            ),
            (QueryMode::Redacted, None, None, "no query"),
        ];
        for (mode, q, want, why) in cases {
            assert_eq!(capture(mode, &[]).url_query(q).as_deref(), want, "{why}");
        }
    }

    #[test]
    fn only_listed_headers_are_captured() {
        let c = capture(QueryMode::Redacted, &[]);
        let mut h = HeaderMap::new();
        h.append("X-Request-Id", "r1".parse().unwrap());
        h.append("accept", "text/html".parse().unwrap());
        h.append("accept", "application/json".parse().unwrap());
        h.append("authorization", "Bearer secret".parse().unwrap());
        h.append("cookie", "sid=secret".parse().unwrap());
        let got = c.request_headers(&h);
        assert_eq!(
            got,
            vec![
                CapturedHeader {
                    key: "http.request.header.x-request-id".into(),
                    values: vec!["r1".into()],
                },
                CapturedHeader {
                    key: "http.request.header.accept".into(),
                    values: vec!["text/html".into(), "application/json".into()],
                },
            ],
            "listed headers in list order, one value per line; never unlisted ones"
        );
        assert!(Capture::default().request_headers(&h).is_empty());
        assert!(!Capture::default().wants_response_headers());
    }

    /// Property: redaction never panics, keeps the pair structure, and no value of a
    /// sensitive key survives.
    #[test]
    fn redaction_never_panics_and_never_leaks() {
        let c = capture(QueryMode::Redacted, &[]);
        let alphabet: &[u8] = b"ab=&;%5F+tokenTOKEN\xc3\xa9 ?#=x1";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let q = String::from_utf8_lossy(&bytes).into_owned();
            let out = c.redact(&q);
            let split = |s: &str| s.split(['&', ';']).count();
            assert_eq!(split(&out), split(&q), "pair count kept for {q:?}");
            for (pin, pout) in q.split(['&', ';']).zip(out.split(['&', ';'])) {
                if let Some((k, _)) = pin.split_once('=') {
                    if c.is_sensitive(k) {
                        assert_eq!(pout, format!("{k}={REDACTED}"), "{q:?}");
                    } else {
                        assert_eq!(pout, pin, "{q:?}");
                    }
                }
            }
            let _ = percent_decode_lossy(&q);
        }
    }
}
