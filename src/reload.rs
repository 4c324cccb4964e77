//! Configuration reload: on SIGHUP, or when the config file's content changes, the file is
//! loaded and checked again and, when valid, a new [`Gateway`] is swapped in.
//!
//! A swap never touches connections: requests in flight finish with the gateway they started
//! with, and keep-alive connections pick up the new one with their next request. A file that
//! fails the check is refused with the message `tracegate --check` prints for it, and the
//! running config keeps serving. Settings that belong to the process (listeners, threads, the
//! exporter, the access log's queue) are only applied by a restart or a graceful upgrade; a
//! reload that changes them says so in the log. The access log's path, format and filters are
//! applied (issue 13 §3): a new path is opened by the access log's writer.
//!
//! The same thread catches SIGUSR1, which reopens the access log's file (logrotate renames it,
//! then signals), as nginx does.

use crate::admin::{ConfigDump, SharedConfigDump};
use crate::config::{self, Config, ConfigError, Env};
use crate::listeners::{ListenerCertificates, RedirectHttps};
use crate::observe::access_log::AccessLogSink;
use crate::observe::metrics::{Metrics, ReloadStats};
use crate::observe::AccessLog;
use crate::proxy::{Gateway, SharedGateway};
use crate::trace::Tracer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// What a reload did.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The new config is serving; `restart_only` lists changed keys it could not apply.
    Applied { restart_only: Vec<&'static str> },
    /// The file was refused; the previous config is still serving.
    Refused(ConfigError),
}

/// Loads the config file again and swaps the gateway. Shared by the signal and the watcher.
pub struct Reloader {
    path: PathBuf,
    env: Box<dyn Env + Send + Sync>,
    gateway: SharedGateway,
    tracer: Tracer,
    /// The TLS listeners' certificate resolvers, which a reload refills.
    certificates: ListenerCertificates,
    /// The access log's writer, which follows the newest config's path.
    access_log: AccessLogSink,
    /// The config the process started with. Its process-level keys stay in force until a
    /// restart, so every reload compares against them.
    started: Config,
    stats: Arc<ReloadStats>,
    /// The process's metrics, which each new generation resolves its routes into.
    metrics: Option<&'static Metrics>,
    /// The admin listener's `/config`, replaced with each applied config.
    dump: Option<SharedConfigDump>,
}

impl Reloader {
    /// A reloader for the file at `path`, serving `started` through `gateway` and the TLS
    /// listeners' `certificates`. `tracer` is the process's tracer (its span sink outlives
    /// every config), and `access_log` the process's access-log writer.
    pub fn new(
        path: &Path,
        env: Box<dyn Env + Send + Sync>,
        gateway: SharedGateway,
        tracer: Tracer,
        certificates: ListenerCertificates,
        access_log: AccessLogSink,
        started: Config,
    ) -> Self {
        Reloader {
            path: path.to_owned(),
            env,
            gateway,
            tracer,
            certificates,
            access_log,
            started,
            stats: Arc::default(),
            metrics: None,
            dump: None,
        }
    }

    /// New generations record into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<&'static Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Each applied config replaces the admin listener's `/config` in `dump`.
    pub fn with_config_dump(mut self, dump: Option<SharedConfigDump>) -> Self {
        self.dump = dump;
        self
    }

    /// The counts of applied and refused reloads.
    pub fn stats(&self) -> Arc<ReloadStats> {
        Arc::clone(&self.stats)
    }

    /// Loads and checks the file and, when it is valid, swaps it in. Logs one line either way.
    pub fn reload(&self, trigger: &str) -> Outcome {
        let outcome = match config::load(&self.path, self.env.as_ref()) {
            Err(e) => Outcome::Refused(e),
            Ok(new) => {
                let restart_only = restart_only_changes(&self.started, &new);
                let previous = self.gateway.load_full();
                self.gateway.store(Arc::new(gateway_for(
                    &new,
                    &self.tracer,
                    self.metrics,
                    &self.access_log,
                    Some(&previous),
                )));
                if let Some(d) = &self.dump {
                    d.store(Arc::new(config_dump(&new, &self.path)));
                }
                // Certificates are re-read on every reload, so a renewed certificate is
                // served after a SIGHUP. Changed listeners are reported with `listen` below.
                let certificates = match self.certificates.replace(&new.listeners) {
                    Ok(0) | Err(_) => String::new(),
                    Ok(n) => format!(", certificates of {n} TLS listener(s)"),
                };
                log::info!(
                    "config reloaded ({trigger}): {} routes, {} upstreams{certificates}",
                    new.router.routes().len(),
                    new.upstreams.len()
                );
                if !restart_only.is_empty() {
                    log::warn!(
                        "config reload: {} changed; that takes a restart or a graceful upgrade \
                         (tracegate --upgrade), the running process keeps the old value",
                        restart_only.join(", ")
                    );
                }
                Outcome::Applied { restart_only }
            }
        };
        match &outcome {
            Outcome::Applied { .. } => self.stats.applied.fetch_add(1, Relaxed),
            Outcome::Refused(_) => self.stats.refused.fetch_add(1, Relaxed),
        };
        if let Outcome::Refused(e) = &outcome {
            log::error!(
                "config reload ({trigger}) refused, still serving the previous config: invalid \
                 config: {e}"
            );
        }
        outcome
    }

