//! Checking `routes[]`: match conditions and actions, into the router's [`Route`]s.

use super::file::FileRoute;
use super::model::Ctx;
use super::ConfigError;
use crate::routing::{Route, RouteAction};
use crate::trace::sampling::check_ratio;
use bytes::Bytes;
use std::collections::HashMap;

pub(super) fn check_routes(
    c: &Ctx<'_>,
    routes: &[FileRoute],
    upstreams: &HashMap<String, usize>,
) -> Result<Vec<Route>, ConfigError> {
    let mut out: Vec<Route> = Vec::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = r.name.trim();
        if name.is_empty() {
            return Err(c.err(format!("{key}.name"), "must not be empty"));
        }
        if out.iter().any(|o| &*o.name == name) {
            return Err(c.err(
                format!("{key}.name"),
                format!("route name {name:?} is used twice"),
            ));
        }
        let host = match &r.match_.host {
            None => None,
            Some(h) => {
                let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                if h.is_empty() || h.contains(['/', ' ', ':']) {
                    return Err(c.err(
                        format!("{key}.match.host"),
                        format!(
                            "invalid host {:?}: expected a host name without port",
                            r.match_.host.as_deref().unwrap_or("")
                        ),
                    ));
                }
                Some(h)
            }
        };
        let path_prefix = match &r.match_.path_prefix {
            Some(p) if !p.starts_with('/') => {
                return Err(c.err(
                    format!("{key}.match.path_prefix"),
                    format!("{p:?} must start with '/'"),
                ));
            }
            p => p.clone(),
        };
        let action = match (&r.upstream, &r.respond) {
            (Some(_), Some(_)) => {
                return Err(c.err(key, "set either upstream or respond, not both"));
            }
            (None, None) => {
                return Err(c.err(key, "needs an action: upstream or respond"));
            }
            (Some(u), None) => {
                let Some(&idx) = upstreams.get(u) else {
                    let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                    return Err(c.err(
                        format!("{key}.upstream"),
                        format!(
                            "no upstream named {u:?} (defined: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                };
                let strip_prefix = match &r.strip_prefix {
                    Some(p) if !p.starts_with('/') => {
                        return Err(c.err(
                            format!("{key}.strip_prefix"),
                            format!("{p:?} must start with '/'"),
                        ));
                    }
                    p => p.clone(),
                };
                RouteAction::Proxy {
                    upstream: idx,
                    strip_prefix,
                }
            }
            (None, Some(resp)) => {
                if r.strip_prefix.is_some() {
                    return Err(c.err(
                        format!("{key}.strip_prefix"),
                        "only applies to routes with an upstream",
                    ));
                }
                if !(200..=599).contains(&resp.status) {
                    return Err(c.err(
                        format!("{key}.respond.status"),
                        format!("{} is not a status between 200 and 599", resp.status),
                    ));
                }
                RouteAction::Respond {
                    status: resp.status,
                    body: Bytes::from(resp.body.clone()),
                }
            }
        };
        let sample_ratio = match r.sample_ratio {
            None => None,
            Some(x) => Some(check_ratio(x).map_err(|e| c.err(format!("{key}.sample_ratio"), e))?),
        };
        out.push(Route {
            name: name.into(),
            host,
            path_prefix,
            action,
            sample_ratio,
        });
    }
    Ok(out)
}
