//! The config file as written: serde structs that mirror the YAML, with unknown keys refused.
//!
//! Nothing here is checked beyond YAML types; [`super::model`] turns these into the typed,
//! validated model and documents every default.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Vec<FileListen>,
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub telemetry: FileTelemetry,
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, FileUpstream>,
    #[serde(default)]
    pub forwarded: FileForwarded,
    /// `admin`: the admin listener; absent, there is none.
    pub admin: Option<FileAdmin>,
    /// No key: no access log.
    pub access_log: Option<FileAccessLog>,
    /// Named route middlewares, referenced by `routes[].middlewares`.
    #[serde(default)]
    pub middlewares: BTreeMap<String, FileMiddleware>,
}

/// One named middleware: exactly one of its keys is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMiddleware {
    pub ip_allow: Option<Vec<String>>,
    pub ip_deny: Option<Vec<String>>,
    pub body_limit: Option<FileSize>,
    pub cors: Option<FileCors>,
    pub compress: Option<FileCompress>,
    pub basic_auth: Option<FileBasicAuth>,
    pub forward_auth: Option<FileForwardAuth>,
    pub rate_limit: Option<FileRateLimit>,
}

/// `middlewares.<name>.rate_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimit {
    pub average: Option<u64>,
    pub period: Option<String>,
    pub burst: Option<u64>,
    pub key: Option<FileRateKey>,
    /// `redis://…`; absent: in this process.
    pub store: Option<String>,
    pub on_store_error: Option<String>,
}

/// `rate_limit.key`: `client_ip`, `route`, or `{ header: NAME }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileRateKey {
    Name(String),
    Header { header: String },
}

/// `middlewares.<name>.basic_auth`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBasicAuth {
    pub users_file: String,
    pub realm: Option<String>,
    pub pass_credentials: Option<bool>,
}

/// `middlewares.<name>.forward_auth`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileForwardAuth {
    pub address: String,
    #[serde(default)]
    pub response_headers: Vec<String>,
    pub timeout: Option<String>,
    pub trust_forward_header: Option<bool>,
}

/// `middlewares.<name>.cors`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCors {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    pub allow_methods: Option<Vec<String>>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<String>,
    pub allow_credentials: Option<bool>,
}

/// `middlewares.<name>.compress`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCompress {
    pub min_size: Option<FileSize>,
    pub types: Option<Vec<String>>,
    pub level: Option<u32>,
}

/// `admin`: the admin listener (`/ping`, `/ready`, `/metrics`, `/upstreams`, `/config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    pub listen: Option<String>,
    /// The trace viewer's store; present (`{}` for the defaults), the viewer is on.
    pub traces: Option<FileAdminTraces>,
    /// `POST /v1/traces`: OTLP/HTTP spans from the services behind the proxy.
    pub otlp_intake: Option<bool>,
    /// A link from the viewer to the same trace in the real backend, with `{trace_id}`.
    pub trace_url: Option<String>,
}

/// `admin.traces`: how many recent traces the viewer keeps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdminTraces {
    pub max_traces: Option<usize>,
    pub max_bytes: Option<FileSize>,
    pub keep_errors: Option<usize>,
    pub keep_slow: Option<usize>,
}

/// `access_log`: one line per finished request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccessLog {
    /// `stdout`, `stderr` or a file path.
    pub path: Option<String>,
    /// `json` or `combined`.
    pub format: Option<String>,
    #[serde(default)]
    pub filters: FileAccessLogFilters,
    /// Lines queued for the writer before new ones are dropped.
    pub queue_size: Option<usize>,
}

/// `access_log.filters`: a line is kept when any of them matches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccessLogFilters {
    pub status: Option<FileStatusList>,
    pub slower_than: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub threads: Option<usize>,
    pub grace_period: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub watch_config: Option<bool>,
    pub watch_interval: Option<String>,
    pub upgrade_sock: Option<String>,
    pub header_read_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub max_header_size: Option<FileSize>,
    pub max_header_line: Option<FileSize>,
    pub max_header_count: Option<usize>,
    pub max_requests_per_connection: Option<u32>,
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub path: FilePath,
}

