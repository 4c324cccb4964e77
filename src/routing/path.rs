//! The request path as the proxy reads it: one normal form, computed once per request, that the
//! routes match on, that the SERVER span's `url.path` and the request's record show, and that is
//! sent upstream (`strip_prefix`/`add_prefix` apply to it). Without it, a route answering
//! `/admin` with 403 is walked around by `/%61dmin`, `/./admin` or `//admin`, which the router
//! would compare byte for byte while the backend normalises them to `/admin`.
//!
//! [`normalize`] owns the rules (`server.path`, [`PathPolicy`]), applied in one pass:
//!
//! 1. **Percent-encodings** (RFC 3986 §2.1): a `%` not followed by two hex digits is refused.
//!    An encoded *unreserved* character (ALPHA, DIGIT, `-`, `.`, `_`, `~`; §2.3) is decoded, as
//!    §6.2.2.2 allows: `%61` is `a`, `%2e` is `.`. Every other encoding keeps its form with
//!    upper-case hex (§6.2.2.1): `%c3%a9` becomes `%C3%A9`.
//! 2. **Encodings without a single meaning** ([`EncodedSet`], Traefik's list): `%2F` (slash),
//!    `%5C` (backslash), `%00` (null), `%3B` (semicolon), `%25` (percent), `%3F` (question
//!    mark) and `%23` (hash), in any case of hex, are refused unless
//!    [`PathPolicy::allow_encoded`] names them; an allowed one is kept encoded, never decoded.
//!    Each is data to one backend and syntax to another: a backend that decodes `%2F` before
//!    it splits segments sees `/a%2F..%2Fadmin` as `/a/../admin`; Windows and several Java
//!    servers read `\` as `/`; C code stops at NUL; `;` starts path parameters (Tomcat, Jetty);
//!    `%25` becomes a new `%` for a backend that decodes twice (`%252e` → `%2e` → `.`); `?`
//!    and `#` end the path for a backend that parses the decoded string again. A raw `\` is
//!    refused with them unless `backslash` is allowed (it is written `%5C` then: RFC 3986 §2
//!    does not allow a raw `\` in a URI).
//! 3. **Dot segments** (§5.2.4 `remove_dot_segments`): `.` and `..` segments are resolved,
//!    those that came from decoding `%2e` included, and `..` above the root stays at the root
//!    (§5.2.4 drops it: `/../a` is `/a`).
//! 4. **Duplicate slashes** ([`PathPolicy::merge_slashes`], on by default as in Traefik and
//!    Envoy): empty segments are dropped as the segments are read, so `//admin` is `/admin`
//!    and a `..` removes the previous non-empty segment (`/a//../b` is `/b`, as Tomcat, which
//!    merges before it resolves dots, reads it). A trailing `/` is kept: `/a/` is not `/a`.
//!
//! **Path parameters.** A raw `;` is a sub-delimiter (§3.3) whose meaning belongs to the
//! application: `/a;v=1/b` and `/page;jsessionid=…` are ordinary paths, kept as they are. But a
//! Tomcat-style server strips `;…` from every segment before it resolves dots, so it reads
//! `/..;/admin` as `/../admin`, and `/;x/admin` as `//admin`: segments that look like names
//! here and like `..` or nothing there. A `.`, `..` or empty segment with parameters
//! (`..;x`, `.;`, `;x`, and their `%3B` forms when `semicolon` is allowed) is therefore refused:
//! no client has a reason to send one. Parameters on a named segment stay: `/admin;x` still
//! starts with `/admin`, but an exact `match.path: /admin`, or a prefix ending in `/`
//! (`/admin/`), does not match `/admin;x` or `/admin;x/y`, which such a backend reads as
//! `/admin` and `/admin/y`: guard those backends with a prefix without the trailing `/`.
//!
//! **Case.** Paths are case-sensitive (RFC 3986 §6.2.2.1 lets only the scheme and host be
//! folded), as in nginx, Envoy and Traefik: `/ADMIN` is not `/admin`. A backend that is not
//! (Windows, a case-insensitive file system) needs its guards written for every case it
//! serves.
//!
//! **Not starting with `/`.** The proxy refuses such request targets elsewhere (only `*`, the
//! asterisk-form of `OPTIONS`, RFC 9112 §3.2.4, gets this far). [`normalize`] still treats any
//! string without panicking: a path without a leading `/` is normalised as a relative path,
//! with the same rules, and stays relative (`a/./b` is `a/b`, `../a` is `a`, `*` is `*`).
//!
//! **Without normalising** (`normalize: false`) the path is routed and sent as received, but
//! the encodings of rule 2 are still refused unless allowed (only those: a malformed `%` or a
//! dot segment passes), as Envoy keeps its escaped-slash action apart from its path
//! normalisation. That gives up the guard: `/x/../admin` reaches a backend that resolves it
//! while no `/admin` route matched.
//!
//! The common case costs one scan and no allocation: a path already in normal form is returned
//! borrowed.

