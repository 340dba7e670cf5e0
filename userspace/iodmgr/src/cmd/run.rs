// SPDX-License-Identifier: GPL-2.0
//! `iodmgr run`: the monitor loop. Every interval:
//!
//! 1. `list` on the control file: the viods, their members, states and
//!    the module's counters;
//! 2. PING every member at once; a PONG within the interval = alive, with
//!    its round-trip time;
//! 3. the health state machine ([`iodmgr::health`]) decides: dead or slow
//!    members go `down`, returning ones go `up` (the viod's last writer)
//!    or `resync` with a copy from an up member in a thread of its own
//!    ([`iodmgr::resync`]), set `up` when the copy is complete;
//! 4. the space each iod told in its PONG goes to the module (`space`),
//!    which adds it up for `df` of the export;
//! 5. the snapshot goes to the state file and the metrics endpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use iodctl::control::Control;
use iodmgr::health::{Action, Config, Monitor};
use iodmgr::resync::{Report, Resync, ResyncError};
use iodmgr::status::{IodStatus, Snapshot};
use log::{info, warn};
use nfsp_proto::{Answer, Command, IodState, ListLine, Space};
use unlinkd::client::{Client, SharedKeys};
use unlinkd::keys::KeyArgs;

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The module's control file.
    #[arg(long, value_name = "PATH", default_value = unlinkd::DEFAULT_CONTROL)]
    pub control: PathBuf,
    /// Heartbeat interval in milliseconds (also the wait for a PONG).
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub interval_ms: u64,
    /// Missed PINGs in a row (or slow rounds in a row) before an iod is
    /// taken down.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub misses: u32,
    /// An iod is slow when its round trip exceeds this factor times the
    /// median of its viod's other up members (and 50 ms).
    #[arg(long, value_name = "F", default_value_t = 10.0)]
    pub slow_factor: f64,
    /// Serve OpenMetrics on GET http://ADDR:PORT/metrics. ADDR defaults to
    /// 127.0.0.1 (loopback), PORT to 9477 (`--metrics` alone); 0.0.0.0:PORT
    /// serves every interface.
    #[arg(long, value_name = "[ADDR:]PORT", num_args = 0..=1,
          default_missing_value = iodmgr::metrics::DEFAULT_ADDR, value_parser = metrics_addr)]
    pub metrics: Option<SocketAddr>,
    /// State file rewritten every interval (read by `iodmgr status`).
    #[arg(long, value_name = "PATH", default_value = iodmgr::DEFAULT_STATE)]
    pub state: PathBuf,
    /// Pause between two re-sync rounds in milliseconds (longer than the
    /// module's iod timeout × tries, so writes in flight have landed).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub resync_pause_ms: u64,
    /// Longest local file a re-sync believes an iod's listing about, in
    /// bytes; longer ones are logged as errors and skipped.
    #[arg(long, value_name = "BYTES", default_value_t = iodmgr::resync::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
    /// The viod table's configuration file (`iodctl save`): saved again,
    /// when it exists, each time an iod's identity is recorded, so that
    /// the next boot loads it.
    #[arg(long, value_name = "PATH", default_value = iodctl::viods_conf::DEFAULT_VIODS_FILE)]
    pub viods_file: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// `--metrics`: ADDR:PORT, or a bare PORT on 127.0.0.1 (the metrics stay
/// on the host unless an address is given).
fn metrics_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is neither ADDR:PORT nor PORT"))
}

/// A re-sync thread.
struct Job {
    abort: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    counted: u64,
    source: SocketAddr,
}

type Done = (u32, SocketAddr, Result<Report, ResyncError>);

struct Daemon {
    ctl: Control,
    monitor: Monitor,
    client: Client,
    jobs: BTreeMap<(u32, SocketAddr), Job>,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    resync_pause: Duration,
    warned: bool,
    space_warned: bool,
    keys: SharedKeys,
    max_file_size: u64,
    viods_file: PathBuf,
}

/// The member lines of a `list` answer.
fn parse_list(lines: &[String]) -> anyhow::Result<Vec<ListLine>> {
    let mut out = Vec::new();
    for l in lines {
        match Answer::parse(l) {
            Ok(Answer::Member(m)) => out.push(m),
            Ok(Answer::Ok) => {}
            _ => anyhow::bail!("unexpected answer to 'list': '{l}'"),
        }
    }
    Ok(out)
}

