//! The check kit shared by every key's checks: [`Ctx`] (which file, and errors naming a key),
//! durations, numbers and the `all`/`none`/networks trust lists, and errors naming an `OTEL_*`
//! variable.

use super::file::FileTrust;
use super::{ConfigError, Env};
use crate::net::{Cidr, Trust};
use std::time::Duration;

/// The file being checked; makes errors that name it and a key.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A `trust`-style key: `all`, `none` or a list of networks; `default` when absent.
    pub(super) fn trust(
        &self,
        key: &str,
        v: &Option<FileTrust>,
        default: Trust,
    ) -> Result<Trust, ConfigError> {
        Ok(match v {
            None => default,
            Some(FileTrust::Word(w)) => match w.trim() {
                "all" => Trust::All,
                "none" => Trust::None,
                other => {
                    return Err(self.err(
                        key,
                        format!("{other:?}: expected all, none or a list of networks"),
                    ))
                }
            },
            Some(FileTrust::Networks(nets)) => Trust::Networks(
                nets.iter()
                    .enumerate()
                    .map(|(i, n)| Cidr::parse(n).map_err(|e| self.err(format!("{key}[{i}]"), e)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    pub(super) fn duration(
        &self,
        key: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|r| self.err(key, r)),
        }
    }
}

/// An error naming an environment variable (the file is `environment`).
pub(super) fn env_err(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        file: "environment".into(),
        key: var.into(),
        reason: reason.into(),
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h` (a bare number is refused: the unit must be explicit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}: expected a number with a unit, e.g. 500ms, 10s, 2m")
    })?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "invalid duration {s:?}: the unit must be ms, s, m or h"
            ))
        }
    };
    Ok(d)
}

/// Parses a size: a number of bytes, or a number with a unit: `B`, `KiB`, `MiB`, `GiB` (also
/// `K`/`KB`, `M`/`MB`, `G`/`GB`, as powers of 1024 like nginx's `k` and `m`).
pub fn parse_size(v: &super::file::FileSize) -> Result<u64, String> {
    let s = match v {
        super::file::FileSize::Bytes(n) => return Ok(*n),
        super::file::FileSize::Text(s) => s.trim(),
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected bytes or a number with a unit, e.g. 64KiB")
    })?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KB" | "KiB" => 1 << 10,
        "M" | "m" | "MB" | "MiB" => 1 << 20,
        "G" | "g" | "GB" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: the unit must be B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// A duration in milliseconds, the unit of the `OTEL_*` timeout variables.
pub(super) fn parse_ms(var: &str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| env_err(var, format!("expected milliseconds, got {v:?}")))
}

/// A positive count, as the `OTEL_BSP_*` sizes take.
pub(super) fn parse_count(var: &str, v: &str) -> Result<usize, ConfigError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(env_err(
            var,
            format!("expected a positive integer, got {v:?}"),
        )),
    }
}

/// The first of `vars` that is set, with its name.
pub(super) fn first_env(env: &dyn Env, vars: &[&'static str]) -> Option<(&'static str, String)> {
    vars.iter().find_map(|k| env.var(k).map(|v| (*k, v)))
}

/// An error for `key`: a file key, or an environment variable (`OTEL_*`).
pub(super) fn key_err(c: &Ctx<'_>, key: &str, reason: impl Into<String>) -> ConfigError {
    if key.starts_with("OTEL_") {
        env_err(key, reason)
    } else {
        c.err(key, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
