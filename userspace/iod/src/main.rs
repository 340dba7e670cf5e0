// SPDX-License-Identifier: GPL-2.0
//! `iod`: the nfsp storage daemon.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use iod::policy::NFS_PORT;
use iod::server::{Fault, DEFAULT_MAX_FILE_SIZE};
use iod::stats::Stats;
use iod::{Config, Server};
use log::{error, info, warn};
use nfsp_proto::auth::Keys;

/// The faults `--fault-injection` can inject.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum FaultArg {
    /// Drop every COMMIT unanswered.
    DropCommits,
    /// Hold every TRUNCATE 2 s before applying it.
    HoldTruncates,
    /// Hold the next WRITE (one per SIGUSR2 that turns it on) 2 s before
    /// applying it.
    HoldNextWrite,
    /// Answer COMMITs (and stable pNFS writes) without flushing anything:
    /// the cost of durability, for benchmarks only.
    SkipSync,
}

/// nfsp storage daemon: serves file data to the meta-server over UDP.
///
/// Every datagram must carry a valid tag made with the cluster key
/// (--key-file); the iod does not start without one unless --insecure.
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
    /// The cluster key file (sign + optional accept key); SIGHUP re-reads it.
    #[arg(long, value_name = "PATH", default_value = nfsp_keys::DEFAULT_KEY_FILE)]
    key_file: PathBuf,
    /// INSECURE: run without the key file, accepting unsigned datagrams
    /// from anyone who can reach the port (tests only).
    #[arg(long, conflicts_with = "key_file")]
    insecure: bool,
    /// A meta-server NFS address (port 2049 if omitted): the only source a
    /// direct reply may carry. Repeatable.
    #[arg(long = "meta", value_name = "IP[:PORT]", value_parser = parse_meta)]
    meta: Vec<SocketAddr>,
    /// An iod of the cluster (this one may be listed too): the only READ
    /// hops and chain members allowed. Repeatable.
    #[arg(long = "peer", value_name = "IP:PORT")]
    peers: Vec<SocketAddr>,
    /// Largest local file length a WRITE or TRUNCATE may produce (bytes).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_SIZE)]
    max_file_size: u64,
    /// Serve pNFS clients as a flexfiles data server (NFSv3 over TCP) on
    /// this address, e.g. 0.0.0.0:2049: the only port clients reach.
    /// Filehandles are minted by the meta-server for this very address.
    #[arg(long, value_name = "IP:PORT")]
    ds_listen: Option<SocketAddr>,
    /// TESTS ONLY: SIGUSR2 turns on, then off, a fault: drop-commits (the
    /// default) drops every COMMIT unanswered, so that a crash test can
    /// lose writes this iod acknowledged but never committed;
    /// hold-truncates makes every TRUNCATE wait 2 s before it is applied,
    /// so that writes sent meanwhile land before the cut; hold-next-write
    /// holds the next WRITE (one) 2 s, so that a later one lands first;
    /// skip-sync answers COMMITs without flushing (benchmarks: what
    /// durability costs). Never on where data matters.
    #[arg(long, value_name = "FAULT", num_args = 0..=1, default_missing_value = "drop-commits")]
    fault_injection: Option<FaultArg>,
    /// Write the manual page iod.8 into DIR and exit (packaging; hidden).
    #[arg(long, value_name = "DIR", hide = true, exclusive = true)]
    generate_man: Option<PathBuf>,
}

impl Args {
    /// The arguments of this process, or `--generate-man`'s directory:
    /// that flag stands alone, without the otherwise required --listen
    /// and --data, so it is looked for before the rest is extracted.
    fn parse_or_man() -> Result<Self, PathBuf> {
        use clap::{CommandFactory, FromArgMatches};
        let m = Self::command().get_matches();
        if let Some(dir) = m.get_one::<PathBuf>("generate_man") {
            return Err(dir.clone());
        }
        Self::from_arg_matches(&m).map_err(|e| e.format(&mut Self::command()).exit())
    }
}

