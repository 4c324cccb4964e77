//! The access log's writer: a bounded queue from the request threads to one thread of its own,
//! which writes the lines through a `BufWriter` in batches: it empties the queue, flushes, then
//! lets lines gather for [`BATCH_INTERVAL`] (100 ms) before the next batch.
//!
//! - **Never blocks a request** (issue 13 §1): [`AccessLogSink::send`] is a `try_send`; when
//!   the queue is full (a slow disk, a FIFO nobody reads) the line is dropped and counted in
//!   [`AccessLogStats::dropped`], and one warning at most every 10 s says how many were lost.
//!   The warning comes from whichever thread notices first, so a writer stuck in `write`
//!   cannot hide it.
//! - **Reopen** ([`AccessLogSink::reopen`], on SIGUSR1): the writer flushes, opens the path
//!   again (a new file after logrotate's rename) and only then closes the old one; a path that
//!   cannot be opened keeps the old file, with an error line.
//! - **Another path** ([`AccessLogSink::set_target`], on reload): the same, towards the new
//!   path; lines queued before the change still go to the old one.
//! - **Stop** ([`AccessLogSink::shutdown`]): the queued lines are written and flushed.
//!
//! Commands (another target, a reopen, stop) keep their order with the lines: each is queued
//! beside the lines as a wake-up carrying its number, and the writer carries out the commands
//! up to that number when it reaches it. A wake-up that finds the queue full is not needed:
//! the writer carries out every pending command whenever it has emptied the queue.
//!
//! Files are opened on the writer thread, so even a FIFO without a reader only ever holds up
//! the writer.

use super::Target;
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shortest time between two warnings about dropped lines (issue 13 §1).
const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest time between two error lines about failed writes.
const ERROR_INTERVAL: Duration = Duration::from_secs(10);
/// The writer's buffer: lines are collected up to this much between two writes.
const WRITE_BUFFER: usize = 64 * 1024;

/// The access log's counters since start, shared by every config generation.
#[derive(Debug)]
pub struct AccessLogStats {
    /// Lines handed to the file (or stdout/stderr).
    pub written: AtomicU64,
    /// Lines dropped because the queue was full (`tracegate_access_log_dropped_total`); an
    /// `Arc` of its own, so the metrics can hold this counter alone.
    pub dropped: Arc<AtomicU64>,
    /// Lines lost because writing or opening the file failed.
    pub write_failed: AtomicU64,
    /// `dropped` at the last warning.
    reported: AtomicU64,
    /// When the last warning was written, in seconds since `started` plus one (0: never).
    last_report: AtomicU64,
    started: Instant,
}