/// Our copy of the kernel's list after a state change went through.
fn set_local(list: &mut [ListLine], viod: u32, addr: SocketAddr, state: IodState) {
    for l in list.iter_mut().filter(|l| (l.viod, l.addr) == (viod, addr)) {
        l.state = state;
    }
}

impl Args {
    /// Run until SIGTERM/SIGINT.
    pub fn run(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.slow_factor.is_finite() && self.slow_factor >= 1.0,
            "--slow-factor must be at least 1"
        );
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
        }
        let keys = SharedKeys::new(self.keys.load()?);
        let reload = self.keys.reloader(keys.clone())?;
        // One monitor per state file (two would fight over the members).
        if let Some(dir) = self.state.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let lock_path = self.state.with_extension("lock");
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => anyhow::anyhow!(
                "{} is locked: another iodmgr runs with this state file",
                lock_path.display()
            ),
            std::fs::TryLockError::Error(e) => {
                anyhow::Error::new(e).context(format!("locking {}", lock_path.display()))
            }
        })?;
        let remembered = match Snapshot::read(&self.state) {
            Ok(s) => s.iods,
            Err(_) => Vec::new(),
        };
        let shared: Arc<Mutex<Vec<IodStatus>>> = Arc::default();
        if let Some(addr) = self.metrics {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("metrics endpoint {addr}"))?;
            iodmgr::metrics::serve(l, Arc::clone(&shared)).context("metrics thread")?;
            info!("metrics on http://{addr}/metrics");
        }
        let interval = Duration::from_millis(self.interval_ms);
        let cfg = Config {
            misses: self.misses,
            slow_factor: self.slow_factor,
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel();
        let mut d = Daemon {
            ctl: Control::new(self.control.clone()),
            monitor: Monitor::new(cfg, &remembered),
            client: Client::new(keys.clone(), interval, 1).context("iod client")?,
            jobs: BTreeMap::new(),
            tx,
            rx,
            resync_pause: Duration::from_millis(self.resync_pause_ms),
            warned: false,
            space_warned: false,
            keys,
            max_file_size: self.max_file_size,
            viods_file: self.viods_file.clone(),
        };
        // The line scripts wait for.
        println!("iodmgr running");
        while !stop.load(Ordering::Relaxed) {
            reload.poll();
            let start = Instant::now();
            if let Some(iods) = d.round(interval) {
                if let Ok(mut g) = shared.lock() {
                    *g = iods.clone();
                }
                let snap = Snapshot::now(self.interval_ms, iods);
                if let Err(e) = snap.write(&self.state) {
                    warn!("state file {}: {e}", self.state.display());
                }
            }
            std::thread::sleep(interval.saturating_sub(start.elapsed()));
        }
        for j in d.jobs.values() {
            j.abort.store(true, Ordering::Relaxed);
        }
        info!("stopping");
        drop(lock);
        Ok(())
    }
}

impl Daemon {
    fn list(&mut self) -> Option<Vec<ListLine>> {
        match self
            .ctl
            .transact(&Command::List)
            .and_then(|l| parse_list(&l))
        {
            Ok(l) => {
                if self.warned {
                    info!("the control file answers again");
                    self.warned = false;
                }
                Some(l)
            }
            Err(e) => {
                if !self.warned {
                    warn!("{e:#}");
                    self.warned = true;
                }
                None
            }
        }
    }

    fn set_state(&self, viod: u32, addr: SocketAddr, state: IodState) -> bool {
        match self.ctl.transact(&Command::SetState { viod, addr, state }) {
            Ok(_) => true,
            Err(e) => {
                warn!("viod {viod}: {addr}: set-state {state}: {e:#}");
                false
            }
        }
    }

    /// Saves the module's table to the configuration file, if there is
    /// one (an identity just recorded must survive a reboot).
    fn save_table(&mut self) {
        if !self.viods_file.exists() {
            return;
        }
        let Some(list) = self.list() else { return };
        let text = iodctl::viods_conf::format(&iodctl::viods_conf::from_list(&list));
        match iodctl::viods_conf::write_atomically(&self.viods_file, &text) {
            Ok(()) => info!("saved the viod table to {}", self.viods_file.display()),
            Err(e) => warn!(
                "saving the viod table to {}: {e}: run `iodctl save`, or the next boot loads the \
                 identity it replaced",
                self.viods_file.display()
            ),
        }
    }

