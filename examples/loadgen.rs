//! An open-loop HTTP/1.1 load generator: GET requests at a fixed rate, for the load benchmarks.
//!
//! Request `i` is due at `t0 + i / rate`, whether or not earlier requests have been answered.
//! The requests are spread over `C` keep-alive connections (connection `k` sends the requests
//! with `i ≡ k (mod C)`), one task per connection on a single-threaded runtime. Tools that wait
//! for a response before sending the next request (closed loop, e.g. wrk) under-report latency
//! when the server stalls: they stop sending during the stall, so the requests that would have
//! waited are never measured ("coordinated omission"). Here the schedule does not move. When a
//! connection falls behind, its next request leaves late, and its latency is counted from the
//! time it was due, so the backlog shows up as latency.
//!
//! Latency runs from the due time to the end of the response body, less the generator's own
//! lateness: the timer wakes a connection on the next millisecond tick, and the process may be
//! scheduled late. That lateness (from the later of the due time and the end of the connection's
//! previous response, to the moment the request is sent) is not the server's doing; it is
//! reported separately as `lag_p99_us` / `lag_max_us`. Time spent waiting for an earlier
//! response on the same connection is the server's doing and stays in the latency.
//!
//! A failed connection is counted in `errors` and opened again for the next request; a
//! request that takes longer than `--timeout` counts as an error too (and in `timeouts`).
//! Responses other than 2xx are counted in `non2xx` (their latency is still recorded).
//! With `--failures FILE`, each failed request (non-2xx, error, timeout) is also written to FILE
//! as `unix_ms kind detail`, so a fault test can line failures up with what it did when.
//! The result is one line on stdout:
//!
//! ```text
//! sent=.. ok=.. non2xx=.. errors=.. timeouts=.. elapsed_s=.. rate=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. lag_p99_us=.. lag_max_us=.. cpu_ms=..
//! ```
//!
//! `rate` is 2xx responses per second of the run; `cpu_ms` is the generator's own CPU time.
//!
//! ```text
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/ --rate 4000 --duration 20 --connections 50
//! ```

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: loadgen --url http://HOST:PORT/PATH [--rate REQ_PER_S (4000)] \
[--duration SECS (10)] [--connections N (50)] [--timeout SECS (10)] [--failures FILE]";

struct Args {
    /// `host:port` to connect to.
    addr: String,
    /// `Host` header.
    host: String,
    /// Path and query of every request.
    path: String,
    rate: f64,
    duration: Duration,
    connections: usize,
    timeout: Duration,
    /// Where to write one line per failed request.
    failures: Option<String>,
}

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut url = String::from("http://127.0.0.1:8080/");
    let mut rate = 4000.0;
    let mut duration = 10.0;
    let mut connections = 50;
    let mut timeout = 10.0;
    let mut failures = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        let number = || -> f64 {
            value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .unwrap_or_else(|| fail(&format!("{flag}: not a positive number: {value}")))
        };
        match flag.as_str() {
            "--url" => url = value.clone(),
            "--rate" => rate = number(),
            "--duration" => duration = number(),
            "--connections" => connections = number() as usize,
            "--timeout" => timeout = number(),
            "--failures" => failures = Some(value.clone()),
            _ => fail(&format!("unknown argument {flag}")),
        }
    }
    let uri: Uri = url
        .parse()
        .unwrap_or_else(|e| fail(&format!("bad --url {url}: {e}")));
    if uri.scheme_str() != Some("http") {
        fail("only http:// URLs are supported");
    }
    let authority = uri
        .authority()
        .unwrap_or_else(|| fail("the URL needs a host"));
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    Args {
        addr,
        host: authority.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
        rate,
        duration: Duration::from_secs_f64(duration),
        connections: connections.max(1),
        timeout: Duration::from_secs_f64(timeout),
        failures,
    }
}

