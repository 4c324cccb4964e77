//! The running config as JSON, for the admin listener's `/config`, with every secret
//! replaced by `"REDACTED"`.
//!
//! What is shown is the config file as loaded (its keys as written, so an operator finds them
//! in the file), followed by the exporter settings in effect, which `OTEL_*` variables may
//! have changed. What is hidden:
//! - every value of `telemetry.exporter.headers` (API keys, as `OTEL_EXPORTER_OTLP_HEADERS`);
//! - the value of any key whose name is credential-like, anywhere in the file
//!   (`Authorization`, `Cookie`, `X-Api-Key`, `*token*`, `*secret*`, `*password*`, ...),
//!   which covers header edits, header matches and resource attributes; file paths
//!   (`*_file`) are not secrets and stay;
//! - the userinfo of any URL (`https://user:pass@host` → `https://REDACTED@host`), and the
//!   values of credential-like query parameters (`?token=…`, `?sig=…`).
//!
//! The redaction errs on the side of hiding: a key named like a credential is hidden even when
//! its value is harmless.

use crate::trace::export::settings::{redact_userinfo, TelemetrySettings};
use serde_json::{json, Map, Value};

/// What a hidden value is replaced with.
pub const REDACTED: &str = "REDACTED";

/// `{ "file": …, "config": <the file, redacted>, "effective": { "telemetry": … } }` for the
/// config loaded from `source` (its text, `Config::source`) with `telemetry` in effect. A text
/// that does not parse (it was loaded, so this does not happen) shows as `"config": null`.
pub fn redacted(source: &str, telemetry: &TelemetrySettings, file: &str) -> Value {
    // Parsed again under the same alias budget as at load (`super::budget`), so a file's
    // aliases cannot make the dump larger than its load was allowed to be.
    let budget = super::budget::Budget::for_text(source.len());
    let de = super::budget::Budgeted::new(serde_yaml::Deserializer::from_str(source), &budget);
    let tree = <serde_yaml::Value as serde::Deserialize>::deserialize(de)
        .map(|v| {
            let mut path = Vec::new();
            redact(yaml_to_json(v), &mut path)
        })
        .unwrap_or(Value::Null);
    let t = telemetry;
    let e = &t.exporter;
    let headers: Map<String, Value> = e
        .headers
        .keys()
        .map(|k| (k.as_str().to_owned(), Value::from(REDACTED)))
        .collect();
    json!({
        "file": file,
        "config": tree,
        "effective": {
            "telemetry": {
                "service_name": t.service_name,
                "exporter": {
                    "protocol": e.protocol.as_str(),
                    "endpoint": redact_string(&e.endpoint),
                    "timeout_ms": e.timeout.as_millis() as u64,
                    "headers": headers,
                },
                "batch": {
                    "max_queue_size": t.batch.max_queue_size,
                    "max_export_batch_size": t.batch.max_export_batch_size,
                    "scheduled_delay_ms": t.batch.scheduled_delay.as_millis() as u64,
                    "export_timeout_ms": t.batch.export_timeout.as_millis() as u64,
                },
            }
        }
    })
}

/// YAML to JSON: keys that are not strings (numbers, booleans) become their text; tags are
/// dropped.
fn yaml_to_json(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (key_text(k), yaml_to_json(v)))
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

fn key_text(k: serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s,
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => serde_yaml::to_string(&other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// Redacts `v`, found at `path` (the keys above it).
fn redact(v: Value, path: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => {
            let all_secret = path_is(path, &["telemetry", "exporter", "headers"]);
            // `hash_on: { header: NAME }` / `{ cookie: NAME }` names where the key is read from.
            let names_only = path.last().is_some_and(|k| k == "hash_on");
            Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        let hide = all_secret || (!names_only && credential_like(&k));
                        let v = if hide && !v.is_null() {
                            Value::from(REDACTED)
                        } else {
                            path.push(k.clone());
                            let v = redact(v, path);
                            path.pop();
                            v
                        };
                        (k, v)
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| redact(v, path)).collect()),
        Value::String(s) => Value::String(redact_string(&s)),
        other => other,
    }
}

fn path_is(path: &[String], want: &[&str]) -> bool {
    path.len() == want.len() && path.iter().zip(want).all(|(a, b)| a == b)
}

/// A key or query parameter named like a credential (case-insensitive). Paths (`*_file`) are
/// not secrets.
pub fn credential_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.ends_with("_file") {
        return false;
    }
    const PARTS: [&str; 13] = [
        "authorization",
        "cookie",
        "password",
        "passwd",
        "secret",
        "token",
        "api-key",
        "api_key",
        "apikey",
        "credential",
        "private",
        "session",
        "signature",
    ];
    const WHOLE: [&str; 6] = ["key", "sig", "auth", "pass", "pwd", "x-amz-security-token"];
    PARTS.iter().any(|p| n.contains(p)) || WHOLE.contains(&n.as_str())
}