use std::borrow::Cow;
use std::fmt;

/// `server.path`: how request paths are normalised before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPolicy {
    /// Decode unreserved characters, upper-case the hex of the other encodings, resolve dot
    /// segments (and merge slashes if asked). Off: the path is used as received, and only the
    /// encodings `allow_encoded` does not name are refused.
    pub normalize: bool,
    /// Merge duplicate slashes (with `normalize` only).
    pub merge_slashes: bool,
    /// The refusable encodings that are let through (kept encoded).
    pub allow_encoded: EncodedSet,
}

impl Default for PathPolicy {
    /// Normalise, merge slashes, allow none of the refusable encodings.
    fn default() -> Self {
        PathPolicy {
            normalize: true,
            merge_slashes: true,
            allow_encoded: EncodedSet::NONE,
        }
    }
}

/// A set of the refusable percent-encoded characters, by name: `slash` (`%2F`), `backslash`
/// (`%5C`), `null` (`%00`), `semicolon` (`%3B`), `percent` (`%25`), `question_mark` (`%3F`)
/// and `hash` (`%23`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EncodedSet(u8);

impl EncodedSet {
    pub const NONE: EncodedSet = EncodedSet(0);
    /// `%2F`.
    pub const SLASH: EncodedSet = EncodedSet(1);
    /// `%5C` (and a raw `\`).
    pub const BACKSLASH: EncodedSet = EncodedSet(1 << 1);
    /// `%00`.
    pub const NULL: EncodedSet = EncodedSet(1 << 2);
    /// `%3B`.
    pub const SEMICOLON: EncodedSet = EncodedSet(1 << 3);
    /// `%25`.
    pub const PERCENT: EncodedSet = EncodedSet(1 << 4);
    /// `%3F`.
    pub const QUESTION_MARK: EncodedSet = EncodedSet(1 << 5);
    /// `%23`.
    pub const HASH: EncodedSet = EncodedSet(1 << 6);
    pub const ALL: EncodedSet = EncodedSet(0x7f);

    /// Each member: its config name, the byte it encodes, and its set.
    pub const MEMBERS: [(&'static str, u8, EncodedSet); 7] = [
        ("slash", b'/', EncodedSet::SLASH),
        ("backslash", b'\\', EncodedSet::BACKSLASH),
        ("null", 0, EncodedSet::NULL),
        ("semicolon", b';', EncodedSet::SEMICOLON),
        ("percent", b'%', EncodedSet::PERCENT),
        ("question_mark", b'?', EncodedSet::QUESTION_MARK),
        ("hash", b'#', EncodedSet::HASH),
    ];

    /// The set of these bits; bits beyond the seven members are dropped.
    pub const fn from_bits(bits: u8) -> EncodedSet {
        EncodedSet(bits & EncodedSet::ALL.0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The member named `name` (`slash`, `backslash`, ...), exactly as written in the config.
    pub fn from_name(name: &str) -> Option<EncodedSet> {
        EncodedSet::MEMBERS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|m| m.2)
    }

    /// The names of every member, in order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        EncodedSet::MEMBERS.iter().map(|m| m.0)
    }

    /// The member whose encoding is `%XX` for the byte `b`, if `b` is one of the seven.
    pub const fn of_byte(b: u8) -> Option<EncodedSet> {
        match b {
            b'/' => Some(EncodedSet::SLASH),
            b'\\' => Some(EncodedSet::BACKSLASH),
            0 => Some(EncodedSet::NULL),
            b';' => Some(EncodedSet::SEMICOLON),
            b'%' => Some(EncodedSet::PERCENT),
            b'?' => Some(EncodedSet::QUESTION_MARK),
            b'#' => Some(EncodedSet::HASH),
            _ => None,
        }
    }

    /// True when every member of `other` is in `self`.
    pub const fn contains(self, other: EncodedSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: EncodedSet) -> EncodedSet {
        EncodedSet(self.0 | other.0)
    }

    /// The members of `self` that are not in `other`.
    pub const fn difference(self, other: EncodedSet) -> EncodedSet {
        EncodedSet(self.0 & !other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the members of `self`, in [`EncodedSet::MEMBERS`] order.
    pub fn iter_names(self) -> impl Iterator<Item = &'static str> {
        EncodedSet::MEMBERS
            .iter()
            .filter(move |m| self.contains(m.2))
            .map(|m| m.0)
    }

    /// The name of the first member of `self`, if any.
    pub fn first_name(self) -> Option<&'static str> {
        self.iter_names().next()
    }
}

impl std::ops::BitOr for EncodedSet {
    type Output = EncodedSet;
    fn bitor(self, rhs: EncodedSet) -> EncodedSet {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for EncodedSet {
    fn bitor_assign(&mut self, rhs: EncodedSet) {
        *self = self.union(rhs);
    }
}

impl fmt::Display for EncodedSet {
    /// `slash, percent`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, name) in self.iter_names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// Why a path is refused; the proxy answers `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// A refusable percent-encoded character that is not allowed (here, or on the matched
    /// route), by its [`EncodedSet`] name: `slash`, `backslash`, ...
    Encoded(&'static str),
    /// A `%` not followed by two hex digits (RFC 3986 §2.1).
    BadPercent,
    /// A raw `\`, which backends disagree on (a character, or a `/`), while `backslash` is not
    /// allowed.
    Backslash,
    /// `;` parameters on a `.`, `..` or empty segment (`/..;/admin`, `/;x/admin`), which a
    /// Tomcat-style backend reads as a dot segment or as nothing.
    SegmentParameters,
    /// The request target is not UTF-8, so no normal form can be made of it (the proxy's
    /// check: [`normalize`] takes a `str`).
    NotUtf8,
}

impl fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathRefusal::Encoded(name) => {
                let byte = EncodedSet::MEMBERS
                    .iter()
                    .find(|m| m.0 == *name)
                    .map_or(0, |m| m.1);
                let what = name.replace('_', " ");
                write!(f, "an encoded {what} (%{byte:02X}) is not allowed in the path")
            }
            PathRefusal::BadPercent => {
                f.write_str("a '%' in the path is not followed by two hex digits")
            }
            PathRefusal::Backslash => f.write_str("a '\\' is not allowed in the path"),
            PathRefusal::SegmentParameters => f.write_str(
                "a '.', '..' or empty path segment has ';' parameters, which some servers read as a dot segment",
            ),
            PathRefusal::NotUtf8 => f.write_str("the request target is not UTF-8"),
        }
    }
}

impl std::error::Error for PathRefusal {}

/// A path in normal form, and the refusable encodings it keeps (all of them allowed by the
/// policy it was normalised with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    pub path: Cow<'a, str>,
    /// The members of [`EncodedSet`] that appear encoded in `path` (a raw `\` counts as
    /// `backslash`, as it is written `%5C`).
    pub kept: EncodedSet,
}