/// One keep-alive connection: the request handle and the task driving the connection.
struct Conn {
    sender: http1::SendRequest<Empty<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn connect(args: &Args) -> Result<Conn, BoxError> {
    let stream = TcpStream::connect(&args.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn { sender, driver })
}

/// Sends one request on `conn` (opening it first when needed) and reads the whole response.
/// Returns the response status.
async fn request(conn: &mut Option<Conn>, args: &Args) -> Result<u16, BoxError> {
    // A connection the server has closed while idle is replaced without counting an error.
    if let Some(c) = conn {
        if c.sender.is_closed() || c.sender.ready().await.is_err() {
            *conn = None;
        }
    }
    let c = match conn {
        Some(c) => c,
        None => conn.insert(connect(args).await?),
    };
    c.sender.ready().await?;
    let req = Request::get(args.path.as_str())
        .header(hyper::header::HOST, args.host.as_str())
        .header(hyper::header::USER_AGENT, "tracegate-loadgen")
        .body(Empty::new())?;
    let resp = c.sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(status)
}

#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    non2xx: u64,
    errors: u64,
    timeouts: u64,
    latency_us: Vec<u32>,
    lag_us: Vec<u32>,
    last_done: Option<Instant>,
    /// `unix_ms kind detail` per failed request, kept only with `--failures`.
    failures: Vec<String>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.non2xx += o.non2xx;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.latency_us.extend(o.latency_us);
        self.lag_us.extend(o.lag_us);
        self.last_done = self.last_done.max(o.last_done);
        self.failures.extend(o.failures);
    }

    fn failed(&mut self, args: &Args, kind: &str, detail: &str) {
        if args.failures.is_some() {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            self.failures.push(format!("{ms} {kind} {detail}"));
        }
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// Connection `k`: sends requests k, k + C, k + 2C, … at their due times.
async fn run_connection(k: u64, args: Arc<Args>, t0: Instant, total: u64, stop: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut conn = connect(&args).await.ok();
    let mut prev_done = t0;
    let step = args.connections as u64;
    let mut i = k;
    while i < total {
        let due = t0 + Duration::from_secs_f64(i as f64 / args.rate);
        i += step;
        if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        let start = Instant::now();
        if start >= stop {
            // The run is over and this request was never sent: a timeout.
            tally.errors += 1;
            tally.timeouts += 1;
            tally.failed(&args, "timeout", "never sent");
            continue;
        }
        tally.sent += 1;
        let result = tokio::time::timeout(args.timeout, request(&mut conn, &args)).await;
        let done = Instant::now();
        match result {
            Ok(Ok(status)) => {
                // The generator's own lateness: from when this connection could have sent the
                // request (its due time, or the end of the previous response) until it did.
                let lag = start.saturating_duration_since(due.max(prev_done));
                tally.lag_us.push(micros(lag));
                tally
                    .latency_us
                    .push(micros((done - due).saturating_sub(lag)));
                if (200..300).contains(&status) {
                    tally.ok += 1;
                } else {
                    tally.non2xx += 1;
                    tally.failed(&args, "status", &status.to_string());
                }
            }
            Ok(Err(e)) => {
                tally.errors += 1;
                tally.failed(&args, "error", &format!("{e:?}").replace('\n', " "));
                conn = None;
            }
            Err(_) => {
                tally.errors += 1;
                tally.timeouts += 1;
                tally.failed(&args, "timeout", &format!("{:?}", args.timeout));
                conn = None;
            }
        }
        prev_done = done;
        tally.last_done = Some(done);
    }
    tally
}

/// The value at quantile `q` of sorted values (nearest rank).
fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU time of this process in milliseconds (Linux; 0 elsewhere).
fn own_cpu_ms() -> u64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |ns| ns / 1_000_000)
}

async fn run(args: Arc<Args>) -> Tally {
    let total = (args.rate * args.duration.as_secs_f64()).round() as u64;
    // Leave time to open the connections before the first request is due.
    let t0 = Instant::now() + Duration::from_millis(200);
    let stop = t0 + args.duration + args.timeout;
    let tasks: Vec<_> = (0..args.connections as u64)
        .map(|k| tokio::spawn(run_connection(k, args.clone(), t0, total, stop)))
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        match t.await {
            Ok(tally) => all.merge(tally),
            Err(e) => eprintln!("loadgen: connection task failed: {e}"),
        }
    }
    // Elapsed time runs from the first due time to the last response.
    all.last_done = Some(all.last_done.unwrap_or(t0).max(t0));
    all.latency_us.sort_unstable();
    all.lag_us.sort_unstable();
    let elapsed = all.last_done.map_or(0.0, |d| (d - t0).as_secs_f64());
    if let Some(path) = &args.failures {
        all.failures.sort_unstable();
        let mut text = all.failures.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("loadgen: cannot write {path}: {e}");
        }
    }
    let l = &all.latency_us;
    println!(
        "sent={} ok={} non2xx={} errors={} timeouts={} elapsed_s={:.3} rate={:.1} \
         p50_us={} p90_us={} p99_us={} p999_us={} max_us={} lag_p99_us={} lag_max_us={} cpu_ms={}",
        all.sent,
        all.ok,
        all.non2xx,
        all.errors,
        all.timeouts,
        elapsed,
        if elapsed > 0.0 {
            all.ok as f64 / elapsed
        } else {
            0.0
        },
        quantile(l, 0.50),
        quantile(l, 0.90),
        quantile(l, 0.99),
        quantile(l, 0.999),
        l.last().copied().unwrap_or(0),
        quantile(&all.lag_us, 0.99),
        all.lag_us.last().copied().unwrap_or(0),
        own_cpu_ms(),
    );
    all
}

fn main() {
    let args = Arc::new(parse_args());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tally = rt.block_on(run(args));
    if tally.ok + tally.non2xx == 0 {
        std::process::exit(1);
    }
}