impl Default for AccessLogStats {
    fn default() -> Self {
        AccessLogStats {
            written: AtomicU64::new(0),
            dropped: Arc::default(),
            write_failed: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            last_report: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl AccessLogStats {
    /// Warns about the lines dropped since the last warning, at most once per
    /// [`REPORT_INTERVAL`] (`force`: now, e.g. at shutdown). Any thread may call it; one wins.
    fn report_drops(&self, queue: usize, force: bool) {
        let total = self.dropped.load(Ordering::Relaxed);
        if total == self.reported.load(Ordering::Relaxed) {
            return;
        }
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_report.load(Ordering::Relaxed);
        let due = force || last == 0 || now >= last + REPORT_INTERVAL.as_secs();
        if !due
            || self
                .last_report
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let since = total - self.reported.swap(total, Ordering::Relaxed);
        if since > 0 {
            log::warn!(
                "access log: {since} line(s) dropped since the last report: the queue of \
                 {queue} lines was full ({total} in all)"
            );
        }
    }
}

enum Msg {
    Line(Vec<u8>),
    /// Commands up to this number are due (see [`Control`]).
    Wake(u64),
}

/// A command to the writer.
enum Command {
    /// Write to this target from now on (`None`: nowhere).
    Target(Option<Target>),
    Reopen,
    Stop,
}

/// The commands not carried out yet, numbered in the order they were given.
#[derive(Default)]
struct Control {
    pending: VecDeque<(u64, Command)>,
    next: u64,
    /// The target last asked for, so that asking for it again changes nothing.
    asked: Option<Target>,
}

struct Shared {
    stats: Arc<AccessLogStats>,
    control: Mutex<Control>,
    /// The queue's capacity, for the warnings.
    capacity: usize,
    /// Signalled by the writer thread when it has flushed and stopped.
    stopped: Mutex<Option<Receiver<()>>>,
}

impl Shared {
    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request threads' end of the access log: cheap to clone, shared by every generation.
#[derive(Clone)]
pub struct AccessLogSink {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AccessLogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogSink")
            .field("capacity", &self.shared.capacity)
            .field("stats", &self.shared.stats)
            .finish()
    }
}

impl AccessLogSink {
    /// Starts the writer thread with a queue of `capacity` lines (at least 1). It writes
    /// nowhere until [`AccessLogSink::set_target`] names a target.
    pub fn start(capacity: usize) -> std::io::Result<AccessLogSink> {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::sync_channel(capacity);
        let (stopped_tx, stopped_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            stats: Arc::default(),
            control: Mutex::default(),
            capacity,
            stopped: Mutex::new(Some(stopped_rx)),
        });
        let writer = Writer {
            rx,
            shared: shared.clone(),
            wanted: None,
            out: None,
            last_error: None,
        };
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                writer.run();
                let _ = stopped_tx.send(());
            })?;
        Ok(AccessLogSink { tx, shared })
    }

    /// Queues one line (with its newline). Never blocks: a full queue drops it and counts it.
    pub fn send(&self, line: Vec<u8>) {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.report_drops(self.shared.capacity, false);
            }
        }
    }

    /// Sends lines to `target` from now on (`None`: nowhere). The writer opens it; an unchanged
    /// target is left as it is (use [`AccessLogSink::reopen`] to open it again).
    pub fn set_target(&self, target: Option<Target>) {
        {
            let c = self.shared.control();
            if c.asked == target {
                return;
            }
        }
        self.command(Command::Target(target));
    }

    /// Opens the file again (logrotate: rename, SIGUSR1, new file), on the writer thread.
    pub fn reopen(&self) {
        self.command(Command::Reopen);
    }

    /// The queue's capacity in lines.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<AccessLogStats> {
        &self.shared.stats
    }

    /// Writes what is queued, flushes and stops the writer; `false` when that took longer
    /// than `timeout` (a file that blocks), in which case the rest is lost.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.command(Command::Stop);
        let stopped = self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let done = match stopped {
            Some(rx) => !matches!(rx.recv_timeout(timeout), Err(RecvTimeoutError::Timeout)),
            None => true,
        };
        self.shared.stats.report_drops(self.shared.capacity, true);
        done
    }

    /// Queues a command behind the lines sent so far. When the queue is full, the wake-up is
    /// dropped: the writer is busy and carries the command out once it has emptied the queue.
    fn command(&self, cmd: Command) {
        let n = {
            let mut c = self.shared.control();
            if let Command::Target(t) = &cmd {
                c.asked = t.clone();
            }
            let n = c.next;
            c.next += 1;
            c.pending.push_back((n, cmd));
            n
        };
        let _ = self.tx.try_send(Msg::Wake(n));
    }
}

/// Where the writer writes now.
struct Output {
    target: Target,
    w: BufWriter<Box<dyn Write + Send>>,
}

fn open(target: &Target) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        Target::Stdout => Box::new(std::io::stdout()),
        Target::Stderr => Box::new(std::io::stderr()),
        // 0644 before the umask, as nginx creates its logs.
        Target::File(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            Box::new(
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o644)
                    .open(p)?,
            )
        }
    })
}

