//! `telemetry`: the span pipeline's settings ([`exporter`]) and what the request path does with
//! trace context ([`TraceOptions`]: sampler, keep rules, trust, capture, propagators,
//! response headers), with the standard `OTEL_*` variables overriding the file.

mod exporter;
#[cfg(test)]
mod tests;

use super::check::{env_err, Ctx};
use super::defaults;
use super::file::{FileCapture, FileConfig};
use super::{ConfigError, Env};
use crate::net::Trust;
use crate::trace::capture::{Capture, QueryMode};
use crate::trace::export::settings::TelemetrySettings;
use crate::trace::propagation::Propagators;
use crate::trace::sampling::Sampler;
use crate::trace::TraceOptions;
use std::time::Duration;

/// Checks `telemetry` and applies the environment's overrides.
pub(super) fn check_telemetry(
    c: &Ctx<'_>,
    f: &FileConfig,
    env: &dyn Env,
) -> Result<TelemetrySettings, ConfigError> {
    let t = &f.telemetry;
    let service_name = match env.var("OTEL_SERVICE_NAME") {
        Some(v) => v,
        None => t
            .service_name
            .clone()
            .unwrap_or_else(|| defaults::SERVICE_NAME.into()),
    };
    let (service_name, resource) = exporter::resource_attributes(c, t, env, service_name)?;
    if service_name.trim().is_empty() {
        return Err(c.err("telemetry.service_name", "must not be empty"));
    }
    Ok(TelemetrySettings {
        service_name,
        exporter: exporter::exporter(c, t, env)?,
        resource,
        batch: exporter::batch(c, t, env)?,
        options: options(c, t, env)?,
    })
}

/// What the request path does with trace context: the sampler (`OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG` override the file), keep rules, trust, capture, propagators and
/// response headers.
fn options(
    c: &Ctx<'_>,
    t: &super::file::FileTelemetry,
    env: &dyn Env,
) -> Result<TraceOptions, ConfigError> {
    let (sampler_key, sampler_name) = match env.var("OTEL_TRACES_SAMPLER") {
        Some(v) => ("OTEL_TRACES_SAMPLER", Some(v)),
        None => ("telemetry.sampler.name", t.sampler.name.clone()),
    };
    let (ratio_key, ratio) = match env.var("OTEL_TRACES_SAMPLER_ARG") {
        Some(v) => (
            "OTEL_TRACES_SAMPLER_ARG",
            Some(v.trim().parse::<f64>().map_err(|_| {
                env_err("OTEL_TRACES_SAMPLER_ARG", format!("{v:?} is not a number"))
            })?),
        ),
        None => ("telemetry.sampler.ratio", t.sampler.ratio),
    };
    let sampler_name = sampler_name.unwrap_or_else(|| defaults::SAMPLER.into());
    let sampler = Sampler::from_name(&sampler_name, ratio).map_err(|e| {
        let key = if e.starts_with("unknown sampler") {
            sampler_key
        } else {
            ratio_key
        };
        if key.starts_with("OTEL_") {
            env_err(key, e)
        } else {
            c.err(key, e)
        }
    })?;
    let keep_slower_than = match &t.keep.slower_than {
        None => None,
        Some(v) => Some(
            super::check::parse_duration(v)
                .and_then(|d| super::check::duration_in(d, &(Duration::ZERO..=super::check::DAY)))
                .map_err(|e| c.err("telemetry.keep.slower_than", e))?,
        ),
    };
    let trust = c.trust("telemetry.trust_incoming", &t.trust_incoming, Trust::All)?;
    let trace_id_header = match &t.trace_id_header {
        None => None,
        Some(name) => {
            Some(response_header_name(name).map_err(|r| c.err("telemetry.trace_id_header", r))?)
        }
    };
    Ok(TraceOptions {
        traceresponse: t.traceresponse.unwrap_or(defaults::TRACERESPONSE),
        trace_id_header,
        sampler,
        trust,
        keep_errors: t.keep.errors.unwrap_or(defaults::KEEP_ERRORS),
        keep_slower_than,
        capture: capture(c, &t.capture)?,
        propagators: propagators(c, t.propagators.as_deref(), env)?,
    })
}

/// `telemetry.capture`: the header allowlists and how `url.query` is recorded.
fn capture(c: &Ctx<'_>, f: &FileCapture) -> Result<Capture, ConfigError> {
    let names = |key: &str, list: &[String]| -> Result<Vec<http::HeaderName>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, n)| {
                http::HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| {
                    c.err(format!("{key}[{i}]"), format!("{n:?} is not a header name"))
                })
            })
            .collect()
    };
    let query = match f.query.as_deref().map(str::trim) {
        None => defaults::CAPTURE_QUERY,
        Some("off") => QueryMode::Off,
        Some("redacted") => QueryMode::Redacted,
        Some("full") => QueryMode::Full,
        Some(other) => {
            return Err(c.err(
                "telemetry.capture.query",
                format!("{other:?}: expected off, redacted or full"),
            ))
        }
    };
    for (i, k) in f.sensitive_query_keys.iter().enumerate() {
        if k.trim().is_empty() {
            return Err(c.err(
                format!("telemetry.capture.sensitive_query_keys[{i}]"),
                "must not be empty",
            ));
        }
    }
    Ok(Capture::new(
        &names("telemetry.capture.request_headers", &f.request_headers)?,
        &names("telemetry.capture.response_headers", &f.response_headers)?,
        query,
        &f.sensitive_query_keys,
    ))
}

/// `telemetry.propagators` (a list of names), overridden by `OTEL_PROPAGATORS` (the same
/// names, comma-separated). Absent from both: `tracecontext,baggage`, the OpenTelemetry default.
fn propagators(
    c: &Ctx<'_>,
    file: Option<&[String]>,
    env: &dyn Env,
) -> Result<Propagators, ConfigError> {
    if let Some(v) = env.var("OTEL_PROPAGATORS") {
        return Propagators::from_names(v.split(','))
            .map_err(|e| env_err("OTEL_PROPAGATORS", e.reason));
    }
    let Some(names) = file else {
        return Ok(Propagators::default());
    };
    Propagators::from_names(names.iter().map(String::as_str)).map_err(|e| {
        let key = match e.index {
            Some(i) => format!("telemetry.propagators[{i}]"),
            None => "telemetry.propagators".to_owned(),
        };
        c.err(key, e.reason)
    })
}

/// A header name the proxy may set on responses: a valid token, compared lower-case, and not
/// one whose meaning belongs to HTTP framing or to the tracing headers themselves.
fn response_header_name(name: &str) -> Result<http::HeaderName, String> {
    let lower = name.trim().to_ascii_lowercase();
    let h = http::HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    const RESERVED: [&str; 9] = [
        "connection",
        "content-length",
        "content-type",
        "transfer-encoding",
        "set-cookie",
        "traceparent",
        "tracestate",
        "traceresponse",
        "upgrade",
    ];
    if RESERVED.contains(&h.as_str()) {
        return Err(format!(
            "{name:?} is reserved; pick a name of your own, e.g. x-trace-id"
        ));
    }
    Ok(h)
}
