//! The span pipeline: a bounded queue from the request threads to one exporter thread.
//!
//! Request threads call [`SpanSink::submit`], which never blocks: when the queue is full the span
//! is dropped and counted. One exporter thread owns a small tokio runtime (the OTLP gRPC and
//! HTTP clients need one for as long as they live), batches records and hands each batch to a
//! [`BatchExporter`]: the OTLP encoder and transport (`super::otlp`), or [`SdkExporter`], which
//! converts to `SpanData` for any OpenTelemetry `SpanExporter`. Drops, failed exports and spans
//! the receiver rejected are logged at most once per [`LOG_INTERVAL`]. [`Pipeline::shutdown`]
//! drains what is queued and exports it before the process exits.
//!
//! The exporter thread does not wait on the queue (that would cost every request a wake-up
//! system call): it sleeps until the batch deadline, and a request thread wakes it only when its
//! span makes a full batch. The queue is a bounded `sync_channel` (lock-free on the send side).

use crate::trace::span::SpanRecord;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SpanExporter;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often at most a drop or an export failure is logged.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Batching limits, with the meaning of the OpenTelemetry `OTEL_BSP_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    /// Spans that may wait in the queue; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Spans per export call (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch_size: usize,
    /// Longest time a span waits before its batch is exported (`OTEL_BSP_SCHEDULE_DELAY`).
    pub scheduled_delay: Duration,
    /// Longest time one export call may take (`OTEL_BSP_EXPORT_TIMEOUT`).
    pub export_timeout: Duration,
}

/// Where the exporter thread sends batches. Runs on the exporter thread only (inside its tokio
/// runtime), so implementations need not be `Send`.
pub trait BatchExporter: 'static {
    /// Exports one batch. `Ok(n)` means the receiver took it and rejected `n` spans of it (OTLP
    /// partial success; 0 normally); `Err` means the whole batch is lost. The pipeline clears
    /// `batch` afterwards, so an implementation may drain it.
    fn export(&mut self, batch: &mut Vec<SpanRecord>) -> impl Future<Output = Result<u64, String>>;

    /// Called once, after the last batch.
    fn shutdown(&mut self, _timeout: Duration) {}
}

/// Adapts any OpenTelemetry SDK `SpanExporter` (stdout, Zipkin, an embedder's own) to the
/// pipeline: records are converted to `SpanData` on the exporter thread.
#[derive(Debug)]
pub struct SdkExporter<E> {
    exporter: E,
    scope: InstrumentationScope,
}

impl<E: SpanExporter> SdkExporter<E> {
    /// Wraps `exporter`, whose spans are reported under `scope`; `resource` is handed to it.
    pub fn new(
        mut exporter: E,
        resource: &opentelemetry_sdk::Resource,
        scope: InstrumentationScope,
    ) -> Self {
        exporter.set_resource(resource);
        SdkExporter { exporter, scope }
    }
}

impl<E: SpanExporter + 'static> BatchExporter for SdkExporter<E> {
    async fn export(&mut self, batch: &mut Vec<SpanRecord>) -> Result<u64, String> {
        let data = batch
            .drain(..)
            .map(|r| r.into_span_data(&self.scope))
            .collect();
        self.exporter
            .export(data)
            .await
            .map(|()| 0)
            .map_err(|e| e.to_string())
    }

    fn shutdown(&mut self, timeout: Duration) {
        if let Err(e) = self.exporter.shutdown_with_timeout(timeout) {
            tracing::warn!("span exporter shutdown: {e}");
        }
    }
}

/// Counters of the pipeline, readable at any time.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Spans accepted into the queue.
    pub queued: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Spans the exporter accepted.
    pub exported: AtomicU64,
    /// Spans lost because an export call failed or timed out.
    pub export_failed: AtomicU64,
    /// Of `export_failed`, the spans of export calls that timed out.
    pub export_timed_out: AtomicU64,
    /// Spans the receiver accepted the batch of but reported as rejected (partial success).
    pub rejected: AtomicU64,
}

/// The request threads' end of the pipeline. Cheap to clone.
#[derive(Clone)]
pub struct SpanSink {
    tx: SyncSender<SpanRecord>,
    stats: Arc<PipelineStats>,
    shared: Arc<Shared>,
}

/// State shared by the sinks and the exporter thread.
struct Shared {
    /// Spans in the queue, counted so a sender knows when a batch is full.
    pending: AtomicUsize,
    /// Wake the exporter when `pending` reaches this.
    wake_at: usize,
    /// The queue's size.
    capacity: usize,
    /// The exporter thread, set once it has started.
    worker: std::sync::OnceLock<std::thread::Thread>,
    stopping: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        if let Some(t) = self.worker.get() {
            t.unpark();
        }
    }
}

impl std::fmt::Debug for SpanSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanSink")
            .field("stats", &self.stats)
            .finish()
    }
}

impl SpanSink {
    /// Queues a finished span. Never blocks; a full or closed queue drops the span and counts it.
    pub fn submit(&self, record: SpanRecord) {
        match self.tx.try_send(record) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                if self.shared.pending.fetch_add(1, Ordering::AcqRel) + 1 == self.shared.wake_at {
                    self.shared.wake();
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// Spans waiting in the queue now.
    pub fn queue_len(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// The most spans the queue holds (`max_queue_size`).
    pub fn queue_capacity(&self) -> usize {
        self.shared.capacity
    }
}

/// A running pipeline: the exporter thread and the handle to stop it.
pub struct Pipeline {
    sink: SpanSink,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the exporter thread. `make_exporter` runs on that thread, inside its runtime (the
    /// gRPC channel must be built there); its error is returned here, so a bad exporter setting
    /// fails start-up instead of losing every span later.
    pub fn start<E, F>(make_exporter: F, settings: PipelineSettings) -> Result<Pipeline, String>
    where
        E: BatchExporter,
        F: FnOnce() -> Result<E, String> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(settings.max_queue_size.max(1));
        let stats = Arc::new(PipelineStats::default());
        let shared = Arc::new(Shared {
            pending: AtomicUsize::new(0),
            wake_at: settings
                .max_export_batch_size
                .clamp(1, settings.max_queue_size.max(1)),
            capacity: settings.max_queue_size.max(1),
            worker: std::sync::OnceLock::new(),
            stopping: AtomicBool::new(false),
        });
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let worker = Worker {
            rx,
            stats: stats.clone(),
            shared: shared.clone(),
            settings,
        };
        let thread = std::thread::Builder::new()
            .name("span-exporter".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start exporter runtime: {e}")));
                        return;
                    }
                };
                let exporter = {
                    let _guard = rt.enter();
                    match make_exporter() {
                        Ok(e) => e,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                };
                let _ = worker.shared.worker.set(std::thread::current());
                let _ = ready_tx.send(Ok(()));
                worker.run(&rt, exporter);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot spawn exporter thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Pipeline {
                sink: SpanSink { tx, stats, shared },
                done: done_rx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("exporter thread ended during start-up".into()),
        }
    }

    /// A sink for request threads.
    pub fn sink(&self) -> SpanSink {
        self.sink.clone()
    }

    /// Exports everything still queued, shuts the exporter down and stops the thread.
    /// Returns false when that did not finish within `timeout` (the rest is abandoned).
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.sink.shared.stopping.store(true, Ordering::SeqCst);
        self.sink.shared.wake();
        let finished = self.done.recv_timeout(timeout).is_ok();
        if finished {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        finished
    }
}

struct Worker {
    rx: Receiver<SpanRecord>,
    stats: Arc<PipelineStats>,
    shared: Arc<Shared>,
    settings: PipelineSettings,
}

impl Worker {
    fn run<E: BatchExporter>(self, rt: &tokio::runtime::Runtime, mut exporter: E) {
        let max_batch = self.settings.max_export_batch_size.max(1);
        let mut batch: Vec<SpanRecord> = Vec::with_capacity(max_batch);
        let mut deadline = Instant::now() + self.settings.scheduled_delay;
        let mut reporter = Reporter::default();
        loop {
            // Take everything queued; full batches leave at once.
            if self.take_queued(rt, &mut exporter, &mut batch, max_batch) {
                deadline = Instant::now() + self.settings.scheduled_delay;
            }
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                if !batch.is_empty() {
                    self.export(rt, &mut exporter, &mut batch);
                }
                deadline = Instant::now() + self.settings.scheduled_delay;
                reporter.report(&self.stats);
                continue;
            }
            // Sleep until the deadline, or until a sender has filled a batch or we stop. A wake
            // that arrives before the park is not lost (park returns at once).
            std::thread::park_timeout(deadline - now);
        }
        // Drain: everything queued before shutdown is exported.
        self.take_queued(rt, &mut exporter, &mut batch, max_batch);
        if !batch.is_empty() {
            self.export(rt, &mut exporter, &mut batch);
        }
        reporter.force_report(&self.stats);
        exporter.shutdown(self.settings.export_timeout);
    }

    /// Moves every queued record into `batch`, exporting each batch that fills up.
    /// Returns true when at least one full batch was exported.
    fn take_queued<E: BatchExporter>(
        &self,
        rt: &tokio::runtime::Runtime,
        exporter: &mut E,
        batch: &mut Vec<SpanRecord>,
        max_batch: usize,
    ) -> bool {
        let mut exported = false;
        while let Ok(r) = self.rx.try_recv() {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            batch.push(r);
            if batch.len() >= max_batch {
                self.export(rt, exporter, batch);
                exported = true;
            }
        }
        exported
    }

    fn export<E: BatchExporter>(
        &self,
        rt: &tokio::runtime::Runtime,
        exporter: &mut E,
        batch: &mut Vec<SpanRecord>,
    ) {
        let n = batch.len() as u64;
        let result = rt.block_on(async {
            tokio::time::timeout(self.settings.export_timeout, exporter.export(batch)).await
        });
        batch.clear();
        match result {
            Ok(Ok(rejected)) => {
                let rejected = rejected.min(n);
                self.stats
                    .exported
                    .fetch_add(n - rejected, Ordering::Relaxed);
                self.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                self.stats.export_failed.fetch_add(n, Ordering::Relaxed);
                throttled_error(format_args!("span export failed: {e}"));
            }
            Err(_) => {
                self.stats.export_failed.fetch_add(n, Ordering::Relaxed);
                self.stats.export_timed_out.fetch_add(n, Ordering::Relaxed);
                throttled_error(format_args!(
                    "span export timed out after {:?}",
                    self.settings.export_timeout
                ));
            }
        }
    }
}

/// Logs losses (queue overflow, failed exports, rejected spans) at most once per
/// [`LOG_INTERVAL`].
#[derive(Default)]
struct Reporter {
    last: Option<Instant>,
    dropped: u64,
    failed: u64,
    rejected: u64,
}

impl Reporter {
    fn report(&mut self, stats: &PipelineStats) {
        if self.last.is_some_and(|t| t.elapsed() < LOG_INTERVAL) {
            return;
        }
        self.force_report(stats);
    }

    fn force_report(&mut self, stats: &PipelineStats) {
        let dropped = stats.dropped_queue_full.load(Ordering::Relaxed);
        let failed = stats.export_failed.load(Ordering::Relaxed);
        let rejected = stats.rejected.load(Ordering::Relaxed);
        if dropped > self.dropped || failed > self.failed || rejected > self.rejected {
            tracing::warn!(
                "spans lost: {} dropped (queue full), {} in failed exports, {} rejected by the \
                 receiver ({}, {} and {} in total)",
                dropped - self.dropped,
                failed - self.failed,
                rejected - self.rejected,
                dropped,
                failed,
                rejected
            );
            self.dropped = dropped;
            self.failed = failed;
            self.rejected = rejected;
        }
        self.last = Some(Instant::now());
    }
}

pub(crate) fn throttled_error(msg: std::fmt::Arguments<'_>) {
    use std::sync::Mutex;
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
        *last = Some(Instant::now());
        tracing::error!("{msg}");
    }
}
