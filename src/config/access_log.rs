//! `access_log`: where the access log goes, its format and filters (issue 13 §1), checked into
//! [`AccessLogSettings`]. The query is redacted by the rules of `telemetry.capture`, so the
//! log never shows what the span hides.
//!
//! A file path is checked at load, so `tracegate --check` refuses what the writer could not
//! open: its folder must exist, and the file (or, when it does not exist yet, its folder) must
//! be writable. Nothing is created by the check.

use super::check::{Ctx, DAY};
use super::defaults;
use super::file::FileAccessLog;
use super::ConfigError;
use crate::observe::access_log::{AccessLogSettings, Filters, Format, Target};
use crate::trace::capture::Capture;
use crate::upstream::settings::parse_status_item;
use std::path::Path;
use std::time::Duration;

/// The most lines `access_log.queue_size` takes (as `telemetry.batch.max_queue_size`).
const MAX_QUEUE_SIZE: usize = 1 << 20;

/// Checks `access_log`; `query` is the checked `telemetry.capture`.
pub(super) fn check_access_log(
    c: &Ctx<'_>,
    f: &Option<FileAccessLog>,
    query: &Capture,
) -> Result<Option<AccessLogSettings>, ConfigError> {
    let Some(f) = f else {
        return Ok(None);
    };
    let path = f.path.as_deref().unwrap_or(defaults::ACCESS_LOG_PATH);
    let target = check_target(path).map_err(|r| c.err("access_log.path", r))?;
    let format = match f
        .format
        .as_deref()
        .unwrap_or(defaults::ACCESS_LOG_FORMAT)
        .trim()
    {
        "json" => Format::Json,
        "combined" => Format::Combined,
        other => {
            return Err(c.err(
                "access_log.format",
                format!("unknown format {other:?}: expected json or combined"),
            ))
        }
    };
    let status = match &f.filters.status {
        None => Vec::new(),
        Some(list) if list.0.is_empty() => {
            return Err(c.err(
                "access_log.filters.status",
                "an empty list keeps no line: list statuses, or leave the key out",
            ))
        }
        Some(list) => list
            .0
            .iter()
            .enumerate()
            .map(|(i, s)| {
                parse_status_item(s)
                    .map_err(|r| c.err(format!("access_log.filters.status[{i}]"), r))
            })
            .collect::<Result<_, _>>()?,
    };
    let slower_than = match &f.filters.slower_than {
        None => None,
        v => Some(c.duration_in(
            "access_log.filters.slower_than",
            v,
            Duration::ZERO,
            Duration::ZERO..=DAY,
        )?),
    };
    let queue_size = c.count_in(
        "access_log.queue_size",
        f.queue_size,
        defaults::ACCESS_LOG_QUEUE_SIZE,
        1..=MAX_QUEUE_SIZE,
    )?;
    Ok(Some(AccessLogSettings {
        target,
        format,
        filters: Filters {
            status,
            slower_than,
        },
        queue_size,
        query: query.clone(),
    }))
}