/// The normal form of `path` (the path part of a request target, without its query) under
/// `policy`, borrowed when `path` is already in it; see the module documentation for the rules.
///
/// ```
/// use tracegate::routing::path::{normalize, PathPolicy, PathRefusal};
///
/// let p = PathPolicy::default();
/// assert_eq!(normalize("/%61dmin/./x/../y", &p).unwrap(), "/admin/y");
/// assert_eq!(normalize("//api//v1/", &p).unwrap(), "/api/v1/");
/// assert_eq!(normalize("/a%2fb", &p), Err(PathRefusal::Encoded("slash")));
/// assert_eq!(normalize("/..;/admin", &p), Err(PathRefusal::SegmentParameters));
/// assert!(matches!(normalize("/api/v1/users", &p), Ok(std::borrow::Cow::Borrowed(_))));
/// ```
pub fn normalize<'a>(path: &'a str, policy: &PathPolicy) -> Result<Cow<'a, str>, PathRefusal> {
    normalize_kept(path, policy).map(|n| n.path)
}

/// [`normalize`], also saying which refusable encodings the result keeps: what the proxy
/// checks against the matched route's own `allow_encoded`.
pub fn normalize_kept<'a>(
    path: &'a str,
    policy: &PathPolicy,
) -> Result<Normalized<'a>, PathRefusal> {
    if !policy.normalize {
        return check_raw(path, policy.allow_encoded).map(|kept| Normalized {
            path: Cow::Borrowed(path),
            kept,
        });
    }
    if let Some(kept) = unchanged(path, policy)? {
        return Ok(Normalized {
            path: Cow::Borrowed(path),
            kept,
        });
    }
    rewrite(path, policy).map(|(p, kept)| Normalized {
        path: Cow::Owned(p),
        kept,
    })
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The byte encoded at `b[i..i + 3]` (`b[i]` is `%`), and whether its hex is upper-case
/// (§6.2.2.1); a `%` without two hex digits after it is refused (§2.1).
fn percent_at(b: &[u8], i: usize) -> Result<(u8, bool), PathRefusal> {
    match (b.get(i + 1), b.get(i + 2)) {
        (Some(&h), Some(&l)) => match (hex_value(h), hex_value(l)) {
            (Some(hv), Some(lv)) => Ok((
                (hv << 4) | lv,
                !h.is_ascii_lowercase() && !l.is_ascii_lowercase(),
            )),
            _ => Err(PathRefusal::BadPercent),
        },
        _ => Err(PathRefusal::BadPercent),
    }
}

