//! Checking `server.path` (how request paths are normalised before routing) and the
//! `allow_encoded` lists (`server.path.allow_encoded`, `routes[].allow_encoded`) into the
//! router's [`PathPolicy`], and the routes' own paths against it: the router compares
//! normalised request paths, so a `match.path`, `match.path_prefix` or `strip_prefix` that is
//! not in normal form would never match, and is refused with the form to write instead.
//!
//! Unlike the rest of `server`, these settings belong to the router: a reload applies them.

use super::check::Ctx;
use super::defaults;
use super::file::FilePath;
use super::ConfigError;
use crate::routing::path::normalize;
use crate::routing::{EncodedSet, PathMatch, PathPolicy, Route};
use std::borrow::Cow;

/// `server.path`.
pub(super) fn check_path_policy(c: &Ctx<'_>, f: &FilePath) -> Result<PathPolicy, ConfigError> {
    let normalize = f.normalize.unwrap_or(defaults::PATH_NORMALIZE);
    if !normalize && f.merge_slashes == Some(true) {
        return Err(c.err(
            "server.path.merge_slashes",
            "merging slashes is part of normalize; with normalize: false paths are used as received",
        ));
    }
    let allow_encoded = match &f.allow_encoded {
        None => EncodedSet::NONE,
        Some(names) => allow_list(c, "server.path.allow_encoded", names)?,
    };
    Ok(PathPolicy {
        normalize,
        merge_slashes: normalize && f.merge_slashes.unwrap_or(defaults::PATH_MERGE_SLASHES),
        allow_encoded,
    })
}

