//! `telemetry.exporter`, `telemetry.batch` and `telemetry.resource`: where spans go and how
//! they are batched, with the standard `OTEL_*` variables (OTLP exporter spec, SDK
//! configuration spec) overriding the file.

use super::super::check::{
    env_err, first_env, key_err, parse_count_in, parse_ms_in, Ctx, HOUR, MS,
};
use super::super::defaults;
use super::super::file::FileTelemetry;
use super::super::{ConfigError, Env};
use crate::trace::export::pipeline::PipelineSettings;
use crate::trace::export::settings::{redact_userinfo, ExporterProtocol, ExporterSettings};
use crate::trace::export::tls::{TlsFile, TlsSettings};
use crate::trace::export::transport::Compression;

/// `telemetry.exporter`: where spans go (protocol, endpoint, timeout, headers, compression,
/// TLS), with the standard `OTEL_*` variables overriding the file.
pub(super) fn exporter(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
) -> Result<ExporterSettings, ConfigError> {
    // Protocol: env (traces-specific first) > file > grpc when an endpoint is given > stdout.
    let env_protocol = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|k| env.var(k).map(|v| (*k, v)));
    let file_protocol = match &t.exporter.protocol {
        Some(p) => Some(parse_protocol(p).map_err(|r| c.err("telemetry.exporter.protocol", r))?),
        None => None,
    };
    // Endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; OTEL_EXPORTER_OTLP_ENDPOINT is
    // a base URL (OTLP exporter spec); the file's endpoint is used as is for gRPC and gets
    // `/v1/traces` for HTTP when it has no path.
    let traces_ep = env.var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let base_ep = env.var("OTEL_EXPORTER_OTLP_ENDPOINT");
    let any_endpoint = traces_ep.is_some() || base_ep.is_some() || t.exporter.endpoint.is_some();

    let mut protocol = match (&env_protocol, file_protocol) {
        (Some((k, v)), _) => match parse_protocol(v) {
            Ok(p @ (ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf)) => p,
            Ok(_) => {
                return Err(env_err(
                    k,
                    format!("{v:?} is not an OTLP protocol: expected grpc or http/protobuf"),
                ))
            }
            Err(r) => return Err(env_err(k, r)),
        },
        (None, Some(p)) => p,
        (None, None) if any_endpoint => ExporterProtocol::Grpc,
        (None, None) => ExporterProtocol::Stdout,
    };
    // OTEL_TRACES_EXPORTER (otlp | console | none) and OTEL_SDK_DISABLED select the exporter kind.
    if let Some(v) = env.var("OTEL_TRACES_EXPORTER") {
        protocol = match v.trim() {
            "otlp"
                if !matches!(
                    protocol,
                    ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf
                ) =>
            {
                ExporterProtocol::Grpc
            }
            "otlp" => protocol,
            "console" => ExporterProtocol::Stdout,
            "zipkin" => ExporterProtocol::Zipkin,
            "none" => ExporterProtocol::None,
            other => {
                return Err(env_err(
                    "OTEL_TRACES_EXPORTER",
                    format!(
                        "unsupported exporter {other:?}: expected otlp, zipkin, console or none"
                    ),
                ))
            }
        };
    }
    if env
        .var("OTEL_SDK_DISABLED")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        protocol = ExporterProtocol::None;
    }

    let endpoint = match protocol {
        ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf => {
            let http = protocol == ExporterProtocol::HttpProtobuf;
            let (ep, key, from_env) = if let Some(v) = traces_ep {
                (v, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", true)
            } else if let Some(v) = base_ep {
                (
                    if http { with_traces_path(&v) } else { v },
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    true,
                )
            } else if let Some(v) = &t.exporter.endpoint {
                let v = if http && has_no_path(v) {
                    with_traces_path(v)
                } else {
                    v.clone()
                };
                (v, "telemetry.exporter.endpoint", false)
            } else if http {
                (defaults::HTTP_ENDPOINT.to_owned(), "", false)
            } else {
                (defaults::GRPC_ENDPOINT.to_owned(), "", false)
            };
            check_endpoint(&ep).map_err(|r| {
                if from_env {
                    env_err(key, r)
                } else {
                    c.err(key, r)
                }
            })?;
            ep
        }
        ExporterProtocol::Zipkin => zipkin_endpoint(c, t, env)?,
        ExporterProtocol::Stdout | ExporterProtocol::None => String::new(),
    };

    let mut timeout = c.duration_in(
        "telemetry.exporter.timeout",
        &t.exporter.timeout,
        defaults::EXPORT_TIMEOUT,
        MS..=HOUR,
    )?;
    for k in timeout_vars(protocol) {
        if let Some(v) = env.var(k) {
            timeout = parse_ms_in(k, &v, MS..=HOUR)?;
            break;
        }
    }
    Ok(ExporterSettings {
        protocol,
        endpoint,
        timeout,
        ..exporter_extras(c, t, env, protocol)?
    })
}