/// A URL (a string with `://`) without its userinfo and the values of credential-like query
/// parameters; any other string as it is.
fn redact_string(s: &str) -> String {
    if !s.contains("://") {
        return s.to_owned();
    }
    let s = match redact_userinfo(s) {
        std::borrow::Cow::Borrowed(b) => b.to_owned(),
        std::borrow::Cow::Owned(o) => o.replacen("***", REDACTED, 1),
    };
    redact_url(&s)
}

/// The values of credential-like query parameters replaced.
fn redact_url(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_owned();
    };
    let (head, rest) = s.split_at(q + 1);
    let (query, fragment) = match rest.find('#') {
        Some(h) => rest.split_at(h),
        None => (rest, ""),
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if credential_like(k) => format!("{k}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}{fragment}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FILE: &str = r#"
listen: ["127.0.0.1:0"]
telemetry:
  exporter:
    protocol: grpc
    endpoint: "https://user:hunter2@otel.example.com:4317"
    headers: { x-tenant: acme, x-api-key: k3y }
  capture: { sensitive_query_keys: [token] }
  resource: { deployment.environment.name: prod, vendor.token: t0k }
routes:
  - name: api
    match: { headers: { Authorization: "Bearer m4tch" } }
    request_headers:
      set: { X-Api-Key: s3t, X-Env: prod }
      add: { Cookie: [a=1, b=2] }
      remove: [Set-Cookie]
    upstream: api
  - name: away
    redirect: { url: "https://example.com/x?token=abc&page=2" }
upstreams:
  api:
    backends: ["127.0.0.1:9"]
    lb: hash
    hash_on: { cookie: session }
"#;

    #[test]
    fn secrets_are_redacted_and_the_rest_is_shown() {
        let env: HashMap<&str, &str> = HashMap::new();
        let c = super::super::load_str(FILE, "edge.yaml", &env).expect("valid");
        let v = redacted(&c.source, &c.telemetry, "edge.yaml");
        let text = v.to_string();
        for secret in [
            "hunter2", "k3y", "acme", "t0k", "m4tch", "s3t", "a=1", "u:p@", "abc",
        ] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
        let cfg = &v["config"];
        // (JSON pointer, value, why)
        let cases: &[(&str, Value, &str)] = &[
            (
                "/telemetry/exporter/headers/x-tenant",
                json!(REDACTED),
                "every exporter header value",
            ),
            (
                "/telemetry/exporter/endpoint",
                json!("https://REDACTED@otel.example.com:4317"),
                "userinfo",
            ),
            (
                "/telemetry/capture/sensitive_query_keys/0",
                json!("token"),
                "a key name in a list is no secret",
            ),
            (
                "/telemetry/resource/deployment.environment.name",
                json!("prod"),
                "plain attributes stay",
            ),
            (
                "/telemetry/resource/vendor.token",
                json!(REDACTED),
                "a token-named attribute",
            ),
            (
                "/routes/0/match/headers/Authorization",
                json!(REDACTED),
                "a matched credential",
            ),
            (
                "/routes/0/request_headers/set/X-Api-Key",
                json!(REDACTED),
                "an injected API key",
            ),
            (
                "/routes/0/request_headers/set/X-Env",
                json!("prod"),
                "other header edits stay",
            ),
            (
                "/routes/0/request_headers/add/Cookie",
                json!(REDACTED),
                "a list under a cookie key",
            ),
            (
                "/routes/0/request_headers/remove/0",
                json!("Set-Cookie"),
                "header names in lists stay",
            ),
            (
                "/routes/1/redirect/url",
                json!("https://example.com/x?token=REDACTED&page=2"),
                "a credential in a URL query",
            ),
            (
                "/upstreams/api/hash_on/cookie",
                json!("session"),
                "a cookie name to hash on is no secret",
            ),
            (
                "/upstreams/api/backends/0",
                json!("127.0.0.1:9"),
                "addresses stay",
            ),
        ];
        for (pointer, want, why) in cases {
            assert_eq!(
                cfg.pointer(pointer),
                Some(want),
                "{why}: {pointer} in {cfg}"
            );
        }
        let eff = &v["effective"]["telemetry"]["exporter"];
        assert_eq!(
            eff["endpoint"],
            json!("https://REDACTED@otel.example.com:4317")
        );
        assert_eq!(eff["headers"]["x-api-key"], json!(REDACTED));
        assert_eq!(v["file"], json!("edge.yaml"));
    }

    #[test]
    fn credential_like_names_table() {
        // (name, hidden, why)
        let cases: &[(&str, bool, &str)] = &[
            ("Authorization", true, "the header"),
            ("proxy-authorization", true, "contains authorization"),
            ("Set-Cookie", true, "contains cookie"),
            ("x-api-key", true, "API key header"),
            ("access_token", true, "token"),
            ("client_secret", true, "secret"),
            ("key", true, "a bare key parameter"),
            ("key_file", false, "a path"),
            ("private_key_file", false, "a path, even named private"),
            ("keepalive_timeout", false, "not a credential"),
            ("trace_id_header", false, "not a credential"),
            ("page", false, "plain query parameter"),
        ];
        for (name, want, why) in cases {
            assert_eq!(credential_like(name), *want, "{why}: {name}");
        }
    }
}
