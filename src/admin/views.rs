//! The bodies of `/metrics` and `/upstreams`.

use super::http::Format;
use crate::proxy::Gateway;
use bytes::Bytes;
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};

/// The registry in `format`. Both encoders are `prometheus-client`'s: the Prometheus text
/// format 0.0.4 (no exemplars, which it cannot carry) and OpenMetrics 1.0 (exemplars on the
/// histogram buckets, `# EOF` at the end).
pub(super) fn metrics(registry: &Registry, format: Format) -> Result<Bytes, ()> {
    let mut out = String::with_capacity(16 * 1024);
    match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
    }
    .map_err(|_| ())?;
    Ok(Bytes::from(out))
}

/// `{ "<upstream>": { "backends": [ { "address", "weight", "health", … } ] } }`.
pub(super) fn upstreams(g: &Gateway) -> Value {
    let mut all = Map::new();
    for u in &g.upstreams {
        let pool = &u.pool;
        let backends: Vec<Value> = pool
            .backends
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let s = pool.status(i);
                json!({
                    "address": addr.to_string(),
                    "weight": pool.weight(i),
                    "health": if s.available { "up" } else { "down" },
                    "failing_health_check": s.failing_check,
                    "ejected": s.ejected,
                    "fails": s.fails,
                    "in_flight": s.in_flight,
                })
            })
            .collect();
        all.insert(pool.name.to_string(), json!({ "backends": backends }));
    }
    Value::Object(all)
}
