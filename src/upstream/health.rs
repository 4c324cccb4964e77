//! Active health checks: every `interval`, each backend of a pool with a `health_check` gets a
//! probe (a TCP connect, or `GET path` over HTTP/1.1 with the status checked), off the request
//! path, on one background thread per config generation.
//!
//! `unhealthy_threshold` failing probes in a row take a backend out, `healthy_threshold` passing
//! ones bring it back (HAProxy's fall/rise), with one log line per change:
//! `upstream app: backend 10.0.0.1:80 is down: <reason>` / `… is up again`. Backends start
//! healthy, and the first probe runs at once.
//!
//! The thread starts when a config generation's pools are built (the proxy's `Gateway`,
//! outside any async runtime: it owns a small one) and stops when the handle is dropped with its generation. A backend
//! kept by a reload shares its state with the previous generation (see [`super::state`]);
//! both generations' checkers then take turns, so it is still probed once per interval.

use super::settings::{HealthCheck, Probe};
use super::state::{millis, now_ms, BackendState};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One backend to watch.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) upstream: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) index: usize,
    /// Every backend of the pool (to tell when all of them are down).
    pub(crate) pool: Arc<[Arc<BackendState>]>,
    pub(crate) check: Arc<HealthCheck>,
}

impl Target {
    fn state(&self) -> &BackendState {
        &self.pool[self.index]
    }
}

/// The running checks of one config generation; dropping it stops them (without waiting).
pub struct HealthChecks {
    _stop: tokio::sync::oneshot::Sender<()>,
    targets: usize,
    #[cfg(test)]
    thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HealthChecks({} backends)", self.targets)
    }
}