/// `telemetry.batch`: the span queue and export batches, with the `OTEL_BSP_*` variables
/// overriding the file.
/// The largest span queue (`telemetry.batch.max_queue_size`): about a million spans, a few
/// hundred MiB at most, ~2 minutes of headroom at 4000 requests/s.
const MAX_QUEUE_SIZE: usize = 1 << 20;
/// The most spans in one export request (`telemetry.batch.max_export_batch_size`); OTLP
/// receivers commonly refuse requests over 4 MiB, which 65,536 spans already exceed.
const MAX_EXPORT_BATCH_SIZE: usize = 1 << 16;

pub(super) fn batch(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
) -> Result<PipelineSettings, ConfigError> {
    let b = &t.batch;
    let mut batch = PipelineSettings {
        max_queue_size: c.count_in(
            "telemetry.batch.max_queue_size",
            b.max_queue_size,
            defaults::MAX_QUEUE_SIZE,
            1..=MAX_QUEUE_SIZE,
        )?,
        max_export_batch_size: c.count_in(
            "telemetry.batch.max_export_batch_size",
            b.max_export_batch_size,
            defaults::MAX_EXPORT_BATCH_SIZE,
            1..=MAX_EXPORT_BATCH_SIZE,
        )?,
        scheduled_delay: c.duration_in(
            "telemetry.batch.scheduled_delay",
            &b.scheduled_delay,
            defaults::SCHEDULED_DELAY,
            MS..=HOUR,
        )?,
        export_timeout: c.duration_in(
            "telemetry.batch.export_timeout",
            &b.export_timeout,
            defaults::BATCH_EXPORT_TIMEOUT,
            MS..=HOUR,
        )?,
    };
    if let Some(v) = env.var("OTEL_BSP_MAX_QUEUE_SIZE") {
        batch.max_queue_size = parse_count_in("OTEL_BSP_MAX_QUEUE_SIZE", &v, 1..=MAX_QUEUE_SIZE)?;
    }
    if let Some(v) = env.var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        batch.max_export_batch_size = parse_count_in(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            &v,
            1..=MAX_EXPORT_BATCH_SIZE,
        )?;
    }
    if let Some(v) = env.var("OTEL_BSP_SCHEDULE_DELAY") {
        batch.scheduled_delay = parse_ms_in("OTEL_BSP_SCHEDULE_DELAY", &v, MS..=HOUR)?;
    }
    if let Some(v) = env.var("OTEL_BSP_EXPORT_TIMEOUT") {
        batch.export_timeout = parse_ms_in("OTEL_BSP_EXPORT_TIMEOUT", &v, MS..=HOUR)?;
    }
    // The batch can never be larger than the queue (OpenTelemetry SDK spec, batching processor).
    batch.max_export_batch_size = batch.max_export_batch_size.min(batch.max_queue_size);
    Ok(batch)
}

/// `service.name` and the other resource attributes. Precedence (OpenTelemetry SDK
/// configuration spec): `OTEL_SERVICE_NAME` > `service.name` in `OTEL_RESOURCE_ATTRIBUTES` >
/// `telemetry.service_name`; `service_name` is what the caller resolved from the first and
/// last. Keys in `OTEL_RESOURCE_ATTRIBUTES` replace the same keys of `telemetry.resource`.
pub(super) fn resource_attributes(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    mut service_name: String,
) -> Result<(String, Vec<(String, String)>), ConfigError> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    // Where each key sits in `attrs`, so an override is one look-up.
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, v) in t.resource.iter().flatten() {
        let key = format!("telemetry.resource.{k}");
        if k.trim().is_empty() {
            return Err(c.err(key, "the attribute name must not be empty"));
        }
        if k.trim() == "service.name" {
            return Err(c.err(
                key,
                "service.name is not a resource key here: use telemetry.service_name",
            ));
        }
        at.insert(k.trim().to_owned(), attrs.len());
        attrs.push((k.trim().to_owned(), v.clone()));
    }
    const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
    if let Some(v) = env.var(VAR) {
        for (k, v) in parse_key_value_list(&v).map_err(|r| env_err(VAR, r))? {
            if k == "service.name" {
                if env.var("OTEL_SERVICE_NAME").is_none() {
                    service_name = v;
                }
                continue;
            }
            match at.get(&k) {
                Some(&i) => attrs[i].1 = v,
                None => {
                    at.insert(k.clone(), attrs.len());
                    attrs.push((k, v));
                }
            }
        }
    }
    Ok((service_name, attrs))
}

