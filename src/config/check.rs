//! The check kit shared by every key's checks: [`Ctx`] (which file, and errors naming a key),
//! durations, numbers and the `all`/`none`/networks trust lists, and errors naming an `OTEL_*`
//! variable.
//!
//! Every number of the config goes through a range here ([`Ctx::duration_in`],
//! [`Ctx::count_in`], [`parse_ms_in`], [`parse_count_in`]), so nothing that passes
//! `tracegate --check` can overflow later: a deadline computed as `now + timeout`, a thread
//! count, a queue allocated up front.

use super::file::FileTrust;
use super::{ConfigError, Env};
use crate::net::{Cidr, Trust};
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

/// The smallest positive duration a key takes.
pub(super) const MS: Duration = Duration::from_millis(1);
/// One hour: the longest timeout of a single step (a connect, an export, a probe) and of the
/// shutdown periods.
pub(super) const HOUR: Duration = Duration::from_secs(3600);
/// One day: the longest time a request or a pause may span (upstream read, write and total
/// timeouts, `fail_timeout`).
pub(super) const DAY: Duration = Duration::from_secs(86_400);

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

impl Ctx<'_> {
    /// A duration key within `range`; `default` (which must be in it) when absent.
    pub(super) fn duration_in(
        &self,
        key: &str,
        v: &Option<String>,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, v, default)?;
        duration_in(d, &range).map_err(|r| self.err(key, r))
    }

    /// A number key within `range`; `default` (which must be in it) when absent.
    pub(super) fn count_in<T: PartialOrd + Display + Copy>(
        &self,
        key: &str,
        v: Option<T>,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError> {
        count_in(v.unwrap_or(default), &range).map_err(|r| self.err(key, r))
    }
}

/// `d` if it lies in `range`, or why not.
pub(super) fn duration_in(
    d: Duration,
    range: &RangeInclusive<Duration>,
) -> Result<Duration, String> {
    if d < *range.start() {
        if range.start() == &MS {
            return Err("must be greater than zero".into());
        }
        return Err(format!(
            "must be at least {}",
            show_duration(*range.start())
        ));
    }
    if d > *range.end() {
        return Err(format!(
            "{} is too long: at most {}",
            show_duration(d),
            show_duration(*range.end())
        ));
    }
    Ok(d)
}

/// `n` if it lies in `range`, or why not.
pub(super) fn count_in<T: PartialOrd + Display + Copy>(
    n: T,
    range: &RangeInclusive<T>,
) -> Result<T, String> {
    if n < *range.start() {
        return Err(format!("must be at least {}", range.start()));
    }
    if n > *range.end() {
        return Err(format!("{n} is too large: at most {}", range.end()));
    }
    Ok(n)
}

/// A duration as the config writes it: the largest unit that shows it whole.
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        format!("{d:?}")
    } else if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
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
    let secs = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("invalid duration {s:?}: too long"))
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        _ => Err(format!(
            "invalid duration {s:?}: the unit must be ms, s, m or h"
        )),
    }
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

/// [`parse_ms`] within `range`.
pub(super) fn parse_ms_in(
    var: &str,
    v: &str,
    range: RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    duration_in(parse_ms(var, v)?, &range).map_err(|r| env_err(var, r))
}

/// [`parse_count`] within `range`.
pub(super) fn parse_count_in(
    var: &str,
    v: &str,
    range: RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    count_in(parse_count(var, v)?, &range).map_err(|r| env_err(var, r))
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

    /// One row per boundary: (value, range, result, why).
    #[test]
    fn ranges_table() {
        let d = Duration::from_millis;
        type DurationRow<'a> = (
            Result<Duration, String>,
            &'a RangeInclusive<Duration>,
            Result<Duration, &'a str>,
            &'a str,
        );
        let cases: &[DurationRow] = &[
            (
                parse_duration("1ms"),
                &(MS..=HOUR),
                Ok(d(1)),
                "the smallest positive duration",
            ),
            (
                parse_duration("0s"),
                &(MS..=HOUR),
                Err("must be greater than zero"),
                "zero where a pause is needed",
            ),
            (
                parse_duration("1h"),
                &(MS..=HOUR),
                Ok(d(3_600_000)),
                "exactly the maximum",
            ),
            (
                parse_duration("3600001ms"),
                &(MS..=HOUR),
                Err("3600001ms is too long: at most 1h"),
                "one millisecond over",
            ),
            (
                parse_duration("99ms"),
                &(d(100)..=HOUR),
                Err("must be at least 100ms"),
                "under a minimum other than 1ms",
            ),
            (
                parse_duration("9223372036854775807s"),
                &(MS..=DAY),
                Err("9223372036854775807s is too long: at most 24h"),
                "the Instant + Duration panic of upstreams.*.timeout",
            ),
            (
                parse_duration("18446744073709551615h"),
                &(MS..=DAY),
                Err("invalid duration \"18446744073709551615h\": too long"),
                "hours that overflow u64 seconds",
            ),
            (
                parse_duration("307445734561825861m"),
                &(MS..=DAY),
                Err("too long"),
                "minutes that overflow u64 seconds",
            ),
            (
                parse_duration("18446744073709551615ms"),
                &(MS..=DAY),
                Err("is too long: at most 24h"),
                "the largest number of milliseconds parses, and is refused",
            ),
        ];
        for (parsed, range, want, why) in cases {
            let got = parsed.clone().and_then(|v| duration_in(v, range));
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{why}"),
                (Err(words), Err(e)) => assert!(e.contains(words), "{why}: {e}"),
                _ => panic!("{why}: {got:?}"),
            }
        }
        type CountRow<'a> = (
            usize,
            RangeInclusive<usize>,
            Result<usize, &'a str>,
            &'a str,
        );
        let counts: &[CountRow] = &[
            (0, 0..=1024, Ok(0), "zero where zero means a default"),
            (1024, 0..=1024, Ok(1024), "exactly the maximum"),
            (
                1025,
                0..=1024,
                Err("1025 is too large: at most 1024"),
                "one over",
            ),
            (
                usize::MAX,
                0..=1024,
                Err("18446744073709551615 is too large"),
                "the server.threads panic",
            ),
            (
                0,
                1..=8,
                Err("must be at least 1"),
                "zero where one is the least",
            ),
        ];
        for (n, range, want, why) in counts {
            let got = count_in(*n, range);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{why}"),
                (Err(words), Err(e)) => assert!(e.contains(words), "{why}: {e}"),
                _ => panic!("{why}: {got:?}"),
            }
        }
        assert!(parse_ms_in("OTEL_BSP_SCHEDULE_DELAY", "0", MS..=HOUR).is_err());
        assert!(parse_count_in("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999", 1..=1 << 20).is_err());
    }
}
