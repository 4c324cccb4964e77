//! `forwarded`: which clients are trusted with `X-Forwarded-*`/`Forwarded` and which header
//! families the proxy writes on proxied requests.

use super::check::Ctx;
use super::defaults;
use super::file::FileForwarded;
use super::ConfigError;
use crate::routing::ForwardedPolicy;

/// The top-level `forwarded` key.
pub(super) fn check_forwarded(
    c: &Ctx<'_>,
    f: &FileForwarded,
) -> Result<ForwardedPolicy, ConfigError> {
    let trusted = c.trust("forwarded.trusted", &f.trusted, defaults::FORWARDED_TRUSTED)?;
    let mut policy = ForwardedPolicy {
        trusted,
        x_forwarded: false,
        forwarded: false,
    };
    let names: Vec<&str> = match &f.headers {
        None => defaults::FORWARDED_HEADERS.to_vec(),
        Some(list) => list.iter().map(String::as_str).collect(),
    };
    for (i, name) in names.iter().enumerate() {
        let slot = match name.trim() {
            "x-forwarded" => &mut policy.x_forwarded,
            "forwarded" => &mut policy.forwarded,
            other => {
                return Err(c.err(
                    format!("forwarded.headers[{i}]"),
                    format!(
                        "{other:?}: expected x-forwarded (X-Forwarded-For/-Proto/-Host) or forwarded (RFC 7239)"
                    ),
                ))
            }
        };
        if *slot {
            return Err(c.err(
                format!("forwarded.headers[{i}]"),
                format!("{name:?} is listed twice"),
            ));
        }
        *slot = true;
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use std::collections::HashMap;

    fn load(body: &str) -> Result<super::super::Config, super::super::ConfigError> {
        let yaml = format!("listen: [\"127.0.0.1:1\"]\n{body}");
        load_str(&yaml, "t.yaml", &HashMap::<&str, &str>::new())
    }

    #[test]
    fn forwarded_headers_can_be_switched_off() {
        let c = load("forwarded: {headers: []}\n").unwrap();
        assert!(c.router.forwarded().is_off());
        let c = load("forwarded: {trusted: all}\n").unwrap();
        assert!(c.router.forwarded().trusted.trusts(None));
    }
}