/// An encoded refusable byte: its set when `allow` lets it through.
fn refusable(v: u8, allow: EncodedSet) -> Result<EncodedSet, PathRefusal> {
    match EncodedSet::of_byte(v) {
        None => Ok(EncodedSet::NONE),
        Some(set) if allow.contains(set) => Ok(set),
        Some(set) => Err(PathRefusal::Encoded(set.first_name().unwrap_or("?"))),
    }
}

/// `normalize: false`: only the refusable encodings are looked at (any case of hex; a `%`
/// without two hex digits after it is passed over).
fn check_raw(path: &str, allow: EncodedSet) -> Result<EncodedSet, PathRefusal> {
    let b = path.as_bytes();
    let mut kept = EncodedSet::NONE;
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'%') {
        let at = i + p;
        match percent_at(b, at) {
            Ok((v, _)) => {
                kept |= refusable(v, allow)?;
                i = at + 3;
            }
            Err(_) => i = at + 1,
        }
    }
    Ok(kept)
}

/// What a segment (already in normal form) is, for dot-segment removal and slash merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Name,
    Empty,
    Dot,
    DotDot,
    /// `.`, `..` or nothing before `;` (or `%3B`) parameters.
    Params,
}

fn classify(seg: &[u8]) -> Segment {
    match seg.first() {
        None => return Segment::Empty,
        Some(b'.' | b';' | b'%') => {}
        Some(_) => return Segment::Name,
    }
    let base = (0..seg.len())
        .find(|&j| seg[j] == b';' || seg[j..].starts_with(b"%3B"))
        .unwrap_or(seg.len());
    match (&seg[..base], base < seg.len()) {
        (b"" | b"." | b"..", true) => Segment::Params,
        (b".", false) => Segment::Dot,
        (b"..", false) => Segment::DotDot,
        _ => Segment::Name,
    }
}

/// The fast path: one scan that checks every rule without writing anything. `Some(kept)`
/// when `path` is already in normal form; `None` when it must be rewritten (the slow path
/// then finds any refusal again, in the same order).
fn unchanged(path: &str, policy: &PathPolicy) -> Result<Option<EncodedSet>, PathRefusal> {
    let b = path.as_bytes();
    let mut kept = EncodedSet::NONE;
    let mut i = usize::from(b.first() == Some(&b'/'));
    let mut seg = i;
    loop {
        let end = i == b.len();
        if end || b[i] == b'/' {
            match classify(&b[seg..i]) {
                Segment::Name => {}
                Segment::Empty => {
                    if !end && policy.merge_slashes {
                        return Ok(None);
                    }
                }
                Segment::Dot | Segment::DotDot => return Ok(None),
                Segment::Params => return Err(PathRefusal::SegmentParameters),
            }
            if end {
                return Ok(Some(kept));
            }
            i += 1;
            seg = i;
            continue;
        }
        match b[i] {
            b'%' => {
                let (v, upper) = percent_at(b, i)?;
                if !upper || is_unreserved(v) {
                    return Ok(None);
                }
                kept |= refusable(v, policy.allow_encoded)?;
                i += 3;
            }
            b'\\' if policy.allow_encoded.contains(EncodedSet::BACKSLASH) => return Ok(None),
            b'\\' => return Err(PathRefusal::Backslash),
            _ => i += 1,
        }
    }
}

/// The slow path: the normal form, written segment by segment.
fn rewrite(path: &str, policy: &PathPolicy) -> Result<(String, EncodedSet), PathRefusal> {
    let root = usize::from(path.starts_with('/'));
    let mut out = String::with_capacity(path.len());
    out.push_str(&path[..root]);
    // What the segments bring; what the output keeps is counted at the end, since a `..`
    // may drop a segment that had one.
    let mut seen = EncodedSet::NONE;
    let mut segments = path[root..].split('/').peekable();
    while let Some(raw) = segments.next() {
        let last = segments.peek().is_none();
        let begin = out.len();
        decode_segment(raw, policy.allow_encoded, &mut out, &mut seen)?;
        // `out` is the root, then complete segments each followed by `/`, then this one.
        match classify(&out.as_bytes()[begin..]) {
            Segment::Name => {
                if !last {
                    out.push('/');
                }
            }
            Segment::Empty => {
                if !last && !policy.merge_slashes {
                    out.push('/');
                }
            }
            // §5.2.4 B: a `.` is dropped; at the end it leaves the `/` before it (`/a/.` is `/a/`).
            Segment::Dot => out.truncate(begin),
            // §5.2.4 C: a `..` is dropped with the segment before it (none above the root).
            Segment::DotDot => {
                out.truncate(begin);
                pop_segment(&mut out, root);
            }
            Segment::Params => return Err(PathRefusal::SegmentParameters),
        }
    }
    let kept = if seen.is_empty() {
        seen
    } else {
        check_raw(&out, EncodedSet::ALL)?
    };
    Ok((out, kept))
}

