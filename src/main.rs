//! The `tracegate` binary: parse the command line, load the config, run the server.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for a configuration error (EX_CONFIG would be 78; 64 is EX_USAGE, the
/// project's convention for "refused before start").
const EXIT_CONFIG: u8 = 64;

/// jemalloc instead of glibc malloc: spans are allocated on request threads and freed on the
/// exporter thread, which glibc serialises on an arena lock (measured in the load benchmark).
/// Its background threads give freed memory back to the system after a few seconds even when
/// every worker thread is idle, so the memory of closed connections comes back (mimalloc kept
/// it until the thread that freed it allocated again; see `benches/load/idle.sh`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// An edge reverse proxy that starts the distributed trace.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The YAML config file.
    #[arg(short, long, default_value = "config/tracegate.yaml")]
    config: PathBuf,
    /// Validate the config file and exit: 0 when valid, 64 with the reason when not.
    #[arg(long)]
    check: bool,
    /// Graceful upgrade: take over the listening sockets of the tracegate running with the same
    /// `server.upgrade_sock`. Start this process first, then send the old one SIGQUIT; it hands
    /// its sockets over, finishes its requests and exits.
    #[arg(long)]
    upgrade: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let config = match tracegate::config::load(&cli.config, &tracegate::config::ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tracegate: invalid config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check {
        println!(
            "{}: OK ({} listeners, {} routes, {} upstreams, exporter {})",
            cli.config.display(),
            config.listeners.len(),
            config.router.routes().len(),
            config.upstreams.len(),
            config.telemetry.exporter.protocol.as_str()
        );
        return ExitCode::SUCCESS;
    }
    let opts = tracegate::app::RunOptions {
        config_path: Some(cli.config),
        upgrade: cli.upgrade,
    };
    match tracegate::app::run(config, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracegate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`). Pingora's `log` records and
/// the OpenTelemetry crates' internal `tracing` events (export errors) both arrive here.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