/// An `allow_encoded` list: names of [`EncodedSet`] members, exactly as written.
pub(super) fn allow_list(
    c: &Ctx<'_>,
    key: &str,
    names: &[String],
) -> Result<EncodedSet, ConfigError> {
    let mut set = EncodedSet::NONE;
    for (i, name) in names.iter().enumerate() {
        let Some(member) = EncodedSet::from_name(name.trim()) else {
            return Err(c.err(
                format!("{key}[{i}]"),
                format!(
                    "unknown encoding {name:?}: expected one of {}",
                    EncodedSet::names().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        set |= member;
    }
    Ok(set)
}

/// Each route's `match.path`, `match.path_prefix` and `strip_prefix` is in the normal form of
/// `policy` (with the route's own `allow_encoded`). `routes` are in file order.
pub(super) fn check_route_paths(
    c: &Ctx<'_>,
    routes: &[Route],
    policy: &PathPolicy,
) -> Result<(), ConfigError> {
    if !policy.normalize {
        return Ok(());
    }
    for (i, r) in routes.iter().enumerate() {
        let own = PathPolicy {
            allow_encoded: r.allow_encoded.unwrap_or(policy.allow_encoded),
            ..*policy
        };
        let (key, path, prefix) = match &r.conditions.path {
            Some(PathMatch::Exact(p)) => ("match.path", &**p, false),
            Some(PathMatch::Prefix(p)) => ("match.path_prefix", &**p, true),
            None => ("", "", false),
        };
        if !key.is_empty() {
            check_normal(&own, path, prefix).map_err(|e| c.err(format!("routes[{i}].{key}"), e))?;
        }
        if let Some(p) = &r.rewrite.strip_prefix {
            check_normal(&own, p, true)
                .map_err(|e| c.err(format!("routes[{i}].strip_prefix"), e))?;
        }
    }
    Ok(())
}

/// `path` is in normal form. A prefix may end in `.` or `..` (`/a/.` matches `/a/.env`): its
/// complete segments are checked.
fn check_normal(policy: &PathPolicy, path: &str, prefix: bool) -> Result<(), String> {
    let checked = match path.rsplit_once('/') {
        Some((head, "." | "..")) if prefix => &path[..=head.len()],
        _ => path,
    };
    match normalize(checked, policy) {
        Ok(Cow::Borrowed(_)) => Ok(()),
        Ok(Cow::Owned(n)) => Err(format!(
            "{path:?} never matches: request paths are normalised before routing (server.path); write {:?}",
            format!("{n}{}", &path[checked.len()..])
        )),
        Err(e) => Err(format!(
            "{path:?} never matches: such a request path is refused ({e}); allow it with allow_encoded"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use crate::routing::{EncodedSet, PathRefusal};
    use std::collections::HashMap;

    fn load(yaml: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let text = format!("listen: [\"127.0.0.1:1\"]\n{yaml}");
        load_str(&text, "t.yaml", &HashMap::<&str, &str>::new())
    }

    #[test]
    fn defaults_and_settings() {
        let c = load("").unwrap();
        let p = c.router.path_policy();
        assert!(p.normalize && p.merge_slashes);
        assert_eq!(p.allow_encoded, EncodedSet::NONE);
        let c = load(
            "server: { path: { merge_slashes: false, allow_encoded: [slash, hash] } }\n\
             routes:\n  - { name: f, allow_encoded: [percent], respond: {} }\n  - { name: g, respond: {} }\n",
        )
        .unwrap();
        let p = c.router.path_policy();
        assert!(p.normalize && !p.merge_slashes);
        assert_eq!(
            p.allow_encoded,
            EncodedSet::SLASH | EncodedSet::HASH | EncodedSet::PERCENT,
            "paths are normalised with the union"
        );
        let (f, g) = (&c.router.routes()[0], &c.router.routes()[1]);
        assert_eq!(f.allow_encoded, Some(EncodedSet::PERCENT));
        assert_eq!(
            c.router.check_encoded(f, EncodedSet::SLASH),
            Err(PathRefusal::Encoded("slash")),
            "the route's list replaces the global one"
        );
        assert_eq!(c.router.check_encoded(g, EncodedSet::SLASH), Ok(()));
        let c = load("server: { path: { normalize: false } }\n").unwrap();
        assert!(!c.router.path_policy().normalize && !c.router.path_policy().merge_slashes);
    }

    #[test]
    fn refused_table() {
        // (yaml, key, words in the reason, why)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "server: { path: { allow_encoded: [slash, slashes] } }\n",
                "server.path.allow_encoded[1]",
                "unknown encoding \"slashes\": expected one of slash, backslash, null, semicolon, percent, question_mark, hash",
                "an unknown name, with the valid ones",
            ),
            (
                "routes: [{ name: a, allow_encoded: [Slash], respond: {} }]\n",
                "routes[0].allow_encoded[0]",
                "unknown encoding \"Slash\"",
                "names are exact",
            ),
            (
                "server: { path: { normalise: true } }\n",
                "server.path.normalise",
                "unknown field",
                "an unknown key",
            ),
            (
                "server: { path: { normalize: false, merge_slashes: true } }\n",
                "server.path.merge_slashes",
                "part of normalize",
                "merging without normalising",
            ),
            (
                "routes: [{ name: a, match: { path_prefix: /%61dmin }, respond: {} }]\n",
                "routes[0].match.path_prefix",
                "write \"/admin\"",
                "a prefix no normalised path starts with",
            ),
            (
                "routes: [{ name: a, match: { path: /api//v1 }, respond: {} }]\n",
                "routes[0].match.path",
                "write \"/api/v1\"",
                "merged slashes",
            ),
            (
                "routes: [{ name: a, match: { path_prefix: /a%2fb }, respond: {} }]\n",
                "routes[0].match.path_prefix",
                "encoded slash",
                "a refused encoding",
            ),
            (
                "routes: [{ name: a, allow_encoded: [slash], match: { path_prefix: /a%2fb }, respond: {} }]\n",
                "routes[0].match.path_prefix",
                "write \"/a%2Fb\"",
                "allowed, but in upper-case hex",
            ),
            (
                "routes: [{ name: a, match: { path_prefix: /app/./ }, strip_prefix: /app, upstream: u }]\nupstreams: { u: { backends: [\"127.0.0.1:1\"] } }\n",
                "routes[0].match.path_prefix",
                "write \"/app/\"",
                "a dot segment",
            ),
            (
                "routes: [{ name: a, strip_prefix: /x/../app, upstream: u }]\nupstreams: { u: { backends: [\"127.0.0.1:1\"] } }\n",
                "routes[0].strip_prefix",
                "write \"/app\"",
                "strip_prefix applies to the normalised path too",
            ),
        ];
        for (yaml, key, reason, why) in cases {
            let e = load(yaml).expect_err(why);
            assert_eq!(&e.key, key, "{why}: {e}");
            assert!(e.reason.contains(reason), "{why}: {e}");
        }
    }

    #[test]
    fn accepted_paths_table() {
        // (yaml, why)
        let cases = [
            (
                "routes: [{ name: a, match: { path_prefix: /.well-known/ }, respond: {} }]\n",
                "a dot file",
            ),
            (
                "routes: [{ name: a, match: { path_prefix: /static/. }, respond: {} }]\n",
                "a prefix ending in a dot matches dot files",
            ),
            (
                "routes: [{ name: a, allow_encoded: [slash], match: { path_prefix: /a%2Fb }, respond: {} }]\n",
                "an allowed encoding, in normal form",
            ),
            (
                "server: { path: { normalize: false } }\nroutes: [{ name: a, match: { path: /a//b }, respond: {} }]\n",
                "nothing is checked when paths are not normalised",
            ),
        ];
        for (yaml, why) in cases {
            load(yaml).unwrap_or_else(|e| panic!("{why}: {e}"));
        }
    }
}