/// A size: a number of bytes, or a string with a unit (`64KiB`, `1MiB`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileSize {
    Bytes(u64),
    Text(String),
}

/// `server.path`: how request paths are normalised before routing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePath {
    pub normalize: Option<bool>,
    pub merge_slashes: Option<bool>,
    /// Names of refusable encodings to let through (`slash`, `backslash`, ...).
    pub allow_encoded: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTelemetry {
    pub service_name: Option<String>,
    pub resource: Option<BTreeMap<String, String>>,
    pub traceresponse: Option<bool>,
    pub trace_id_header: Option<String>,
    #[serde(default)]
    pub sampler: FileSampler,
    #[serde(default)]
    pub keep: FileKeep,
    pub trust_incoming: Option<FileTrust>,
    /// `OTEL_PROPAGATORS` names, in extraction order.
    pub propagators: Option<Vec<String>>,
    #[serde(default)]
    pub capture: FileCapture,
    #[serde(default)]
    pub exporter: FileExporter,
    #[serde(default)]
    pub batch: FileBatch,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSampler {
    pub name: Option<String>,
    pub ratio: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileKeep {
    pub errors: Option<bool>,
    pub slower_than: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCapture {
    #[serde(default)]
    pub request_headers: Vec<String>,
    #[serde(default)]
    pub response_headers: Vec<String>,
    pub query: Option<String>,
    #[serde(default)]
    pub sensitive_query_keys: Vec<String>,
}

/// `all`, `none`, or a list of networks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileTrust {
    Word(String),
    Networks(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExporter {
    pub protocol: Option<String>,
    pub endpoint: Option<String>,
    pub timeout: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub compression: Option<String>,
    pub tls: Option<FileTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBatch {
    pub max_queue_size: Option<usize>,
    pub max_export_batch_size: Option<usize>,
    pub scheduled_delay: Option<String>,
    pub export_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub name: String,
    #[serde(rename = "match", default)]
    pub match_: FileMatch,
    pub priority: Option<i32>,
    pub upstream: Option<String>,
    pub strip_prefix: Option<String>,
    pub add_prefix: Option<String>,
    pub request_headers: Option<FileHeaderEdits>,
    pub response_headers: Option<FileHeaderEdits>,
    pub respond: Option<FileRespond>,
    pub redirect: Option<FileRedirect>,
    pub sample_ratio: Option<f64>,
    /// Replaces `server.path.allow_encoded` for this route.
    pub allow_encoded: Option<Vec<String>>,
    /// Names of `middlewares`, run in this order.
    pub middlewares: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMatch {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRespond {
    #[serde(default = "default_respond_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
}

fn default_respond_status() -> u16 {
    200
}

/// `routes[].request_headers` / `routes[].response_headers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeaderEdits {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, FileOneOrMany>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A value, or a list of values.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileOneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `routes[].redirect`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRedirect {
    pub url: Option<String>,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub status: Option<u16>,
}

/// `forwarded`: the X-Forwarded-* and Forwarded headers of proxied requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileForwarded {
    /// `none`, `all`, or a list of networks.
    pub trusted: Option<FileTrust>,
    /// Which header families to write: `x-forwarded`, `forwarded`.
    pub headers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub backends: Vec<FileBackend>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub write_timeout: Option<String>,
    /// TLS to the backends (`tls: {}` for the defaults).
    pub tls: Option<FileUpstreamTls>,
    /// HTTP/2 to the backends: ALPN `h2` over TLS, prior knowledge (h2c) over plain TCP.
    pub http2: Option<bool>,
    pub pass_host: Option<bool>,
    pub host: Option<String>,
    /// Total time for the upstream part of a request, all attempts included.
    pub timeout: Option<String>,
    pub lb: Option<String>,
    pub hash_on: Option<FileHashOn>,
    pub health_check: Option<FileHealthCheck>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<String>,
    pub retries: Option<u32>,
}

/// A backend: `"host:port"` (weight 1) or `{ addr: "host:port", weight: 3 }`.
#[derive(Debug)]
pub struct FileBackend {
    pub addr: String,
    pub weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackendMap {
    addr: String,
    weight: Option<u32>,
}

impl<'de> Deserialize<'de> for FileBackend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileBackend;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"host:port\" or { addr: \"host:port\", weight: N }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileBackend, E> {
                Ok(FileBackend {
                    addr: v.to_owned(),
                    weight: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<FileBackend, A::Error> {
                let b =
                    FileBackendMap::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                Ok(FileBackend {
                    addr: b.addr,
                    weight: b.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `hash_on`: `client_ip`, `{ header: NAME }` or `{ cookie: NAME }`.
#[derive(Debug)]
pub enum FileHashOn {
    Word(String),
    Keys {
        header: Option<String>,
        cookie: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHashOnMap {
    header: Option<String>,
    cookie: Option<String>,
}

impl<'de> Deserialize<'de> for FileHashOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileHashOn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("client_ip, { header: NAME } or { cookie: NAME }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileHashOn, E> {
                Ok(FileHashOn::Word(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<FileHashOn, A::Error> {
                let h =
                    FileHashOnMap::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                Ok(FileHashOn::Keys {
                    header: h.header,
                    cookie: h.cookie,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstreamTls {
    pub sni: Option<String>,
    pub verify: Option<bool>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

/// One `listen` entry: `"IP:port"`, or an object with TLS and protocol settings.
#[derive(Debug)]
pub enum FileListen {
    Addr(String),
    Listener(FileListener),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListener {
    pub addr: String,
    pub tls: Option<FileListenerTls>,
    pub http2: Option<bool>,
    pub redirect_https: Option<FileRedirectHttps>,
    pub max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListenerTls {
    pub certificates: Vec<FileCertificate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCertificate {
    pub cert_file: String,
    pub key_file: String,
}

/// `redirect_https`: `true`/`false`, or the HTTPS port to redirect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRedirectHttps {
    Enabled(bool),
    Port(u64),
}

// Hand-written rather than `#[serde(untagged)]`, so that an error inside a listener object
// keeps its key and serde's own message (`listen[1].tls.certificates[0]: unknown field ...`).
impl<'de> Deserialize<'de> for FileListen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileListen;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "an address \"IP:port\" or a listener { addr, tls, http2, redirect_https }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileListen, E> {
                Ok(FileListen::Addr(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<FileListen, A::Error> {
                FileListener::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(FileListen::Listener)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FileRedirectHttps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FileRedirectHttps;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or the HTTPS port (1-65535)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<FileRedirectHttps, E> {
                Ok(FileRedirectHttps::Enabled(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileRedirectHttps, E> {
                Ok(FileRedirectHttps::Port(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileRedirectHttps, E> {
                Err(E::custom(format!(
                    "{v} is not a port: expected true, false or 1-65535"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// `health_check`: active checks of an upstream's backends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheck {
    /// `http` or `tcp`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub status: Option<FileStatusList>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
}

/// Expected statuses: one item or a list; each a code (`200`) or a string (`"2xx"`,
/// `"200-299"`), kept as text for the checker.
#[derive(Debug)]
pub struct FileStatusList(pub Vec<String>);

struct StatusItem(String);

impl<'de> Deserialize<'de> for StatusItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StatusItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a status code (200), a range (\"200-299\") or a class (\"2xx\")")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StatusItem, E> {
                Ok(StatusItem(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StatusItem, E> {
                Ok(StatusItem(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StatusItem, E> {
                Ok(StatusItem(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FileStatusList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileStatusList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a status, or a list of statuses such as [200, \"3xx\"]")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileStatusList, E> {
                Ok(FileStatusList(vec![v.to_string()]))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileStatusList, E> {
                Ok(FileStatusList(vec![v.to_string()]))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileStatusList, E> {
                Ok(FileStatusList(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FileStatusList, A::Error> {
                let mut out = Vec::new();
                while let Some(StatusItem(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(FileStatusList(out))
            }
        }
        d.deserialize_any(V)
    }
}
