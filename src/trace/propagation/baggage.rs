//! W3C Baggage: validation of a request's `baggage` header lines, which are forwarded as sent
//! or with the invalid members dropped; tracegate adds no entries.
//!
//! The rules follow W3C Baggage (<https://www.w3.org/TR/baggage/>), §3 "The baggage HTTP Header
//! Format".

use super::w3c::{join_lines, trim_ows};

/// W3C Baggage §3, "Limits": a platform must propagate at least 64 list-members. tracegate
/// forwards at most that many; "Mutating baggage" allows dropping entries beyond the limits.
pub const BAGGAGE_MAX_MEMBERS: usize = 64;
/// W3C Baggage §3, "Limits": a platform must propagate a baggage-string of at least 8192 bytes.
/// tracegate forwards at most that many, dropping the members that do not fit.
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// A validated `baggage` value, ready to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baggage(Box<str>);

impl Baggage {
    /// The header value to send.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 9110 §5.6.2 `tchar` (a W3C Baggage key is a `token`, §3 "key").
fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// W3C Baggage §3 "Definition", `baggage-octet`: printable US-ASCII except `"`, `,`, `;`, `\`.
fn baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// `key OWS "=" OWS value` (value may be empty), or with `value_required` false also `key`
/// alone (a property, W3C Baggage §3 "property").
fn valid_pair(b: &[u8], value_required: bool) -> bool {
    let (key, value) = match b.iter().position(|&c| c == b'=') {
        Some(eq) => (trim_ows(&b[..eq]), Some(trim_ows(&b[eq + 1..]))),
        None => (trim_ows(b), None),
    };
    if key.is_empty() || !key.iter().all(|&c| tchar(c)) {
        return false;
    }
    match value {
        Some(v) => v.iter().all(|&c| baggage_octet(c)),
        None => !value_required,
    }
}

/// W3C Baggage §3 "Definition": `list-member = key OWS "=" OWS value *( OWS ";" OWS property )`.
fn valid_member(m: &[u8]) -> bool {
    let mut parts = m.split(|&c| c == b';');
    valid_pair(parts.next().unwrap_or_default(), true) && parts.all(|p| valid_pair(p, false))
}

/// Combines and validates the `baggage` header lines of one request (W3C Baggage §3).
///
/// Lines are joined as one comma-separated list (multiple `baggage` headers are allowed).
/// Invalid list-members are dropped, as are empty ones ("Mutating baggage": an entry not in the
/// format MAY be removed); at most [`BAGGAGE_MAX_MEMBERS`] are kept and the result is at most
/// [`BAGGAGE_MAX_BYTES`] long, dropping members that do not fit ("Limits"). When
/// nothing had to change the value is forwarded byte for byte. Values are not decoded: the
/// proxy passes baggage through and adds nothing. `None` when no valid member is left.
pub fn parse_baggage<'a, I>(lines: I) -> Option<Baggage>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let joined = join_lines(lines);
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut changed = false;
    for member in joined.split(|&c| c == b',') {
        let m = trim_ows(member);
        if m.is_empty() || !valid_member(m) {
            changed = true;
            continue;
        }
        if kept.len() == BAGGAGE_MAX_MEMBERS {
            changed = true;
            break;
        }
        kept.push(m);
    }
    if kept.is_empty() {
        return None;
    }
    let joined = trim_ows(&joined);
    if !changed && joined.len() <= BAGGAGE_MAX_BYTES {
        // Valid members are ASCII, and so is the OWS between them.
        return std::str::from_utf8(joined).ok().map(|s| Baggage(s.into()));
    }
    let mut out = String::with_capacity(joined.len().min(BAGGAGE_MAX_BYTES));
    for m in kept {
        let extra = m.len() + usize::from(!out.is_empty());
        if out.len() + extra > BAGGAGE_MAX_BYTES {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(m).unwrap_or_default());
    }
    (!out.is_empty()).then(|| Baggage(out.into_boxed_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baggage_table() {
        let many: Vec<String> = (0..70).map(|i| format!("k{i}=v{i}")).collect();
        let first_64 = many[..64].join(",");
        let many = many.join(",");
        let big_value = "x".repeat(5000);
        let two_big = format!("a={big_value},b={big_value},c=1");
        let first_and_small = format!("a={big_value},c=1");
        // (lines, expected, reason citing W3C Baggage, https://www.w3.org/TR/baggage/)
        let cases: &[(&[&str], Option<&str>, &str)] = &[
            (&["userId=alice"], Some("userId=alice"), "§3 Definition: one list-member"),
            (
                &["userId=alice, serverNode=DF%2028,isProduction=false"],
                Some("userId=alice, serverNode=DF%2028,isProduction=false"),
                "§3 Examples of HTTP headers: OWS, percent-encoding kept as sent",
            ),
            (
                &["key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"],
                Some("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"),
                "§3 Example: properties",
            ),
            (&["a=1", "b=2"], Some("a=1,b=2"), "§3: multiple baggage headers combine"),
            (&["a="], Some("a="), "§3 Definition: value = *baggage-octet"),
            (&["a=1,b", "c=3"], Some("a=1,c=3"), "§3 Definition: key \"=\" value"),
            (&["a=\"q\",b=2"], Some("b=2"), "§3 Definition: DQUOTE is no baggage-octet"),
            (&["a b=1,c=2"], Some("c=2"), "§3 key: a token has no space"),
            (&["=1,c=2"], Some("c=2"), "§3 key: a token is not empty"),
            (&["a=1;,c=2"], Some("c=2"), "§3 property: never empty"),
            (&["a=1,,c=2"], Some("a=1,c=2"), "§3 Definition: no empty list-member"),
            (&["a=é"], None, "§3 value: UTF-8 is URL encoded"),
            (&[""], None, "nothing valid"),
            (&[many.as_str()], Some(first_64.as_str()), "§3 Limits: 64 list-members are kept"),
            (
                &[two_big.as_str()],
                Some(first_and_small.as_str()),
                "§3 Limits: 8192 bytes; members that do not fit are dropped",
            ),
        ];
        for (lines, want, why) in cases {
            let got = parse_baggage(lines.iter().map(|l| l.as_bytes()));
            assert_eq!(got.as_ref().map(Baggage::as_str), *want, "{why}: {lines:?}");
        }
    }
}