/// How long the writer lets lines gather after writing a batch. At the default queue size
/// (8,192 lines) it drops nothing below about 80,000 lines per second.
const BATCH_INTERVAL: Duration = Duration::from_millis(100);

struct Writer {
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    /// The target lines should go to (the last `Target` command).
    wanted: Option<Target>,
    /// The open target: `wanted`, or the one before when opening it failed.
    out: Option<Output>,
    last_error: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            if self.handle(first) {
                break;
            }
            // Everything queued now goes out in one flush: one write per burst, not per line.
            let stop = loop {
                match self.rx.try_recv() {
                    Ok(m) => {
                        if self.handle(m) {
                            break true;
                        }
                    }
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            self.flush();
            // Commands whose wake-up did not fit in a full queue are carried out here.
            if stop || self.run_commands(u64::MAX) {
                break;
            }
            self.shared.stats.report_drops(self.shared.capacity, false);
            // Lines gather in the queue until the next batch (nginx's `buffer`/`flush`): a
            // writer that waited in `recv` would be woken by every line, and that wake-up
            // (a futex call on each side) costs a request more than formatting its line.
            std::thread::sleep(BATCH_INTERVAL);
        }
        self.flush();
    }

    /// Handles one message; `true` when the writer is to stop.
    fn handle(&mut self, m: Msg) -> bool {
        match m {
            Msg::Line(line) => {
                self.write(&line);
                false
            }
            Msg::Wake(n) => self.run_commands(n),
        }
    }