    /// Tells the module the space each answering iod has, which `df` of
    /// the export adds up. Every round: a member added since starts
    /// without one.
    fn report_space(&mut self, pongs: &HashMap<SocketAddr, unlinkd::client::Pong>) {
        for (addr, p) in pongs {
            let s = &p.stats;
            if s.space_total == 0 {
                continue;
            }
            let space = Space {
                total: s.space_total,
                free: s.space_free,
                avail: s.space_avail,
            };
            match self.ctl.transact(&Command::Space { addr: *addr, space }) {
                Ok(_) => self.space_warned = false,
                Err(e) if !self.space_warned => {
                    warn!("{addr}: space: {e:#} (df of the export shows the meta-server's)");
                    self.space_warned = true;
                }
                Err(_) => {}
            }
        }
    }

    /// Re-syncs that ended.
    fn reap(&mut self) {
        while let Ok((viod, addr, res)) = self.rx.try_recv() {
            let Some(job) = self.jobs.remove(&(viod, addr)) else {
                continue;
            };
            let left = job.progress.load(Ordering::Relaxed) - job.counted;
            self.monitor.add_resync_bytes(viod, addr, left);
            match res {
                Ok(r) => {
                    // Taken down meanwhile (the module found another data
                    // directory there): it missed writes, it stays down.
                    let still = self.list().is_some_and(|l| {
                        l.iter()
                            .any(|m| (m.viod, m.addr, m.state) == (viod, addr, IodState::Resync))
                    });
                    if !still {
                        warn!("viod {viod}: {addr}: re-sync done, but it left resync meanwhile: not set up");
                        self.monitor
                            .resync_finished(viod, addr, false, Instant::now());
                        continue;
                    }
                    let ok = self.set_state(viod, addr, IodState::Up);
                    self.monitor.resync_finished(viod, addr, ok, Instant::now());
                    if ok {
                        info!(
                            "viod {viod}: {addr} re-synced from {}: {} file(s), {} bytes \
                             copied, {} bytes compared, {} truncated, {} removed, {} round(s) \
                             in {:.1} s ({:.1} MB/s); up",
                            job.source,
                            r.files,
                            r.copied,
                            r.compared,
                            r.truncated,
                            r.deleted,
                            r.rounds,
                            r.elapsed.as_secs_f64(),
                            r.mb_per_s()
                        );
                    }
                }
                Err(ResyncError::Aborted) => {
                    self.monitor
                        .resync_finished(viod, addr, false, Instant::now());
                }
                Err(e) => {
                    warn!(
                        "viod {viod}: {addr}: re-sync from {} failed: {e}; down, retried later",
                        job.source
                    );
                    self.set_state(viod, addr, IodState::Down);
                    self.monitor
                        .resync_finished(viod, addr, false, Instant::now());
                }
            }
        }
        for ((viod, addr), j) in self.jobs.iter_mut() {
            let p = j.progress.load(Ordering::Relaxed);
            self.monitor.add_resync_bytes(*viod, *addr, p - j.counted);
            j.counted = p;
        }
    }