/// Appends `raw` (one segment) to `out` with its percent-encodings in normal form: unreserved
/// characters decoded (§2.3, §6.2.2.2), the rest in upper-case hex (§6.2.2.1), the refusable
/// ones refused unless `allow` lets them through.
fn decode_segment(
    raw: &str,
    allow: EncodedSet,
    out: &mut String,
    kept: &mut EncodedSet,
) -> Result<(), PathRefusal> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let b = raw.as_bytes();
    // The start of the run of bytes copied as they are; `%` and `\` are ASCII, so every cut
    // falls on a character boundary.
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push_str(&raw[run..i]);
                let (v, _) = percent_at(b, i)?;
                if is_unreserved(v) {
                    out.push(char::from(v));
                } else {
                    *kept |= refusable(v, allow)?;
                    out.push('%');
                    out.push(char::from(HEX[usize::from(v >> 4)]));
                    out.push(char::from(HEX[usize::from(v & 0xf)]));
                }
                i += 3;
                run = i;
            }
            b'\\' => {
                out.push_str(&raw[run..i]);
                if !allow.contains(EncodedSet::BACKSLASH) {
                    return Err(PathRefusal::Backslash);
                }
                *kept |= EncodedSet::BACKSLASH;
                out.push_str("%5C");
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&raw[run..]);
    Ok(())
}