/// Splits a `key=value,key2=value2` list, the syntax of `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS` (W3C Baggage without properties; OpenTelemetry SDK
/// configuration spec). Keys are trimmed; values are trimmed and percent-decoded. Empty entries
/// are skipped. Errors never quote a value (header values are secrets).
fn parse_key_value_list(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!(
                "entry {} is not key=value (expected key1=value1,key2=value2)",
                i + 1
            ));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("entry {} has an empty key", i + 1));
        }
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of {k:?} is not UTF-8 once percent-decoded"))?;
        out.push((k.to_owned(), v.into_owned()));
    }
    Ok(out)
}

fn parse_protocol(s: &str) -> Result<ExporterProtocol, String> {
    match s.trim() {
        "grpc" => Ok(ExporterProtocol::Grpc),
        "http/protobuf" => Ok(ExporterProtocol::HttpProtobuf),
        "zipkin" => Ok(ExporterProtocol::Zipkin),
        "stdout" => Ok(ExporterProtocol::Stdout),
        "none" => Ok(ExporterProtocol::None),
        "http/json" => Err("http/json is not supported; use grpc or http/protobuf".into()),
        other => Err(format!(
            "unknown protocol {other:?}: expected grpc, http/protobuf, zipkin, stdout or none"
        )),
    }
}

fn check_endpoint(url: &str) -> Result<(), String> {
    // Errors quote the URL without any credentials written into it.
    let s = redact_userinfo(url);
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "invalid URL {s:?}: the scheme must be http or https"
            ))
        }
    }
    if uri.authority().is_none() {
        return Err(format!("invalid URL {s:?}: no host"));
    }
    Ok(())
}

/// Appends the OTLP/HTTP traces path to a base URL (OTLP exporter spec, "Endpoint URLs for
/// OTLP/HTTP": `OTEL_EXPORTER_OTLP_ENDPOINT` is a base to which `v1/traces` is appended).
fn with_traces_path(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// True when the URL has no path (or just `/`).
fn has_no_path(url: &str) -> bool {
    url.parse::<http::Uri>()
        .map(|u| matches!(u.path(), "" | "/"))
        .unwrap_or(false)
}

/// Variables for the export timeout, in milliseconds, most specific first.
fn timeout_vars(protocol: ExporterProtocol) -> &'static [&'static str] {
    match protocol {
        ExporterProtocol::Zipkin => &["OTEL_EXPORTER_ZIPKIN_TIMEOUT"],
        _ => &[
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
    }
}

/// The Zipkin collector URL: `OTEL_EXPORTER_ZIPKIN_ENDPOINT` > `telemetry.exporter.endpoint` >
/// the default; each is the full URL, used as given.
fn zipkin_endpoint(c: &Ctx<'_>, t: &FileTelemetry, env: &dyn Env) -> Result<String, ConfigError> {
    let (key, url) = match (
        env.var("OTEL_EXPORTER_ZIPKIN_ENDPOINT"),
        &t.exporter.endpoint,
    ) {
        (Some(v), _) => ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", v),
        (None, Some(v)) => ("telemetry.exporter.endpoint", v.clone()),
        (None, None) => ("", defaults::ZIPKIN_ENDPOINT.to_owned()),
    };
    check_endpoint(&url).map_err(|r| key_err(c, key, r))?;
    Ok(url)
}

/// A header to send to the collector: a valid lower-case name that is not one the transport
/// owns, and a valid value (marked sensitive). Errors name the header, never the value.
fn export_header(name: &str, value: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let n = http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    const OWNED: [&str; 9] = [
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "te",
        "transfer-encoding",
        "upgrade",
        "user-agent",
    ];
    if OWNED.contains(&n.as_str()) || n.as_str().starts_with("grpc-") {
        return Err(format!("header {name:?} is set by the exporter itself"));
    }
    if n.as_str().ends_with("-bin") {
        return Err(format!(
            "header {name:?}: names ending in -bin are binary gRPC metadata, not supported"
        ));
    }
    let mut v = http::HeaderValue::from_str(value.trim()).map_err(|_| {
        format!("the value of header {name:?} has characters not allowed in a header")
    })?;
    v.set_sensitive(true);
    Ok((n, v))
}

/// Headers sent with every export. `OTEL_EXPORTER_OTLP_TRACES_HEADERS` >
/// `OTEL_EXPORTER_OTLP_HEADERS` > `telemetry.exporter.headers`, each replacing the others as a
/// whole (the OTLP exporter spec: the signal-specific option takes precedence over the
/// generic one), so a key rotated through the environment never mixes with stale file headers.
/// The variables apply to the OTLP protocols only.
fn exporter_headers(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    otlp: bool,
) -> Result<http::HeaderMap, ConfigError> {
    let mut out = http::HeaderMap::new();
    let env_headers = otlp
        .then(|| {
            first_env(
                env,
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "OTEL_EXPORTER_OTLP_HEADERS",
                ],
            )
        })
        .flatten();
    if let Some((var, v)) = env_headers {
        for (k, v) in parse_key_value_list(&v).map_err(|r| env_err(var, r))? {
            let (n, v) = export_header(&k, &v).map_err(|r| env_err(var, r))?;
            out.insert(n, v);
        }
        return Ok(out);
    }
    for (k, v) in t.exporter.headers.iter().flatten() {
        let (n, v) =
            export_header(k, v).map_err(|r| c.err(format!("telemetry.exporter.headers.{k}"), r))?;
        out.insert(n, v);
    }
    Ok(out)
}

/// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` > `OTEL_EXPORTER_OTLP_COMPRESSION` (OTLP only) >
/// `telemetry.exporter.compression` > none.
fn exporter_compression(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    otlp: bool,
) -> Result<Compression, ConfigError> {
    let vars = [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ];
    let (key, v) = match otlp.then(|| first_env(env, &vars)).flatten() {
        Some((k, v)) => (k, v),
        None => match &t.exporter.compression {
            Some(v) => ("telemetry.exporter.compression", v.clone()),
            None => return Ok(Compression::None),
        },
    };
    match v.trim() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        other => Err(key_err(
            c,
            key,
            format!("unknown compression {other:?}: expected gzip or none"),
        )),
    }
}

/// The TLS files: each `OTEL_EXPORTER_OTLP_(TRACES_)*` variable (OTLP only) overrides its key
/// of `telemetry.exporter.tls`. Files are read and checked here, so a missing or broken file
/// fails the load naming its key and path.
fn exporter_tls(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    otlp: bool,
) -> Result<TlsSettings, ConfigError> {
    let file = t.exporter.tls.as_ref();
    let pick = |vars: [&'static str; 2], key: &'static str, v: Option<&String>| match otlp
        .then(|| first_env(env, &vars))
        .flatten()
    {
        Some((var, path)) => Some((var, path)),
        None => v.map(|p| (key, p.clone())),
    };
    let ca = pick(
        [
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ],
        "telemetry.exporter.tls.ca_file",
        file.and_then(|f| f.ca_file.as_ref()),
    );
    let cert = pick(
        [
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ],
        "telemetry.exporter.tls.cert_file",
        file.and_then(|f| f.cert_file.as_ref()),
    );
    let key = pick(
        [
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ],
        "telemetry.exporter.tls.key_file",
        file.and_then(|f| f.key_file.as_ref()),
    );
    let client = match (&cert, &key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some((given, _)), None) | (None, Some((given, _))) => {
            let missing = if cert.is_none() {
                "the client certificate (cert_file)"
            } else {
                "the client key (key_file)"
            };
            return Err(key_err(
                c,
                given,
                format!("{missing} is missing: a client certificate needs both cert and key"),
            ));
        }
    };
    TlsSettings::load(
        ca.as_ref().map(|(_, p)| std::path::Path::new(p)),
        client.map(|((_, c), (_, k))| (std::path::Path::new(c), std::path::Path::new(k))),
    )
    .map_err(|(which, reason)| {
        let named = match which {
            TlsFile::Ca => &ca,
            TlsFile::Cert => &cert,
            TlsFile::Key => &key,
        };
        key_err(c, named.as_ref().map_or("", |(k, _)| k), reason)
    })
}

/// Headers, compression and TLS of the exporter (the other fields are left at their defaults
/// for the caller to fill). Nothing is read for `stdout` and `none`.
fn exporter_extras(
    c: &Ctx<'_>,
    t: &FileTelemetry,
    env: &dyn Env,
    protocol: ExporterProtocol,
) -> Result<ExporterSettings, ConfigError> {
    if matches!(protocol, ExporterProtocol::Stdout | ExporterProtocol::None) {
        return Ok(ExporterSettings::default());
    }
    let otlp = matches!(
        protocol,
        ExporterProtocol::Grpc | ExporterProtocol::HttpProtobuf
    );
    Ok(ExporterSettings {
        headers: exporter_headers(c, t, env, otlp)?,
        compression: exporter_compression(c, t, env, otlp)?,
        tls: exporter_tls(c, t, env, otlp)?,
        ..ExporterSettings::default()
    })
}
