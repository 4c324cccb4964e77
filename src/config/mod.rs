//! Configuration: the YAML file ([`file`]), environment overrides and the checked model
//! ([`model`]).
//!
//! River's split: serde structs that refuse unknown keys, then one check per top-level key
//! (`listeners`, `server`, `telemetry`, `routes`, `forwarded`, `upstreams`) that builds the
//! settings type its domain owns ([`crate::listeners::ListenerSpec`],
//! [`crate::upstream::UpstreamSpec`], [`crate::routing::Router`], [`crate::trace::TraceOptions`],
//! ...). The domains never import this module; only the binary, the server assembly and the
//! reloader do. `check` is the kit the checks share; [`defaults`] holds every default.
//!
//! Loading never panics: every problem becomes a [`ConfigError`] naming the file, the key and
//! the reason, which `tracegate --check` prints and the server refuses to start with.

mod check;
pub mod defaults;
pub mod file;
mod forwarded;
mod listeners;
pub mod model;
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
pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: name.clone(),
        key: String::new(),
        reason: format!("cannot read: {e}"),
    })?;
    load_str(&text, &name, env)
}

/// Parses and checks config text; `name` is used in error messages.
pub fn load_str(text: &str, name: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    let file: file::FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError {
            file: name.to_owned(),
            key: if key == "." { String::new() } else { key },
            reason: e.into_inner().to_string(),
        }
    })?;
    Config::from_file(file, name, env)
}