/// Write iod.8 into `dir` (created if missing).
fn generate_man(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let man = clap_mangen::Man::new(Args::command()).section("8");
    man.generate_to(dir)
        .with_context(|| format!("writing {}", dir.join(man.get_filename()).display()))?;
    Ok(())
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`.
fn parse_meta(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, NFS_PORT))
        .map_err(|_| format!("{s:?} is not IP, IP:PORT or [IPv6]:PORT"))
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

fn describe(keys: &Keys) -> String {
    match (keys.signing(), keys.accepted()) {
        (Some(s), Some(a)) => format!(
            "signing with key {:08x}, also accepting {:08x}",
            s.id(),
            a.id()
        ),
        (Some(s), None) => format!("signing with key {:08x}", s.id()),
        _ => "no key".into(),
    }
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match Args::parse_or_man() {
        Ok(a) => a,
        Err(dir) => return generate_man(&dir),
    };
    let keys = if args.insecure {
        warn!(
            "INSECURE MODE (--insecure): datagrams are not authenticated; anyone who can \
             reach {} can read, write and delete data. Never use this outside tests.",
            args.listen
        );
        Keys::insecure()
    } else {
        nfsp_keys::load(&args.key_file).with_context(|| {
            format!(
                "cannot load the cluster key file {} (iodctl genkey makes one; \
                 --insecure runs without, for tests only)",
                args.key_file.display()
            )
        })?
    };
    let workers = args.workers.unwrap_or_else(Config::default_workers).max(1);
    let cfg = Config {
        listen: args.listen,
        data_dir: args.data.clone(),
        workers,
        max_inflight: args.max_inflight.unwrap_or(workers),
        keys,
        meta: args.meta.clone(),
        peers: args.peers.clone(),
        max_file_size: args.max_file_size,
        ds_listen: args.ds_listen,
    };
    if args.meta.is_empty() {
        warn!("no --meta address: direct READs will be refused");
    }
    let server = Server::bind(cfg).context("starting iod")?;
    let addr = server.local_addr().context("local address")?;
    let instance = server.instance();
    let ds_addr = server.ds_addr();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    let usr1 = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&usr1))
        .context("signal handler")?;
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("signal handler")?;
    let usr2 = Arc::new(AtomicBool::new(false));
    let fault = args.fault_injection.map(|f| match f {
        FaultArg::DropCommits => Fault::DropCommits,
        FaultArg::HoldTruncates => Fault::HoldTruncates,
        FaultArg::HoldNextWrite => Fault::HoldNextWrite,
        FaultArg::SkipSync => Fault::SkipSync,
    });
    if let Some(f) = fault {
        signal_hook::flag::register(signal_hook::consts::SIGUSR2, Arc::clone(&usr2))
            .context("signal handler")?;
        warn!("fault injection on: SIGUSR2 toggles {f:?}");
    }
    let mut faulty = false;
    let handle = server.start(Arc::clone(&stop)).context("starting iod")?;
    if let Some(ds) = ds_addr {
        info!("pNFS data server (NFSv3 over TCP) on {ds}");
    }
    // The line tests and scripts wait for.
    out(format_args!("iod listening on {addr}"));
    info!(
        "iod listening on {addr}, data {}, {workers} workers, buffer memory {} KiB, \
         data identity {:08x}, instance {instance:016x}, {}, meta {:?}, peers {:?}, max file size {}",
        args.data.display(),
        workers * 2 * iod::server::BUF_LEN / 1024,
        nfsp_proto::wire::identity_of(instance),
        describe(&handle.keys()),
        args.meta,
        args.peers,
        args.max_file_size,
    );
    let stats = Arc::clone(&handle.stats);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if hup.swap(false, Ordering::Relaxed) {
            handle.refresh_addresses();
            if args.insecure {
                warn!("SIGHUP: insecure mode, no key file to reload");
            } else {
                match handle.reload_keys(&args.key_file) {
                    Ok(k) => info!("SIGHUP: key file reloaded: {}", describe(&k)),
                    Err(e) => error!("SIGHUP: key file reload failed, keeping the old keys: {e}"),
                }
            }
        }
        if let Some(f) = fault.filter(|_| usr2.swap(false, Ordering::Relaxed)) {
            faulty = !faulty;
            handle.set_fault(faulty.then_some(f));
            warn!("SIGUSR2: fault {f:?} {}", if faulty { "on" } else { "off" });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli() {
        Args::command().debug_assert();
        let p = |s: &str| parse_meta(s);
        assert_eq!(p("10.0.0.1"), Ok("10.0.0.1:2049".parse().unwrap()));
        assert_eq!(p("10.0.0.1:20"), Ok("10.0.0.1:20".parse().unwrap()));
        assert_eq!(p("[::1]"), Ok("[::1]:2049".parse().unwrap()));
        assert_eq!(p("::1"), Ok("[::1]:2049".parse().unwrap()));
        assert_eq!(p("[::1]:7"), Ok("[::1]:7".parse().unwrap()));
        assert!(p("meta").is_err());
        let a = Args::try_parse_from([
            "iod",
            "--listen",
            "0.0.0.0:7000",
            "--data",
            "/d",
            "--meta",
            "10.0.0.1",
            "--peer",
            "10.0.0.11:7000",
            "--peer",
            "10.0.0.12:7000",
        ])
        .unwrap();
        assert_eq!(a.key_file, PathBuf::from(nfsp_keys::DEFAULT_KEY_FILE));
        assert_eq!(
            (a.meta.len(), a.peers.len(), a.max_file_size),
            (1, 2, 1 << 40)
        );
        assert!(!a.insecure);
        let both = [
            "iod",
            "--listen",
            "0.0.0.0:7000",
            "--data",
            "/d",
            "--insecure",
            "--key-file",
            "/k",
        ];
        assert!(Args::try_parse_from(both).is_err());
    }

    #[test]
    fn man_page() {
        // --generate-man needs no --listen/--data, and nothing else with it.
        let m = Args::command()
            .try_get_matches_from(["iod", "--generate-man", "/x"])
            .unwrap();
        assert_eq!(
            m.get_one::<PathBuf>("generate_man"),
            Some(&PathBuf::from("/x"))
        );
        let with = ["iod", "--generate-man", "/x", "--listen", "0.0.0.0:7000"];
        assert!(Args::command().try_get_matches_from(with).is_err());
        let d = tempfile::tempdir().unwrap();
        generate_man(&d.path().join("man8")).unwrap();
        let p = std::fs::read_to_string(d.path().join("man8/iod.8")).unwrap();
        assert!(p.contains(".TH iod 8"), "{p}");
        assert!(p.contains("\\-\\-listen") && !p.contains("generate"), "{p}");
    }
}