    fn write(&mut self, line: &[u8]) {
        let stats = &self.shared.stats;
        let Some(out) = &mut self.out else {
            // No target (the access log was turned off by a reload, and this line is from a
            // request of the generation before), or its file could not be opened.
            if self.wanted.is_some() {
                stats.write_failed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let failed = match out.w.write_all(line) {
            Ok(()) => {
                stats.written.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => format!("access log: cannot write to {}: {e}", out.target),
        };
        stats.write_failed.fetch_add(1, Ordering::Relaxed);
        self.error(&failed);
    }

    fn flush(&mut self) {
        let Some(out) = &mut self.out else {
            return;
        };
        if let Err(e) = out.w.flush() {
            let failed = format!("access log: cannot write to {}: {e}", out.target);
            self.error(&failed);
        }
    }

    /// One error line per [`ERROR_INTERVAL`] at most (a full disk fails every write).
    fn error(&mut self, msg: &str) {
        if self
            .last_error
            .is_none_or(|t| t.elapsed() >= ERROR_INTERVAL)
        {
            self.last_error = Some(Instant::now());
            log::error!("{msg}");
        }
    }

    /// Carries out the pending commands numbered up to `upto`; `true` when one is to stop.
    fn run_commands(&mut self, upto: u64) -> bool {
        loop {
            let cmd = {
                let mut c = self.shared.control();
                match c.pending.front() {
                    Some((n, _)) if *n <= upto => c.pending.pop_front().map(|(_, cmd)| cmd),
                    _ => None,
                }
            };
            match cmd {
                None => return false,
                Some(Command::Stop) => return true,
                Some(Command::Target(t)) => {
                    self.wanted = t.clone();
                    self.switch(t, false);
                }
                Some(Command::Reopen) => {
                    // With no file open (its open failed), this is a plain open.
                    let reopen = self.out.is_some();
                    self.switch(self.wanted.clone(), reopen);
                }
            }
        }
    }

    /// Moves to `target`: the new file is opened first, and the old one is flushed and closed
    /// only when that worked (nginx keeps its old file too when a reopen fails).
    fn switch(&mut self, target: Option<Target>, reopen: bool) {
        self.flush();
        let Some(target) = target else {
            self.out = None;
            return;
        };
        if reopen && matches!(target, Target::Stdout | Target::Stderr) {
            return;
        }
        match open(&target) {
            Ok(w) => {
                if reopen {
                    log::info!("access log reopened: {target}");
                }
                self.out = Some(Output {
                    target,
                    w: BufWriter::with_capacity(WRITE_BUFFER, w),
                });
            }
            Err(e) => {
                let keeping = match &self.out {
                    Some(o) => format!(", still writing to {}", o.target),
                    None => String::new(),
                };
                log::error!("access log: cannot open {target}: {e}{keeping}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_reach_the_file_and_a_reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let sink = AccessLogSink::start(16).unwrap();
        sink.set_target(Some(Target::File(path.clone())));
        sink.send(b"one\n".to_vec());
        wait_until("the first line", || {
            std::fs::read(&path).is_ok_and(|b| b == b"one\n")
        });
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.send(b"two\n".to_vec());
        wait_until("the second line in the renamed file", || {
            std::fs::read(&rotated).is_ok_and(|b| b == b"one\ntwo\n")
        });
        sink.reopen();
        wait_until("the new file", || path.exists());
        sink.send(b"three\n".to_vec());
        assert!(sink.shutdown(Duration::from_secs(10)));
        assert_eq!(std::fs::read(&path).unwrap(), b"three\n");
        assert_eq!(std::fs::read(&rotated).unwrap(), b"one\ntwo\n");
        assert_eq!(sink.stats().written.load(Ordering::Relaxed), 3);
        assert_eq!(sink.stats().dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_new_target_gets_the_lines_after_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let sink = AccessLogSink::start(16).unwrap();
        sink.set_target(Some(Target::File(a.clone())));
        sink.send(b"1\n".to_vec());
        sink.set_target(Some(Target::File(b.clone())));
        sink.send(b"2\n".to_vec());
        sink.set_target(None);
        sink.send(b"3\n".to_vec());
        assert!(sink.shutdown(Duration::from_secs(10)));
        assert_eq!(std::fs::read(&a).unwrap(), b"1\n");
        assert_eq!(std::fs::read(&b).unwrap(), b"2\n");
        let s = sink.stats();
        assert_eq!(s.written.load(Ordering::Relaxed), 2);
        assert_eq!(
            s.write_failed.load(Ordering::Relaxed),
            0,
            "a line with no target is not a failure"
        );
    }

    #[test]
    fn a_reopen_that_fails_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("access.log");
        let sink = AccessLogSink::start(16).unwrap();
        sink.set_target(Some(Target::File(path.clone())));
        sink.send(b"1\n".to_vec());
        wait_until("the first line", || {
            std::fs::read(&path).is_ok_and(|b| !b.is_empty())
        });
        let moved = dir.path().join("moved");
        std::fs::rename(&sub, &moved).unwrap();
        sink.reopen();
        sink.send(b"2\n".to_vec());
        assert!(sink.shutdown(Duration::from_secs(10)));
        assert_eq!(
            std::fs::read(moved.join("access.log")).unwrap(),
            b"1\n2\n",
            "the folder is gone: the open file keeps the lines"
        );
    }

    /// A writer that cannot write (a FIFO nobody reads) fills the queue; then every line is
    /// dropped and counted, and `send` never waits.
    #[test]
    fn a_blocked_writer_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let sink = AccessLogSink::start(4).unwrap();
        // Nobody opens the FIFO for reading: the writer's open blocks for good.
        sink.set_target(Some(Target::File(fifo.clone())));
        let start = Instant::now();
        for _ in 0..100 {
            sink.send(vec![b'x'; 100]);
        }
        assert!(start.elapsed() < Duration::from_secs(5), "send never waits");
        let dropped = sink.stats().dropped.load(Ordering::Relaxed);
        assert!(
            (100 - 5..=100).contains(&dropped),
            "the queue holds 4 lines (and the writer may have taken one): {dropped} dropped"
        );
        assert!(
            !sink.shutdown(Duration::from_millis(50)),
            "a writer stuck on its file is not waited for"
        );
        // Unblock the writer thread so it can end with the test.
        let _reader = std::fs::File::open(&fifo).unwrap();
    }
}
