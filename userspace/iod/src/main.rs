// SPDX-License-Identifier: GPL-2.0
//! `iod`: the nfsp storage daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use iod::stats::Stats;
use iod::{Config, Server};
use log::info;

/// nfsp storage daemon: serves file data to the meta-server over UDP.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// UDP address to listen on, e.g. 0.0.0.0:7000 or [::]:7000.
    #[arg(long)]
    listen: SocketAddr,
    /// Data directory (one local file per NFSP file, hashed sub-directories).
    #[arg(long)]
    data: PathBuf,
    /// Worker threads (default: CPUs × 4, at least 4).
    #[arg(long)]
    workers: Option<usize>,
    /// Requests served at once before new ones are dropped (default: workers).
    #[arg(long)]
    max_inflight: Option<usize>,
    /// Print the statistics as JSON on stdout on exit and on SIGUSR1.
    #[arg(long)]
    stats_json: bool,
}

/// Print a line on stdout, ignoring errors (a closed pipe must not kill us).
fn out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o
        .write_fmt(args)
        .and_then(|_| o.write_all(b"\n"))
        .and_then(|_| o.flush());
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let workers = args.workers.unwrap_or_else(Config::default_workers).max(1);
    let cfg = Config {
        listen: args.listen,
        data_dir: args.data.clone(),
        workers,
        max_inflight: args.max_inflight.unwrap_or(workers),
    };
    let server = Server::bind(cfg).context("starting iod")?;
    let addr = server.local_addr().context("local address")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    let usr1 = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&usr1))
        .context("signal handler")?;
    let handle = server.start(Arc::clone(&stop))?;
    // The line tests and scripts wait for.
    out(format_args!("iod listening on {addr}"));
    info!(
        "iod listening on {addr}, data {}, {workers} workers, buffer memory {} KiB",
        args.data.display(),
        workers * 2 * iod::server::BUF_LEN / 1024
    );
    let stats = Arc::clone(&handle.stats);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if usr1.swap(false, Ordering::Relaxed) {
            let s = Stats::to_json(&stats.snapshot());
            info!("stats {s}");
            if args.stats_json {
                out(format_args!("{s}"));
            }
        }
    }
    info!("shutting down");
    handle.join();
    if args.stats_json {
        out(format_args!("{}", Stats::to_json(&stats.snapshot())));
    }
    Ok(())
}