/// Removes the last complete segment of `out` (which ends with `/`, or is the root); nothing
/// above the root (`root` is the length of the leading `/`, or 0 for a relative path).
fn pop_segment(out: &mut String, root: usize) {
    if out.len() <= root {
        return;
    }
    let without_slash = out.len() - 1;
    match out[root..without_slash].rfind('/') {
        Some(p) => out.truncate(root + p + 1),
        None => out.truncate(root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW_SLASH: PathPolicy = PathPolicy {
        normalize: true,
        merge_slashes: true,
        allow_encoded: EncodedSet::SLASH,
    };

    /// One row per rule, with the RFC section that says so.
    #[test]
    fn default_policy_table() {
        use PathRefusal::*;
        // (input, result, reason, RFC 3986 section or source)
        type Row = (
            &'static str,
            Result<&'static str, PathRefusal>,
            &'static str,
            &'static str,
        );
        let rows: &[Row] = &[
            ("/", Ok("/"), "the root", "§3.3"),
            (
                "/api/v1/users",
                Ok("/api/v1/users"),
                "already normal",
                "§6.2.2",
            ),
            (
                "/a/",
                Ok("/a/"),
                "a trailing slash is kept",
                "§6.2.3 leaves it to the scheme",
            ),
            (
                "/%61dmin",
                Ok("/admin"),
                "an encoded ALPHA is decoded",
                "§2.3, §6.2.2.2",
            ),
            ("/%61%64min", Ok("/admin"), "several", "§2.3"),
            (
                "/%41DMIN",
                Ok("/ADMIN"),
                "upper-case ALPHA too; the path keeps its case",
                "§2.3, §6.2.2.1",
            ),
            (
                "/a%2Db%5Fc%7Ed%2E%30",
                Ok("/a-b_c~d.0"),
                "every unreserved punctuation and a digit",
                "§2.3",
            ),
            (
                "/caf%c3%a9",
                Ok("/caf%C3%A9"),
                "other encodings keep their form in upper-case hex",
                "§6.2.2.1",
            ),
            ("/a%20b", Ok("/a%20b"), "a space stays encoded", "§2.1"),
            ("/a%2", Err(BadPercent), "a truncated encoding", "§2.1"),
            ("/a%zz", Err(BadPercent), "no hex digits", "§2.1"),
            ("/a%", Err(BadPercent), "a lone percent", "§2.1"),
            (
                "/a%2fb",
                Err(Encoded("slash")),
                "an encoded slash",
                "§2.2: reserved, Traefik",
            ),
            (
                "/a%2Fb",
                Err(Encoded("slash")),
                "either case of hex",
                "§2.1",
            ),
            (
                "/a%5cb",
                Err(Encoded("backslash")),
                "an encoded backslash",
                "Traefik",
            ),
            (
                "/a\\b",
                Err(Backslash),
                "a raw backslash",
                "§2: not a URI character",
            ),
            ("/a%00", Err(Encoded("null")), "an encoded NUL", "Traefik"),
            (
                "/a%3bb",
                Err(Encoded("semicolon")),
                "an encoded semicolon",
                "§3.3 sub-delims",
            ),
            (
                "/a%25b",
                Err(Encoded("percent")),
                "an encoded percent",
                "§2.4: never decoded twice",
            ),
            (
                "/%252e/admin",
                Err(Encoded("percent")),
                "the double-encoded dot",
                "§2.4",
            ),
            (
                "/a%3Fb",
                Err(Encoded("question_mark")),
                "an encoded question mark",
                "§3.4",
            ),
            ("/a%23b", Err(Encoded("hash")), "an encoded hash", "§3.5"),
            ("/./admin", Ok("/admin"), "a dot segment", "§5.2.4 B"),
            (
                "/x/../admin",
                Ok("/admin"),
                "a double-dot segment",
                "§5.2.4 C",
            ),
            (
                "/%2e/admin",
                Ok("/admin"),
                "a dot from decoding",
                "§2.3 then §5.2.4",
            ),
            (
                "/%2E%2e/admin",
                Ok("/admin"),
                "a double dot from decoding, mixed case",
                "§2.3 then §5.2.4",
            ),
            (
                "/x/%2e%2E/admin",
                Ok("/admin"),
                "an encoded double dot pops",
                "§5.2.4 C",
            ),
            ("/.%2e/x", Ok("/x"), "half encoded", "§5.2.4"),
            (
                "/../../admin",
                Ok("/admin"),
                "above the root stays at the root",
                "§5.2.4 C",
            ),
            ("/..", Ok("/"), "only a double dot", "§5.2.4 D"),
            ("/.", Ok("/"), "only a dot", "§5.2.4 D"),
            (
                "/a/.",
                Ok("/a/"),
                "a final dot leaves the slash",
                "§5.2.4 B",
            ),
            (
                "/a/b/..",
                Ok("/a/"),
                "a final double dot leaves the slash",
                "§5.2.4 C",
            ),
            (
                "/a/./b/../c/",
                Ok("/a/c/"),
                "the RFC's kind of example",
                "§5.2.4",
            ),
            (
                "/a.b/..c/.d",
                Ok("/a.b/..c/.d"),
                "dots inside names are names",
                "§5.2.4",
            ),
            (
                "/.well-known/x",
                Ok("/.well-known/x"),
                "a dot file",
                "§5.2.4",
            ),
            (
                "//admin",
                Ok("/admin"),
                "a leading double slash",
                "merge_slashes (Traefik, Envoy)",
            ),
            (
                "/a//b///c",
                Ok("/a/b/c"),
                "runs of slashes",
                "merge_slashes",
            ),
            ("/a//", Ok("/a/"), "trailing runs", "merge_slashes"),
            (
                "/a//../b",
                Ok("/b"),
                "merged before dots are resolved, as Tomcat",
                "merge_slashes, §5.2.4",
            ),
            (
                "/admin/..;/",
                Err(SegmentParameters),
                "Tomcat reads ..; as ..",
                "§3.3 parameters",
            ),
            (
                "/..;/admin",
                Err(SegmentParameters),
                "the classic bypass",
                "§3.3",
            ),
            (
                "/.;x/admin",
                Err(SegmentParameters),
                "a dot with parameters",
                "§3.3",
            ),
            (
                "/;x/admin",
                Err(SegmentParameters),
                "an empty segment with parameters",
                "§3.3",
            ),
            (
                "/%2e%2e;/admin",
                Err(SegmentParameters),
                "decoded, then the same",
                "§2.3, §3.3",
            ),
            (
                "/a;v=1/b",
                Ok("/a;v=1/b"),
                "parameters on a name are the application's",
                "§3.3",
            ),
            (
                "/page;jsessionid=1",
                Ok("/page;jsessionid=1"),
                "a session id",
                "§3.3",
            ),
            ("/..a;x", Ok("/..a;x"), "a name beginning with dots", "§3.3"),
            (
                "/caf\u{e9}",
                Ok("/caf\u{e9}"),
                "raw UTF-8 is left as it is",
                "RFC 3987 §3.1",
            ),
            ("*", Ok("*"), "the asterisk-form", "RFC 9112 §3.2.4"),
            (
                "",
                Ok(""),
                "empty: not this function's business",
                "module docs",
            ),
            (
                "a/./b",
                Ok("a/b"),
                "relative: normalised, stays relative",
                "§5.2.4",
            ),
            (
                "../a",
                Ok("a"),
                "relative: a leading .. is dropped",
                "§5.2.4 A",
            ),
            ("a/..", Ok(""), "relative: nothing left", "§5.2.4"),
        ];
        let p = PathPolicy::default();
        for (input, want, why, rfc) in rows {
            let got = normalize(input, &p);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                *want,
                "{why} ({rfc}): {input:?}"
            );
            if let Ok(out) = &got {
                assert_eq!(
                    matches!(out, Cow::Borrowed(_)),
                    out == input,
                    "borrowed exactly when unchanged: {input:?}"
                );
            }
        }
    }

    #[test]
    fn other_policies_table() {
        let no_merge = PathPolicy {
            merge_slashes: false,
            ..PathPolicy::default()
        };
        let raw = PathPolicy {
            normalize: false,
            ..PathPolicy::default()
        };
        let all = PathPolicy {
            allow_encoded: EncodedSet::ALL,
            ..PathPolicy::default()
        };
        // (policy, input, result, kept, reason)
        type Row = (
            PathPolicy,
            &'static str,
            Result<&'static str, PathRefusal>,
            EncodedSet,
            &'static str,
        );
        let rows: &[Row] = &[
            (
                ALLOW_SLASH,
                "/a%2fb",
                Ok("/a%2Fb"),
                EncodedSet::SLASH,
                "allowed: kept encoded, hex upper-cased",
            ),
            (
                ALLOW_SLASH,
                "/a%2Fb",
                Ok("/a%2Fb"),
                EncodedSet::SLASH,
                "allowed and normal: borrowed",
            ),
            (
                ALLOW_SLASH,
                "/x%2F..%2Fadmin",
                Ok("/x%2F..%2Fadmin"),
                EncodedSet::SLASH,
                "an encoded slash never splits a segment",
            ),
            (
                ALLOW_SLASH,
                "/a%5Cb",
                Err(PathRefusal::Encoded("backslash")),
                EncodedSet::NONE,
                "only the allowed one",
            ),
            (
                all,
                "/a\\b",
                Ok("/a%5Cb"),
                EncodedSet::BACKSLASH,
                "an allowed raw backslash is written encoded",
            ),
            (
                all,
                "/%252e/admin",
                Ok("/%252e/admin"),
                EncodedSet::PERCENT,
                "an allowed %25 is never decoded",
            ),
            (
                all,
                "/..%3Bx/admin",
                Err(PathRefusal::SegmentParameters),
                EncodedSet::NONE,
                "%3B parameters on a dot segment",
            ),
            (
                all,
                "\\/..",
                Ok(""),
                EncodedSet::NONE,
                "kept counts what is left, not what a .. dropped",
            ),
            (
                all,
                "/a%5C/../b",
                Ok("/b"),
                EncodedSet::NONE,
                "the same, absolute",
            ),
            (
                all,
                "/a%3b%00%3f%23",
                Ok("/a%3B%00%3F%23"),
                EncodedSet::SEMICOLON
                    .union(EncodedSet::NULL)
                    .union(EncodedSet::QUESTION_MARK)
                    .union(EncodedSet::HASH),
                "kept lists each",
            ),
            (
                no_merge,
                "//admin",
                Ok("//admin"),
                EncodedSet::NONE,
                "merge_slashes off keeps empty segments",
            ),
            (
                no_merge,
                "/a//../b",
                Ok("/a/b"),
                EncodedSet::NONE,
                "and .. removes one (RFC 3986 §5.2.4)",
            ),
            (
                no_merge,
                "/a/./b",
                Ok("/a/b"),
                EncodedSet::NONE,
                "dots are still resolved",
            ),
            (
                raw,
                "/x/../%61dmin",
                Ok("/x/../%61dmin"),
                EncodedSet::NONE,
                "normalize off: as received",
            ),
            (
                raw,
                "/a%zz",
                Ok("/a%zz"),
                EncodedSet::NONE,
                "normalize off: a malformed % passes",
            ),
            (
                raw,
                "/a%2f",
                Err(PathRefusal::Encoded("slash")),
                EncodedSet::NONE,
                "normalize off: refused encodings still refused",
            ),
            (
                raw,
                "/a%%2f",
                Err(PathRefusal::Encoded("slash")),
                EncodedSet::NONE,
                "normalize off: a stray % does not hide the next one",
            ),
            (
                raw,
                "/..;/a",
                Ok("/..;/a"),
                EncodedSet::NONE,
                "normalize off: parameters pass",
            ),
            (
                PathPolicy {
                    allow_encoded: EncodedSet::SLASH,
                    ..raw
                },
                "/a%2f",
                Ok("/a%2f"),
                EncodedSet::SLASH,
                "normalize off, allowed: as received",
            ),
        ];
        for (policy, input, want, kept, why) in rows {
            let got = normalize_kept(input, policy);
            assert_eq!(
                got.as_ref().map(|n| &*n.path).map_err(|e| *e),
                *want,
                "{why}: {input:?}"
            );
            if let Ok(n) = got {
                assert_eq!(n.kept, *kept, "{why}: kept");
                assert_eq!(
                    matches!(n.path, Cow::Borrowed(_)),
                    n.path == *input,
                    "{why}: borrowed"
                );
            }
        }
    }

    #[test]
    fn encoded_set_names() {
        assert_eq!(
            EncodedSet::names().collect::<Vec<_>>(),
            [
                "slash",
                "backslash",
                "null",
                "semicolon",
                "percent",
                "question_mark",
                "hash"
            ]
        );
        for (name, byte, set) in EncodedSet::MEMBERS {
            assert_eq!(EncodedSet::from_name(name), Some(set));
            assert_eq!(EncodedSet::of_byte(byte), Some(set));
            assert_eq!(set.first_name(), Some(name));
        }
        assert_eq!(EncodedSet::from_name("Slash"), None, "names are exact");
        assert_eq!(EncodedSet::from_bits(0xff), EncodedSet::ALL);
        let s = EncodedSet::SLASH | EncodedSet::PERCENT;
        assert_eq!(s.to_string(), "slash, percent");
        assert_eq!(EncodedSet::NONE.to_string(), "none");
        assert!(s.contains(EncodedSet::SLASH) && !s.contains(EncodedSet::ALL));
        assert_eq!(s.difference(EncodedSet::SLASH), EncodedSet::PERCENT);
        assert_eq!(
            PathRefusal::Encoded("question_mark").to_string(),
            "an encoded question mark (%3F) is not allowed in the path"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Paths made of the pieces the rules are about (dots, slashes, encodings, `;`, `\\`),
        /// and strings of those characters with now and then any character at all.
        fn paths() -> impl Strategy<Value = String> {
            const PIECES: &[&str] = &[
                "/", "/", "/", "/", ".", ".", "..", "..", "a", "b", "%2e", "%2E", "%61", "%2f",
                "%2F", "%5c", "\\", ";", ";x", "%3B", "%3b", "%25", "%00", "%3F", "%23", "%", "%2",
                "%zz", "%c3%a9", "\u{e9}", "~", "%7E",
            ];
            const CHARS: &[char] = &[
                '/', '/', '/', '.', '.', '.', '%', '%', '2', 'e', 'E', 'f', 'F', ';', '\\', '5',
                'c', '3', 'b', '0', 'a',
            ];
            let pieces = proptest::collection::vec(proptest::sample::select(PIECES), 0..16)
                .prop_map(|v| v.concat());
            let n = CHARS.len();
            let chars = (
                proptest::collection::vec(0..=n, 0..32),
                proptest::collection::vec(any::<char>(), 4),
            )
                .prop_map(move |(picks, others)| {
                    picks
                        .iter()
                        .enumerate()
                        .map(|(i, &k)| CHARS.get(k).copied().unwrap_or(others[i % 4]))
                        .collect()
                });
            prop_oneof![3 => pieces, 1 => chars]
        }

        fn policies() -> impl Strategy<Value = PathPolicy> {
            (any::<bool>(), any::<u8>()).prop_map(|(merge_slashes, bits)| PathPolicy {
                normalize: true,
                merge_slashes,
                allow_encoded: EncodedSet::from_bits(bits),
            })
        }

        proptest! {
            // Failures are turned into rows of the tables above rather than kept in a
            // regressions file next to the source.
            #![proptest_config(ProptestConfig {
                cases: 4096,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// The default policy: never panics; the result is a fixed point, has no dot
            /// segment and no empty segment, and keeps the leading `/` (or its absence).
            #[test]
            fn default_policy_normal_form(path in paths()) {
                let p = PathPolicy::default();
                if let Ok(out) = normalize(&path, &p) {
                    let again = normalize(&out, &p);
                    prop_assert_eq!(again.as_deref(), Ok(&*out), "fixed point");
                    prop_assert!(matches!(again, Ok(Cow::Borrowed(_))), "borrowed the second time");
                    for bad in ["/./", "/../", "//"] {
                        prop_assert!(!out.contains(bad), "{:?} in {:?}", bad, out);
                    }
                    prop_assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{:?}", out);
                    prop_assert!(out != "." && out != "..");
                    prop_assert_eq!(out.starts_with('/'), path.starts_with('/'));
                    prop_assert!(!out.contains('\\'));
                }
            }

            /// Any policy: the result is a fixed point and keeps only allowed encodings.
            #[test]
            fn any_policy_fixed_point(path in paths(), p in policies()) {
                if let Ok(n) = normalize_kept(&path, &p) {
                    prop_assert!(p.allow_encoded.contains(n.kept));
                    let again = normalize_kept(&n.path, &p);
                    prop_assert_eq!(again.as_ref().map(|a| &*a.path), Ok(&*n.path), "fixed point");
                    prop_assert_eq!(again.map(|a| a.kept), Ok(n.kept));
                }
                let raw = PathPolicy { normalize: false, ..p };
                if let Ok(out) = normalize(&path, &raw) {
                    prop_assert!(matches!(out, Cow::Borrowed(_)) && out == path);
                }
            }
        }
    }
}