/// `stdout`, `stderr`, or a file that can be written (see the module documentation).
fn check_target(path: &str) -> Result<Target, String> {
    match path {
        "stdout" => return Ok(Target::Stdout),
        "stderr" => return Ok(Target::Stderr),
        p if p.trim().is_empty() => {
            return Err("must not be empty: a file path, stdout or stderr".into())
        }
        _ => {}
    }
    let p = Path::new(path);
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Err(format!("{path} is a directory, not a file")),
        // The file exists: opening it for writing says whether it can be written (the
        // permission bits do not, for root). O_NONBLOCK: a FIFO without a reader answers at
        // once (ENXIO) instead of waiting; the writer waits for its reader.
        Ok(_) => {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p)
            {
                Ok(_) => Ok(Target::File(p.to_owned())),
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(Target::File(p.to_owned())),
                Err(e) => Err(format!("{path} cannot be written: {e}")),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            match std::fs::metadata(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(format!("the folder {} does not exist", dir.display()))
                }
                Err(e) => Err(format!("cannot read the folder {}: {e}", dir.display())),
                Ok(m) if !m.is_dir() => Err(format!("{} is not a folder", dir.display())),
                Ok(_) => {
                    use nix::unistd::{access, AccessFlags};
                    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                        format!(
                            "{path} cannot be created: the folder {} cannot be written ({})",
                            dir.display(),
                            e.desc()
                        )
                    })?;
                    Ok(Target::File(p.to_owned()))
                }
            }
        }
        // A file where a folder should be, somewhere on the way.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            let file = p
                .ancestors()
                .skip(1)
                .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()))
                .unwrap_or(p);
            Err(format!("{} is not a folder", file.display()))
        }
        Err(e) => Err(format!("cannot read {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;
    use crate::trace::capture::QueryMode;
    use std::collections::HashMap;

    fn load(body: &str) -> Result<super::super::Config, ConfigError> {
        let yaml = format!("listen: [\"127.0.0.1:1\"]\n{body}");
        load_str(&yaml, "t.yaml", &HashMap::<&str, &str>::new())
    }

    #[test]
    fn defaults_and_accepted_forms() {
        assert!(load("").unwrap().access_log.is_none(), "no key: no log");
        let a = load("access_log: {}\n").unwrap().access_log.unwrap();
        assert_eq!(a.target, Target::Stdout, "the key alone: stdout");
        assert_eq!(a.format, Format::Json);
        assert!(a.filters.is_empty());
        assert_eq!(a.queue_size, defaults::ACCESS_LOG_QUEUE_SIZE);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("access.log");
        let a = load(&format!(
            "telemetry: {{ capture: {{ query: full }} }}\naccess_log:\n  path: {}\n  format: combined\n  filters: {{ status: [\"5xx\", 404, \"400-403\"], slower_than: 500ms }}\n  queue_size: 16\n",
            file.display()
        ))
        .unwrap()
        .access_log
        .unwrap();
        assert_eq!(a.target, Target::File(file.clone()));
        assert!(!file.exists(), "the check creates nothing");
        assert_eq!(a.format, Format::Combined);
        assert_eq!(a.filters.status, [(500, 599), (404, 404), (400, 403)]);
        assert_eq!(a.filters.slower_than, Some(Duration::from_millis(500)));
        assert_eq!(a.queue_size, 16);
        assert_eq!(
            a.query.query_mode(),
            QueryMode::Full,
            "the span's query rules"
        );
        let a = load("access_log: { path: stderr, filters: { status: 404 } }\n")
            .unwrap()
            .access_log
            .unwrap();
        assert_eq!(
            (a.target, a.filters.status),
            (Target::Stderr, vec![(404, 404)])
        );
        let a = load("access_log: { path: /dev/null }\n")
            .unwrap()
            .access_log
            .unwrap();
        assert_eq!(a.target, Target::File("/dev/null".into()), "a device");
    }

    /// An existing FIFO without a reader is accepted at once (the check does not wait for a
    /// reader, the writer does).
    #[test]
    fn a_fifo_is_accepted_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let a = load(&format!("access_log: {{ path: {} }}\n", fifo.display()))
            .unwrap()
            .access_log
            .unwrap();
        assert_eq!(a.target, Target::File(fifo));
    }

    #[test]
    fn refused_table() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let ro_dir = dir.path().join("ro");
        std::fs::create_dir(&ro_dir).unwrap();
        let ro_file = dir.path().join("ro.log");
        std::fs::write(&ro_file, "").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&ro_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            std::fs::set_permissions(&ro_file, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
        // Root writes whatever the permission bits say; a sysfs attribute without a store
        // operation refuses even root.
        let root = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
        };
        let unwritable_file = match root {
            false => Some(ro_file.display().to_string()),
            true => Some("/sys/kernel/notes".to_owned()).filter(|p| Path::new(p).exists()),
        };
        // (access_log value, key, words in the reason, why)
        let mut cases: Vec<(String, &str, String, &str)> = vec![
            (
                format!("{{ path: {d}/missing/access.log }}"),
                "access_log.path",
                format!("the folder {d}/missing does not exist"),
                "a folder that does not exist",
            ),
            (
                format!("{{ path: {d} }}"),
                "access_log.path",
                "is a directory".into(),
                "a folder for a file",
            ),
            (
                format!("{{ path: {}/access.log }}", ro_file.display()),
                "access_log.path",
                "is not a folder".into(),
                "a file as the folder",
            ),
            (
                "{ path: \" \" }".into(),
                "access_log.path",
                "must not be empty".into(),
                "a blank path",
            ),
            (
                "{ format: clf }".into(),
                "access_log.format",
                "expected json or combined".into(),
                "an unknown format",
            ),
            (
                "{ filters: { status: [] } }".into(),
                "access_log.filters.status",
                "empty list".into(),
                "an empty status list keeps nothing",
            ),
            (
                "{ filters: { status: [200, \"6xx\"] } }".into(),
                "access_log.filters.status[1]",
                "invalid status".into(),
                "a class that does not exist",
            ),
            (
                "{ filters: { slower_than: 25h } }".into(),
                "access_log.filters.slower_than",
                "at most 24h".into(),
                "a threshold over a day",
            ),
            (
                "{ filters: { slower_than: 500 } }".into(),
                "access_log.filters.slower_than",
                String::new(),
                "a duration needs its unit",
            ),
            (
                "{ filters: { status: 404, header: x } }".into(),
                "access_log.filters.header",
                "unknown field".into(),
                "an unknown filter",
            ),
            (
                "{ queue_size: 0 }".into(),
                "access_log.queue_size",
                "at least 1".into(),
                "an empty queue",
            ),
            (
                "{ queue_size: 1048577 }".into(),
                "access_log.queue_size",
                "at most 1048576".into(),
                "a queue over 1Mi lines",
            ),
            (
                "{ paht: /tmp/a.log }".into(),
                "access_log.paht",
                "unknown field".into(),
                "a misspelt key",
            ),
        ];
        if let Some(f) = unwritable_file {
            cases.push((
                format!("{{ path: \"{f}\" }}"),
                "access_log.path",
                "cannot be written".into(),
                "a file that cannot be written",
            ));
        }
        if !root {
            cases.push((
                format!("{{ path: {}/access.log }}", ro_dir.display()),
                "access_log.path",
                "cannot be created".into(),
                "a folder that cannot be written",
            ));
        }
        for (value, key, words, why) in &cases {
            let e = load(&format!("access_log: {value}\n")).expect_err(why);
            assert_eq!(
                (e.file.as_str(), e.key.as_str()),
                ("t.yaml", *key),
                "{why}: {e}"
            );
            assert!(e.reason.contains(words.as_str()), "{why}: {e}");
        }
    }
}