    /// Starts the thread that reloads on SIGHUP and, when `watch` is set, when the file's
    /// content changes (polled at that interval), and reopens the access log on SIGUSR1.
    /// Both signals are caught from the moment this returns, so they no longer end the
    /// process.
    pub fn spawn(self, watch: Option<Duration>) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (mut hangup, mut usr1) = {
            let _guard = rt.enter();
            (
                signal(SignalKind::hangup())?,
                signal(SignalKind::user_defined1())?,
            )
        };
        let mut watcher = watch.map(|every| Watcher::new(&self.path, every));
        std::thread::Builder::new()
            .name("config-reload".into())
            .spawn(move || {
                rt.block_on(async move {
                    loop {
                        let changed = async {
                            match &mut watcher {
                                Some(w) => w.changed().await,
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            s = hangup.recv() => {
                                if s.is_none() {
                                    return;
                                }
                                self.reload("SIGHUP");
                                if let Some(w) = &mut watcher {
                                    w.mark_current();
                                }
                            }
                            () = changed => {
                                self.reload("file changed");
                            }
                            s = usr1.recv() => {
                                if s.is_none() {
                                    return;
                                }
                                self.access_log.reopen();
                            }
                        }
                    }
                });
            })?;
        Ok(())
    }
}

/// The routing state of `config` for the proxy (at start-up and on every reload), with the
/// process's span sink and metrics, and its access log writing through the process's
/// `access_log` writer, which is pointed at this config's target (none when the config has no
/// access log).
pub fn gateway_for(
    config: &Config,
    tracer: &Tracer,
    metrics: Option<&'static Metrics>,
    access_log: &AccessLogSink,
    previous: Option<&Gateway>,
) -> Gateway {
    access_log.set_target(config.access_log.as_ref().map(|a| a.target.clone()));
    Gateway::new(
        config.router.clone(),
        &config.upstreams,
        tracer,
        config.telemetry.options.clone(),
        config
            .access_log
            .as_ref()
            .map(|a| AccessLog::new(a, access_log)),
    )
    .with_metrics(metrics)
    .with_middlewares(&config.middlewares, previous)
}

/// `config` as the admin listener's `/config` shows it (rendered, redacted, when asked for).
pub fn config_dump(config: &Config, path: &Path) -> ConfigDump {
    let (source, telemetry) = (Arc::clone(&config.source), config.telemetry.clone());
    let file = path.display().to_string();
    ConfigDump::new(move || config::dump::redacted(&source, &telemetry, &file))
}

/// The access log's queue size in `config` (the default without an access log), which the
/// writer takes once, at start.
pub fn access_log_queue_size(config: &Config) -> usize {
    config
        .access_log
        .as_ref()
        .map_or(config::defaults::ACCESS_LOG_QUEUE_SIZE, |a| a.queue_size)
}

