//! Configuration: the YAML file ([`file`]), environment overrides and the checked model
//! ([`model`]).
//!
//! River's split: serde structs that refuse unknown keys, then one check per top-level key
//! (`listeners`, `server`, `telemetry`, `routes`, `forwarded`, `upstreams`, `admin`,
//! `access_log`) that builds the settings type its domain owns
//! ([`crate::listeners::ListenerSpec`], [`crate::upstream::UpstreamSpec`],
//! [`crate::routing::Router`], [`crate::trace::TraceOptions`],
//! [`crate::observe::access_log::AccessLogSettings`], ...). The domains never import this
//! module; only the binary, the server assembly and the reloader do. `check` is the kit the checks share; [`defaults`] holds every default.
//!
//! Loading never panics: every problem becomes a [`ConfigError`] naming the file, the key and
//! the reason, which `tracegate --check` prints and the server refuses to start with.

mod access_log;
mod admin;
mod budget;
mod check;
pub mod defaults;
pub mod dump;
pub mod file;
mod forwarded;
mod listeners;
mod middlewares;
pub mod model;
mod nesting;
mod path;
mod routes;
mod server;
mod telemetry;
mod upstream_tls;
mod upstreams;

pub use check::parse_duration;
pub use model::Config;
pub use server::ServerSettings;

use std::fmt;
use std::path::Path;

/// A refused configuration: where, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file's path, or `environment` for an `OTEL_*` variable.
    pub file: String,
    /// The key, as a path (`routes[1].upstream`), or the variable name. Empty for syntax errors.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where environment variables come from (the process, or a map in tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment. Empty values count as unset, as the OpenTelemetry spec asks.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for std::collections::HashMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.to_string())
    }
}

/// Reads, parses and checks the config file at `path`, with `env` overriding file values.
///
/// The file must be a regular file of at most [`crate::files::CONFIG_MAX_BYTES`] (16 MiB):
/// a FIFO, a device or a directory is refused at once, as is a larger file.
pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let refuse = |reason: String| ConfigError {
        file: name.clone(),
        key: String::new(),
        reason,
    };
    let bytes = crate::files::read_bounded(path, crate::files::CONFIG_MAX_BYTES)
        .map_err(|e| refuse(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        refuse(format!(
            "cannot read: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    load_str(&text, &name, env)
}

/// Parses and checks config text; `name` is used in error messages.
///
/// Collections nested deeper than [`nesting::MAX_DEPTH`] (32) are refused before the YAML
/// parser runs, whose time grows with the square of the depth; a text whose aliases expand to
/// more than [`budget::UNITS_PER_BYTE`] values and string bytes per byte of it is refused while
/// it is read.
pub fn load_str(text: &str, name: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    nesting::check(text, nesting::MAX_DEPTH).map_err(|at| ConfigError {
        file: name.to_owned(),
        key: String::new(),
        reason: format!(
            "nested more than {} levels deep at line {} column {}",
            nesting::MAX_DEPTH,
            at.line,
            at.column
        ),
    })?;
    // What aliases may replay is bounded by the size of the text (see `budget`).
    let budget = budget::Budget::for_text(text.len());
    let de = budget::Budgeted::new(serde_yaml::Deserializer::from_str(text), &budget);
    let file: file::FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError {
            file: name.to_owned(),
            // Where the budget ran out, for one that did: the key that repeats the most.
            key: if key == "." { String::new() } else { key },
            reason: e.into_inner().to_string(),
        }
    })?;
    let mut config = Config::from_file(file, name, env)?;
    config.source = std::sync::Arc::from(text);
    Ok(config)
}