    /// Set `addr` resync and start copying to it; false if the control
    /// file refused.
    fn start_resync(&mut self, viod: u32, addr: SocketAddr, source: SocketAddr) -> bool {
        // Its own client (socket, ids), the shared keys (SIGHUP reloads).
        let client = match Client::new(self.keys.clone(), Duration::from_millis(300), 4) {
            Ok(c) => c,
            Err(e) => {
                warn!("viod {viod}: {addr}: re-sync client: {e}");
                self.monitor
                    .resync_finished(viod, addr, false, Instant::now());
                return false;
            }
        };
        if !self.set_state(viod, addr, IodState::Resync) {
            self.monitor
                .resync_finished(viod, addr, false, Instant::now());
            return false;
        }
        info!("viod {viod}: {addr} answers again: resync (takes writes), copying from {source}");
        let job = Job {
            abort: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(AtomicU64::new(0)),
            counted: 0,
            source,
        };
        let r = Resync {
            client,
            source,
            target: addr,
            abort: Arc::clone(&job.abort),
            progress: Arc::clone(&job.progress),
            pause: self.resync_pause,
            max_rounds: 10,
            max_file_size: self.max_file_size,
        };
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((viod, addr, r.run()));
        });
        self.jobs.insert((viod, addr), job);
        true
    }

    /// One round; the snapshot, or `None` when the control file failed.
    fn round(&mut self, interval: Duration) -> Option<Vec<IodStatus>> {
        self.reap();
        let list = self.list()?;
        let addrs: Vec<SocketAddr> = list
            .iter()
            .map(|l| l.addr)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let answers = self.client.ping_many(&addrs, interval);
        let pongs: HashMap<SocketAddr, unlinkd::client::Pong> = addrs
            .iter()
            .zip(answers)
            .filter_map(|(a, r)| r.map(|p| (*a, p)))
            .collect();
        let pings: HashMap<SocketAddr, Duration> = pongs.iter().map(|(a, p)| (*a, p.rtt)).collect();
        let instances = pongs.iter().map(|(a, p)| (*a, p.instance)).collect();
        self.monitor.note_identities(&instances);
        let actions = self
            .monitor
            .round(&list, &pings, Instant::now(), SystemTime::now());
        self.monitor.note_instances(&instances);
        self.report_space(&pongs);
        let mut list = list;
        for a in actions {
            match a {
                Action::SetState {
                    viod,
                    addr,
                    state,
                    reason,
                } => {
                    if state == IodState::Down {
                        warn!("viod {viod}: {addr} down: {reason}");
                    } else {
                        info!("viod {viod}: {addr} {state}: {reason}");
                    }
                    if self.set_state(viod, addr, state) {
                        set_local(&mut list, viod, addr, state);
                        let up = list
                            .iter()
                            .any(|l| l.viod == viod && l.state == IodState::Up);
                        if state == IodState::Down && !up {
                            warn!(
                                "viod {viod} has no up member left: its files get \
                                 NFS3ERR_JUKEBOX (clients retry) until one returns"
                            );
                        }
                    }
                }
                Action::Resync { viod, addr, source } => {
                    if self.start_resync(viod, addr, source) {
                        set_local(&mut list, viod, addr, IodState::Resync);
                    }
                }
                Action::SetIdentity {
                    viod,
                    addr,
                    identity,
                    reason,
                } => {
                    info!("viod {viod}: {addr} serves data directory {identity:08x}: {reason}");
                    let cmd = Command::Identity {
                        viod,
                        addr,
                        identity,
                    };
                    match self.ctl.transact(&cmd) {
                        Ok(_) => self.save_table(),
                        Err(e) => warn!("viod {viod}: {addr}: {cmd}: {e:#}"),
                    }
                }
                Action::AbortResync { viod, addr } => {
                    if let Some(j) = self.jobs.get(&(viod, addr)) {
                        j.abort.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        Some(self.monitor.statuses(&list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        run: Args,
    }

    fn metrics(args: &[&str]) -> Result<Option<SocketAddr>, clap::Error> {
        use clap::Parser;
        let argv = std::iter::once("run").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|c| c.run.metrics)
    }

    #[test]
    fn metrics_bind_loopback_by_default() {
        let lo = |port: u16| Some(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
        assert_eq!(metrics(&[]).unwrap(), None, "off unless asked for");
        assert_eq!(
            metrics(&["--metrics"]).unwrap(),
            lo(iodmgr::metrics::DEFAULT_PORT)
        );
        assert_eq!(
            metrics(&["--metrics", "--misses", "2"]).unwrap(),
            lo(iodmgr::metrics::DEFAULT_PORT)
        );
        assert_eq!(metrics(&["--metrics", "9100"]).unwrap(), lo(9100));
        assert_eq!(metrics(&["--metrics=9100"]).unwrap(), lo(9100));
        // An explicit address is kept (all interfaces only when asked).
        assert_eq!(
            metrics(&["--metrics", "0.0.0.0:9477"]).unwrap(),
            Some("0.0.0.0:9477".parse().unwrap())
        );
        assert_eq!(
            metrics(&["--metrics", "[::1]:9477"]).unwrap(),
            Some("[::1]:9477".parse().unwrap())
        );
        assert!(metrics(&["--metrics", "somewhere"]).is_err());
        assert!(metrics(&["--metrics", "70000"]).is_err());
    }

    #[test]
    fn parses_the_list_answer() {
        let l = parse_list(&[
            "viod 0 iod 10.0.0.1:7000 up requests=1 bytes=2 errors=0 timeouts=0 latency_us=5"
                .into(),
            "ok".into(),
        ])
        .unwrap();
        assert_eq!(l.len(), 1);
        assert!(parse_list(&["stat x 1".into()]).is_err());
    }
}