/// The process-level keys whose change a reload cannot apply.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.telemetry, &new.telemetry);
    [
        ("listen", listener_shape(old) != listener_shape(new)),
        ("server", old.server != new.server),
        ("admin", old.admin != new.admin),
        ("telemetry.service_name", o.service_name != n.service_name),
        ("telemetry.resource", o.resource != n.resource),
        ("telemetry.exporter", o.exporter != n.exporter),
        ("telemetry.batch", o.batch != n.batch),
        (
            "access_log.queue_size",
            access_log_queue_size(old) != access_log_queue_size(new),
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// What a running listener is, apart from its certificates (which a reload replaces).
fn listener_shape(c: &Config) -> Vec<(SocketAddr, bool, bool, Option<RedirectHttps>)> {
    c.listeners
        .iter()
        .map(|l| (l.addr, l.tls.is_some(), l.http2, l.redirect_https))
        .collect()
}

/// The config file's bytes, read as [`config::load`] reads them (a regular file of at most
/// 16 MiB), so a FIFO or a device put in its place neither blocks nor exhausts the watcher.
fn read_config(path: &Path) -> Option<Vec<u8>> {
    crate::files::read_bounded(path, crate::files::CONFIG_MAX_BYTES).ok()
}

/// Polls the config file's content. A change counts once the content has stayed the same for
/// one interval (an editor or `kubectl` may write the file in several steps), and each content
/// counts once, so a refused file is not retried until it changes again.
struct Watcher {
    path: PathBuf,
    every: Duration,
    /// The content last loaded (or refused).
    handled: Option<Vec<u8>>,
    /// The content seen at the previous poll.
    seen: Option<Vec<u8>>,
}

impl Watcher {
    fn new(path: &Path, every: Duration) -> Self {
        let current = read_config(path);
        Watcher {
            path: path.to_owned(),
            every,
            handled: current.clone(),
            seen: current,
        }
    }

    /// The current content has been handled (by a SIGHUP reload).
    fn mark_current(&mut self) {
        self.handled = read_config(&self.path);
        self.seen = self.handled.clone();
    }

    /// Resolves when the file holds new, settled content.
    async fn changed(&mut self) {
        loop {
            tokio::time::sleep(self.every).await;
            // An unreadable file (being replaced, or deleted) is not a change: the next poll
            // sees the new file.
            let Some(now) = read_config(&self.path) else {
                continue;
            };
            let settled = self.seen.as_ref() == Some(&now);
            self.seen = Some(now);
            if settled && self.handled != self.seen {
                self.handled = self.seen.clone();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const BASE: &str =
        "listen: [\"127.0.0.1:0\"]\nroutes:\n  - name: a\n    respond: { body: one }\n";

    fn config(text: &str) -> Config {
        let env: HashMap<&str, &str> = HashMap::new();
        config::load_str(text, "t.yaml", &env).expect("valid config")
    }

    #[test]
    fn restart_only_keys_table() {
        let base = config(BASE);
        let cases: &[(&str, &[&str], &str)] = &[
            (BASE, &[], "same file"),
            (
                "listen: [\"127.0.0.1:0\"]\nroutes:\n  - name: b\n    respond: { body: two }\n",
                &[],
                "routes apply on reload",
            ),
            (
                "listen: [\"127.0.0.1:1\"]\nroutes:\n  - name: a\n    respond: { body: one }\n",
                &["listen"],
                "listeners belong to the process",
            ),
            (
                "listen: [\"127.0.0.1:0\"]\nserver: { threads: 7 }\ntelemetry: { service_name: x, exporter: { protocol: none } }\nroutes:\n  - name: a\n    respond: { body: one }\n",
                &["server", "telemetry.service_name", "telemetry.exporter"],
                "threads, service name and exporter need a restart",
            ),
            (
                "listen: [\"127.0.0.1:0\"]\ntelemetry: { sampler: { name: always_off } }\nroutes:\n  - name: a\n    respond: { body: one }\n",
                &[],
                "the sampler is applied on reload",
            ),
            (
                "listen: [\"127.0.0.1:0\"]\nserver: { path: { allow_encoded: [slash] } }\nroutes:\n  - name: a\n    respond: { body: one }\n",
                &[],
                "server.path belongs to the router, applied on reload",
            ),
            (
                "listen: [\"127.0.0.1:0\"]\naccess_log: { path: stderr, format: combined, filters: { status: 404 } }\nroutes:\n  - name: a\n    respond: { body: one }\n",
                &[],
                "the access log's path, format and filters are applied on reload",
            ),
            (
                "listen: [\"127.0.0.1:0\"]\naccess_log: { queue_size: 8192 }\nroutes:\n  - name: a\n    respond: { body: one }\n",
                &[],
                "the default queue size, written out, is no change",
            ),
            (
                "listen: [\"127.0.0.1:0\"]\naccess_log: { queue_size: 16 }\nroutes:\n  - name: a\n    respond: { body: one }\n",
                &["access_log.queue_size"],
                "the writer's queue is made once, at start",
            ),
        ];
        for (text, want, why) in cases {
            assert_eq!(restart_only_changes(&base, &config(text)), *want, "{why}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_waits_for_settled_content_and_reports_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "a").unwrap();
        let mut w = Watcher::new(&path, Duration::from_secs(1));
        std::fs::write(&path, "b").unwrap();
        // First poll sees "b" for the first time: not settled yet; second poll reports it.
        tokio::time::timeout(Duration::from_millis(2500), w.changed())
            .await
            .expect("a settled change is reported");
        assert_eq!(w.handled.as_deref(), Some(&b"b"[..]));
        assert!(
            tokio::time::timeout(Duration::from_secs(10), w.changed())
                .await
                .is_err(),
            "unchanged content is not reported again"
        );
        std::fs::write(&path, "a").unwrap();
        tokio::time::timeout(Duration::from_secs(3), w.changed())
            .await
            .expect("going back to an earlier content is a change too");
    }
}
