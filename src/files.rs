//! Bounded reads of the files a config names: the config file itself and every PEM file
//! (listener certificates and keys, upstream and exporter TLS).
//!
//! A leaf. Each read opens the path once, asks the opened file (not the path again) what it is,
//! refuses anything but a regular file (a FIFO would block the reader, a device such as
//! `/dev/zero` never ends) and files over the limit, and reads at most one byte more than the
//! limit, so a file that grows while it is read is refused too rather than read without end.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest config file: 16 MiB, far beyond any hand-written config (100,000 routes take
/// about 10 MiB) and small enough to parse in well under a second.
pub const CONFIG_MAX_BYTES: u64 = 16 << 20;
/// The largest PEM file (certificate chain, private key, CA bundle): 1 MiB. The system's whole
/// CA bundle is about 200 KiB.
pub const PEM_MAX_BYTES: u64 = 1 << 20;

/// Why a file was not read. `Display` names the path.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io(String, std::io::Error),
    /// A FIFO, a device, a socket or a directory.
    NotRegular(String, &'static str),
    /// Larger than the limit (`size` is what the file said, or at least limit + 1).
    TooLarge { path: String, size: u64, limit: u64 },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "cannot read {p}: {e}"),
            Self::NotRegular(p, kind) => {
                write!(
                    f,
                    "{p} is not a regular file but {kind}; give the path of a file"
                )
            }
            Self::TooLarge { path, size, limit } => write!(
                f,
                "{path} is too large: {size} bytes, at most {} are read",
                human(*limit)
            ),
        }
    }
}

impl std::error::Error for ReadError {}

fn human(limit: u64) -> String {
    if limit >= 1 << 20 && limit % (1 << 20) == 0 {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    }
}

/// Reads the regular file at `path`, of at most `limit` bytes.
///
/// The file is opened non-blocking, so opening a FIFO returns at once instead of waiting for a
/// writer; the type and size come from the opened descriptor (`fstat`), so a path swapped
/// between a check and the read cannot slip through.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let name = || path.display().to_string();
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ReadError::Io(name(), e))?;
    let meta = file.metadata().map_err(|e| ReadError::Io(name(), e))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(ReadError::NotRegular(name(), kind));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            path: name(),
            size: meta.len(),
            limit,
        });
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReadError::Io(name(), e))?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: name(),
            size: out.len() as u64,
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case returns at once: none of them blocks or reads without end.
    #[test]
    fn non_regular_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 1025]).unwrap();
        let exact = dir.path().join("exact");
        std::fs::write(&exact, vec![b'x'; 1024]).unwrap();
        let cases: &[(&Path, Result<usize, &str>, &str)] = &[
            (
                &fifo,
                Err("is not a regular file but a FIFO"),
                "a FIFO would block the reader",
            ),
            (
                Path::new("/dev/zero"),
                Err("is not a regular file but a character device"),
                "/dev/zero never ends",
            ),
            (
                Path::new("/dev/urandom"),
                Err("is not a regular file but a character device"),
                "/dev/urandom never ends",
            ),
            (
                dir.path(),
                Err("is not a regular file but a directory"),
                "a directory",
            ),
            (
                &big,
                Err("too large: 1025 bytes"),
                "one byte over the limit",
            ),
            (&exact, Ok(1024), "exactly the limit is read"),
            (
                Path::new("/nonexistent/x.pem"),
                Err("cannot read /nonexistent/x.pem"),
                "missing file",
            ),
        ];
        for (path, want, why) in cases {
            let got = read_bounded(path, 1024);
            match (want, &got) {
                (Ok(n), Ok(bytes)) => assert_eq!(bytes.len(), *n, "{why}"),
                (Err(words), Err(e)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(words), "{why}: {msg}");
                    assert!(msg.contains(&path.display().to_string()), "{why}: {msg}");
                }
                _ => panic!("{why}: {got:?}"),
            }
        }
    }
}