impl HealthChecks {
    /// Starts probing `targets` on a new thread; `None` when there is nothing to check or the
    /// thread cannot start (logged: the proxy then runs without active checks).
    pub(crate) fn start(targets: Vec<Target>) -> Option<HealthChecks> {
        if targets.is_empty() {
            return None;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let count = targets.len();
        let spawned = std::thread::Builder::new()
            .name("health-check".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        log::error!("health checks cannot start: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    for t in targets {
                        tokio::spawn(watch(t));
                    }
                    // Resolves when the handle is dropped.
                    let _ = stopped.await;
                });
                // Dropping the runtime cancels the probes in progress.
            });
        match spawned {
            #[cfg_attr(not(test), allow(unused_variables))]
            Ok(thread) => Some(HealthChecks {
                _stop: stop,
                targets: count,
                #[cfg(test)]
                thread,
            }),
            Err(e) => {
                log::error!("health checks cannot start: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
impl HealthChecks {
    /// Drops the handle as a config generation does, then waits for the thread to end.
    pub(crate) fn stop_and_join(self) {
        let HealthChecks { _stop, thread, .. } = self;
        drop(_stop);
        thread.join().expect("health check thread");
    }
}

/// Probes one backend forever, once per interval. The checker that moves `next_probe_ms` on
/// runs the probe; another generation's checker of the same state then waits for the next turn.
async fn watch(t: Target) {
    let interval = millis(t.check.interval).max(1);
    loop {
        let now = now_ms();
        let due = t.state().next_probe_ms.load(Relaxed);
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
            continue;
        }
        if t.state()
            .next_probe_ms
            .compare_exchange(due, now + interval, Relaxed, Relaxed)
            .is_err()
        {
            continue;
        }
        let result = probe(t.addr, &t.check).await;
        match record_probe(t.state(), &t.check, result) {
            Some(Change::Down(reason)) => {
                log::warn!(
                    "upstream {}: backend {} is down: {reason}",
                    t.upstream,
                    t.addr
                );
                if t.pool.iter().all(|s| !s.available()) {
                    log::warn!(
                        "upstream {}: every backend is down; requests are still sent to them",
                        t.upstream
                    );
                }
            }
            Some(Change::Up) => {
                log::info!("upstream {}: backend {} is up again", t.upstream, t.addr);
            }
            None => {}
        }
    }
}

/// A change of a backend's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Down(String),
    Up,
}

/// Counts one probe's result and flips the backend's state when a threshold is reached.
pub(crate) fn record_probe(
    s: &BackendState,
    check: &HealthCheck,
    result: Result<(), String>,
) -> Option<Change> {
    match result {
        Ok(()) => {
            s.probe_fails.store(0, Relaxed);
            let passes = s.probe_passes.fetch_add(1, Relaxed).saturating_add(1);
            if passes >= check.healthy_threshold && s.down.swap(false, Relaxed) {
                return Some(Change::Up);
            }
        }
        Err(reason) => {
            s.probe_passes.store(0, Relaxed);
            let fails = s.probe_fails.fetch_add(1, Relaxed).saturating_add(1);
            if fails >= check.unhealthy_threshold && !s.down.swap(true, Relaxed) {
                return Some(Change::Down(reason));
            }
        }
    }
    None
}

/// One probe, bounded by the check's timeout. `Err` says why it failed, for the log.
async fn probe(addr: SocketAddr, check: &HealthCheck) -> Result<(), String> {
    let run = async {
        let mut conn = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let Probe::Http { path, host, status } = &check.probe else {
            return Ok(());
        };
        let host = host.clone().unwrap_or_else(|| addr.to_string());
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tracegate-health-check\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("GET {path}: cannot send: {e}"))?;
        let mut buf = [0u8; 512];
        let mut len = 0;
        let code = loop {
            if let Some(code) = parse_status_line(&buf[..len]) {
                break code?;
            }
            if len == buf.len() {
                return Err(format!("GET {path}: the status line is too long"));
            }
            let n = conn
                .read(&mut buf[len..])
                .await
                .map_err(|e| format!("GET {path}: cannot read the answer: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "GET {path}: the connection closed without an answer"
                ));
            }
            len += n;
        };
        if status.contains(code) {
            Ok(())
        } else {
            Err(format!("GET {path} answered {code}"))
        }
    };
    match tokio::time::timeout(check.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

/// The status code of an HTTP/1.x status line at the start of `buf`: `None` while the line is
/// incomplete, `Some(Err)` when it is not one (RFC 9112 §4: `HTTP/1.1 200 OK`).
pub(crate) fn parse_status_line(buf: &[u8]) -> Option<Result<u16, String>> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let bad = || Err("not an HTTP/1 answer".to_owned());
    let Some(rest) = line.strip_prefix(b"HTTP/1.") else {
        return Some(bad());
    };
    match rest {
        [minor, b' ', a, b, c, tail @ ..]
            if minor.is_ascii_digit()
                && [a, b, c].iter().all(|d| d.is_ascii_digit())
                && (tail.is_empty() || tail[0] == b' ') =>
        {
            let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            Some(Ok(code))
        }
        _ => Some(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::settings::StatusRanges;

    fn check(rise: u32, fall: u32) -> HealthCheck {
        HealthCheck {
            probe: Probe::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: rise,
            unhealthy_threshold: fall,
        }
    }

    #[test]
    fn thresholds_table() {
        // (rise, fall, probe results, changes seen, down at the end, reason)
        type Case = (u32, u32, &'static str, &'static str, bool, &'static str);
        let cases: &[Case] = &[
            (1, 1, "x", "D", true, "defaults: one failure takes it out"),
            (1, 1, "x.", "DU", false, "and one success brings it back"),
            (1, 3, "xx", "", false, "fall 3: two failures are not enough"),
            (1, 3, "xxx", "D", true, "fall 3: the third one is"),
            (1, 3, "xx.xx", "", false, "a success resets the count"),
            (2, 1, "x.", "D", true, "rise 2: one success is not enough"),
            (2, 1, "x..", "DU", false, "rise 2: the second one is"),
            (
                2,
                1,
                "x.x..",
                "DU",
                false,
                "a failure while down resets the passes",
            ),
            (
                1,
                1,
                "xxx",
                "D",
                true,
                "one line per change, not per failure",
            ),
            (1, 1, "...", "", false, "healthy stays quiet"),
        ];
        for (rise, fall, results, want, down, why) in cases {
            let s = BackendState::default();
            let c = check(*rise, *fall);
            let mut changes = String::new();
            for r in results.chars() {
                let res = if r == '.' { Ok(()) } else { Err("boom".into()) };
                match record_probe(&s, &c, res) {
                    Some(Change::Down(reason)) => {
                        assert_eq!(reason, "boom");
                        changes.push('D');
                    }
                    Some(Change::Up) => changes.push('U'),
                    None => {}
                }
            }
            assert_eq!(&changes, want, "{why}");
            assert_eq!(s.down.load(Relaxed), *down, "{why}");
        }
    }

    #[test]
    fn status_line_table() {
        // (bytes, expected, reason)
        type Case = (&'static [u8], Option<Result<u16, ()>>, &'static str);
        let cases: &[Case] = &[
            (b"HTTP/1.1 200 OK\r\n", Some(Ok(200)), "usual line"),
            (
                b"HTTP/1.0 503 Service Unavailable\r\nx",
                Some(Ok(503)),
                "HTTP/1.0",
            ),
            (b"HTTP/1.1 204\r\n", Some(Ok(204)), "no reason phrase"),
            (b"HTTP/1.1 200 OK\n", Some(Ok(200)), "bare LF"),
            (b"HTTP/1.1 200 O", None, "incomplete: read more"),
            (b"", None, "nothing yet"),
            (b"HTTP/2 200\r\n", Some(Err(())), "not HTTP/1"),
            (b"HTTP/1.1 20x OK\r\n", Some(Err(())), "code not digits"),
            (b"HTTP/1.1 2000 OK\r\n", Some(Err(())), "four digits"),
            (b"SSH-2.0-OpenSSH\r\n", Some(Err(())), "another protocol"),
        ];
        for (input, want, why) in cases {
            let got = parse_status_line(input).map(|r| r.map_err(|_| ()));
            assert_eq!(got, *want, "{why}");
        }
    }

    #[test]
    fn status_line_never_panics_on_arbitrary_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let alphabet = b"HTP/1. 0239\r\nx\xff";
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if let Some(Ok(code)) = parse_status_line(&bytes) {
                assert!(code <= 999);
            }
        }
    }

    /// The checks run on their own thread from a plain (non-async) caller, probe every
    /// interval, and end when the handle is dropped.
    #[test]
    fn checks_start_on_their_own_thread_and_stop_with_the_handle() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let pool: Arc<[Arc<BackendState>]> = vec![Arc::new(BackendState::default())].into();
        let target = Target {
            upstream: "lifecycle".into(),
            addr,
            index: 0,
            pool: Arc::clone(&pool),
            check: Arc::new(HealthCheck {
                interval: Duration::from_millis(20),
                ..check(1, 1)
            }),
        };
        let checks = HealthChecks::start(vec![target]).expect("started");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut accepted = 0;
        while accepted < 3 {
            match listener.accept() {
                Ok(_) => accepted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "{accepted} probes");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        checks.stop_and_join();
        assert!(!pool[0].down.load(Relaxed), "the backend passed its checks");
        assert!(
            HealthChecks::start(Vec::new()).is_none(),
            "nothing to check: no thread"
        );
    }

    /// Probes against real sockets: a listener that answers with a status, one that closes,
    /// and an address nobody listens on.
    #[test]
    fn probes_against_real_sockets() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let answer = |status: &'static str| async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                tokio::spawn(async move {
                    loop {
                        let (mut c, _) = l.accept().await.unwrap();
                        let mut buf = [0u8; 1024];
                        let _ = c.read(&mut buf).await;
                        let _ = c.write_all(status.as_bytes()).await;
                    }
                });
                addr
            };
            let http = |status: StatusRanges| HealthCheck {
                probe: Probe::Http {
                    path: "/healthz".into(),
                    host: None,
                    status,
                },
                ..check(1, 1)
            };
            let ok = answer("HTTP/1.1 204 No Content\r\n\r\n").await;
            let fail = answer("HTTP/1.1 500 Oops\r\n\r\n").await;
            let closes = answer("").await;
            let dead = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let two_three = StatusRanges::new(vec![(200, 399)]);
            assert_eq!(probe(ok, &http(two_three.clone())).await, Ok(()));
            assert_eq!(
                probe(fail, &http(two_three.clone())).await,
                Err("GET /healthz answered 500".into())
            );
            assert_eq!(
                probe(fail, &http(StatusRanges::new(vec![(500, 500)]))).await,
                Ok(()),
                "expected status configured"
            );
            let closed = probe(closes, &http(two_three.clone())).await.unwrap_err();
            assert!(closed.contains("without an answer"), "{closed}");
            let refused = probe(dead, &check(1, 1)).await.unwrap_err();
            assert!(refused.starts_with("cannot connect"), "{refused}");
            assert_eq!(
                probe(ok, &check(1, 1)).await,
                Ok(()),
                "tcp: the connect is enough"
            );
        });
    }
}
